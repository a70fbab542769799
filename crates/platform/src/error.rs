//! The one error a seam returns: what kind of failure it was (so a job can decide to retry,
//! read back, isolate or stop without knowing the vendor), plus a value-free description.

use std::time::Duration;

/// How a job must treat a failed platform call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not applied, and may pass (429, 503, connection refused): retry later.
    Transient,
    /// Not applied and never will be as sent (validation 4xx): report it.
    Permanent,
    /// Refused because of the named records' state (e.g. Genesys's 409 "active
    /// associations"): isolate them ([`PlatformError::entity_ids`]) and go on with the rest.
    Conflict,
    /// May or may not have been applied (a timeout or 5xx after sending): read back, never
    /// resend blindly.
    OutcomeUnknown,
    /// The platform has not answered for the configured give-up time: stop, keep what was
    /// done, run again later.
    Unreachable,
    /// Credentials or permissions are wrong: stop the run.
    Auth,
    /// The record does not exist.
    NotFound,
    /// The platform client is configured wrong (endpoint, limits): stop the run.
    Config,
}

/// A failed platform call. Its message never carries phone numbers, e-mail addresses or
/// message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlatformError {
    /// How to treat it.
    pub kind: ErrorKind,
    /// What failed, e.g. `merge of 3 contacts: HTTP 409 (contact.associations.active)`.
    pub message: String,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// The records the platform named as the cause (for [`ErrorKind::Conflict`] and
    /// partial failures).
    pub entity_ids: Vec<String>,
    /// How long the platform asked us to wait, when it said.
    pub retry_after: Option<Duration>,
    /// The platform's own message, when it sent one (as the platform writes it, for reports:
    /// e.g. why a merge was refused).
    pub platform_message: Option<String>,
}

impl PlatformError {
    /// An error of `kind` with `message` and nothing else known.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            entity_ids: Vec::new(),
            retry_after: None,
            platform_message: None,
        }
    }

    /// With the platform's own message.
    #[must_use]
    pub fn with_platform_message(mut self, message: Option<String>) -> Self {
        self.platform_message = message;
        self
    }

    /// With the HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// With the records the platform named.
    #[must_use]
    pub fn with_entities(mut self, ids: Vec<String>) -> Self {
        self.entity_ids = ids;
        self
    }

    /// With the wait the platform asked for.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Whether the run must stop (auth failure, unreachable platform).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Auth | ErrorKind::Unreachable | ErrorKind::Config
        )
    }
}
