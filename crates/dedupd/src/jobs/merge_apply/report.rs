//! What `dedupd merge apply` reports: `apply_report.json` and the summary on stderr.

use dedupd_platform::CallStats;

use crate::shared::plan_file::{Decided, NotMerged};
use serde::Serialize;

/// What a run did (`apply_report.json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// The plan file.
    pub plan: String,
    /// Nothing was sent.
    pub dry_run: bool,
    /// Clusters in the plan.
    pub clusters: u64,
    /// Contacts in the plan.
    pub contacts: u64,
    /// Which clusters this run merges: the review's decisions, or `--approve-all` /
    /// `--min-confidence` without review.
    pub approval: String,
    /// Clusters this run merges (a split cluster counts once per group it merges).
    pub to_merge: u64,
    /// Planned clusters a reviewer rejected: never merged.
    pub rejected: u64,
    /// Their cluster ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected_clusters: Vec<String>,
    /// Planned clusters not approved: no decision for their members, or below
    /// `--min-confidence`.
    pub not_approved: u64,
    /// Members a split left out of every group (left as they are).
    pub split_off_members: u64,
    /// Decisions made on clusters the plan no longer has (re-planned since the review).
    pub stale_decisions: u64,
    /// Clusters merged whole.
    pub merged: u64,
    /// Clusters merged except quarantined members.
    pub partially_merged: u64,
    /// Clusters found already merged by pre-flight.
    pub already_merged: u64,
    /// Clusters settled by an earlier run.
    pub skipped: u64,
    /// Of the merged and already-merged clusters, those an interrupted earlier run (killed
    /// before it wrote its outputs) had settled: reported here, since no report showed them.
    pub carried_over: u64,
    /// Clusters of which nothing could be merged.
    pub quarantined: u64,
    /// Contacts quarantined (see `quarantine.ndjson`).
    pub quarantined_contacts: u64,
    /// Clusters left for the next run.
    pub remaining: u64,
    /// Merge requests sent (planned, in a dry run).
    pub merge_requests: u64,
    /// 409 answers to merges.
    pub conflicts: u64,
    /// Merges whose outcome had to be read back (504 / timeout / a run killed mid-request).
    pub read_backs: u64,
    /// Of those, how many had been applied.
    pub read_backs_applied: u64,
    /// Plan values that found no slot in a valueOverride.
    pub unplaced_values: u64,
    /// The platform calls the run made (API calls, retries, 429s, 5xx, unknown outcomes,
    /// token requests, seconds waiting for the rate budget).
    #[serde(flatten)]
    pub calls: CallStats,
    /// The configured budget, requests per minute.
    pub requests_per_minute: u32,
    /// Wall time, seconds.
    pub elapsed_seconds: f64,
    /// Set when the run gave up on the platform: no request had an answer for the give-up time.
    /// Says where and for how long (no credentials, no contact data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_unreachable: Option<String>,
}

impl Report {
    /// Counts what the approval decided.
    pub(crate) fn count_decisions(&mut self, label: String, decided: &Decided) {
        self.approval = label;
        self.to_merge = decided.merge.len() as u64;
        for (cluster, why) in &decided.not_merged {
            match why {
                NotMerged::Rejected => {
                    self.rejected += 1;
                    self.rejected_clusters.push(cluster.cluster_id.clone());
                }
                NotMerged::Undecided | NotMerged::BelowConfidence => self.not_approved += 1,
            }
        }
        self.split_off_members = decided.split_off.len() as u64;
        self.stale_decisions = decided.stale_decisions.len() as u64;
    }
}

pub(crate) fn print_summary(r: &Report, out: &std::path::Path) {
    if let Some(why) = &r.platform_unreachable {
        eprintln!(
            "error: {why}; stopped, what was merged is kept: run dedupd merge apply again once it is back."
        );
    }
    if crate::shared::output::quiet() {
        return;
    }
    eprintln!(
        "Approval: {}. {} of {} planned clusters to merge; {} rejected, {} not approved, {} members split off.",
        r.approval, r.to_merge, r.clusters, r.rejected, r.not_approved, r.split_off_members
    );
    if r.stale_decisions > 0 {
        eprintln!(
            "{} decisions are for clusters the plan no longer has (it was re-planned); review the undecided clusters.",
            r.stale_decisions
        );
    }
    if r.dry_run {
        eprintln!(
            "Dry run: {} merge requests for {} clusters ({} settled earlier); see {}.",
            r.merge_requests,
            r.to_merge - r.skipped,
            r.skipped,
            out.join("apply_dry_run.ndjson").display()
        );
        return;
    }
    eprintln!(
        "{} clusters to merge: {} merged, {} partially merged, {} already merged, {} settled earlier, {} quarantined, {} left for the next run ({:.1} s).",
        r.to_merge,
        r.merged,
        r.partially_merged,
        r.already_merged,
        r.skipped,
        r.quarantined,
        r.remaining,
        r.elapsed_seconds
    );
    eprintln!(
        "{} merge requests, {} conflicts, {} read-backs; {} API calls, {} retries, {} 429s; the requests waited {:.1} s in all for the rate budget (summed over the clusters worked on at once, so it can exceed the run's {:.1} s).",
        r.merge_requests,
        r.conflicts,
        r.read_backs,
        r.calls.api_calls,
        r.calls.retries,
        r.calls.rate_limited,
        r.calls.budget_wait.as_secs_f64(),
        r.elapsed_seconds
    );
    if r.quarantined_contacts > 0 {
        eprintln!(
            "{} contacts quarantined: see {} (the next run tries them again).",
            r.quarantined_contacts,
            out.join("quarantine.ndjson").display()
        );
    }
    if r.remaining > 0 && r.platform_unreachable.is_none() {
        eprintln!("Run dedupd merge apply again to finish the rest.");
    }
}
