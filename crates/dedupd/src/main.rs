//! `dedupd`: keeps contact-center data free of duplicates.

use dedupd::jobs::{self, ingest, merge_plan, sync};
use dedupd::shared::EXIT_INCOMPLETE;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the gateway allocates and frees small buffers on
/// every request from whichever Tokio worker runs it, and glibc's arenas pay for frees from
/// another thread and for consolidation (≈6 % of the server's profile under wrk). See
/// BENCHMARKS.md (gateway) for the measured difference.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One real customer = one contact; one inbound message = one conversation; one business event
/// = one notification.
#[derive(Debug, Parser)]
#[command(name = "dedupd", version = dedupd::VERSION, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors on stderr: no progress bars, progress lines or summary.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print the run's report (the same object as its report file) as one line of JSON on
    /// stdout, for scripts; stdout carries nothing else.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole product in seconds: ingest → sync → merge plan → (review) → merge
    /// apply → serve with messages and notifications, on bundled data, against a local Genesys
    /// Cloud emulator (nothing to configure, no account).
    ///
    /// Each step is the real command, printed before it runs, with where to look at its result;
    /// the files stay in --dir to look at and to run again by hand.
    Demo(jobs::demo::DemoArgs),
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
    Ingest(ingest::args::IngestArgs),
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
    Sync(sync::args::SyncArgs),
    /// Run a platform emulator alone (for demos, dry runs and benchmarks).
    ///
    /// --platform genesys (default) serves POST /oauth/token and the /api/v2 paths dedupd uses;
    /// --platform cxone serves the NICE CXone issuer, tenant discovery, /dfo/3.0 and the Admin
    /// lists and DNC paths. One port (http://127.0.0.1:PORT), a per-token rate limit, optional
    /// seeded fault injection; the admin API is under /__emulator/. Stops on Ctrl-C.
    Emulator(jobs::emulator::EmulatorArgs),
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
    Eval(jobs::eval::EvalArgs),
    /// Run the HTTP services: the cross-channel message dedup gateway (POST /v1/messages).
    ///
    /// Answers PROCESS for the first of identical messages (same customer across SMS, chat and
    /// e-mail, same normalized text and attachments) within the window and SUPPRESS for the
    /// rest, atomically (embedded window by default, --redis to share it between instances).
    /// Serves /openapi.json, /metrics, /healthz and /readyz. Bearer token from DEDUPD_API_TOKEN,
    /// webhook HMAC key from DEDUPD_WEBHOOK_SECRET. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(jobs::serve::ServeArgs),
    /// Delivers accepted notifications from the outbox (without the HTTP server): run several
    /// against one PostgreSQL outbox to scale out.
    Relay(jobs::relay::RelayArgs),
    /// Print a shell completion script on stdout.
    ///
    /// bash: `dedupd completions bash > ~/.local/share/bash-completion/completions/dedupd`;
    /// zsh: `dedupd completions zsh > "${fpath[1]}/_dedupd"`; fish: `dedupd completions fish >
    /// ~/.config/fish/completions/dedupd.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: `dedupd man > dedupd.1; man ./dedupd.1`.
    Man,
    /// Ask a running `dedupd serve` whether it is alive: exit 0 when GET URL answers 200, else 1.
    ///
    /// For container health checks on images without curl or a shell (deploy/Containerfile).
    Healthcheck(jobs::healthcheck::HealthcheckArgs),
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
    Plan(Box<merge_plan::args::PlanArgs>),
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
    Apply(Box<jobs::merge_apply::args::ApplyArgs>),
    /// Review a merge plan in a browser and record a decision per cluster.
    ///
    /// Serves the plan's review page on 127.0.0.1 (a free port unless --port; the address is
    /// printed; no browser is opened): every cluster, least confident first, with paging,
    /// filters, search and keyboard navigation. Approve, reject, split a cluster, choose
    /// another survivor or another merged value: each decision is saved at once into
    /// DIR/decisions.json, and `merge apply` merges only what it approves.
    Review(jobs::merge_review::ReviewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    dedupd::shared::init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", dedupd::shared::error_chain(&e));
            if dedupd::shared::platform::is_unreachable(&e) {
                ExitCode::from(EXIT_INCOMPLETE)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    dedupd::shared::output::set(cli.quiet, cli.json);
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    dedupd::shared::progress::set_lines(!cli.quiet && !std::io::stderr().is_terminal());
    match cli.command {
        Command::Demo(args) => jobs::demo::main(args),
        Command::Ingest(args) => ingest::args::main(args, progress),
        Command::Sync(args) => sync::args::main(args, progress),
        Command::Merge {
            command: MergeCommand::Plan(args),
        } => merge_plan::args::main(*args),
        Command::Merge {
            command: MergeCommand::Apply(args),
        } => jobs::merge_apply::args::main(*args, progress),
        Command::Merge {
            command: MergeCommand::Review(args),
        } => jobs::merge_review::main(args),
        Command::Eval(args) => jobs::eval::main(args),
        Command::Serve(args) => jobs::serve::main(args),
        Command::Relay(args) => jobs::relay::main(args),
        Command::Emulator(args) => jobs::emulator::main(args),
        Command::Healthcheck(args) => jobs::healthcheck::main(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "dedupd", &mut script);
            print_all(&script)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            print_all(&page)
        }
    }
}

/// Writes `bytes` to stdout; a reader that stopped early (`dedupd man | head`) is no error.
fn print_all(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
