//! `POST /v1/notifications` and `GET /v1/notifications/{key}`.
//!
//! Idempotency-Key semantics (IETF `draft-ietf-httpapi-idempotency-key-header`, Stripe):
//! - no `Idempotency-Key` → 400 `missing_idempotency_key` (a malformed one: 400
//!   `invalid_idempotency_key`: 1–255 visible ASCII characters);
//! - first use → 202 with the notification's id and status, `Location` of its status;
//! - the same key and the same body (SHA-256 of its canonical JSON) → the first response again,
//!   byte for byte, whatever the notification's status now, with `Idempotent-Replayed: true`;
//! - the same key with another body → 422 `idempotency_key_reused`;
//! - the same key while the first request with it is still being accepted in this process →
//!   409 `request_in_progress` with `Retry-After: 1` (across processes the outbox's unique key
//!   serializes the two: the second replays the first);
//! - keys are kept for the configured retention (at least 24 h), then forgotten.
//!
//! Every error answer is the envelope every dedupd service shares
//! ([`dedupd_http::ApiError`]: `{"error":{"status":…,"code":…,"field":…,"message":…}}`),
//! axum's own rejections included.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dedupd_core::notification::{
    Channel, NotificationRequest, RequestError, content_guard_key, fingerprint, valid_key,
};
pub use dedupd_http::ApiError;
use dedupd_http::{ErrorEnvelope, envelope_layer, parse_json};
use dedupd_store::outbox::{
    AcceptOptions, Accepted, GuardMode, NewNotification, Notification, Outbox, OutboxStore,
};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::Clock;
use crate::config::NotifyConfig;

/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The header naming a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A request the core parser refused, as the shared error envelope.
fn request_error(e: RequestError) -> ApiError {
    let msg = e.to_string();
    match e {
        RequestError::NotAnObject => ApiError::malformed_json(msg),
        RequestError::Missing(f) => ApiError::invalid_field(f, msg),
        RequestError::Invalid { field, .. } => ApiError::invalid_field(field, msg),
        RequestError::UnknownField(f) => ApiError::invalid_field(f, msg),
        _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", msg),
    }
}

/// The outbox could not be reached: 503, retry with the same key.
fn unavailable(e: &dedupd_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "Outbox unavailable");
    ApiError::unavailable(
        "the outbox is unavailable; retry with the same Idempotency-Key",
        1,
    )
}

/// Keys being accepted right now in this process (for the 409).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<String>>>);

/// Holds a key in [`InFlight`] until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    set: InFlight,
    key: String,
}

impl InFlight {
    /// Takes `key`, unless a request already holds it.
    pub fn hold(&self, key: &str) -> Option<InFlightGuard> {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.insert(key.to_owned()).then(|| InFlightGuard {
            set: self.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut s = self
            .set
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.remove(&self.key);
    }
}

/// The API's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NotifyApi {
    inner: Arc<ApiInner>,
}

#[derive(Debug)]
struct ApiInner {
    outbox: Outbox,
    opts: AcceptOptions,
    channels: BTreeMap<Channel, String>,
    /// Provider name → the channels it can send.
    providers: BTreeMap<String, Vec<Channel>>,
    allow_override: bool,
    clock: Clock,
    inflight: InFlight,
}

impl NotifyApi {
    /// The API over `outbox`, configured by `cfg` (validate it first).
    pub fn new(outbox: Outbox, cfg: &NotifyConfig, clock: Clock) -> Self {
        let providers = cfg
            .providers
            .iter()
            .map(|(name, p)| {
                let chans = Channel::ALL
                    .into_iter()
                    .filter(|c| p.supports(*c))
                    .collect();
                (name.clone(), chans)
            })
            .collect();
        Self {
            inner: Arc::new(ApiInner {
                outbox,
                opts: cfg.accept_options(),
                channels: cfg.channels.clone(),
                providers,
                allow_override: cfg.allow_provider_override,
                clock,
                inflight: InFlight::default(),
            }),
        }
    }

    /// The keys in flight (tests hold one to see the 409).
    pub fn inflight(&self) -> &InFlight {
        &self.inner.inflight
    }

    /// The outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    fn provider_for(&self, req: &NotificationRequest) -> Result<String, ApiError> {
        let inner = &self.inner;
        match &req.provider {
            Some(_) if !inner.allow_override => Err(ApiError::invalid_field(
                "provider",
                "naming a provider is not allowed here; the channel decides",
            )),
            Some(p) => match inner.providers.get(p) {
                Some(chans) if chans.contains(&req.channel) => Ok(p.clone()),
                Some(_) => Err(ApiError::invalid_field(
                    "provider",
                    format!("provider `{p}` cannot send {}", req.channel),
                )),
                None => Err(ApiError::invalid_field(
                    "provider",
                    format!("provider `{p}` is not configured"),
                )),
            },
            None => inner.channels.get(&req.channel).cloned().ok_or_else(|| {
                ApiError::invalid_field(
                    "channel",
                    format!("no provider is configured for {}", req.channel),
                )
            }),
        }
    }
}

/// The two routes with their OpenAPI paths and the body limit: what `dedupd serve` composes
/// with the other APIs (so `/openapi.json` lists them).
pub fn routes(api: NotifyApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(status))
        .layer(dedupd_http::BodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(api)
}

/// The two routes, with the body limit. Merge it into a service that adds the envelope for
/// unmatched routes, or use [`app`].
pub fn router(api: NotifyApi) -> Router {
    routes(api).into()
}

/// [`router`] as a whole application: 404 and 405 in the envelope, every other error answer
/// rewritten into it, panics caught as 500s.
pub fn app(api: NotifyApi) -> Router {
    router(api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal().into_response()
        }))
        .layer(axum::middleware::map_response(envelope_layer))
}

fn new_id() -> String {
    format!("ntf_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// The first response's body: a function of what never changes, so it replays byte for byte.
fn accepted_body(n: &Notification) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(n.id));
    m.insert("key".into(), json!(n.key));
    m.insert("status".into(), json!(n.accepted_status));
    m.insert("channel".into(), json!(n.channel));
    m.insert("provider".into(), json!(n.provider));
    m.insert("created_at".into(), json!(n.created_at));
    m.insert("expires_at".into(), json!(n.expires_at));
    if let Some(t) = n.not_after {
        m.insert("not_after".into(), json!(t));
    }
    if let Some(d) = &n.duplicate_of {
        m.insert("duplicate_of".into(), json!(d));
        m.insert(
            "suppressed".into(),
            json!(n.accepted_status == dedupd_core::notification::Status::Failed),
        );
    }
    Value::Object(m)
}

fn status_body(n: &Notification) -> Value {
    json!({
        "id": n.id,
        "key": n.key,
        "status": n.status,
        "channel": n.channel,
        "provider": n.provider,
        "attempts": n.attempts,
        "provider_message_id": n.provider_message_id,
        "last_error": n.last_error,
        "duplicate_of": n.duplicate_of,
        "created_at": n.created_at,
        "updated_at": n.updated_at,
        "delivered_at": n.delivered_at,
        "next_attempt_at": n.next_attempt_at,
        "not_after": n.not_after,
        "expires_at": n.expires_at,
    })
}

fn accepted_response(n: &Notification, replayed: bool) -> Response {
    let mut resp = (StatusCode::ACCEPTED, axum::Json(accepted_body(n))).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/notifications/{}", n.key)) {
        h.insert(header::LOCATION, v);
    }
    if replayed {
        h.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    resp
}

/// Accept a notification for delivery, once per `Idempotency-Key`.
///
/// The body: `channel` (`sms`, `email`, `voice`, `whatsapp`), `to` (E.164 or e-mail), `text`
/// or `template` + `params`, optional `customer_id`, `event_type`, `provider`, `not_after`.
#[utoipa::path(
    post,
    path = "/v1/notifications",
    tag = "notifications",
    params(("Idempotency-Key" = String, Header, description = "The producer's key: 1 to 255 visible ASCII characters")),
    request_body(content = Object, content_type = "application/json", description = "The notification"),
    responses(
        (status = 202, description = "Accepted (or the first response replayed, with `Idempotent-Replayed: true`)"),
        (status = 400, description = "No or a malformed Idempotency-Key, or not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid bearer token / signature", body = ErrorEnvelope),
        (status = 409, description = "The first request with this key is still being accepted; retry", body = ErrorEnvelope),
        (status = 413, description = "Body over the size cap", body = ErrorEnvelope),
        (status = 415, description = "Not application/json", body = ErrorEnvelope),
        (status = 422, description = "A field is invalid, or the key was used with another body", body = ErrorEnvelope),
        (status = 503, description = "The outbox is unavailable; retry with the same key", body = ErrorEnvelope),
    )
)]
async fn create(
    State(api): State<NotifyApi>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_idempotency_key",
                "the Idempotency-Key header is required",
            )
            .with_field("Idempotency-Key"));
        }
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| valid_key(k))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                )
                .with_field("Idempotency-Key")
            })?
            .to_owned(),
    };
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        ApiError::new(
            e.status(),
            code,
            format!("cannot read the body: {}", e.body_text()),
        )
    })?;
    let value: Value = parse_json(&body)?;
    match api.submit(&key, &value).await? {
        Submitted::Created(n) => Ok(accepted_response(&n, false)),
        Submitted::Replayed(n) => Ok(accepted_response(&n, true)),
    }
}

/// What [`NotifyApi::submit`] did with a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// First use of the key: stored durably in the outbox.
    Created(Notification),
    /// The key was already accepted with the same content: nothing new was stored.
    Replayed(Notification),
}

impl NotifyApi {
    /// Accepts the notification `value` (the JSON body of `POST /v1/notifications`) under the
    /// idempotency `key`: the one accept path, shared by the HTTP API and the broker consumers.
    /// `Ok` means the outbox holds it durably (created now, or recognized as already accepted
    /// with the same content). The errors are the API's answers: 400 `invalid_idempotency_key`,
    /// 422 for a field (`invalid_field`, naming it) or `idempotency_key_reused` (same key,
    /// other content), 409 `request_in_progress` (the same key is being accepted right now:
    /// retry), 503 (the outbox is unavailable: retry).
    pub async fn submit(&self, key: &str, value: &Value) -> Result<Submitted, ApiError> {
        if !valid_key(key) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .with_field("Idempotency-Key"));
        }
        let req = NotificationRequest::parse(value).map_err(request_error)?;
        let provider = self.provider_for(&req)?;

        let Some(_held) = self.inner.inflight.hold(key) else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .with_retry_after(1));
        };
        let opts = self.inner.opts;
        let guard_key = (opts.guard != GuardMode::Off)
            .then(|| content_guard_key(req.guard_customer(), req.channel, &req.text));
        let new = NewNotification {
            key: key.to_owned(),
            id: new_id(),
            fingerprint: fingerprint(value),
            request: serde_json::to_value(&req).map_err(|_| ApiError::internal())?,
            channel: req.channel.as_str().to_owned(),
            provider,
            guard_key,
            not_after: req.not_after,
        };
        let now = self.inner.clock.now();
        match self.inner.outbox.accept(new, opts, now).await {
            Ok(Accepted::Created(n)) => {
                metrics::counter!(crate::telemetry::ACCEPTED, "result" => "created").increment(1);
                tracing::info!(key = %n.key, id = %n.id, channel = %n.channel, provider = %n.provider,
                    duplicate_of = ?n.duplicate_of, status = %n.status, "Accepted a notification");
                Ok(Submitted::Created(n))
            }
            Ok(Accepted::Replay(n)) => {
                metrics::counter!(crate::telemetry::ACCEPTED, "result" => "replayed").increment(1);
                tracing::debug!(key = %n.key, id = %n.id, "Replayed a notification response");
                Ok(Submitted::Replayed(n))
            }
            Ok(Accepted::Mismatch(n)) => {
                metrics::counter!(crate::telemetry::ACCEPTED, "result" => "mismatch").increment(1);
                tracing::info!(key = %n.key, id = %n.id, "Idempotency-Key reused with another body");
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with a different request body",
                )
                .with_field("Idempotency-Key"))
            }
            Err(e) => Err(unavailable(&e)),
        }
    }
}

/// The status of the notification accepted under `key`.
#[utoipa::path(
    get,
    path = "/v1/notifications/{key}",
    tag = "notifications",
    params(("key" = String, Path, description = "The Idempotency-Key it was accepted under")),
    responses(
        (status = 200, description = "Its status: pending, sending, delivered, failed, unknown or expired"),
        (status = 401, description = "Missing or invalid bearer token / signature", body = ErrorEnvelope),
        (status = 404, description = "No notification under this key (or it was forgotten)", body = ErrorEnvelope),
        (status = 503, description = "The outbox is unavailable", body = ErrorEnvelope),
    )
)]
async fn status(
    State(api): State<NotifyApi>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()).with_field("key")
    })?;
    let now = api.inner.clock.now();
    match api.inner.outbox.get(&key, now).await {
        Ok(Some(n)) => Ok((StatusCode::OK, axum::Json(status_body(&n))).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no notification with this key (unknown, or its retention has passed)",
        )
        .with_field("key")),
        Err(e) => Err(unavailable(&e)),
    }
}
