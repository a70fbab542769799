//! `POST /oauth/token`, the client-credentials grant.

use std::time::{Duration, Instant};

use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::ok_json;
use crate::state::{EmulatorState, TokenInfo};
use crate::util::{parse_basic_auth, stable_hash};

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
    st.lock().stats.token_requests += 1;
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

    let now = Instant::now();
    let mut inner = st.lock();
    let ttl = inner
        .faults
        .token_ttl_secs
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .unwrap_or(st.shared.token_ttl);
    inner.token_seq += 1;
    let ordinal = inner.token_seq;
    let nonce: u64 = inner.id_rng.random();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut token = String::with_capacity(64);
    let mut h = stable_hash(&[
        &nonce.to_le_bytes(),
        &nanos.to_le_bytes(),
        &ordinal.to_le_bytes(),
    ]);
    for _ in 0..4 {
        token.push_str(&format!("{h:016x}"));
        h = stable_hash(&[&h.to_le_bytes(), &nanos.to_le_bytes()]);
    }
    inner.tokens.insert(
        token.clone(),
        TokenInfo {
            ordinal,
            client_id,
            issued: now,
            // A huge configured ttl means "never" rather than an overflow.
            expires: now
                .checked_add(ttl)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)),
            revoked: false,
            admitted: Default::default(),
            seen: Default::default(),
            requests: 0,
            max_in_window: 0,
            burst_left: 0,
            burst_retry_after: 1,
        },
    );
    inner.stats.tokens_issued += 1;
    drop(inner);
    let expires_in = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    ok_json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
    }))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn secret_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
