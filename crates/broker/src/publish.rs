//! Events out: the status events the outbox wrote (in the transaction of each status change)
//! published to the user's NATS subject (JetStream, ack awaited), RabbitMQ exchange (publisher
//! confirms) and signed webhooks, then marked published. At least once, by stable id: a crash
//! between the publish and the mark re-publishes the same event with the same id.
//!
//! ```toml
//! [events.out]
//! nats_subject = "dedupd.status"      # a stream must capture it
//! amqp_exchange = "dedupd.status"     # routing key: notification.<transition>
//! [[events.out.webhook]]
//! name = "crm"
//! url = "https://crm.example.com/hooks/dedupd"
//! secret_env = "CRM_WEBHOOK_SECRET"   # HMAC-SHA256 key, from the environment, never logged
//! max_failures = 10                   # consecutive failures, then the endpoint is disabled
//! ```
//!
//! A webhook request: `POST <url>`, `Content-Type: application/json`, the event as the body,
//! `Dedupd-Event-Id: <id>`, `Dedupd-Timestamp: <unix seconds>` and
//! `Dedupd-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`. Any 2xx is a delivery.

use std::time::Duration;

use chrono::Utc;
use dedupd_store::outbox::{Outbox, OutboxStore, StatusEvent};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::amqp::{AmqpUrl, Confirmed};
use crate::config::{BrokerUrl, ConfigError, DEFAULT_AMQP_URL, DEFAULT_NATS_URL};
use crate::{BrokerError, backoff};

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
}

/// `[[events.out.webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint's name (logs).
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The environment variable holding the HMAC key.
    pub secret_env: String,
    /// Consecutive failures after which the endpoint is disabled (default 10).
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Seconds one request may take (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// A validated webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    name: String,
    url: String,
    secret: SecretString,
    max_failures: u32,
    timeout: Duration,
}

/// The validated `[events.out]`.
#[derive(Debug, Clone)]
pub struct Out {
    nats: Option<(BrokerUrl, String)>,
    amqp: Option<(BrokerUrl, String)>,
    webhooks: Vec<Webhook>,
    batch: usize,
    poll: Duration,
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
            let k = |name: &str| format!("events.out.webhook[{i}].{name}");
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError {
                    key: k("url"),
                    reason: "not an http:// or https:// URL".into(),
                });
            }
            let secret = env(&w.secret_env)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError {
                    key: k("secret_env"),
                    reason: format!("the variable {} is not set", w.secret_env),
                })?;
            webhooks.push(Webhook {
                name: w.name.clone(),
                url: w.url.clone(),
                secret: SecretString::from(secret),
                max_failures: w.max_failures.unwrap_or(10).max(1),
                timeout: Duration::from_secs(w.timeout_secs.unwrap_or(10).max(1)),
            });
        }
        Ok(Out {
            nats,
            amqp,
            webhooks,
            batch: self.batch.unwrap_or(256).clamp(1, 10_000),
            poll: Duration::from_millis(self.poll_ms.unwrap_or(200).max(10)),
        })
    }
}

/// The webhook signature: `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    let mac = dedupd_http::auth::hmac_sha256(secret.as_bytes(), &msg);
    let mut s = String::from("v1=");
    for b in mac {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

struct HookState {
    hook: Webhook,
    failures: u32,
    disabled: bool,
}

/// The connected sinks.
struct Sinks {
    nats: Option<(async_nats::jetstream::Context, String)>,
    amqp: Option<(amqprs::connection::Connection, Confirmed, String)>,
    hooks: Vec<HookState>,
    http: reqwest::Client,
}

impl Sinks {
    async fn connect(out: &Out, hooks: Vec<HookState>) -> Result<Self, BrokerError> {
        let nats = match &out.nats {
            Some((url, subject)) => {
                let client = async_nats::ConnectOptions::new()
                    .name("dedupd-status")
                    .connect(url.expose())
                    .await
                    .map_err(|e| BrokerError::Nats(e.to_string()))?;
                Some((async_nats::jetstream::new(client), subject.clone()))
            }
            None => None,
        };
        let amqp = match &out.amqp {
            Some((url, exchange)) => {
                let conn = AmqpUrl::parse(url.expose())?.connect().await?;
                let ch = Confirmed::open(&conn).await?;
                Some((conn, ch, exchange.clone()))
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

    /// Publishes one event to every sink; `Ok` once every enabled sink confirmed it.
    async fn publish(&mut self, event: &StatusEvent) -> Result<(), BrokerError> {
        let body = serde_json::to_vec(event).map_err(|e| BrokerError::Nats(e.to_string()))?;
        if let Some((js, subject)) = &self.nats {
            let mut h = async_nats::HeaderMap::new();
            // JetStream drops a re-publish of the same id within its duplicate window.
            h.insert("Nats-Msg-Id", event.id.as_str());
            js.publish_with_headers(subject.clone(), h, body.clone().into())
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
            ch.publish(
                exchange,
                &format!("notification.{}", event.transition),
                props,
                body.clone(),
            )
            .await?;
        }
        for h in &mut self.hooks {
            if h.disabled {
                continue;
            }
            let ts = Utc::now().timestamp();
            let sig = signature(h.hook.secret.expose_secret(), ts, &body);
            let sent = self
                .http
                .post(&h.hook.url)
                .timeout(h.hook.timeout)
                .header("content-type", "application/json")
                .header("dedupd-event-id", &event.id)
                .header("dedupd-timestamp", ts.to_string())
                .header("dedupd-signature", sig)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => h.failures = 0,
                other => {
                    h.failures += 1;
                    let why = match other {
                        Ok(r) => format!("status {}", r.status().as_u16()),
                        Err(e) if e.is_timeout() => "timeout".into(),
                        Err(_) => "connection failed".into(),
                    };
                    if h.failures >= h.hook.max_failures {
                        h.disabled = true;
                        tracing::error!(webhook = %h.hook.name, failures = h.failures, %why,
                            "Webhook disabled after repeated failures; restart to enable it again.");
                        continue;
                    }
                    return Err(BrokerError::Webhook(format!("{}: {why}", h.hook.name)));
                }
            }
        }
        Ok(())
    }
}

/// Publishes the outbox's status events until `shutdown`: reads the unpublished ones in order,
/// publishes each to every sink, marks those every sink confirmed; on a failure, backs off
/// (capped) and starts again from the first unpublished event.
pub async fn run_publisher(
    outbox: Outbox,
    out: Out,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let work = async {
        let mut hooks: Vec<HookState> = out
            .webhooks
            .iter()
            .map(|h| HookState {
                hook: h.clone(),
                failures: 0,
                disabled: false,
            })
            .collect();
        let mut attempt = 0u32;
        loop {
            let mut sinks = match Sinks::connect(&out, std::mem::take(&mut hooks)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "Status events: cannot reach a sink; retrying.");
                    // The hook states were moved into the failed connect: rebuild them.
                    hooks = out
                        .webhooks
                        .iter()
                        .map(|h| HookState {
                            hook: h.clone(),
                            failures: 0,
                            disabled: false,
                        })
                        .collect();
                    tokio::time::sleep(backoff(attempt + 4)).await;
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            };
            tracing::info!("Publishing status events.");
            let err = round_loop(&outbox, &out, &mut sinks, &mut attempt).await;
            tracing::warn!(error = %err, "Status events: a sink failed; reconnecting.");
            hooks = sinks.hooks;
            tokio::time::sleep(backoff(attempt)).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
}

/// Publishes until a sink fails (the error is returned; the broker connections are then
/// opened again).
async fn round_loop(
    outbox: &Outbox,
    out: &Out,
    sinks: &mut Sinks,
    attempt: &mut u32,
) -> BrokerError {
    loop {
        let events = match outbox.unpublished_events(out.batch).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "Status events: the outbox is unavailable.");
                tokio::time::sleep(backoff(*attempt)).await;
                *attempt = attempt.saturating_add(1);
                continue;
            }
        };
        if events.is_empty() {
            tokio::time::sleep(out.poll).await;
            continue;
        }
        let mut done = Vec::with_capacity(events.len());
        let mut failed = None;
        for e in &events {
            match sinks.publish(e).await {
                Ok(()) => done.push(e.id.clone()),
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        if !done.is_empty() {
            let n = done.len();
            if let Err(e) = outbox.mark_published(done, Utc::now()).await {
                // Published but not marked: they go out again, with the same ids.
                tracing::warn!(error = %e, events = n, "Status events published but not marked.");
            }
        }
        match failed {
            None => *attempt = 0,
            Some(BrokerError::Webhook(w)) => {
                // A webhook that is not disabled yet: retry later, the brokers stay connected.
                tracing::warn!(webhook = %w, "Status event not delivered to a webhook; retrying.");
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
    fn the_signature_covers_timestamp_and_body() {
        let a = signature("s3cret", 1_700_000_000, b"{\"id\":\"x\"}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64, "{a}");
        assert_ne!(a, signature("s3cret", 1_700_000_001, b"{\"id\":\"x\"}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, b"{\"id\":\"y\"}"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{\"id\":\"x\"}"));
        // RFC 4231 test case 2 through the same HMAC: key "Jefe".
        let mac = dedupd_http::auth::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(mac[0], 0x5b);
    }

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
    }
}
