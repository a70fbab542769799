//! The platform-neutral HTTP machinery dedupd's platform clients (Genesys Cloud, NICE CXone)
//! share, so both go through **one** request loop.
//!
//! # Principal types
//!
//! - [`HttpClient`]: cheap to clone; every call goes through one loop that waits for the
//!   [`RateBudget`], takes a cached OAuth token ([`TokenGrant`]), sends a [`Call`], and decides
//!   with a typed [`RetryAction`]. Generic over the platform's error body ([`ApiErrorBody`]).
//! - [`HttpConfig`] / [`RetryPolicy`]: how the loop behaves.
//! - [`Error`]: ask it [`Error::is_transient`], [`Error::is_outcome_unknown`],
//!   [`Error::is_unreachable`] and [`Error::rejected_entity_ids`].
//! - [`StatsSnapshot`]: API calls, retries, 429s, time spent waiting for budget; as the jobs'
//!   [`CallStats`](dedupd_platform::CallStats) through [`StatsSnapshot::call_stats`].
//!
//! # Behaviour
//!
//! - **Tokens**: the platform's grant with HTTP Basic client auth, cached, renewed at
//!   [`REFRESH_AT`] (80 %) of `expires_in`, single-flight (N concurrent callers cause one token
//!   request), renewed once on a 401 and the request re-sent. Secrets and tokens are
//!   `SecretString`s and are never logged.
//! - **Budget**: requests leave evenly spaced at [`HEADROOM`] (98 %) of the requests per
//!   minute, shared by all clones in a process, or across processes through Redis (one atomic
//!   GCRA script).
//! - **Retries**: 408, 429, 5xx except 501, timeouts and resets, where the request is safe to
//!   repeat, with exponential backoff and full jitter; `Retry-After` always wins; a total-time
//!   cap. 4xx validation errors are never retried. A 504 (or a timeout after sending) on a
//!   non-idempotent request is [`Error::OutcomeUnknown`] at once; on an at-most-once request
//!   ([`Call::at_most_once`]) every 5xx is.
//! - **Giving up**: with [`HttpConfig::give_up_after`], one circuit shared by all clones gives
//!   up on a platform that has answered nothing for that long: every call then fails at once
//!   with [`Error::Unreachable`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod auth;
mod budget;
mod client;
mod error;
mod reachability;
mod retry;
mod stats;

pub use auth::{FormValue, REFRESH_AT, TokenGrant};
pub use budget::{HEADROOM, RateBudget, RedisBudget, RedisGcra, emission_interval};
pub use client::{Call, HttpClient, HttpConfig, Success, path};
pub use error::{
    ApiError, ApiErrorBody, EncodeError, Error, OutcomeUnknown, Unreachable, is_transient_status,
};
pub use retry::{RetryAction, RetryPolicy, classify_status, classify_transport, parse_retry_after};
pub use secrecy::SecretString;
pub use stats::{ClientStats, StatsSnapshot};

/// Prints a URL with any user info replaced by `[REDACTED]`.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            // Both setters only fail for URLs that cannot have credentials at all.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(Some("[REDACTED]"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "[unparseable URL]".to_owned(),
    }
}
