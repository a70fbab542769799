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

/// How a job must treat `e` (the shared mapping, [`Error::seam_kind`]).
pub(crate) fn kind_of(e: &Error) -> ErrorKind {
    e.seam_kind()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, CxoneErrorBody};
    use reqwest::{Method, StatusCode};

    fn api(status: u16, body: &str) -> Error {
        Error::Api(Box::new(ApiError {
            method: Method::PUT,
            path: "/customers/C1/merge".into(),
            status: StatusCode::from_u16(status).unwrap(),
            body: serde_json::from_str::<CxoneErrorBody>(body).unwrap_or_default(),
            retry_after: None,
            attempts: 1,
        }))
    }

    #[test]
    fn errors_map_to_the_kinds_a_job_acts_on_without_values() {
        for (status, kind) in [
            (400, ErrorKind::Permanent),
            (401, ErrorKind::Auth),
            (403, ErrorKind::Auth),
            (404, ErrorKind::NotFound),
            (409, ErrorKind::Conflict),
            (429, ErrorKind::Transient),
            (503, ErrorKind::Transient),
        ] {
            assert_eq!(kind_of(&api(status, "{}")), kind, "{status}");
        }
        assert_eq!(kind_of(&Error::Config("x".into())), ErrorKind::Config);
        // The platform's words (which can echo the request) stay out of the message and go to
        // `platform_message`.
        let e = api(
            400,
            r#"{"errors":[{"message":"+14155550100 is not valid","errorCode":"InvalidRecipient"}]}"#,
        );
        let pe = platform_error(&e, "sending", &["+14155550100"]);
        assert_eq!(pe.message, "sending: 400 Bad Request (InvalidRecipient)");
        assert_eq!(
            pe.platform_message.as_deref(),
            Some("+14155550100 is not valid")
        );
        assert_eq!(pe.status, Some(400));
    }
}
