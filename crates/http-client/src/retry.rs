//! Retry decisions, as a type (after Vector's `RetryAction`), kept apart from the transport.
//!
//! [`classify_status`] and [`classify_transport`] turn one attempt's outcome into a
//! [`RetryAction`]; [`RetryPolicy::backoff`] and [`RetryPolicy::delay_for`] say how long to wait.
//! The request loop in [`client`](crate::client) is the only place that acts on them.

use std::borrow::Cow;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// When and how long to retry transient failures.
///
/// Delays follow exponential backoff with full jitter: before retry `n` (1-based) the client sleeps
/// a uniformly random duration in `[0, min(max_delay, base_delay * 2^(n-1))]`, unless the response
/// carried `Retry-After`, which always wins. A request gives up when it has made `max_attempts`
/// attempts or when the next sleep would take the time spent since the first attempt past
/// `max_total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Scale of the first backoff.
    pub base_delay: Duration,
    /// Cap of a single backoff (not of `Retry-After`).
    pub max_delay: Duration,
    /// Cap on the total time a request may spend, first attempt to last, including sleeps.
    pub max_total: Duration,
    /// Attempts at most, the first included (1 = never retry).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// What to do after one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryAction {
    /// The request succeeded.
    Successful,
    /// Transient failure: send the same request again after a delay. `retry_after` is the
    /// server's `Retry-After`, which always wins over the computed backoff.
    Retry {
        /// Why.
        reason: Cow<'static, str>,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 401: the token was rejected. Get a new token and send again, once.
    RefreshToken,
    /// The platform may have done the work (504 on a non-idempotent request, or a timeout after
    /// sending it): do not resend blindly, report it so the caller can reconcile.
    OutcomeUnknown {
        /// Why.
        reason: Cow<'static, str>,
    },
    /// Permanent failure (4xx validation, 501, …): sending again cannot help.
    DontRetry {
        /// Why.
        reason: Cow<'static, str>,
    },
}

/// Decides on an HTTP response.
///
/// `idempotent` says whether sending the request twice has the same effect as once (GET, PUT,
/// DELETE, upserts with caller-chosen ids). A 504 on an idempotent request is retried like any
/// transient 5xx; on a non-idempotent one it means the outcome is unknown.
pub fn classify_status(status: StatusCode, headers: &HeaderMap, idempotent: bool) -> RetryAction {
    if status.is_success() {
        return RetryAction::Successful;
    }
    let retry_after = parse_retry_after(headers);
    match status {
        StatusCode::UNAUTHORIZED => RetryAction::RefreshToken,
        StatusCode::GATEWAY_TIMEOUT if !idempotent => RetryAction::OutcomeUnknown {
            reason: "504 Gateway Timeout on a non-idempotent request".into(),
        },
        StatusCode::TOO_MANY_REQUESTS => RetryAction::Retry {
            reason: "429 Too Many Requests".into(),
            retry_after,
        },
        StatusCode::REQUEST_TIMEOUT => RetryAction::Retry {
            reason: "408 Request Timeout".into(),
            retry_after,
        },
        StatusCode::NOT_IMPLEMENTED => RetryAction::DontRetry {
            reason: "501 Not Implemented".into(),
        },
        s if s.is_server_error() => RetryAction::Retry {
            reason: Cow::Owned(format!("server error {s}")),
            retry_after,
        },
        s => RetryAction::DontRetry {
            reason: Cow::Owned(format!("client error {s}")),
        },
    }
}

/// Decides on a transport error (no response).
pub fn classify_transport(error: &reqwest::Error, idempotent: bool) -> RetryAction {
    if error.is_connect() {
        // Nothing reached the server: always safe to send again.
        return RetryAction::Retry {
            reason: "connection failed".into(),
            retry_after: None,
        };
    }
    if error.is_builder() || error.is_redirect() || error.is_decode() {
        return RetryAction::DontRetry {
            reason: Cow::Owned(format!("request error: {error}")),
        };
    }
    // Timeouts, resets and broken bodies: the request may have been received and processed.
    if idempotent {
        RetryAction::Retry {
            reason: if error.is_timeout() {
                "request timed out".into()
            } else {
                "connection reset or broken".into()
            },
            retry_after: None,
        }
    } else {
        RetryAction::OutcomeUnknown {
            reason: "request failed after it may have been sent".into(),
        }
    }
}

/// `Retry-After` as delay-seconds (`42`, also `1.5`) or as an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        // `try_`: a server's absurd value (`1e300`) must not panic the client.
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The full-jitter backoff before retry number `retry` (1-based): uniform in
    /// `[0, min(max_delay, base_delay * 2^(retry-1))]`. `unit` is a random number in `[0, 1)`.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay before retry number `retry`: `Retry-After` when the server sent one, else
    /// [`RetryPolicy::backoff`] with a fresh random number.
    pub fn delay_for(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or_else(|| self.backoff(retry, fastrand::f64()))
    }

    /// Whether another attempt fits: fewer than `max_attempts` made, and sleeping `delay` now
    /// keeps the total time since the first attempt within `max_total`.
    pub fn allows(&self, attempts_made: u32, elapsed: Duration, delay: Duration) -> bool {
        attempts_made < self.max_attempts && elapsed.saturating_add(delay) <= self.max_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn status_decisions() {
        let none = headers(None);
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        assert_eq!(
            classify_status(s(200), &none, false),
            RetryAction::Successful
        );
        assert_eq!(
            classify_status(s(202), &none, false),
            RetryAction::Successful
        );
        assert_eq!(
            classify_status(s(401), &none, true),
            RetryAction::RefreshToken
        );
        assert!(matches!(
            classify_status(s(429), &headers(Some("7")), false),
            RetryAction::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        for code in [500, 502, 503] {
            assert!(matches!(
                classify_status(s(code), &none, false),
                RetryAction::Retry { .. }
            ));
        }
        assert!(matches!(
            classify_status(s(504), &none, true),
            RetryAction::Retry { .. }
        ));
        assert!(matches!(
            classify_status(s(504), &none, false),
            RetryAction::OutcomeUnknown { .. }
        ));
        for code in [400, 403, 404, 409, 413, 422, 501] {
            assert!(
                matches!(
                    classify_status(s(code), &none, true),
                    RetryAction::DontRetry { .. }
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(&headers(Some("42"))),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            parse_retry_after(&headers(Some("0.25"))),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after(&headers(Some("Sun, 06 Nov 1994 08:49:37 GMT"))),
            Some(Duration::ZERO)
        );
        let future = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let parsed = parse_retry_after(&headers(Some(&future))).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after(&headers(Some("soon"))), None);
        assert_eq!(parse_retry_after(&headers(Some("-3"))), None);
        assert_eq!(parse_retry_after(&headers(Some("1e300"))), None);
        assert_eq!(parse_retry_after(&headers(Some("NaN"))), None);
        assert_eq!(parse_retry_after(&headers(None)), None);
    }

    #[test]
    fn backoff_is_full_jitter_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_total: Duration::from_secs(10),
            max_attempts: 5,
        };
        assert_eq!(policy.backoff(1, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, 1.0), Duration::from_millis(400));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(200));
        assert_eq!(policy.backoff(10, 1.0), Duration::from_secs(1));
        assert_eq!(policy.backoff(u32::MAX, 1.0), Duration::from_secs(1));
        for retry in 1..8 {
            let d = policy.delay_for(retry, None);
            assert!(d <= policy.backoff(retry, 1.0));
        }
        // Retry-After wins even over max_delay.
        assert_eq!(
            policy.delay_for(1, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn allows_respects_attempts_and_total_cap() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_total: Duration::from_secs(10),
            max_attempts: 3,
        };
        assert!(policy.allows(1, Duration::ZERO, Duration::from_secs(1)));
        assert!(policy.allows(2, Duration::from_secs(8), Duration::from_secs(2)));
        assert!(!policy.allows(3, Duration::ZERO, Duration::ZERO));
        assert!(!policy.allows(1, Duration::from_secs(9), Duration::from_secs(2)));
        assert!(!RetryPolicy::never().allows(1, Duration::ZERO, Duration::ZERO));
    }
}
