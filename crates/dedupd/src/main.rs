//! `dedupd`: keeps contact-center data free of duplicates.

use dedupd::jobs::{ingest, merge_plan, sync};
use dedupd::shared::{default_state_dir, feeds as config};

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the gateway allocates and frees small buffers on
/// every request from whichever Tokio worker runs it, and glibc's arenas pay for frees from
/// another thread and for consolidation (≈6 % of the server's profile under wrk). See
/// BENCHMARKS.md (gateway) for the measured difference.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Push the contacts `ingest` produced into a Genesys Cloud Outbound contact list.
    ///
    /// Sends only contacts that are new or changed since the list last accepted them, in
    /// add-contacts batches with id = externalId (an upsert: never a duplicate, never a 409).
    /// Do-not-call contacts are soft-deleted (callable false). Safe to kill at any moment and
    /// run again. Credentials come from GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET (the secret
    /// only from the environment). Writes sync_report.json and sync_rejects.ndjson to --out.
    ///
    /// Exit status: 0 when every pending contact was accepted or refused for good; 3 when some
    /// stay pending after their retries, or the platform was unreachable for --give-up-after
    /// (run again); 2 on a configuration, auth or I/O error.
    Sync {
        /// The feeds config used by `ingest` (its [output] csv_columns are the list's columns).
        #[arg(long, short)]
        config: PathBuf,
        /// State directory [default: .dedupd/ beside the config].
        #[arg(long)]
        state: Option<PathBuf>,
        /// Output directory for the report and rejects.
        #[arg(long, short, default_value = "out")]
        out: PathBuf,
        /// Id of the Outbound contact list to write to.
        #[arg(
            long,
            required_unless_present = "create_list",
            conflicts_with = "create_list"
        )]
        contact_list: Option<String>,
        /// Create a contact list with this name and the configured columns, and write to it.
        #[arg(long)]
        create_list: Option<String>,
        #[command(flatten)]
        platform: dedupd::shared::platform::PlatformArgs,
        /// Contacts per add-contacts request (the API accepts up to 1000).
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Requests in flight at once (they share the budget).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Show what would be sent (sync_plan.ndjson); send nothing.
        #[arg(long)]
        dry_run: bool,
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
    /// Find duplicate contacts and merge them (plan, review, apply).
    Merge {
        #[command(subcommand)]
        command: MergeCommand,
    },
    /// Score a clustering against the truth: precision, recall and F1 over pairs and clusters.
    ///
    /// Both files are CSV whose first two columns are a record id and a cluster label (a
    /// `clusters.csv` from `merge plan`; a truth file such as `record_id,entity_id,…`).
    /// Prints JSON on stdout.
    Eval {
        /// The predicted clusters (`clusters.csv`).
        #[arg(long)]
        clusters: PathBuf,
        /// The true clusters.
        #[arg(long)]
        truth: PathBuf,
    },
    /// Run the HTTP services: the cross-channel message dedup gateway (POST /v1/messages).
    ///
    /// Answers PROCESS for the first of identical messages (same customer across SMS, chat and
    /// e-mail, same normalized text and attachments) within the window and SUPPRESS for the
    /// rest, atomically (embedded window by default, --redis to share it between instances).
    /// Serves /openapi.json, /metrics, /healthz and /readyz. Bearer token from DEDUPD_API_TOKEN,
    /// webhook HMAC key from DEDUPD_WEBHOOK_SECRET. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(dedupd::jobs::serve::ServeArgs),
    /// Delivers accepted notifications from the outbox (without the HTTP server): run several
    /// against one PostgreSQL outbox to scale out.
    Relay(dedupd::jobs::relay::RelayArgs),
}

#[derive(Debug, Subcommand)]
enum MergeCommand {
    /// Find the duplicates in a contact export and write a plan to review.
    ///
    /// Reads a CSV or NDJSON export (columns record_id, first_name, last_name, email, phone,
    /// street, city, region, postcode, country, updated_at by default; a --config maps any other
    /// layout), normalizes it with the same functions as ingest, finds duplicates (weights
    /// learned from the data itself, no labels, no tuning) and writes to --out: clusters.csv
    /// (every record and its cluster), plan.json (each cluster: members, survivor, merged
    /// values, confidence, why the pairs matched), plan.html (the same, to review in a
    /// browser, least confident first), rejects.ndjson and report.json.
    Plan {
        /// The export (CSV or NDJSON; `-` for stdin). Overrides [input] path of the config.
        #[arg(long, short)]
        input: Option<PathBuf>,
        /// Merge config (TOML): [input] layout and [matching] settings.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long, short, default_value = "merge-plan")]
        out: PathBuf,
        /// Most clusters on plan.html (the least confident first; plan.json has all).
        #[arg(long, default_value_t = 2000)]
        html_limit: usize,
        /// Read the contacts from Genesys Cloud External Contacts (a cursor scan of every
        /// contact) instead of a file. Credentials as for `sync`: GENESYS_CLIENT_ID,
        /// GENESYS_CLIENT_SECRET (environment only), --base-url or --region.
        #[arg(long, conflicts_with = "input")]
        from_genesys: bool,
        /// With --from-genesys: only this division.
        #[arg(long, requires = "from_genesys")]
        division: Option<String>,
        #[command(flatten)]
        platform: Box<dedupd::shared::platform::PlatformArgs>,
    },
    /// Apply a reviewed merge plan (DIR/plan.json) through the External Contacts merge API.
    ///
    /// Per cluster: locks its contacts (state directory; also Redis with --redis), checks
    /// every contact exists and is not merged elsewhere, merges at most --max-ids-per-merge ids
    /// per request (bigger clusters in steps through the canonical contact), isolates a 409
    /// offender by halving and quarantines it, reads the state back after a 504 or timeout,
    /// and journals every step: safe to kill at any moment and run again. Writes
    /// apply_report.json, apply_clusters.ndjson and quarantine.ndjson to --out. Credentials as
    /// for `sync`.
    ///
    /// Exit status: 0 when every cluster is settled (merged, already merged or quarantined);
    /// 3 when some are left for the next run; 2 on a plan, configuration, auth or I/O error.
    Apply(Box<dedupd::jobs::merge_apply::args::ApplyArgs>),
}

/// Exit status when a sync left contacts pending after their retries, or a run gave up on an
/// unreachable platform.
const EXIT_INCOMPLETE: u8 = 3;

/// Whether a run failed because the platform was unreachable (exit 3: run again later).
fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<dedupd_platform::PlatformError>()
            .is_some_and(|p| p.kind == dedupd_platform::ErrorKind::Unreachable)
            || c.downcast_ref::<dedupd_genesys::Error>()
                .is_some_and(dedupd_genesys::Error::is_unreachable)
    })
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
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if is_unreachable(&e) {
                ExitCode::from(EXIT_INCOMPLETE)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    match cli.command {
        Command::Ingest { config, out, state } => {
            let cfg = config::Config::load(&config)?;
            let state_dir = state.unwrap_or_else(|| default_state_dir(&config));
            let opts = ingest::Options {
                config: cfg,
                state_dir,
                out_dir: out.clone(),
                progress,
            };
            let report = ingest::run(&opts).context("ingest failed")?;
            print_summary(&report, &out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let (notify, notify_config) = (args.notify.clone(), args.config.clone());
            let opts = dedupd::jobs::serve::resolve(args)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let (extra, health) =
                    dedupd::jobs::relay::serve_parts(&notify, notify_config.as_deref()).await?;
                dedupd::jobs::serve::run_with(opts, extra, health).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Relay(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(dedupd::jobs::relay::relay(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge {
            command:
                MergeCommand::Plan {
                    input,
                    config,
                    out,
                    html_limit,
                    from_genesys,
                    division,
                    platform,
                },
        } => {
            let cfg = match &config {
                Some(p) => merge_plan::MergeConfig::load(p)?,
                None => merge_plan::MergeConfig::default(),
            };
            let source = if from_genesys {
                let mut client = platform.client_config(false)?;
                client.give_up_after = platform.give_up_after(0);
                merge_plan::Source::Genesys {
                    client: Box::new(client),
                    division,
                }
            } else {
                merge_plan::Source::File(input.or_else(|| cfg.input.path.clone()).context(
                    "no input: give --input FILE, --from-genesys, or [input] path in the --config file",
                )?)
            };
            let name = match &source {
                merge_plan::Source::File(p) => p.clone(),
                merge_plan::Source::Genesys { .. } => PathBuf::from("genesys:externalcontacts"),
            };
            let opts = merge_plan::Options {
                input: name,
                config: cfg,
                out: out.clone(),
                html_limit,
            };
            let done = merge_plan::run_from(&source, &opts)?;
            let r = &done.report;
            eprintln!(
                "{} records, {} rejects: {} clusters of duplicates ({} records) from {} candidate pairs in {:.2} s. Review {}, then run `dedupd merge apply --plan {}`.",
                r.records,
                r.rejects,
                r.clusters,
                r.clustered_records,
                r.candidate_pairs,
                r.seconds.values().sum::<f64>(),
                out.join("plan.html").display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { clusters, truth } => {
            let predicted = dedupd::shared::feed::read_labels(&clusters)?;
            let truth = dedupd::shared::feed::read_labels(&truth)?;
            let e = dedupd_core::matching::eval::evaluate(&predicted, &truth);
            println!("{}", serde_json::to_string_pretty(&e)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge {
            command: MergeCommand::Apply(args),
        } => {
            let report = dedupd::jobs::merge_apply::args::run(*args, progress)?;
            let incomplete = report.remaining > 0 || report.platform_unreachable.is_some();
            Ok(if incomplete {
                ExitCode::from(EXIT_INCOMPLETE)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Sync {
            config,
            state,
            out,
            contact_list,
            create_list,
            platform,
            batch_size,
            concurrency,
            dry_run,
        } => {
            let cfg = config::Config::load(&config)?;
            let state_dir = state.unwrap_or_else(|| default_state_dir(&config));
            let mut client = platform.client_config(dry_run)?;
            client.give_up_after = platform.give_up_after(
                cfg.sync
                    .give_up_after
                    .unwrap_or(dedupd_genesys::ClientConfig::DEFAULT_GIVE_UP_AFTER.as_secs()),
            );
            let target = match (contact_list, create_list) {
                (Some(id), _) => sync::Target::List(id),
                (None, Some(name)) => sync::Target::Create(name),
                (None, None) => anyhow::bail!("--contact-list or --create-list is required"),
            };
            let opts = sync::Options {
                config: cfg,
                state_dir,
                out_dir: out.clone(),
                target,
                client,
                batch_size,
                concurrency,
                dry_run,
                progress,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(sync::run(&opts)).context("sync failed")?;
            print_sync_summary(&report, &out);
            if let Some(why) = &report.platform_unreachable {
                eprintln!(
                    "error: {why}; stopped, what was accepted is kept: run dedupd sync again once it is back."
                );
            }
            let incomplete = report.remaining > 0 || report.platform_unreachable.is_some();
            Ok(if incomplete {
                ExitCode::from(EXIT_INCOMPLETE)
            } else {
                ExitCode::SUCCESS
            })
        }
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
                Ok(ExitCode::SUCCESS)
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
    if r.carried_over > 0 {
        eprintln!(
            "{} of these changes were committed by an earlier run that stopped before writing its outputs.",
            r.carried_over
        );
    }
    eprintln!("Wrote {} in {:.2} s.", out.display(), r.elapsed_seconds);
}

fn print_sync_summary(r: &sync::Report, out: &std::path::Path) {
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
            "Nothing to sync: contact list {} is up to date.",
            r.contact_list_id
        );
        return;
    }
    eprintln!(
        "Synced {} of {} pending contacts to {} ({} refused, {} still pending) in {:.1} s.",
        r.accepted, r.pending, r.contact_list_id, r.rejected, r.remaining, r.elapsed_seconds
    );
    eprintln!(
        "{} API calls, {} retries, {} 429s, {} 5xx; {:.1} s waiting for the rate budget.",
        r.api_calls, r.retries, r.rate_limited, r.server_errors, r.budget_wait_seconds
    );
    if r.remaining > 0 && r.platform_unreachable.is_none() {
        eprintln!("Run dedupd sync again to send the rest.");
    }
}
