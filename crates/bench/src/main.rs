//! `dedupd-bench`: end-to-end figures on synthetic data, for BENCHMARKS.md. Not part of the
//! product: it drives the dedupd library (and, for `ingest` and `merge`, the `dedupd` binary
//! built beside it, as a child process so its peak memory is its own) with the generators of
//! `dedupd-testdata`.

mod accuracy;
mod brokers;
mod gateway;
mod ingest;
mod merge;
mod merge_apply;
mod notify;
mod product;
mod resolve;
mod sync;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dedupd::shared::platform::PlatformKind;

/// The same allocator as the `dedupd` binary (see its main.rs), so what runs in this process
/// (the gateway servers, the outbox, the emulator) costs what it costs in `dedupd`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure a dedupd job end to end on synthetic data.
#[derive(Debug, Parser)]
#[command(name = "dedupd-bench", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars, even on a terminal.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    job: BenchJob,
}

#[derive(Debug, Subcommand)]
enum BenchJob {
    /// Events consumed per second into the outbox from NATS JetStream and from RabbitMQ, next
    /// to `POST /v1/notifications` accepted per second over HTTP in the same run.
    Brokers {
        /// Events per broker (and HTTP requests).
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// The consumers' in-flight bound (`max_in_flight`).
        #[arg(long, default_value_t = 256)]
        in_flight: u16,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 256)]
        http_concurrency: u64,
        /// NATS URL.
        #[arg(
            long,
            env = "NATS_URL",
            default_value = "nats://127.0.0.1:4222",
            hide_env_values = true
        )]
        nats_url: String,
        /// AMQP URL.
        #[arg(
            long,
            env = "AMQP_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
            hide_env_values = true
        )]
        amqp_url: String,
    },
    /// Accepted notifications per second with each outbox backend, and the idempotent accept
    /// next to a plain insert.
    Notify {
        /// Notifications per round.
        #[arg(long, default_value_t = 20_000)]
        count: u64,
        /// Concurrent producers.
        #[arg(long, default_value_t = 256)]
        concurrency: u64,
        /// Rounds (the best of each is reported).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// PostgreSQL URL (also `DEDUPD_POSTGRES_URL`); without it only the embedded backend runs.
        #[arg(long, env = "DEDUPD_POSTGRES_URL", hide_env_values = true)]
        postgres: Option<String>,
        /// The outbox writes a status event with each accept, as with an `[events.out]` sink
        /// configured (without it: none, as without a sink).
        #[arg(long)]
        status_events: bool,
    },
    /// The matcher's accuracy at its defaults (pair precision, recall, F1 and cluster F1) on
    /// the labelled sample and on generated sets of several seeds and sizes, in process; with
    /// `--misses N`, N sampled wrong and missed pairs per kind and data set.
    Accuracy {
        /// The labelled sample (CSV export); `none` to skip it.
        #[arg(
            long,
            default_value = "crates/dedupd/tests/fixtures/contacts_20k/contacts_20k.csv"
        )]
        sample: PathBuf,
        /// The sample's truth (`record_id,entity_id`).
        #[arg(
            long,
            default_value = "crates/dedupd/tests/fixtures/contacts_20k/contacts_20k_truth.csv"
        )]
        truth: PathBuf,
        /// Generator seeds (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        seeds: Vec<u64>,
        /// Generated set sizes (comma-separated; empty: none).
        #[arg(long, value_delimiter = ',', default_value = "20000,200000")]
        sizes: Vec<u64>,
        /// Generator profile: `channels` (every record one channel's view, the sample's noise
        /// rates) or `classic` (the `merge` benchmark's data).
        #[arg(long, default_value = "channels")]
        profile: dedupd_testdata::contacts::Profile,
        /// Sampled misses to print per kind and data set.
        #[arg(long, default_value_t = 0)]
        misses: usize,
        /// Work directory (kept); default: a temporary directory, removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Time `dedupd merge plan` on N synthetic contacts with known duplicates and score it
    /// (pair and cluster precision, recall, F1).
    Merge {
        /// Number of records.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Work directory (kept); default: a temporary directory, removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// POST /v1/messages under wrk: the gateway with the embedded window and with Redis, next
    /// to a bare axum handler that only SHA-256s the body (wrk must be installed).
    Gateway(gateway::GatewayBench),
    /// Time `dedupd sync` of N contacts through the in-process emulator at its rate limit,
    /// against the theoretical minimum time that limit allows.
    Sync {
        /// Number of contacts to sync.
        #[arg(long, default_value_t = 100_000)]
        contacts: u64,
        /// The emulator's limit and the client's budget, requests per minute per token.
        #[arg(long, default_value_t = 300)]
        rate: u32,
        /// Contacts per add-contacts request.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// The platform whose emulator the job syncs to.
        #[arg(long, value_enum, default_value_t = PlatformKind::Genesys)]
        platform: PlatformKind,
    },
    /// Time `dedupd merge apply` of N clusters through the in-process emulator at a rate
    /// budget: clusters per minute against the most that budget allows.
    MergeApply {
        /// Number of clusters to merge (sizes cycle through 2..=max-size).
        #[arg(long, default_value_t = 300)]
        clusters: usize,
        /// Largest cluster.
        #[arg(long, default_value_t = 4)]
        max_size: usize,
        /// The emulator's limit and the client's budget, requests per minute per token.
        #[arg(long, default_value_t = 300)]
        rate: u32,
        /// Clusters worked on at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Contact ids per merge request (CXone takes 2: the survivor and one source).
        #[arg(long, default_value_t = 25)]
        max_ids_per_merge: usize,
        /// The platform whose emulator the job merges on.
        #[arg(long, value_enum, default_value_t = PlatformKind::Genesys)]
        platform: PlatformKind,
    },
    /// Incremental and real-time resolution (issue 16) on N synthetic contacts: build from
    /// 90 %, resolve the other 10 % one by one (µs per record, F1 next to the batch run on
    /// 100 %), then `POST /v1/contacts/resolve` on `dedupd serve --resolve-index` with
    /// `--in-flight` requests at once (p50, p99, throughput, memory, index size): first the
    /// held-out records once each from a reqwest client, then `wrk` (when installed) for
    /// `--duration` seconds per mode with `--in-flight` connections, posting the held-out
    /// records in turn, each recorded one under a fresh id.
    Resolve {
        /// Number of records.
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 100)]
        in_flight: usize,
        /// Only the in-process part (no index file, no server).
        #[arg(long)]
        no_http: bool,
        /// Seconds of each wrk run (0: no wrk runs).
        #[arg(long, default_value_t = 15)]
        duration: u64,
        /// Work directory (kept); default: a temporary directory, removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Time `dedupd ingest` on N synthetic multi-source records.
    Ingest {
        /// Number of input records (about two per customer, across three sources).
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Percent of customers changed before the second run.
        #[arg(long, default_value_t = 1.0)]
        changed_pct: f64,
        /// Work directory (kept); default: a temporary directory, removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Seed of the generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also run the plain-Python middleware (`crates/bench/python/ingest_reference.py`,
        /// needs the `phonenumbers` package) on the same feeds, right after the first run,
        /// with this interpreter.
        #[arg(long, value_name = "PYTHON")]
        python_reference: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    dedupd::shared::init_logging(cli.verbose);
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    match run(cli.job, progress) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The given work directory (kept), or a temporary one removed when the guard drops.
fn work_dir(dir: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match dir {
        Some(d) => (d, None),
        None => {
            let tmp = tempfile::tempdir()?;
            (tmp.path().to_owned(), Some(tmp))
        }
    })
}

fn run(job: BenchJob, progress: bool) -> anyhow::Result<()> {
    match job {
        BenchJob::Brokers {
            events,
            in_flight,
            http_concurrency,
            nats_url,
            amqp_url,
        } => brokers::run(&brokers::Settings {
            events,
            in_flight,
            http_concurrency,
            nats_url,
            amqp_url,
        }),
        BenchJob::Notify {
            count,
            concurrency,
            rounds,
            postgres,
            status_events,
        } => notify::run(count, concurrency, rounds, postgres, status_events),
        BenchJob::Accuracy {
            sample,
            truth,
            seeds,
            sizes,
            profile,
            misses,
            dir,
        } => {
            let (dir, _tmp) = work_dir(dir)?;
            accuracy::run(&accuracy::Settings {
                sample: (sample.as_os_str() != "none").then_some((sample, truth)),
                seeds,
                sizes,
                profile,
                misses,
                dir,
            })
        }
        BenchJob::Merge { records, seed, dir } => {
            let (dir, _tmp) = work_dir(dir)?;
            merge::run(&dir, records, seed)
        }
        BenchJob::Resolve {
            records,
            seed,
            in_flight,
            no_http,
            duration,
            dir,
        } => {
            let (dir, _tmp) = work_dir(dir)?;
            resolve::run(&dir, records, seed, in_flight, !no_http, duration)
        }
        BenchJob::Gateway(opts) => gateway::run(&opts),
        BenchJob::Sync {
            contacts,
            rate,
            batch_size,
            concurrency,
            platform,
        } => sync::run(contacts, rate, batch_size, concurrency, progress, platform),
        BenchJob::MergeApply {
            clusters,
            max_size,
            rate,
            concurrency,
            max_ids_per_merge,
            platform,
        } => merge_apply::run(&merge_apply::Settings {
            clusters,
            max_size,
            rate,
            concurrency,
            max_ids_per_merge,
            progress,
            platform,
        }),
        BenchJob::Ingest {
            records,
            changed_pct,
            dir,
            seed,
            python_reference,
        } => {
            let (dir, _tmp) = work_dir(dir)?;
            ingest::run(
                &dir,
                records,
                changed_pct,
                seed,
                python_reference.as_deref(),
            )
        }
    }
}
