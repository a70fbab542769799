//! `POST /oauth/token`, the client-credentials grant.

use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::gate::constant_time_eq;
use crate::http::ok_json;
use crate::state::EmulatorState;
use crate::util::parse_basic_auth;

fn oauth_error(
    status: StatusCode,
    code: &'static str,
    oauth: &'static str,
    message: &str,
) -> Response {
    let mut e = ApiError::new(status, code, message);
    e.extra = vec![
        ("error", Value::String(oauth.to_owned())),
        ("description", Value::String(message.to_owned())),
        ("error_description", Value::String(message.to_owned())),
    ];
    e.into_response()
}

/// Issues a bearer token for valid client credentials (Basic auth, or `client_id` and
/// `client_secret` form fields). The secret is compared, never logged.
pub(crate) async fn token(State(st): State<EmulatorState>, req: Request) -> Response {
    st.lock().gate.stats.token_requests += 1;
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic_auth);
    let Ok(Form(form)) = Form::<Vec<(String, String)>>::from_request(req, &()).await else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "invalid_request",
            "The token request must be a form body (application/x-www-form-urlencoded).",
        );
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match field("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "bad.request",
                "unsupported_grant_type",
                "Only grant_type=client_credentials is supported.",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "bad.request",
                "invalid_request",
                "grant_type is required.",
            );
        }
    }
    let creds = basic.or_else(|| Some((field("client_id")?, field("client_secret")?)));
    let Some((client_id, secret)) = creds else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "invalid_client",
            "Invalid login credentials.",
        );
    };
    let known = st
        .shared
        .clients
        .iter()
        .any(|(id, s)| *id == client_id && constant_time_eq(s.as_bytes(), secret.as_bytes()));
    if !known {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "invalid_client",
            "Invalid login credentials.",
        );
    }

    let (token, expires_in) = st
        .lock()
        .gate
        .issue_token(client_id, st.shared.gate.token_ttl);
    ok_json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
    }))
}
