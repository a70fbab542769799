//! Errors of the client.
//!
//! Every fallible call returns [`Error`]. The questions a caller asks of an error have methods:
//!
//! - [`Error::is_transient`]: did it fail for a reason that may pass (429, 5xx except 501,
//!   timeouts, resets, the Redis budget being unreachable), so the same request can be sent again
//!   later? The client has already retried it within its [`RetryPolicy`](crate::RetryPolicy).
//! - [`Error::is_outcome_unknown`]: the request reached the platform but we do not know whether it
//!   took effect (a 504, or a timeout after sending a non-idempotent request). The work may have
//!   been applied: **reconcile** (read back) before sending it again.
//! - [`Error::is_unreachable`]: the client gave up on the platform after
//!   [`ClientConfig::give_up_after`](crate::ClientConfig::give_up_after) without any answer; the
//!   caller stops scheduling work. Also transient: running again later is safe.
//! - [`Error::rejected_entity_ids`]: a permanent error (4xx) that names the records it is about,
//!   e.g. one bad contact in an add-contacts batch. Put those in the reject file and resend the
//!   rest of the batch; see [`OutboundApi::add_contacts`](crate::OutboundApi::add_contacts).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

/// The Platform API's error body (`ErrorBody` in the API's schema).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Machine-readable code, e.g. `bad.request`, `too.many.requests.retry.after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// HTTP status the platform meant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Id of the entity the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// Name of the entity the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_name: Option<String>,
    /// The message with `{param}` placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_with_params: Option<String>,
    /// Values of the placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_params: Option<BTreeMap<String, String>>,
    /// Correlation id (`ININ-Correlation-Id`), quote it to Genesys support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Per-field or per-entity details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
    /// Nested errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorBody>,
    /// The limit that was hit, for limit errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<ErrorLimit>,
}

/// One entry of [`ErrorBody::details`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorDetail {
    /// Detail code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The field in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    /// The entity in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// The entity's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_name: Option<String>,
}

/// [`ErrorBody::limit`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorLimit {
    /// Limit key, e.g. `client.credentials.token.rate.per.minute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Limit namespace, e.g. `platform.api`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The limit's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
}

impl ErrorBody {
    /// Every entity id the body names: `entityId`, the details' and the nested errors'.
    /// Sorted, without duplicates.
    pub fn entity_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        self.collect_entity_ids(&mut ids);
        ids.sort();
        ids.dedup();
        ids
    }

    fn collect_entity_ids(&self, ids: &mut Vec<String>) {
        ids.extend(self.entity_id.iter().filter(|s| !s.is_empty()).cloned());
        ids.extend(
            self.details
                .iter()
                .filter_map(|d| d.entity_id.clone())
                .filter(|s| !s.is_empty()),
        );
        for nested in &self.errors {
            nested.collect_entity_ids(ids);
        }
    }

    fn summary(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => "no error body".to_owned(),
        }
    }
}

/// An error response of the Platform API (or of the token endpoint).
#[derive(Clone, Debug)]
pub struct ApiError {
    /// Method of the failed request.
    pub method: Method,
    /// Path of the failed request, without the query string.
    pub path: String,
    /// Response status.
    pub status: StatusCode,
    /// Parsed body; fields are `None` when the body was not an `ErrorBody`.
    pub body: ErrorBody,
    /// `Retry-After` of the last response, if any.
    pub retry_after: Option<Duration>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed with {} after {} attempt(s): {}",
            self.method,
            self.path,
            self.status,
            self.attempts,
            self.body.summary()
        )?;
        if let Some(context) = &self.body.context_id {
            write!(f, " (contextId {context})")?;
        }
        Ok(())
    }
}

/// A request whose effect is unknown: it may or may not have been applied.
#[derive(Clone, Debug)]
pub struct OutcomeUnknown {
    /// Method of the request.
    pub method: Method,
    /// Path of the request, without the query string.
    pub path: String,
    /// `Some(504)` for a gateway timeout; `None` when our own timeout fired after sending.
    pub status: Option<StatusCode>,
    /// Error body of the 504, if any.
    pub body: Option<ErrorBody>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = match self.status {
            Some(status) => format!("the platform answered {status}"),
            None => "the request timed out after it was sent".to_owned(),
        };
        write!(
            f,
            "outcome unknown for {} {} after {} attempt(s): {cause}; the work may have been applied, \
             reconcile before resending",
            self.method, self.path, self.attempts
        )
    }
}

/// The client gave up on the platform: no request got an answer for
/// [`ClientConfig::give_up_after`](crate::ClientConfig::give_up_after). Carries no secret and no
/// customer data: the base URL, how long, and what the last failure was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable {
    /// The platform's base URL, without credentials or trailing slash.
    pub base_url: String,
    /// How long no request got an answer when the client gave up.
    pub down_for: Duration,
    /// The last failure, e.g. `connection failed` or `server error 503 Service Unavailable`.
    pub last_failure: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the platform at {} was unreachable for {} s (no request succeeded; last failure: {})",
            self.base_url,
            self.down_for.as_secs(),
            self.last_failure
        )
    }
}

/// Errors of the Genesys client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with an error status (after retries, when the status was transient).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The token endpoint refused to issue a token (bad credentials, or it kept failing).
    #[error("cannot get an access token: {0}")]
    Token(Box<ApiError>),
    /// The request may or may not have taken effect. See the module docs.
    #[error("{0}")]
    OutcomeUnknown(Box<OutcomeUnknown>),
    /// The HTTP exchange failed (connect, reset, timeout before sending, …).
    #[error("{method} {path} failed after {attempts} attempt(s): {source}")]
    Transport {
        /// Method of the request.
        method: Method,
        /// Path of the request.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// Whether sending again may succeed.
        transient: bool,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// No request got an answer for the configured give-up time: the client stopped sending.
    /// Every later call of this client (and of its clones) fails the same way at once.
    #[error("{0}")]
    Unreachable(Box<Unreachable>),
    /// A success response whose body did not match the expected schema.
    #[error("{method} {path}: cannot decode the {status} response: {source}")]
    Decode {
        /// Method of the request.
        method: Method,
        /// Path of the request.
        path: String,
        /// Response status.
        status: StatusCode,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The shared rate budget (Redis) could not be consulted.
    #[error("the shared rate budget in Redis is unavailable: {0}")]
    Budget(#[source] redis::RedisError),
    /// The request was refused before sending because it breaks a documented API limit.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Invalid configuration.
    #[error("invalid Genesys client configuration: {0}")]
    Config(String),
}

impl From<Unreachable> for Error {
    fn from(u: Unreachable) -> Error {
        Error::Unreachable(Box::new(u))
    }
}

impl Error {
    /// HTTP status of the response, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api(e) | Error::Token(e) => Some(e.status),
            Error::OutcomeUnknown(e) => e.status,
            Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The parsed error body, when the platform sent one.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            Error::Api(e) | Error::Token(e) => Some(&e.body),
            Error::OutcomeUnknown(e) => e.body.as_ref(),
            _ => None,
        }
    }

    /// The failure may pass: sending the same request again later may succeed, and doing so is
    /// safe. `false` for [`Error::OutcomeUnknown`] (not safe before reconciling) and for every
    /// permanent error (4xx validation, 501, bad credentials, decoding).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api(e) | Error::Token(e) => is_transient_status(e.status),
            Error::Transport { transient, .. } => *transient,
            Error::Budget(_) | Error::Unreachable(_) => true,
            Error::OutcomeUnknown(_)
            | Error::Decode { .. }
            | Error::InvalidRequest(_)
            | Error::Config(_) => false,
        }
    }

    /// The client gave up on the platform ([`Error::Unreachable`]): stop scheduling work, let
    /// what is in flight settle, keep what was accepted, and run again later.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable(_))
    }

    /// The request may have been applied although it failed (a 504 "but the work was done", or a
    /// timeout after a non-idempotent request was sent). Read back the state before resending.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown(_))
    }

    /// For a permanent 4xx error of a batch call: the ids of the records the platform named as
    /// the cause (the body's `entityId`, `details[].entityId` and nested errors). Empty when the
    /// error names no record (then the whole request is at fault) or is not a permanent 4xx.
    pub fn rejected_entity_ids(&self) -> Vec<String> {
        match self {
            Error::Api(e) if e.status.is_client_error() && !is_transient_status(e.status) => {
                e.body.entity_ids()
            }
            _ => Vec::new(),
        }
    }
}

/// Statuses worth retrying: 408, 429 and every 5xx except 501 (Not Implemented).
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: ErrorBody) -> Error {
        Error::Api(Box::new(ApiError {
            method: Method::POST,
            path: "/api/v2/x".into(),
            status: StatusCode::from_u16(status).unwrap(),
            body,
            retry_after: None,
            attempts: 1,
        }))
    }

    #[test]
    fn error_body_parses_the_real_429_body_and_ignores_unknown_fields() {
        let raw = r#"{"message":"Rate limit exceeded the maximum. Retry the request in [42] seconds",
            "code":"too.many.requests.retry.after","status":429,"contextId":"c-1",
            "details":[],"errors":[],"somethingNew":{"x":1}}"#;
        let body: ErrorBody = serde_json::from_str(raw).unwrap();
        assert_eq!(body.code.as_deref(), Some("too.many.requests.retry.after"));
        assert_eq!(body.status, Some(429));
        assert_eq!(body.context_id.as_deref(), Some("c-1"));
        let err = api(429, body);
        assert!(err.is_transient());
        assert!(err.rejected_entity_ids().is_empty());
        assert!(err.to_string().contains("contextId c-1"), "{err}");
    }

    #[test]
    fn transient_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 415, 422, 501] {
            assert!(
                !is_transient_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn rejected_ids_come_from_entity_id_details_and_nested_errors() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"code":"invalid.value","status":400,"entityId":"c-2",
                "details":[{"errorCode":"x","fieldName":"data","entityId":"c-9"}],
                "errors":[{"code":"invalid.value","entityId":"c-2"},{"entityId":"c-5"}]}"#,
        )
        .unwrap();
        let err = api(400, body.clone());
        assert_eq!(err.rejected_entity_ids(), vec!["c-2", "c-5", "c-9"]);
        assert!(!err.is_transient());
        // A transient error never names rejects: the whole batch is retried.
        assert!(api(503, body).rejected_entity_ids().is_empty());
    }
}
