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
    /// Run the Genesys Cloud emulator alone (for demos, dry runs and benchmarks).
    ///
    /// Serves POST /oauth/token and the /api/v2 paths dedupd uses on http://127.0.0.1:PORT,
    /// with a per-token rate limit and optional seeded fault injection; its admin API is under
    /// /__emulator/. Stops on Ctrl-C.
    Emulator {
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// Fault profile (TOML): 429 bursts, 5xx, slow responses, 504-but-applied, token expiry, …
        #[arg(long)]
        faults: Option<PathBuf>,
        /// Requests per minute per token.
        #[arg(long, default_value_t = 300)]
        rate_limit: u32,
        /// OAuth client id the emulator accepts.
        #[arg(long, env = "DEDUPD_EMULATOR_CLIENT_ID", default_value = "dedupd-demo")]
        client_id: String,
        /// OAuth client secret the emulator accepts (never printed).
        #[arg(
            long,
            env = "DEDUPD_EMULATOR_CLIENT_SECRET",
            default_value = "dedupd-demo-secret",
            hide_default_value = true,
            hide_env_values = true
        )]
        client_secret: String,
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
        Command::Emulator {
            port,
            faults,
            rate_limit,
            client_id,
            client_secret,
        } => {
            let mut cfg = dedupd_emulator::EmulatorConfig {
                rate_limit_per_minute: rate_limit,
                clients: vec![(client_id.clone(), client_secret)],
                ..Default::default()
            };
            if let Some(path) = &faults {
                cfg.faults = dedupd_emulator::FaultProfile::from_file(path)?;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let emu = dedupd_emulator::RunningEmulator::start_on(cfg, addr)
                    .await
                    .with_context(|| format!("cannot start the emulator on {addr}"))?;
                eprintln!(
                    "Genesys Cloud emulator on {} (client id `{client_id}`, {rate_limit} requests/min per token). Ctrl-C stops it.",
                    emu.base_url()
                );
                tokio::signal::ctrl_c().await?;
                emu.shutdown().await;
                Ok(())
            })
        }
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
