//! `dedupd-bench brokers`: events consumed per second into the outbox from NATS JetStream and
//! from RabbitMQ (the broker consumers of `dedupd serve`, in process, each on a fresh embedded
//! outbox), next to `POST /v1/notifications` accepted per second over HTTP in the same run.
//! The events are published first; the clock runs from the consumer's start until the outbox
//! holds all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::BasicProperties;
use amqprs::channel::{QueueDeclareArguments, QueueDeleteArguments};
use anyhow::Context;
use async_nats::jetstream::{self, stream};
use dedupd_notify::{Clock, NotifyApi, NotifyConfig};
use dedupd_store::outbox::{EmbeddedOutbox, Outbox, OutboxStore};

/// The settings of a run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) events: u64,
    pub(crate) in_flight: u16,
    pub(crate) http_concurrency: u64,
    pub(crate) nats_url: String,
    pub(crate) amqp_url: String,
}

const NOTIFY: &str = r#"
guard = "off"
[channels]
email = "bench"
[providers.bench]
type = "http"
url = "http://127.0.0.1:9/unused"
"#;

fn body(i: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "customer": {"id": format!("C-{i}"), "email": format!("customer{i}@example.com")},
        "order": {"id": i},
    }))
    .unwrap_or_default()
}

fn events_config(kind: &str, names: &str, in_flight: u16) -> String {
    let endpoint = if kind == "nats" {
        format!(
            "stream = \"{}\"\nsubject = \"{names}.events\"\ndurable = \"bench\"\ndead_letter = \"{names}.dead\"\nkey = \"header:Event-Id\"",
            names.replace('.', "_").to_uppercase()
        )
    } else {
        format!("queue = \"{names}.events\"\ndead_letter = \"{names}.dead\"\nkey = \"message_id\"")
    };
    format!(
        r#"max_in_flight = {in_flight}
[[source]]
name = "bench-{kind}"
type = "{kind}"
{endpoint}
[source.map]
channel = "email"
to = "/customer/email"
template = "Order {{{{order}}}} has shipped"
params = {{ order = "/order/id" }}
customer_id = "/customer/id"
"#
    )
}

fn api(dir: &std::path::Path) -> anyhow::Result<(NotifyApi, Outbox)> {
    let cfg: NotifyConfig = toml::from_str(NOTIFY).context("the bench notification config")?;
    let outbox = Outbox::Embedded(EmbeddedOutbox::open(dir, Default::default())?);
    Ok((NotifyApi::new(outbox.clone(), &cfg, Clock::System), outbox))
}

async fn until_accepted(outbox: &Outbox, n: u64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let total: u64 = outbox.counts().await?.values().sum();
        if total >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {total} of {n} events reached the outbox in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn consume(
    source: dedupd_broker::Source,
    api: NotifyApi,
    outbox: &Outbox,
    n: u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dedupd_broker::run_source(api, source, async {
        let _ = stop_rx.await;
    }));
    until_accepted(outbox, n, Duration::from_secs(600)).await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let _ = task.await;
    Ok(rate)
}

fn source(kind: &str, names: &str, s: &Settings) -> anyhow::Result<dedupd_broker::Source> {
    let cfg: dedupd_broker::EventsConfig = toml::from_str(&events_config(kind, names, s.in_flight))
        .context("the bench events config")?;
    let (nats, amqp) = (s.nats_url.clone(), s.amqp_url.clone());
    let mut sources = cfg.validate(move |var| match var {
        "DEDUPD_NATS_URL" => Some(nats.clone()),
        "DEDUPD_AMQP_URL" => Some(amqp.clone()),
        _ => None,
    })?;
    sources.pop().context("one source")
}

async fn nats(s: &Settings, names: &str) -> anyhow::Result<f64> {
    let client = async_nats::connect(&s.nats_url)
        .await
        .context("cannot reach NATS (--nats-url / NATS_URL)")?;
    let js = jetstream::new(client);
    let stream_name = names.replace('.', "_").to_uppercase();
    js.create_stream(stream::Config {
        name: stream_name.clone(),
        subjects: vec![format!("{names}.events"), format!("{names}.dead")],
        ..Default::default()
    })
    .await?;
    let mut acks = Vec::new();
    for i in 0..s.events {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Event-Id", format!("evt-{i}").as_str());
        acks.push(
            js.publish_with_headers(format!("{names}.events"), h, body(i).into())
                .await?,
        );
        if acks.len() >= 1000 {
            for a in acks.drain(..) {
                a.await?;
            }
        }
    }
    for a in acks {
        a.await?;
    }
    let dir = tempfile::tempdir()?;
    let (api, outbox) = api(dir.path())?;
    let rate = consume(source("nats", names, s)?, api, &outbox, s.events).await;
    js.delete_stream(&stream_name).await?;
    rate
}

async fn amqp(s: &Settings, names: &str) -> anyhow::Result<f64> {
    let conn = dedupd_broker::AmqpUrl::parse(&s.amqp_url)?
        .connect()
        .await
        .context("cannot reach RabbitMQ (--amqp-url / AMQP_URL)")?;
    let ch = conn.open_channel(None).await?;
    let queues = [format!("{names}.events"), format!("{names}.dead")];
    for q in &queues {
        ch.queue_declare(QueueDeclareArguments::durable_client_named(q))
            .await?;
    }
    let pubs = Arc::new(dedupd_broker::Confirmed::open(&conn).await?);
    for i in 0..s.events {
        let mut props = BasicProperties::default();
        props
            .with_persistence(true)
            .with_message_id(&format!("evt-{i}"));
        pubs.publish("", &queues[0], props, body(i)).await?;
    }
    let dir = tempfile::tempdir()?;
    let (api, outbox) = api(dir.path())?;
    let rate = consume(source("amqp", names, s)?, api, &outbox, s.events).await;
    for q in &queues {
        ch.queue_delete(QueueDeleteArguments::new(q)).await?;
    }
    let _ = conn.close().await;
    rate
}

/// `POST /v1/notifications` over a real socket, `concurrency` clients.
async fn http(s: &Settings) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let (api, _outbox) = api(dir.path())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1/notifications", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, dedupd_notify::app(api)).await });
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..s.http_concurrency {
        let (client, next, base, n) = (client.clone(), Arc::clone(&next), base.clone(), s.events);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let b = serde_json::json!({"channel": "email", "to": format!("customer{i}@example.com"),
                    "template": "Order {{order}} has shipped", "params": {"order": i},
                    "customer_id": format!("C-{i}")});
                let r = client
                    .post(&base)
                    .header("idempotency-key", format!("http-{i}"))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&b)?)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 202, "HTTP {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(s.events as f64 / started.elapsed().as_secs_f64())
}

/// Runs the three measurements and prints them.
pub(crate) fn run(s: &Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let names = format!("dedupd.bench{:08x}", fastrand::u32(..));
        println!(
            "events per broker: {}, max in flight: {}, HTTP clients: {}",
            s.events, s.in_flight, s.http_concurrency
        );
        let h = http(s).await?;
        println!("HTTP  POST /v1/notifications accepted: {h:>8.0}/s");
        let n = nats(s, &format!("{names}.n")).await?;
        println!("NATS JetStream events into the outbox: {n:>8.0}/s");
        let a = amqp(s, &format!("{names}.a")).await?;
        println!("RabbitMQ events into the outbox:       {a:>8.0}/s");
        Ok(())
    })
}
