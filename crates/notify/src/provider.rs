//! Senders: where the relay sends a notification. The relay holds them through the platform
//! seam ([`NotificationSender`], from `dedupd-platform`), so a platform's sender (Genesys
//! agentless messages in `dedupd-genesys`) and the generic HTTP provider here are one kind of
//! thing to it. Each states its capabilities; its [`Ambiguity`] policy follows from them
//! ([`SenderCapabilities::ambiguity`]):
//! - [`Ambiguity::RetrySameKey`]: the provider dedupes on `Idempotency-Key` (the generic HTTP
//!   provider by default), so after a timeout or 5xx the relay sends again with the same key.
//! - [`Ambiguity::Reconcile`]: it does not, but it can be read back (Genesys agentless
//!   messages): an ambiguous attempt ends `unknown`, and the relay reads back what the platform
//!   has ([`NotificationSender::find`]) before anything else; it resends only when the
//!   read-back shows the message did not go out.
//! - [`Ambiguity::Report`]: it does not dedupe and cannot be read back: an ambiguous attempt
//!   ends `unknown` for good and is reported.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dedupd_core::notification::NotificationRequest;
use dedupd_http_client::{RetryAction, classify_status, parse_retry_after};
use dedupd_platform::messaging::BoxFuture;
pub use dedupd_platform::notify::{
    Ambiguity, NotificationSender, Readback, SendResult, SenderCapabilities,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::NotifyError;

/// The senders the relay works with, by provider name.
pub type Senders = BTreeMap<String, Arc<dyn NotificationSender>>;

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

    /// The provider `[notifications.providers.<name>]` (`type = "http"`) configures: its
    /// bearer token from the environment variable `token_env` names.
    pub fn configured(
        name: &str,
        url: &str,
        token_env: Option<&str>,
        dedupes_on_key: bool,
        timeout: Duration,
    ) -> Result<Self, NotifyError> {
        let token = match token_env {
            Some(var) => Some(SecretString::from(std::env::var(var).map_err(|_| {
                NotifyError::Config(format!(
                    "provider `{name}`: environment variable {var} is not set"
                ))
            })?)),
            None => None,
        };
        Self::new(url.to_owned(), token, dedupes_on_key, timeout)
            .map_err(|e| NotifyError::Config(format!("provider `{name}`: {e}")))
    }

    async fn send_one(&self, id: &str, req: &NotificationRequest) -> SendResult {
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
/// status API ([`dedupd_platform::notify::status_summary`]): the status and its reason phrase,
/// and the provider's error code when it is found in neither the recipient nor the text.
pub(crate) fn error_summary(
    status: reqwest::StatusCode,
    code: Option<&str>,
    req: &NotificationRequest,
) -> String {
    dedupd_platform::notify::status_summary(
        status.as_u16(),
        status.canonical_reason(),
        code,
        &[req.to.as_str(), req.text.as_str()],
    )
}

impl NotificationSender for HttpProvider {
    fn capabilities(&self) -> SenderCapabilities {
        SenderCapabilities {
            dedupes_on_key: self.dedupes,
            read_back: false,
        }
    }

    fn send<'a>(&'a self, id: &'a str, req: &'a NotificationRequest) -> BoxFuture<'a, SendResult> {
        Box::pin(self.send_one(id, req))
    }

    fn find<'a>(
        &'a self,
        _id: &'a str,
        _req: &'a NotificationRequest,
        _since: DateTime<Utc>,
        _until: DateTime<Utc>,
    ) -> BoxFuture<'a, Readback> {
        Box::pin(std::future::ready(Readback::Failed(
            "this provider has no read-back".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use dedupd_core::notification::Channel;

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
