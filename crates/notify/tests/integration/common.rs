//! Shared pieces: a running API over a chosen backend, a local HTTP provider that counts
//! deliveries per key (and dedupes on it), and an emulator for the agentless provider.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, TimeZone, Utc};
use dedupd_core::notification::Channel;
use dedupd_emulator::{EmulatorConfig, RunningEmulator};
use dedupd_genesys::seams::notify::AgentlessSender;
use dedupd_genesys::{ClientConfig, Endpoint, GenesysClient};
use dedupd_notify::{
    Clock, HttpProvider, NotificationSender, NotifyApi, NotifyConfig, ProviderConfig, Relay, app,
};
use dedupd_store::outbox::{EmbeddedOutbox, Outbox, PgOutbox, pg_test_url};
use serde_json::Value;

pub(crate) const CLIENT_ID: &str = "dedupd-demo";
pub(crate) const CLIENT_SECRET: &str = "dedupd-demo-secret";
pub(crate) const FROM: &str = "+13175550100";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Embedded,
    Postgres,
}

pub(crate) const BACKENDS: [Backend; 2] = [Backend::Embedded, Backend::Postgres];

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap()
}

/// An outbox of `backend`, or `None` when PostgreSQL is absent outside CI.
pub(crate) async fn outbox(backend: Backend, dir: &std::path::Path) -> Option<Outbox> {
    match backend {
        Backend::Embedded => Some(Outbox::Embedded(
            EmbeddedOutbox::open(dir, Default::default()).unwrap(),
        )),
        Backend::Postgres => {
            let name = format!("t_notify_{:016x}", fastrand::u64(..));
            match PgOutbox::connect_new_schema(&pg_test_url(), &name, 8, Default::default()).await {
                Ok(pg) => Some(Outbox::Postgres(pg)),
                Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                    eprintln!("skipping the PostgreSQL half: {e}");
                    None
                }
                Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
            }
        }
    }
}

pub(crate) async fn drop_outbox(o: &Outbox) {
    if let Outbox::Postgres(pg) = o {
        pg.drop_schema().await.unwrap();
    }
}

/// A config with the local provider `local` for sms and email.
pub(crate) fn config() -> NotifyConfig {
    let mut cfg = NotifyConfig::default();
    cfg.providers.insert(
        "local".into(),
        ProviderConfig::Http {
            url: "http://unused".into(),
            token_env: None,
            dedupes_on_key: true,
        },
    );
    cfg.providers.insert(
        "genesys".into(),
        ProviderConfig::GenesysAgentless {
            from: [(Channel::Sms, FROM.to_owned())].into(),
        },
    );
    cfg.channels.insert(Channel::Sms, "local".into());
    cfg.channels.insert(Channel::Email, "local".into());
    cfg.relay.base_delay_ms = 1000;
    cfg.relay.max_delay_ms = 4000;
    cfg.relay.max_attempts = 4;
    cfg.relay.request_timeout_secs = 5;
    cfg.relay.lease_secs = 30;
    cfg.validate().unwrap();
    cfg
}

/// The API on an ephemeral port.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) api: NotifyApi,
    pub(crate) clock: Clock,
    pub(crate) http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) raw: String,
}

impl Resp {
    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.raw);
        &self.body
    }

    /// Asserts the error envelope with `status` and `code`.
    #[track_caller]
    pub(crate) fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.raw);
        let e = &self.body["error"];
        assert_eq!(e["code"], code, "body: {}", self.raw);
        assert_eq!(e["status"], status);
        assert!(e["message"].is_string(), "body: {}", self.raw);
        assert!(
            self.headers
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json")),
            "the envelope is JSON"
        );
        e
    }
}

impl Api {
    pub(crate) async fn start(backend: Backend, cfg: &NotifyConfig) -> Option<Api> {
        let dir = tempfile::tempdir().unwrap();
        let outbox = outbox(backend, dir.path()).await?;
        let clock = Clock::manual(t0());
        let api = NotifyApi::new(outbox, cfg, clock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app(api.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Some(Api {
            base: format!("http://{addr}"),
            api,
            clock,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        self.api.outbox()
    }

    pub(crate) async fn post_raw(
        &self,
        key: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut rb = self
            .http
            .post(format!("{}/v1/notifications", self.base))
            .body(body);
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        if let Some(ct) = content_type {
            rb = rb.header("Content-Type", ct);
        }
        resp(rb.send().await.unwrap()).await
    }

    pub(crate) async fn post(&self, key: &str, body: &Value) -> Resp {
        self.post_raw(Some(key), Some("application/json"), body.to_string())
            .await
    }

    pub(crate) async fn get(&self, path: &str) -> Resp {
        resp(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) fn relay(
        &self,
        providers: BTreeMap<String, Arc<dyn NotificationSender>>,
        cfg: &NotifyConfig,
    ) -> Relay {
        Relay::new(
            self.outbox().clone(),
            providers,
            cfg.relay.clone(),
            self.clock.clone(),
        )
    }
}

pub(crate) async fn resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.text().await.unwrap();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        raw,
    }
}

/// What the local provider does with the next request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// Deliver, then answer 500 (the sender cannot know it went out).
    ApplyThen500,
    /// 429 with this `Retry-After`, nothing delivered.
    TooMany(u64),
    /// 503, nothing delivered.
    Unavailable,
    /// 400 with this message, nothing delivered.
    Reject(&'static str),
    /// No answer at all (the sender's timeout fires), nothing delivered.
    Hang,
}

#[derive(Default)]
pub(crate) struct ProviderState {
    /// Idempotency-Key → what its next requests meet.
    pub(crate) faults: HashMap<String, VecDeque<Fault>>,
    /// Idempotency-Key → messages that reached the customer (the provider dedupes: ≤ 1).
    pub(crate) delivered: HashMap<String, u32>,
    /// Idempotency-Key → requests received.
    pub(crate) requests: HashMap<String, u32>,
    /// Requests without a key.
    pub(crate) keyless: u32,
    /// While true, every request gets a 503 and nothing is delivered (a dead gateway).
    pub(crate) down: bool,
}

/// A local gateway that dedupes on `Idempotency-Key`, counting deliveries per key.
#[derive(Clone)]
pub(crate) struct LocalProvider {
    pub(crate) url: String,
    pub(crate) state: Arc<Mutex<ProviderState>>,
}

async fn provider_handler(
    State(st): State<Arc<Mutex<ProviderState>>>,
    headers: HeaderMap,
) -> Response {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        st.lock().unwrap().keyless += 1;
        return (StatusCode::BAD_REQUEST, "{\"message\":\"no key\"}").into_response();
    };
    let fault = {
        let mut s = st.lock().unwrap();
        *s.requests.entry(key.clone()).or_default() += 1;
        if s.down {
            return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        }
        s.faults.get_mut(&key).and_then(VecDeque::pop_front)
    };
    if fault == Some(Fault::Hang) {
        std::future::pending::<()>().await;
    }
    let mut s = st.lock().unwrap();
    let deliver = |s: &mut ProviderState| {
        let n = s.delivered.entry(key.clone()).or_default();
        if *n == 0 {
            *n = 1;
        }
    };
    match fault {
        None => {
            deliver(&mut s);
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                format!("{{\"id\":\"pm-{key}\"}}"),
            )
                .into_response()
        }
        Some(Fault::ApplyThen500) => {
            deliver(&mut s);
            (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response()
        }
        Some(Fault::TooMany(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Some(Fault::Unavailable) => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        Some(Fault::Hang) => (StatusCode::GATEWAY_TIMEOUT, "never answered").into_response(),
        Some(Fault::Reject(msg)) => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            format!("{{\"error\":{{\"message\":\"{msg}\"}}}}"),
        )
            .into_response(),
    }
}

impl LocalProvider {
    pub(crate) async fn start() -> LocalProvider {
        let state = Arc::new(Mutex::new(ProviderState::default()));
        let app = Router::new()
            .route("/send", post(provider_handler))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        LocalProvider {
            url: format!("http://{addr}/send"),
            state,
        }
    }

    /// Queues a fault for the next request with key `id` (a notification's id).
    pub(crate) fn push(&self, id: &str, f: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(id.to_owned())
            .or_default()
            .push_back(f);
    }

    pub(crate) fn provider(&self) -> Arc<dyn NotificationSender> {
        self.provider_with_timeout(Duration::from_secs(5))
    }

    /// The provider with its own request timeout (short, for [`Fault::Hang`]).
    pub(crate) fn provider_with_timeout(&self, timeout: Duration) -> Arc<dyn NotificationSender> {
        Arc::new(HttpProvider::new(self.url.clone(), None, true, timeout).unwrap())
    }

    /// Takes the gateway down (every request 503) or brings it back.
    pub(crate) fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Requests received, all keys together.
    pub(crate) fn total_requests(&self) -> u32 {
        self.state.lock().unwrap().requests.values().sum()
    }

    pub(crate) fn delivered(&self, id: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .delivered
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn requests(&self, id: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .requests
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

/// An emulator with a fast rate limit, and an agentless provider on it.
pub(crate) async fn emulator() -> (RunningEmulator, Arc<dyn NotificationSender>) {
    let emu = RunningEmulator::start(EmulatorConfig {
        rate_limit_per_minute: 60_000,
        clients: vec![(CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())],
        seed: 7,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = ClientConfig::new(
        Endpoint::base_url(&emu.base_url()).unwrap(),
        CLIENT_ID,
        CLIENT_SECRET.to_owned(),
    );
    cfg.retry = dedupd_genesys::RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(5),
        max_attempts: 3,
    };
    cfg.request_timeout = Duration::from_secs(5);
    let client = GenesysClient::new(cfg).await.unwrap();
    let provider: Arc<dyn NotificationSender> = Arc::new(AgentlessSender::new(
        client,
        [(Channel::Sms, FROM.to_owned())].into(),
    ));
    (emu, provider)
}
