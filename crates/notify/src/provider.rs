//! Providers: where the relay sends a notification, and what an ambiguous outcome means there.
//!
//! Every provider states its [`Ambiguity`] policy:
//! - [`Ambiguity::RetrySameKey`]: the provider dedupes on `Idempotency-Key` (the generic HTTP
//!   provider by default), so after a timeout or 5xx the relay sends again with the same key.
//! - [`Ambiguity::Reconcile`]: it does not (Genesys agentless messages): an ambiguous attempt
//!   ends `unknown`, and the relay reads back what the platform has ([`Provider::find`]) before
//!   anything else; it resends only when the read-back shows the message did not go out.
//! - [`Ambiguity::Report`]: it does not dedupe and cannot be read back: an ambiguous attempt
//!   ends `unknown` for good and is reported.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dedupd_core::notification::{Channel, NotificationRequest};
use dedupd_genesys::GenesysClient;
use dedupd_genesys::agentless::AgentlessMessage;
use dedupd_genesys::{RetryAction, classify_status, parse_retry_after};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// What one send attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    /// Accepted by the provider.
    Delivered {
        /// The provider's message id.
        id: Option<String>,
    },
    /// Not sent; may pass (429, 503, connection refused…).
    Transient {
        /// Why.
        reason: String,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Not sent and never will be (4xx validation…): the provider's reason.
    Permanent {
        /// Why.
        reason: String,
    },
    /// May or may not have gone out (a timeout after sending, a 504).
    Ambiguous {
        /// Why.
        reason: String,
    },
}

/// What a read-back found.
#[derive(Debug, Clone, PartialEq)]
pub enum Readback {
    /// The message went out; its id.
    Found(String),
    /// It did not go out.
    NotFound,
    /// The read-back itself failed.
    Failed(String),
}

/// How a provider's ambiguous outcomes are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// Resend with the same key (the provider dedupes on it).
    RetrySameKey,
    /// Mark `unknown`, read back, resend only if certainly not sent.
    Reconcile,
    /// Mark `unknown` and report.
    Report,
}

/// The generic HTTP provider.
#[derive(Clone)]
pub struct HttpProvider {
    http: reqwest::Client,
    url: String,
    token: Option<SecretString>,
    dedupes: bool,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("dedupes", &self.dedupes)
            .finish()
    }
}

impl HttpProvider {
    /// A provider posting to `url`.
    pub fn new(
        url: String,
        token: Option<SecretString>,
        dedupes_on_key: bool,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("dedupd-notify/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            url,
            token,
            dedupes: dedupes_on_key,
        })
    }

    async fn send(&self, id: &str, req: &NotificationRequest) -> SendResult {
        let body = json!({
            "id": id,
            "channel": req.channel,
            "to": req.to,
            "text": req.text,
            "customer_id": req.customer_id,
            "event_type": req.event_type,
        });
        let mut rb = self
            .http
            .post(&self.url)
            // The same key on every attempt: the gateway dedupes on it. Our id, not the
            // producer's key, so a key reused after it expired is a new message there too.
            .header("Idempotency-Key", id)
            .json(&body);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t.expose_secret());
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return SendResult::Transient {
                    reason: "connection failed".into(),
                    retry_after: None,
                };
            }
            Err(e) if e.is_timeout() => {
                return SendResult::Ambiguous {
                    reason: "request timed out".into(),
                };
            }
            Err(e) if e.is_builder() => {
                return SendResult::Permanent {
                    reason: format!("request error: {e}"),
                };
            }
            Err(_) => {
                return SendResult::Ambiguous {
                    reason: "connection reset or broken after sending".into(),
                };
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        // The key makes the request idempotent at the gateway.
        match classify_status(status, &headers, true) {
            RetryAction::Successful => SendResult::Delivered {
                id: parsed
                    .as_ref()
                    .and_then(|v| v.get("id").or_else(|| v.get("message_id")))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            },
            RetryAction::Retry { reason, .. } if status.is_server_error() => {
                // A 5xx after the request arrived: it may have been applied. Same key again.
                SendResult::Ambiguous {
                    reason: reason.into_owned(),
                }
            }
            RetryAction::Retry { reason, .. } => SendResult::Transient {
                reason: reason.into_owned(),
                retry_after: parse_retry_after(&headers),
            },
            RetryAction::OutcomeUnknown { reason } => SendResult::Ambiguous {
                reason: reason.into_owned(),
            },
            RetryAction::RefreshToken | RetryAction::DontRetry { .. } => SendResult::Permanent {
                reason: format!("{status}: {}", provider_reason(parsed.as_ref(), &text)),
            },
        }
    }
}

/// The provider's own words, from the usual error-body shapes, cut to 300 characters.
fn provider_reason(v: Option<&serde_json::Value>, raw: &str) -> String {
    let from_json = v.and_then(|v| {
        [
            v.get("message"),
            v.get("detail"),
            v.get("error").and_then(|e| e.get("message")),
            v.get("error"),
            v.get("errors")
                .and_then(|e| e.get(0))
                .and_then(|e| e.get("detail")),
        ]
        .into_iter()
        .flatten()
        .find_map(|x| x.as_str().map(str::to_owned))
    });
    let s = from_json.unwrap_or_else(|| raw.trim().to_owned());
    s.chars().take(300).collect()
}

/// Genesys Cloud agentless messages.
#[derive(Debug, Clone)]
pub struct AgentlessProvider {
    client: GenesysClient,
    from: std::collections::BTreeMap<Channel, String>,
}

impl AgentlessProvider {
    /// A provider sending through `client`, from `from[channel]`.
    pub fn new(client: GenesysClient, from: std::collections::BTreeMap<Channel, String>) -> Self {
        Self { client, from }
    }

    fn message(&self, req: &NotificationRequest) -> Result<AgentlessMessage, String> {
        let from = self
            .from
            .get(&req.channel)
            .ok_or_else(|| format!("no sender configured for {}", req.channel))?;
        let messenger = match req.channel {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            other => return Err(format!("agentless messages cannot send {other}")),
        };
        Ok(AgentlessMessage {
            from_address: from.clone(),
            to_address: req.to.clone(),
            to_address_messenger_type: messenger.into(),
            text_body: Some(req.text.clone()),
            ..Default::default()
        })
    }

    async fn send(&self, req: &NotificationRequest) -> SendResult {
        let msg = match self.message(req) {
            Ok(m) => m,
            Err(reason) => return SendResult::Permanent { reason },
        };
        match self.client.agentless().send(&msg).await {
            Ok(sent) => SendResult::Delivered { id: Some(sent.id) },
            Err(e) if e.is_outcome_unknown() => SendResult::Ambiguous {
                reason: e.to_string(),
            },
            Err(e) if e.is_transient() => SendResult::Transient {
                reason: e.to_string(),
                retry_after: match &e {
                    dedupd_genesys::Error::Api(a) => a.retry_after,
                    _ => None,
                },
            },
            Err(e) => SendResult::Permanent {
                reason: e.to_string(),
            },
        }
    }

    async fn find(
        &self,
        req: &NotificationRequest,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Readback {
        // A message that cannot be built was never sent.
        let Ok(msg) = self.message(req) else {
            return Readback::NotFound;
        };
        match self
            .client
            .agentless()
            .find_sent(&msg.from_address, &msg.to_address, &req.text, since, until)
            .await
        {
            Ok(Some(found)) => Readback::Found(found.message_id),
            Ok(None) => Readback::NotFound,
            Err(e) => Readback::Failed(e.to_string()),
        }
    }
}

/// A configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Generic HTTP.
    Http(HttpProvider),
    /// Genesys agentless messages.
    Agentless(AgentlessProvider),
}

impl Provider {
    /// Its policy for ambiguous outcomes.
    pub fn ambiguity(&self) -> Ambiguity {
        match self {
            Provider::Http(h) if h.dedupes => Ambiguity::RetrySameKey,
            Provider::Http(_) => Ambiguity::Report,
            Provider::Agentless(_) => Ambiguity::Reconcile,
        }
    }

    /// Sends one attempt. `id` is the notification's id (the provider-facing idempotency key).
    pub async fn send(&self, id: &str, req: &NotificationRequest) -> SendResult {
        match self {
            Provider::Http(h) => h.send(id, req).await,
            Provider::Agentless(a) => a.send(req).await,
        }
    }

    /// Reads back whether `req` went out in `[since, until]` (only [`Ambiguity::Reconcile`]
    /// providers can; the others answer `Failed`).
    pub async fn find(
        &self,
        req: &NotificationRequest,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Readback {
        match self {
            Provider::Http(_) => Readback::Failed("this provider has no read-back".into()),
            Provider::Agentless(a) => a.find(req, since, until).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_reasons_come_from_the_usual_shapes() {
        let v = serde_json::json!({"error": {"message": "invalid number"}});
        assert_eq!(provider_reason(Some(&v), ""), "invalid number");
        let v = serde_json::json!({"errors": [{"detail": "blocked"}]});
        assert_eq!(provider_reason(Some(&v), ""), "blocked");
        assert_eq!(provider_reason(None, "  plain text "), "plain text");
        assert_eq!(provider_reason(None, &"x".repeat(500)).len(), 300);
    }
}
