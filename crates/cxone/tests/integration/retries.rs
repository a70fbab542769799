//! Retries where a request is safe to repeat, `Retry-After` winning, at-most-once writes, and
//! the rate budget shared through Redis.

use std::time::Duration;

use dedupd_cxone::{
    CxoneClient, Error, MessageContent, OutboundMessage, RateBudget, Recipient, RedisBudget,
    ThreadRef,
};
use dedupd_emulator::FaultRule;

use crate::common::*;

const CHANNELS: &str = "/dfo/3.0/channels";
const OUTBOUND: &str = "/dfo/3.0/channels/*/outbound";

fn send() -> OutboundMessage {
    OutboundMessage {
        thread: ThreadRef {
            id_on_external_platform: "dedupd-n-retry".into(),
            thread_name: None,
        },
        message_content: MessageContent::text("hello"),
        recipients: vec![Recipient {
            id_on_external_platform: "+14155550110".into(),
            name: None,
            is_primary: true,
            is_private: false,
        }],
        title: None,
    }
}

fn burst(probability: f64, retry_after_secs: u64) -> FaultRule {
    let mut r = rule(
        FaultKind::RateLimitBurst,
        probability,
        &["GET"],
        &[CHANNELS],
    );
    r.retry_after_secs = Some(retry_after_secs);
    r
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_with_backoff_until_it_passes() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    emu.state().set_faults(faults(vec![burst(0.3, 0)]));
    for _ in 0..12 {
        client.dfo().channels().await.unwrap();
    }
    let s = client.stats();
    assert!(s.rate_limited >= 1, "{s:?}");
    assert_eq!(s.retries, s.rate_limited, "every 429 was retried once");
    assert_eq!(s.api_calls, 12 + s.retries);
}

#[tokio::test]
async fn without_retry_after_the_backoff_runs_to_the_attempt_cap() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    emu.state().set_faults(faults(vec![burst(1.0, 0)]));
    let err = client.dfo().channels().await.unwrap_err();
    let Error::Api(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.status.as_u16(), 429);
    assert_eq!(api.retry_after, None);
    assert_eq!(api.attempts, fast_retry().max_attempts);
    assert!(err.is_transient());
}

#[tokio::test]
async fn retry_after_wins_over_the_backoff() {
    // A Retry-After of 30 s does not fit the 2 s retry budget: the client stops at once
    // instead of retrying after its own millisecond backoff.
    let emu = default_emulator().await;
    let mut config = config_for(&emu);
    config.retry.max_total = Duration::from_secs(2);
    let client = CxoneClient::connect(config).await.unwrap();
    emu.state().set_faults(faults(vec![burst(1.0, 30)]));
    let err = client.dfo().channels().await.unwrap_err();
    let Error::Api(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.attempts, 1);
    assert_eq!(api.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(client.stats().retries, 0);
    // And the seam error carries the wait for the job.
    let pe = dedupd_platform::PlatformError::new(dedupd_platform::ErrorKind::Transient, "x")
        .with_retry_after(api.retry_after);
    assert_eq!(pe.retry_after, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_5xx_on_a_read_is_retried() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let mut r = rule(FaultKind::ServerError, 1.0, &["GET"], &[CHANNELS]);
    r.statuses = Some(vec![502]);
    emu.state().set_faults(faults(vec![r]));
    let err = client.dfo().channels().await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(502));
    assert_eq!(
        route_count(&emu, "GET /dfo/3.0/channels"),
        u64::from(fast_retry().max_attempts)
    );
    emu.state().set_faults(faults(Vec::new()));
    client.dfo().channels().await.unwrap();
}

#[tokio::test]
async fn a_5xx_on_a_send_is_never_resent() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let mut r = rule(FaultKind::ServerError, 1.0, &["POST"], &[OUTBOUND]);
    r.statuses = Some(vec![500]);
    emu.state().set_faults(faults(vec![r]));
    let err = client
        .dfo()
        .send_outbound(CHANNEL, &send())
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert_eq!(
        route_count(&emu, "POST /dfo/3.0/channels/{channelId}/outbound"),
        1
    );
    assert_eq!(client.stats().outcome_unknown, 1);
}

#[tokio::test]
async fn a_504_after_the_work_is_an_unknown_outcome_and_the_work_is_there() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    emu.state().set_faults(faults(vec![rule(
        FaultKind::GatewayTimeoutApplied,
        1.0,
        &["POST"],
        &[OUTBOUND],
    )]));
    let err = client
        .dfo()
        .send_outbound(CHANNEL, &send())
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(504));
    emu.state().set_faults(faults(Vec::new()));
    assert!(
        client
            .dfo()
            .find_thread("dedupd-n-retry")
            .await
            .unwrap()
            .is_some(),
        "the send happened"
    );
}

#[tokio::test]
async fn a_429_on_a_send_is_retried_since_nothing_was_done() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let mut r = rule(FaultKind::RateLimitBurst, 1.0, &["POST"], &[OUTBOUND]);
    r.retry_after_secs = Some(0);
    r.burst = Some(1);
    emu.state().set_faults(faults(vec![r]));
    // Every POST draws a 429: the send is retried to the cap, and nothing was sent.
    let err = client
        .dfo()
        .send_outbound(CHANNEL, &send())
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    assert!(!err.is_outcome_unknown());
    assert_eq!(
        client.stats().retries,
        u64::from(fast_retry().max_attempts - 1)
    );
    emu.state().set_faults(faults(Vec::new()));
    assert!(
        client
            .dfo()
            .find_thread("dedupd-n-retry")
            .await
            .unwrap()
            .is_none()
    );
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis connection, or `None` (skip) when there is none and `CI` is not `true`.
async fn redis() -> Option<redis::aio::ConnectionManager> {
    let attempt = async {
        let client = redis::Client::open(redis_url())?;
        client.get_connection_manager().await
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(c)) => Some(c),
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and Redis at {} is unavailable: {other:?}",
                redis_url()
            );
            eprintln!("skipping: no Redis at {}", redis_url());
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_draw_from_one_budget_in_redis() {
    let Some(mut conn) = redis().await else {
        return;
    };
    let key = format!(
        "dedupd-test:cxone-budget:{}:{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let emu = default_emulator().await;
    let mut config = config_for(&emu);
    // 600 a minute: one request every ~102 ms, shared by both clients.
    config.requests_per_minute = 600;
    config.redis = Some(RedisBudget {
        url: redis_url(),
        key: key.clone(),
    });
    let a = CxoneClient::connect(config.clone()).await.unwrap();
    let b = CxoneClient::connect(config).await.unwrap();
    let calls = (0..3)
        .flat_map(|_| [a.clone(), b.clone()])
        .map(|c| async move {
            c.dfo().channels().await.unwrap();
            c
        });
    futures_util::future::join_all(calls).await;
    // Six requests at once from two processes' worth of clients: all but one waited for a
    // slot of the shared budget.
    let waits = a.stats().budget_waits + b.stats().budget_waits;
    assert!(waits >= 5, "waits: {waits}");
    assert!(matches!(a.budget(), RateBudget::Redis(_)));
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "the budget lives in Redis under the test's key");
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_platform_that_answers_nothing_is_given_up_on_and_every_clone_stops() {
    let emu = default_emulator().await;
    let mut config = config_for(&emu);
    config.give_up_after = Some(Duration::from_millis(300));
    config.retry = dedupd_cxone::RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(30),
        max_attempts: u32::MAX,
    };
    let client = CxoneClient::connect(config).await.unwrap();
    emu.state().outage_after(0); // every API request is a 503 from now on
    let err = client.dfo().channels().await.unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    let clone = client.clone();
    let sent = emu.state().stats().total_requests;
    let again = clone.dfo().customer("C1").await.unwrap_err();
    assert!(again.is_unreachable());
    assert_eq!(
        emu.state().stats().total_requests,
        sent,
        "nothing more is sent"
    );
    let gave_up = dedupd_platform::Session::gave_up(&client).unwrap();
    assert!(gave_up.contains("unreachable"), "{gave_up}");
    emu.state().end_outage();
}
