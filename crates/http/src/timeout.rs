//! A request timeout that arms its timer only when the request does not finish at once.
//!
//! `tower_http`'s `TimeoutLayer` creates and polls a `Sleep` for every request before the
//! handler runs, which registers (and, when the request is done, removes) an entry in Tokio's
//! timer wheel under its lock: a measurable share of a gateway request that needs no I/O. Here
//! the handler is polled first, and the timer is armed, with the deadline counted from the
//! request's start, only if the handler is still pending. The answer is the same: the handler's
//! response, or an empty response with the configured status once the deadline has passed (the
//! error envelope then fills it in).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use tower::{Layer, Service};

/// Applies [`Timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
    status: StatusCode,
}

impl TimeoutLayer {
    /// Answers `status` (with an empty body) when a request takes longer than `timeout`.
    pub fn with_status_code(status: StatusCode, timeout: Duration) -> Self {
        TimeoutLayer { timeout, status }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            timeout: self.timeout,
            status: self.status,
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
    status: StatusCode,
}

impl<S> Service<Request> for Timeout<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let status = self.status;
        let inner = self.inner.call(req);
        Box::pin(async move {
            let mut inner = std::pin::pin!(inner);
            let mut sleep: Option<Pin<Box<tokio::time::Sleep>>> = None;
            std::future::poll_fn(|cx| {
                if let Poll::Ready(result) = inner.as_mut().poll(cx) {
                    return Poll::Ready(result);
                }
                let sleep =
                    sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    let mut response = Response::default();
                    *response.status_mut() = status;
                    return Poll::Ready(Ok(response));
                }
                Poll::Pending
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/fast", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route(
                "/pending-then-done",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    "done"
                }),
            )
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(300),
            ))
    }

    async fn status(path: &str) -> StatusCode {
        let req = Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        app().oneshot(req).await.unwrap().status()
    }

    // Paused time: the clock only moves when every task waits, so the deadline is exact and a
    // busy machine cannot make the 20 ms handler look slow.
    #[tokio::test(start_paused = true)]
    async fn answers_in_time_and_times_out_past_the_deadline() {
        assert_eq!(status("/fast").await, StatusCode::OK);
        assert_eq!(status("/pending-then-done").await, StatusCode::OK);
        let started = tokio::time::Instant::now();
        assert_eq!(status("/slow").await, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(300),
            "at the deadline, not before"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_gets_the_error_envelope() {
        let app = app().layer(axum::middleware::map_response(crate::envelope_layer));
        let req = Request::builder()
            .uri("/slow")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let envelope: crate::ErrorEnvelope = serde_json::from_slice(&body).unwrap();
        assert_eq!(envelope.error.code, "timeout");
    }
}
