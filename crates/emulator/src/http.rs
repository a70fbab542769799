//! Request plumbing of the Genesys routes: extractors that answer malformed input with one
//! `ErrorBody`, and the Genesys side of the shared gate ([`Platform`]: auth, rate limiting,
//! fault injection, headers and counting live in [`crate::gate`]).

use std::sync::MutexGuard;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
pub(crate) use crate::gate::middleware::ReqCtx;
use crate::gate::middleware::{GateError, Platform, RateInfo};
use crate::gate::{Gate, GateConfig};
use crate::schema::{Mode, SwaggerDoc};
use crate::state::{EmulatorState, Inner};
use crate::util::{BodyProblem, json_body};

/// Largest request body accepted (bigger → 413 `request.entity.too.large`).
pub(crate) const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Path parameters; a malformed path is a 400 `bad.request`.
pub(crate) struct P<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| P(v))
            .map_err(|e| ApiError::bad_request(format!("Invalid path parameter: {e}")))
    }
}

/// Query parameters as pairs. List parameters may be repeated or comma-joined (the SDKs join).
#[derive(Debug, Default)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))
    }
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        crate::util::last_value(&self.0, name)
    }

    /// All values of a list parameter, split on commas, empty pieces dropped.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name || k.strip_suffix("[]") == Some(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn int(&self, name: &str, default: i64) -> ApiResult<i64> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ApiError::invalid_value(format!(
                    "Value [{v}] is not valid for field type [integer] of parameter {name}"
                ))
            }),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> ApiResult<bool> {
        match self.get(name) {
            None | Some("") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::invalid_value(format!(
                "Value [{v}] is not valid for field type [boolean] of parameter {name}"
            ))),
        }
    }
}

/// A JSON request body, checked against the route's request schema in the excerpt.
/// `None` when the body is empty or the literal `null` (what the SDKs send for no body).
pub(crate) struct Body(pub(crate) Option<Value>);

impl Body {
    /// The body, or 400 when it is missing.
    pub(crate) fn required(self) -> ApiResult<Value> {
        self.0
            .ok_or_else(|| ApiError::bad_request("The request could not be understood by the server due to malformed syntax. A request body is required."))
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = req.method().clone();
        let template = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request.entity.too.large",
                    format!("The request is over the size limit. Maximum bytes: {MAX_BODY_BYTES}"),
                )
            } else {
                ApiError::bad_request(format!("Could not read the request body: {e}"))
            }
        })?;
        let value = match json_body(&bytes, content_type.as_deref()) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Body(None)),
            Err(BodyProblem::NotJson(ct)) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported.media.type",
                    format!(
                        "Unsupported Media Type - Unsupported or incorrect media type, such as an incorrect Content-Type value in the header. Got {ct}"
                    ),
                ));
            }
            Err(BodyProblem::Malformed(e)) => {
                return Err(ApiError::bad_request(format!(
                    "The request could not be understood by the server due to malformed syntax. {e}"
                )));
            }
        };
        if let Some(t) = template {
            let doc = SwaggerDoc::excerpt();
            if let Some(schema) = doc.request_body_schema(method.as_str(), &t) {
                let errors = doc.validate(&value, schema, Mode::Request);
                if let Some(first) = errors.first() {
                    let field = first.split(':').next().unwrap_or("$").to_owned();
                    let mut err = ApiError::invalid_value(format!(
                        "Invalid request body: {}",
                        errors.join("; ")
                    ));
                    err = err.with_detail("invalid.value", &field, None);
                    return Err(err);
                }
            }
        }
        Ok(Body(Some(value)))
    }
}

/// A JSON response with status 200.
pub(crate) fn ok_json(value: Value) -> Response {
    json_response(StatusCode::OK, &value)
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut resp = (status, value.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response without a body (202 Accepted, 200 for deletes), still `application/json`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut resp = status.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The Genesys side of the shared gate: `/api/v2/…` is the API, errors are `ErrorBody`, every
/// answer carries `ININ-Correlation-Id` and API answers the `inin-ratelimit-*` headers.
impl Platform for EmulatorState {
    type Inner = Inner;

    fn gate_config(&self) -> &GateConfig {
        &self.shared.gate
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        EmulatorState::lock(self)
    }

    fn gate(inner: &mut Inner) -> &mut Gate {
        &mut inner.gate
    }

    fn is_api(path: &str) -> bool {
        path.starts_with("/api/v2")
    }

    fn error(_path: &str, e: GateError) -> Response {
        match e {
            GateError::Unauthorized => ApiError::unauthorized(),
            GateError::TooManyRequests { retry_after } => ApiError::too_many_requests(retry_after),
            GateError::ServerError {
                status,
                retry_after,
            } => ApiError::server_error(status, retry_after),
            GateError::GatewayTimeout => ApiError::gateway_timeout(),
            GateError::BadRequest(m) => ApiError::bad_request(m),
            GateError::InvalidValue(m) => ApiError::invalid_value(m),
            GateError::NotFound(what) => ApiError::not_found(what),
            GateError::MethodNotAllowed { method, path } => ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method.not.allowed",
                format!("Method {method} is not allowed on {path}"),
            ),
        }
        .into_response()
    }

    fn decorate(resp: &mut Response, path: &str, rate: &RateInfo, correlation_id: &str) {
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(correlation_id) {
            h.insert("inin-correlation-id", v);
        }
        if Self::is_api(path) {
            for (name, v) in [
                ("inin-ratelimit-allowed", rate.allowed),
                ("inin-ratelimit-count", rate.count),
                ("inin-ratelimit-reset", rate.reset),
            ] {
                if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                    h.insert(name, v);
                }
            }
        }
    }

    fn reset(&self) {
        EmulatorState::reset(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_split_comma_joined_and_repeated_lists() {
        let p = Params(vec![
            ("contactIds".into(), "a,b".into()),
            ("contactIds".into(), "c".into()),
            ("pageSize".into(), "x".into()),
            ("flag".into(), "TRUE".into()),
        ]);
        assert_eq!(p.list("contactIds"), vec!["a", "b", "c"]);
        assert!(p.int("pageSize", 25).is_err());
        assert_eq!(p.int("pageNumber", 1).ok(), Some(1));
        assert_eq!(p.bool("flag").ok(), Some(true));
        assert!(
            Params(vec![("flag".into(), "yes".into())])
                .bool("flag")
                .is_err()
        );
    }
}
