//! Errors: the library's own [`EmulatorError`], and [`ApiError`], the platform's `ErrorBody`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::gate::middleware::current_correlation_id;

/// Errors of the emulator library (configuration, binding).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A fault file is malformed; `message` names the key.
    #[error("invalid fault file {path}: {message}")]
    FaultFile {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A fault profile is malformed; the message names the key.
    #[error("invalid fault profile: {0}")]
    InvalidFaults(String),
    /// A seed body (CXone admin seed) is invalid; the message names the item and field.
    #[error("invalid seed: {0}")]
    InvalidSeed(String),
    /// The listener could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A platform error, rendered as the real `ErrorBody`
/// `{message, code, status, contextId, details[], errors[]}` (+ `entityId`, `messageParams`).
#[derive(Debug, Clone)]
pub(crate) struct ApiError(Box<ErrorData>);

/// The fields of an [`ApiError`] (boxed to keep `Result`s small).
#[derive(Debug, Clone)]
pub(crate) struct ErrorData {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) entity_id: Option<String>,
    pub(crate) details: Vec<Value>,
    pub(crate) retry_after: Option<u64>,
    /// Extra top-level fields (used by the OAuth endpoint for `error`/`error_description`).
    pub(crate) extra: Vec<(&'static str, Value)>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl std::ops::Deref for ApiError {
    type Target = ErrorData;
    fn deref(&self) -> &ErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorData {
        &mut self.0
    }
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorData {
            status,
            code,
            message: message.into(),
            entity_id: None,
            details: Vec::new(),
            retry_after: None,
            extra: Vec::new(),
        }))
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad.request", message)
    }

    pub(crate) fn invalid_value(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid.value", message)
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not.found",
            format!("The requested resource was not found: {what}"),
        )
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "general.conflict", message)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        )
    }

    /// 429 `too.many.requests.retry.after`; `None` = no `Retry-After` header (and no number
    /// of seconds in the message).
    pub(crate) fn too_many_requests(retry_after: Option<u64>) -> Self {
        let message = match retry_after {
            Some(secs) => {
                format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds")
            }
            None => "Rate limit exceeded the maximum.".to_owned(),
        };
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too.many.requests.retry.after",
            message,
        );
        e.retry_after = retry_after;
        e
    }

    pub(crate) fn server_error(status: u16, retry_after: Option<u64>) -> Self {
        let (status, code, message) = match status {
            502 => (
                StatusCode::BAD_GATEWAY,
                "bad.gateway",
                "The server received an invalid response from an upstream server.",
            ),
            503 => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service.unavailable",
                "Service Unavailable - The server is currently unavailable (because it is overloaded or down for maintenance).",
            ),
            504 => (
                StatusCode::GATEWAY_TIMEOUT,
                "request.timeout",
                "The request timed out.",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal.server.error",
                "The server encountered an unexpected condition which prevented it from fulfilling the request.",
            ),
        };
        let mut e = Self::new(status, code, message);
        e.retry_after = retry_after;
        e
    }

    pub(crate) fn gateway_timeout() -> Self {
        Self::server_error(504, None)
    }

    pub(crate) fn with_entity(mut self, id: impl Into<String>) -> Self {
        self.entity_id = Some(id.into());
        self
    }

    pub(crate) fn with_detail(
        mut self,
        error_code: &str,
        field: &str,
        entity_id: Option<&str>,
    ) -> Self {
        let mut d = json!({ "errorCode": error_code, "fieldName": field });
        if let (Some(id), Some(obj)) = (entity_id, d.as_object_mut()) {
            obj.insert("entityId".into(), Value::String(id.to_owned()));
        }
        self.details.push(d);
        self
    }

    /// The `ErrorBody` JSON.
    pub(crate) fn body(&self, context_id: &str) -> Value {
        let mut body = json!({
            "message": self.message,
            "code": self.code,
            "status": self.status.as_u16(),
            "contextId": context_id,
            "details": self.details,
            "errors": [],
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(id) = &self.entity_id {
                obj.insert("entityId".into(), Value::String(id.clone()));
            }
            for (k, v) in &self.extra {
                obj.insert((*k).to_owned(), v.clone());
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let cid = current_correlation_id();
        let body = self.body(&cid).to_string();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(ra) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&ra.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&cid) {
            h.insert("inin-correlation-id", v);
        }
        resp.extensions_mut().insert(ErrorMarker);
        resp
    }
}

/// Marks a response produced from an [`ApiError`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorMarker;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_platform_shape() {
        let e = ApiError::too_many_requests(Some(7));
        let b = e.body("ctx-1");
        assert_eq!(b["code"], "too.many.requests.retry.after");
        assert_eq!(b["status"], 429);
        assert_eq!(
            b["message"],
            "Rate limit exceeded the maximum. Retry the request in [7] seconds"
        );
        assert_eq!(b["contextId"], "ctx-1");
        assert_eq!(b["details"], json!([]));
        assert_eq!(b["errors"], json!([]));
        let e = ApiError::invalid_value("x").with_entity("c1").with_detail(
            "invalid.value",
            "data",
            Some("c1"),
        );
        let b = e.body("c");
        assert_eq!(b["entityId"], "c1");
        assert_eq!(b["details"][0]["fieldName"], "data");
    }
}
