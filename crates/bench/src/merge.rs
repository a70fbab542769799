//! `dedupd-bench merge --records N`: a synthetic contact export in the shape of real
//! contact-center data, with known duplicates (see `dedupd_testdata::contacts`), then `dedupd
//! merge plan` on it as a child process (so its peak memory is its own) and the scores against
//! the generator's truth. A `--dir` that already holds the data of the same size and seed
//! (`generated.txt` says which) is reused, so before and after builds run on the same file
//! without generating it again.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use dedupd_testdata::contacts;

/// The whole benchmark: generate, plan (child process), score.
pub(crate) fn run(dir: &Path, records: u64, seed: u64) -> anyhow::Result<()> {
    let dedupd = crate::product::dedupd()?;
    std::fs::create_dir_all(dir)?;
    let input = dir.join("contacts.csv");
    let marker = dir.join("generated.txt");
    let generated = format!("records {records} seed {seed}\n");
    let t = Instant::now();
    let truth = if std::fs::read_to_string(&marker).is_ok_and(|m| m == generated) {
        let truth = read_truth(&dir.join("truth.csv"))?;
        eprintln!("reusing {} generated records", truth.len());
        truth
    } else {
        let _ = std::fs::remove_file(&marker);
        let truth = contacts::generate(&input, records, seed)?;
        let mut tw = csv::Writer::from_path(dir.join("truth.csv"))?;
        tw.write_record(["record_id", "entity_id"])?;
        for (r, e) in &truth {
            tw.write_record([r, e])?;
        }
        tw.flush()?;
        std::fs::write(&marker, &generated)?;
        eprintln!(
            "generated {} records in {:.1} s",
            truth.len(),
            t.elapsed().as_secs_f64()
        );
        truth
    };
    let out = dir.join("plan");
    let t = Instant::now();
    let status = Command::new(&dedupd)
        .args(["-q", "merge", "plan", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .status()
        .context("running dedupd merge plan")?;
    let wall = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("dedupd merge plan failed: {status}");
    }
    let report_path = out.join("report.json");
    let report: serde_json::Value = serde_json::from_reader(
        File::open(&report_path)
            .with_context(|| format!("cannot read {}", report_path.display()))?,
    )?;
    let predicted = dedupd::jobs::merge_plan::read_labels(&out.join("clusters.csv"))?;
    let e = dedupd_core::matching::eval::evaluate(&predicted, &truth);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "records            {}", report["records"])?;
    writeln!(stdout, "wall (process)     {wall:.2} s")?;
    if let Some(secs) = report["seconds"].as_object() {
        for (stage, s) in secs {
            writeln!(stdout, "  {stage:<16} {:.2} s", s.as_f64().unwrap_or(0.0))?;
        }
    }
    writeln!(stdout, "candidate pairs    {}", report["candidate_pairs"])?;
    if let Some(keys) = report["blocking_keys"].as_object() {
        for (key, k) in keys {
            writeln!(
                stdout,
                "  {key:<16} cap {:>3}, {} pairs",
                k["cap"], k["pairs"]
            )?;
        }
    }
    writeln!(stdout, "clusters (≥2)      {}", report["clusters"])?;
    writeln!(
        stdout,
        "peak RSS           {:.0} MiB",
        report["peak_rss_mib"].as_f64().unwrap_or(0.0)
    )?;
    writeln!(
        stdout,
        "pair    P {:.4} R {:.4} F1 {:.4}",
        e.pairs.precision, e.pairs.recall, e.pairs.f1
    )?;
    writeln!(
        stdout,
        "cluster P {:.4} R {:.4} F1 {:.4} (all clusters); F1 {:.4} (clusters with duplicates)",
        e.clusters.precision, e.clusters.recall, e.clusters.f1, e.multi_clusters.f1
    )?;
    // The baseline users write by hand: records with the same normalized e-mail or phone are
    // one person (union-find over exact keys), measured on the same data in the same run.
    let t = Instant::now();
    let b = exact_key_baseline(&input, &truth)?;
    writeln!(
        stdout,
        "exact-key baseline ({:.1} s): pair P {:.4} R {:.4} F1 {:.4}; cluster F1 {:.4}; F1 {:.4} (clusters with duplicates)",
        t.elapsed().as_secs_f64(),
        b.pairs.precision,
        b.pairs.recall,
        b.pairs.f1,
        b.clusters.f1,
        b.multi_clusters.f1
    )?;
    Ok(())
}

/// The `record_id, entity_id` rows of a truth file written by [`run`].
fn read_truth(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    r.deserialize()
        .map(|row| row.with_context(|| format!("bad row in {}", path.display())))
        .collect()
}

/// Same normalized e-mail or same E.164 phone = same person, transitively.
fn exact_key_baseline(
    input: &Path,
    truth: &[(String, String)],
) -> anyhow::Result<dedupd_core::matching::eval::Evaluation> {
    use dedupd_core::matching::Column;
    let loaded = dedupd::jobs::merge_plan::load(input, &Default::default())?;
    let records = &loaded.records;
    let mut parent: Vec<usize> = (0..records.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for col in [Column::Email, Column::Phone] {
        let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, r) in records.iter().enumerate() {
            if let Some(v) = r.get(col) {
                let j = *first.entry(v).or_insert(i);
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let labels: Vec<(String, String)> = (0..records.len())
        .map(|i| {
            let root = find(&mut parent, i);
            (records[i].id().to_owned(), records[root].id().to_owned())
        })
        .collect();
    Ok(dedupd_core::matching::eval::evaluate(&labels, truth))
}
