//! `dedupd`: keeps contact-center data free of duplicates.

use dedupd::{bench, config, ingest};

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// One real customer = one contact; one inbound message = one conversation; one business event
/// = one notification.
#[derive(Debug, Parser)]
#[command(name = "dedupd", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars, even on a terminal.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turn messy multi-source feeds into one clean contact per customer.
    ///
    /// Reads every source of the config, normalizes names, phones (E.164) and e-mails, builds
    /// a stable externalId per customer, merges records field by field (last write wins by
    /// source timestamp; nulls never overwrite; do-not-call sticks), compares with the state
    /// of earlier runs and writes, in --out: contacts.ndjson, contacts.csv (import-ready for a
    /// Genesys Cloud contact list), changes.ndjson, rejects.ndjson and report.json.
    ///
    /// Exit status: 0 when the run finished (with or without rejects), 2 on a configuration
    /// or I/O error.
    Ingest {
        /// The feeds config (TOML). Source paths are relative to it.
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (created if missing).
        #[arg(long, short, default_value = "out")]
        out: PathBuf,
        /// State directory [default: .dedupd/ beside the config].
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Measure a job end to end on synthetic data.
    Bench {
        #[command(subcommand)]
        job: bench::BenchJob,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    match cli.command {
        Command::Ingest { config, out, state } => {
            let cfg = config::Config::load(&config)?;
            let state_dir = state.unwrap_or_else(|| {
                config
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(".dedupd")
            });
            let opts = ingest::Options {
                config: cfg,
                state_dir,
                out_dir: out.clone(),
                progress,
            };
            let report = ingest::run(&opts).context("ingest failed")?;
            print_summary(&report, &out);
            Ok(())
        }
        Command::Bench { job } => bench::run(job, progress),
    }
}

fn print_summary(r: &ingest::Report, out: &std::path::Path) {
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
    eprintln!("Wrote {} in {:.2} s.", out.display(), r.elapsed_seconds);
}
