//! `dedupd-bench resolve --records N`: incremental and real-time resolution on N synthetic
//! contacts with known duplicates (`dedupd_testdata::contacts`).
//!
//! 1. The records are split 90/10 (by a hash of the position, so the split repeats); the batch
//!    matcher runs on all of them (the reference) and the resolver is built from the 90 %.
//! 2. In process: the 10 % resolved and recorded one by one; time per record (p50, p99, mean),
//!    records compared per record, and pair and cluster F1 of the final clustering next to the
//!    batch run's on 100 %.
//! 3. The index: `dedupd merge plan --resolve-index` on the 90 % file (a child process), its
//!    size on disk; then `dedupd serve --resolve-index` (a child process) and the held-out
//!    records posted to `POST /v1/contacts/resolve` with `--in-flight` requests at once: p50,
//!    p99 and throughput, and the server's peak memory. The load average is printed: on a
//!    shared machine other work skews the figures.
//! 4. `wrk` (when installed; `--duration 0` skips it): `wrk -t2 -c<in-flight> -d<duration>s
//!    --latency` with a Lua script that posts the held-out records in turn: first to a bare axum
//!    handler in this process (it SHA-256s the body: the floor of latency and throughput at
//!    this many connections on this machine), then as dry runs, then recorded, each under a
//!    fresh `record_id` (so every request resolves and commits, however long the run), with the
//!    index's group commits (how many, how long each, contacts in each, from `/metrics`). The
//!    script is left in the work directory (`resolve.lua`) for running wrk by hand against any
//!    `serve --resolve-index`.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dedupd_core::matching::eval::evaluate;
use dedupd_core::matching::incremental::Status;
use dedupd_core::matching::{COLUMNS, Column, MatchConfig, Matcher, Record, Resolver};
use dedupd_testdata::contacts;

/// A SplitMix64 step, for the split.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The whole benchmark.
pub(crate) fn run(
    dir: &Path,
    records: u64,
    seed: u64,
    in_flight: usize,
    http: bool,
    duration: u64,
) -> anyhow::Result<()> {
    let dedupd = crate::product::dedupd()?;
    std::fs::create_dir_all(dir)?;
    let input = dir.join("contacts.csv");
    let truth = contacts::generate(&input, records, seed)?;
    let loaded = dedupd::jobs::merge_plan::load(&input, &Default::default())?;
    let all = loaded.records;
    let (mut known, mut new) = (Vec::new(), Vec::new());
    for (i, r) in all.iter().enumerate() {
        if mix(i as u64 ^ seed).is_multiple_of(10) {
            new.push(r.clone());
        } else {
            known.push(r.clone());
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "records {} (known {}, new {}); load average {}",
        all.len(),
        known.len(),
        new.len(),
        loadavg()
    )?;

    let t = Instant::now();
    let batch = Matcher::new(MatchConfig::default()).run(&all);
    let batch_secs = t.elapsed().as_secs_f64();
    let mut labels: Vec<(String, String)> = all
        .iter()
        .map(|r| (r.id().to_owned(), r.id().to_owned()))
        .collect();
    for c in &batch.clustering.clusters {
        let first = all[c.members[0] as usize].id().to_owned();
        for &m in &c.members {
            labels[m as usize].1.clone_from(&first);
        }
    }
    let batch_eval = evaluate(&labels, &truth);
    drop(batch);

    let t = Instant::now();
    let mut resolver = Resolver::build(known.clone(), MatchConfig::default());
    let build_secs = t.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(new.len());
    let (mut compared, mut joined) = (0usize, 0usize);
    for r in &new {
        let t = Instant::now();
        let answer = resolver.record(r.clone());
        times.push(t.elapsed());
        compared += answer.compared;
        joined += usize::from(answer.status == Status::Joined);
    }
    let total: Duration = times.iter().sum();
    times.sort_unstable();
    let inc_labels: Vec<(String, String)> = resolver
        .labels()
        .into_iter()
        .map(|(id, c)| (id.to_owned(), c))
        .collect();
    let inc_eval = evaluate(&inc_labels, &truth);
    drop(resolver);
    writeln!(
        out,
        "batch on 100 %        {batch_secs:.2} s; pair F1 {:.4}, cluster F1 {:.4}",
        batch_eval.pairs.f1, batch_eval.clusters.f1
    )?;
    writeln!(out, "build from 90 %       {build_secs:.2} s")?;
    writeln!(
        out,
        "resolve + record 10 % {} records: p50 {:.1} µs, p99 {:.1} µs, mean {:.1} µs; {:.1} compared per record; {joined} joined",
        new.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        total.as_secs_f64() * 1e6 / new.len().max(1) as f64,
        compared as f64 / new.len().max(1) as f64,
    )?;
    writeln!(
        out,
        "incremental result    pair F1 {:.4} ({:+.4}), cluster F1 {:.4} ({:+.4})",
        inc_eval.pairs.f1,
        inc_eval.pairs.f1 - batch_eval.pairs.f1,
        inc_eval.clusters.f1,
        inc_eval.clusters.f1 - batch_eval.clusters.f1
    )?;
    if !http {
        return Ok(());
    }

    // The index, built by merge plan from the 90 %.
    let known_csv = dir.join("known.csv");
    {
        let mut w = csv::Writer::from_path(&known_csv)?;
        w.write_record(COLUMNS.iter().map(|c| c.name()))?;
        for r in &known {
            w.write_record(COLUMNS.iter().map(|&c| r.get(c).unwrap_or("")))?;
        }
        w.flush()?;
    }
    // A fresh index: a rebuilt one keeps the file's freed pages for reuse, so its size on disk
    // would say more about earlier runs in this directory than about the index.
    let index = dir.join("index");
    if index.exists() {
        std::fs::remove_dir_all(&index)
            .with_context(|| format!("cannot remove the old index {}", index.display()))?;
    }
    let t = Instant::now();
    let status = Command::new(&dedupd)
        .args(["-q", "merge", "plan", "--input"])
        .arg(&known_csv)
        .arg("--out")
        .arg(dir.join("plan"))
        .arg("--resolve-index")
        .arg(&index)
        .status()
        .context("running dedupd merge plan")?;
    if !status.success() {
        bail!("dedupd merge plan failed: {status}");
    }
    let size = std::fs::metadata(index.join(dedupd_store::resolution::INDEX_FILE))?.len();
    writeln!(
        out,
        "merge plan --resolve-index {:.2} s; index {:.1} MiB ({:.0} bytes per record)",
        t.elapsed().as_secs_f64(),
        size as f64 / 1048576.0,
        size as f64 / known.len().max(1) as f64
    )?;

    let t = Instant::now();
    let mut cmd = Command::new(&dedupd);
    cmd.args(["-q", "serve", "--listen", "127.0.0.1:0", "--resolve-index"])
        .arg(&index)
        .arg("--snapshot")
        .arg(dir.join("window.snapshot"));
    let serve = crate::product::ServeChild::start(cmd, &dir.join("serve.log"))?;
    let base = serve.base.clone();
    writeln!(
        out,
        "serve loaded the index in {:.2} s",
        t.elapsed().as_secs_f64()
    )?;
    let bodies: Vec<String> = new.iter().map(body).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for (name, query) in [("dry run", "?dry_run=true"), ("record", "")] {
        let url = format!("{base}/v1/contacts/resolve{query}");
        let before = rt.block_on(commits(&base));
        let (lat, secs, errors) = rt.block_on(fire(&url, &bodies, in_flight))?;
        writeln!(
            out,
            "HTTP {name:<8} {} requests, {in_flight} in flight: p50 {:.2} ms, p99 {:.2} ms, {:.0} requests/s, {errors} errors; load average {}",
            lat.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.len() as f64 / secs,
            loadavg()
        )?;
        write_commits(&mut out, &before, &rt.block_on(commits(&base)))?;
    }
    if duration > 0 {
        let script = dir.join("resolve.lua");
        std::fs::write(&script, wrk_script(&new))?;
        // The floor on this machine: a bare axum handler (it SHA-256s the body) under the same
        // wrk, the same connections and the same bodies. With `in_flight` connections always
        // busy, latency is in_flight ÷ throughput, whatever the handler.
        let bare = rt.block_on(crate::gateway::bind(
            crate::gateway::bare_router(),
            crate::gateway::Listener::Plain,
        ))?;
        let targets = [
            ("bare", format!("{bare}/v1/messages")),
            (
                "dry run",
                format!("{base}/v1/contacts/resolve?dry_run=true"),
            ),
            ("record", format!("{base}/v1/contacts/resolve")),
        ];
        for (name, url) in targets {
            let load = loadavg();
            let before = rt.block_on(commits(&base));
            let run = Command::new("wrk")
                .arg("-t2")
                .arg(format!("-c{in_flight}"))
                .arg(format!("-d{duration}s"))
                .arg("--latency")
                .arg("-s")
                .arg(&script)
                .arg(&url)
                .output()
                .context("running wrk (apt-get install -y wrk)")?;
            if !run.status.success() {
                bail!("wrk failed: {}", String::from_utf8_lossy(&run.stderr));
            }
            let r = crate::gateway::parse_wrk(&String::from_utf8_lossy(&run.stdout))?;
            writeln!(
                out,
                "wrk  {name:<8} {in_flight} connections, {duration} s: p50 {:.2} ms, p99 {:.2} ms, {:.0} requests/s, {} non-2xx; load average {load} before, {} after",
                r.p50_ms,
                r.p99_ms,
                r.rps,
                r.non_2xx,
                loadavg()
            )?;
            write_commits(&mut out, &before, &rt.block_on(commits(&base)))?;
        }
    }
    let rss = std::fs::read_to_string(format!("/proc/{}/status", serve.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        });
    if let Some(kb) = rss {
        writeln!(out, "serve peak memory {:.0} MiB", kb / 1024.0)?;
    }
    Ok(())
}

/// The server's group commits so far, from `/metrics`: count, seconds in all, contacts in all.
/// Zeros when the server does not say (a build without these metrics).
async fn commits(base: &str) -> [f64; 3] {
    let text = match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    [
        value("dedupd_resolve_commit_seconds_count"),
        value("dedupd_resolve_commit_seconds_sum"),
        value("dedupd_resolve_commit_contacts_sum"),
    ]
}

/// What the index's group commits did between two [`commits`] readings, when it did anything.
fn write_commits(out: &mut impl Write, before: &[f64; 3], after: &[f64; 3]) -> anyhow::Result<()> {
    let [n, secs, contacts] = std::array::from_fn(|i| after[i] - before[i]);
    if n > 0.0 {
        writeln!(
            out,
            "     group commits: {n:.0}, {:.2} ms each on average, {:.1} contacts each",
            secs / n * 1e3,
            contacts / n
        )?;
    }
    Ok(())
}

/// The wrk script: each request posts the next held-out record (without its id) under a
/// fresh `record_id` (`wrk-<thread>-<n>`), so a recording run records every request.
fn wrk_script(new: &[Record]) -> String {
    let mut lua = String::from("local bodies = {\n");
    for r in new {
        let mut m = serde_json::Map::new();
        for &c in &COLUMNS[1..] {
            if let Some(v) = r.get(c) {
                m.insert(c.name().to_owned(), serde_json::Value::from(v));
            }
        }
        let json = serde_json::Value::Object(m).to_string();
        // Everything after the opening brace (the id goes in front), as a Lua long string:
        // no escapes to translate.
        lua.push_str(&format!("  [==[{}]==],\n", &json[1..]));
    }
    lua.push_str(
        r#"}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  n = n + 1
  local b = bodies[(n % #bodies) + 1]
  return wrk.format(nil, nil, nil, '{"record_id":"wrk-' .. tid .. '-' .. n .. '",' .. b)
end
"#,
    );
    lua
}

/// A record as the JSON body of a request.
fn body(r: &Record) -> String {
    let mut m = serde_json::Map::new();
    for &c in &COLUMNS {
        if let Some(v) = r.get(c) {
            m.insert(c.name().to_owned(), serde_json::Value::from(v));
        }
    }
    let _ = Column::RecordId;
    serde_json::Value::Object(m).to_string()
}

/// Posts every body with `in_flight` requests at once; each request's latency, the wall time
/// and the count of answers other than 200.
async fn fire(
    url: &str,
    bodies: &[String],
    in_flight: usize,
) -> anyhow::Result<(Vec<Duration>, f64, usize)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let bodies: Arc<Vec<String>> = Arc::new(bodies.to_vec());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (client, next, bodies, url) =
            (client.clone(), next.clone(), bodies.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(b) = bodies.get(i) else { break };
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(b.clone())
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                lat.push(t.elapsed());
                errors += usize::from(!ok);
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok((lat, secs, errors))
}
