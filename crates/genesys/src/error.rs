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

use dedupd_http_client::ApiErrorBody;
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
}

impl ApiErrorBody for ErrorBody {
    fn summary(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => "no error body".to_owned(),
        }
    }

    fn reference(&self) -> Option<String> {
        self.context_id.as_ref().map(|c| format!("contextId {c}"))
    }

    fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    fn entity_ids(&self) -> Vec<String> {
        ErrorBody::entity_ids(self)
    }
}

/// An error response of the Platform API (or of the token endpoint).
pub type ApiError = dedupd_http_client::ApiError<ErrorBody>;
/// A request whose effect is unknown: it may or may not have been applied.
pub type OutcomeUnknown = dedupd_http_client::OutcomeUnknown<ErrorBody>;
/// Errors of the Genesys client (the shared client's errors with Genesys's error body).
pub type Error = dedupd_http_client::Error<ErrorBody>;
pub use dedupd_http_client::Unreachable;
pub(crate) use dedupd_http_client::is_transient_status;

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::{Method, StatusCode};

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
