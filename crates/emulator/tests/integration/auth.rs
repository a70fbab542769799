//! OAuth client credentials, token expiry and revocation.

use std::time::Duration;

use dedupd_emulator::{EmulatorConfig, FaultProfile};
use reqwest::Method;
use serde_json::json;

use crate::common::{CLIENT_ID, CLIENT_SECRET, start, start_default};

#[tokio::test]
async fn token_flow_bad_credentials_and_missing_bearer() {
    let e = start_default().await;
    let ok = e
        .token_request(CLIENT_ID, CLIENT_SECRET, "grant_type=client_credentials")
        .await
        .expect(200);
    assert_eq!(ok["token_type"], "bearer");
    assert_eq!(ok["expires_in"], 86_400);
    assert!(ok["access_token"].as_str().is_some_and(|t| t.len() >= 32));

    let bad = e
        .token_request(CLIENT_ID, "wrong", "grant_type=client_credentials")
        .await
        .expect_error(401, "bad.credentials");
    assert_eq!(bad["error"], "invalid_client");
    assert!(
        !bad.to_string().contains("wrong"),
        "the secret is never echoed"
    );
    e.token_request("nobody", CLIENT_SECRET, "grant_type=client_credentials")
        .await
        .expect_error(401, "bad.credentials");
    let grant = e
        .token_request(CLIENT_ID, CLIENT_SECRET, "grant_type=password")
        .await
        .expect_error(400, "bad.request");
    assert_eq!(grant["error"], "unsupported_grant_type");

    // Missing, malformed and unknown bearer tokens.
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        None,
        &[],
    )
    .await
    .expect_error(401, "authentication.required");
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        Some("not-a-token"),
        &[],
    )
    .await
    .expect_error(401, "authentication.required");
    e.get("/api/v2/outbound/contactlists").await.expect(200);

    let s = e.emu.state().stats();
    assert_eq!(s.token_requests, 5);
    assert_eq!(s.tokens_issued, 2);
}

#[tokio::test]
async fn tokens_expire_after_their_ttl_and_a_new_one_works() {
    let cfg = EmulatorConfig {
        token_ttl: Duration::from_secs(300),
        ..EmulatorConfig::default()
    };
    let e = start(cfg).await;
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    // The emulator's clock is its own: moved forward, not waited for.
    e.emu.state().advance_clock(Duration::from_secs(299));
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    let advanced = e
        .admin(
            Method::POST,
            "/__emulator/clock/advance",
            Some(json!({"secs": 1})),
        )
        .await
        .expect(200);
    assert_eq!(advanced["advancedSecs"], 300.0);
    e.get("/api/v2/outbound/contactlists")
        .await
        .expect_error(401, "authentication.required");
    let fresh = e.new_token().await;
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        Some(&fresh),
        &[],
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn fault_profile_token_ttl_and_periodic_revocation() {
    let e = start_default().await;
    let profile = FaultProfile {
        token_ttl_secs: Some(5.0),
        ..FaultProfile::default()
    };
    e.emu.state().set_faults(profile);
    let b = e
        .token_request(CLIENT_ID, CLIENT_SECRET, "grant_type=client_credentials")
        .await
        .expect(200);
    assert_eq!(
        b["expires_in"], 5,
        "the profile's ttl is what expires_in says"
    );

    // Every 90 s all older tokens are revoked, whatever expires_in said.
    e.emu.state().set_faults(FaultProfile {
        revoke_tokens_every_secs: Some(90.0),
        ..FaultProfile::default()
    });
    let t = e.new_token().await;
    let call = || {
        e.call_with(
            Method::GET,
            "/api/v2/outbound/contactlists",
            None,
            Some(&t),
            &[],
        )
    };
    call().await.expect(200);
    e.emu.state().advance_clock(Duration::from_secs(90));
    call().await.expect_error(401, "authentication.required");
}

#[tokio::test]
async fn revocation_mid_run_by_admin_call_and_by_header() {
    let e = start_default().await;
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    let r = e
        .admin(Method::POST, "/__emulator/revoke-tokens", None)
        .await
        .expect(200);
    assert_eq!(r["revoked"], 1);
    e.get("/api/v2/outbound/contactlists")
        .await
        .expect_error(401, "authentication.required");

    let t = e.new_token().await;
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        Some(&t),
        &[("x-emulator-fault", "revoke-token")],
    )
    .await
    .expect_error(401, "authentication.required");
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        Some(&t),
        &[],
    )
    .await
    .expect_error(401, "authentication.required");
    assert_eq!(
        e.emu.state().stats().faults_injected.get("token_revoked"),
        Some(&1)
    );
}

#[tokio::test]
async fn client_credentials_in_form_fields_and_configured_clients() {
    let cfg = EmulatorConfig {
        clients: vec![("a".into(), "sa".into()), ("b".into(), "sb".into())],
        ..EmulatorConfig::default()
    };
    let emu = dedupd_emulator::RunningEmulator::start(cfg)
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/oauth/token", emu.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=b&client_secret=sb")
        .send()
        .await
        .expect("sent");
    let r = crate::common::to_resp(r).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.raw);
    let r = http
        .post(format!("{}/oauth/token", emu.base_url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.status().as_u16(),
        401,
        "the default client is not configured here"
    );
    let stats = emu.state().stats();
    assert_eq!(stats.tokens.len(), 1);
    assert_eq!(stats.tokens[0].client_id, "b");
    assert!(
        !serde_json::to_string(&stats).expect("json").contains("sb"),
        "no secret in stats"
    );
    let _ = json!(null);
    emu.shutdown().await;
}

#[tokio::test]
async fn unvalidated_profiles_and_extreme_ttls_do_not_break_the_server() {
    // set_faults takes the profile as given: nonsense values must not panic a request.
    let e = start(EmulatorConfig {
        token_ttl: Duration::MAX,
        ..EmulatorConfig::default()
    })
    .await;
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    e.emu.state().set_faults(FaultProfile {
        token_ttl_secs: Some(-1.0),
        revoke_tokens_every_secs: Some(f64::NAN),
        ..FaultProfile::default()
    });
    let t = e.new_token().await;
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        Some(&t),
        &[],
    )
    .await
    .expect(200);
}
