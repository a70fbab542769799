//! `dedupd merge apply --plan DIR`: apply a reviewed merge plan through the platform's merge
//! API, safely. The engine (locks, journal, pre-flight, isolation of refusals, read-back of
//! unknown outcomes) is `dedupd_merge`; this job loads the plan, opens the state, runs the
//! clusters a few at a time and writes what happened.
//!
//! Every run writes `apply_report.json` and `apply_clusters.ndjson` (one outcome per cluster of
//! the plan) to `--out`, and `quarantine.ndjson` (contacts left out, with their reason; the next
//! run looks at them again). A dry run writes `apply_dry_run.ndjson`: the requests as the
//! platform would be sent them. When the platform is unreachable for the give-up time
//! (`--give-up-after`), no other cluster starts, the report says `platform_unreachable` and
//! the CLI exits 3.

pub mod args;
mod report;

pub use report::Report;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use dedupd_merge::{ClusterOutcome, Engine, Outcome, check_cap, planned_requests};
use dedupd_platform::directory::CustomerDirectory;
use futures_util::StreamExt;
use serde::Serialize;

use dedupd_core::keys::ids_key;
use dedupd_store::locks::{FileLocks, RedisLocks};
use dedupd_store::merge_journal::{FileJournal, MergeJournal};

use crate::shared::fs::{AtomicFile, write_json};
use crate::shared::plan_file::{
    Approval, Cluster, Decided, Decisions, DecisionsFile, NotMerged, Plan, PlanError, PlanFile,
};
use crate::shared::platform::{DirectoryJob, Platform};

/// Options of one `merge apply` run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plan directory (holding `plan.json`).
    pub plan_dir: PathBuf,
    /// State directory: the journal and the lock files (`STATE/merge/…`).
    pub state_dir: PathBuf,
    /// Where `apply_report.json`, `apply_clusters.ndjson`, `quarantine.ndjson` and (dry run)
    /// `apply_dry_run.ndjson` go.
    pub out_dir: PathBuf,
    /// The platform (endpoint, credentials, rate budget incl. Redis, retries).
    pub platform: Platform,
    /// Records per merge request; `None`: the most the platform's merge takes.
    pub max_ids_per_merge: Option<usize>,
    /// Clusters worked on at once (their requests share the rate budget).
    pub concurrency: usize,
    /// Write what would be sent; send nothing, contact nothing.
    pub dry_run: bool,
    /// Progress bar on a terminal.
    pub progress: bool,
    /// How long to wait for contacts locked by another run before leaving the cluster for the
    /// next run.
    pub lock_wait: Duration,
    /// Redis locks (with `--redis`): how long a lock outlives a holder that stopped renewing it.
    pub redis_lock_lease: Duration,
    /// Which clusters of the plan to merge.
    pub approve: Approve,
}

/// Which clusters of the plan a run merges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Approve {
    /// What the review decided (`DIR/decisions.json`, which must exist).
    Reviewed,
    /// Every cluster as planned, without review (`--approve-all`).
    All,
    /// Every cluster at or above this confidence, as planned (`--min-confidence`).
    MinConfidence(f64),
}

impl Options {
    /// Options with the defaults: the platform's most ids per merge, 4 clusters at once,
    /// 120 s lock wait, 120 s Redis lease, the reviewed decisions.
    pub fn new(
        plan_dir: PathBuf,
        state_dir: PathBuf,
        out_dir: PathBuf,
        platform: Platform,
    ) -> Options {
        Options {
            plan_dir,
            state_dir,
            out_dir,
            platform,
            max_ids_per_merge: None,
            concurrency: 4,
            dry_run: false,
            progress: false,
            lock_wait: Duration::from_secs(120),
            redis_lock_lease: Duration::from_secs(120),
            approve: Approve::Reviewed,
        }
    }
}

/// One line of `apply_dry_run.ndjson`: a merge request as it would be sent.
#[derive(Serialize)]
struct DryRunLine<'a, V> {
    cluster_id: &'a str,
    key: String,
    step: usize,
    #[serde(rename = "contactIds")]
    contact_ids: Vec<String>,
    #[serde(rename = "valueOverride")]
    value_override: &'a V,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    unplaced: &'a BTreeMap<String, Vec<String>>,
}

/// Runs `merge apply` on the platform `opts.platform` configures.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    opts.platform.run_directory(opts.dry_run, Apply(opts)).await
}

/// `merge apply` as a job on any platform's customer directory.
struct Apply<'a>(&'a Options);

impl DirectoryJob for Apply<'_> {
    type Output = Report;

    fn check<D: CustomerDirectory>(&self) -> anyhow::Result<()> {
        ids_per_merge::<D>(self.0).map(drop)
    }

    async fn run<D: CustomerDirectory>(self, dir: Option<&D>) -> anyhow::Result<Report> {
        run_on(dir, self.0).await
    }
}

/// Records per merge request: the option, within what `D` takes, else the most it takes.
fn ids_per_merge<D: CustomerDirectory>(opts: &Options) -> anyhow::Result<usize> {
    let cap = opts
        .max_ids_per_merge
        .unwrap_or(D::CAPABILITIES.max_ids_per_merge);
    check_cap(cap, &D::CAPABILITIES)?;
    Ok(cap)
}

/// Runs `merge apply` on `dir` (`None`: a dry run, which contacts nothing and writes the
/// requests as platform `D` would be sent them). `opts.platform` only names the Redis of the
/// locks and the budget reported.
pub async fn run_on<D: CustomerDirectory>(
    dir: Option<&D>,
    opts: &Options,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let cap = ids_per_merge::<D>(opts)?;
    let plan = Plan::load(&opts.plan_dir)?;
    let decisions: Decisions;
    let (approval, label) = match opts.approve {
        Approve::Reviewed => {
            decisions =
                Decisions::load(&opts.plan_dir)?.ok_or_else(|| not_reviewed(&opts.plan_dir))?;
            (
                Approval::Reviewed(&decisions),
                format!(
                    "reviewed ({})",
                    <Decisions as DecisionsFile>::path_in(&opts.plan_dir).display()
                ),
            )
        }
        Approve::All => (Approval::All, "approve_all (no review)".to_owned()),
        Approve::MinConfidence(x) => (
            Approval::MinConfidence(x),
            format!("min_confidence {x} (no review)"),
        ),
    };
    let decided = plan
        .decide(approval)
        .map_err(|source| PlanError::Decision {
            path: <Decisions as DecisionsFile>::path_in(&opts.plan_dir),
            source,
        })?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create output directory {}", opts.out_dir.display()))?;
    let journal = FileJournal::open(&opts.state_dir)
        .with_context(|| format!("cannot use state directory {}", opts.state_dir.display()))?;
    let locks = FileLocks::open(&opts.state_dir)
        .with_context(|| format!("cannot use state directory {}", opts.state_dir.display()))?;
    let mut report = Report {
        plan: Plan::path_in(&opts.plan_dir).display().to_string(),
        dry_run: opts.dry_run,
        clusters: plan.clusters.len() as u64,
        contacts: plan.clusters.iter().map(|c| c.members.len() as u64).sum(),
        requests_per_minute: opts.platform.requests_per_minute(),
        ..Report::default()
    };
    report.count_decisions(label, &decided);

    let Some(dir) = dir else {
        let mut lines = AtomicFile::create(&opts.out_dir.join("apply_dry_run.ndjson"))?;
        let mut outcomes = AtomicFile::create(&opts.out_dir.join("apply_clusters.ndjson"))?;
        for decided in &decided.merge {
            let cluster = &decided.cluster;
            let ids = cluster.sorted_ids();
            let key = ids_key('c', ids.iter().map(String::as_str));
            let history = journal.history(&key)?;
            let ovr = D::place(&cluster.merge_values());
            let (outcome, requests) = if history.is_final() {
                report.skipped += 1;
                (Outcome::Skipped, 0)
            } else {
                let mut ordered = ids.clone();
                ordered.sort_by_key(|id| (*id != cluster.survivor, id.clone()));
                let steps = planned_requests(&ordered, cap);
                for (i, step) in steps.iter().enumerate() {
                    let line = DryRunLine {
                        cluster_id: &cluster.cluster_id,
                        key: ids_key('m', step.iter().map(String::as_str)),
                        step: i + 1,
                        contact_ids: step.clone(),
                        value_override: &ovr.values,
                        unplaced: &ovr.unplaced,
                    };
                    serde_json::to_writer(&mut *lines.writer(), &line)?;
                    lines.writer().write_all(b"\n")?;
                }
                report.unplaced_values +=
                    ovr.unplaced.values().map(|v| v.len() as u64).sum::<u64>();
                (Outcome::Planned, steps.len() as u64)
            };
            report.merge_requests += requests;
            let line = ClusterOutcome {
                cluster_id: cluster.cluster_id.clone(),
                key,
                outcome,
                canonical: history.settled.and_then(|s| s.canonical),
                members: ids.len(),
                merge_requests: requests,
                quarantined: Vec::new(),
                unplaced: ovr.unplaced,
                detail: None,
            };
            serde_json::to_writer(&mut *outcomes.writer(), &line)?;
            outcomes.writer().write_all(b"\n")?;
        }
        write_not_merged(&mut outcomes, &decided)?;
        lines.commit()?;
        outcomes.commit()?;
        AtomicFile::create(&opts.out_dir.join("quarantine.ndjson"))?.commit()?;
        report.elapsed_seconds = started.elapsed().as_secs_f64();
        write_json(&opts.out_dir.join("apply_report.json"), &report)?;
        return Ok(report);
    };

    let redis = match opts.platform.shared_redis() {
        Some(url) => Some(
            RedisLocks::connect(
                url,
                &format!("dedupd:{{merge-lock}}:{}:", opts.platform.account()),
                opts.redis_lock_lease,
            )
            .await
            .context("cannot connect to Redis for the merge locks")?,
        ),
        None => None,
    };
    let run = journal.begin_run().with_context(|| {
        format!(
            "cannot start a run in state directory {}",
            opts.state_dir.display()
        )
    })?;
    let engine = Engine {
        dir,
        journal: &journal,
        run: &run,
        locks: &locks,
        shared: redis.as_ref(),
        cap,
        lock_wait: opts.lock_wait,
    };

    let bar = crate::shared::progress::bar(report.to_merge, opts.progress, "clusters", "merge");

    let mut outcomes: Vec<Option<ClusterOutcome>> = vec![None; decided.merge.len()];
    let mut fatal: Option<anyhow::Error> = None;
    {
        // Once the client gives up on the platform, no other cluster starts.
        let clusters = decided
            .merge
            .iter()
            .enumerate()
            .take_while(|_| dir.gave_up().is_none());
        let mut stream = futures_util::stream::iter(clusters)
            .map(|(i, c)| {
                let engine = &engine;
                async move { (i, engine.apply(c).await) }
            })
            .buffer_unordered(opts.concurrency.max(1));
        while let Some((i, res)) = stream.next().await {
            bar.inc(1);
            match res {
                Ok(c) => {
                    report.carried_over += u64::from(c.carried_over);
                    report.conflicts += c.conflicts;
                    report.read_backs += c.read_backs;
                    report.read_backs_applied += c.read_backs_applied;
                    outcomes[i] = Some(c.outcome);
                }
                Err(e) => {
                    fatal = Some(e.into());
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    report.platform_unreachable = dir.gave_up();
    let not_started = if report.platform_unreachable.is_some() {
        "not started: the platform was unreachable"
    } else {
        "not started: the run stopped on an error"
    };

    let mut quarantine = AtomicFile::create(&opts.out_dir.join("quarantine.ndjson"))?;
    let mut lines = AtomicFile::create(&opts.out_dir.join("apply_clusters.ndjson"))?;
    for (decided, outcome) in decided.merge.iter().zip(outcomes) {
        let cluster = &decided.cluster;
        let outcome = outcome.unwrap_or_else(|| ClusterOutcome {
            cluster_id: cluster.cluster_id.clone(),
            key: ids_key('c', cluster.members.iter().map(|m| m.record_id.as_str())),
            outcome: Outcome::Remaining,
            canonical: None,
            members: cluster.members.len(),
            merge_requests: 0,
            quarantined: Vec::new(),
            unplaced: BTreeMap::new(),
            detail: Some(not_started.into()),
        });
        match outcome.outcome {
            Outcome::Merged => report.merged += 1,
            Outcome::PartiallyMerged => report.partially_merged += 1,
            Outcome::AlreadyMerged => report.already_merged += 1,
            Outcome::Skipped => report.skipped += 1,
            Outcome::Quarantined => report.quarantined += 1,
            Outcome::Remaining | Outcome::Planned => report.remaining += 1,
            Outcome::Rejected | Outcome::NotApproved => {}
        }
        report.merge_requests += outcome.merge_requests;
        report.quarantined_contacts += outcome.quarantined.len() as u64;
        report.unplaced_values += outcome
            .unplaced
            .values()
            .map(|v| v.len() as u64)
            .sum::<u64>();
        for q in &outcome.quarantined {
            serde_json::to_writer(&mut *quarantine.writer(), q)?;
            quarantine.writer().write_all(b"\n")?;
        }
        serde_json::to_writer(&mut *lines.writer(), &outcome)?;
        lines.writer().write_all(b"\n")?;
    }
    write_not_merged(&mut lines, &decided)?;
    quarantine.commit()?;
    lines.commit()?;

    report.calls = dir.usage();
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    write_json(&opts.out_dir.join("apply_report.json"), &report)?;
    // Only now has every cluster this run settled been reported.
    journal
        .complete_run(&run)
        .context("cannot mark the run complete in the state directory")?;
    if let Some(e) = fatal {
        return Err(e.context("merge apply stopped"));
    }
    Ok(report)
}

/// The plan in `dir` has no `decisions.json` and the run did not say to merge without review.
pub(crate) fn not_reviewed(dir: &std::path::Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} not found: nothing is approved. Review the plan first (dedupd merge review --plan {}), \
         or merge without review with --approve-all or --min-confidence X",
        <Decisions as DecisionsFile>::path_in(dir).display(),
        dir.display()
    )
}

/// One line per planned cluster this run does not merge (rejected, or not approved), after the
/// lines of the clusters it merges.
fn write_not_merged(out: &mut AtomicFile, decided: &Decided) -> anyhow::Result<()> {
    for (cluster, why) in &decided.not_merged {
        let line = not_merged_outcome(cluster, *why);
        serde_json::to_writer(&mut *out.writer(), &line)?;
        out.writer().write_all(b"\n")?;
    }
    Ok(())
}

fn not_merged_outcome(cluster: &Cluster, why: NotMerged) -> ClusterOutcome {
    let (outcome, detail) = match why {
        NotMerged::Rejected => (Outcome::Rejected, "rejected in review".to_owned()),
        NotMerged::Undecided => (
            Outcome::NotApproved,
            "no review decision for these members".to_owned(),
        ),
        NotMerged::BelowConfidence => (
            Outcome::NotApproved,
            format!(
                "confidence {} is below --min-confidence",
                cluster.confidence
            ),
        ),
    };
    ClusterOutcome {
        cluster_id: cluster.cluster_id.clone(),
        key: ids_key('c', cluster.members.iter().map(|m| m.record_id.as_str())),
        outcome,
        canonical: None,
        members: cluster.members.len(),
        merge_requests: 0,
        quarantined: Vec::new(),
        unplaced: BTreeMap::new(),
        detail: Some(detail),
    }
}
