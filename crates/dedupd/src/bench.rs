//! `dedupd bench`: end-to-end figures on synthetic data, for BENCHMARKS.md.
//!
//! `dedupd bench ingest --records N` writes N records in the shapes of the sample feeds (a CSV
//! with national and international phones, an NDJSON web-form export with full names and epoch
//! times, a JSON array billing export with nested contacts, offsets and CLOSED statuses), then
//! runs `dedupd ingest` on them as a child process twice: once on a fresh state, once after 1 %
//! of the customers changed. Each run's figures come from its own `report.json`.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchJob {
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
        /// PostgreSQL URL (also `DATABASE_URL`); without it only the embedded backend runs.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        postgres: Option<String>,
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
    Gateway(crate::bench_gateway::GatewayBench),
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
        /// Contact ids per merge request.
        #[arg(long, default_value_t = 25)]
        max_ids_per_merge: usize,
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
    },
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

pub fn run(job: BenchJob, progress: bool) -> anyhow::Result<()> {
    match job {
        BenchJob::Notify {
            count,
            concurrency,
            rounds,
            postgres,
        } => crate::jobs::relay::bench(count, concurrency, rounds, postgres),
        BenchJob::Merge { records, seed, dir } => {
            let (dir, _tmp) = work_dir(dir)?;
            crate::bench_merge::run(&dir, records, seed)
        }
        BenchJob::Gateway(opts) => crate::bench_gateway::run(&opts),
        BenchJob::Sync {
            contacts,
            rate,
            batch_size,
            concurrency,
        } => bench_sync(contacts, rate, batch_size, concurrency, progress),
        BenchJob::MergeApply {
            clusters,
            max_size,
            rate,
            concurrency,
            max_ids_per_merge,
        } => crate::bench_merge_apply::run(&crate::bench_merge_apply::Settings {
            clusters,
            max_size,
            rate,
            concurrency,
            max_ids_per_merge,
            progress,
        }),
        BenchJob::Ingest {
            records,
            changed_pct,
            dir,
            seed,
        } => {
            let (dir, _tmp) = work_dir(dir)?;
            bench_ingest(&dir, records, changed_pct, seed)
        }
    }
}

fn bench_ingest(dir: &Path, records: u64, changed_pct: f64, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let state = dir.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    let t = Instant::now();
    let (customers, _) = generate(dir, records, seed, 0.0)?;
    eprintln!(
        "Generated {records} records (customer ids drawn from {customers}) in {:.1} s.",
        t.elapsed().as_secs_f64()
    );

    let first = run_ingest(dir, &state, "out1")?;
    let (_, updates) = generate(dir, records, seed, changed_pct)?;
    eprintln!("Regenerated the feeds with {updates} newer rows ({changed_pct} % of customer ids).");
    let second = run_ingest(dir, &state, "out2")?;

    let rate = |r: &serde_json::Value| {
        r["records_read"].as_f64().unwrap_or(0.0) / r["elapsed_seconds"].as_f64().unwrap_or(1.0)
    };
    let mib = |r: &serde_json::Value| r["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0;
    println!(
        "| run | records | contacts | new | changed | unchanged | stale | rejects | wall s | records/s | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("first (empty state)", &first),
        ("second (same feeds + changed rows)", &second),
    ] {
        let rejects: u64 = r["rejects"]
            .as_object()
            .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
            .unwrap_or(0);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {rejects} | {:.2} | {:.0} | {:.0} |",
            r["records_read"],
            r["contacts"],
            r["new"],
            r["changed"],
            r["unchanged"],
            r["stale"],
            r["elapsed_seconds"].as_f64().unwrap_or(0.0),
            rate(r),
            mib(r)
        );
    }
    Ok(())
}

fn run_ingest(dir: &Path, state: &Path, out: &str) -> anyhow::Result<serde_json::Value> {
    let exe = std::env::current_exe().context("cannot find the dedupd executable")?;
    let out_dir = dir.join(out);
    let status = Command::new(exe)
        .args(["--quiet", "ingest", "--config"])
        .arg(dir.join("feeds.toml"))
        .arg("--out")
        .arg(&out_dir)
        .arg("--state")
        .arg(state)
        .status()
        .context("cannot run dedupd ingest")?;
    if !status.success() {
        bail!("dedupd ingest failed: {status}");
    }
    let text = std::fs::read_to_string(out_dir.join("report.json"))?;
    Ok(serde_json::from_str(&text)?)
}

/// SplitMix64: a tiny deterministic generator; the data only has to look like real feeds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[usize::try_from(self.below(xs.len() as u64)).unwrap_or(0)]
    }
}

const FIRST: &[&str] = &[
    "Katie", "Steven", "Lewis", "Tracey", "Derek", "Connie", "Brian", "Jennifer", "Ranveer",
    "Janna", "Leander", "Chaaya", "Ingbert", "Nicole", "Miguel", "Seán", "Zoë",
];
const LAST: &[&str] = &[
    "Smith",
    "Hubbard",
    "Thorpe",
    "Wilson",
    "Hughes",
    "Kent",
    "Moore",
    "Sanchez",
    "Goyal",
    "Stumpf",
    "Bärer",
    "Venkatesh",
    "Austermühle",
    "Cruz",
    "O'Brien",
    "McDonald",
    "Dean",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "hotmail.de",
    "outlook.com",
    "gmx.de",
];

/// A customer's phone in one of the notations the sample feeds use; all are valid numbers.
fn phone(rng: &mut Rng, cust: u64) -> String {
    let n = cust % 10_000_000;
    let (a, b) = (200 + n / 10_000 % 800, n % 10_000);
    match rng.below(7) {
        0 => format!("+1 201-{a:03}-{b:04}"),
        1 => format!("(201) {a:03}-{b:04}"),
        2 => format!("201.{a:03}.{b:04}"),
        3 => format!("001201{a:03}{b:04}"),
        4 => format!("+44 7400 {:06}", n % 1_000_000),
        5 => format!("+4915{:09}", 100_000_000 + n % 900_000_000),
        _ => format!("+61412{:06}", n % 1_000_000),
    }
}

/// Writes crm.csv, webform.ndjson, billing.json and feeds.toml; returns (customers drawn,
/// update rows). With `changed_pct > 0`, that share of customers gets one more, newer CRM row
/// with a new e-mail (appended; the other records are the same as with 0 %).
fn generate(dir: &Path, records: u64, seed: u64, changed_pct: f64) -> anyhow::Result<(u64, u64)> {
    let customers = (records / 2).max(1);
    let mut crm = BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("crm.csv"))?);
    let mut web =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("webform.ndjson"))?);
    let mut bill =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("billing.json"))?);
    writeln!(
        crm,
        "Customer ID,First Name,Last Name,Mobile,Email,Account No,Updated At"
    )?;
    writeln!(bill, "[")?;
    let mut first_bill = true;
    let mut rng = Rng(seed);
    let base = 1_709_251_200u64; // 2024-03-01T00:00:00Z
    let threshold = (changed_pct / 100.0 * 1_000_000.0) as u64;
    let mut line = String::with_capacity(256);
    for r in 0..records {
        let cust = rng.below(customers);
        let first = FIRST[(cust % FIRST.len() as u64) as usize];
        let last = LAST[(cust / 7 % LAST.len() as u64) as usize];
        let dom = rng.pick(DOMAINS);
        let ts = base + rng.below(60 * 86_400);
        let ph = phone(&mut rng, cust);
        line.clear();
        match r % 10 {
            0..=3 => {
                let email = format!(
                    "{}.{}{cust}@{dom}",
                    first.to_lowercase(),
                    last.to_lowercase()
                );
                let t = chrono::DateTime::from_timestamp(ts as i64, 0).unwrap_or_default();
                let first = if r % 3 == 0 {
                    first.to_uppercase()
                } else {
                    first.to_owned()
                };
                let quoted_last = if last.contains('\'') {
                    format!("\"{last}\"")
                } else {
                    last.to_owned()
                };
                writeln!(
                    line,
                    "  CUST-{cust} \t,{first},{quoted_last},{ph},{email},ACC{cust:08},{}",
                    t.format("%Y-%m-%d %H:%M:%S")
                )?;
                crm.write_all(line.as_bytes())?;
            }
            4..=6 => {
                let v = serde_json::json!({
                    "cust_id": format!("CUST-{cust}"), "name": format!("{first} {last}"), "phone": ph,
                    "submitted_at": ts, "email": format!("{}.{}{cust}@{dom}", first.to_uppercase(), last.to_lowercase()),
                });
                writeln!(line, "{v}")?;
                web.write_all(line.as_bytes())?;
            }
            _ => {
                let t = chrono::DateTime::from_timestamp(ts as i64, 0).unwrap_or_default();
                let mut v = serde_json::json!({
                    "customerId": format!("CUST-{cust}"), "accountNumber": format!("ACC{cust:08}"),
                    "contact": {"phone": ph, "email": null, "firstName": first, "lastName": last},
                    "updatedAt": t.with_timezone(&chrono::FixedOffset::west_opt(8 * 3600).unwrap_or_else(|| unreachable!())).to_rfc3339(),
                });
                if cust.is_multiple_of(97) {
                    v["status"] = "CLOSED".into();
                }
                if !first_bill {
                    bill.write_all(b",\n")?;
                }
                first_bill = false;
                write!(bill, "{v}")?;
            }
        }
    }
    // The changed share: a newer CRM row with a new e-mail for each chosen customer, decided by
    // a per-customer draw so that the same customers change whatever the record count.
    let mut updates = 0u64;
    if threshold > 0 {
        let at =
            chrono::DateTime::from_timestamp((base + 90 * 86_400) as i64, 0).unwrap_or_default();
        for cust in 0..customers {
            if Rng(cust ^ 0xC0FFEE).next() % 1_000_000 < threshold {
                updates += 1;
                writeln!(
                    crm,
                    "CUST-{cust},,,,moved.{cust}@example.org,,{}",
                    at.format("%Y-%m-%d %H:%M:%S")
                )?;
            }
        }
    }
    writeln!(bill, "\n]")?;
    crm.flush()?;
    web.flush()?;
    bill.flush()?;
    std::fs::write(dir.join("feeds.toml"), BENCH_CONFIG)?;
    Ok((customers, updates))
}

const BENCH_CONFIG: &str = r#"[key]
fields = ["customer_id"]

[[source]]
name = "crm"
path = "crm.csv"
format = "csv"
default_region = "US"
timestamp_format = "%Y-%m-%d %H:%M:%S"
fields = { customer_id = "Customer ID", first_name = "First Name", last_name = "Last Name", phone = "Mobile", email = "Email", account_number = "Account No", updated_at = "Updated At" }

[[source]]
name = "webform"
path = "webform.ndjson"
format = "ndjson"
default_region = "US"
timestamp_format = "epoch_seconds"
fields = { customer_id = "cust_id", full_name = "name", phone = "phone", email = "email", updated_at = "submitted_at" }

[[source]]
name = "billing"
path = "billing.json"
format = "json"
default_region = "US"
timestamp_format = "rfc3339"
do_not_call_values = ["CLOSED"]
fields = { customer_id = "customerId", account_number = "accountNumber", phone = "/contact/phone", email = "/contact/email", first_name = "/contact/firstName", last_name = "/contact/lastName", updated_at = "updatedAt", status = "status" }
"#;

const SYNC_BENCH_CONFIG: &str = r#"[key]
fields = ["customer_id"]
[[source]]
name = "bench"
path = "unused.csv"
format = "csv"
timestamp_format = "rfc3339"
fields = { customer_id = "id", updated_at = "ts" }
"#;

fn bench_sync(
    contacts: u64,
    rate: u32,
    batch_size: usize,
    concurrency: usize,
    progress: bool,
) -> anyhow::Result<()> {
    use dedupd_core::{Contact, ContactRecord, ExternalIdBuilder, Field};
    use dedupd_store::{EmbeddedStore, StoredContact};

    let tmp = tempfile::tempdir()?;
    let config =
        crate::shared::feeds::Config::parse(SYNC_BENCH_CONFIG, &tmp.path().join("bench.toml"))?;
    {
        let store = EmbeddedStore::open(&tmp.path().join("state"))?;
        let keys = ExternalIdBuilder::new(["customer_id"])?;
        let mut w = store.writer(20_000);
        let at = chrono::DateTime::from_timestamp(1_709_251_200, 0).unwrap_or_default();
        for i in 0..contacts {
            let cid = format!("CUST-{i}");
            let id = keys.build(|_| Some(cid.as_str()))?;
            let mut r = ContactRecord::new(at);
            r.set(Field::CustomerId, Some(cid.clone()));
            r.set(
                Field::FirstName,
                Some(FIRST[(i % FIRST.len() as u64) as usize].to_owned()),
            );
            r.set(
                Field::LastName,
                Some(LAST[(i / 7 % LAST.len() as u64) as usize].to_owned()),
            );
            r.set(
                Field::PhoneE164,
                Some(format!("+1201{:07}", i % 10_000_000)),
            );
            r.set(Field::Email, Some(format!("c{i}@example.org")));
            r.do_not_call = i % 97 == 0;
            w.put(StoredContact::new(Contact::from_record(id, r)))?;
        }
        w.finish()?;
    } // the store closes here: sync opens it itself

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (id, secret, setup) = ("bench", "bench-secret", "bench-setup");
        let emu = dedupd_emulator::RunningEmulator::start(dedupd_emulator::EmulatorConfig {
            rate_limit_per_minute: rate,
            clients: vec![(id.into(), secret.into()), (setup.into(), secret.into())],
            ..Default::default()
        })
        .await?;
        let endpoint = dedupd_genesys::Endpoint::base_url(&emu.base_url())?;
        let setup_client = dedupd_genesys::GenesysClient::new(dedupd_genesys::ClientConfig::new(
            endpoint.clone(),
            setup,
            dedupd_genesys::SecretString::from(secret),
        ))
        .await?;
        let list = setup_client
            .outbound()
            .create_contact_list(&dedupd_genesys::ContactList::new("bench", config.csv_columns.clone()))
            .await?;
        let list_id = list.id.context("no list id")?;
        let mut client = dedupd_genesys::ClientConfig::new(endpoint, id, dedupd_genesys::SecretString::from(secret));
        client.requests_per_minute = rate;
        let opts = crate::jobs::sync::Options {
            config,
            state_dir: tmp.path().join("state"),
            out_dir: tmp.path().join("out"),
            target: crate::jobs::sync::Target::List(list_id.clone()),
            client,
            batch_size,
            concurrency,
            dry_run: false,
            progress,
        };
        let report = crate::jobs::sync::run(&opts).await?;
        let stats = emu.state().stats();
        let on_list = emu.state().contact_list_contacts(&list_id).map_or(0, |v| v.len());
        // Evenly paced at the limit, each add-contacts request after the first API call (the
        // list check) needs one interval of 60/rate seconds: that is the least time the budget
        // allows for the send phase.
        let requests = report.api_calls;
        let minimum = report.batches as f64 * 60.0 / f64::from(rate);
        println!(
            "| contacts | batch | rate/min | API calls | 429s | on the list | wall s | send s | theoretical min s | budget used |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {batch_size} | {rate} | {requests} | {} | {on_list} | {:.1} | {:.1} | {minimum:.1} | {:.1} % |",
            report.accepted,
            stats.too_many_requests_sent,
            report.elapsed_seconds,
            report.send_seconds,
            if report.send_seconds > 0.0 { 100.0 * minimum / report.send_seconds } else { 0.0 },
        );
        emu.shutdown().await;
        anyhow::Ok(())
    })
}
