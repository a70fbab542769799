//! The per-token rate limit.

use dedupd_emulator::EmulatorConfig;
use reqwest::Method;

use crate::common::{start, start_default};

#[tokio::test]
async fn budget_exceeded_gives_429_with_retry_after_and_headers() {
    let e = start(EmulatorConfig {
        rate_limit_per_minute: 5,
        ..EmulatorConfig::default()
    })
    .await;
    for i in 1..=5 {
        let r = e.get("/api/v2/outbound/contactlists").await;
        assert_eq!(r.status.as_u16(), 200);
        assert_eq!(r.header("inin-ratelimit-allowed"), Some("5"));
        assert_eq!(
            r.header("inin-ratelimit-count"),
            Some(i.to_string().as_str())
        );
        let reset: u64 = r
            .header("inin-ratelimit-reset")
            .and_then(|v| v.parse().ok())
            .expect("reset header");
        assert!((1..=60).contains(&reset));
    }
    let r = e.get("/api/v2/outbound/contactlists").await;
    let retry_after: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("whole-second Retry-After");
    assert!((1..=60).contains(&retry_after));
    assert_eq!(r.header("inin-ratelimit-count"), Some("5"));
    let body = r.expect_error(429, "too.many.requests.retry.after");
    assert_eq!(
        body["message"],
        format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds")
    );

    // Budgets are per token.
    let other = e.new_token().await;
    let r = e
        .call_with(
            Method::GET,
            "/api/v2/outbound/contactlists",
            None,
            Some(&other),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("inin-ratelimit-count"), Some("1"));

    let s = e.emu.state().stats();
    assert_eq!(s.rate_limited, 1);
    assert_eq!(s.too_many_requests_sent, 1);
    assert_eq!(
        s.max_requests_per_token_in_60s, 6,
        "the 429 counts as a request seen"
    );
    assert_eq!(s.tokens.len(), 2);
    assert_eq!(s.tokens[0].requests, 6);
    assert_eq!(
        s.requests_by_route.get("GET /api/v2/outbound/contactlists"),
        Some(&7)
    );
    assert_eq!(s.responses_by_status.get(&429), Some(&1));
    // The admin API is outside the budget and the counts.
    e.admin(Method::GET, "/__emulator/stats", None)
        .await
        .expect(200);
    assert_eq!(e.emu.state().stats().total_requests, s.total_requests);
}

#[tokio::test]
async fn default_budget_is_300_per_minute() {
    let e = start_default().await;
    let r = e.get("/api/v2/outbound/contactlists").await;
    assert_eq!(r.header("inin-ratelimit-allowed"), Some("300"));
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.push(
            e.get("/api/v2/externalcontacts/contacts")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        299,
        "one request was already made"
    );
    assert_eq!(statuses.last(), Some(&429));
    let stats = e
        .admin(Method::GET, "/__emulator/stats", None)
        .await
        .expect(200);
    assert_eq!(stats["maxRequestsPerTokenIn60s"], 301);
    assert_eq!(stats["rateLimited"], 1);
    // Reset forgets tokens and counters.
    e.admin(Method::POST, "/__emulator/reset", None)
        .await
        .expect(200);
    e.get("/api/v2/outbound/contactlists")
        .await
        .expect_error(401, "authentication.required");
    assert_eq!(e.emu.state().stats().total_requests, 1);
}
