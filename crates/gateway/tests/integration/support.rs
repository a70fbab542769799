//! Starting gateways and talking to them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dedupd_gateway::{ContactIndex, Forwarder, Gateway, GatewayConfig};
use dedupd_http::{Auth, ServiceOptions};
use dedupd_store::window::{EmbeddedWindow, RedisWindow, RedisWindowConfig, Window};
use serde_json::Value;

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub(crate) fn contacts() -> ContactIndex {
    let us = "US".parse().ok();
    ContactIndex::load_ndjson(&fixture("contacts.ndjson"), us)
        .unwrap()
        .0
}

pub(crate) fn embedded() -> Window {
    Window::Embedded(Arc::new(EmbeddedWindow::new(100_000)))
}

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis window under a fresh prefix, or `None` (skip) without Redis outside CI.
pub(crate) async fn redis(test: &str) -> Option<RedisWindow> {
    redis_at(&redis_url(), test).await
}

pub(crate) fn unique_prefix(test: &str) -> String {
    format!(
        "dedupd-gw-test:{test}:{}:{}:",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

pub(crate) async fn redis_at(url: &str, test: &str) -> Option<RedisWindow> {
    let mut config = RedisWindowConfig::new(url);
    config.prefix = unique_prefix(test);
    config.timeout = Duration::from_secs(2);
    let window = RedisWindow::new(&config).unwrap();
    if window.ping().await {
        return Some(window);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "Redis is required under CI=true (REDIS_URL)"
    );
    eprintln!("skipping {test}: no Redis at REDIS_URL");
    None
}

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn serve(gateway: Gateway, auth: Auth) -> Server {
    let app = dedupd_http::compose(
        vec![gateway.api(auth)],
        gateway.health(),
        dedupd_http::metrics::install(),
        &ServiceOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        task,
    }
}

pub(crate) async fn start(
    window: Window,
    config: GatewayConfig,
    forwarder: Option<Forwarder>,
) -> Server {
    let gateway = Gateway::new(config, contacts(), window, forwarder);
    serve(gateway, Auth::open(1 << 20)).await
}

impl Server {
    pub(crate) async fn post(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/messages", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The sample stream: each line as a `POST /v1/messages` body (message_id = `seq-<n>`), with
/// its expected decision and the seq of its first message.
pub(crate) struct Sample {
    pub(crate) seq: u64,
    pub(crate) body: Value,
    pub(crate) expect: String,
    pub(crate) dup_of: Option<u64>,
}

pub(crate) fn samples() -> Vec<Sample> {
    let text = std::fs::read_to_string(fixture("messages.ndjson")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let seq = v["seq"].as_u64().unwrap();
            let mut body = serde_json::json!({
                "channel": v["channel"],
                "from": v["address"],
                "message_id": format!("seq-{seq}"),
            });
            if let Some(b64) = v.get("body_latin1_b64").and_then(Value::as_str) {
                body["body_base64"] = b64.into();
                body["charset"] = "iso-8859-1".into();
            } else {
                body["text"] = v["body"].clone();
            }
            Sample {
                seq,
                body,
                expect: v["expect"].as_str().unwrap().to_owned(),
                dup_of: v["dup_of"].as_u64(),
            }
        })
        .collect()
}
