//! Notifications: the pure rules behind `POST /v1/notifications`.
//!
//! - [`NotificationRequest::parse`] validates a request body and normalizes the recipient
//!   (E.164 for `sms`, `whatsapp`, `voice`; a lowercased address for `email`).
//! - [`fingerprint`]: SHA-256 over the **canonical JSON** of the body ([`canonical_json`]), so the
//!   same `Idempotency-Key` with the same body (whatever the key order or whitespace) replays, and
//!   a different body is refused.
//! - [`render`]: `template` + `params` → text (`{{name}}` placeholders).
//! - [`content_guard_key`]: (customer, channel, rendered text) → a key that catches producers
//!   that mint a new `Idempotency-Key` per retry.
//! - [`Status`] and its state machine ([`Status::can_become`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::normalize::{email::normalize_email, phone::normalize_phone, text};

/// The longest text (rendered) a notification may carry, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest `Idempotency-Key`, in bytes (the IETF draft leaves it open; Stripe allows 255).
pub const MAX_KEY_BYTES: usize = 255;

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Text message.
    Sms,
    /// E-mail.
    Email,
    /// Voice call (text-to-speech).
    Voice,
    /// WhatsApp.
    Whatsapp,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 4] = [
        Channel::Sms,
        Channel::Email,
        Channel::Voice,
        Channel::Whatsapp,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Voice => "voice",
            Channel::Whatsapp => "whatsapp",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                RequestError::invalid("channel", "must be sms, email, voice or whatsapp")
            })
    }
}

/// Why a request body was refused. Messages name the field, never its value (values may be
/// phone numbers or e-mail addresses).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is not a JSON object.
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// A field is missing.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// A field has a wrong type or value.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A field the API does not know.
    #[error("unknown field `{0}`")]
    UnknownField(String),
}

impl RequestError {
    fn invalid(field: &str, reason: impl Into<String>) -> Self {
        RequestError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

const FIELDS: &[&str] = &[
    "channel",
    "to",
    "text",
    "template",
    "params",
    "customer_id",
    "event_type",
    "provider",
    "not_after",
];

/// A validated notification request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRequest {
    /// The channel.
    pub channel: Channel,
    /// The recipient, normalized (E.164 or lowercased e-mail).
    pub to: String,
    /// The text to send: `text`, or `template` rendered with `params`.
    pub text: String,
    /// The template, when the text was rendered from one.
    pub template: Option<String>,
    /// The producer's customer id.
    pub customer_id: Option<String>,
    /// The business event (`order_placed`, …).
    pub event_type: Option<String>,
    /// A provider asked for by name (must be configured).
    pub provider: Option<String>,
    /// Drop the notification if it cannot go out before then.
    pub not_after: Option<DateTime<Utc>>,
}

fn opt_string(
    obj: &serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RequestError::invalid(field, "must be a string")),
    }
}

impl NotificationRequest {
    /// Validates a request body. Unknown fields are refused (a typo must not silently change
    /// what is sent); `null` counts as absent.
    pub fn parse(body: &Value) -> Result<Self, RequestError> {
        let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(RequestError::UnknownField(unknown.clone()));
        }
        let channel: Channel = opt_string(obj, "channel")?
            .ok_or(RequestError::Missing("channel"))?
            .parse()?;
        let raw_to = opt_string(obj, "to")?.ok_or(RequestError::Missing("to"))?;
        let to = match channel {
            Channel::Email => normalize_email(&raw_to).map_err(|e| {
                RequestError::invalid("to", format!("is not an e-mail address: {e}"))
            })?,
            _ => normalize_phone(&raw_to, None).map_err(|e| {
                RequestError::invalid("to", format!("is not an E.164 phone number: {e}"))
            })?,
        }
        .ok_or(RequestError::Missing("to"))?;

        let text_field = opt_string(obj, "text")?;
        let template = opt_string(obj, "template")?;
        let params = match obj.get("params") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(RequestError::invalid("params", "must be an object")),
        };
        let text = match (text_field, &template) {
            (Some(_), Some(_)) => {
                return Err(RequestError::invalid(
                    "text",
                    "and `template` are exclusive",
                ));
            }
            (None, None) => return Err(RequestError::Missing("text")),
            (Some(t), None) => {
                if params.is_some() {
                    return Err(RequestError::invalid("params", "needs a `template`"));
                }
                t
            }
            (None, Some(tpl)) => {
                let empty = serde_json::Map::new();
                render(tpl, params.unwrap_or(&empty))?
            }
        };
        if text.trim().is_empty() {
            return Err(RequestError::invalid("text", "must not be empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(RequestError::invalid(
                "text",
                format!("is longer than {MAX_TEXT_CHARS} characters"),
            ));
        }
        let not_after = opt_string(obj, "not_after")?
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| {
                        RequestError::invalid("not_after", "must be an RFC 3339 timestamp")
                    })
            })
            .transpose()?;
        Ok(Self {
            channel,
            to,
            text,
            template,
            customer_id: opt_string(obj, "customer_id")?.and_then(|s| text::clean_opt(&s)),
            event_type: opt_string(obj, "event_type")?,
            provider: opt_string(obj, "provider")?,
            not_after,
        })
    }

    /// Who the content guard counts as "the same customer": the producer's customer id, or the
    /// normalized recipient when there is none.
    pub fn guard_customer(&self) -> &str {
        self.customer_id.as_deref().unwrap_or(&self.to)
    }
}

/// Renders `template`: every `{{name}}` (spaces inside the braces allowed) is replaced by
/// `params[name]` (strings as they are, numbers and booleans as JSON writes them). A missing or
/// non-scalar parameter, or an unclosed `{{`, is an error.
pub fn render(
    template: &str,
    params: &serde_json::Map<String, Value>,
) -> Result<String, RequestError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| RequestError::invalid("template", "has an unclosed `{{`"))?;
        let name = after[..end].trim();
        let value = match params.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            Some(_) => {
                return Err(RequestError::invalid(
                    &format!("params.{name}"),
                    "must be a string, number or boolean",
                ));
            }
            None => {
                return Err(RequestError::invalid(
                    &format!("params.{name}"),
                    "is used by the template but missing",
                ));
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes `v` as canonical JSON: object members sorted by key (byte order), members whose value
/// is `null` left out (absent and `null` mean the same in this API), no whitespace, strings and
/// numbers as serde_json writes them.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k)
                .collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(inner) = m.get(k) {
                    write_canonical(inner, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The request fingerprint: `SHA-256("dedupd.notification.v1" ‖ 0x1F ‖ canonical_json(body))`.
pub fn fingerprint(body: &Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"dedupd.notification.v1\x1f");
    h.update(canonical_json(body).as_bytes());
    h.finalize().into()
}

/// The content-guard key: `SHA-256("dedupd.notification.guard.v1" ‖ 0x1F ‖ customer ‖ 0x1E ‖
/// channel ‖ 0x1E ‖ text)`, with the text NFKC-cleaned (whitespace runs collapsed) so that
/// cosmetic differences do not defeat the guard.
pub fn content_guard_key(customer: &str, channel: Channel, rendered_text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"dedupd.notification.guard.v1\x1f");
    h.update(customer.as_bytes());
    h.update(b"\x1e");
    h.update(channel.as_str().as_bytes());
    h.update(b"\x1e");
    h.update(text::clean(rendered_text).as_bytes());
    h.finalize().into()
}

/// Checks an `Idempotency-Key`: 1–255 bytes of visible ASCII (no spaces or controls).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_BYTES && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, waiting for the relay (first attempt or a retry).
    Pending,
    /// A relay holds it and is sending (or died while sending: the lease expires).
    Sending,
    /// The provider accepted it.
    Delivered,
    /// Given up: a permanent error, the attempt or age cap, or suppressed by the content guard.
    Failed,
    /// An attempt may or may not have gone out; being reconciled (or reconciliation gave up).
    Unknown,
    /// `not_after` passed before it could go out.
    Expired,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Sending,
        Status::Delivered,
        Status::Failed,
        Status::Unknown,
        Status::Expired,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
            Status::Expired => "expired",
        }
    }

    /// No relay will touch it again. `unknown` is not final while it is being reconciled; the
    /// store knows (no due time) when it is.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed | Status::Expired)
    }

    /// The state machine: `pending → sending`; `sending →` anything but `pending`-without-an-
    /// attempt is allowed (retry goes back to `pending`); `unknown → sending` (reconcile or resend)
    /// or `unknown →` a final state; final states never change; a lease that expired turns
    /// `sending → sending` (another relay takes over).
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Sending | Expired | Failed)
                | (
                    Sending,
                    Pending | Sending | Delivered | Failed | Unknown | Expired
                )
                | (Unknown, Sending | Delivered | Failed | Expired | Unknown)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parse_normalizes_and_renders() {
        let r = NotificationRequest::parse(&json!({
            "channel": "sms", "to": "+1 (415) 555-2671",
            "template": "Hi {{ name }}, order {{n}} ships", "params": {"name": "Ann", "n": 42},
            "customer_id": " C-1 ", "not_after": "2030-01-01T10:00:00+02:00"
        }))
        .unwrap();
        assert_eq!(r.to, "+14155552671");
        assert_eq!(r.text, "Hi Ann, order 42 ships");
        assert_eq!(r.customer_id.as_deref(), Some("C-1"));
        assert_eq!(
            r.not_after.unwrap().to_rfc3339(),
            "2030-01-01T08:00:00+00:00"
        );
        let e = NotificationRequest::parse(
            &json!({"channel":"email","to":" Ann@Example.COM ","text":"x"}),
        )
        .unwrap();
        assert_eq!(e.to, "ann@example.com");
        assert_eq!(e.guard_customer(), "ann@example.com");
    }

    #[test]
    fn parse_refuses_bad_bodies_naming_the_field_not_the_value() {
        let cases = [
            (json!([1]), "the body must be a JSON object"),
            (
                json!({"to":"+14155552671","text":"x"}),
                "`channel` is required",
            ),
            (
                json!({"channel":"fax","to":"+14155552671","text":"x"}),
                "`channel` must be",
            ),
            (
                json!({"channel":"sms","to":"12","text":"x"}),
                "`to` is not an E.164",
            ),
            (
                json!({"channel":"sms","to":"+14155552671"}),
                "`text` is required",
            ),
            (
                json!({"channel":"sms","to":"+14155552671","text":"x","template":"y"}),
                "exclusive",
            ),
            (
                json!({"channel":"sms","to":"+14155552671","template":"{{a}}"}),
                "`params.a` is used",
            ),
            (
                json!({"channel":"sms","to":"+14155552671","template":"{{a"}),
                "unclosed",
            ),
            (
                json!({"channel":"sms","to":"+14155552671","text":"x","nope":1}),
                "unknown field `nope`",
            ),
            (
                json!({"channel":"sms","to":"+14155552671","text":"x","not_after":"tomorrow"}),
                "RFC 3339",
            ),
            (
                json!({"channel":"sms","to":"+14155552671","text":"  "}),
                "must not be empty",
            ),
            (
                json!({"channel":5,"to":"+14155552671","text":"x"}),
                "must be a string",
            ),
        ];
        for (body, want) in cases {
            let err = NotificationRequest::parse(&body).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
            assert!(!err.contains("4155552671"), "error leaks the number: {err}");
        }
    }

    #[test]
    fn fingerprint_ignores_order_whitespace_and_nulls_but_not_values() {
        let a: Value =
            serde_json::from_str(r#"{"channel":"sms","to":"+1","text":"hi","customer_id":null}"#)
                .unwrap();
        let b: Value =
            serde_json::from_str("{ \"text\" : \"hi\",\n \"to\":\"+1\", \"channel\":\"sms\" }")
                .unwrap();
        let c: Value = serde_json::from_str(r#"{"channel":"sms","to":"+1","text":"hi!"}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_eq!(
            canonical_json(&a),
            r#"{"channel":"sms","text":"hi","to":"+1"}"#
        );
        // Pinned: changing the canonical form re-fingerprints every stored key.
        assert_eq!(
            hex(&fingerprint(&a)),
            hex(&{
                let mut h = Sha256::new();
                h.update(b"dedupd.notification.v1\x1f{\"channel\":\"sms\",\"text\":\"hi\",\"to\":\"+1\"}");
                <[u8; 32]>::from(h.finalize())
            })
        );
    }

    #[test]
    fn guard_key_separates_customer_channel_and_text() {
        let k = content_guard_key("C1", Channel::Sms, "Your code  is 1");
        assert_eq!(k, content_guard_key("C1", Channel::Sms, "Your code is 1"));
        assert_ne!(k, content_guard_key("C2", Channel::Sms, "Your code is 1"));
        assert_ne!(k, content_guard_key("C1", Channel::Email, "Your code is 1"));
        assert_ne!(k, content_guard_key("C1", Channel::Sms, "Your code is 2"));
        // The separator keeps ("a", "b c") and ("a b", "c") apart.
        assert_ne!(
            content_guard_key("a\u{1e}sms", Channel::Sms, "x"),
            content_guard_key("a", Channel::Sms, "sms\u{1e}x")
        );
    }

    #[test]
    fn keys_and_statuses() {
        assert!(valid_key("order-42:reminder"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
            if s.is_final() {
                assert!(
                    Status::ALL.iter().all(|n| !s.can_become(*n)),
                    "{s} is final"
                );
            }
        }
        assert!(Status::Pending.can_become(Status::Sending));
        assert!(
            !Status::Pending.can_become(Status::Delivered),
            "delivery needs an attempt"
        );
        assert!(Status::Unknown.can_become(Status::Sending));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_json_is_stable_json(v in arb_json()) {
            let c = canonical_json(&v);
            let back: Value = serde_json::from_str(&c).unwrap();
            // Re-canonicalizing is a fixed point, and pretty-printing does not change the print.
            prop_assert_eq!(canonical_json(&back), c.clone());
            let pretty: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
            prop_assert_eq!(fingerprint(&pretty), fingerprint(&v));
        }

        #[test]
        fn parse_and_render_never_panic(body in arb_json(), tpl in ".{0,30}") {
            let _ = NotificationRequest::parse(&body);
            let _ = render(&tpl, &serde_json::Map::new());
        }

        #[test]
        fn render_without_placeholders_is_identity(s in "[^{}]{0,40}") {
            prop_assert_eq!(render(&s, &serde_json::Map::new()).unwrap(), s);
        }
    }
}
