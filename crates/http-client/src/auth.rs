//! OAuth tokens: fetched once, shared, renewed at 80 % of their lifetime. The grant is the
//! platform's ([`TokenGrant`]: Genesys's client credentials, CXone's access-key password grant);
//! the client always authenticates with HTTP Basic.
//!
//! The cache is a `tokio::sync::Mutex` held across the token request, which makes renewal
//! single-flight: when N tasks find the token missing or due, the first one fetches and the
//! other N-1 wait on the lock and then read the fresh token. After a 401 the caller calls
//! [`TokenCache::invalidate`] with the *generation* of the token that failed, so N concurrent
//! 401s on one token also cause one renewal, not N.
//!
//! The secret and the tokens are [`SecretString`]s, exposed only while building the request.
//! Nothing here logs them: tracing events carry the generation and lifetime only.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::{ApiError, ApiErrorBody, Error};
use crate::reachability::Reachability;
use crate::retry::{RetryAction, RetryPolicy, classify_status, classify_transport};
use crate::stats::ClientStats;

/// Share of `expires_in` after which a token is renewed.
pub const REFRESH_AT: f64 = 0.8;

/// One value of the token request's form.
#[derive(Clone)]
pub enum FormValue {
    /// Shown in `Debug`.
    Plain(String),
    /// Printed as `[REDACTED]`; exposed only while building the request.
    Secret(SecretString),
}

impl fmt::Debug for FormValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormValue::Plain(v) => fmt::Debug::fmt(v, f),
            FormValue::Secret(_) => f.write_str("[REDACTED]"),
        }
    }
}

/// How a platform's tokens are obtained: `POST token_url` with HTTP Basic
/// `client_id:client_secret` and a form body.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    /// The token endpoint.
    pub token_url: Url,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (`Debug` prints `[REDACTED]`).
    pub client_secret: SecretString,
    /// The form body, e.g. `grant_type=client_credentials`.
    pub form: Vec<(&'static str, FormValue)>,
    /// Lifetime assumed when the answer has no `expires_in`.
    pub default_expires_in: Duration,
}

impl TokenGrant {
    /// The client-credentials grant (`grant_type=client_credentials`).
    pub fn client_credentials(
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: SecretString,
        default_expires_in: Duration,
    ) -> Self {
        Self {
            token_url,
            client_id: client_id.into(),
            client_secret,
            form: vec![(
                "grant_type",
                FormValue::Plain("client_credentials".to_owned()),
            )],
            default_expires_in,
        }
    }

    /// The resource-owner password grant (`grant_type=password`, `username`, `password`).
    pub fn password(
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: SecretString,
        username: impl Into<String>,
        password: SecretString,
        default_expires_in: Duration,
    ) -> Self {
        Self {
            token_url,
            client_id: client_id.into(),
            client_secret,
            form: vec![
                ("grant_type", FormValue::Plain("password".to_owned())),
                ("username", FormValue::Plain(username.into())),
                ("password", FormValue::Secret(password)),
            ],
            default_expires_in,
        }
    }
}

/// An access token and the generation that identifies it in the cache.
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub(crate) secret: SecretString,
    pub(crate) generation: u64,
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
    id_token: Option<SecretString>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    id_token: Option<String>,
}

/// When a token obtained at `obtained` with lifetime `expires_in` must be renewed.
pub(crate) fn refresh_deadline(obtained: Instant, expires_in: Duration) -> Instant {
    obtained + expires_in.mul_f64(REFRESH_AT)
}

pub(crate) struct TokenCache {
    http: reqwest::Client,
    grant: TokenGrant,
    retry: RetryPolicy,
    stats: Arc<ClientStats>,
    reachability: Arc<Reachability>,
    state: Mutex<Option<CachedToken>>,
    generations: AtomicU64,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(
        http: reqwest::Client,
        grant: TokenGrant,
        retry: RetryPolicy,
        stats: Arc<ClientStats>,
        reachability: Arc<Reachability>,
    ) -> Self {
        Self {
            http,
            grant,
            retry,
            stats,
            reachability,
            state: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// The `id_token` of the cached token's answer, if any.
    pub(crate) async fn id_token(&self) -> Option<SecretString> {
        self.state
            .lock()
            .await
            .as_ref()
            .and_then(|c| c.id_token.clone())
    }

    /// A valid token: the cached one unless it is missing or due for renewal.
    pub(crate) async fn get<B: ApiErrorBody>(&self) -> Result<AccessToken, Error<B>> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(cached) = state.as_ref()
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *state = Some(fresh);
                Ok(token)
            }
            // Renewal failed but the old token has not expired yet: keep using it; the next
            // call tries to renew again (unless the client gave up on the platform).
            Err(error) => match state.as_ref() {
                Some(cached)
                    if now < cached.expires_at
                        && error.is_transient()
                        && !error.is_unreachable() =>
                {
                    tracing::warn!(
                        generation = cached.token.generation,
                        %error,
                        "Token renewal failed; using the current token until it expires."
                    );
                    Ok(cached.token.clone())
                }
                _ => Err(error),
            },
        }
    }

    /// Drops the cached token if it is still the one of `generation` (so concurrent 401s on
    /// one token cause a single renewal).
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .as_ref()
            .is_some_and(|c| c.token.generation == generation)
        {
            tracing::debug!(generation, "Access token rejected; it will be renewed.");
            *state = None;
        }
    }

    /// Requests a token, retrying transient failures within the retry policy and the
    /// reachability circuit.
    async fn fetch<B: ApiErrorBody>(&self) -> Result<CachedToken, Error<B>> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.reachability.check()?;
            self.stats.token_request();
            let sent_at = Instant::now();
            let attempt_started = tokio::time::Instant::now();
            let form: Vec<(&str, &str)> = self
                .grant
                .form
                .iter()
                .map(|(name, value)| match value {
                    FormValue::Plain(v) => (*name, v.as_str()),
                    FormValue::Secret(v) => (*name, v.expose_secret()),
                })
                .collect();
            let result = self
                .http
                .post(self.grant.token_url.clone())
                .basic_auth(
                    &self.grant.client_id,
                    Some(self.grant.client_secret.expose_secret()),
                )
                .form(&form)
                .send()
                .await;
            drop(form);
            let (action, failure) = match result {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let bytes = response.bytes().await;
                    match (status.is_success(), bytes) {
                        (true, Ok(bytes)) => {
                            self.reachability.answered();
                            let parsed: TokenResponse =
                                serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
                                    method: Method::POST,
                                    path: self.grant.token_url.path().to_owned(),
                                    status,
                                    source,
                                })?;
                            let expires_in = parsed
                                .expires_in
                                .map_or(self.grant.default_expires_in, Duration::from_secs)
                                .max(Duration::from_secs(1));
                            let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                            tracing::debug!(
                                generation,
                                expires_in_s = expires_in.as_secs(),
                                "Obtained an access token."
                            );
                            return Ok(CachedToken {
                                token: AccessToken {
                                    secret: SecretString::from(parsed.access_token),
                                    generation,
                                },
                                refresh_at: refresh_deadline(sent_at, expires_in),
                                expires_at: sent_at + expires_in,
                                id_token: parsed.id_token.map(SecretString::from),
                            });
                        }
                        (_, bytes) => {
                            let body: B = bytes
                                .ok()
                                .and_then(|b| serde_json::from_slice(&b).ok())
                                .unwrap_or_default();
                            // A 401 from the token endpoint means bad credentials: permanent.
                            let action = if status == StatusCode::UNAUTHORIZED {
                                RetryAction::DontRetry {
                                    reason: "bad client credentials".into(),
                                }
                            } else {
                                classify_status(status, &headers, true)
                            };
                            let error = Error::Token(Box::new(ApiError {
                                method: Method::POST,
                                path: self.grant.token_url.path().to_owned(),
                                status,
                                body,
                                retry_after: crate::retry::parse_retry_after(&headers),
                                attempts,
                            }));
                            (action, error)
                        }
                    }
                }
                Err(source) => {
                    let action = classify_transport(&source, true);
                    let transient = matches!(action, RetryAction::Retry { .. });
                    (
                        action,
                        Error::Transport {
                            method: Method::POST,
                            path: self.grant.token_url.path().to_owned(),
                            attempts,
                            transient,
                            source,
                        },
                    )
                }
            };
            let RetryAction::Retry {
                reason,
                retry_after,
            } = action
            else {
                if matches!(failure, Error::Token(_)) {
                    // The token endpoint answered with a definitive refusal.
                    self.reachability.answered();
                }
                return Err(failure);
            };
            self.reachability.failed(attempt_started, &reason)?;
            let delay = self.retry.delay_for(attempts, retry_after);
            if !self.retry.allows(attempts, started.elapsed(), delay) {
                return Err(failure);
            }
            tracing::warn!(
                attempt = attempts,
                %reason,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "Token request failed; retrying."
            );
            self.reachability.sleep(delay).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_eighty_percent() {
        let t0 = Instant::now();
        let deadline = refresh_deadline(t0, Duration::from_secs(100));
        assert_eq!(deadline - t0, Duration::from_secs(80));
        let deadline = refresh_deadline(t0, Duration::from_secs(86_400));
        assert_eq!(deadline - t0, Duration::from_secs(69_120));
    }

    #[test]
    fn grant_debug_is_redacted() {
        let grant = TokenGrant::password(
            Url::parse("http://127.0.0.1:9/auth/token").unwrap(),
            "app",
            SecretString::from("app-secret"),
            "key-id",
            SecretString::from("key-secret"),
            Duration::from_secs(300),
        );
        let printed = format!("{grant:?}");
        assert!(!printed.contains("app-secret"), "{printed}");
        assert!(!printed.contains("key-secret"), "{printed}");
        assert!(
            printed.contains("key-id") && printed.contains("password"),
            "{printed}"
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = AccessToken {
            secret: SecretString::from("tok-abc"),
            generation: 3,
        };
        let printed = format!("{token:?}");
        assert!(!printed.contains("tok-abc"), "{printed}");
        assert!(printed.contains("generation: 3"), "{printed}");
    }
}
