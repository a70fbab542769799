//! The pieces every dedupd HTTP service shares, so `dedupd serve` can host several APIs (the
//! message gateway, the notifications API) on one listener with one behaviour:
//!
//! - [`error`]: the JSON error envelope ([`ApiError`], [`ErrorEnvelope`]), the [`ApiJson`]
//!   extractor and [`envelope_layer`] for axum's own rejections.
//! - [`auth`]: bearer token and `X-Hub-Signature-256` HMAC verification ([`Auth`],
//!   [`require_auth`]).
//! - [`metrics`]: the process-wide Prometheus recorder ([`metrics::install`]).
//! - [`health`]: `/healthz` and `/readyz` with pluggable readiness checks ([`Health`]).
//! - [`compose`]: merges any number of [`utoipa_axum::router::OpenApiRouter`]s into one
//!   [`axum::Router`] with `/openapi.json`, `/metrics`, `/healthz`, `/readyz`, a 404 fallback,
//!   the envelope, a timeout and panic catching.

pub mod auth;
pub mod error;
pub mod health;
pub mod metrics;
pub mod timeout;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use timeout::TimeoutLayer;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Auth, guard, require_auth};
pub use error::{ApiError, ApiJson, ErrorBody, ErrorEnvelope, envelope_layer, parse_json};
pub use health::{Health, Readiness, ReadyCheck};

/// Options of [`compose`].
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// `info.title` of the merged OpenAPI document.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// Bound on handling one request (answers 408 in the envelope past it).
    pub request_timeout: Duration,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            title: "dedupd".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// One router from several APIs: their routes and OpenAPI paths merged, plus `/openapi.json`,
/// `/metrics` (rendered from `metrics`), `/healthz`, `/readyz` (running `health`'s checks), a
/// 404 fallback, the error envelope on every 4xx/5xx, a request timeout and panic catching.
/// Each API applies its own auth and body limit before it is passed in.
pub fn compose(
    apis: Vec<OpenApiRouter>,
    health: Health,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    options: &ServiceOptions,
) -> Router {
    let mut merged = OpenApiRouter::new();
    for api in apis {
        merged = merged.merge(api);
    }
    let (api_router, mut doc): (Router, OpenApi) = merged.split_for_parts();
    doc.info.title.clone_from(&options.title);
    doc.info.version.clone_from(&options.version);
    doc.info.description = Some(
        "dedupd: one inbound message = one conversation, one business event = one notification."
            .to_owned(),
    );
    let doc_json = std::sync::Arc::new(doc);
    api_router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc_json.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .merge(metrics::router(metrics))
        .merge(health.router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(envelope_layer))
}
