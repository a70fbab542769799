//! The notification seam: a sender the relay hands one attempt at a time, what an attempt came
//! to, and what the sender can do about an ambiguous one.
//!
//! A sender states two capabilities ([`SenderCapabilities`]); the relay's policy for an
//! attempt that may or may not have gone out ([`Ambiguity`]) follows from them, never from
//! which vendor it is:
//! - it dedupes on the key → [`Ambiguity::RetrySameKey`]: send again with the same key;
//! - else it can be read back → [`Ambiguity::Reconcile`]: mark `unknown`, read back
//!   ([`NotificationSender::find`]), resend only when certainly not sent (Genesys agentless
//!   messages; NICE CXone DFO outbound, which has no idempotency key and is read back through
//!   `GET /dfo/3.0/messages`);
//! - neither → [`Ambiguity::Report`]: `unknown` for good, reported.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dedupd_core::notification::NotificationRequest;

use crate::messaging::BoxFuture;

/// What one send attempt came to. Reasons are value-free: no recipient, no text.
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
    /// The read-back itself failed (value-free).
    Failed(String),
}

/// How a sender's ambiguous outcomes are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// Resend with the same key (the provider dedupes on it).
    RetrySameKey,
    /// Mark `unknown`, read back, resend only if certainly not sent.
    Reconcile,
    /// Mark `unknown` and report.
    Report,
}

/// What a sender can do beyond sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderCapabilities {
    /// The provider dedupes on the key passed to [`NotificationSender::send`]: sending twice
    /// with one key delivers once.
    pub dedupes_on_key: bool,
    /// [`NotificationSender::find`] can tell whether a message went out.
    pub read_back: bool,
}

impl SenderCapabilities {
    /// The policy for ambiguous outcomes these capabilities allow: deduping wins (a resend
    /// settles it), then read-back, else report.
    pub fn ambiguity(self) -> Ambiguity {
        if self.dedupes_on_key {
            Ambiguity::RetrySameKey
        } else if self.read_back {
            Ambiguity::Reconcile
        } else {
            Ambiguity::Report
        }
    }
}

/// A sender of notifications (SMS, WhatsApp, e-mail…) on some platform or gateway.
pub trait NotificationSender: std::fmt::Debug + Send + Sync + 'static {
    /// What it can do; constant for the sender's life.
    fn capabilities(&self) -> SenderCapabilities;

    /// Sends one attempt of `req`. `id` is the notification's id: the provider-facing key,
    /// the same on every attempt (a sender that dedupes uses it as its idempotency key).
    fn send<'a>(&'a self, id: &'a str, req: &'a NotificationRequest) -> BoxFuture<'a, SendResult>;

    /// Reads back whether notification `id` (`req`) went out in `[since, until]`. A sender
    /// without [`SenderCapabilities::read_back`] answers [`Readback::Failed`].
    fn find<'a>(
        &'a self,
        id: &'a str,
        req: &'a NotificationRequest,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Readback>;
}

/// The longest machine-readable error code kept from a provider's answer.
pub const MAX_CODE_CHARS: usize = 64;

/// A value-free summary of a provider's error answer, fit for `last_error`, logs and the
/// status API: the status code and its reason phrase (`reason`, e.g. `Bad Request`), and the
/// provider's error code when it looks like one ([`is_opaque_code`] against `values`, the
/// request's recipient, text and other values that must not be shown). Never the body's
/// words: a provider that echoes the request (the phone number, the e-mail address, the text)
/// would have them stored and shown.
pub fn status_summary(
    status: u16,
    reason: Option<&str>,
    code: Option<&str>,
    values: &[&str],
) -> String {
    let mut out = status.to_string();
    if let Some(reason) = reason {
        out.push(' ');
        out.push_str(reason);
    }
    if let Some(code) = code.filter(|c| is_opaque_code(c, values)) {
        out.push_str(" (");
        out.push_str(code);
        out.push(')');
    }
    out
}

/// Whether `c` looks like a machine-readable code and not like a value: a short token of
/// letters, digits and `._:-` with at least one letter and few digits, found in none of
/// `values` (case-insensitively).
pub fn is_opaque_code(c: &str, values: &[&str]) -> bool {
    let lower = c.to_lowercase();
    !c.is_empty()
        && c.chars().count() <= MAX_CODE_CHARS
        && c.chars().any(|ch| ch.is_ascii_alphabetic())
        && c.chars().filter(char::is_ascii_digit).count() <= 4
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | ':' | '-'))
        && !values.iter().any(|v| v.to_lowercase().contains(&lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_keep_the_status_and_codes_never_values() {
        let values = ["+14155552671", "Your code is 4711"];
        assert_eq!(
            status_summary(
                400,
                Some("Bad Request"),
                Some("invalid_destination"),
                &values
            ),
            "400 Bad Request (invalid_destination)"
        );
        for code in [
            "14155552671",
            "ann@example.com",
            "code",
            "4711",
            &"x".repeat(65),
        ] {
            assert_eq!(
                status_summary(400, Some("Bad Request"), Some(code), &values),
                "400 Bad Request",
                "{code}"
            );
        }
        assert_eq!(status_summary(599, None, None, &values), "599");
    }

    #[test]
    fn the_policy_follows_the_capabilities() {
        let caps = |dedupes_on_key, read_back| SenderCapabilities {
            dedupes_on_key,
            read_back,
        };
        assert_eq!(caps(true, false).ambiguity(), Ambiguity::RetrySameKey);
        assert_eq!(caps(true, true).ambiguity(), Ambiguity::RetrySameKey);
        assert_eq!(caps(false, true).ambiguity(), Ambiguity::Reconcile);
        assert_eq!(caps(false, false).ambiguity(), Ambiguity::Report);
    }
}
