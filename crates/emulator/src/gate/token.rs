//! What every token endpoint reads the same way: the form body and the client's credentials
//! (HTTP Basic, or `client_id` / `client_secret` form fields), compared in constant time.

use axum::extract::{Form, FromRequest, Request};
use axum::http::header;

use super::constant_time_eq;
use crate::util::parse_basic_auth;

/// A form-encoded token request.
pub(crate) struct TokenRequest {
    basic: Option<(String, String)>,
    form: Vec<(String, String)>,
}

impl TokenRequest {
    /// Reads `req`; `None` when the body is not `application/x-www-form-urlencoded`.
    pub(crate) async fn read(req: Request) -> Option<TokenRequest> {
        let basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_basic_auth);
        let Form(form) = Form::<Vec<(String, String)>>::from_request(req, &())
            .await
            .ok()?;
        Some(TokenRequest { basic, form })
    }

    /// The last value of form field `name`.
    pub(crate) fn field(&self, name: &str) -> Option<String> {
        crate::util::last_value(&self.form, name).map(str::to_owned)
    }

    /// The client id and secret: HTTP Basic when present, else the form fields (either may
    /// be missing).
    pub(crate) fn client(&self) -> (Option<String>, Option<String>) {
        match &self.basic {
            Some((id, secret)) => (Some(id.clone()), Some(secret.clone())),
            None => (self.field("client_id"), self.field("client_secret")),
        }
    }
}

/// Whether `(id, secret)` is one of `known` (the secret compared in constant time).
pub(crate) fn known_client(known: &[(String, String)], id: &str, secret: &str) -> bool {
    known
        .iter()
        .any(|(k, s)| k == id && constant_time_eq(s.as_bytes(), secret.as_bytes()))
}
