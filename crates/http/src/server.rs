//! The HTTP/1 listener behind `dedupd serve` and the Genesys emulator.
//!
//! `axum::serve` reads request headers for as long as a client cares to send them and accepts
//! connections until the process runs out of descriptors: a few thousand connections that
//! send half a request keep the server's slots and, at the descriptor limit, starve everything
//! else, `/healthz` included, with nothing logged. [`serve`] runs hyper's HTTP/1 connection
//! with:
//!
//! - a **header-read timeout** ([`Limits::header_timeout`]): a connection that has not sent a
//!   whole request head in time is closed (counted in [`HEADER_TIMEOUTS`]);
//! - a **cap on open connections** ([`Limits::max_connections`], a semaphore): when every slot
//!   is taken, one warning is logged for the burst and every connection accepted over the cap
//!   is counted in [`OVER_CAP`];
//! - a small **reserve** past the cap ([`Limits::reserve`]) that keeps health checks
//!   answering: a connection accepted into it is served only for [`Limits::reserve_paths`]
//!   (`/healthz`, `/readyz`), has a short header timeout ([`Limits::reserve_header_timeout`])
//!   and no keep-alive; any other request there gets [`Limits::overloaded`] (503 with
//!   `Retry-After`) at once. When the reserve is full too, the server stops accepting until a
//!   slot frees (connections wait in the kernel's backlog);
//! - **graceful shutdown**: when `shutdown` resolves, it stops accepting, lets the requests in
//!   flight finish and closes idle connections.
//!
//! Why a reserve rather than closing at once or pausing the accept loop: a health probe cannot
//! be told from an attacker before its request is read, so closing at once fails the probe,
//! and pausing leaves it in the backlog behind the attackers. A reserve connection lives at
//! most the reserve's short header timeout, so holding the reserve takes a steady stream of new
//! connections, not a few thousand idle ones, and a load balancer's probe keeps its answer (and
//! its `Retry-After` 503 for everything else) while the main slots are held.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Counter: connections accepted while every regular slot was taken (served from the
/// reserve, or waited in the backlog first).
pub const OVER_CAP: &str = "dedupd_http_connections_over_cap_total";
/// Counter: connections closed because their request head did not arrive in time.
pub const HEADER_TIMEOUTS: &str = "dedupd_http_header_timeouts_total";
/// Gauge: open connections (regular and reserve).
pub const OPEN: &str = "dedupd_http_connections_open";

/// Describes the listener's metrics and registers them at zero. Call once the recorder is
/// installed.
pub fn describe() {
    metrics::describe_counter!(
        OVER_CAP,
        "Connections accepted past max_connections (health checks only, or 503)."
    );
    metrics::describe_counter!(
        HEADER_TIMEOUTS,
        "Connections closed for not sending a whole request head within header_timeout."
    );
    metrics::describe_gauge!(OPEN, "Connections open now.");
    metrics::counter!(OVER_CAP).increment(0);
    metrics::counter!(HEADER_TIMEOUTS).increment(0);
    metrics::gauge!(OPEN).increment(0.0);
}

/// The server's bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for a request head (the request line and every header); past it the
    /// connection is closed. Default 10 s.
    pub header_timeout: Duration,
    /// Most connections open at once (the regular slots). Default 1024.
    pub max_connections: usize,
    /// Connections past the cap that are still accepted, for [`Limits::reserve_paths`] only.
    /// Default 32.
    pub reserve: usize,
    /// Header timeout of a reserve connection (at most [`Limits::header_timeout`]). Default 1 s.
    pub reserve_header_timeout: Duration,
    /// Paths a reserve connection is served for (exact match). Default `/healthz`, `/readyz`.
    pub reserve_paths: Vec<String>,
    /// The answer to any other request on a reserve connection. Default: 503 with
    /// `Retry-After: 1` and a JSON error body, code `overloaded`.
    pub overloaded: fn() -> Response,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            reserve: 32,
            reserve_header_timeout: Duration::from_secs(1),
            reserve_paths: vec!["/healthz".to_owned(), "/readyz".to_owned()],
            overloaded,
        }
    }
}

/// The default answer past the cap: 503, `Retry-After: 1`, a JSON error body.
pub fn overloaded() -> Response {
    let body = r#"{"error":{"status":503,"code":"overloaded","message":"too many open connections; retry later"}}"#;
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
    response
}

enum Slot {
    Regular(OwnedSemaphorePermit),
    Reserve(OwnedSemaphorePermit),
}

struct Slots {
    regular: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    max: usize,
    /// True from the moment the regular slots ran out until one is free again (one log line
    /// per burst).
    at_cap: bool,
}

impl Slots {
    /// The next connection's slot: a regular one, else a reserve one, else the first of either
    /// that frees.
    async fn next(&mut self) -> Slot {
        if let Ok(p) = self.regular.clone().try_acquire_owned() {
            if self.at_cap {
                self.at_cap = false;
                tracing::info!(
                    max_connections = self.max,
                    "Below the connection cap again."
                );
            }
            return Slot::Regular(p);
        }
        if !self.at_cap {
            self.at_cap = true;
            tracing::warn!(
                max_connections = self.max,
                "Connection cap reached: new connections are served for health checks only \
                 (503 for the rest) until slots free; raise the cap if this is legitimate load."
            );
        }
        if let Ok(p) = self.reserve.clone().try_acquire_owned() {
            return Slot::Reserve(p);
        }
        tokio::select! {
            p = self.regular.clone().acquire_owned() => match p {
                Ok(p) => Slot::Regular(p),
                Err(_) => std::future::pending().await,
            },
            p = self.reserve.clone().acquire_owned() => match p {
                Ok(p) => Slot::Reserve(p),
                Err(_) => std::future::pending().await,
            },
        }
    }
}

/// Errors of `accept` that concern one connection only (the listener is fine).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then drains: no new
/// connections, requests in flight finish, idle connections close. Returns when every
/// connection has ended.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut slots = Slots {
        regular: Arc::new(Semaphore::new(limits.max_connections.max(1))),
        reserve: Arc::new(Semaphore::new(limits.reserve)),
        max: limits.max_connections.max(1),
        at_cap: false,
    };
    let over_cap = metrics::counter!(OVER_CAP);
    let header_timeouts = metrics::counter!(HEADER_TIMEOUTS);
    let open = metrics::gauge!(OPEN);
    let reserve_paths: Arc<[String]> = limits.reserve_paths.clone().into();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_failing = false;
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.next() => slot,
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                accept_failing = false;
                stream
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or memory: wait for connections to end.
                if !accept_failing {
                    accept_failing = true;
                    tracing::error!(error = %e, "Cannot accept connections; retrying every second.");
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // A reserve slot taken while everything was full may be stale by now.
        let slot = match slot {
            Slot::Reserve(p) => match slots.regular.clone().try_acquire_owned() {
                Ok(regular) => {
                    drop(p);
                    Slot::Regular(regular)
                }
                Err(_) => Slot::Reserve(p),
            },
            regular => regular,
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new());
        let (permit, reserve) = match slot {
            Slot::Regular(p) => {
                http.header_read_timeout(limits.header_timeout);
                (p, false)
            }
            Slot::Reserve(p) => {
                over_cap.increment(1);
                http.header_read_timeout(limits.reserve_header_timeout.min(limits.header_timeout))
                    .keep_alive(false);
                (p, true)
            }
        };
        let app = app.clone();
        let paths = reserve_paths.clone();
        let overloaded_answer = limits.overloaded;
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            let allowed = !reserve || paths.iter().any(|p| p == req.uri().path());
            async move {
                if allowed {
                    app.oneshot(req.map(axum::body::Body::new)).await
                } else {
                    Ok::<_, Infallible>(overloaded_answer())
                }
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let header_timeouts = header_timeouts.clone();
        let open = open.clone();
        open.increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                if e.is_timeout() {
                    header_timeouts.increment(1);
                }
                tracing::debug!(error = %e, "HTTP connection ended with an error.");
            }
            open.decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
