//! [`HttpClient`]: the request loop every typed endpoint of every platform client goes through.
//!
//! One attempt is: wait for the rate budget → take a token → send → classify the outcome into a
//! [`RetryAction`] → act on it. The loop owns every retry; typed endpoints only describe the
//! request (method, path, query, body, and whether it is idempotent).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{TokenCache, TokenGrant};
use crate::budget::RateBudget;
use crate::error::{ApiError, ApiErrorBody, EncodeError, Error, OutcomeUnknown, Unreachable};
use crate::reachability::Reachability;
use crate::retry::{
    RetryAction, RetryPolicy, classify_status, classify_transport, parse_retry_after,
};
use crate::stats::{ClientStats, StatsSnapshot};

/// How the request loop behaves, whatever the platform.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt (connect + send + receive).
    pub request_timeout: Duration,
    /// Give up on the platform when no request (of any clone of the client) has had an answer
    /// for this long while requests kept failing; `None`: never give up.
    pub give_up_after: Option<Duration>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The platform's base URL as shown in [`Unreachable`] (credentials are redacted).
    pub display_url: String,
}

/// A platform HTTP client: the request loop, the token cache, the rate budget, the stats and
/// the reachability circuit. Cheap to clone: clones share all of them, so give every worker
/// task a clone. `B` is the platform's error body.
pub struct HttpClient<B> {
    inner: Arc<Inner>,
    body: PhantomData<fn() -> B>,
}

impl<B> Clone for HttpClient<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            body: PhantomData,
        }
    }
}

struct Inner {
    http: reqwest::Client,
    tokens: TokenCache,
    budget: RateBudget,
    retry: RetryPolicy,
    stats: Arc<ClientStats>,
    reachability: Arc<Reachability>,
}

impl<B> fmt::Debug for HttpClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("budget", &self.inner.budget)
            .field("retry", &self.inner.retry)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// One API request, as the typed endpoints describe it.
pub struct Call {
    pub method: Method,
    /// Absolute API path, segments already percent-encoded (see [`path`]).
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// Sending it twice has the effect of sending it once.
    pub idempotent: bool,
    /// Sending it twice reaches a person twice (a message to a customer): any answer that may
    /// follow work already done (every 5xx, not only a 504) is an unknown outcome to read back,
    /// never a blind resend.
    pub at_most_once: bool,
}

impl Call {
    pub fn new(method: Method, path: String) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        Self {
            method,
            path,
            query: Vec::new(),
            body: None,
            idempotent,
            at_most_once: false,
        }
    }
    pub fn get(path: String) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn post(path: String) -> Self {
        Self::new(Method::POST, path)
    }
    pub fn put(path: String) -> Self {
        Self::new(Method::PUT, path)
    }
    pub fn patch(path: String) -> Self {
        Self::new(Method::PATCH, path)
    }
    pub fn delete(path: String) -> Self {
        Self::new(Method::DELETE, path)
    }
    /// With a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, EncodeError> {
        let bytes = serde_json::to_vec(body)?;
        self.body = Some(bytes);
        Ok(self)
    }
    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }
    pub fn query_opt(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }
    /// Overrides the method-based guess (POST upserts with caller ids are idempotent, PATCH
    /// with "append" is not, …).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }
    /// Marks a request that reaches a person: never resent after a 5xx (see `at_most_once`).
    pub fn at_most_once(mut self) -> Self {
        self.idempotent = false;
        self.at_most_once = true;
        self
    }
}

/// What a call's classified answer becomes once the call's own guarantees are applied: a
/// retryable 5xx on an at-most-once call may have been applied, so it is an unknown outcome.
fn for_call(call: &Call, status: StatusCode, action: RetryAction) -> RetryAction {
    match action {
        RetryAction::Retry { .. } if call.at_most_once && status.is_server_error() => {
            RetryAction::OutcomeUnknown {
                reason: std::borrow::Cow::Owned(format!(
                    "server error {status} on a request that must not be sent twice"
                )),
            }
        }
        other => other,
    }
}

/// Builds an API path from segments, percent-encoding each one (ids may contain anything).
pub fn path(segments: &[&str]) -> String {
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

/// A successful response.
pub struct Success {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl<B: ApiErrorBody> HttpClient<B> {
    /// Builds a client that gets its tokens with `grant` and draws from `budget`.
    pub fn new(
        config: HttpConfig,
        grant: TokenGrant,
        budget: RateBudget,
    ) -> Result<Self, Error<B>> {
        if config.retry.max_attempts == 0 {
            return Err(Error::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        if config.request_timeout.is_zero() {
            return Err(Error::Config("request_timeout must be positive".into()));
        }
        if config.give_up_after.is_some_and(|d| d.is_zero()) {
            return Err(Error::Config(
                "give_up_after must be positive (None never gives up)".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let stats = Arc::new(ClientStats::default());
        let reachability = Arc::new(Reachability::new(
            config.display_url.trim_end_matches('/'),
            config.give_up_after,
        ));
        let tokens = TokenCache::new(
            http.clone(),
            grant,
            config.retry.clone(),
            Arc::clone(&stats),
            Arc::clone(&reachability),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                tokens,
                budget,
                retry: config.retry,
                stats,
                reachability,
            }),
            body: PhantomData,
        })
    }

    /// Counters so far: API calls, retries, 429s, budget wait, tokens, …
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The rate budget this client draws from (clone it to share it with another client).
    pub fn budget(&self) -> &RateBudget {
        &self.inner.budget
    }

    /// The underlying HTTP client (for unauthenticated calls such as discovery documents).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The `id_token` of the last token response, when the token endpoint sent one.
    pub async fn id_token(&self) -> Option<secrecy::SecretString> {
        self.inner.tokens.id_token().await
    }

    /// Why the client gave up on the platform, once it has
    /// ([`HttpConfig::give_up_after`]): from then on every call fails at once with
    /// [`Error::Unreachable`]. Callers check it to stop scheduling work.
    pub fn unreachable(&self) -> Option<Unreachable> {
        self.inner.reachability.gave_up()
    }

    /// Gets a token now (if none is cached): checks the credentials before real work starts.
    pub async fn authenticate(&self) -> Result<(), Error<B>> {
        self.inner.tokens.get::<B>().await.map(drop)
    }

    /// Sends a request and decodes a JSON response.
    pub async fn json<T: DeserializeOwned>(&self, base: &Url, call: Call) -> Result<T, Error<B>> {
        let method = call.method.clone();
        let path = call.path.clone();
        let success = self.execute(base, call).await?;
        serde_json::from_slice(&success.body).map_err(|source| Error::Decode {
            method,
            path,
            status: success.status,
            source,
        })
    }

    /// Sends a request whose response body does not matter (202, 204, `Empty`).
    pub async fn unit(&self, base: &Url, call: Call) -> Result<(), Error<B>> {
        self.execute(base, call).await.map(drop)
    }

    /// The request loop: budget, token, send, classify, retry. `call.path` is appended to
    /// `base`'s path.
    pub async fn execute(&self, base: &Url, call: Call) -> Result<Success, Error<B>> {
        let inner = &*self.inner;
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut refreshed_after_401 = false;
        let url = {
            let mut url = base.clone();
            let base_path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base_path}{}", call.path));
            if !call.query.is_empty() {
                url.query_pairs_mut().extend_pairs(call.query.iter());
            }
            url
        };
        loop {
            attempts += 1;
            inner.reachability.check()?;
            let (action, failure) = match self.attempt(&call, &url, attempts).await {
                Ok(AttemptOutcome::Success(success)) => return Ok(success),
                Ok(AttemptOutcome::Failed { action, error }) => (action, error),
                Err(error) => return Err(error),
            };
            match action {
                RetryAction::Successful => {
                    // `attempt` returns successes directly; nothing else maps here.
                    return Err(failure.into_error());
                }
                RetryAction::RefreshToken if !refreshed_after_401 => {
                    refreshed_after_401 = true;
                    inner.stats.token_refresh_on_401();
                    if let Some(generation) = failure_generation(&failure) {
                        inner.tokens.invalidate(generation).await;
                    }
                    tracing::debug!(
                        method = %call.method,
                        path = %call.path,
                        "Request got 401; renewing the token and sending again."
                    );
                    continue;
                }
                RetryAction::RefreshToken | RetryAction::DontRetry { .. } => {
                    return Err(failure.into_error());
                }
                RetryAction::OutcomeUnknown { reason } => {
                    inner.stats.outcome_unknown();
                    tracing::warn!(
                        method = %call.method,
                        path = %call.path,
                        %reason,
                        "Outcome unknown; not retrying a request that may have been applied."
                    );
                    return Err(failure.into_outcome_unknown(&call, attempts));
                }
                RetryAction::Retry {
                    reason,
                    retry_after,
                } => {
                    if let Err(gave_up) = inner.reachability.check() {
                        tracing::warn!(
                            method = %call.method,
                            path = %call.path,
                            attempts,
                            %reason,
                            "Not retrying: the platform is unreachable."
                        );
                        return Err(gave_up.into());
                    }
                    let delay = inner.retry.delay_for(attempts, retry_after);
                    if !inner.retry.allows(attempts, started.elapsed(), delay) {
                        tracing::warn!(
                            method = %call.method,
                            path = %call.path,
                            attempts,
                            %reason,
                            "Giving up on a transient failure: retry limits reached."
                        );
                        // A 504 whose retries ran out may still have been applied.
                        if failure.status() == Some(StatusCode::GATEWAY_TIMEOUT) {
                            inner.stats.outcome_unknown();
                            return Err(failure.into_outcome_unknown(&call, attempts));
                        }
                        return Err(failure.into_error());
                    }
                    inner.stats.retry();
                    tracing::info!(
                        method = %call.method,
                        path = %call.path,
                        attempt = attempts,
                        %reason,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "Retrying a transient failure."
                    );
                    inner.reachability.sleep(delay).await?;
                }
            }
        }
    }

    /// One attempt. `Err` only for failures that end the call at once (no token).
    async fn attempt(
        &self,
        call: &Call,
        url: &reqwest::Url,
        attempts: u32,
    ) -> Result<AttemptOutcome<B>, Error<B>> {
        let inner = &*self.inner;
        match inner.budget.acquire().await {
            Ok(waited) => {
                inner.stats.budget_wait(waited);
                // The budget may have made it wait: the platform may have been given up on meanwhile.
                inner.reachability.check()?;
            }
            Err(error) => {
                return Ok(AttemptOutcome::Failed {
                    action: RetryAction::Retry {
                        reason: "rate budget unavailable".into(),
                        retry_after: None,
                    },
                    error: Failure::Budget(Error::Budget(error)),
                });
            }
        }
        let token = inner.tokens.get::<B>().await?;
        let mut request = inner
            .http
            .request(call.method.clone(), url.clone())
            .bearer_auth(token.secret.expose_secret())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        inner.stats.api_call();
        let sent_at = tokio::time::Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(source) => {
                inner.stats.transport_error();
                let action = classify_transport(&source, call.idempotent);
                self.note_failure(&action, sent_at);
                let transient = matches!(action, RetryAction::Retry { .. });
                tracing::debug!(
                    method = %call.method,
                    path = %call.path,
                    attempt = attempts,
                    error = %source,
                    "Request failed without a response."
                );
                return Ok(AttemptOutcome::Failed {
                    action,
                    error: Failure::Transport {
                        method: call.method.clone(),
                        path: call.path.clone(),
                        attempts,
                        transient,
                        source,
                    },
                });
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(bytes) => bytes.to_vec(),
            Err(source) => {
                inner.stats.transport_error();
                let action = classify_transport(&source, call.idempotent);
                self.note_failure(&action, sent_at);
                let transient = matches!(action, RetryAction::Retry { .. });
                return Ok(AttemptOutcome::Failed {
                    action,
                    error: Failure::Transport {
                        method: call.method.clone(),
                        path: call.path.clone(),
                        attempts,
                        transient,
                        source,
                    },
                });
            }
        };
        tracing::debug!(
            method = %call.method,
            path = %call.path,
            status = status.as_u16(),
            attempt = attempts,
            "Platform API responded."
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            inner.stats.rate_limited();
        } else if status.is_server_error() {
            inner.stats.server_error();
        }
        let action = for_call(
            call,
            status,
            classify_status(status, &headers, call.idempotent),
        );
        match &action {
            RetryAction::Retry { .. } | RetryAction::OutcomeUnknown { .. } => {
                self.note_failure(&action, sent_at);
            }
            // A success or a definitive refusal: the platform is there.
            _ => inner.reachability.answered(),
        }
        if action == RetryAction::Successful {
            return Ok(AttemptOutcome::Success(Success { status, body }));
        }
        let parsed: B = serde_json::from_slice(&body).unwrap_or_default();
        tracing::debug!(
            method = %call.method,
            path = %call.path,
            status = status.as_u16(),
            code = parsed.code().unwrap_or(""),
            reference = parsed.reference().unwrap_or_default(),
            "Platform API returned an error."
        );
        Ok(AttemptOutcome::Failed {
            action,
            error: Failure::Status {
                api: Box::new(ApiError {
                    method: call.method.clone(),
                    path: call.path.clone(),
                    status,
                    body: parsed,
                    retry_after: parse_retry_after(&headers),
                    attempts,
                }),
                token_generation: token.generation,
            },
        })
    }
}

impl<B: ApiErrorBody> HttpClient<B> {
    /// Tells the circuit about a failed attempt that could pass (retried, or an unknown
    /// outcome); other failures (a bad request we built) say nothing about the platform.
    fn note_failure(&self, action: &RetryAction, sent_at: tokio::time::Instant) {
        let (RetryAction::Retry { reason, .. } | RetryAction::OutcomeUnknown { reason }) = action
        else {
            return;
        };
        // The error, if the circuit opens, surfaces at the next check of the request loop.
        let _ = self.inner.reachability.failed(sent_at, reason);
    }
}

enum AttemptOutcome<B: ApiErrorBody> {
    Success(Success),
    Failed {
        action: RetryAction,
        error: Failure<B>,
    },
}

/// The failure of one attempt, before it becomes the caller's [`Error`].
enum Failure<B: ApiErrorBody> {
    Status {
        api: Box<ApiError<B>>,
        token_generation: u64,
    },
    Transport {
        method: Method,
        path: String,
        attempts: u32,
        transient: bool,
        source: reqwest::Error,
    },
    Budget(Error<B>),
}

fn failure_generation<B: ApiErrorBody>(failure: &Failure<B>) -> Option<u64> {
    match failure {
        Failure::Status {
            token_generation, ..
        } => Some(*token_generation),
        _ => None,
    }
}

impl<B: ApiErrorBody> Failure<B> {
    fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Status { api, .. } => Some(api.status),
            _ => None,
        }
    }

    fn into_error(self) -> Error<B> {
        match self {
            Failure::Status { api, .. } => Error::Api(api),
            Failure::Transport {
                method,
                path,
                attempts,
                transient,
                source,
            } => Error::Transport {
                method,
                path,
                attempts,
                transient,
                source,
            },
            Failure::Budget(error) => error,
        }
    }

    fn into_outcome_unknown(self, call: &Call, attempts: u32) -> Error<B> {
        let (status, body) = match self {
            Failure::Status { api, .. } => (Some(api.status), Some(api.body)),
            _ => (None, None),
        };
        Error::OutcomeUnknown(Box::new(OutcomeUnknown {
            method: call.method.clone(),
            path: call.path.clone(),
            status,
            body,
            attempts,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(
            path(&["api", "v2", "outbound", "contactlists", "a b/c?d"]),
            "/api/v2/outbound/contactlists/a%20b%2Fc%3Fd"
        );
        assert_eq!(path(&["x", "Ab-9._~"]), "/x/Ab-9._~");
    }

    #[test]
    fn methods_default_to_their_idempotency() {
        assert!(Call::get("/x".into()).idempotent);
        assert!(Call::put("/x".into()).idempotent);
        assert!(Call::delete("/x".into()).idempotent);
        assert!(!Call::post("/x".into()).idempotent);
        assert!(!Call::patch("/x".into()).idempotent);
        assert!(Call::post("/x".into()).idempotent(true).idempotent);
        assert!(!Call::post("/x".into()).at_most_once);
    }

    /// Issue 12: a message to a customer answered by a 500/502/503 may have been sent; the
    /// client must not resend it (the customer would get it twice) but report it unknown.
    #[test]
    fn an_at_most_once_call_is_never_resent_after_a_5xx() {
        let none = reqwest::header::HeaderMap::new();
        let send = Call::post("/x".into()).at_most_once();
        let merge = Call::post("/x".into());
        for code in [500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(
                matches!(
                    for_call(
                        &send,
                        status,
                        classify_status(status, &none, send.idempotent)
                    ),
                    RetryAction::OutcomeUnknown { .. }
                ),
                "{code}"
            );
        }
        // Other non-idempotent calls keep their rules: a 503 is retried, a 504 is unknown.
        let s503 = StatusCode::SERVICE_UNAVAILABLE;
        assert!(matches!(
            for_call(&merge, s503, classify_status(s503, &none, false)),
            RetryAction::Retry { .. }
        ));
        // A 429 says nothing was done: retried even for a send.
        let s429 = StatusCode::TOO_MANY_REQUESTS;
        assert!(matches!(
            for_call(&send, s429, classify_status(s429, &none, false)),
            RetryAction::Retry { .. }
        ));
    }
}
