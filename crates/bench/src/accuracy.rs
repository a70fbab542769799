//! `dedupd-bench accuracy`: the matcher's accuracy at its defaults on the labelled sample and on
//! generated sets of several seeds and sizes, in one table, and (with `--misses N`) a sample of
//! the pairs it got wrong, by kind, to see what to change before changing it.
//!
//! It runs the engine `merge plan` runs (the same loader and [`Matcher`] with the default
//! [`MergeConfig`]), in process, and scores the clusters like `dedupd eval`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use dedupd::jobs::merge_plan::MergeConfig;
use dedupd_core::matching::eval::{Evaluation, evaluate};
use dedupd_core::matching::{COLUMNS, Column, Matcher, Outcome, Record, explain_pair};
use dedupd_testdata::contacts::{self, Profile};
use std::collections::{HashMap, HashSet};

/// A data set: its name, its file and its truth (`record_id`, `entity_id`).
type DataSet = (String, PathBuf, Vec<(String, String)>);

/// What to measure.
pub(crate) struct Settings {
    /// The labelled sample (CSV) and its truth, if any.
    pub sample: Option<(PathBuf, PathBuf)>,
    /// Generator seeds.
    pub seeds: Vec<u64>,
    /// Generated set sizes.
    pub sizes: Vec<u64>,
    /// Generator profile.
    pub profile: Profile,
    /// Misses printed per kind and data set (0: none).
    pub misses: usize,
    /// Work directory for the generated files.
    pub dir: PathBuf,
}

/// Runs every data set and prints the table (and the misses).
pub(crate) fn run(s: &Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&s.dir)?;
    let mut sets: Vec<DataSet> = Vec::new();
    if let Some((csv, truth)) = &s.sample {
        let labels = dedupd_feed::read::read_labels(truth)
            .with_context(|| format!("reading {}", truth.display()))?;
        let name = csv
            .file_stem()
            .map_or("sample".into(), |n| n.to_string_lossy().into_owned());
        sets.push((name, csv.clone(), labels));
    }
    for &size in &s.sizes {
        for &seed in &s.seeds {
            let path = s
                .dir
                .join(format!("{}-{size}-{seed}.csv", s.profile.name()));
            let truth = contacts::generate_with(&path, size, seed, s.profile)?;
            sets.push((
                format!("{} {size} seed {seed}", s.profile.name()),
                path,
                truth,
            ));
        }
    }
    let mut rows = Vec::new();
    for (name, path, truth) in &sets {
        let t = Instant::now();
        let (records, outcome) = plan(path)?;
        let secs = t.elapsed().as_secs_f64();
        let e = score(&records, &outcome, truth);
        eprintln!(
            "{name}: pair P {:.4} R {:.4} F1 {:.4}; cluster F1 {:.4} ({secs:.1} s)",
            e.pairs.precision, e.pairs.recall, e.pairs.f1, e.clusters.f1
        );
        if s.misses > 0 {
            misses(name, &records, &outcome, truth, s.misses)?;
        }
        rows.push((name.clone(), records.len(), e, secs));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| data | records | precision | recall | pair F1 | cluster F1 | s |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (name, n, e, secs) in rows {
        writeln!(
            out,
            "| {name} | {n} | {:.4} | {:.4} | {:.4} | {:.4} | {secs:.1} |",
            e.pairs.precision, e.pairs.recall, e.pairs.f1, e.clusters.f1
        )?;
    }
    Ok(())
}

/// Loads and matches one file as `merge plan` does at its defaults.
fn plan(path: &Path) -> anyhow::Result<(Vec<Record>, Outcome)> {
    let cfg = MergeConfig::default();
    let loaded = dedupd_feed::export::load(path, &cfg.input)?;
    let outcome = Matcher::new(cfg.match_config()).run(&loaded.records);
    Ok((loaded.records, outcome))
}

/// Each record's predicted cluster: its cluster's index, or its own number past them.
fn predicted(records: &[Record], outcome: &Outcome) -> Vec<usize> {
    let n = outcome.clustering.clusters.len();
    let mut label: Vec<usize> = (n..n + records.len()).collect();
    for (c, cluster) in outcome.clustering.clusters.iter().enumerate() {
        for &m in &cluster.members {
            label[m as usize] = c;
        }
    }
    label
}

fn score(records: &[Record], outcome: &Outcome, truth: &[(String, String)]) -> Evaluation {
    let labels: Vec<(String, String)> = predicted(records, outcome)
        .into_iter()
        .enumerate()
        .map(|(i, l)| (records[i].id().to_owned(), l.to_string()))
        .collect();
    evaluate(&labels, truth)
}

/// Prints a sample of the missed pairs (true pairs split apart) and of the wrong pairs
/// (different people put together), each with the records and the pair's evidence.
fn misses(
    name: &str,
    records: &[Record],
    outcome: &Outcome,
    truth: &[(String, String)],
    per_kind: usize,
) -> anyhow::Result<()> {
    let index: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id(), i))
        .collect();
    let mut entity = vec![usize::MAX; records.len()];
    let mut entities: HashMap<&str, usize> = HashMap::new();
    for (id, e) in truth {
        if let Some(&i) = index.get(id.as_str()) {
            let n = entities.len();
            entity[i] = *entities.entry(e.as_str()).or_insert(n);
        }
    }
    let label = predicted(records, outcome);
    let cfg = MergeConfig::default().match_config();
    let candidates: HashSet<(u32, u32)> = outcome.candidates.pairs.iter().copied().collect();
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, &e) in entity.iter().enumerate() {
        members.entry(e).or_default().push(i);
    }
    // Missed pairs by why: never compared, compared and too weak, or strong enough and kept
    // apart by the chain guard (or the size cap).
    let mut kinds: std::collections::BTreeMap<&str, Vec<(usize, usize)>> = Default::default();
    let mut groups: Vec<&Vec<usize>> = members.values().filter(|m| m.len() > 1).collect();
    groups.sort_unstable();
    for m in groups {
        for (x, &a) in m.iter().enumerate() {
            for &b in &m[x + 1..] {
                if label[a] == label[b] {
                    continue;
                }
                let p = outcome.model.pair_probability(
                    dedupd_core::matching::compare(&outcome.features[a], &outcome.features[b]),
                    &outcome.features[a],
                    &outcome.features[b],
                );
                let kind = if !candidates.contains(&(a as u32, b as u32)) {
                    if p >= cfg.cluster.threshold {
                        "missed: strong, not a candidate"
                    } else {
                        "missed: weak, not a candidate"
                    }
                } else if p >= cfg.cluster.threshold {
                    "missed: strong, kept apart"
                } else {
                    "missed: weak"
                };
                kinds.entry(kind).or_default().push((a, b));
            }
        }
    }
    // Wrong pairs: the links that joined two people.
    for c in &outcome.clustering.clusters {
        for &(a, b, _) in &c.links {
            let (a, b) = (a as usize, b as usize);
            if entity[a] != entity[b] {
                kinds.entry("wrong link").or_default().push((a, b));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "## {name}")?;
    for (kind, pairs) in &kinds {
        writeln!(out, "### {kind}: {} pairs", pairs.len())?;
        // An even spread over the list, so the sample is not one entity's pairs.
        let step = (pairs.len() / per_kind.max(1)).max(1);
        for &(a, b) in pairs.iter().step_by(step).take(per_kind) {
            let ev = explain_pair(&outcome.model, &outcome.features[a], &outcome.features[b]);
            writeln!(out, "  {}", show(&records[a]))?;
            writeln!(out, "  {}", show(&records[b]))?;
            let fields: Vec<String> = ev
                .fields
                .iter()
                .filter(|f| f.level != "missing")
                .map(|f| format!("{}={}({:+.1})", f.field, f.level, f.weight))
                .collect();
            writeln!(
                out,
                "    {} tf {:+.1} total {:+.1} p {:.3} generic e/p {}/{} {}/{}",
                fields.join(" "),
                ev.name_frequency,
                ev.weight,
                ev.probability,
                u8::from(outcome.features[a].is_generic(Column::Email)),
                u8::from(outcome.features[a].is_generic(Column::Phone)),
                u8::from(outcome.features[b].is_generic(Column::Email)),
                u8::from(outcome.features[b].is_generic(Column::Phone)),
            )?;
        }
    }
    Ok(())
}

fn show(r: &Record) -> String {
    COLUMNS
        .iter()
        .filter(|&&c| c != Column::Region)
        .map(|&c| r.get(c).unwrap_or("·"))
        .collect::<Vec<_>>()
        .join(" | ")
}
