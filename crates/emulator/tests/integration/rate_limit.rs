//! The rate limit: per token (the platform's), or per client (an org-wide budget).

use dedupd_emulator::{EmulatorConfig, RateLimitScope};
use reqwest::Method;

use crate::common::{CLIENT_ID, CLIENT_SECRET, Emu, Resp, start, start_default};

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

const OTHER_CLIENT_ID: &str = "other-integration";
const OTHER_CLIENT_SECRET: &str = "other-secret";

/// A limit of `limit` in `scope`, with the demo client and a second one.
fn two_client_config(limit: u32, scope: RateLimitScope) -> EmulatorConfig {
    EmulatorConfig {
        rate_limit_per_minute: limit,
        rate_limit_scope: scope,
        clients: vec![
            (CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()),
            (OTHER_CLIENT_ID.to_owned(), OTHER_CLIENT_SECRET.to_owned()),
        ],
        ..EmulatorConfig::default()
    }
}

async fn get_with(e: &Emu, token: &str) -> Resp {
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        Some(token),
        &[],
    )
    .await
}

async fn other_client_token(e: &Emu) -> String {
    let b = e
        .token_request(
            OTHER_CLIENT_ID,
            OTHER_CLIENT_SECRET,
            "grant_type=client_credentials",
        )
        .await
        .expect(200);
    b["access_token"].as_str().expect("access_token").to_owned()
}

#[test]
fn scope_defaults_to_per_token_and_serializes_snake_case() {
    assert_eq!(
        EmulatorConfig::default().rate_limit_scope,
        RateLimitScope::PerToken
    );
    assert_eq!(RateLimitScope::default(), RateLimitScope::PerToken);
    assert_eq!(
        serde_json::to_value(RateLimitScope::PerClient).expect("serializes"),
        "per_client"
    );
    assert_eq!(
        serde_json::from_value::<RateLimitScope>(serde_json::json!("per_token"))
            .expect("deserializes"),
        RateLimitScope::PerToken
    );
}

#[tokio::test]
async fn per_client_scope_tokens_of_one_client_share_one_budget() {
    const N: u32 = 6;
    let e = start(two_client_config(N, RateLimitScope::PerClient)).await;
    // Two "processes" of one integration, each with its own token.
    let tokens = [e.token.clone(), e.new_token().await];
    let mut admitted = [0_u32; 2];
    let mut first_429 = None;
    for i in 0..(4 * N as usize) {
        let who = i % 2;
        let r = get_with(&e, &tokens[who]).await;
        assert_eq!(r.header("inin-ratelimit-allowed"), Some("6"));
        match r.status.as_u16() {
            200 => {
                admitted[who] += 1;
                let total = admitted[0] + admitted[1];
                assert_eq!(
                    r.header("inin-ratelimit-count"),
                    Some(total.to_string().as_str()),
                    "the count is the client's, not the token's"
                );
                assert!(first_429.is_none(), "no admission after the first 429");
            }
            429 => {
                first_429.get_or_insert(i);
                assert_eq!(r.header("inin-ratelimit-count"), Some("6"));
                let retry_after: u64 = r
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .expect("whole-second Retry-After");
                assert!((1..=60).contains(&retry_after));
                r.expect_error(429, "too.many.requests.retry.after");
            }
            s => panic!("unexpected status {s}: {}", r.raw),
        }
    }
    assert_eq!(
        admitted[0] + admitted[1],
        N,
        "both tokens together get exactly N"
    );
    assert_eq!(admitted, [N / 2, N / 2]);
    assert_eq!(first_429, Some(N as usize));

    // A fresh token of the same client (a refresh, a third process) gets no new budget…
    let third = e.new_token().await;
    get_with(&e, &third)
        .await
        .expect_error(429, "too.many.requests.retry.after");
    // …while another client has its own.
    let other = other_client_token(&e).await;
    let r = get_with(&e, &other).await;
    assert_eq!(r.status.as_u16(), 200, "body: {}", r.raw);
    assert_eq!(r.header("inin-ratelimit-count"), Some("1"));

    let s = e.emu.state().stats();
    let made = 4 * u64::from(N) + 1;
    assert_eq!(s.rate_limited, made - u64::from(N));
    assert_eq!(s.too_many_requests_sent, made - u64::from(N));
    assert_eq!(s.max_requests_per_client_in_60s, made, "429s included");
    assert_eq!(s.max_requests_per_token_in_60s, 2 * u64::from(N));
    assert_eq!(s.clients.len(), 2);
    let demo = s
        .clients
        .iter()
        .find(|c| c.client_id == CLIENT_ID)
        .expect("demo client stats");
    assert_eq!(
        (demo.tokens, demo.requests, demo.max_requests_in_60s),
        (3, made, made)
    );
    let o = s
        .clients
        .iter()
        .find(|c| c.client_id == OTHER_CLIENT_ID)
        .expect("other client stats");
    assert_eq!((o.tokens, o.requests, o.max_requests_in_60s), (1, 1, 1));

    let json = e
        .admin(Method::GET, "/__emulator/stats", None)
        .await
        .expect(200);
    assert_eq!(json["maxRequestsPerClientIn60s"], made);
    assert_eq!(json["clients"].as_array().map(Vec::len), Some(2));

    // Reset forgets the client windows too.
    e.admin(Method::POST, "/__emulator/reset", None)
        .await
        .expect(200);
    let fresh = e.new_token().await;
    let r = get_with(&e, &fresh).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("inin-ratelimit-count"), Some("1"));
    assert_eq!(e.emu.state().stats().max_requests_per_client_in_60s, 1);
}

#[tokio::test]
async fn per_token_scope_each_token_of_one_client_gets_the_full_budget() {
    const N: u32 = 6;
    let e = start(two_client_config(N, RateLimitScope::PerToken)).await;
    let tokens = [e.token.clone(), e.new_token().await];
    let mut admitted = [0_u32; 2];
    for i in 0..(4 * N as usize) {
        let who = i % 2;
        let r = get_with(&e, &tokens[who]).await;
        match r.status.as_u16() {
            200 => {
                admitted[who] += 1;
                assert_eq!(
                    r.header("inin-ratelimit-count"),
                    Some(admitted[who].to_string().as_str()),
                    "the count is the token's"
                );
            }
            429 => assert_eq!(r.header("inin-ratelimit-count"), Some("6")),
            s => panic!("unexpected status {s}: {}", r.raw),
        }
    }
    assert_eq!(admitted, [N, N], "each token gets N");

    let s = e.emu.state().stats();
    assert_eq!(s.rate_limited, 2 * u64::from(N));
    assert_eq!(s.max_requests_per_token_in_60s, 2 * u64::from(N));
    assert_eq!(
        s.max_requests_per_client_in_60s,
        4 * u64::from(N),
        "the per-client figure is kept in either scope"
    );
    assert_eq!(s.clients.len(), 1);
    assert_eq!(s.clients[0].client_id, CLIENT_ID);
    assert_eq!(s.clients[0].tokens, 2);
}
