//! What `dedupd sync` reports: `sync_report.json` and the summary on stderr.

use dedupd_platform::CallStats;
use serde::Serialize;

/// What a sync run did (`sync_report.json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// The contact list written to.
    pub contact_list_id: String,
    /// Nothing was sent.
    pub dry_run: bool,
    /// Contacts the state holds (what `ingest` produced).
    pub contacts_in_state: u64,
    /// Contacts pending at the start (new or changed since the list last accepted them).
    pub pending: u64,
    /// Contacts included in add-contacts batches.
    pub sent: u64,
    /// Contacts the platform accepted (now marked as synced).
    pub accepted: u64,
    /// Contacts refused permanently (see `sync_rejects.ndjson`).
    pub rejected: u64,
    /// Contacts still pending at the end (unconfirmed, or their batch failed transiently).
    pub remaining: u64,
    /// Contacts sent with `callable: false` (do-not-call soft deletes).
    pub do_not_call: u64,
    /// Batches sent; batches that failed after retries.
    pub batches: u64,
    /// Batches that failed after their retries ran out.
    pub failed_batches: u64,
    /// The platform calls the run made (API calls, retries, 429s, 5xx, unknown outcomes,
    /// token requests, seconds waiting for the rate budget).
    #[serde(flatten)]
    pub calls: CallStats,
    /// From the first add-contacts request to the last answer, seconds.
    pub send_seconds: f64,
    /// Wall time, seconds.
    pub elapsed_seconds: f64,
    /// Set when the run gave up on the platform: no request had an answer for the give-up time.
    /// Says where and for how long (no credentials, no contact data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_unreachable: Option<String>,
}

pub(crate) fn print_summary(r: &Report, out: &std::path::Path) {
    if r.contacts_in_state == 0 {
        // A warning, said even with --quiet: most likely the wrong --state.
        eprintln!(
            "warning: nothing to sync: the state holds no contacts. Run dedupd ingest first, with the same --state."
        );
        return;
    }
    if crate::shared::output::quiet() {
        return;
    }
    if r.dry_run {
        eprintln!(
            "Dry run: {} contacts would be sent to {} in {} batches ({} do-not-call); see {}.",
            r.pending,
            r.contact_list_id,
            r.batches,
            r.do_not_call,
            out.join("sync_plan.ndjson").display()
        );
        return;
    }
    if r.pending == 0 {
        eprintln!(
            "Nothing to sync: contact list {} is up to date ({} contacts).",
            r.contact_list_id, r.contacts_in_state
        );
        return;
    }
    eprintln!(
        "Synced {} of {} pending contacts to {} ({} refused, {} still pending) in {:.1} s.",
        r.accepted, r.pending, r.contact_list_id, r.rejected, r.remaining, r.elapsed_seconds
    );
    eprintln!(
        "{} API calls, {} retries, {} 429s, {} 5xx; {:.1} s waiting for the rate budget.",
        r.calls.api_calls,
        r.calls.retries,
        r.calls.rate_limited,
        r.calls.server_errors,
        r.calls.budget_wait.as_secs_f64()
    );
    if r.remaining > 0 && r.platform_unreachable.is_none() {
        eprintln!("Run dedupd sync again to send the rest.");
    }
}
