//! NICE CXone behind dedupd's platform seams (`dedupd-platform`): what the jobs call, so they
//! never name this client.
//!
//! - [`CustomerDirectory`](dedupd_platform::directory::CustomerDirectory) on [`CxoneClient`]:
//!   DFO customer cards ([`directory`]); one source card per merge, no un-merge.
//! - [`NotificationSender`](dedupd_platform::notify::NotificationSender):
//!   [`notify::DfoSender`], DFO outbound; no idempotency key, read back by thread.
//! - [`MessageIngress`](dedupd_platform::messaging::MessageIngress):
//!   [`messaging::ByocIngress`], BYOC inbound messages.
//! - [`ContactListSink`](dedupd_platform::contact_list::ContactListSink):
//!   [`list::CallingListSink`], Personal Connection calling lists (uploads and
//!   remove-prospects only) and a DNC group.

pub mod directory;
pub mod list;
pub mod messaging;
pub mod notify;

use dedupd_platform::notify::status_summary;
use dedupd_platform::{CallStats, ErrorKind, PlatformError, Session};

use crate::{CxoneClient, Error};

impl Session for CxoneClient {
    fn usage(&self) -> CallStats {
        self.stats().call_stats()
    }

    fn gave_up(&self) -> Option<String> {
        self.unreachable().map(|u| u.to_string())
    }
}

/// How a job must treat `e`.
pub(crate) fn kind_of(e: &Error) -> ErrorKind {
    let status = e.status().map(|s| s.as_u16());
    match e {
        Error::Unreachable(_) => ErrorKind::Unreachable,
        Error::OutcomeUnknown(_) | Error::Decode { .. } => ErrorKind::OutcomeUnknown,
        Error::Token(_) => ErrorKind::Auth,
        Error::Config(_) => ErrorKind::Config,
        _ if matches!(status, Some(401 | 403)) => ErrorKind::Auth,
        _ if e.is_transient() => ErrorKind::Transient,
        _ if status == Some(404) => ErrorKind::NotFound,
        _ if status == Some(409) => ErrorKind::Conflict,
        _ => ErrorKind::Permanent,
    }
}

/// `e` as a seam error about `what`: its kind, status, `Retry-After`, a value-free message
/// (never one of `values`, nor the platform's free text, which can echo them) and the
/// platform's own message apart, for reports.
pub(crate) fn platform_error(e: &Error, what: &str, values: &[&str]) -> PlatformError {
    let body = e.error_body();
    let retry_after = match e {
        Error::Api(a) => a.retry_after,
        _ => None,
    };
    let mut err = PlatformError::new(kind_of(e), format!("{what}: {}", summary(e, values)))
        .with_platform_message(body.and_then(|b| b.platform_message().map(str::to_owned)))
        .with_retry_after(retry_after);
    if let Some(s) = e.status() {
        err = err.with_status(s.as_u16());
    }
    err
}

/// A value-free summary of a client error: statuses and error codes, never one of `values`.
pub(crate) fn summary(e: &Error, values: &[&str]) -> String {
    let line = |status: reqwest::StatusCode, code: Option<&str>| {
        status_summary(status.as_u16(), status.canonical_reason(), code, values)
    };
    match e {
        Error::Api(_) | Error::Token(_) => match e.status() {
            Some(status) => line(status, e.error_body().and_then(|b| b.error_code())),
            None => "the platform refused the request".into(),
        },
        Error::OutcomeUnknown(_) => match e.status() {
            Some(status) => format!("{}; it may have been applied", line(status, None)),
            None => "the request timed out after it was sent; it may have been applied".into(),
        },
        Error::Transport { transient, .. } => if *transient {
            "the connection failed"
        } else {
            "the request failed without an answer"
        }
        .into(),
        Error::Decode { status, .. } => {
            format!("{}; the answer could not be read", line(*status, None))
        }
        Error::Budget(_) => "the shared rate budget is unavailable".into(),
        Error::InvalidRequest(_) => "the request breaks a documented limit of the platform".into(),
        Error::Config(_) => "the CXone client is misconfigured".into(),
        Error::Unreachable(u) => u.to_string(),
    }
}
