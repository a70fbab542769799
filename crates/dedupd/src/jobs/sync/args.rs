//! The command line of `dedupd sync`: its flags (the platform's flattened in), and the
//! command that runs the job, prints its summary and maps it to the exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::shared::default_state_dir;
use crate::shared::feeds::Config;

/// Flags of `dedupd sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The feeds config used by `ingest` (its [output] csv_columns are the list's columns).
    #[arg(long, short)]
    pub config: PathBuf,
    /// State directory [default: .dedupd/ beside the config].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Output directory for the report and rejects.
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    /// Id of the Outbound contact list to write to.
    #[arg(
        long,
        required_unless_present = "create_list",
        conflicts_with = "create_list"
    )]
    pub contact_list: Option<String>,
    /// Create a contact list with this name and the configured columns, and write to it.
    #[arg(long)]
    pub create_list: Option<String>,
    #[command(flatten)]
    pub platform: crate::shared::platform::PlatformArgs,
    /// Contacts per add-contacts request (the API accepts up to 1000).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Requests in flight at once (they share the budget).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Show what would be sent (sync_plan.ndjson); send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `dedupd sync` as the command line asked.
pub fn main(args: SyncArgs, progress: bool) -> anyhow::Result<ExitCode> {
    let SyncArgs {
        config,
        state,
        out,
        contact_list,
        create_list,
        platform,
        batch_size,
        concurrency,
        dry_run,
    } = args;

    let cfg = Config::load(&config)?;
    let state_dir = state.unwrap_or_else(|| default_state_dir(&config));
    let platform = platform.platform(
        dry_run,
        cfg.sync
            .give_up_after
            .unwrap_or(crate::shared::platform::DEFAULT_GIVE_UP_AFTER),
    )?;
    let target = match (contact_list, create_list) {
        (Some(id), _) => super::Target::List(id),
        (None, Some(name)) => super::Target::Create(name),
        (None, None) => anyhow::bail!("--contact-list or --create-list is required"),
    };
    let opts = super::Options {
        config: cfg,
        state_dir,
        out_dir: out.clone(),
        target,
        platform,
        batch_size,
        concurrency,
        dry_run,
        progress,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(super::run(&opts)).context("sync failed")?;
    super::report::print_summary(&report, &out);
    crate::shared::output::report(&report)?;
    if let Some(why) = &report.platform_unreachable {
        eprintln!(
            "error: {why}; stopped, what was accepted is kept: run dedupd sync again once it is back."
        );
    }
    // A dry run sends nothing: what it leaves "remaining" is what it would send, not a failure.
    let incomplete =
        !report.dry_run && (report.remaining > 0 || report.platform_unreachable.is_some());
    Ok(if incomplete {
        ExitCode::from(crate::shared::EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    })
}
