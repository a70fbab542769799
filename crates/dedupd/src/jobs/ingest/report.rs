//! What `dedupd ingest` reports: `report.json` and the summary on stderr.

use std::collections::BTreeMap;

use serde::Serialize;

use dedupd_feed::read::Reason;

/// What a run did (`report.json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Input records read, rejected ones included.
    pub records_read: u64,
    /// Contacts in the output (the whole state after this run).
    pub contacts: u64,
    /// Distinct contacts seen in this run's feeds.
    pub contacts_in_run: u64,
    /// Rejected records by reason.
    pub rejects: BTreeMap<Reason, u64>,
    /// Contacts seen for the first time.
    pub new: u64,
    /// Contacts whose content changed.
    pub changed: u64,
    /// Contacts whose content is the same as stored.
    pub unchanged: u64,
    /// Contacts whose incoming data was older than what is stored (skipped, listed for review).
    pub stale: u64,
    /// Contacts flagged do-not-call in the output.
    pub do_not_call: u64,
    /// Contacts newly flagged do-not-call by this run (soft deletes).
    pub do_not_call_new: u64,
    /// Of `new`, `changed` and `stale`: contacts whose change an earlier run committed but
    /// never reported (it was killed or failed before writing its outputs).
    pub carried_over: u64,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// Peak resident memory of the process (Linux; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Per source: records read and rejected.
    pub sources: Vec<SourceReport>,
}

/// Per-source counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceReport {
    /// Source name.
    pub name: String,
    /// Records read.
    pub records_read: u64,
    /// Records rejected.
    pub rejected: u64,
}

pub(crate) fn print_summary(r: &Report, out: &std::path::Path) {
    if crate::shared::output::quiet() {
        return;
    }
    let rejected: u64 = r.rejects.values().sum();
    eprintln!(
        "Read {} records: {} contacts ({} in this run), {} rejected.",
        r.records_read, r.contacts, r.contacts_in_run, rejected
    );
    for (reason, n) in &r.rejects {
        eprintln!(
            "  rejected {n:>6} {}",
            serde_json::to_string(reason)
                .unwrap_or_default()
                .trim_matches('"')
        );
    }
    if r.new == 0 && r.changed == 0 {
        eprintln!(
            "No changes: {} unchanged, {} stale (older than the stored data, listed in changes.ndjson).",
            r.unchanged, r.stale
        );
    } else {
        eprintln!(
            "{} new, {} changed, {} unchanged, {} stale; {} do-not-call ({} new).",
            r.new, r.changed, r.unchanged, r.stale, r.do_not_call, r.do_not_call_new
        );
    }
    if r.carried_over > 0 {
        eprintln!(
            "{} of these changes were committed by an earlier run that stopped before writing its outputs.",
            r.carried_over
        );
    }
    eprintln!("Wrote {} in {:.2} s.", out.display(), r.elapsed_seconds);
}
