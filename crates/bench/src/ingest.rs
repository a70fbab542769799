//! `dedupd-bench ingest --records N` writes N records in the shapes of the sample feeds (see
//! `dedupd_testdata::feeds`), then runs `dedupd ingest` on them as a child process twice: once
//! on a fresh state, once after 1 % of the customers changed. Each run's figures come from its
//! own `report.json`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use dedupd_testdata::feeds;

pub(crate) fn run(
    dir: &Path,
    records: u64,
    changed_pct: f64,
    seed: u64,
    python: Option<&Path>,
) -> anyhow::Result<()> {
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
    let reference = python
        .map(|python| run_reference(python, dir))
        .transpose()?;
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
    if let Some((r, wall)) = reference {
        // Wall time of the whole process for both (start-up included).
        let ours = first["wall_seconds"].as_f64().unwrap_or(0.0);
        println!(
            "\n| same feeds, fresh state | records | contacts | rejects | wall s | records/s |\n|---|---|---|---|---|---|"
        );
        println!(
            "| dedupd ingest | {} | {} | {} | {ours:.2} | {:.0} |",
            first["records_read"],
            first["contacts"],
            first["rejects"].as_object().map_or(0, |m| m
                .values()
                .filter_map(serde_json::Value::as_u64)
                .sum::<u64>()),
            first["records_read"].as_f64().unwrap_or(0.0) / ours
        );
        println!(
            "| Python reference (csv, json, phonenumbers) | {} | {} | {} | {wall:.2} | {:.0} |",
            r["records_read"],
            r["contacts"],
            r["rejects"],
            r["records_read"].as_f64().unwrap_or(0.0) / wall
        );
        println!("\ndedupd is {:.1}× the Python reference.", wall / ours);
    }
    Ok(())
}

/// The plain-Python middleware on the same feeds: its JSON line and its wall time (process
/// start included, as for dedupd).
fn run_reference(python: &Path, dir: &Path) -> anyhow::Result<(serde_json::Value, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/ingest_reference.py");
    let t = Instant::now();
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .arg(dir.join("py-out"))
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "the Python reference failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((serde_json::from_slice(&out.stdout)?, wall))
}

fn run_ingest(
    dedupd: &Path,
    dir: &Path,
    state: &Path,
    out: &str,
) -> anyhow::Result<serde_json::Value> {
    let out_dir = dir.join(out);
    let t = Instant::now();
    let status = Command::new(dedupd)
        .args(["--quiet", "ingest", "--config"])
        .arg(dir.join("feeds.toml"))
        .arg("--out")
        .arg(&out_dir)
        .arg("--state")
        .arg(state)
        .status()
        .context("cannot run dedupd ingest")?;
    let wall = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("dedupd ingest failed: {status}");
    }
    let path = out_dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut report: serde_json::Value = serde_json::from_str(&text)?;
    report["wall_seconds"] = wall.into();
    Ok(report)
}
