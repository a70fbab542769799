//! CXone's error shapes, one per API family (api-notes §6, lists-notes §5):
//! - DFO (`/dfo/3.0/…`): `{"errors":[{"field","message","parameters","errorCode"}],"uid"}`; NICE's
//!   SDK reads only `errors[0].message`.
//! - Admin (`/inContactAPI/services/vNN.0/…`): `{"error","errorDescription"}` (the spec's form;
//!   QA code reads `error_description`, so clients must parse both spellings).
//! - The issuer (`/auth/…`, `/.well-known/…`): the OAuth form `{"error","error_description"}`.
//!
//! Paths outside those families (unknown routes) answer in the DFO form.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::gate::middleware::{GateError, current_correlation_id};

/// Which error shape an answer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Dfo,
    Admin,
    Auth,
}

impl Family {
    /// The family of a request path.
    pub(crate) fn of(path: &str) -> Family {
        if path.starts_with("/inContactAPI/") {
            Family::Admin
        } else if path.starts_with("/auth/") || path.starts_with("/.well-known/") {
            Family::Auth
        } else {
            Family::Dfo
        }
    }
}

/// A CXone error answer.
#[derive(Debug, Clone)]
pub(crate) struct CxError(Box<CxErrorData>);

#[derive(Debug, Clone)]
pub(crate) struct CxErrorData {
    pub(crate) family: Family,
    pub(crate) status: StatusCode,
    /// DFO `errorCode`, admin `error`, OAuth `error`.
    pub(crate) code: String,
    pub(crate) message: String,
    /// DFO `field`.
    pub(crate) field: Option<String>,
    pub(crate) retry_after: Option<u64>,
}

pub(crate) type CxResult<T> = Result<T, CxError>;

impl CxError {
    pub(crate) fn new(
        family: Family,
        status: StatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> CxError {
        CxError(Box::new(CxErrorData {
            family,
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after: None,
        }))
    }

    /// A DFO 400 naming the offending field.
    pub(crate) fn dfo_invalid(field: &str, message: impl Into<String>) -> CxError {
        let mut e = CxError::new(
            Family::Dfo,
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            message,
        );
        e.0.field = Some(field.to_owned());
        e
    }

    pub(crate) fn dfo_not_found(what: impl std::fmt::Display) -> CxError {
        CxError::new(
            Family::Dfo,
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{what} was not found."),
        )
    }

    /// An admin error, e.g. `(400, "InvalidSkillId", …)`.
    pub(crate) fn admin(status: StatusCode, code: &str, message: impl Into<String>) -> CxError {
        CxError::new(Family::Admin, status, code, message)
    }

    pub(crate) fn auth(status: StatusCode, code: &str, message: impl Into<String>) -> CxError {
        CxError::new(Family::Auth, status, code, message)
    }

    /// A gate decision in `family`'s shape.
    pub(crate) fn from_gate(family: Family, e: GateError) -> CxError {
        let (status, code, message, retry_after): (StatusCode, &str, String, Option<u64>) = match e
        {
            GateError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                if family == Family::Dfo {
                    "Unauthorized"
                } else {
                    "invalid_token"
                },
                "The access token is missing, expired or revoked.".to_owned(),
                None,
            ),
            GateError::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests.".to_owned(),
                retry_after,
            ),
            GateError::ServerError {
                status,
                retry_after,
            } => match status {
                502 => (
                    StatusCode::BAD_GATEWAY,
                    "BadGateway",
                    "Bad gateway.".to_owned(),
                    None,
                ),
                503 => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable.".to_owned(),
                    retry_after,
                ),
                _ => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Internal server error.".to_owned(),
                    None,
                ),
            },
            GateError::GatewayTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "The gateway timed out waiting for the service.".to_owned(),
                None,
            ),
            GateError::BadRequest(m) => (StatusCode::BAD_REQUEST, "BadRequest", m, None),
            GateError::InvalidValue(m) => (StatusCode::BAD_REQUEST, "InvalidValue", m, None),
            GateError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("No resource at {what}."),
                None,
            ),
            GateError::MethodNotAllowed { method, path } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("Method {method} is not allowed on {path}."),
                None,
            ),
        };
        let mut err = CxError::new(family, status, code, message);
        err.0.retry_after = retry_after;
        err
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The JSON body.
    pub(crate) fn body(&self, uid: &str) -> Value {
        let d = &self.0;
        match d.family {
            Family::Dfo => json!({
                "errors": [{
                    "field": d.field,
                    "message": d.message,
                    "parameters": {},
                    "errorCode": d.code,
                }],
                "uid": uid,
            }),
            Family::Admin => json!({"error": d.code, "errorDescription": d.message}),
            Family::Auth => json!({"error": d.code, "error_description": d.message}),
        }
    }
}

impl IntoResponse for CxError {
    fn into_response(self) -> Response {
        let uid = current_correlation_id();
        let mut resp = (self.0.status, self.body(&uid).to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(ra) = self.0.retry_after
            && let Ok(v) = HeaderValue::from_str(&ra.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_its_shape() {
        let e = CxError::dfo_invalid("thread", "thread is required");
        let b = e.body("u1");
        assert_eq!(b["errors"][0]["message"], "thread is required");
        assert_eq!(b["errors"][0]["field"], "thread");
        assert_eq!(b["uid"], "u1");
        let b = CxError::admin(StatusCode::NOT_FOUND, "InvalidListId", "no list").body("u");
        assert_eq!(
            b,
            json!({"error": "InvalidListId", "errorDescription": "no list"})
        );
        let b = CxError::auth(StatusCode::BAD_REQUEST, "invalid_grant", "bad key").body("u");
        assert_eq!(
            b,
            json!({"error": "invalid_grant", "error_description": "bad key"})
        );
        assert_eq!(Family::of("/dfo/3.0/customers"), Family::Dfo);
        assert_eq!(
            Family::of("/inContactAPI/services/v30.0/dnc-groups"),
            Family::Admin
        );
        assert_eq!(Family::of("/auth/token"), Family::Auth);
        assert_eq!(Family::of("/nope"), Family::Dfo);
    }

    #[test]
    fn gate_errors_render_per_family() {
        let e = CxError::from_gate(
            Family::Dfo,
            GateError::TooManyRequests { retry_after: None },
        );
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(e.0.retry_after.is_none());
        let e = CxError::from_gate(Family::Admin, GateError::Unauthorized);
        assert_eq!(e.body("u")["error"], "invalid_token");
    }
}
