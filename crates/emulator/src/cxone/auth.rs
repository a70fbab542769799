//! The issuer and tenant discovery (api-notes §1–§2): `GET /.well-known/openid-configuration`,
//! `POST /auth/token` (access-key password grant and refresh), `GET /auth/jwks`,
//! `GET /.well-known/cxone-configuration?tenantId=…`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::{CxError, CxResult};
use super::extract::Q;
use super::state::{CxoneState, RefreshRec};
use super::wire::ok;
use crate::gate::token::{TokenRequest, known_client as known_client_in};

/// The key the `id_token` is signed with (HS256). Clients decode the token without verifying
/// it (api-notes §2); the key only makes the signature honest.
const ID_TOKEN_KEY: &[u8] = b"dedupd-cxone-emulator-id-token-key";

/// `GET /.well-known/openid-configuration`: every endpoint on this same base.
pub(crate) async fn openid_configuration(State(st): State<CxoneState>) -> Response {
    let iss = &st.shared.issuer;
    ok(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/auth/authorize"),
        "token_endpoint": format!("{iss}/auth/token"),
        "jwks_uri": format!("{iss}/auth/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["password", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid"],
    }))
}

/// `GET /auth/jwks`: no public keys (the `id_token` is HS256, not meant to be verified).
pub(crate) async fn jwks() -> Response {
    ok(json!({"keys": []}))
}

/// `GET /.well-known/cxone-configuration?tenantId=…`: where the tenant's APIs are. On the
/// emulator `api_endpoint` is the issuer itself; the DFO base (which NICE's SDK builds as
/// `https://api-de-{area}.{domain}`) is also the issuer, so clients take it as an override.
pub(crate) async fn cxone_configuration(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let Some(tenant_id) = q.get("tenantId").filter(|t| !t.trim().is_empty()) else {
        return Err(CxError::auth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tenantId is required.",
        ));
    };
    let t = &st.shared.tenant;
    if tenant_id != t.tenant_id {
        return Err(CxError::auth(
            StatusCode::NOT_FOUND,
            "not_found",
            "No tenant with this tenantId.",
        ));
    }
    let iss = &st.shared.issuer;
    Ok(ok(json!({
        "private": false,
        "area": t.area,
        "cluster": t.cluster,
        "domain": t.domain,
        "acdDomain": t.domain,
        "uhDomain": t.domain,
        "ui_endpoint": iss,
        "auth_endpoint": iss,
        "api_endpoint": iss,
        "tenantId": t.tenant_id,
        "globaldomain": t.domain,
    })))
}

fn oauth(status: StatusCode, code: &str, message: &str) -> CxError {
    CxError::auth(status, code, message)
}

fn invalid_client() -> CxError {
    oauth(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed.",
    )
}

/// `POST /auth/token`: `grant_type=password` (`username` = access key id, `password` = access
/// key secret) or `grant_type=refresh_token`, the client authenticated by HTTP Basic or by
/// `client_id`/`client_secret` form fields (a refresh may name only `client_id`). Secrets are
/// compared, never logged or echoed.
pub(crate) async fn token(State(st): State<CxoneState>, req: Request) -> CxResult<Response> {
    st.lock().gate.stats.token_requests += 1;
    let Some(treq) = TokenRequest::read(req).await else {
        return Err(oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The token request must be a form body (application/x-www-form-urlencoded).",
        ));
    };
    let field = |name: &str| treq.field(name);
    let grant = field("grant_type");
    let (client_id, secret) = treq.client();
    let known_client = |id: &str, secret: &str| known_client_in(&st.shared.clients, id, secret);
    match grant.as_deref() {
        None => Err(oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required.",
        )),
        Some("password") => {
            let (Some(client_id), Some(secret)) = (client_id, secret) else {
                return Err(invalid_client());
            };
            if !known_client(&client_id, &secret) {
                return Err(invalid_client());
            }
            let (Some(key_id), Some(key_secret)) = (field("username"), field("password")) else {
                return Err(oauth(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "username (access key id) and password (access key secret) are required.",
                ));
            };
            let key_ok = known_client_in(&st.shared.access_keys, &key_id, &key_secret);
            if !key_ok {
                return Err(oauth(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid access key.",
                ));
            }
            Ok(issue(&st, client_id, key_id))
        }
        Some("refresh_token") => {
            let Some(client_id) = client_id else {
                return Err(invalid_client());
            };
            if let Some(secret) = &secret
                && !known_client(&client_id, secret)
            {
                return Err(invalid_client());
            }
            if !st.shared.clients.iter().any(|(id, _)| *id == client_id) {
                return Err(invalid_client());
            }
            let Some(refresh) = field("refresh_token") else {
                return Err(oauth(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required.",
                ));
            };
            let rec = {
                let mut inner = st.lock();
                let now = inner.gate.now();
                // Single use: a refresh token is consumed whether or not it is still good.
                match inner.refresh_tokens.remove(&refresh) {
                    Some(r) if r.client_id == client_id && now < r.expires => Some(r),
                    _ => None,
                }
            };
            let Some(rec) = rec else {
                return Err(oauth(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token is invalid, expired or already used.",
                ));
            };
            Ok(issue(&st, rec.client_id, rec.key_id))
        }
        Some(_) => Err(oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Supported grants: password (access key) and refresh_token.",
        )),
    }
}

/// A token response for `client_id` acting as the user of `key_id`.
fn issue(st: &CxoneState, client_id: String, key_id: String) -> Response {
    let mut inner = st.lock();
    let (access, expires_in) = inner
        .gate
        .issue_token(client_id.clone(), st.shared.gate.token_ttl);
    let refresh = inner.gate.random_token();
    let now = inner.gate.now();
    let refresh_expires = now.checked_add(st.shared.refresh_token_ttl).unwrap_or(now);
    inner.refresh_tokens.insert(
        refresh.clone(),
        RefreshRec {
            client_id: client_id.clone(),
            key_id: key_id.clone(),
            expires: refresh_expires,
        },
    );
    let iat = inner.gate.wall_now().timestamp();
    drop(inner);
    let t = &st.shared.tenant;
    let claims = json!({
        "iss": st.shared.issuer,
        "sub": format!("user:{key_id}"),
        "aud": client_id,
        "iat": iat,
        "exp": iat.saturating_add(i64::try_from(expires_in).unwrap_or(i64::MAX)),
        "tenantId": t.tenant_id,
        "area": t.area,
        "icClusterId": t.cluster,
    });
    ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh,
        "id_token": jwt_hs256(&claims),
    }))
}

/// A compact JWT `header.payload.signature`, HS256 with [`ID_TOKEN_KEY`].
fn jwt_hs256(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let sig = hmac_sha256(ID_TOKEN_KEY, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// HMAC-SHA256 (RFC 2104) over `msg`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner);
    outer.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn jwt_payload_decodes_without_verification() {
        let t = jwt_hs256(&json!({"tenantId": "t1", "iss": "http://x"}));
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url");
        let v: Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(v["tenantId"], "t1");
    }
}
