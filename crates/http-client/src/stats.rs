//! Counters of what the client did, for reports (jobs print them) and tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dedupd_platform::CallStats;
use serde::Serialize;

/// Live counters, shared by all clones of a client. Read them with [`ClientStats::snapshot`].
#[derive(Debug, Default)]
pub struct ClientStats {
    api_calls: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    outcome_unknown: AtomicU64,
    token_requests: AtomicU64,
    token_refreshes_on_401: AtomicU64,
    budget_waits: AtomicU64,
    budget_wait_micros: AtomicU64,
}

/// A point-in-time copy of [`ClientStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// HTTP requests sent to the Platform API, retries included (token requests excluded).
    pub api_calls: u64,
    /// Attempts that were retries of an earlier attempt (401 re-sends excluded).
    pub retries: u64,
    /// 429 responses seen.
    pub rate_limited: u64,
    /// 5xx responses seen.
    pub server_errors: u64,
    /// Attempts that failed without a response (connect, reset, timeout).
    pub transport_errors: u64,
    /// Calls that ended in [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown).
    pub outcome_unknown: u64,
    /// Requests to the OAuth token endpoint.
    pub token_requests: u64,
    /// 401 responses after which the token was renewed and the request re-sent.
    pub token_refreshes_on_401: u64,
    /// Requests that had to wait for the rate budget.
    pub budget_waits: u64,
    /// Total time requests spent waiting for the rate budget, in milliseconds.
    pub budget_wait_ms: u64,
}

impl StatsSnapshot {
    /// Total time spent waiting for the rate budget.
    pub fn budget_wait(&self) -> Duration {
        Duration::from_millis(self.budget_wait_ms)
    }

    /// The counters every job reports, whatever the platform.
    pub fn call_stats(&self) -> CallStats {
        CallStats {
            api_calls: self.api_calls,
            retries: self.retries,
            rate_limited: self.rate_limited,
            server_errors: self.server_errors,
            outcome_unknown: self.outcome_unknown,
            token_requests: self.token_requests,
            budget_wait: self.budget_wait(),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ClientStats {
    /// Copies the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            api_calls: get(&self.api_calls),
            retries: get(&self.retries),
            rate_limited: get(&self.rate_limited),
            server_errors: get(&self.server_errors),
            transport_errors: get(&self.transport_errors),
            outcome_unknown: get(&self.outcome_unknown),
            token_requests: get(&self.token_requests),
            token_refreshes_on_401: get(&self.token_refreshes_on_401),
            budget_waits: get(&self.budget_waits),
            budget_wait_ms: get(&self.budget_wait_micros) / 1000,
        }
    }

    pub(crate) fn api_call(&self) {
        bump(&self.api_calls);
    }
    pub(crate) fn retry(&self) {
        bump(&self.retries);
    }
    pub(crate) fn rate_limited(&self) {
        bump(&self.rate_limited);
    }
    pub(crate) fn server_error(&self) {
        bump(&self.server_errors);
    }
    pub(crate) fn transport_error(&self) {
        bump(&self.transport_errors);
    }
    pub(crate) fn outcome_unknown(&self) {
        bump(&self.outcome_unknown);
    }
    pub(crate) fn token_request(&self) {
        bump(&self.token_requests);
    }
    pub(crate) fn token_refresh_on_401(&self) {
        bump(&self.token_refreshes_on_401);
    }
    pub(crate) fn budget_wait(&self, waited: Duration) {
        if waited >= Duration::from_millis(1) {
            bump(&self.budget_waits);
        }
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.budget_wait_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_serializes_counters() {
        let stats = ClientStats::default();
        stats.api_call();
        stats.api_call();
        stats.retry();
        stats.rate_limited();
        stats.budget_wait(Duration::from_millis(1500));
        stats.budget_wait(Duration::from_micros(10));
        let snap = stats.snapshot();
        assert_eq!(snap.api_calls, 2);
        assert_eq!(snap.retries, 1);
        assert_eq!(snap.budget_waits, 1);
        assert_eq!(snap.budget_wait_ms, 1500);
        let json = serde_json::to_value(snap).unwrap();
        assert_eq!(json["api_calls"], 2);
        assert_eq!(json["rate_limited"], 1);
    }
}
