//! `dedupd-broker`: business events in from the user's brokers (a NATS JetStream durable pull
//! consumer, a RabbitMQ queue), with the exactly-once guarantee of the HTTP API.
//!
//! # Principal types
//!
//! - [`EventsConfig`] → [`Source`]: the `[events]` section, validated (key extraction and
//!   JSON-pointer mapping per source, the broker URLs from the environment).
//! - [`map_event`]: an event → its idempotency key and the notification body (pure).
//! - [`handle`]: one event through the notification accept path the HTTP API uses
//!   ([`dedupd_notify::NotifyApi::submit`]) → a [`Disposition`]: accepted (or recognized as
//!   already accepted), dead letter (with the reason), or retry (the outbox is unavailable).
//! - [`run_source`]: a source's consumer, reconnecting until shut down.
//! - [`run_publisher`]: events out: the outbox's status events (written with each status
//!   change when `[events.out]` is configured, deleted once published) to a NATS subject, a
//!   RabbitMQ exchange and signed webhooks, at least once by stable id ([`publish`]); and the
//!   events an [`EventTap`] hands it (the gateway's decisions, best effort).
//! - [`webhook`]: signed webhooks, disabled after repeated failures and probed again after a
//!   cool-down.
//!
//! A message is acknowledged only once the outbox holds its notification durably (or holds it
//! already under its key), or once its dead letter is confirmed by the broker; a crash before
//! the acknowledgement means a redelivery, which the key makes a no-op. At most
//! `max_in_flight` messages per source are taken and not yet acknowledged: a slow or
//! unavailable outbox stops the pulling instead of buffering.

mod amqp;
pub mod config;
pub mod mapping;
mod nats;
pub mod publish;
pub mod webhook;

use std::future::Future;
use std::time::Duration;

use dedupd_notify::{NotifyApi, Submitted};

pub use amqp::{AmqpUrl, Confirmed};
pub use config::{BrokerUrl, ConfigError, Endpoint, EventsConfig, Source};
pub use mapping::{Event, MapError, Mapped, map_event};
pub use publish::{EventTap, Out, OutConfig, Outgoing, run_publisher};

/// The header (NATS) or header-table entry (AMQP) a dead letter carries its reason in.
pub const REASON_HEADER: &str = "Dedupd-Dead-Letter-Reason";
/// The header naming the field at fault in a dead letter.
pub const FIELD_HEADER: &str = "Dedupd-Dead-Letter-Field";
/// The header naming the reason's code (`unmappable`, `invalid`, `conflict`).
pub const CODE_HEADER: &str = "Dedupd-Dead-Letter-Code";
/// The header naming the source of a dead letter.
pub const SOURCE_HEADER: &str = "Dedupd-Source";
/// The header naming the event (source and broker position) of a dead letter.
pub const EVENT_HEADER: &str = "Dedupd-Event";

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// The outbox holds it: `created` the first time, else it was already accepted under the
    /// key (a redelivery or a producer's duplicate). Acknowledge.
    Accepted {
        /// The idempotency key.
        key: String,
        /// Stored now (false: already there).
        created: bool,
    },
    /// It cannot become a notification: publish it to the dead letter with the reason, then
    /// acknowledge.
    DeadLetter(DeadLetter),
    /// The outbox could not take it now (unavailable, or the same key is being accepted right
    /// now): keep the message, try again later.
    Retry {
        /// Why.
        reason: String,
    },
}

/// Why an event goes to the dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// `unmappable` (the mapping failed), `invalid` (the notification was refused: a field),
    /// `conflict` (the key was accepted before with other content; recorded, not sent).
    pub code: &'static str,
    /// The field at fault.
    pub field: String,
    /// The reason, naming the event, without its values.
    pub reason: String,
}

/// One event through the accept path. Never panics on the event's content.
pub async fn handle(api: &NotifyApi, source: &Source, event: &Event<'_>) -> Disposition {
    let mapped = match map_event(&source.mapping, event) {
        Ok(m) => m,
        Err(e) => {
            return Disposition::DeadLetter(DeadLetter {
                code: "unmappable",
                field: e.field.clone(),
                reason: e.to_string(),
            });
        }
    };
    match api.submit(&mapped.key, &mapped.notification).await {
        Ok(Submitted::Created(_)) => Disposition::Accepted {
            key: mapped.key,
            created: true,
        },
        Ok(Submitted::Replayed(_)) => Disposition::Accepted {
            key: mapped.key,
            created: false,
        },
        Err(e) => {
            let env = e.envelope().error;
            match env.status {
                409 | 503 => Disposition::Retry {
                    reason: format!("{} {}", env.status, env.code),
                },
                status => {
                    let code = match env.code.as_str() {
                        "idempotency_key_reused" => "conflict",
                        _ if status >= 500 => "internal",
                        _ => "invalid",
                    };
                    let field = env.field.unwrap_or_default();
                    Disposition::DeadLetter(DeadLetter {
                        code,
                        reason: format!(
                            "event {}: `{field}`: {} ({})",
                            event.id, env.message, env.code
                        ),
                        field,
                    })
                }
            }
        }
    }
}

/// The pause before the `attempt`-th retry (from 0): 50 ms doubling to at most 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)).min(2_000))
}

/// Runs `source`'s consumer until `shutdown` resolves: connects, consumes, and after a broken
/// connection or a broker that is not there yet, connects again (with a capped backoff; each
/// failure is logged once per attempt, the URL never).
pub async fn run_source(api: NotifyApi, source: Source, shutdown: impl Future<Output = ()> + Send) {
    let work = async {
        let mut attempt = 0u32;
        loop {
            let result = match &source.endpoint {
                Endpoint::Nats { .. } => nats::consume(&api, &source).await,
                Endpoint::Amqp { .. } => amqp::consume(&api, &source).await,
            };
            match result {
                Ok(()) => attempt = 0,
                Err(e) => {
                    tracing::error!(source = %source.name, error = %e,
                        "Broker source stopped; connecting again.");
                    attempt = attempt.saturating_add(1);
                }
            }
            tokio::time::sleep(backoff(attempt + 4)).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
}

/// Runs `disposition`'s retries and returns the final one: while the outbox cannot take the
/// event, waits (capped backoff) and tries again, holding the message (so the source stops
/// pulling once every in-flight slot waits).
pub(crate) async fn settle(api: &NotifyApi, source: &Source, event: &Event<'_>) -> Disposition {
    let mut attempt = 0u32;
    loop {
        match handle(api, source, event).await {
            Disposition::Retry { reason } => {
                // A 409 is the same key being accepted right now (a duplicate in flight): routine.
                if reason.starts_with("409") {
                    tracing::debug!(source = %source.name, event = %event.id, %reason,
                        "The same key is being accepted; retrying.");
                } else if attempt == 0 || attempt.is_multiple_of(50) {
                    tracing::warn!(source = %source.name, event = %event.id, %reason,
                        "The outbox cannot take the event now; holding it and retrying.");
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
            done => return done,
        }
    }
}

/// Errors of a consumer: a broker that cannot be reached or refuses an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// NATS / JetStream.
    #[error("NATS: {0}")]
    Nats(String),
    /// RabbitMQ.
    #[error("AMQP: {0}")]
    Amqp(String),
    /// A webhook answered with a failure (it is retried, and disabled after repeated ones).
    #[error("webhook {0}")]
    Webhook(String),
    /// A URL that cannot be used (the URL itself is not repeated: it may hold a password).
    #[error("the broker URL is not usable: {0}")]
    Url(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(40), Duration::from_secs(2));
    }
}
