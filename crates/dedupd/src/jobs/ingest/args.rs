//! The command line of `dedupd ingest`: its flags, and the command that runs the job and
//! prints its summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::shared::default_state_dir;
use crate::shared::feeds::Config;

/// Flags of `dedupd ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The feeds config (TOML). Source paths are relative to it.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Output directory (created if missing).
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    /// State directory [default: .dedupd/ beside the config].
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// Runs `dedupd ingest` as the command line asked.
pub fn main(args: IngestArgs, progress: bool) -> anyhow::Result<ExitCode> {
    let IngestArgs { config, out, state } = args;

    let cfg = Config::load(&config)?;
    let state_dir = state.unwrap_or_else(|| default_state_dir(&config));
    let opts = super::Options {
        config: cfg,
        state_dir,
        out_dir: out.clone(),
        progress,
    };
    let report = super::run(&opts).context("ingest failed")?;
    super::report::print_summary(&report, &out);
    crate::shared::output::report(&report)?;
    Ok(ExitCode::SUCCESS)
}
