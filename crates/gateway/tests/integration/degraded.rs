//! Redis unreachable: the configured policy decides, and the gateway recovers by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dedupd_gateway::{DegradedPolicy, GatewayConfig};
use dedupd_store::window::{RedisWindow, RedisWindowConfig, Window};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::support;

/// A TCP proxy to Redis that can be cut (existing connections dropped, new ones refused to
/// relay) and restored.
struct Switch {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

async fn proxy_to(target: String) -> Switch {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let up = Arc::new(AtomicBool::new(true));
    let cut = Arc::new(tokio::sync::Notify::new());
    let (up2, cut2) = (up.clone(), cut.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if !up2.load(Ordering::SeqCst) {
                drop(client);
                continue;
            }
            let target = target.clone();
            let cut = cut2.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    () = cut.notified() => {}
                }
            });
        }
    });
    Switch { addr, up, cut }
}

impl Switch {
    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn redis_host_port() -> String {
    let url = support::redis_url();
    let rest = url.trim_start_matches("redis://");
    let hostport = rest.split('/').next().unwrap();
    hostport.rsplit('@').next().unwrap().to_owned()
}

fn msg(n: u32) -> serde_json::Value {
    json!({"channel": "chat", "from": "user-7", "text": format!("question {n}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_and_flag_while_redis_is_down_then_recover() {
    if support::redis("degraded-probe").await.is_none() {
        return;
    }
    let switch = proxy_to(redis_host_port()).await;
    let mut config = RedisWindowConfig::new(format!("redis://{}", switch.addr));
    config.prefix = support::unique_prefix("degraded");
    config.timeout = Duration::from_millis(300);
    let window = RedisWindow::new(&config).unwrap();
    let gateway_config = GatewayConfig {
        backend_retry_after: Duration::from_millis(100),
        ..GatewayConfig::default()
    };
    let server = support::start(Window::Redis(window.clone()), gateway_config, None).await;

    let (_, a) = server.post(&msg(1)).await;
    assert_eq!(
        (a["decision"].as_str(), a["degraded"].as_bool()),
        (Some("PROCESS"), Some(false))
    );
    let (_, b) = server.post(&msg(1)).await;
    assert_eq!(b["decision"], "SUPPRESS");

    switch.down();
    // Every message is processed and flagged, never lost, never an error.
    for _ in 0..3 {
        let (status, d) = server.post(&msg(1)).await;
        assert_eq!(status, 200);
        assert_eq!(d["decision"], "PROCESS");
        assert_eq!(d["degraded"], true);
    }
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 200, "degraded is still serving: {ready}");
    assert!(ready.contains("degraded"), "{ready}");

    switch.restore();
    // Recovery needs no restart: once the pause is over the backend is tried again.
    let mut recovered = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, d) = server.post(&msg(1)).await;
        if d["degraded"] == false {
            recovered = Some(d);
            break;
        }
    }
    let d = recovered.expect("the gateway went back to Redis by itself");
    assert_eq!(
        d["decision"], "SUPPRESS",
        "the window kept the first message"
    );
    let (_, after) = server.post(&msg(2)).await;
    assert_eq!(
        (after["decision"].as_str(), after["degraded"].as_bool()),
        (Some("PROCESS"), Some(false))
    );
    window.clear().await.unwrap();
}

#[tokio::test]
async fn reject_policy_answers_503_with_retry_after() {
    let mut config = RedisWindowConfig::new("redis://127.0.0.1:1");
    config.timeout = Duration::from_millis(200);
    let window = RedisWindow::new(&config).unwrap();
    let gateway_config = GatewayConfig {
        degraded_policy: DegradedPolicy::Reject,
        ..GatewayConfig::default()
    };
    let server = support::start(Window::Redis(window), gateway_config, None).await;
    let r = server
        .http
        .post(format!("{}/v1/messages", server.base))
        .json(&msg(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let (status, _) = server.get("/readyz").await;
    assert_eq!(status, 503);
}
