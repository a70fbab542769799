//! The gateway's forwarder on the Genesys seam (`dedupd_genesys::seams::messaging`), against
//! the Genesys emulator over real HTTP: PROCESS messages become inbound Open Messaging
//! messages, SUPPRESS messages do not, and the first conversation's customer gets the duplicate
//! attributes, through injected 429s and 503s; a 504 whose work was done is not resent. (Here,
//! where the gateway and the platform crate meet: the gateway does not depend on the platform.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dedupd_emulator::{EmulatorConfig, FaultKind, FaultProfile, FaultRule, RunningEmulator};
use dedupd_gateway::forward::{ATTR_COUNT, ATTR_LAST_AT, ATTR_LAST_CHANNEL};
use dedupd_gateway::{ContactIndex, ForwardConfig, Forwarder, Gateway, GatewayConfig};
use dedupd_genesys::seams::messaging::OpenMessagingIngress;
use dedupd_genesys::{ClientConfig, Endpoint, GenesysClient, RetryPolicy, SecretString};
use dedupd_http::{self as common, Auth, ServiceOptions};
use dedupd_store::window::{EmbeddedWindow, Window};
use serde_json::{Value, json};

const CLIENT_ID: &str = "gw-client";
const CLIENT_SECRET: &str = "gw-S3cr3t-never-in-logs";
const INTEGRATION: &str = "integration-gw";

async fn emulator(rules: Vec<FaultRule>) -> RunningEmulator {
    RunningEmulator::start(EmulatorConfig {
        rate_limit_per_minute: 60_000,
        token_ttl: Duration::from_secs(3600),
        clients: vec![(CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())],
        faults: FaultProfile {
            rules,
            ..FaultProfile::default()
        },
        seed: 11,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

fn embedded() -> Window {
    Window::Embedded(Arc::new(EmbeddedWindow::new(100_000)))
}

struct Server {
    base: String,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn post(&self, body: &Value) -> (u16, Value) {
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
}

/// A gateway over `window` with the gateway's contact fixture, forwarding through `forwarder`.
async fn start(window: Window, forwarder: Forwarder) -> Server {
    let contacts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/fixtures/contacts.ndjson");
    let contacts = ContactIndex::load_ndjson(&contacts, "US".parse().ok())
        .unwrap()
        .0;
    let gateway = Gateway::new(GatewayConfig::default(), contacts, window, Some(forwarder));
    let app = common::compose(
        vec![gateway.api(Auth::open(1 << 20))],
        gateway.health(),
        common::metrics::install(),
        &ServiceOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        task,
    }
}

async fn ingress(emu: &RunningEmulator) -> Arc<OpenMessagingIngress> {
    Arc::new(OpenMessagingIngress::new(client(emu).await, INTEGRATION))
}

async fn client(emu: &RunningEmulator) -> GenesysClient {
    let mut config = ClientConfig::new(
        Endpoint::base_url(&emu.base_url()).unwrap(),
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
    );
    config.requests_per_minute = 60_000;
    config.retry = RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_total: Duration::from_secs(20),
        max_attempts: 12,
    };
    config.request_timeout = Duration::from_secs(5);
    GenesysClient::new(config).await.unwrap()
}

fn rule(kind: FaultKind, probability: f64, method: &str, path: &str) -> FaultRule {
    FaultRule {
        kind,
        probability,
        methods: vec![method.to_owned()],
        paths: vec![path.to_owned()],
        statuses: None,
        delay_ms: None,
        burst: None,
        retry_after_secs: None,
    }
}

async fn conversations(emu: &RunningEmulator) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{}/__emulator/conversations", emu.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body.as_array().unwrap().clone()
}

fn customer_attributes(conversation: &Value) -> Value {
    conversation["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "customer")
        .map(|p| p["attributes"].clone())
        .unwrap_or(Value::Null)
}

async fn wait_for<F: Fn() -> bool>(what: &str, ok: F) {
    for _ in 0..600 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_is_forwarded_suppress_is_recorded_on_the_first_conversation() {
    let mut throttled = rule(
        FaultKind::RateLimitBurst,
        0.3,
        "POST",
        "/api/v2/conversations/messages/*/inbound/open/message",
    );
    throttled.retry_after_secs = Some(1);
    let mut flaky = rule(
        FaultKind::ServerError,
        0.5,
        "PATCH",
        "/api/v2/conversations/*/participants/*/attributes",
    );
    flaky.statuses = Some(vec![503]);
    let emu = emulator(vec![throttled, flaky]).await;
    let window = embedded();
    let (forwarder, _worker) = Forwarder::start(
        ingress(&emu).await,
        window.clone(),
        ForwardConfig::default(),
    );
    let server = start(window, forwarder.clone()).await;

    // C00002 by SMS, then the same question by e-mail and by chat; another customer once.
    let first = json!({"channel": "sms", "from": "(201) 309-3185", "text": "Where is my refund?", "message_id": "m-1"});
    let by_mail = json!({"channel": "email", "from": "alex.brooks2@example.com", "text": "<p>Where is my refund?</p>"});
    let by_chat =
        json!({"channel": "chat", "from": "+12013093185", "text": "**where is my REFUND**"});
    let other =
        json!({"channel": "sms", "from": "+12017485260", "text": "My card was charged twice"});
    assert_eq!(server.post(&first).await.1["decision"], "PROCESS");
    assert_eq!(server.post(&by_mail).await.1["decision"], "SUPPRESS");
    assert_eq!(server.post(&by_chat).await.1["decision"], "SUPPRESS");
    assert_eq!(server.post(&other).await.1["decision"], "PROCESS");

    wait_for("both PROCESS messages sent", || forwarder.stats().sent == 2).await;
    let found = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for _ in 0..600 {
        let convs = conversations(&emu).await;
        let done = convs
            .iter()
            .any(|c| customer_attributes(c)[ATTR_COUNT] == "2");
        *found.lock().unwrap() = convs;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let convs = found.lock().unwrap().clone();
    assert_eq!(
        convs.len(),
        2,
        "one conversation per PROCESS message, none for SUPPRESS"
    );
    let with_dups: Vec<&Value> = convs
        .iter()
        .filter(|c| customer_attributes(c)[ATTR_COUNT] == "2")
        .collect();
    assert_eq!(with_dups.len(), 1, "{convs:?}");
    let attributes = customer_attributes(with_dups[0]);
    assert_eq!(attributes[ATTR_LAST_CHANNEL], "chat");
    let at = attributes[ATTR_LAST_AT].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'),
        "{at}"
    );
    // The first conversation got exactly the first message's text, once.
    let messages = with_dups[0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["text"], "Where is my refund?");
    assert_eq!(forwarder.stats().failed, 0);
    // The window learned the conversation: a later duplicate names it.
    let (_, late) = server.post(&first).await;
    assert_eq!(late["duplicate_of"]["conversation_id"], with_dups[0]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_whose_work_was_done_is_not_resent() {
    let emu = emulator(vec![rule(
        FaultKind::GatewayTimeoutApplied,
        1.0,
        "POST",
        "/api/v2/conversations/messages/*/inbound/open/message",
    )])
    .await;
    let window = embedded();
    let (forwarder, _worker) = Forwarder::start(
        ingress(&emu).await,
        window.clone(),
        ForwardConfig::default(),
    );
    let server = start(window, forwarder.clone()).await;
    let msg = json!({"channel": "sms", "from": "+12015550177", "text": "Hello?"});
    assert_eq!(server.post(&msg).await.1["decision"], "PROCESS");
    wait_for("the outcome-unknown forward", || {
        forwarder.stats().outcome_unknown == 1
    })
    .await;
    let convs = conversations(&emu).await;
    assert_eq!(convs.len(), 1, "the platform applied it once");
    assert_eq!(
        convs[0]["messages"].as_array().unwrap().len(),
        1,
        "and it was not resent"
    );
    assert_eq!(forwarder.stats().sent, 0);
}
