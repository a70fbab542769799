//! `POST /oauth/token`, the client-credentials grant.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::gate::token::{TokenRequest, known_client};
use crate::http::ok_json;
use crate::state::EmulatorState;

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
    let Some(treq) = TokenRequest::read(req).await else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "invalid_request",
            "The token request must be a form body (application/x-www-form-urlencoded).",
        );
    };
    match treq.field("grant_type").as_deref() {
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
    let (Some(client_id), Some(secret)) = treq.client() else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "invalid_client",
            "Invalid login credentials.",
        );
    };
    if !known_client(&st.shared.clients, &client_id, &secret) {
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
