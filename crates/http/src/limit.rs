//! The request body limit, checked twice: against the declared `Content-Length` before anything
//! reads the body, and against the bytes actually read (axum's [`DefaultBodyLimit`], which
//! covers chunked bodies).
//!
//! Reading a body only to find it too large means waiting for bytes a client may never send: a
//! request declaring 100 MB against a 1 MiB limit would sit until the request timeout (a 408
//! after 10 s) instead of getting its 413 at once. [`BodyLimitLayer`] answers 413
//! `payload_too_large` in the envelope as soon as the headers are in.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::ApiError;

/// True when the request declares a `Content-Length` above `limit` (an unreadable value is
/// left to the HTTP layer, which refuses it).
pub fn declared_too_large(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
}

/// Bounds request bodies to `limit` bytes: an immediate 413 for a declared `Content-Length`
/// over it, and [`DefaultBodyLimit::max`] for the extractors that read the body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: usize,
}

impl BodyLimitLayer {
    /// At most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        BodyLimitLayer { limit }
    }
}

impl<S> Layer<S> for BodyLimitLayer
where
    DefaultBodyLimit: Layer<S>,
{
    type Service = BodyLimit<<DefaultBodyLimit as Layer<S>>::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner: DefaultBodyLimit::max(self.limit).layer(inner),
            limit: self.limit,
        }
    }
}

/// The service of [`BodyLimitLayer`].
#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<Request> for BodyLimit<S>
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
        if declared_too_large(req.headers(), self.limit) {
            let response = ApiError::payload_too_large(self.limit).into_response();
            return Box::pin(std::future::ready(Ok(response)));
        }
        Box::pin(self.inner.call(req))
    }
}
