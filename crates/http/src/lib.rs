//! `dedupd-http`: the HTTP service toolkit every dedupd service shares, so `dedupd serve` can
//! host several APIs (the message gateway, the notifications API) on one listener with one
//! behaviour, and `dedupd relay` and the Genesys emulator answer the same way:
//!
//! - [`error`]: the JSON error envelope ([`ApiError`], [`ErrorEnvelope`]), the [`ApiJson`]
//!   extractor (and [`parse_json`] for a body already read) and [`envelope_layer`] for axum's
//!   own rejections.
//! - [`auth`]: bearer token and `X-Hub-Signature-256` HMAC verification ([`Auth`],
//!   [`require_auth`], [`guard`]).
//! - [`limit`]: the request body limit, a declared `Content-Length` included
//!   ([`BodyLimitLayer`]).
//! - [`timeout`]: the request timeout that arms its timer only for a request still pending.
//! - [`health`]: `/healthz` and `/readyz` with pluggable readiness checks ([`Health`],
//!   [`Readiness`], [`ReadyCheck`]).
//! - [`metrics`]: the process-wide Prometheus recorder ([`metrics::install`]) and `/metrics`.
//! - [`compose`]: merges any number of [`utoipa_axum::router::OpenApiRouter`]s into one
//!   [`axum::Router`] with `/openapi.json`, `/metrics`, `/healthz`, `/readyz`, a 404 fallback,
//!   the envelope, a timeout and panic catching ([`ServiceOptions`]).
//! - [`server`]: the HTTP/1 listener ([`serve`] within [`Limits`]): a header-read timeout, a cap
//!   on open connections with a reserve for health checks, graceful shutdown.
//! - [`shutdown_signal`]: the one shutdown signal (SIGTERM or Ctrl-C) of every dedupd service.

pub mod auth;
pub mod error;
pub mod health;
pub mod limit;
pub mod metrics;
pub mod server;
mod shutdown;
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
pub use limit::{BodyLimitLayer, declared_too_large};
pub use server::{Limits, serve};
pub use shutdown::shutdown_signal;

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
    // The library fills `contact` and `license` with its own author and licence by default.
    let mut contact = utoipa::openapi::info::Contact::new();
    contact.name = Some("dedupd".to_owned());
    // The repository's URL, once the package names one (no placeholder).
    contact.url = Some(env!("CARGO_PKG_REPOSITORY"))
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    doc.info.contact = Some(contact);
    let mut license = utoipa::openapi::info::License::new(env!("CARGO_PKG_LICENSE"));
    license.identifier = Some(env!("CARGO_PKG_LICENSE").to_owned());
    doc.info.license = Some(license);
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use axum::extract::Request;
    use axum::routing::post;
    use tower::ServiceExt;

    /// A JSON API as a service builds it: its routes behind [`guard`] and a [`BodyLimitLayer`].
    fn app(auth: Auth) -> Router {
        let api = OpenApiRouter::new().route(
            "/v1/messages",
            post(|ApiJson(v): ApiJson<serde_json::Value>| async move { axum::Json(v) }),
        );
        let api = guard(api, auth).layer(BodyLimitLayer::new(1 << 20));
        compose(
            vec![api],
            Health::new(),
            metrics::install(),
            &ServiceOptions::default(),
        )
    }

    /// A body that never sends a byte: the client declared a length and stopped.
    fn silent_body() -> Body {
        Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>())
    }

    // Paused time: a handler that waited for the body would be cut by the 10 s request timeout
    // (408); the clock moves only when every task waits, so "no time passed" is exact.
    #[tokio::test(start_paused = true)]
    async fn a_declared_length_over_the_limit_is_an_immediate_413() {
        let signed = Auth::open(1 << 20).with_hmac_secret(secrecy::SecretString::from("s"));
        for (name, auth) in [("open", Auth::open(1 << 20)), ("signed", signed)] {
            let started = tokio::time::Instant::now();
            let req = Request::post("/v1/messages")
                .header("content-type", "application/json")
                .header("content-length", "104857600")
                .header(auth::SIGNATURE_HEADER, "sha256=00")
                .body(silent_body())
                .unwrap();
            let response = app(auth).oneshot(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{name}");
            assert_eq!(
                started.elapsed(),
                Duration::ZERO,
                "{name}: answered at once"
            );
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let envelope: ErrorEnvelope = serde_json::from_slice(&body).unwrap();
            assert_eq!(envelope.error.code, "payload_too_large", "{name}");
        }
    }

    #[tokio::test]
    async fn openapi_info_names_dedupd_not_the_openapi_library() {
        let req = Request::get("/openapi.json").body(Body::empty()).unwrap();
        let response = app(Auth::open(1024)).oneshot(req).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let info = &doc["info"];
        assert_eq!(info["title"], "dedupd");
        assert_eq!(info["contact"]["name"], "dedupd", "{info}");
        match env!("CARGO_PKG_REPOSITORY") {
            "" => assert!(info["contact"].get("url").is_none(), "{info}"),
            url => assert_eq!(info["contact"]["url"], url, "{info}"),
        }
        assert_eq!(info["license"]["name"], env!("CARGO_PKG_LICENSE"), "{info}");
        assert!(info["contact"].get("email").is_none(), "{info}");
    }
}
