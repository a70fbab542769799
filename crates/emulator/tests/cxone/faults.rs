//! The shared gate on the CXone side: rate limit, 429 with and without Retry-After, 5xx,
//! slow answers, timeouts, outages, seeded reproducibility, unknown routes, the admin API.

use dedupd_emulator::cxone::CxoneEmulatorConfig;
use dedupd_emulator::{FaultKind, FaultProfile, FaultRule};
use reqwest::Method;
use serde_json::json;

use crate::common::{Cx, V, outbound, roomy, start, start_default};

fn profile(seed: u64, rules: Vec<FaultRule>) -> FaultProfile {
    FaultProfile {
        seed: Some(seed),
        rules,
        ..FaultProfile::default()
    }
}

async fn send(cx: &Cx, ch: &str, fault: &str) -> crate::common::Resp {
    let headers: Vec<(&str, &str)> = if fault.is_empty() {
        vec![]
    } else {
        vec![("x-emulator-fault", fault)]
    };
    cx.call_with(
        Method::POST,
        &format!("/dfo/3.0/channels/{ch}/outbound"),
        Some(outbound("t-1", "+15550100", "hi")),
        Some(&cx.token),
        &headers,
    )
    .await
}

#[tokio::test]
async fn the_budget_429_has_no_retry_after_unless_configured() {
    let cx = start(CxoneEmulatorConfig {
        rate_limit_per_minute: 3,
        ..CxoneEmulatorConfig::default()
    })
    .await;
    for _ in 0..3 {
        cx.get("/dfo/3.0/channels").await.expect(200);
    }
    let r = cx.get("/dfo/3.0/channels").await;
    assert!(
        r.header("retry-after").is_none(),
        "CXone sends no reliable Retry-After"
    );
    let e = r.expect_dfo_error(429);
    assert_eq!(e["errors"][0]["errorCode"], "TooManyRequests");
    cx.get(&format!("{V}/dnc-groups"))
        .await
        .expect_admin_error(429, "TooManyRequests");
    let s = cx.emu.state().stats();
    assert_eq!(s.rate_limited, 2);
    assert_eq!(s.too_many_requests_sent, 2);

    let with = start(CxoneEmulatorConfig {
        rate_limit_per_minute: 1,
        retry_after_on_budget: true,
        ..CxoneEmulatorConfig::default()
    })
    .await;
    with.get("/dfo/3.0/channels").await.expect(200);
    let r = with.get("/dfo/3.0/channels").await;
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1))
    );
    r.expect_dfo_error(429);
}

#[tokio::test]
async fn injected_429s_with_and_without_retry_after() {
    let cx = start_default().await;
    let r = cx
        .call_with(
            Method::GET,
            "/dfo/3.0/customers",
            None,
            Some(&cx.token),
            &[("x-emulator-fault", "429=7")],
        )
        .await;
    assert_eq!(r.header("retry-after"), Some("7"));
    r.expect_dfo_error(429);
    let r = cx
        .call_with(
            Method::GET,
            "/dfo/3.0/customers",
            None,
            Some(&cx.token),
            &[("x-emulator-fault", "429=0")],
        )
        .await;
    assert!(r.header("retry-after").is_none());
    r.expect_dfo_error(429);
    // From the profile: a burst of 2 without Retry-After, then served.
    let mut burst = FaultRule::new(FaultKind::RateLimitBurst, 1.0);
    burst.burst = Some(2);
    burst.retry_after_secs = Some(0);
    burst.paths = vec!["/dfo/3.0/customers".into()];
    cx.emu.state().set_faults(profile(1, vec![burst]));
    let first = cx.get("/dfo/3.0/customers").await;
    assert!(first.header("retry-after").is_none());
    first.expect_dfo_error(429);
    let second = cx.get("/dfo/3.0/channels").await;
    assert!(
        second.header("retry-after").is_none(),
        "the burst goes on for the token"
    );
    second.expect_dfo_error(429);
    cx.get("/dfo/3.0/channels").await.expect(200);
    assert_eq!(cx.faults("rate_limit_burst"), 4);
}

#[tokio::test]
async fn server_errors_timeouts_and_slow_answers() {
    let cx = start_default().await;
    let ch = cx.seed_channel();
    for status in [500u16, 502, 503] {
        let r = send(&cx, &ch, &status.to_string()).await;
        r.expect_dfo_error(status);
    }
    let r = send(&cx, &ch, "503=4").await;
    assert_eq!(r.header("retry-after"), Some("4"));
    // Plain 504 and timeout: nothing sent.
    send(&cx, &ch, "504").await.expect_dfo_error(504);
    send(&cx, &ch, "timeout=5").await.expect_dfo_error(504);
    assert!(cx.emu.state().messages().is_empty());
    // 504 after sending: the message went out.
    send(&cx, &ch, "504-applied").await.expect_dfo_error(504);
    assert_eq!(cx.emu.state().messages().len(), 1);
    // Slow (small delay, no timing asserted): served normally.
    send(&cx, &ch, "slow=5").await.expect(202);
    assert_eq!(cx.faults("slow"), 1);
    assert_eq!(cx.faults("gateway_timeout_applied"), 1);
    assert_eq!(cx.faults("server_error"), 4);
    // The token endpoint is only affected when a rule names it.
    let mut on_token = FaultRule::new(FaultKind::ServerError, 1.0);
    on_token.paths = vec!["/auth/token".into()];
    on_token.statuses = Some(vec![503]);
    cx.emu.state().set_faults(profile(3, vec![on_token]));
    let t = cx
        .token_request(
            Some((crate::common::CLIENT_ID, crate::common::CLIENT_SECRET)),
            &[
                ("grant_type", "password"),
                ("username", crate::common::KEY_ID),
                ("password", crate::common::KEY_SECRET),
            ],
        )
        .await;
    t.expect_oauth_error(503, "ServiceUnavailable");
    cx.get("/dfo/3.0/channels").await.expect(200);
    let bad = cx
        .call_with(
            Method::GET,
            "/dfo/3.0/channels",
            None,
            Some(&cx.token),
            &[("x-emulator-fault", "explode")],
        )
        .await
        .expect_dfo_error(400);
    assert!(
        bad["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("explode"))
    );
}

/// The statuses of 40 sends under a seeded profile.
async fn run(seed: u64) -> Vec<u16> {
    let cx = start_default().await;
    let ch = cx.seed_channel();
    let mut se = FaultRule::new(FaultKind::ServerError, 0.3);
    se.statuses = Some(vec![500, 503]);
    let mut applied = FaultRule::new(FaultKind::GatewayTimeoutApplied, 0.2);
    applied.methods = vec!["POST".into()];
    cx.emu.state().set_faults(profile(
        seed,
        vec![FaultRule::new(FaultKind::RateLimitBurst, 0.1), se, applied],
    ));
    let mut out = Vec::new();
    for _ in 0..40 {
        out.push(send(&cx, &ch, "").await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn a_seed_gives_the_same_faults_every_time() {
    let seed = 20_261_124;
    println!("fault seed {seed}");
    let a = run(seed).await;
    let b = run(seed).await;
    assert_eq!(a, b);
    assert!(
        a.contains(&202) && a.iter().any(|s| *s >= 500) && a.contains(&429),
        "{a:?}"
    );
    let c = run(seed + 1).await;
    assert_ne!(a, c, "another seed, other faults");
}

#[tokio::test]
async fn outages_unknown_routes_and_the_admin_api() {
    let cx = start_default().await;
    cx.admin(Method::PUT, "/__emulator/outage", Some(json!({"after": 1})))
        .await
        .expect(200);
    cx.get("/dfo/3.0/channels").await.expect(200);
    cx.get("/dfo/3.0/channels").await.expect_dfo_error(503);
    cx.get(&format!("{V}/dnc-groups"))
        .await
        .expect_admin_error(503, "ServiceUnavailable");
    cx.admin(Method::DELETE, "/__emulator/outage", None)
        .await
        .expect(200);
    cx.get("/dfo/3.0/channels").await.expect(200);
    cx.emu.state().outage_after(0);
    cx.get("/dfo/3.0/channels").await.expect_dfo_error(503);
    cx.emu.state().end_outage();
    assert_eq!(cx.faults("outage"), 3);

    // Unknown routes: a JSON 404 whatever the family; a known path with another method: 405.
    let e = cx.get("/dfo/3.0/nothing-here").await.expect_dfo_error(404);
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/dfo/3.0/nothing-here"))
    );
    cx.get("/api/v2/events").await.expect_dfo_error(404);
    cx.get(&format!("{V}/skills"))
        .await
        .expect_admin_error(404, "NotFound");
    cx.call(Method::DELETE, "/dfo/3.0/channels", None)
        .await
        .expect_dfo_error(405);
    // Stats, faults and reset over HTTP.
    let stats = cx
        .admin(Method::GET, "/__emulator/stats", None)
        .await
        .expect(200);
    assert!(stats["totalRequests"].as_u64().is_some_and(|n| n >= 9));
    assert_eq!(stats["tokens"][0]["clientId"], "dedupd-demo");
    assert!(
        stats["requestsByRoute"]["GET /dfo/3.0/channels"]
            .as_u64()
            .is_some_and(|n| n >= 4)
    );
    cx.admin(
        Method::PUT,
        "/__emulator/faults",
        Some(json!({"rules": [{"kind": "slow", "probability": 2}]})),
    )
    .await
    .expect_dfo_error(400);
    cx.admin(
        Method::PUT,
        "/__emulator/faults",
        Some(json!({"seed": 1, "rules": [{"kind": "server_error", "probability": 1.0, "statuses": [502]}]})),
    )
    .await
    .expect(200);
    cx.get("/dfo/3.0/channels").await.expect_dfo_error(502);
    assert_eq!(
        cx.admin(Method::GET, "/__emulator/faults", None)
            .await
            .expect(200)["rules"][0]["kind"],
        "server_error"
    );
    cx.admin(Method::POST, "/__emulator/reset", None)
        .await
        .expect(200);
    cx.get("/dfo/3.0/channels").await.expect_dfo_error(401);
    assert_eq!(cx.emu.state().stats().total_requests, 1);
}

#[tokio::test]
async fn the_limit_is_per_token_and_a_new_token_does_not_reset_the_clock() {
    let cx = start(CxoneEmulatorConfig {
        rate_limit_per_minute: 2,
        ..roomy()
    })
    .await;
    cx.get("/dfo/3.0/channels").await.expect(200);
    cx.get("/dfo/3.0/channels").await.expect(200);
    cx.get("/dfo/3.0/channels").await.expect_dfo_error(429);
    // 60 s later on the emulator's clock the window has slid.
    cx.emu
        .state()
        .advance_clock(std::time::Duration::from_secs(60));
    cx.get("/dfo/3.0/channels").await.expect(200);
    assert_eq!(cx.emu.state().stats().max_requests_per_token_in_60s, 3);
}
