//! Webhooks against a real local HTTP receiver: disabled after repeated failures, probed after
//! the cool-down (the clock is passed in, or the cool-down is zero: nothing here waits on the
//! wall clock), enabled again by a delivered probe.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dedupd_broker::publish::{Hook, HookState, OutConfig, WebhookConfig};
use dedupd_broker::webhook::Delivery;
use dedupd_store::outbox::{
    AcceptOptions, EmbeddedOutbox, Outbox, OutboxOptions, OutboxStore, suite,
};

const SECRET: &str = "webhook-test-secret";

/// The receiver: answers with `status`; records (event id, status answered) per request.
#[derive(Default)]
struct Receiver {
    status: AtomicU16,
    seen: Mutex<Vec<(String, u16)>>,
}

impl Receiver {
    fn seen(&self) -> Vec<(String, u16)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ts: i64 = h("dedupd-timestamp").parse().unwrap_or(0);
    assert_eq!(
        h("dedupd-signature"),
        dedupd_broker::publish::signature(SECRET, ts, &body),
        "every request is signed"
    );
    let status = r.status.load(Ordering::SeqCst);
    r.seen
        .lock()
        .unwrap()
        .push((h("dedupd-event-id").to_owned(), status));
    StatusCode::from_u16(status).unwrap()
}

/// A receiver on an ephemeral port answering `status` at first, and its URL.
async fn receiver(status: u16) -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    r.status.store(status, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&r));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

fn config(url: &str, max_failures: u32, cooldown: u64, max_cooldown: u64) -> WebhookConfig {
    WebhookConfig {
        name: "crm".into(),
        url: url.into(),
        secret_env: "DEDUPD_TEST_SECRET".into(),
        max_failures: Some(max_failures),
        timeout_secs: Some(5),
        cooldown_secs: Some(cooldown),
        max_cooldown_secs: Some(max_cooldown),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_webhook_is_probed_after_its_cooldown_and_enabled_by_a_success() {
    let (r, url) = receiver(503).await;
    let hook = config(&url, 3, 60, 600)
        .validate("w", |_| Some(SECRET.into()))
        .unwrap();
    let mut h = Hook::new(hook);
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let body = br#"{"id":"e"}"#;

    // Three failures in a row: the third disables it.
    for (i, want) in ["failed", "failed", "disabled"].iter().enumerate() {
        let got = h.deliver(&http, &format!("e{i}"), body, at(0)).await;
        let kind = match got {
            Delivery::Failed(_) => "failed",
            Delivery::Disabled(_) => "disabled",
            other => panic!("{other:?}"),
        };
        assert_eq!(&kind, want);
    }
    assert_eq!(r.seen().len(), 3);
    // Inside the cool-down, events pass it by without a request.
    assert_eq!(
        h.deliver(&http, "e3", body, at(59)).await,
        Delivery::Skipped
    );
    assert_eq!(r.seen().len(), 3);
    // The probe after the cool-down fails: disabled again, for twice as long.
    assert!(matches!(
        h.deliver(&http, "e4", body, at(60)).await,
        Delivery::Disabled(_)
    ));
    assert_eq!(r.seen().len(), 4, "one probe request");
    assert_eq!(
        h.state(),
        HookState::Disabled {
            until: at(180),
            cooldown: Duration::from_secs(120)
        }
    );
    r.status.store(204, Ordering::SeqCst);
    assert_eq!(
        h.deliver(&http, "e5", body, at(179)).await,
        Delivery::Skipped
    );
    assert_eq!(r.seen().len(), 4);
    // The receiver is back: the next probe is delivered and the webhook is enabled again.
    assert_eq!(
        h.deliver(&http, "e6", body, at(180)).await,
        Delivery::Reenabled
    );
    assert_eq!(h.state(), HookState::Enabled { failures: 0 });
    assert_eq!(
        h.deliver(&http, "e7", body, at(181)).await,
        Delivery::Delivered
    );
    let ids: Vec<String> = r.seen().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["e0", "e1", "e2", "e4", "e6", "e7"]);
}

/// Waits (on the condition, not the clock) until `cond` holds; fails after `limit`.
async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_disables_a_failing_webhook_and_a_probe_enables_it_again() {
    let (r, url) = receiver(500).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::Embedded(
        EmbeddedOutbox::open(dir.path(), OutboxOptions::with_status_events()).unwrap(),
    );
    let out = OutConfig {
        webhooks: vec![config(&url, 2, 0, 0)],
        poll_ms: Some(10),
        ..OutConfig::default()
    }
    .validate(|_| Some(SECRET.into()))
    .unwrap();
    let publisher = tokio::spawn(dedupd_broker::run_publisher(
        outbox.clone(),
        out,
        None,
        std::future::pending(),
    ));
    let now = suite::t0();
    let accept = |key: &'static str| {
        let outbox = outbox.clone();
        async move {
            outbox
                .accept(
                    suite::new_notification(key, key),
                    AcceptOptions::default(),
                    now,
                )
                .await
                .unwrap()
        }
    };
    let id_of = |a: dedupd_store::outbox::Accepted| match a {
        dedupd_store::outbox::Accepted::Created(n) => format!("{}:accepted", n.id),
        other => panic!("{other:?}"),
    };
    // Failing: two attempts of the first event disable the webhook; the event passes it by and
    // leaves the outbox.
    let first = id_of(accept("w1").await);
    until(Duration::from_secs(30), "two failed attempts", || {
        r.seen().iter().filter(|(id, _)| *id == first).count() >= 2
    })
    .await;
    let mut backlog = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(30);
    while backlog != 0 {
        assert!(Instant::now() < deadline, "the first event left the outbox");
        backlog = outbox.events_backlog().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        r.seen().iter().filter(|(id, _)| *id == first).count(),
        2,
        "disabled after max_failures: no third attempt"
    );
    // The receiver is back; the cool-down is zero, so the next event is the probe: delivered,
    // the webhook is enabled, and the event after it is delivered as usual.
    r.status.store(200, Ordering::SeqCst);
    let second = id_of(accept("w2").await);
    let third = id_of(accept("w3").await);
    until(
        Duration::from_secs(30),
        "the probe and the next event",
        || {
            let seen = r.seen();
            [&second, &third]
                .iter()
                .all(|want| seen.iter().any(|(id, s)| id == *want && *s == 200))
        },
    )
    .await;
    let seen = r.seen();
    assert!(
        !seen.iter().any(|(id, s)| *id == first && *s == 200),
        "an event that passed a disabled webhook by is not sent to it later: {seen:?}"
    );
    publisher.abort();
}
