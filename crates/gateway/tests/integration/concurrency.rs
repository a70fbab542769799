//! 1,000 concurrent identical messages give exactly one PROCESS.

use std::time::Duration;

use dedupd_gateway::GatewayConfig;
use dedupd_store::window::Window;
use serde_json::{Value, json};

use crate::support::{self, Server};

/// Fires `n` copies of one message, spread over `servers`, all at once; returns the decisions.
async fn burst(servers: &[&Server], n: usize) -> Vec<String> {
    let body = json!({"channel": "sms", "from": "+12015550142", "text": "Is my order on its way?"});
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let server = servers[i % servers.len()];
            let url = format!("{}/v1/messages", server.base);
            let http = server.http.clone();
            let mut body = body.clone();
            body["message_id"] = format!("copy-{i}").into();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let r = http.post(url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let v: Value = r.json().await.unwrap();
                v["decision"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count(decisions: &[String], which: &str) -> usize {
    decisions.iter().filter(|d| *d == which).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_copies_one_process_embedded() {
    let server = support::start(support::embedded(), GatewayConfig::default(), None).await;
    let decisions = burst(&[&server], 1000).await;
    assert_eq!(count(&decisions, "PROCESS"), 1);
    assert_eq!(count(&decisions, "SUPPRESS"), 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_copies_one_process_across_two_gateways_on_redis() {
    let Some(redis) = support::redis("burst").await else {
        return;
    };
    // Two gateways, each with its own connection, sharing one prefix.
    let mut config = dedupd_store::window::RedisWindowConfig::new(support::redis_url());
    config.prefix = redis.key(&[0; 32]).split('{').next().unwrap().to_owned();
    config.timeout = Duration::from_secs(2);
    let other = dedupd_store::window::RedisWindow::new(&config).unwrap();
    let a = support::start(Window::Redis(redis.clone()), GatewayConfig::default(), None).await;
    let b = support::start(Window::Redis(other), GatewayConfig::default(), None).await;
    let decisions = burst(&[&a, &b], 1000).await;
    assert_eq!(count(&decisions, "PROCESS"), 1);
    assert_eq!(count(&decisions, "SUPPRESS"), 999);
    assert_eq!(
        redis.clear().await.unwrap(),
        1,
        "one key for one fingerprint"
    );
}
