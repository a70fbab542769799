//! Errors of a platform client built on this crate.
//!
//! Every fallible call returns [`Error`], generic over the platform's error body `B` (see
//! [`ApiErrorBody`]). The questions a caller asks of an error have methods:
//!
//! - [`Error::is_transient`]: did it fail for a reason that may pass (429, 5xx except 501,
//!   timeouts, resets, the Redis budget being unreachable), so the same request can be sent again
//!   later? The client has already retried it within its [`RetryPolicy`](crate::RetryPolicy).
//! - [`Error::is_outcome_unknown`]: the request reached the platform but we do not know whether it
//!   took effect (a 504, or a timeout after sending a non-idempotent request). The work may have
//!   been applied: **reconcile** (read back) before sending it again.
//! - [`Error::is_unreachable`]: the client gave up on the platform after
//!   [`HttpConfig::give_up_after`](crate::HttpConfig::give_up_after) without any answer; the
//!   caller stops scheduling work. Also transient: running again later is safe.
//! - [`Error::rejected_entity_ids`]: a permanent error (4xx) that names the records it is about
//!   (when the platform's body names records at all).

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// A platform's error body, as parsed from a non-2xx answer. `Default` is "no (parseable)
/// body".
pub trait ApiErrorBody:
    DeserializeOwned + Default + Clone + fmt::Debug + Send + Sync + 'static
{
    /// A one-line summary for [`ApiError`]'s `Display`, e.g. `code: message`.
    fn summary(&self) -> String;
    /// A support reference to quote after the summary (e.g. `contextId c-1`), if any.
    fn reference(&self) -> Option<String> {
        None
    }
    /// A machine-readable code, for debug logs.
    fn code(&self) -> Option<&str> {
        None
    }
    /// The platform's human-readable message, when it sent one.
    fn message(&self) -> Option<&str> {
        None
    }
    /// Ids of the records the error names, sorted, without duplicates.
    fn entity_ids(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An error response of the platform API (or of the token endpoint).
#[derive(Clone, Debug)]
pub struct ApiError<B> {
    /// Method of the failed request.
    pub method: Method,
    /// Path of the failed request, without the query string.
    pub path: String,
    /// Response status.
    pub status: StatusCode,
    /// Parsed body; `B::default()` when the body was not the platform's error shape.
    pub body: B,
    /// `Retry-After` of the last response, if any.
    pub retry_after: Option<Duration>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl<B: ApiErrorBody> fmt::Display for ApiError<B> {
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
        if let Some(reference) = self.body.reference() {
            write!(f, " ({reference})")?;
        }
        Ok(())
    }
}

/// A request whose effect is unknown: it may or may not have been applied.
#[derive(Clone, Debug)]
pub struct OutcomeUnknown<B> {
    /// Method of the request.
    pub method: Method,
    /// Path of the request, without the query string.
    pub path: String,
    /// `Some(504)` for a gateway timeout; `None` when our own timeout fired after sending.
    pub status: Option<StatusCode>,
    /// Error body of the answer, if any.
    pub body: Option<B>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl<B> fmt::Display for OutcomeUnknown<B> {
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
/// [`HttpConfig::give_up_after`](crate::HttpConfig::give_up_after). Carries no secret and no
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

/// A request body that could not be encoded (a bug of ours, never retried).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the request body: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// Errors of a platform client. Exhaustive on purpose: a new kind of failure makes every
/// platform's seams decide what it means for a job.
#[derive(Debug, thiserror::Error)]
pub enum Error<B: ApiErrorBody> {
    /// The API answered with an error status (after retries, when the status was transient).
    #[error("{0}")]
    Api(Box<ApiError<B>>),
    /// The token endpoint refused to issue a token (bad credentials, or it kept failing).
    #[error("cannot get an access token: {0}")]
    Token(Box<ApiError<B>>),
    /// The request may or may not have taken effect. See the module docs.
    #[error("{0}")]
    OutcomeUnknown(Box<OutcomeUnknown<B>>),
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
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl<B: ApiErrorBody> From<Unreachable> for Error<B> {
    fn from(u: Unreachable) -> Self {
        Error::Unreachable(Box::new(u))
    }
}

impl<B: ApiErrorBody> From<EncodeError> for Error<B> {
    fn from(e: EncodeError) -> Self {
        Error::InvalidRequest(e.to_string())
    }
}

impl<B: ApiErrorBody> Error<B> {
    /// What a job must do about this error, as the platform seams name it: unreachable,
    /// outcome unknown (it may have been applied), auth, config, transient, not found,
    /// conflict, or permanent. One mapping for every platform client.
    pub fn seam_kind(&self) -> dedupd_platform::ErrorKind {
        use dedupd_platform::ErrorKind;
        let status = self.status().map(|s| s.as_u16());
        match self {
            Error::Unreachable(_) => ErrorKind::Unreachable,
            Error::OutcomeUnknown(_) | Error::Decode { .. } => ErrorKind::OutcomeUnknown,
            Error::Token(_) => ErrorKind::Auth,
            Error::Config(_) => ErrorKind::Config,
            _ if matches!(status, Some(401 | 403)) => ErrorKind::Auth,
            _ if self.is_transient() => ErrorKind::Transient,
            _ if status == Some(404) => ErrorKind::NotFound,
            _ if status == Some(409) => ErrorKind::Conflict,
            _ => ErrorKind::Permanent,
        }
    }

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
    pub fn error_body(&self) -> Option<&B> {
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
    /// the cause ([`ApiErrorBody::entity_ids`]). Empty when the error names no record (then the
    /// whole request is at fault) or is not a permanent 4xx.
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
pub fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
