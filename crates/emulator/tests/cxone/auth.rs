//! Issuer discovery, the access-key password grant, refresh, tenant discovery, 401s.

use std::time::Duration;

use reqwest::Method;

use crate::common::{
    CLIENT_ID, CLIENT_SECRET, KEY_ID, KEY_SECRET, V, form_body, jwt_claims, start_default, to_resp,
};

#[tokio::test]
async fn a_client_discovers_logs_in_finds_its_tenant_and_calls_the_api() {
    let cx = start_default().await;
    // 1. OIDC discovery on the issuer.
    let oidc = to_resp(
        cx.http
            .get(format!("{}/.well-known/openid-configuration", cx.base))
            .send()
            .await
            .expect("sent"),
    )
    .await
    .expect(200);
    assert_eq!(oidc["issuer"], cx.base.as_str());
    let token_endpoint = oidc["token_endpoint"].as_str().expect("token_endpoint");
    assert_eq!(token_endpoint, format!("{}/auth/token", cx.base));
    assert!(
        oidc["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x == "client_secret_basic"))
    );
    // 2. The password grant with the access key, client by HTTP Basic.
    let tok = to_resp(
        cx.http
            .post(token_endpoint)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[
                ("grant_type", "password"),
                ("username", KEY_ID),
                ("password", KEY_SECRET),
            ]))
            .send()
            .await
            .expect("sent"),
    )
    .await
    .expect(200);
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3600);
    assert!(tok["refresh_token"].is_string());
    // 3. The id_token says which tenant; decoded without verification.
    let claims = jwt_claims(tok["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["iss"], cx.base.as_str());
    let tenant = claims["tenantId"].as_str().expect("tenantId claim");
    assert_eq!(tenant, cx.emu.state().tenant().tenant_id);
    // 4. Tenant discovery.
    let conf = to_resp(
        cx.http
            .get(format!(
                "{}/.well-known/cxone-configuration?tenantId={tenant}",
                cx.base
            ))
            .send()
            .await
            .expect("sent"),
    )
    .await
    .expect(200);
    assert_eq!(conf["api_endpoint"], cx.base.as_str());
    assert_eq!(conf["tenantId"], tenant);
    for k in [
        "area",
        "cluster",
        "domain",
        "acdDomain",
        "uhDomain",
        "ui_endpoint",
        "auth_endpoint",
        "globaldomain",
    ] {
        assert!(conf[k].is_string(), "{k}: {conf}");
    }
    assert_eq!(conf["private"], false);
    // 5. DFO and Admin calls with the token.
    let access = tok["access_token"].as_str().expect("access_token");
    cx.call_with(Method::GET, "/dfo/3.0/channels", None, Some(access), &[])
        .await
        .expect(200);
    cx.call_with(
        Method::GET,
        &format!("{V}/dnc-groups"),
        None,
        Some(access),
        &[],
    )
    .await
    .expect(200);

    let jwks = to_resp(
        cx.http
            .get(format!("{}/auth/jwks", cx.base))
            .send()
            .await
            .expect("sent"),
    )
    .await
    .expect(200);
    assert_eq!(jwks["keys"], serde_json::json!([]));

    let unknown = to_resp(
        cx.http
            .get(format!(
                "{}/.well-known/cxone-configuration?tenantId=nope",
                cx.base
            ))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    unknown.expect_oauth_error(404, "not_found");
}

#[tokio::test]
async fn grant_errors_use_the_oauth_form_and_never_echo_secrets() {
    let cx = start_default().await;
    let bad_client = cx
        .token_request(
            Some((CLIENT_ID, "wrong-secret")),
            &[
                ("grant_type", "password"),
                ("username", KEY_ID),
                ("password", KEY_SECRET),
            ],
        )
        .await;
    assert!(!bad_client.raw.contains("wrong-secret"));
    bad_client.expect_oauth_error(401, "invalid_client");
    let bad_key = cx
        .token_request(
            Some((CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "password"),
                ("username", KEY_ID),
                ("password", "nope-secret"),
            ],
        )
        .await;
    assert!(!bad_key.raw.contains("nope-secret"));
    bad_key.expect_oauth_error(400, "invalid_grant");
    cx.token_request(
        Some((CLIENT_ID, CLIENT_SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect_oauth_error(400, "unsupported_grant_type");
    cx.token_request(Some((CLIENT_ID, CLIENT_SECRET)), &[("username", KEY_ID)])
        .await
        .expect_oauth_error(400, "invalid_request");
    // Client credentials in the form body work too.
    cx.token_request(
        None,
        &[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", KEY_ID),
            ("password", KEY_SECRET),
        ],
    )
    .await
    .expect(200);
    // JSON is not a token request.
    let json = to_resp(
        cx.http
            .post(format!("{}/auth/token", cx.base))
            .json(&serde_json::json!({"grant_type": "password"}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    json.expect_oauth_error(400, "invalid_request");
    // No invented endpoints.
    for path in ["/api/v2/oauth/token", "/oauth/token"] {
        let r = to_resp(
            cx.http
                .post(format!("{}{path}", cx.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await
                .expect("sent"),
        )
        .await;
        r.expect_dfo_error(404);
    }
    let s = cx.emu.state().stats();
    assert_eq!(s.token_requests, 7, "the login of start + 6 here");
    assert_eq!(s.tokens_issued, 2);
}

#[tokio::test]
async fn refresh_tokens_are_single_use_and_tied_to_their_client() {
    let cx = start_default().await;
    let first = cx.login().await;
    let r1 = first["refresh_token"].as_str().expect("refresh").to_owned();
    // The spec's form: client_id in the body, no secret.
    let second = cx
        .token_request(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("refresh_token", &r1),
            ],
        )
        .await
        .expect(200);
    let access = second["access_token"].as_str().expect("access");
    cx.call_with(Method::GET, "/dfo/3.0/channels", None, Some(access), &[])
        .await
        .expect(200);
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    // Used once: refused now.
    cx.token_request(
        Some((CLIENT_ID, CLIENT_SECRET)),
        &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
    )
    .await
    .expect_oauth_error(400, "invalid_grant");
    // Another client cannot use it; an unknown client is invalid_client.
    let r2 = second["refresh_token"].as_str().expect("refresh");
    cx.token_request(
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "someone-else"),
            ("refresh_token", r2),
        ],
    )
    .await
    .expect_oauth_error(401, "invalid_client");
    // Refresh tokens expire (2 h by default) on the emulator's clock.
    let third = cx.login().await;
    let r3 = third["refresh_token"].as_str().expect("refresh");
    cx.emu.state().advance_clock(Duration::from_secs(7200));
    cx.token_request(
        Some((CLIENT_ID, CLIENT_SECRET)),
        &[("grant_type", "refresh_token"), ("refresh_token", r3)],
    )
    .await
    .expect_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn missing_expired_and_revoked_tokens_are_401_in_each_family_shape() {
    let cx = start_default().await;
    cx.call_with(Method::GET, "/dfo/3.0/customers", None, None, &[])
        .await
        .expect_dfo_error(401);
    cx.call_with(
        Method::GET,
        "/dfo/3.0/customers",
        None,
        Some("not-a-token"),
        &[],
    )
    .await
    .expect_dfo_error(401);
    cx.call_with(Method::GET, &format!("{V}/dnc-groups"), None, None, &[])
        .await
        .expect_admin_error(401, "invalid_token");

    // Expiry: one hour on the emulator's clock, moved, not waited for.
    cx.get("/dfo/3.0/customers").await.expect(200);
    cx.emu.state().advance_clock(Duration::from_secs(3599));
    cx.get("/dfo/3.0/customers").await.expect(200);
    cx.admin(
        Method::POST,
        "/__emulator/clock/advance",
        Some(serde_json::json!({"secs": 1})),
    )
    .await
    .expect(200);
    cx.get("/dfo/3.0/customers").await.expect_dfo_error(401);

    // Revocation: by the admin API, and by the fault header mid-run.
    let fresh = cx.login().await["access_token"]
        .as_str()
        .expect("t")
        .to_owned();
    cx.call_with(
        Method::GET,
        "/dfo/3.0/customers",
        None,
        Some(&fresh),
        &[("x-emulator-fault", "revoke-token")],
    )
    .await
    .expect_dfo_error(401);
    let again = cx.login().await["access_token"]
        .as_str()
        .expect("t")
        .to_owned();
    cx.call_with(Method::GET, "/dfo/3.0/customers", None, Some(&again), &[])
        .await
        .expect(200);
    let n = cx
        .admin(Method::POST, "/__emulator/revoke-tokens", None)
        .await
        .expect(200);
    assert!(n["revoked"].as_u64().is_some_and(|n| n >= 1));
    cx.call_with(Method::GET, "/dfo/3.0/customers", None, Some(&again), &[])
        .await
        .expect_dfo_error(401);
    assert_eq!(cx.faults("token_revoked"), 1);
}
