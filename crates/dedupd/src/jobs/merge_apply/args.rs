//! The command line of `dedupd merge apply`: flags, credentials (as `dedupd sync` reads them)
//! and the summary on stderr.

use std::path::PathBuf;
use std::time::Duration;

use crate::shared::platform::{DEFAULT_GIVE_UP_AFTER, PlatformArgs};
use anyhow::Context;
use clap::Args;

use super::{Approve, Options, Report, run as apply};
use crate::shared::plan_file::{Decisions, DecisionsFile, Plan, PlanFile};

/// Flags of `dedupd merge apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan directory (with plan.json, as `dedupd merge plan` writes it).
    #[arg(long)]
    pub plan: PathBuf,
    /// State directory: the merge journal and lock files [default: DIR/.dedupd].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Output directory for apply_report.json, apply_clusters.ndjson and quarantine.ndjson.
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    /// Platform endpoint, credentials and budget (`--redis` also shares the contact locks).
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Contact ids per merge request, at most the platform's limit (Genesys Cloud: 2–25)
    /// [default: the platform's limit].
    #[arg(long)]
    pub max_ids_per_merge: Option<usize>,
    /// Clusters worked on at once (they share the budget).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds to wait for contacts another run is merging before leaving them for later.
    #[arg(long, default_value_t = 120)]
    pub lock_wait_secs: u64,
    /// Write the merge requests that would be sent (apply_dry_run.ndjson); contact nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Merge every planned cluster without review (by default only what DIR/decisions.json
    /// approves is merged).
    #[arg(long, conflicts_with = "min_confidence")]
    pub approve_all: bool,
    /// Merge, without review, every planned cluster of at least this confidence (0..=1).
    #[arg(long, value_name = "X", value_parser = confidence)]
    pub min_confidence: Option<f64>,
}

fn confidence(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a confidence between 0 and 1")),
    }
}

/// Runs `merge apply` from its flags and prints a summary.
pub fn run(args: ApplyArgs, progress: bool) -> anyhow::Result<Report> {
    let state_dir = args
        .state
        .clone()
        .unwrap_or_else(|| args.plan.join(crate::shared::STATE_DIR));
    // What the user can fix here first: the plan and the review, before the platform's flags.
    let plan_file = <Plan as PlanFile>::path_in(&args.plan);
    if !plan_file.is_file() {
        anyhow::bail!(
            "{} not found: make a plan first (dedupd merge plan --out {})",
            plan_file.display(),
            args.plan.display()
        );
    }
    let reviewed = !args.approve_all && args.min_confidence.is_none();
    let decisions = <Decisions as DecisionsFile>::path_in(&args.plan);
    if reviewed && !decisions.is_file() {
        return Err(super::not_reviewed(&args.plan));
    }
    let platform = args
        .platform
        .platform(args.dry_run, DEFAULT_GIVE_UP_AFTER)?;
    let mut opts = Options::new(args.plan.clone(), state_dir, args.out.clone(), platform);
    opts.max_ids_per_merge = args.max_ids_per_merge;
    opts.concurrency = args.concurrency;
    opts.dry_run = args.dry_run;
    opts.progress = progress;
    opts.lock_wait = Duration::from_secs(args.lock_wait_secs);
    opts.approve = match (args.approve_all, args.min_confidence) {
        (true, _) => Approve::All,
        (false, Some(x)) => Approve::MinConfidence(x),
        (false, None) => Approve::Reviewed,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(apply(&opts)).context("merge apply failed")?;
    super::report::print_summary(&report, &args.out);
    crate::shared::output::report(&report)?;
    Ok(report)
}

/// Runs `dedupd merge apply` as the command line asked, and maps its report to the exit
/// status (3 when clusters are left for the next run or the platform was unreachable).
pub fn main(args: ApplyArgs, progress: bool) -> anyhow::Result<std::process::ExitCode> {
    let report = run(args, progress)?;
    let incomplete = report.remaining > 0 || report.platform_unreachable.is_some();
    Ok(if incomplete {
        std::process::ExitCode::from(crate::shared::EXIT_INCOMPLETE)
    } else {
        std::process::ExitCode::SUCCESS
    })
}
