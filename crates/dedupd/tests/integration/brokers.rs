//! Events in through the user's brokers (issue 17), against the real NATS JetStream
//! (`NATS_URL`, default `nats://127.0.0.1:4222`) and RabbitMQ (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`): per broker 1,000 events plus 20 % duplicates
//! (same key, same content), 2 conflicts (a key again with other content) and 10 malformed
//! events, published in three waves; `dedupd serve` consumes both, and is `kill -9`-ed twice
//! mid-stream (at seeded points) and restarted. Then: exactly 2,000 notifications in the
//! outbox, each delivered once at the provider (which dedupes on `Idempotency-Key`), every
//! malformed event and every conflict in its dead letter with its reason, nothing left
//! unacknowledged; and every status event (accepted, delivered) of every notification published
//! at least once to the NATS subject, the RabbitMQ exchange and the signed webhook, with one id
//! per transition. Each run has its own stream, subjects, exchange and queues, deleted at the
//! end.
//! Under `CI=true` a broker that cannot be reached fails the test; else it is skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::channel::{
    BasicConsumeArguments, Channel, ExchangeDeclareArguments, ExchangeDeleteArguments,
    ExchangeType, QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use async_nats::jetstream::{self, consumer::pull, stream};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use dedupd_core::notification::Status;
use dedupd_store::outbox::{EmbeddedOutbox, OutboxStore};
use futures_util::StreamExt;
use serde_json::json;

const EVENTS: u64 = 1_000;
const DUPLICATES: u64 = 200;
const MALFORMED: u64 = 10;
const CONFLICTS: u64 = 2;

/// Idempotency-Key → requests seen (the provider delivers the first, dedupes the rest).
type Seen = Arc<Mutex<HashMap<String, u32>>>;

async fn provider(State(seen): State<Seen>, headers: HeaderMap) -> Response {
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "no key").into_response();
    };
    *seen.lock().unwrap().entry(key.to_owned()).or_default() += 1;
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        format!("{{\"id\":\"pm-{key}\"}}"),
    )
        .into_response()
}

const HOOK_SECRET: &str = "brokers-test-hook-secret";

/// Event id → (notification id, transition, deliveries) at the webhook; bad signatures counted.
#[derive(Default)]
struct Hooked {
    events: HashMap<String, (String, String, u32)>,
    bad_signatures: u32,
}

async fn webhook(
    State(hooked): State<Arc<Mutex<Hooked>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ts: i64 = h("dedupd-timestamp").parse().unwrap_or(0);
    let want = dedupd_broker::publish::signature(HOOK_SECRET, ts, &body);
    let mut s = hooked.lock().unwrap();
    if h("dedupd-signature") != want {
        s.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let e: dedupd_store::outbox::StatusEvent = serde_json::from_slice(&body).unwrap();
    assert_eq!(h("dedupd-event-id"), e.id);
    s.events
        .entry(e.id.clone())
        .or_insert((e.notification_id.clone(), e.transition.clone(), 0))
        .2 += 1;
    StatusCode::NO_CONTENT
}

/// Checks a sink's status events: every notification's `accepted` and `delivered` present, one
/// id per (notification, transition) and one (notification, transition) per id.
fn check_status_events(sink: &str, events: &[(String, String, String)], ids: &BTreeSet<String>) {
    let mut by_id: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut by_transition: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    for (id, notification, transition) in events {
        let prev = by_id.insert(id, (notification, transition));
        assert!(
            prev.is_none_or(|p| p == (notification.as_str(), transition.as_str())),
            "{sink}: event id {id} names two transitions"
        );
        by_transition
            .entry((notification, transition))
            .or_default()
            .insert(id);
    }
    for ((n, t), set) in &by_transition {
        assert_eq!(set.len(), 1, "{sink}: {n} {t} has several ids: {set:?}");
    }
    for id in ids {
        for t in ["accepted", "delivered"] {
            assert!(
                by_transition.contains_key(&(id.as_str(), t)),
                "{sink}: no `{t}` event for {id}"
            );
        }
    }
}

fn required(what: &str, e: impl std::fmt::Display) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI=true: {e}");
    }
    eprintln!("skipping: {what} is not reachable ({e})");
    false
}

/// One event of the run: what is published, and what must come of it.
#[derive(Debug, Clone)]
struct Published {
    key: Option<String>,
    body: Vec<u8>,
}

fn good(i: u64, order: u64) -> Published {
    Published {
        key: Some(format!("evt-{i}")),
        body: serde_json::to_vec(&json!({
            "customer": {"id": format!("C-{i}"), "email": format!("customer{i}@example.com")},
            "order": {"id": order},
        }))
        .unwrap(),
    }
}

/// The malformed events: distinct bodies, each refused for a stated reason.
fn malformed(n: u64) -> (Published, &'static str) {
    let key = Some(format!("bad-{n}"));
    match n % 4 {
        0 => (
            Published {
                key,
                body: format!("not json {n}").into_bytes(),
            },
            "body",
        ),
        1 => (
            Published {
                key,
                body: serde_json::to_vec(&json!({"customer": {"id": format!("X-{n}")}, "order": {"id": n}}))
                    .unwrap(),
            },
            "to",
        ),
        2 => (
            Published {
                key,
                body: serde_json::to_vec(
                    &json!({"customer": {"email": format!("not-an-address-{n}")}, "order": {"id": n}}),
                )
                .unwrap(),
            },
            "to",
        ),
        _ => (
            Published {
                key: None,
                body: serde_json::to_vec(
                    &json!({"customer": {"email": format!("nokey{n}@example.com")}, "order": {"id": n}}),
                )
                .unwrap(),
            },
            "key",
        ),
    }
}

/// The three waves of one broker: 40 %, 40 %, 20 % of the good events; duplicates of earlier
/// and same-wave events mixed in; malformed events spread; conflicts in the last wave.
fn waves() -> [Vec<Published>; 3] {
    let mut w: [Vec<Published>; 3] = Default::default();
    let wave_of = |i: u64| match i * 10 / EVENTS {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    };
    for i in 0..EVENTS {
        w[wave_of(i)].push(good(i, 1000 + i));
        if i % 5 == 0 {
            // A duplicate: in the same wave right away (i % 10 == 0, concurrent with the
            // first) or in the next wave (a producer's late re-publish).
            let dup_wave = if i % 10 == 0 {
                wave_of(i)
            } else {
                (wave_of(i) + 1).min(2)
            };
            w[dup_wave].push(good(i, 1000 + i));
        }
    }
    for n in 0..MALFORMED {
        let (p, _) = malformed(n);
        w[(n % 3) as usize].push(p);
    }
    for c in 0..CONFLICTS {
        // The key of an event of the first wave with other content.
        w[2].push(good(c * 7, 999_000 + c));
    }
    w
}

fn config(provider_url: &str, hook_url: &str, names: &Names) -> String {
    let map = r#"[events.source.map]
channel = "email"
to = "/customer/email"
template = "Order {{order}} has shipped"
params = { order = "/order/id" }
customer_id = "/customer/id"
event_type = "order_shipped"
"#;
    format!(
        r#"
[notifications]
guard = "off"
[notifications.channels]
email = "local"
[notifications.providers.local]
type = "http"
url = "{provider_url}"
[notifications.relay]
base_delay_ms = 50
max_delay_ms = 500
lease_secs = 3
request_timeout_secs = 2
batch = 64
poll_ms = 20

[events]
max_in_flight = 32

[events.out]
nats_subject = "{nats_status}"
amqp_exchange = "{exchange}"
poll_ms = 20
[[events.out.webhook]]
name = "test"
url = "{hook_url}"
secret_env = "DEDUPD_TEST_HOOK_SECRET"
max_failures = 1000

[[events.source]]
name = "nats-orders"
type = "nats"
stream = "{stream}"
subject = "{subject}"
durable = "dedupd"
dead_letter = "{nats_dead}"
key = "header:Event-Id"
key_prefix = "nats:"
{map}
[[events.source]]
name = "amqp-orders"
type = "amqp"
queue = "{queue}"
dead_letter = "{amqp_dead}"
key = "message_id"
key_prefix = "amqp:"
{map}"#,
        stream = names.stream,
        subject = names.subject,
        nats_dead = names.nats_dead,
        queue = names.queue,
        amqp_dead = names.amqp_dead,
        nats_status = names.nats_status,
        exchange = names.exchange,
    )
}

struct Names {
    stream: String,
    nats_status: String,
    exchange: String,
    amqp_status: String,
    subject: String,
    nats_dead: String,
    queue: String,
    amqp_dead: String,
}

struct Serve {
    cmd: Box<dyn Fn() -> Command + Send>,
    child: Child,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn publish_nats(js: &jetstream::Context, subject: &str, events: &[Published]) {
    let mut acks = Vec::with_capacity(events.len());
    for e in events {
        let mut h = async_nats::HeaderMap::new();
        if let Some(k) = &e.key {
            h.insert("Event-Id", k.as_str());
        }
        acks.push(
            js.publish_with_headers(subject.to_owned(), h, e.body.clone().into())
                .await
                .unwrap(),
        );
    }
    for a in acks {
        a.await.unwrap();
    }
}

async fn publish_amqp(pubs: &dedupd_broker::Confirmed, queue: &str, events: &[Published]) {
    for e in events {
        let mut props = BasicProperties::default();
        props.with_persistence(true);
        if let Some(k) = &e.key {
            props.with_message_id(k);
        }
        pubs.publish("", queue, props, e.body.clone())
            .await
            .unwrap();
    }
}

async fn queue_depth(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
        .await
        .unwrap()
        .map_or(0, |(_, count, _)| count)
}

/// Waits until `cond` holds, polling every 20 ms for at most `limit`; fails with `what()`.
async fn until<F, Fut>(limit: Duration, mut cond: F, what: impl Fn() -> String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header_text(t: &FieldTable, name: &str) -> Option<String> {
    match t.get(&name.try_into().ok()?)? {
        FieldValue::S(s) => Some(s.as_ref().clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_nats_and_rabbitmq_survive_two_kills_exactly_once() {
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let amqp_url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let client = match async_nats::connect(&nats_url).await {
        Ok(c) => c,
        Err(e) => {
            required("NATS (NATS_URL)", e);
            return;
        }
    };
    let conn = match dedupd_broker::AmqpUrl::parse(&amqp_url)
        .unwrap()
        .connect()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            required("RabbitMQ (AMQP_URL)", e);
            return;
        }
    };
    let run = format!("{:012x}", fastrand::u64(..) >> 16);
    let names = Names {
        stream: format!("DEDUPD_T_{run}"),
        nats_status: format!("dedupd.t{run}.status"),
        exchange: format!("dedupd.t{run}.status"),
        amqp_status: format!("dedupd.t{run}.status"),
        subject: format!("dedupd.t{run}.events"),
        nats_dead: format!("dedupd.t{run}.dead"),
        queue: format!("dedupd.t{run}.events"),
        amqp_dead: format!("dedupd.t{run}.dead"),
    };
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: names.stream.clone(),
        subjects: vec![
            names.subject.clone(),
            names.nats_dead.clone(),
            names.nats_status.clone(),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let ch = conn.open_channel(None).await.unwrap();
    for q in [&names.queue, &names.amqp_dead, &names.amqp_status] {
        ch.queue_declare(QueueDeclareArguments::durable_client_named(q))
            .await
            .unwrap();
    }
    ch.exchange_declare(ExchangeDeclareArguments::of_type(
        &names.exchange,
        ExchangeType::Topic,
    ))
    .await
    .unwrap();
    ch.queue_bind(QueueBindArguments::new(
        &names.amqp_status,
        &names.exchange,
        "notification.#",
    ))
    .await
    .unwrap();
    let pubs = dedupd_broker::Confirmed::open(&conn).await.unwrap();

    let seen: Seen = Arc::default();
    let hooked: Arc<Mutex<Hooked>> = Arc::default();
    let hooks = axum::Router::new()
        .route("/hook", axum::routing::post(webhook))
        .with_state(Arc::clone(&hooked));
    let app = axum::Router::new()
        .route("/send", axum::routing::post(provider))
        .with_state(Arc::clone(&seen))
        .merge(hooks);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_url = format!("http://{}/send", listener.local_addr().unwrap());
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("serve.toml");
    std::fs::write(&cfg_path, config(&provider_url, &hook_url, &names)).unwrap();
    let outbox_dir = dir.path().join("outbox");
    let log_path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("brokers-{run}.log"));
    let cmd = {
        let (cfg_path, outbox_dir, log_path) =
            (cfg_path.clone(), outbox_dir.clone(), log_path.clone());
        let (nats_url, amqp_url) = (nats_url.clone(), amqp_url.clone());
        move || {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
            c.args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(&cfg_path)
                .arg("--outbox")
                .arg(&outbox_dir)
                .env("DEDUPD_NATS_URL", &nats_url)
                .env("DEDUPD_AMQP_URL", &amqp_url)
                .env("DEDUPD_TEST_HOOK_SECRET", HOOK_SECRET)
                .env_remove("DEDUPD_POSTGRES_URL")
                .env_remove("DEDUPD_API_TOKEN")
                .env_remove("DEDUPD_WEBHOOK_SECRET")
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log);
            c
        }
    };

    let waves = waves();
    let published: usize = waves.iter().map(Vec::len).sum();
    assert_eq!(
        published as u64,
        EVENTS + DUPLICATES + MALFORMED + CONFLICTS,
        "per broker: the events, 20 % duplicates, the malformed and the conflicts"
    );
    let seed = super::kill_seed();
    let points = super::kill_points(seed, 2, 250);
    let delivered = {
        let seen = Arc::clone(&seen);
        move || seen.lock().unwrap().len() as u64
    };
    let context = |kills: &[u64]| {
        format!(
            "kills after {kills:?} deliveries (DEDUPD_KILL_SEED={seed}); serve's log: {}",
            log_path.display()
        )
    };

    // Wave 1, then serve; killed -9 after a seeded number of deliveries, while wave 2 waits.
    publish_nats(&js, &names.subject, &waves[0]).await;
    publish_amqp(&pubs, &names.queue, &waves[0]).await;
    let mut serve = Serve {
        child: cmd().spawn().unwrap(),
        cmd: Box::new(cmd),
    };
    let mut kills = Vec::new();
    for (wave, point) in [(1usize, points[0]), (2, points[1])] {
        let target = delivered() + 50 + point;
        until(
            Duration::from_secs(90),
            || std::future::ready(delivered() >= target),
            || {
                format!(
                    "no {target} deliveries before kill {wave}; {}",
                    context(&kills)
                )
            },
        )
        .await;
        serve.child.kill().unwrap(); // SIGKILL
        serve.child.wait().unwrap();
        kills.push(delivered());
        // The next wave is published while dedupd is down, then it is started again.
        publish_nats(&js, &names.subject, &waves[wave]).await;
        publish_amqp(&pubs, &names.queue, &waves[wave]).await;
        serve.child = (serve.cmd)().spawn().unwrap();
    }

    // Until every event is worked: 2,000 notifications at the provider, both sources drained
    // and acknowledged, the dead letters in.
    let mut nats_consumer: jetstream::consumer::PullConsumer = js
        .get_stream(&names.stream)
        .await
        .unwrap()
        .get_consumer("dedupd")
        .await
        .unwrap();
    let expected_dead = MALFORMED + CONFLICTS;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = nats_consumer.info().await.unwrap().clone();
        let (queue, dead) = (
            queue_depth(&ch, &names.queue).await,
            u64::from(queue_depth(&ch, &names.amqp_dead).await),
        );
        let hooked_n = hooked.lock().unwrap().events.len() as u64;
        if delivered() == 2 * EVENTS
            && hooked_n >= 4 * EVENTS
            && info.num_pending == 0
            && info.num_ack_pending == 0
            && queue == 0
            && dead >= expected_dead
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} delivered, {hooked_n} status events at the webhook, NATS pending {} \
             unacked {}, AMQP queue {queue} dead {dead}; {}",
            delivered(),
            info.num_pending,
            info.num_ack_pending,
            context(&kills)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info = nats_consumer.info().await.unwrap().clone();
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "NATS: nothing left unacknowledged"
    );

    // The dead letters: every malformed event and every conflict, with its reason.
    let dead_nats: Vec<(BTreeMap<String, String>, Vec<u8>)> = {
        let dl: jetstream::consumer::PullConsumer = js
            .get_stream(&names.stream)
            .await
            .unwrap()
            .create_consumer(pull::Config {
                filter_subject: names.nats_dead.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (out.len() as u64) < expected_dead {
            assert!(
                Instant::now() < deadline,
                "NATS dead letters: {} of {expected_dead}",
                out.len()
            );
            let mut batch = dl.fetch().max_messages(100).messages().await.unwrap();
            while let Some(m) = batch.next().await {
                let m = m.unwrap();
                let h = m
                    .headers
                    .as_ref()
                    .map(|h| {
                        h.iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string(),
                                    v.first().map(|v| v.to_string()).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((h, m.payload.to_vec()));
                m.ack().await.unwrap();
            }
        }
        out
    };
    let dead_amqp: Vec<(BTreeMap<String, String>, Vec<u8>)> = {
        let (_, mut rx) = ch
            .basic_consume_rx(BasicConsumeArguments::new(&names.amqp_dead, "").finish())
            .await
            .unwrap();
        let depth = expected_dead as usize;
        let mut out = Vec::new();
        while out.len() < depth {
            let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the AMQP dead letters")
                .unwrap();
            let props = m.basic_properties.unwrap();
            let table = props.headers().cloned().unwrap_or_else(FieldTable::new);
            let h = [
                dedupd_broker::REASON_HEADER,
                dedupd_broker::CODE_HEADER,
                dedupd_broker::FIELD_HEADER,
            ]
            .iter()
            .filter_map(|n| Some((n.to_string(), header_text(&table, n)?)))
            .collect();
            out.push((h, m.content.unwrap()));
        }
        out
    };
    for (broker, dead) in [("nats", &dead_nats), ("amqp", &dead_amqp)] {
        let mut bodies = BTreeSet::new();
        let mut conflicts = 0;
        for (h, body) in dead {
            let reason = h
                .get(dedupd_broker::REASON_HEADER)
                .cloned()
                .unwrap_or_default();
            let code = h
                .get(dedupd_broker::CODE_HEADER)
                .cloned()
                .unwrap_or_default();
            assert!(
                reason.starts_with("event "),
                "{broker}: a reason naming the event: {h:?}"
            );
            assert!(
                !reason.contains("@example.com"),
                "{broker}: no values in reasons: {reason}"
            );
            if code == "conflict" {
                conflicts += 1;
            }
            bodies.insert(body.clone());
        }
        for n in 0..MALFORMED {
            let (p, field) = malformed(n);
            assert!(
                bodies.contains(&p.body),
                "{broker}: malformed event {n} in the dead letter"
            );
            let (h, _) = dead.iter().find(|(_, b)| *b == p.body).unwrap();
            let f = h
                .get(dedupd_broker::FIELD_HEADER)
                .cloned()
                .unwrap_or_default();
            assert!(
                f.contains(field),
                "{broker}: malformed {n}: field {f:?}, expected {field}"
            );
        }
        assert!(
            conflicts >= CONFLICTS as usize,
            "{broker}: the conflicts recorded: {dead:?}"
        );
    }

    // Stop dedupd; RabbitMQ puts back what a dead consumer held unacknowledged: nothing.
    drop(serve);
    assert_eq!(
        queue_depth(&ch, &names.queue).await,
        0,
        "AMQP: nothing left unacknowledged"
    );

    // Exactly 2,000 notifications, each once at the provider.
    let outbox = EmbeddedOutbox::open(&outbox_dir, Default::default()).unwrap();
    let counts = outbox.counts().await.unwrap();
    assert_eq!(
        counts.values().sum::<u64>(),
        2 * EVENTS,
        "{counts:?}; {}",
        context(&kills)
    );
    let seen = seen.lock().unwrap().clone();
    for prefix in ["nats:", "amqp:"] {
        for i in 0..EVENTS {
            let key = format!("{prefix}evt-{i}");
            let n = outbox
                .get(&key, Utc::now())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key} not accepted; {}", context(&kills)));
            assert!(seen.contains_key(&n.id), "{key}: delivered at the provider");
            assert!(
                matches!(
                    n.status,
                    Status::Delivered | Status::Sending | Status::Pending
                ),
                "{key}: {:?}",
                n.status
            );
            // The conflict's other content was not taken: the first content stands.
            assert!(
                n.request["text"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{}", 1000 + i))
            );
        }
    }
    eprintln!(
        "brokers: {} notifications, {} provider requests for them, kills after {kills:?} deliveries",
        seen.len(),
        seen.values().sum::<u32>()
    );

    // Every status event published at least once to every sink, one id per transition.
    let ids: BTreeSet<String> = {
        let mut ids = BTreeSet::new();
        for prefix in ["nats:", "amqp:"] {
            for i in 0..EVENTS {
                let n = outbox
                    .get(&format!("{prefix}evt-{i}"), Utc::now())
                    .await
                    .unwrap()
                    .unwrap();
                ids.insert(n.id);
            }
        }
        ids
    };
    let from_hook: Vec<(String, String, String)> = {
        let h = hooked.lock().unwrap();
        assert_eq!(h.bad_signatures, 0, "every webhook request is signed");
        h.events
            .iter()
            .map(|(id, (n, t, _))| (id.clone(), n.clone(), t.clone()))
            .collect()
    };
    check_status_events("webhook", &from_hook, &ids);
    let wanted = 2 * ids.len();
    let from_nats = {
        let c: jetstream::consumer::PullConsumer = js
            .get_stream(&names.stream)
            .await
            .unwrap()
            .create_consumer(pull::Config {
                filter_subject: names.nats_status.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut distinct = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while distinct.len() < wanted {
            assert!(
                Instant::now() < deadline,
                "NATS status events: {} of {wanted}",
                distinct.len()
            );
            let mut batch = c.fetch().max_messages(1000).messages().await.unwrap();
            while let Some(m) = batch.next().await {
                let m = m.unwrap();
                let e: dedupd_store::outbox::StatusEvent =
                    serde_json::from_slice(&m.payload).unwrap();
                assert_eq!(e.schema, "dedupd.notification.status/v1");
                distinct.insert(e.id.clone());
                out.push((e.id, e.notification_id, e.transition));
                m.ack().await.unwrap();
            }
        }
        out
    };
    check_status_events("nats", &from_nats, &ids);
    let from_amqp = {
        let (_, mut rx) = ch
            .basic_consume_rx(BasicConsumeArguments::new(&names.amqp_status, "").finish())
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut distinct = BTreeSet::new();
        while distinct.len() < wanted {
            let m = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("AMQP status events: {} of {wanted}", distinct.len()))
                .unwrap();
            let e: dedupd_store::outbox::StatusEvent =
                serde_json::from_slice(&m.content.unwrap()).unwrap();
            distinct.insert(e.id.clone());
            out.push((e.id, e.notification_id, e.transition));
        }
        out
    };
    check_status_events("amqp", &from_amqp, &ids);
    eprintln!(
        "status events: webhook {}, NATS {}, AMQP {} (distinct ids: {wanted} wanted)",
        from_hook.len(),
        from_nats.len(),
        from_amqp.len()
    );

    // Clean up this run's stream, exchange and queues.
    js.delete_stream(&names.stream).await.unwrap();
    for q in [&names.queue, &names.amqp_dead, &names.amqp_status] {
        ch.queue_delete(QueueDeleteArguments::new(q)).await.unwrap();
    }
    ch.exchange_delete(ExchangeDeleteArguments::new(&names.exchange))
        .await
        .unwrap();
    let _ = conn.close().await;
}

/// The gateway's decisions published to NATS JetStream (`[events.out] gateway_decisions`):
/// one event per decision, each with its own stable id (the HTTP answer's fingerprint in it),
/// the versioned schema, and neither the sender's phone number nor the message's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_decisions_are_published_to_nats_without_addresses_or_text() {
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = match async_nats::connect(&nats_url).await {
        Ok(c) => c,
        Err(e) => {
            required("NATS (NATS_URL)", e);
            return;
        }
    };
    let run = format!("{:012x}", fastrand::u64(..) >> 16);
    let (stream, subject) = (format!("DEDUPD_TD_{run}"), format!("dedupd.td{run}.events"));
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("serve.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[events.out]\nnats_subject = \"{subject}\"\ngateway_decisions = true\npoll_ms = 20\n"
        ),
    )
    .unwrap();
    let mut serve = Serve {
        child: Command::new(env!("CARGO_BIN_EXE_dedupd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg_path)
            .arg("--outbox")
            .arg(dir.path().join("outbox"))
            .env("DEDUPD_NATS_URL", &nats_url)
            .env_remove("DEDUPD_POSTGRES_URL")
            .env_remove("DEDUPD_API_TOKEN")
            .env_remove("DEDUPD_WEBHOOK_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        cmd: Box::new(|| Command::new("true")),
    };
    let base = super::listening_on(&mut serve.child);
    let http = reqwest::Client::new();
    let phone = "+14155550123";
    let messages = [
        ("sms", "m1", "Where is my order 1234?"),
        ("chat", "m2", "where is my order 1234"),
        ("sms", "m3", "Please cancel order 1234"),
    ];
    let mut answers = Vec::new();
    for (channel, id, text) in messages {
        let a: serde_json::Value = http
            .post(format!("{base}/v1/messages"))
            .json(&json!({"channel": channel, "from": phone, "text": text, "message_id": id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answers.push(a);
    }
    let decided: Vec<&str> = answers
        .iter()
        .map(|a| a["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decided, ["PROCESS", "SUPPRESS", "PROCESS"], "{answers:?}");

    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream(&stream)
        .await
        .unwrap()
        .create_consumer(pull::Config {
            filter_subject: subject.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while events.len() < messages.len() {
        assert!(
            Instant::now() < deadline,
            "decision events: {} of {}",
            events.len(),
            messages.len()
        );
        let mut batch = consumer
            .fetch()
            .max_messages(10)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            let body = String::from_utf8(m.payload.to_vec()).unwrap();
            for secret in ["4155550123", "order 1234", "cancel"] {
                assert!(
                    !body.contains(secret),
                    "{secret} in a decision event: {body}"
                );
            }
            let e: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(e["schema"], "dedupd.gateway.decision/v1");
            let msg_id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string());
            assert_eq!(
                msg_id.as_deref(),
                e["id"].as_str(),
                "the NATS message id is the event id"
            );
            m.ack().await.unwrap();
            let prev = events.insert(e["message_id"].as_str().unwrap().to_owned(), e);
            assert!(prev.is_none(), "one event per decision");
        }
    }
    let ids: BTreeSet<&str> = events.values().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), messages.len(), "every decision has its own id");
    for ((_, id, _), answer) in messages.iter().zip(&answers) {
        let e = &events[*id];
        assert_eq!(e["decision"], answer["decision"]);
        assert_eq!(e["fingerprint"], answer["fingerprint"]);
        assert!(
            e["id"]
                .as_str()
                .unwrap()
                .starts_with(answer["fingerprint"].as_str().unwrap())
        );
        assert_eq!(
            e["customer"],
            serde_json::Value::Null,
            "an unknown sender is not named"
        );
        assert_eq!(e["customer_kind"], "phone");
    }
    assert_eq!(events["m2"]["duplicate_of"]["message_id"], "m1");
    assert_eq!(events["m2"]["duplicates"], 1);

    drop(serve);
    js.delete_stream(&stream).await.unwrap();
}
