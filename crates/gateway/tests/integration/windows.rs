//! Windows by channel pair and the near-duplicate flag, over HTTP, with each backend.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dedupd_gateway::{Gateway, GatewayConfig, MessageRequest, NearConfig};
use dedupd_store::window::{Window, WindowRules};
use serde_json::{Value, json};

use crate::support;

fn pair_config() -> GatewayConfig {
    GatewayConfig {
        // A phone's retry is a duplicate for two seconds here; the same question on another
        // channel for the default 300 s.
        windows: WindowRules::uniform(Duration::from_secs(300))
            .with_pair("sms/sms", Duration::from_secs(2))
            .expect("a valid pair"),
        ..GatewayConfig::default()
    }
}

/// Decides `body` at `now` with a gateway of [`pair_config`] on `window`: the path the HTTP
/// handler runs (it passes the wall clock), with the clock passed in.
async fn decide_at(window: &Window, body: &Value, now: DateTime<Utc>) -> Value {
    let gateway = Gateway::new(pair_config(), support::contacts(), window.clone(), None);
    let request: MessageRequest = serde_json::from_value(body.clone()).unwrap();
    serde_json::to_value(gateway.decide(request, now).await.unwrap()).unwrap()
}

async fn channel_pairs(window: Window) {
    let server = support::start(window.clone(), pair_config(), None).await;
    // C00002: +12013093185 / alex.brooks2@example.com.
    let sms = |id: &str| json!({"channel": "sms", "from": "+12013093185", "text": "Is my card blocked?", "message_id": id});
    let (_, first) = server.post(&sms("w-1")).await;
    assert_eq!(first["decision"], "PROCESS");
    assert_eq!(
        first["window_seconds"], 300,
        "a first SMS is remembered for its longest pair"
    );
    let (_, retry) = server.post(&sms("w-2")).await;
    assert_eq!(retry["decision"], "SUPPRESS");
    assert_eq!(retry["window_seconds"], 2, "sms/sms");
    // Past the sms/sms window without waiting for it: the late SMS is decided 2.1 s ahead of
    // the wall clock, on the same window.
    let later = Utc::now() + chrono::Duration::milliseconds(2100);
    let late = decide_at(&window, &sms("w-3"), later).await;
    assert_eq!(
        late["decision"], "PROCESS",
        "past the sms/sms window: {late}"
    );
    let mail = json!({"channel": "email", "from": "alex.brooks2@example.com",
        "text": "<p>Is my card <b>blocked</b>?</p>", "message_id": "w-4"});
    let (_, mail) = server.post(&mail).await;
    assert_eq!(mail["decision"], "SUPPRESS", "sms/email keeps the default");
    assert_eq!(mail["window_seconds"], 300);
    assert_eq!(
        mail["duplicate_of"]["message_id"], "w-3",
        "the late SMS became the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_pair_windows_with_the_embedded_window() {
    channel_pairs(support::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_pair_windows_with_redis() {
    let Some(redis) = support::redis("pairs").await else {
        return;
    };
    channel_pairs(Window::Redis(redis.clone())).await;
    assert!(redis.clear().await.unwrap() > 0);
}

async fn near_duplicates(window: Window) {
    let config = GatewayConfig {
        near: Some(NearConfig {
            threshold: 0.6,
            keep: 16,
        }),
        ..GatewayConfig::default()
    };
    let server = support::start(window, config, None).await;
    let first = json!({"channel": "sms", "from": "(201) 309-3185",
        "text": "Where is my order 4471?", "message_id": "n-1", "conversation_id": "conv-n-1"});
    let (_, a) = server.post(&first).await;
    assert_eq!(a["decision"], "PROCESS");
    assert!(a["near_duplicate_of"].is_null());
    // The same customer by e-mail, with a typo: still PROCESS, but flagged.
    let typo = json!({"channel": "email", "from": "alex.brooks2@example.com",
        "text": "where is my ordr 4471", "message_id": "n-2"});
    let (_, b) = server.post(&typo).await;
    assert_eq!(b["decision"], "PROCESS");
    let near = &b["near_duplicate_of"];
    assert_eq!(near["message_id"], "n-1", "{b}");
    assert_eq!(near["conversation_id"], "conv-n-1");
    assert_eq!(near["channel"], "sms");
    let similarity = near["similarity"].as_f64().unwrap();
    assert!((0.6..1.0).contains(&similarity), "{similarity}");
    // An exact duplicate is a SUPPRESS, not a near-duplicate.
    let (_, c) = server.post(&first).await;
    assert_eq!(c["decision"], "SUPPRESS");
    assert!(c["near_duplicate_of"].is_null());
    // Another question, and another customer with the same question: not flagged.
    let other =
        json!({"channel": "sms", "from": "(201) 309-3185", "text": "Please close my account"});
    let (_, d) = server.post(&other).await;
    assert!(d["near_duplicate_of"].is_null(), "{d}");
    let stranger =
        json!({"channel": "sms", "from": "+12025550199", "text": "where is my ordr 4471"});
    let (_, e) = server.post(&stranger).await;
    assert_eq!(e["decision"], "PROCESS");
    assert!(e["near_duplicate_of"].is_null(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_duplicates_are_flagged_with_the_embedded_window() {
    near_duplicates(support::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_duplicates_are_flagged_with_redis() {
    let Some(redis) = support::redis("near").await else {
        return;
    };
    near_duplicates(Window::Redis(redis.clone())).await;
    assert!(redis.clear().await.unwrap() > 0);
}

#[tokio::test]
async fn near_duplicates_are_off_by_default() {
    let server = support::start(support::embedded(), GatewayConfig::default(), None).await;
    for (id, text) in [
        ("o-1", "Where is my order 4471?"),
        ("o-2", "where is my ordr 4471"),
    ] {
        let body =
            json!({"channel": "sms", "from": "+12013093185", "text": text, "message_id": id});
        let (_, answer) = server.post(&body).await;
        assert_eq!(answer["decision"], "PROCESS");
        assert!(answer["near_duplicate_of"].is_null(), "{answer}");
    }
}
