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
                // The error's words may carry the URL (and its credentials): not stored.
                return SendResult::Permanent {
                    reason: "the request could not be built".into(),
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
        let summary = || error_summary(status, provider_code(parsed.as_ref()), req);
        match classify_status(status, &headers, true) {
            RetryAction::Successful => SendResult::Delivered {
                id: parsed
                    .as_ref()
                    .and_then(|v| v.get("id").or_else(|| v.get("message_id")))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            },
            // A 5xx after the request arrived: it may have been applied.
            RetryAction::Retry { .. } | RetryAction::OutcomeUnknown { .. }
                if status.is_server_error() =>
            {
                SendResult::Ambiguous { reason: summary() }
            }
            RetryAction::Retry { .. } => SendResult::Transient {
                reason: summary(),
                retry_after: parse_retry_after(&headers),
            },
            RetryAction::OutcomeUnknown { .. } => SendResult::Ambiguous { reason: summary() },
            RetryAction::RefreshToken | RetryAction::DontRetry { .. } => {
                SendResult::Permanent { reason: summary() }
            }
        }
    }
}

/// The longest machine-readable error code kept from a provider's answer.
const MAX_CODE_CHARS: usize = 64;

/// The provider's machine-readable error code, from the usual error-body shapes (`code`,
/// `error.code`, `errors[0].code`, or `error` when it is a bare string such as
/// `invalid_request`). Its words (`message`, `detail`) are never taken: providers echo the
/// recipient and the text there.
fn provider_code(v: Option<&serde_json::Value>) -> Option<&str> {
    let v = v?;
    [
        v.get("code"),
        v.get("error").and_then(|e| e.get("code")),
        v.get("errors")
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("code")),
        v.get("error"),
    ]
    .into_iter()
    .flatten()
    .find_map(serde_json::Value::as_str)
}

/// A value-free summary of a provider's error answer, fit for `last_error`, logs and the
/// status API: the status code and its reason phrase, and the provider's error code when it
/// looks like one (a short token of letters, digits and `._:-` with few digits, found in
/// neither the recipient nor the text). Never the body's words: a provider that echoes the
/// request (the phone number, the e-mail address, the text) would have them stored and shown.
pub(crate) fn error_summary(
    status: reqwest::StatusCode,
    code: Option<&str>,
    req: &NotificationRequest,
) -> String {
    let mut out = status.as_u16().to_string();
    if let Some(reason) = status.canonical_reason() {
        out.push(' ');
        out.push_str(reason);
    }
    if let Some(code) = code.filter(|c| is_code(c, req)) {
        out.push_str(" (");
        out.push_str(code);
        out.push(')');
    }
    out
}

fn is_code(c: &str, req: &NotificationRequest) -> bool {
    let lower = c.to_lowercase();
    !c.is_empty()
        && c.chars().count() <= MAX_CODE_CHARS
        && c.chars().any(|ch| ch.is_ascii_alphabetic())
        && c.chars().filter(char::is_ascii_digit).count() <= 4
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | ':' | '-'))
        && !req.to.to_lowercase().contains(&lower)
        && !req.text.to_lowercase().contains(&lower)
}

/// A value-free summary of a Genesys client error (its `Display` carries the platform's
/// message, which may echo the request).
fn genesys_summary(e: &dedupd_genesys::Error, req: &NotificationRequest) -> String {
    match e {
        dedupd_genesys::Error::Api(_) | dedupd_genesys::Error::Token(_) => match e.status() {
            Some(status) => {
                let body = e.error_body();
                let s = error_summary(status, body.and_then(|b| b.code.as_deref()), req);
                match body.and_then(|b| b.context_id.as_deref()) {
                    // Genesys support asks for it; an opaque id.
                    Some(ctx) if is_code(ctx, req) || uuid_like(ctx) => {
                        format!("{s}; contextId {ctx}")
                    }
                    _ => s,
                }
            }
            None => "the platform refused the request".into(),
        },
        dedupd_genesys::Error::OutcomeUnknown(_) => match e.status() {
            Some(status) => format!(
                "{}; it may have been applied",
                error_summary(status, None, req)
            ),
            None => "the request timed out after it was sent; it may have been applied".into(),
        },
        dedupd_genesys::Error::Transport { transient, .. } => if *transient {
            "the connection failed"
        } else {
            "the request failed without an answer"
        }
        .into(),
        dedupd_genesys::Error::Decode { status, .. } => {
            format!(
                "{}; the answer could not be read",
                error_summary(*status, None, req)
            )
        }
        dedupd_genesys::Error::Budget(_) => "the shared rate budget is unavailable".into(),
        dedupd_genesys::Error::InvalidRequest(_) => {
            "the message breaks a documented limit of the platform".into()
        }
        dedupd_genesys::Error::Config(_) => "the Genesys client is misconfigured".into(),
        _ => "the platform call failed".into(),
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
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
            // A 5xx answers a request that reached the platform: it may have been applied
            // (the platform has no key to dedupe on, so it is read back, never resent blindly).
            Err(e)
                if e.is_outcome_unknown()
                    || matches!(&e, dedupd_genesys::Error::Api(a)
                        if a.status.is_server_error()
                            && a.status != reqwest::StatusCode::NOT_IMPLEMENTED) =>
            {
                SendResult::Ambiguous {
                    reason: genesys_summary(&e, req),
                }
            }
            Err(e) if e.is_transient() => SendResult::Transient {
                reason: genesys_summary(&e, req),
                retry_after: match &e {
                    dedupd_genesys::Error::Api(a) => a.retry_after,
                    _ => None,
                },
            },
            Err(e) => SendResult::Permanent {
                reason: genesys_summary(&e, req),
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
            Err(e) => Readback::Failed(genesys_summary(&e, req)),
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

    fn req() -> NotificationRequest {
        NotificationRequest {
            channel: Channel::Sms,
            to: "+14155552671".into(),
            text: "Your code is 4711".into(),
            template: None,
            customer_id: None,
            event_type: None,
            provider: None,
            not_after: None,
        }
    }

    #[test]
    fn error_summaries_keep_the_status_and_codes_never_values() {
        let s = reqwest::StatusCode::BAD_REQUEST;
        let r = req();
        let v = serde_json::json!({"error": {"code": "invalid_destination",
            "message": "+14155552671 cannot receive Your code is 4711"}});
        assert_eq!(
            error_summary(s, provider_code(Some(&v)), &r),
            "400 Bad Request (invalid_destination)"
        );
        let v = serde_json::json!({"errors": [{"code": "blocked"}]});
        assert_eq!(provider_code(Some(&v)), Some("blocked"));
        // Codes that are values: a number, an address, a word of the text, too long.
        for code in [
            "14155552671",
            "+14155552671",
            "ann@example.com",
            "code",
            "4711",
            &"x".repeat(65),
        ] {
            assert_eq!(
                error_summary(s, Some(code), &r),
                "400 Bad Request",
                "{code}"
            );
        }
        assert_eq!(
            error_summary(reqwest::StatusCode::from_u16(599).unwrap(), None, &r),
            "599"
        );
    }
}
