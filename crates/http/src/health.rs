//! `/healthz` (the process answers) and `/readyz` (its dependencies are usable), with checks
//! each service registers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

/// The state of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Usable.
    Ready,
    /// Not usable, but the service keeps answering by policy (e.g. PROCESS without Redis).
    Degraded,
    /// Not usable: the service cannot do its job; `/readyz` answers 503.
    NotReady,
}

/// A readiness check.
pub trait ReadyCheck: Send + Sync + 'static {
    /// The dependency's state now.
    fn check(&self) -> Pin<Box<dyn Future<Output = Readiness> + Send + '_>>;
}

/// The checks behind `/readyz`, by name.
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<(String, Arc<dyn ReadyCheck>)>,
}

#[derive(Serialize)]
struct ReadyBody {
    status: Readiness,
    checks: BTreeMap<String, Readiness>,
}

impl Health {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named check.
    pub fn with(mut self, name: impl Into<String>, check: Arc<dyn ReadyCheck>) -> Self {
        self.checks.push((name.into(), check));
        self
    }

    /// Adds every check of `other` (when composing services).
    pub fn merge(mut self, other: Health) -> Self {
        self.checks.extend(other.checks);
        self
    }

    async fn readyz(&self) -> Response {
        let mut checks = BTreeMap::new();
        let mut status = Readiness::Ready;
        for (name, check) in &self.checks {
            let r = check.check().await;
            status = match (status, r) {
                (_, Readiness::NotReady) | (Readiness::NotReady, _) => Readiness::NotReady,
                (_, Readiness::Degraded) | (Readiness::Degraded, _) => Readiness::Degraded,
                _ => Readiness::Ready,
            };
            checks.insert(name.clone(), r);
        }
        let code = if status == Readiness::NotReady {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let mut response = (code, Json(ReadyBody { status, checks })).into_response();
        if code == StatusCode::SERVICE_UNAVAILABLE {
            // Not the error envelope: load balancers read the checks.
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, 1.into());
        }
        response
    }

    /// `GET /healthz` and `GET /readyz`.
    pub fn router(self) -> Router {
        let this = Arc::new(self);
        Router::new()
            .route(
                "/healthz",
                get(|| async { Json(serde_json::json!({"status": "ok"})) }),
            )
            .route(
                "/readyz",
                get(move || {
                    let this = this.clone();
                    async move { this.readyz().await }
                }),
            )
    }
}
