//! The notification crash test (issue 7): 1,000 notifications, two `dedupd relay` processes on
//! one PostgreSQL outbox, each `kill -9`-ed at random moments (at least 10 kills in all) and
//! restarted. Half go to a local HTTP provider that dedupes on `Idempotency-Key` (every one
//! must be delivered exactly once), half to Genesys agentless messages on the emulator, which
//! does not dedupe, with 504-after-sending, timeouts and 429s injected (every one at most once;
//! those not delivered end `unknown` and are reported, none is lost silently).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use dedupd_core::notification::{Channel, NotificationRequest, Status, fingerprint};
use dedupd_emulator::{EmulatorConfig, FaultKind, FaultProfile, FaultRule, RunningEmulator};
use dedupd_store::outbox::{
    AcceptOptions, GuardMode, NewNotification, Outbox, OutboxStore, PgOutbox, pg_test_url,
};

const ID: &str = "dedupd-demo";
const SECRET: &str = "dedupd-demo-secret";
const FROM: &str = "+13175550100";
const WAVES: u64 = 10;
const PER_WAVE: u64 = 100;

/// Idempotency-Key → (deliveries to the customer, requests).
type Seen = Arc<Mutex<HashMap<String, (u32, u32)>>>;

async fn local_provider(State(seen): State<Seen>, headers: HeaderMap) -> Response {
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "no key").into_response();
    };
    let ambiguous = fastrand::u32(..100) < 5;
    {
        let mut s = seen.lock().unwrap();
        let e = s.entry(key.to_owned()).or_default();
        e.1 += 1;
        // The gateway dedupes on the key: a repeated key is not delivered again.
        e.0 = 1;
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    if ambiguous {
        // Delivered, but the sender cannot know.
        return (StatusCode::BAD_GATEWAY, "upstream hiccup").into_response();
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        format!("{{\"id\":\"pm-{key}\"}}"),
    )
        .into_response()
}

fn rule(kind: FaultKind, probability: f64) -> FaultRule {
    FaultRule {
        kind,
        probability,
        methods: vec!["POST".into()],
        paths: vec!["/api/v2/conversations/messages/agentless".into()],
        statuses: None,
        delay_ms: None,
        burst: None,
        retry_after_secs: None,
    }
}

fn notification(i: u64) -> NewNotification {
    let email = i.is_multiple_of(2);
    let req = NotificationRequest {
        channel: if email { Channel::Email } else { Channel::Sms },
        to: if email {
            format!("customer{i}@example.com")
        } else {
            format!("+1415555{:04}", 1000 + i)
        },
        text: format!("Order {i} has shipped"),
        template: None,
        customer_id: Some(format!("C-{i}")),
        event_type: Some("order_shipped".into()),
        provider: None,
        not_after: None,
    };
    let request = serde_json::to_value(&req).unwrap();
    NewNotification {
        key: format!("order-{i}"),
        id: format!("ntf_crash_{i:04}"),
        fingerprint: fingerprint(&request),
        request,
        channel: req.channel.as_str().into(),
        provider: if email { "local" } else { "genesys" }.into(),
        guard_key: None,
        not_after: None,
    }
}

struct Relays {
    cmd: Box<dyn Fn() -> Command + Send>,
    children: [Child; 2],
}

impl Relays {
    fn kill_and_restart(&mut self, which: usize) {
        let c = &mut self.children[which];
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        self.children[which] = (self.cmd)().spawn().unwrap();
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `requests()` reaches `target`, or until nothing is pending or sending in the
/// outbox (no more requests will come). A condition wait, not a delay: it polls every 5 ms, for
/// at most 60 s. Returns the request count it saw.
async fn wait_for_requests(
    requests: &impl Fn() -> u64,
    target: u64,
    outbox: &Outbox,
    seed: u64,
    kills: &[(u64, u64, u64)],
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = requests();
        if seen >= target {
            return seen;
        }
        let counts = outbox.counts().await.unwrap();
        let busy = counts.get(&Status::Pending).copied().unwrap_or(0)
            + counts.get(&Status::Sending).copied().unwrap_or(0);
        if busy == 0 {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no request {target} in 60 s: {counts:?}; kills {kills:?} (DEDUPD_KILL_SEED={seed})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_killed_at_random_deliver_once_or_report() {
    let url = pg_test_url();
    let schema = format!("t_crash_{:016x}", fastrand::u64(..));
    let pg = match PgOutbox::connect_new_schema(&url, &schema, 8, Default::default()).await {
        Ok(pg) => pg,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: PostgreSQL is not reachable ({e})");
            return;
        }
        Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
    };
    let outbox = Outbox::Postgres(pg.clone());

    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/send", axum::routing::post(local_provider))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut timeout = rule(FaultKind::Timeout, 0.05);
    timeout.delay_ms = Some(2_500); // longer than the relay's 2 s request timeout
    let mut burst = rule(FaultKind::RateLimitBurst, 0.05);
    burst.retry_after_secs = Some(1);
    let emu = RunningEmulator::start(EmulatorConfig {
        rate_limit_per_minute: 60_000,
        clients: vec![(ID.to_owned(), SECRET.to_owned())],
        faults: FaultProfile {
            rules: vec![rule(FaultKind::GatewayTimeoutApplied, 0.05), timeout, burst],
            ..FaultProfile::default()
        },
        seed: 11,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[notifications]
[notifications.channels]
sms = "genesys"
email = "local"
[notifications.providers.genesys]
type = "genesys_agentless"
from = {{ sms = "{FROM}" }}
[notifications.providers.local]
type = "http"
url = "{provider_url}"
[notifications.relay]
max_attempts = 100
base_delay_ms = 50
max_delay_ms = 500
lease_secs = 3
request_timeout_secs = 2
reconcile_after_secs = 1
batch = 16
poll_ms = 50
"#
        ),
    )
    .unwrap();
    let base = emu.base_url();
    let (cfg_path, pg_url, schema_name) = (config.clone(), url.clone(), schema.clone());
    let cmd = move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
        c.args(["--quiet", "relay", "--config"])
            .arg(&cfg_path)
            .args(["--postgres", &pg_url, "--postgres-schema", &schema_name])
            .env("GENESYS_BASE_URL", &base)
            .env("GENESYS_CLIENT_ID", ID)
            .env("GENESYS_CLIENT_SECRET", SECRET)
            .env("GENESYS_REQUESTS_PER_MINUTE", "60000")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut relays = Relays {
        children: [cmd().spawn().unwrap(), cmd().spawn().unwrap()],
        cmd: Box::new(cmd),
    };

    // Waves of work, each followed by a kill -9 of one relay at a seeded point: after the N-th
    // delivery request (to the local provider or the emulator) since the wave was accepted. The
    // seed is printed and named in the failure messages (replay: DEDUPD_KILL_SEED).
    let seed = super::kill_seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let requests = {
        let (seen, emu) = (Arc::clone(&seen), emu.state());
        move || {
            let local: u64 = seen.lock().unwrap().values().map(|e| u64::from(e.1)).sum();
            local + emu.stats().total_requests
        }
    };
    let opts = AcceptOptions {
        guard: GuardMode::Off,
        ..AcceptOptions::default()
    };
    let mut kills = Vec::new();
    for wave in 0..WAVES {
        let start = requests();
        for i in wave * PER_WAVE..(wave + 1) * PER_WAVE {
            outbox
                .accept(notification(i), opts, Utc::now())
                .await
                .unwrap();
        }
        // A wave needs at least PER_WAVE requests: the kill point is always reached.
        let after = rng.u64(1..=PER_WAVE / 2);
        let seen_at = wait_for_requests(&requests, start + after, &outbox, seed, &kills).await;
        relays.kill_and_restart(rng.usize(..2));
        kills.push((wave, after, seen_at));
    }
    // Two more, while the retries and take-overs run: after a few more requests, or at once
    // when nothing is left to deliver.
    for wave in WAVES..WAVES + 2 {
        let start = requests();
        let after = rng.u64(1..=5);
        let seen_at = wait_for_requests(&requests, start + after, &outbox, seed, &kills).await;
        relays.kill_and_restart(rng.usize(..2));
        kills.push((wave, after, seen_at));
    }
    assert!(kills.len() >= 10);

    // Until nothing is left to do (bounded: a stuck outbox fails the test).
    super::until_relays_settle(&outbox, Duration::from_secs(45), || {
        format!("kills (wave, after, seen) {kills:?} (DEDUPD_KILL_SEED={seed})")
    })
    .await;
    drop(relays);

    let sends = emu.state().agentless_sends();
    let seen = seen.lock().unwrap().clone();
    let (mut delivered_http, mut delivered_sms, mut unknown_sms) = (0, 0, Vec::new());
    for i in 0..WAVES * PER_WAVE {
        let n = notification(i);
        let stored = outbox.get(&n.key, Utc::now()).await.unwrap().unwrap();
        let req: NotificationRequest = serde_json::from_value(stored.request.clone()).unwrap();
        if n.provider == "local" {
            let (delivered, _requests) = seen.get(&n.id).copied().unwrap_or((0, 0));
            assert_eq!(
                delivered, 1,
                "{}: exactly once at the deduping provider",
                n.key
            );
            assert_eq!(
                stored.status,
                Status::Delivered,
                "{}: {:?}",
                n.key,
                stored.last_error
            );
            delivered_http += 1;
        } else {
            let sent = sends
                .get(&(req.to.clone(), req.text.clone()))
                .copied()
                .unwrap_or(0);
            assert!(
                sent <= 1,
                "{}: sent {sent} times through agentless messages",
                n.key
            );
            match stored.status {
                Status::Delivered => {
                    assert_eq!(sent, 1, "{}: delivered but not at the platform", n.key);
                    delivered_sms += 1;
                }
                Status::Unknown => unknown_sms.push((n.key.clone(), sent)),
                other => panic!("{}: ended {other}: {:?}", n.key, stored.last_error),
            }
        }
    }
    let resent_http = seen.values().filter(|(_, r)| *r > 1).count();
    eprintln!(
        "crash test: {} kills; http provider {delivered_http} delivered once ({resent_http} resent with the same key); \
         agentless {delivered_sms} delivered once, {} unknown (reported): {unknown_sms:?}",
        kills.len(),
        unknown_sms.len()
    );
    assert_eq!(delivered_http, WAVES * PER_WAVE / 2);
    assert_eq!(
        delivered_sms + unknown_sms.len() as u64,
        WAVES * PER_WAVE / 2,
        "none lost silently"
    );
    // The faults the reconciliation exists for did happen.
    let injected = emu.state().stats().faults_injected;
    assert!(
        injected
            .get("gateway_timeout_applied")
            .copied()
            .unwrap_or(0)
            > 0,
        "no 504-after-sending was injected: {injected:?}"
    );
    emu.shutdown().await;
    pg.drop_schema().await.unwrap();
}

/// `dedupd serve --notifications` with the embedded outbox: the API answers on the same
/// listener as the gateway, and the in-process relay delivers once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_and_delivers_notifications() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/send", axum::routing::post(local_provider))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dedupd.toml");
    std::fs::write(
        &config,
        format!(
            "[notifications]\nchannels = {{ email = \"mail\" }}\n\
             [notifications.providers.mail]\ntype = \"http\"\nurl = \"{provider_url}\"\n\
             [notifications.relay]\npoll_ms = 20\nbase_delay_ms = 20\nmax_delay_ms = 100\nmax_attempts = 50\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--outbox")
        .arg(dir.path().join("outbox"))
        .current_dir(dir.path())
        .env_remove("DEDUPD_API_TOKEN")
        .env_remove("DEDUPD_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = super::listening_on(&mut child);

    let http = reqwest::Client::new();
    let body =
        serde_json::json!({"channel": "email", "to": "ann@example.com", "text": "Receipt 7"});
    let post = |key: Option<&'static str>| {
        let mut rb = http.post(format!("{base}/v1/notifications")).json(&body);
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        rb.send()
    };
    let missing = post(None).await.unwrap();
    assert_eq!(missing.status(), 400);
    let err: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(err["error"]["code"], "missing_idempotency_key");
    let first = post(Some("receipt-7")).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    let again = post(Some("receipt-7")).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s: serde_json::Value = http
            .get(format!("{base}/v1/notifications/receipt-7"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["status"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = first["id"].as_str().unwrap();
    assert_eq!(seen.lock().unwrap().get(id).map(|e| e.0), Some(1));
    let _ = child.kill();
    let _ = child.wait();
}
