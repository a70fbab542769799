//! Events out: the status events the outbox wrote (in the transaction of each status change,
//! only when `[events.out]` is configured) published to the user's NATS subject (JetStream, ack
//! awaited), RabbitMQ exchange (publisher confirms) and signed webhooks, then deleted from the
//! outbox. At least once, by stable id: a crash between the publish and the delete re-publishes
//! the same event with the same id.
//!
//! ```toml
//! [events.out]
//! nats_subject = "dedupd.status"      # a stream must capture it
//! amqp_exchange = "dedupd.status"     # routing key: notification.<transition> / gateway.<decision>
//! gateway_decisions = true            # the gateway's decisions too (best effort: see below)
//! [[events.out.webhook]]              # see `webhook` for its settings and requests
//! name = "crm"
//! url = "https://crm.example.com/hooks/dedupd"
//! secret_env = "CRM_WEBHOOK_SECRET"
//! ```
//!
//! Besides the outbox's status events, the publisher takes other events through an
//! [`EventTap`] (the gateway's decisions): a bounded queue in memory, published to the same
//! sinks, at least once while the process lives (a failed publish is retried with the same id),
//! lost on a crash or when the queue is full (counted in [`EVENTS_DROPPED`]), never invented.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dedupd_store::outbox::{Outbox, OutboxStore, StatusEvent};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::amqp::{AmqpUrl, Confirmed};
use crate::config::{BrokerUrl, ConfigError, DEFAULT_AMQP_URL, DEFAULT_NATS_URL};
pub use crate::webhook::{Hook, HookState, Webhook, WebhookConfig, signature};
use crate::{BrokerError, backoff};

/// Counter: events given to an [`EventTap`] that were dropped because its queue was full
/// (label `kind`, e.g. `gateway`).
pub const EVENTS_DROPPED: &str = "dedupd_events_dropped_total";

/// `[events.out]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutConfig {
    /// A NATS subject to publish each status event to through JetStream (URL:
    /// `DEDUPD_NATS_URL`).
    #[serde(default)]
    pub nats_subject: Option<String>,
    /// A RabbitMQ exchange to publish each status event to, routing key
    /// `notification.<transition>` (URL: `DEDUPD_AMQP_URL`).
    #[serde(default)]
    pub amqp_exchange: Option<String>,
    /// Signed webhooks.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// Events read from the outbox per round (default 256).
    #[serde(default)]
    pub batch: Option<usize>,
    /// Milliseconds between looks at the outbox when nothing is waiting (default 200).
    #[serde(default)]
    pub poll_ms: Option<u64>,
    /// Publish the gateway's decisions (`dedupd.gateway.decision/v1`) too (default false).
    #[serde(default)]
    pub gateway_decisions: bool,
    /// Decisions held in memory for the publisher at most; more are dropped and counted
    /// (default 10,000).
    #[serde(default)]
    pub decisions_queue: Option<usize>,
}

/// The validated `[events.out]`.
#[derive(Debug, Clone)]
pub struct Out {
    nats: Option<(BrokerUrl, String)>,
    amqp: Option<(BrokerUrl, String)>,
    webhooks: Vec<Webhook>,
    batch: usize,
    poll: Duration,
    /// The queue of the gateway's decisions, when they are published.
    pub gateway_decisions: Option<usize>,
}

impl OutConfig {
    /// Validates the section; `env` reads the environment (URLs, webhook secrets).
    pub fn validate(&self, env: impl Fn(&str) -> Option<String>) -> Result<Out, ConfigError> {
        let url = |var: &str, default: &str| {
            BrokerUrl::new(
                env(var)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| default.into()),
            )
        };
        let nonempty = |v: &Option<String>, key: &str| match v.as_deref().map(str::trim) {
            Some("") => Err(ConfigError {
                key: format!("events.out.{key}"),
                reason: "must not be empty".into(),
            }),
            other => Ok(other.map(str::to_owned)),
        };
        let nats = nonempty(&self.nats_subject, "nats_subject")?
            .map(|s| (url("DEDUPD_NATS_URL", DEFAULT_NATS_URL), s));
        let amqp = nonempty(&self.amqp_exchange, "amqp_exchange")?
            .map(|s| (url("DEDUPD_AMQP_URL", DEFAULT_AMQP_URL), s));
        let mut webhooks = Vec::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            webhooks.push(w.validate(&format!("events.out.webhook[{i}]"), &env)?);
        }
        if self.decisions_queue == Some(0) {
            return Err(ConfigError {
                key: "events.out.decisions_queue".into(),
                reason: "at least 1".into(),
            });
        }
        Ok(Out {
            nats,
            amqp,
            webhooks,
            batch: self.batch.unwrap_or(256).clamp(1, 10_000),
            poll: Duration::from_millis(self.poll_ms.unwrap_or(200).max(10)),
            gateway_decisions: self
                .gateway_decisions
                .then(|| self.decisions_queue.unwrap_or(10_000)),
        })
    }
}

/// One event ready to publish: its stable id, its AMQP routing key and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The event's id (`Nats-Msg-Id`, AMQP `message_id`, `Dedupd-Event-Id`).
    pub id: String,
    /// The AMQP routing key (`notification.delivered`, `gateway.suppress`).
    pub routing_key: String,
    /// The event as JSON.
    pub body: Vec<u8>,
}

impl Outgoing {
    fn status(e: &StatusEvent) -> Result<Self, BrokerError> {
        Ok(Self {
            id: e.id.clone(),
            routing_key: format!("notification.{}", e.transition),
            body: serde_json::to_vec(e).map_err(|e| BrokerError::Nats(e.to_string()))?,
        })
    }
}

/// Hands events that are not in the outbox (the gateway's decisions) to the publisher: a
/// bounded queue; [`EventTap::offer`] never waits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventTap {
    tx: mpsc::Sender<Outgoing>,
    kind: &'static str,
}

impl EventTap {
    /// A tap of `kind` (the label of [`EVENTS_DROPPED`]) holding at most `capacity` events,
    /// and the receiver to give [`run_publisher`].
    pub fn new(kind: &'static str, capacity: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        metrics::counter!(EVENTS_DROPPED, "kind" => kind).absolute(0);
        (Self { tx, kind }, rx)
    }

    /// Queues `event` for the publisher; false (and counted) when the queue is full or the
    /// publisher is gone.
    pub fn offer(&self, event: Outgoing) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                metrics::counter!(EVENTS_DROPPED, "kind" => self.kind).increment(1);
                false
            }
        }
    }
}

/// The connected sinks.
struct Sinks {
    nats: Option<(async_nats::jetstream::Context, String)>,
    amqp: Option<(amqprs::connection::Connection, Confirmed, String)>,
    hooks: Vec<Hook>,
    http: reqwest::Client,
}

impl Sinks {
    async fn connect(out: &Out, hooks: Vec<Hook>) -> Result<Self, (BrokerError, Vec<Hook>)> {
        let nats = match &out.nats {
            Some((url, subject)) => {
                let client = match async_nats::ConnectOptions::new()
                    .name("dedupd-status")
                    .connect(url.expose())
                    .await
                {
                    Ok(c) => c,
                    Err(e) => return Err((BrokerError::Nats(e.to_string()), hooks)),
                };
                Some((async_nats::jetstream::new(client), subject.clone()))
            }
            None => None,
        };
        let amqp = match &out.amqp {
            Some((url, exchange)) => {
                let opened = async {
                    let conn = AmqpUrl::parse(url.expose())?.connect().await?;
                    let ch = Confirmed::open(&conn).await?;
                    Ok::<_, BrokerError>((conn, ch))
                }
                .await;
                match opened {
                    Ok((conn, ch)) => Some((conn, ch, exchange.clone())),
                    Err(e) => return Err((e, hooks)),
                }
            }
            None => None,
        };
        Ok(Self {
            nats,
            amqp,
            hooks,
            http: reqwest::Client::new(),
        })
    }

    /// Publishes one event to every sink; `Ok` once every enabled sink confirmed it (a
    /// disabled webhook passes it by).
    async fn publish(&mut self, event: &Outgoing) -> Result<(), BrokerError> {
        if let Some((js, subject)) = &self.nats {
            let mut h = async_nats::HeaderMap::new();
            // JetStream drops a re-publish of the same id within its duplicate window.
            h.insert("Nats-Msg-Id", event.id.as_str());
            js.publish_with_headers(subject.clone(), h, event.body.clone().into())
                .await
                .map_err(|e| BrokerError::Nats(e.to_string()))?
                .await
                .map_err(|e| BrokerError::Nats(e.to_string()))?;
        }
        if let Some((_, ch, exchange)) = &self.amqp {
            let mut props = amqprs::BasicProperties::default();
            props
                .with_message_id(&event.id)
                .with_content_type("application/json")
                .with_persistence(true);
            ch.publish(exchange, &event.routing_key, props, event.body.clone())
                .await?;
        }
        let now = Instant::now();
        for h in &mut self.hooks {
            if let crate::webhook::Delivery::Failed(why) =
                h.deliver(&self.http, &event.id, &event.body, now).await
            {
                return Err(BrokerError::Webhook(format!("{}: {why}", h.name())));
            }
        }
        Ok(())
    }
}

/// Publishes the outbox's status events, and the events `tap` receives, until `shutdown`:
/// reads the unpublished status events in order, publishes each to every sink, deletes those
/// every sink confirmed; then the tap's; on a failure, backs off (capped) and starts again
/// from the first event not confirmed.
pub async fn run_publisher(
    outbox: Outbox,
    out: Out,
    tap: Option<mpsc::Receiver<Outgoing>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let work = async {
        let mut hooks: Vec<Hook> = out.webhooks.iter().cloned().map(Hook::new).collect();
        let mut tapped = Tapped {
            rx: tap,
            held: VecDeque::new(),
        };
        let mut attempt = 0u32;
        loop {
            let mut sinks = match Sinks::connect(&out, hooks).await {
                Ok(s) => s,
                Err((e, back)) => {
                    tracing::error!(error = %e, "Events out: cannot reach a sink; retrying.");
                    hooks = back;
                    tokio::time::sleep(backoff(attempt + 4)).await;
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            };
            tracing::info!("Publishing events.");
            let err = round_loop(&outbox, &out, &mut sinks, &mut tapped, &mut attempt).await;
            tracing::warn!(error = %err, "Events out: a sink failed; reconnecting.");
            hooks = sinks.hooks;
            tokio::time::sleep(backoff(attempt)).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
}

/// The tap's receiver and the events taken from it and not yet confirmed by every sink.
struct Tapped {
    rx: Option<mpsc::Receiver<Outgoing>>,
    held: VecDeque<Outgoing>,
}

impl Tapped {
    /// Takes what is waiting, up to `batch` held.
    fn fill(&mut self, batch: usize) {
        if let Some(rx) = &mut self.rx {
            while self.held.len() < batch {
                match rx.try_recv() {
                    Ok(e) => self.held.push_back(e),
                    Err(_) => break,
                }
            }
        }
    }

    /// Waits at most `poll` for an event of the tap.
    async fn wait(&mut self, poll: Duration) {
        let next = async {
            match &mut self.rx {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        if let Ok(Some(e)) = tokio::time::timeout(poll, next).await {
            self.held.push_back(e);
        }
    }
}

/// Publishes until a sink fails (the error is returned; the broker connections are then
/// opened again).
async fn round_loop(
    outbox: &Outbox,
    out: &Out,
    sinks: &mut Sinks,
    tapped: &mut Tapped,
    attempt: &mut u32,
) -> BrokerError {
    loop {
        let events = match outbox.unpublished_events(out.batch).await {
            Ok(e) => e,
            Err(e) => {
                // The tap's events still go out; the outbox is asked again after a pause.
                tracing::warn!(error = %e, "Status events: the outbox is unavailable.");
                tokio::time::sleep(backoff(*attempt)).await;
                *attempt = attempt.saturating_add(1);
                Vec::new()
            }
        };
        tapped.fill(out.batch);
        if events.is_empty() && tapped.held.is_empty() {
            tapped.wait(out.poll).await;
            continue;
        }
        let mut done = Vec::with_capacity(events.len());
        let mut failed = None;
        for e in &events {
            let sent = match Outgoing::status(e) {
                Ok(o) => sinks.publish(&o).await,
                Err(err) => Err(err),
            };
            match sent {
                Ok(()) => done.push(e.id.clone()),
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        if !done.is_empty() {
            let n = done.len();
            // Deleted only now that every sink confirmed them; a crash before this line
            // publishes them again, with the same ids.
            if let Err(e) = outbox.remove_published(done).await {
                tracing::warn!(error = %e, events = n, "Status events published but not removed.");
            }
        }
        if failed.is_none() {
            while let Some(e) = tapped.held.front() {
                match sinks.publish(e).await {
                    Ok(()) => {
                        tapped.held.pop_front();
                    }
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
        }
        match failed {
            None => *attempt = 0,
            Some(BrokerError::Webhook(w)) => {
                // A webhook that is not disabled yet: retry later, the brokers stay connected.
                tracing::warn!(webhook = %w, "Event not delivered to a webhook; retrying.");
                tokio::time::sleep(backoff(*attempt)).await;
                *attempt = attempt.saturating_add(1);
            }
            Some(err) => {
                *attempt = attempt.saturating_add(1);
                return err;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn out_config_names_its_errors() {
        let cfg: OutConfig = toml::from_str(
            "nats_subject = \"s\"\n[[webhook]]\nname = \"crm\"\nurl = \"ftp://x\"\nsecret_env = \"S\"\n",
        )
        .unwrap();
        let e = cfg.validate(|_| Some("k".into())).unwrap_err();
        assert_eq!(e.key, "events.out.webhook[0].url");
        let cfg: OutConfig =
            toml::from_str("[[webhook]]\nname = \"crm\"\nurl = \"http://x\"\nsecret_env = \"S\"\n")
                .unwrap();
        let e = cfg.validate(|_| None).unwrap_err();
        assert_eq!(e.key, "events.out.webhook[0].secret_env");
        let ok = cfg.validate(|_| Some("hunter2".into())).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
        assert_eq!(ok.gateway_decisions, None);
        let cfg: OutConfig = toml::from_str("gateway_decisions = true\n").unwrap();
        assert_eq!(
            cfg.validate(|_| None).unwrap().gateway_decisions,
            Some(10_000)
        );
        let cfg: OutConfig =
            toml::from_str("gateway_decisions = true\ndecisions_queue = 0\n").unwrap();
        assert_eq!(
            cfg.validate(|_| None).unwrap_err().key,
            "events.out.decisions_queue"
        );
    }

    #[tokio::test]
    async fn a_full_tap_drops_and_says_so() {
        let (tap, mut rx) = EventTap::new("test", 1);
        let ev = |id: &str| Outgoing {
            id: id.into(),
            routing_key: "gateway.process".into(),
            body: b"{}".to_vec(),
        };
        assert!(tap.offer(ev("a")));
        assert!(!tap.offer(ev("b")), "the queue holds one");
        assert_eq!(rx.recv().await.unwrap().id, "a");
        assert!(tap.offer(ev("c")));
    }
}
