//! What a platform session cost and whether it gave up: the counters every run reports,
//! whatever the platform.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Calls made through one platform session (all its clones), retries included. Jobs flatten it
/// into their reports (`budget_wait` is written as `budget_wait_seconds`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CallStats {
    /// HTTP requests sent, retries included.
    pub api_calls: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Rate-limit answers (429) seen.
    pub rate_limited: u64,
    /// Server errors (5xx) seen.
    pub server_errors: u64,
    /// Calls whose outcome stayed unknown (a timeout or 5xx after sending).
    pub outcome_unknown: u64,
    /// Token requests.
    pub token_requests: u64,
    /// Time spent waiting for the rate budget, summed over requests.
    #[serde(rename = "budget_wait_seconds", serialize_with = "seconds")]
    pub budget_wait: Duration,
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What every seam implementation tells its job about the session behind it.
pub trait Session {
    /// The calls made so far.
    fn usage(&self) -> CallStats;

    /// Set once the session gave up on an unreachable platform: where and for how long (no
    /// credentials, no contact data). From then on every call fails with
    /// [`ErrorKind::Unreachable`](crate::ErrorKind::Unreachable); a job starts no new work.
    fn gave_up(&self) -> Option<String>;
}
