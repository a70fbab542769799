//! Who may call: API callers with a bearer token, channel webhooks that sign their body.
//!
//! - `Authorization: Bearer <token>`: compared in constant time (SHA-256 of both sides, so the
//!   length leaks nothing either).
//! - `X-Hub-Signature-256: sha256=<digest>`: HMAC-SHA256 of the raw body with the shared secret,
//!   the digest in hex (GitHub style) or base64 (Genesys Open Messaging style), compared in
//!   constant time.
//!
//! A request passes with either. With neither a token nor a secret configured the service is
//! open (local use). Secrets are [`SecretString`]s: never logged, redacted in `Debug`.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Accepted credentials.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    bearer_tokens: Vec<SecretString>,
    hmac_secret: Option<SecretString>,
    body_limit: usize,
}

impl Auth {
    /// No credentials: every request passes. `body_limit` bounds the body read to check a
    /// signature (use the router's body limit).
    pub fn open(body_limit: usize) -> Self {
        Auth {
            bearer_tokens: Vec::new(),
            hmac_secret: None,
            body_limit,
        }
    }

    /// Accepts `Authorization: Bearer <token>`.
    pub fn with_bearer(mut self, token: SecretString) -> Self {
        if !token.expose_secret().is_empty() {
            self.bearer_tokens.push(token);
        }
        self
    }

    /// Accepts bodies signed with `secret` in `X-Hub-Signature-256`.
    pub fn with_hmac_secret(mut self, secret: SecretString) -> Self {
        if !secret.expose_secret().is_empty() {
            self.hmac_secret = Some(secret);
        }
        self
    }

    /// True when no credential is configured.
    pub fn is_open(&self) -> bool {
        self.bearer_tokens.is_empty() && self.hmac_secret.is_none()
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        // Check every token (no early exit) so timing does not tell which one matched.
        self.bearer_tokens.iter().fold(false, |ok, token| {
            let want: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
            ct_eq(&given, &want) | ok
        })
    }

    /// Verifies `X-Hub-Signature-256` over `body`.
    pub fn signature_ok(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(secret) = &self.hmac_secret else {
            return false;
        };
        let Some(given) = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(decode_signature)
        else {
            return false;
        };
        let want = hmac_sha256(secret.expose_secret().as_bytes(), body);
        ct_eq(&given, &want)
    }
}

/// `sha256=<64 hex digits>` or `sha256=<base64 of 32 bytes>`.
fn decode_signature(value: &str) -> Option<[u8; 32]> {
    let digest = value.trim().strip_prefix("sha256=")?;
    if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; 32];
        for (i, pair) in digest.as_bytes().chunks_exact(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        return Some(out);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(digest)
        .ok()?;
    bytes.try_into().ok()
}

/// Equality without data-dependent branches.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// HMAC-SHA256 (RFC 2104) over `message`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest: [u8; 32] = Sha256::digest(key).into();
        k[..32].copy_from_slice(&digest);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    inner.update(message);
    let inner: [u8; 32] = inner.finalize().into();
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner);
    outer.finalize().into()
}

/// The value of `X-Hub-Signature-256` for `body` (hex form), for senders and tests.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.as_bytes(), body);
    let mut s = String::from("sha256=");
    for b in mac {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `router` behind [`require_auth`] with `auth`; with no credential configured (every request
/// passes), `router` as it is, which answers the same without the middleware's per-request
/// cost.
pub fn guard(
    router: utoipa_axum::router::OpenApiRouter,
    auth: Auth,
) -> utoipa_axum::router::OpenApiRouter {
    if auth.is_open() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(auth),
        require_auth,
    ))
}

/// Middleware: `router.route_layer(axum::middleware::from_fn_with_state(Arc::new(auth),
/// require_auth))` (or [`guard`]). A signed request's body is read (within the limit) and handed on intact.
pub async fn require_auth(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    if auth.is_open() || auth.bearer_ok(request.headers()) {
        return next.run(request).await;
    }
    if auth.hmac_secret.is_none() || !request.headers().contains_key(SIGNATURE_HEADER) {
        return ApiError::unauthorized().into_response();
    }
    if crate::limit::declared_too_large(request.headers(), auth.body_limit) {
        return ApiError::payload_too_large(auth.body_limit).into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, auth.body_limit).await else {
        return ApiError::payload_too_large(auth.body_limit).into_response();
    };
    if !auth.signature_ok(&parts.headers, &bytes) {
        return ApiError::unauthorized().into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_in_hex_and_base64() {
        let auth = Auth::open(1024).with_hmac_secret(SecretString::from("s3cret"));
        let body = br#"{"a":1}"#;
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, sign("s3cret", body).parse().unwrap());
        assert!(auth.signature_ok(&h, body));
        assert!(!auth.signature_ok(&h, br#"{"a":2}"#));
        let b64 = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(b"s3cret", body));
        h.insert(SIGNATURE_HEADER, format!("sha256={b64}").parse().unwrap());
        assert!(auth.signature_ok(&h, body));
        h.insert(SIGNATURE_HEADER, "sha256=zz".parse().unwrap());
        assert!(!auth.signature_ok(&h, body));
        h.insert(SIGNATURE_HEADER, sign("other", body).parse().unwrap());
        assert!(!auth.signature_ok(&h, body));
    }

    #[test]
    fn bearer_tokens_and_redacted_debug() {
        let auth = Auth::open(1).with_bearer(SecretString::from("tok-123"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer tok-123".parse().unwrap());
        assert!(auth.bearer_ok(&h));
        h.insert("authorization", "Bearer tok-124".parse().unwrap());
        assert!(!auth.bearer_ok(&h));
        assert!(!format!("{auth:?}").contains("tok-123"));
        assert!(Auth::open(1).with_bearer(SecretString::from("")).is_open());
    }
}
