//! One JSON error envelope for every 4xx and 5xx answer:
//!
//! ```json
//! {"error": {"status": 422, "code": "invalid_field", "field": "from", "message": "from must not be empty"}}
//! ```
//!
//! Handlers return [`ApiError`]; request bodies go through [`ApiJson`] (or [`parse_json`]), so a
//! malformed body gets the envelope too, naming the field; and [`envelope_layer`] rewrites any
//! other error answer (axum's 405, a 413 from a body limit, a timeout's 408, a caught panic's
//! 500) into the envelope. Internal details go to the log, never to the client.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    pub status: u16,
    /// A stable machine-readable code: `malformed_json`, `invalid_field`, `unauthorized`,
    /// `payload_too_large`, `unsupported_media_type`, `not_found`, `method_not_allowed`,
    /// `unavailable`, `internal`, …
    pub code: String,
    /// The request field at fault (a JSON path such as `attachments[0].data_base64`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A sentence for humans. Never echoes personal data from the request.
    pub message: String,
}

/// An error answer. Build it with the constructors; it renders as [`ErrorEnvelope`].
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    field: Option<String>,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            field: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 422 `invalid_field`: the body is JSON but `field` is wrong.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    /// 400 `malformed_json`: the body is not JSON (or not an object).
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 401 `unauthorized` (no detail: the caller learns nothing about which check failed).
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials: send Authorization: Bearer <token> or a valid X-Hub-Signature-256",
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    }

    /// 503 `unavailable` with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after_seconds: u32) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(retry_after_seconds);
        e
    }

    /// 500 `internal`: the detail is for the log, not the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
    }

    /// Asks the client to retry after `seconds` (`Retry-After`), e.g. on a 409 while the
    /// first request is still in flight.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The envelope this error renders as.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                status: self.status.as_u16(),
                code: self.code.to_owned(),
                field: self.field.clone(),
                message: self.message.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.envelope())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Keeps serde's sentence but drops the echoed value of a type error (`invalid type: string
/// "…"`), which could be personal data, and the position.
fn data_message(text: &str) -> String {
    let base = match text.split_once(" at line ") {
        Some((b, _)) => b,
        None => text,
    };
    if let Some((head, rest)) = base.split_once("invalid type: ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        let kind = rest.split([' ', ',']).next().unwrap_or("value");
        return format!("{head}invalid type: {kind}, expected {expected}");
    }
    if let Some((head, rest)) = base.split_once("invalid value: ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        let kind = rest.split([' ', ',']).next().unwrap_or("value");
        return format!("{head}invalid value: {kind}, expected {expected}");
    }
    base.to_owned()
}

/// `Json<T>` whose rejections are [`ApiError`]s naming the field (`attachments[0].data_base64`).
/// Requires `Content-Type: application/json`; the body limit is the router's
/// `DefaultBodyLimit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the body is larger than the limit",
                ),
                status => ApiError::new(status, "bad_request", "the body could not be read"),
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body already in memory (e.g. after a signature check) with the same errors
/// as [`ApiJson`]: 400 `malformed_json` when it is not JSON, 422 `invalid_field` naming the
/// JSON path when it is JSON of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The common case, a valid body, without tracking the JSON path; only a body that fails
    // is read again with the path tracker, for the error (same input, same outcome).
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::malformed_json("the body is not valid JSON");
        }
        let message = data_message(&inner.to_string());
        let missing = message
            .split("missing field `")
            .nth(1)
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", missing) => missing.map(str::to_owned),
            (path, Some(missing)) => Some(format!("{path}.{missing}")),
            (path, None) => Some(path.to_owned()),
        };
        match field {
            Some(field) => {
                let message = format!("{field}: {message}");
                ApiError::invalid_field(field, message)
            }
            None => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message),
        }
    })?;
    de.end().map_err(|_| {
        ApiError::malformed_json("the body is not valid JSON (trailing characters)")
    })?;
    Ok(value)
}

/// Rewrites every 4xx/5xx answer that is not already JSON into the envelope (use as the
/// outermost layer: `router.layer(axum::middleware::map_response(envelope_layer))`).
pub async fn envelope_layer(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is larger than the limit"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "missing or invalid credentials"),
        s if s.is_server_error() => ("internal", "internal error; it has been logged"),
        _ => ("bad_request", "the request was refused"),
    };
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        name: String,
        n: Option<u32>,
    }

    #[test]
    fn parse_json_names_the_field() {
        let e = parse_json::<T>(br#"{"n": 1}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.envelope().error.field.as_deref(), Some("name"));
        let e = parse_json::<T>(br#"{"name": "x", "n": "secret@example.com"}"#).unwrap_err();
        assert_eq!(e.envelope().error.code, "invalid_field");
        assert!(!e.envelope().error.message.contains("secret"), "{e}");
        let e = parse_json::<T>(b"{nope").unwrap_err();
        assert_eq!(e.envelope().error.code, "malformed_json");
        assert!(parse_json::<T>(br#"{"name":"x"} trailing"#).is_err());
        assert_eq!(parse_json::<T>(br#"{"name":"x"}"#).unwrap().name, "x");
    }

    #[test]
    fn type_errors_never_echo_the_value() {
        assert_eq!(
            data_message("invalid type: string \"ann@x.test\", expected u32 at line 1 column 9"),
            "invalid type: string, expected u32"
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<T>,
        }
        let e = parse_json::<Outer>(br#"{"items":[{"name":"a"},{"name":5}]}"#).unwrap_err();
        assert_eq!(e.envelope().error.field.as_deref(), Some("items[1].name"));
    }
}
