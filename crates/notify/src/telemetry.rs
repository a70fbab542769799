//! The outbox and relay metric names (constants, never ad-hoc strings), their descriptions, and
//! their registration at zero, so `/metrics` lists every series from the start rather than
//! after the first notification. Labels are low-cardinality: provider names come from the
//! configuration, outcomes from a fixed list; never keys, recipients or text.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dedupd_store::outbox::{Backlog, OutboxStore};

/// Gauge: notifications still to be worked by a relay (`pending`, `sending` under a lease,
/// `unknown` awaiting a recheck).
pub const OUTBOX_BACKLOG: &str = "dedupd_outbox_backlog";
/// Gauge (seconds): age of the oldest notification in the backlog (0 when it is empty).
pub const OUTBOX_OLDEST_AGE: &str = "dedupd_outbox_oldest_age_seconds";
/// Counter: notifications the API accepted, by `result` (`created`, `replayed`, `mismatch`).
pub const ACCEPTED: &str = "dedupd_notify_accepted_total";
/// Counter: sends to a provider, by `provider` (read-backs and holds are not sends).
pub const RELAY_ATTEMPTS: &str = "dedupd_relay_attempts_total";
/// Counter: outcomes the relay recorded, by `outcome` (`delivered`, `retry`, `unknown`,
/// `failed`, `expired`, `lease_lost`).
pub const RELAY_OUTCOMES: &str = "dedupd_relay_outcomes_total";
/// Counter: read-backs (asking a provider whether an uncertain send went out), by `provider`.
pub const RELAY_READBACKS: &str = "dedupd_relay_readbacks_total";
/// Counter: relay rounds that failed on the outbox (retried after a pause).
pub const RELAY_ERRORS: &str = "dedupd_relay_store_errors_total";
/// Gauge: 1 while a provider is paused, 0 otherwise (label `provider`).
pub const PROVIDER_PAUSED: &str = "dedupd_notify_provider_paused";

/// The `outcome` label values of [`RELAY_OUTCOMES`].
pub const OUTCOMES: [&str; 6] = [
    "delivered",
    "retry",
    "unknown",
    "failed",
    "expired",
    "lease_lost",
];

/// The `result` label values of [`ACCEPTED`].
pub const ACCEPT_RESULTS: [&str; 3] = ["created", "replayed", "mismatch"];

/// How often the relay publishes the backlog gauges.
pub const BACKLOG_EVERY: Duration = Duration::from_secs(15);

/// Describes every outbox and relay metric and registers the series that need no provider
/// name at zero. Call once the recorder is installed.
pub fn describe() {
    metrics::describe_gauge!(
        OUTBOX_BACKLOG,
        "Notifications still to be worked by a relay (pending, sending, unknown awaiting a recheck)."
    );
    metrics::describe_gauge!(
        OUTBOX_OLDEST_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest notification still to be worked (0 when none)."
    );
    metrics::describe_counter!(
        ACCEPTED,
        "Notifications the API answered, by result (created, replayed, mismatch)."
    );
    metrics::describe_counter!(
        RELAY_ATTEMPTS,
        "Sends the relay made to a provider (read-backs and holds are not sends)."
    );
    metrics::describe_counter!(RELAY_OUTCOMES, "Outcomes the relay recorded, by outcome.");
    metrics::describe_counter!(
        RELAY_READBACKS,
        "Read-backs the relay made (asking a provider whether an uncertain send went out)."
    );
    metrics::describe_counter!(
        RELAY_ERRORS,
        "Relay rounds that failed on the outbox (retried after a pause)."
    );
    metrics::describe_gauge!(
        PROVIDER_PAUSED,
        "1 while a provider is paused after no success for provider_pause_after_secs."
    );
    metrics::gauge!(OUTBOX_BACKLOG).increment(0.0);
    metrics::gauge!(OUTBOX_OLDEST_AGE).increment(0.0);
    for result in ACCEPT_RESULTS {
        metrics::counter!(ACCEPTED, "result" => result).increment(0);
    }
    for outcome in OUTCOMES {
        metrics::counter!(RELAY_OUTCOMES, "outcome" => outcome).increment(0);
    }
    metrics::counter!(RELAY_ERRORS).increment(0);
}

/// Registers the per-provider series at zero.
pub(crate) fn register_provider(name: &str) {
    metrics::counter!(RELAY_ATTEMPTS, "provider" => name.to_owned()).increment(0);
    metrics::counter!(RELAY_READBACKS, "provider" => name.to_owned()).increment(0);
    metrics::gauge!(PROVIDER_PAUSED, "provider" => name.to_owned()).set(0.0);
}

/// Sets the backlog gauges from `backlog` as of `now`.
pub(crate) fn publish_backlog(backlog: Backlog, now: DateTime<Utc>) {
    metrics::gauge!(OUTBOX_BACKLOG).set(backlog.count as f64);
    let age = backlog
        .oldest
        .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(age);
}

/// Reads the backlog of `outbox` and publishes it; a failure is logged, never fatal.
pub(crate) async fn refresh_backlog(outbox: &impl OutboxStore, now: DateTime<Utc>) {
    match outbox.backlog().await {
        Ok(b) => publish_backlog(b, now),
        Err(e) => tracing::warn!(error = %e, "Could not read the outbox backlog for the metrics"),
    }
}
