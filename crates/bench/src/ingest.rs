//! `dedupd-bench ingest --records N` writes N records in the shapes of the sample feeds (see
//! `dedupd_testdata::feeds`), then runs `dedupd ingest` on them as a child process twice: once
//! on a fresh state, once after 1 % of the customers changed. Each run's figures come from its
//! own `report.json`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use dedupd_testdata::feeds;

pub(crate) fn run(dir: &Path, records: u64, changed_pct: f64, seed: u64) -> anyhow::Result<()> {
    let dedupd = crate::product::dedupd()?;
    std::fs::create_dir_all(dir)?;
    let state = dir.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    let t = Instant::now();
    let (customers, _) = feeds::generate(dir, records, seed, 0.0)?;
    eprintln!(
        "Generated {records} records (customer ids drawn from {customers}) in {:.1} s.",
        t.elapsed().as_secs_f64()
    );

    let first = run_ingest(&dedupd, dir, &state, "out1")?;
    let (_, updates) = feeds::generate(dir, records, seed, changed_pct)?;
    eprintln!("Regenerated the feeds with {updates} newer rows ({changed_pct} % of customer ids).");
    let second = run_ingest(&dedupd, dir, &state, "out2")?;

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

fn run_ingest(
    dedupd: &Path,
    dir: &Path,
    state: &Path,
    out: &str,
) -> anyhow::Result<serde_json::Value> {
    let out_dir = dir.join(out);
    let status = Command::new(dedupd)
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
    let path = out_dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}
