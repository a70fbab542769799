//! `dedupd merge plan`: find the duplicate contacts of an export and write a reviewable plan.
//!
//! Read (CSV or NDJSON, any column layout through a mapping) → normalize with the shared `core`
//! functions → the `core` matcher (blocking, comparison, weights learned from the data,
//! chain-guarded clustering) → survivor and field resolution → `clusters.csv`, `plan.json`,
//! `plan.html`, `rejects.ndjson` and `report.json` in the output directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use dedupd_core::matching::{self, Column, MatchConfig, Matcher, Record};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub mod args;
use crate::shared::fs::AtomicFile;
use crate::shared::plan_file::{
    Cluster, Decisions, DecisionsFile, MatchContext, PLAN_VERSION, Plan, PlanFile, cluster_id,
    keep_most_doubtful,
};
use crate::shared::platform::{DirectoryJob, Platform};
use crate::shared::review::{self, PageMeta};
pub use dedupd_feed::export::{InputConfig, InputFormat, Loaded, Reject, load};
use dedupd_platform::directory::CustomerDirectory;

/// The `merge plan` config file (TOML). Every key is optional; without a file the input's
/// column names must be the defaults (`record_id`, `first_name`, …, `updated_at`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// Where the records come from.
    #[serde(default)]
    pub input: InputConfig,
    /// Matcher settings.
    #[serde(default)]
    pub matching: MatchingConfig,
}

/// `[matching]`: every knob of the matcher. The defaults need no tuning per data set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingConfig {
    /// Link pairs at or above this match probability [default: 0.5].
    pub threshold: Option<f64>,
    /// Largest cluster [default: 50; Genesys Cloud merge sets hold at most 52].
    pub max_cluster: Option<usize>,
    /// Chain guard: refuse to join clusters when a pair across them has this many bits of
    /// evidence against [default: 5].
    pub guard_bits: Option<f64>,
    /// Blocks up to this size are compared in full [default: 64].
    pub max_block: Option<usize>,
    /// A phone or e-mail shared by more records than this is generic [default: 40].
    pub generic_size: Option<usize>,
    /// Each name key (name pair, name with postcode, e-mail local part) yields at most this
    /// many candidate pairs per record holding it; its blocks are compared up to the size
    /// that keeps within it [default: 1.0].
    pub name_pairs_per_record: Option<f64>,
}

impl MatchingConfig {
    /// Each knob given is within its range, or the knob and the reason (a NaN or a negative
    /// budget would otherwise change blocking silently).
    fn check(&self) -> std::result::Result<(), String> {
        let between = |name: &str, v: Option<f64>, ok: fn(f64) -> bool, what: &str| match v {
            Some(v) if !ok(v) => Err(format!("{name} = {v} is not {what}")),
            _ => Ok(()),
        };
        between(
            "threshold",
            self.threshold,
            |v| v > 0.0 && v < 1.0,
            "in (0, 1)",
        )?;
        between(
            "guard_bits",
            self.guard_bits,
            |v| v.is_finite() && v >= 0.0,
            "a number ≥ 0",
        )?;
        between(
            "name_pairs_per_record",
            self.name_pairs_per_record,
            |v| v.is_finite() && v > 0.0,
            "a number > 0",
        )?;
        for (name, v) in [
            ("max_cluster", self.max_cluster),
            ("max_block", self.max_block),
            ("generic_size", self.generic_size),
        ] {
            if let Some(v) = v
                && v < 2
            {
                return Err(format!("{name} = {v} is not at least 2"));
            }
        }
        Ok(())
    }
}

impl MergeConfig {
    /// Reads a config file; relative paths in it resolve against its folder.
    pub fn load(path: &Path) -> Result<MergeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the merge config {}", path.display()))?;
        let mut cfg: MergeConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        if let Some(p) = &cfg.input.path
            && p.is_relative()
        {
            let base = path.parent().unwrap_or(Path::new("."));
            cfg.input.path = Some(base.join(p));
        }
        for ours in cfg.input.columns.keys() {
            if ours != "updated_at" && Column::from_name(ours).is_none() {
                bail!(
                    "{}: [input.columns] {ours:?} is not a column dedupd knows (record_id, source, first_name, last_name, email, phone, street, city, region, postcode, country, updated_at)",
                    path.display()
                );
            }
        }
        // Every option is checked now, not when the first row is read.
        cfg.input
            .check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        cfg.matching
            .check()
            .map_err(|e| anyhow::anyhow!("{}: [matching] {e}", path.display()))?;
        Ok(cfg)
    }

    /// The matcher settings with this config's overrides.
    pub fn match_config(&self) -> MatchConfig {
        let mut m = MatchConfig::default();
        let c = &self.matching;
        if let Some(v) = c.threshold {
            m.cluster.threshold = v;
        }
        if let Some(v) = c.max_cluster {
            m.cluster.max_cluster = v;
        }
        if let Some(v) = c.guard_bits {
            m.cluster.guard_bits = v;
        }
        if let Some(v) = c.max_block {
            m.blocking.max_block = v;
        }
        if let Some(v) = c.generic_size {
            m.blocking.generic_size = v;
        }
        if let Some(v) = c.name_pairs_per_record {
            m.blocking.name_pairs_per_record = v;
        }
        m
    }
}

/// Seconds per stage, and sizes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run ended.
    pub finished_at: DateTime<Utc>,
    /// Records used.
    pub records: usize,
    /// Records refused and values dropped.
    pub rejects: usize,
    /// Candidate pairs compared.
    pub candidate_pairs: usize,
    /// Pairs at or above the threshold.
    pub links: usize,
    /// Clusters of two or more records.
    pub clusters: usize,
    /// Records in those clusters.
    pub clustered_records: usize,
    /// Cluster size → number of clusters.
    pub cluster_sizes: BTreeMap<usize, usize>,
    /// Distinct phone / e-mail values found generic.
    pub generic_phones: usize,
    /// See `generic_phones`.
    pub generic_emails: usize,
    /// Blocks larger than their key's cap (dropped for a name key, sorted neighbourhood for
    /// an identifier).
    pub capped_blocks: usize,
    /// Per blocking key: the largest block compared in full, and the pairs it yielded (before
    /// removing pairs found by several keys).
    pub blocking_keys: BTreeMap<&'static str, KeyReport>,
    /// Joins refused by the chain guard.
    pub guard_refusals: usize,
    /// Joins refused by the cluster-size cap.
    pub size_refusals: usize,
    /// Seconds per stage.
    pub seconds: BTreeMap<&'static str, f64>,
    /// Peak resident memory in MiB.
    pub peak_rss_mib: Option<f64>,
    /// The learned model: weight in bits per field and level.
    pub weights: BTreeMap<&'static str, BTreeMap<&'static str, f64>>,
    /// Prior match probability of a random pair.
    pub prior: f64,
    /// The threshold used.
    pub threshold: f64,
}

/// One blocking key in the report.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    /// The largest block compared in full.
    pub cap: usize,
    /// Pairs yielded.
    pub pairs: u64,
}

/// Where the records come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An export file (`-` for stdin).
    File(PathBuf),
    /// A platform's customer directory, scanned whole (or one part of it, such as a Genesys
    /// Cloud division).
    Directory {
        /// The platform.
        platform: Platform,
        /// Only this part of the directory.
        scope: Option<String>,
    },
}

/// Options of one plan run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The export.
    pub input: PathBuf,
    /// Input settings.
    pub config: MergeConfig,
    /// Output directory.
    pub out: PathBuf,
    /// At most this many clusters on the HTML page (the most doubtful first).
    pub html_limit: usize,
    /// Also write the resolution index (the records, their customers, the settings and the
    /// learned model) there, for `dedupd serve --resolve-index` or `--resolve-postgres`.
    pub resolve_index: Option<IndexTarget>,
}

/// Where `merge plan` writes the resolution index.
#[derive(Debug, Clone)]
pub enum IndexTarget {
    /// The embedded index in this directory (one process at a time).
    Dir(PathBuf),
    /// The index in PostgreSQL, shared by every `serve --resolve-postgres` on it.
    Postgres {
        /// The server.
        url: String,
        /// The schema of its tables (default: the search path).
        schema: Option<String>,
    },
}

/// What a plan run produced (the plan itself is in `out/plan.json`).
#[derive(Debug)]
pub struct Planned {
    /// The report (also in `out/report.json`).
    pub report: Report,
}

/// Runs the planner end to end and writes its outputs.
pub fn run(opts: &Options) -> Result<Planned> {
    run_from(&Source::File(opts.input.clone()), opts)
}

/// [`run`] from any source; `opts.input` only names the input in the plan when the source is
/// not a file.
pub fn run_from(source: &Source, opts: &Options) -> Result<Planned> {
    let mut seconds = BTreeMap::new();
    let t = Instant::now();
    let loaded = match source {
        Source::File(path) => load(path, &opts.config.input)?,
        Source::Directory { platform, scope } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(platform.run_directory(
                false,
                Scan {
                    scope: scope.as_deref(),
                    default_country: opts.config.input.default_country.as_deref(),
                },
            ))?
        }
    };
    seconds.insert("read_normalize", t.elapsed().as_secs_f64());
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let mut report = plan_records(
        &loaded.records,
        &opts.config,
        &opts.input.display().to_string(),
        &opts.out,
        opts.html_limit,
        opts.resolve_index.as_ref(),
        &mut seconds,
    )?;
    report.rejects = loaded.rejects.len();
    let t = Instant::now();
    write_ndjson(&opts.out.join("rejects.ndjson"), &loaded.rejects)?;
    *seconds.entry("write").or_default() += t.elapsed().as_secs_f64();
    report.seconds = seconds;
    report.peak_rss_mib = crate::shared::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0));
    crate::shared::fs::write_json(&opts.out.join("report.json"), &report)?;
    Ok(Planned { report })
}

/// Clusters built and written per step: the plan is streamed to disk, never held whole.
const CLUSTER_CHUNK: usize = 4096;

/// Matches records and writes `clusters.csv`, `plan.json` and `plan.html` to `out` (and the
/// resolution index to `resolve_index`); returns the report without read timings and rejects.
pub fn plan_records(
    records: &[Record],
    cfg: &MergeConfig,
    input: &str,
    out: &Path,
    html_limit: usize,
    resolve_index: Option<&IndexTarget>,
    seconds: &mut BTreeMap<&'static str, f64>,
) -> Result<Report> {
    let mc = cfg.match_config();
    let matcher = Matcher::new(mc);
    let mut lap = Instant::now();
    let mut stage = |name: &'static str, seconds: &mut BTreeMap<&'static str, f64>| {
        seconds.insert(name, lap.elapsed().as_secs_f64());
        lap = Instant::now();
    };
    let mut features = matcher.features(records);
    stage("features", seconds);
    let mut candidates = matcher.block(&mut features);
    stage("blocking", seconds);
    let patterns = matcher.compare(&features, &candidates);
    stage("compare", seconds);
    let model = matcher.estimate(&features, &patterns);
    stage("estimate", seconds);
    let clustering = matcher.cluster(&features, &candidates, &patterns, &model);
    stage("cluster", seconds);
    // The plan explains only the links, each compared again: the candidate pairs and their
    // patterns are freed first, so the largest arrays of the run are never held beside the
    // plan's.
    let candidate_pairs = candidates.pairs.len();
    drop(patterns);
    candidates.pairs = Vec::new();
    let ctx = MatchContext {
        records,
        features: &features,
        model: &model,
        pairs: &[],
        patterns: &[],
    };
    let Written {
        labels,
        ids,
        sizes,
        doubtful,
        generated_at,
    } = write_plan(out, input, &clustering.clusters, &ctx, html_limit)?;
    stage("resolve_write_plan", seconds);
    let label_of = |i: usize| -> String {
        match labels[i] {
            Some(ci) => ids[ci as usize].clone(),
            None => cluster_id([records[i].id()]),
        }
    };
    if let Some(target) = resolve_index {
        write_resolve_index(target, records, &label_of, mc, &model)?;
        stage("resolve_index", seconds);
    }
    write_clusters_csv(&out.join("clusters.csv"), records, label_of)?;
    let weights = matching::COMPARISONS
        .iter()
        .map(|&c| {
            let levels = (1..c.levels().len())
                .map(|l| (c.levels()[l], (model.weight(c, l) * 100.0).round() / 100.0))
                .collect();
            (c.name(), levels)
        })
        .collect();
    let report = Report {
        finished_at: Utc::now(),
        records: records.len(),
        rejects: 0,
        candidate_pairs,
        links: clustering.clusters.iter().map(|c| c.links.len()).sum(),
        clusters: ids.len(),
        clustered_records: sizes.iter().map(|(size, n)| size * n).sum(),
        cluster_sizes: sizes,
        generic_phones: candidates.generic_phones,
        generic_emails: candidates.generic_emails,
        capped_blocks: candidates.capped_blocks,
        blocking_keys: matching::blocking::KEY_NAMES
            .iter()
            .enumerate()
            .map(|(k, &name)| {
                (
                    name,
                    KeyReport {
                        cap: candidates.block_caps[k],
                        pairs: candidates.pairs_by_key[k],
                    },
                )
            })
            .collect(),
        guard_refusals: clustering.guard_refusals,
        size_refusals: clustering.size_refusals,
        seconds: BTreeMap::new(),
        peak_rss_mib: None,
        weights,
        prior: model.prior,
        threshold: mc.cluster.threshold,
    };
    // Decisions of an earlier review in this directory carry over to the clusters whose
    // members did not change (the page matches them by member set).
    let decisions = Decisions::load(out)?.unwrap_or_default();
    let meta = PageMeta::new(input, generated_at, ids.len(), doubtful.len(), false);
    review::write_file(&out.join("plan.html"), &meta, &doubtful, &decisions)?;
    stage("write", seconds);
    Ok(report)
}

/// What [`write_plan`] wrote: per record (by its number) the plan cluster it is in, the
/// clusters' ids, how many clusters of each size, the most doubtful clusters (for the page)
/// and the plan's time.
struct Written {
    labels: Vec<Option<u32>>,
    ids: Vec<String>,
    sizes: BTreeMap<usize, usize>,
    doubtful: Vec<Cluster>,
    generated_at: DateTime<Utc>,
}

/// Clusters each parallel task builds and serializes into one buffer.
const CLUSTERS_PER_TASK: usize = 64;

/// Writes `plan.json` for the matcher's `clusters`, streamed: the header, then one cluster per
/// line. The clusters are built and serialized in parallel a chunk at a time (the plan is
/// never held whole) while a writer thread writes the chunk before; of the built clusters,
/// only those that may still be among the `html_limit` most doubtful are kept for the page,
/// the others are dropped by the task that built them.
fn write_plan(
    out: &Path,
    input: &str,
    clusters: &[matching::Cluster],
    ctx: &MatchContext<'_>,
    html_limit: usize,
) -> Result<Written> {
    /// One task's clusters: their JSON lines (each after `,\n`), and per cluster its id, its
    /// size and, when it may be among the most doubtful, the cluster itself.
    struct Built {
        json: Vec<u8>,
        clusters: Vec<(String, usize, Option<Cluster>)>,
    }
    let plan_path = Plan::path_in(out);
    let mut plan_file = AtomicFile::create(&plan_path)?;
    let generated_at = Utc::now();
    let w = plan_file.writer();
    write!(
        w,
        "{{\"version\":{PLAN_VERSION},\"generated_at\":{},\"input\":{},\"clusters\":[",
        serde_json::to_string(&generated_at)?,
        serde_json::to_string(input)?
    )?;
    let mut labels: Vec<Option<u32>> = vec![None; ctx.records.len()];
    let mut ids: Vec<String> = Vec::with_capacity(clusters.len());
    let mut sizes = BTreeMap::new();
    // The most doubtful clusters so far, for the HTML page, and once there are `html_limit`
    // of them the last one's confidence and id: a cluster not before it cannot be on the page.
    let mut doubtful: Vec<Cluster> = Vec::new();
    let mut bar: Option<(f64, String)> = None;
    let (to_write, chunks) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(2);
    std::thread::scope(|scope| -> Result<()> {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for bufs in chunks {
                for b in bufs {
                    w.write_all(&b)?;
                }
            }
            Ok(())
        });
        let mut first = true;
        for chunk in clusters.chunks(CLUSTER_CHUNK) {
            let may_be_doubtful = |c: &Cluster| {
                html_limit > 0
                    && bar.as_ref().is_none_or(|(conf, id)| {
                        c.confidence
                            .total_cmp(conf)
                            .then_with(|| c.cluster_id.cmp(id))
                            .is_lt()
                    })
            };
            let built: Vec<Built> = chunk
                .par_chunks(CLUSTERS_PER_TASK)
                .map(|task| -> Result<Built> {
                    let mut b = Built {
                        json: Vec::with_capacity(task.len() * 1024),
                        clusters: Vec::with_capacity(task.len()),
                    };
                    for c in task {
                        let cluster = Cluster::from_matched(c, ctx);
                        b.json.extend_from_slice(b",\n");
                        serde_json::to_writer(&mut b.json, &cluster).with_context(|| {
                            format!(
                                "cannot serialize cluster {} into plan.json",
                                cluster.cluster_id
                            )
                        })?;
                        let size = cluster.members.len();
                        b.clusters.push(if may_be_doubtful(&cluster) {
                            (cluster.cluster_id.clone(), size, Some(cluster))
                        } else {
                            (cluster.cluster_id, size, None)
                        });
                    }
                    Ok(b)
                })
                .collect::<Result<_>>()?;
            let mut bufs = Vec::with_capacity(built.len());
            let mut cores = chunk.iter();
            for b in built {
                for ((id, size, cluster), core) in b.clusters.into_iter().zip(&mut cores) {
                    let ci = u32::try_from(ids.len()).context("too many clusters")?;
                    for &m in &core.members {
                        labels[m as usize] = Some(ci);
                    }
                    *sizes.entry(size).or_insert(0) += 1;
                    ids.push(id);
                    doubtful.extend(cluster);
                }
                let mut json = b.json;
                if std::mem::take(&mut first) {
                    // The first cluster follows the opening bracket on its own line.
                    json.remove(0);
                }
                bufs.push(json);
            }
            if to_write.send(bufs).is_err() {
                // The writer stopped: its error says why.
                break;
            }
            if doubtful.len() > html_limit {
                keep_most_doubtful(&mut doubtful, html_limit);
            }
            if html_limit > 0 && doubtful.len() == html_limit {
                bar = doubtful
                    .last()
                    .map(|c| (c.confidence, c.cluster_id.clone()));
            }
        }
        drop(to_write);
        writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .with_context(|| format!("cannot write {}", plan_path.display()))
    })?;
    keep_most_doubtful(&mut doubtful, html_limit);
    plan_file.writer().write_all(b"\n]}\n")?;
    plan_file.commit()?;
    Ok(Written {
        labels,
        ids,
        sizes,
        doubtful,
        generated_at,
    })
}

/// What `merge plan --incremental` did (also `out/report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct IncrementalReport {
    /// When the run ended.
    pub finished_at: DateTime<Utc>,
    /// Records resolved (read, and updated since `--since` when given).
    pub records: usize,
    /// Records read but updated before `--since` (or without a time), not resolved.
    pub before_since: usize,
    /// Records refused and values dropped.
    pub rejects: usize,
    /// Records the index knew before this run.
    pub known_before: usize,
    /// New records that joined a known customer.
    pub joined: usize,
    /// New records that are a new customer.
    pub new_customers: usize,
    /// Records whose id the index already knew with the same values (or newer ones, by
    /// `updated_at`): left as they are.
    pub already_known: usize,
    /// Records whose id the index knew with other values: each was taken out of its customer
    /// and resolved again.
    pub changed: usize,
    /// Of those, the ones that ended in another customer: which record went from which
    /// customer to which (ids only).
    pub moved: Vec<Moved>,
    /// Known customers that new records showed to be one with another.
    pub customers_joined_together: usize,
    /// Clusters in the plan: the customers that changed and have two or more records.
    pub clusters: usize,
    /// Records in those clusters.
    pub clustered_records: usize,
    /// Seconds per stage.
    pub seconds: BTreeMap<&'static str, f64>,
    /// Peak resident memory in MiB.
    pub peak_rss_mib: Option<f64>,
}

/// A known record that changed and ended in another customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// The record.
    pub record_id: String,
    /// The customer it was in.
    pub from: String,
    /// The customer it is in now.
    pub to: String,
}

/// Records resolved per recording in a shared (PostgreSQL) index: each recording holds the
/// advisory locks of its records' keys (about ten each) until it commits.
const SHARED_CHUNK: usize = 64;

/// `merge plan --incremental`: resolves the records of `opts.input` one by one against the
/// resolution index (embedded in a directory, or shared in PostgreSQL; the batch engine's
/// functions, on the blocks each record touches), records them in the index, and writes the
/// plan files (`plan.json`, `plan.html`, `clusters.csv`, `rejects.ndjson`, `report.json`) for
/// the customers that changed: a new record that joins a known customer becomes a merge of
/// that record into it. A record the index knows with other values is taken out of its
/// customer and resolved again; `report.json` lists the ones that moved.
///
/// In PostgreSQL, records are resolved and recorded a few at a time under the advisory locks
/// of their keys, after catching up with what `serve` instances recorded meanwhile, as each
/// `serve` does: a person resolved here and by a `serve` at once is one customer.
///
/// With `since`, only the records updated at or after it are resolved (an export of
/// everything, of which only the day's records are new); the others are counted in
/// `before_since`.
pub fn run_incremental(
    opts: &Options,
    target: &IndexTarget,
    since: Option<DateTime<Utc>>,
) -> Result<IncrementalReport> {
    use dedupd_core::matching::Resolver;
    use dedupd_core::matching::incremental::{Resolution, Status};
    use dedupd_store::resolution::{EmbeddedIndex, Entry, PgIndex, ResolutionIndex};

    let mut seconds = BTreeMap::new();
    let mut lap = Instant::now();
    let mut stage = |name: &'static str, seconds: &mut BTreeMap<&'static str, f64>| {
        seconds.insert(name, lap.elapsed().as_secs_f64());
        lap = Instant::now();
    };
    let mut loaded = load(&opts.input, &opts.config.input)?;
    let before = loaded.records.len();
    if let Some(since) = since {
        let since = since.timestamp();
        loaded
            .records
            .retain(|r| r.updated_at.is_some_and(|t| t >= since));
    }
    let before_since = before - loaded.records.len();
    stage("read_normalize", &mut seconds);
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    enum Opened {
        Embedded(EmbeddedIndex),
        Postgres(PgIndex),
    }
    let (index, snapshot) = match target {
        IndexTarget::Dir(dir) => {
            let index = EmbeddedIndex::open(dir)
                .with_context(|| format!("opening the resolution index in {}", dir.display()))?;
            let snapshot = rt.block_on(index.load())?.with_context(|| {
                format!(
                    "the resolution index in {} was never built: run `dedupd merge plan --resolve-index {}` on the known records first",
                    dir.display(),
                    dir.display()
                )
            })?;
            (Opened::Embedded(index), snapshot)
        }
        IndexTarget::Postgres { url, schema } => {
            let index = rt
                .block_on(PgIndex::connect(url, schema.as_deref()))
                .context("connecting to the resolution index in PostgreSQL")?;
            let snapshot = rt.block_on(index.load())?.context(
                "the resolution index in PostgreSQL was never built: run `dedupd merge plan --resolve-postgres` on the known records first",
            )?;
            (Opened::Postgres(index), snapshot)
        }
    };
    let place = match target {
        IndexTarget::Dir(dir) => dir.display().to_string(),
        IndexTarget::Postgres { .. } => "PostgreSQL".to_owned(),
    };
    let known_before = snapshot.entries.len();
    let mut resolver = Resolver::restore(
        snapshot.settings.config,
        snapshot.settings.model,
        snapshot
            .entries
            .into_iter()
            .map(|e| (e.record, e.customer))
            .collect(),
    );
    stage("load_index", &mut seconds);
    let (mut joined, mut new_customers, mut already_known, mut together) = (0, 0, 0, 0);
    let (mut changed_records, mut moved) = (0, Vec::new());
    let mut changed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // Counts an answer; the entry to record, unless the record was known as it is.
    let mut tally = |r: &Record, answer: Resolution| -> Option<Entry> {
        match (answer.status, &answer.previous_customer) {
            (Status::Known, _) => {
                already_known += 1;
                return None;
            }
            (_, Some(from)) => {
                changed_records += 1;
                if *from != answer.customer {
                    moved.push(Moved {
                        record_id: r.id().to_owned(),
                        from: from.clone(),
                        to: answer.customer.clone(),
                    });
                }
            }
            (Status::New, None) => new_customers += 1,
            (Status::Joined, None) => joined += 1,
        }
        together += answer.absorbed.len();
        for gone in &answer.absorbed {
            changed.remove(gone);
        }
        changed.insert(answer.customer.clone());
        Some(Entry {
            record: r.clone(),
            customer: answer.customer,
            absorbed: answer.absorbed,
        })
    };
    match &index {
        Opened::Embedded(index) => {
            let entries: Vec<Entry> = loaded
                .records
                .iter()
                .filter_map(|r| tally(r, resolver.record(r.clone())))
                .collect();
            stage("resolve", &mut seconds);
            rt.block_on(index.append(entries))
                .with_context(|| format!("recording the new records in {place}"))?;
        }
        Opened::Postgres(index) => {
            let mut seen = i64::try_from(known_before).unwrap_or(i64::MAX) - 1;
            for chunk in loaded.records.chunks(SHARED_CHUNK) {
                let keys: Vec<u64> = chunk.iter().flat_map(Resolver::lock_keys).collect();
                rt.block_on(async {
                    let mut recording = index.begin(&keys).await?;
                    // What the serve instances recorded meanwhile, in their order.
                    for (seq, e) in recording.since(seen).await? {
                        resolver.replay(e.record, &e.customer, &e.absorbed);
                        seen = seen.max(seq);
                    }
                    let entries: Vec<Entry> = chunk
                        .iter()
                        .filter_map(|r| tally(r, resolver.record(r.clone())))
                        .collect();
                    if !entries.is_empty() {
                        recording.append(&entries).await?;
                    }
                    recording.commit().await
                })
                .with_context(|| format!("recording the new records in {place}"))?;
            }
            stage("resolve", &mut seconds);
        }
    }
    stage("record", &mut seconds);
    let clusters = resolver.clusters_of(changed.iter().map(String::as_str));
    let ctx = MatchContext {
        records: resolver.records(),
        features: resolver.features(),
        model: resolver.model(),
        pairs: &[],
        patterns: &[],
    };
    let input = opts.input.display().to_string();
    let written = write_plan(&opts.out, &input, &clusters, &ctx, opts.html_limit)?;
    // clusters.csv: the new records and every member of the plan's clusters, once each.
    let records = resolver.records();
    let mut shown: Vec<usize> = (known_before..records.len()).collect();
    shown.extend(
        clusters
            .iter()
            .flat_map(|c| c.members.iter().map(|&m| m as usize)),
    );
    shown.sort_unstable();
    shown.dedup();
    {
        let path = opts.out.join("clusters.csv");
        let mut file = AtomicFile::create(&path)?;
        let mut w = csv::Writer::from_writer(file.writer());
        w.write_record(["record_id", "cluster_id"])?;
        for i in shown {
            let label = match written.labels[i] {
                Some(ci) => written.ids[ci as usize].clone(),
                None => cluster_id([records[i].id()]),
            };
            w.write_record([records[i].id(), label.as_str()])?;
        }
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
        drop(w);
        file.commit()?;
    }
    let decisions = Decisions::load(&opts.out)?.unwrap_or_default();
    let meta = PageMeta::new(
        &input,
        written.generated_at,
        written.ids.len(),
        written.doubtful.len(),
        false,
    );
    review::write_file(
        &opts.out.join("plan.html"),
        &meta,
        &written.doubtful,
        &decisions,
    )?;
    write_ndjson(&opts.out.join("rejects.ndjson"), &loaded.rejects)?;
    stage("write", &mut seconds);
    let report = IncrementalReport {
        finished_at: Utc::now(),
        records: loaded.records.len(),
        before_since,
        rejects: loaded.rejects.len(),
        known_before,
        joined,
        new_customers,
        already_known,
        changed: changed_records,
        moved,
        customers_joined_together: together,
        clusters: written.ids.len(),
        clustered_records: written.sizes.iter().map(|(size, n)| size * n).sum(),
        seconds,
        peak_rss_mib: crate::shared::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0)),
    };
    crate::shared::fs::write_json(&opts.out.join("report.json"), &report)?;
    Ok(report)
}

/// Writes the resolution index: every record with its customer (its cluster's id, as in
/// `clusters.csv`), the settings and the learned model, replacing what the directory held.
fn write_resolve_index(
    target: &IndexTarget,
    records: &[Record],
    label_of: &impl Fn(usize) -> String,
    config: MatchConfig,
    model: &matching::Model,
) -> Result<()> {
    use dedupd_store::resolution::{
        EmbeddedIndex, Entry, PgIndex, ResolutionIndex, Settings, Snapshot,
    };
    let snapshot = Snapshot {
        settings: Settings {
            config,
            model: model.clone(),
        },
        entries: records
            .iter()
            .enumerate()
            .map(|(i, r)| Entry {
                record: r.clone(),
                customer: label_of(i),
                absorbed: Vec::new(),
            })
            .collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match target {
        IndexTarget::Dir(dir) => {
            let index = EmbeddedIndex::open(dir)
                .with_context(|| format!("opening the resolution index in {}", dir.display()))?;
            rt.block_on(index.replace(snapshot))
                .with_context(|| format!("writing the resolution index in {}", dir.display()))
        }
        IndexTarget::Postgres { url, schema } => rt
            .block_on(async {
                let index = PgIndex::connect(url, schema.as_deref()).await?;
                index.replace(snapshot).await
            })
            .context("writing the resolution index in PostgreSQL"),
    }
}

/// Writes `clusters.csv`: each record and its cluster. Rows are formatted in parallel chunks
/// (a record alone gets its own cluster id, a hash of its id) and written in order.
fn write_clusters_csv(
    path: &Path,
    records: &[Record],
    label_of: impl Fn(usize) -> String + Sync,
) -> Result<()> {
    const ROWS: usize = 1 << 14;
    let mut file = AtomicFile::create(path)?;
    let w = file.writer();
    w.write_all(b"record_id,cluster_id\n")?;
    // A few tasks per thread at a time: the file is written while never held whole.
    let span = ROWS * 4 * rayon::current_num_threads().max(1);
    for (k, chunk) in records.chunks(span).enumerate() {
        let base = k * span;
        let parts: Vec<Vec<u8>> = chunk
            .par_chunks(ROWS)
            .enumerate()
            .map(|(n, rows)| -> Result<Vec<u8>> {
                let mut csv = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 32));
                for (j, r) in rows.iter().enumerate() {
                    csv.write_record([r.id(), label_of(base + n * ROWS + j).as_str()])?;
                }
                csv.into_inner().map_err(|e| anyhow::anyhow!(e.to_string()))
            })
            .collect::<Result<_>>()?;
        for part in parts {
            w.write_all(&part)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    file.commit()
}

fn write_ndjson<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    let w = file.writer();
    for it in items {
        serde_json::to_writer(&mut *w, it)
            .with_context(|| format!("cannot write {}", path.display()))?;
        w.write_all(b"\n")?;
    }
    file.commit()
}

pub use dedupd_feed::read::read_labels;

/// Reading a whole customer directory, as a job on any platform.
struct Scan<'a> {
    scope: Option<&'a str>,
    default_country: Option<&'a str>,
}

impl DirectoryJob for Scan<'_> {
    type Output = Loaded;

    async fn run<D: CustomerDirectory>(self, dir: Option<&D>) -> Result<Loaded> {
        let dir = dir.context("planning from a platform needs a connection to it")?;
        load_from_directory(dir, self.scope, self.default_country).await
    }
}

/// Reads every live record of a customer directory (Genesys Cloud: every External Contact
/// of an org, or of one division, with the cursor scan), for planning straight from the
/// platform. Records merged into another are left out: only canonical records can be merged
/// again. Each record keeps its id, names, one e-mail and one phone (see
/// [`CustomerRecord`](dedupd_platform::directory::CustomerRecord)), its address and when it
/// was last modified; the other values stay on the platform, which keeps them through a merge.
pub async fn load_from_directory<D: CustomerDirectory>(
    dir: &D,
    scope: Option<&str>,
    default_country: Option<&str>,
) -> Result<Loaded> {
    let mut scan = dedupd_platform::directory::Scan {
        scope: scope.map(str::to_owned),
        ..Default::default()
    };
    let mut out = Loaded::default();
    let mut n = 0u64;
    while let Some(page) = dir
        .scan_page(&mut scan)
        .await
        .context("scanning the customer directory")?
    {
        for c in page {
            n += 1;
            let vals: [String; 11] = [
                c.id,
                c.source,
                c.first_name,
                c.last_name,
                c.email,
                c.phone,
                c.street,
                c.city,
                c.region,
                c.postcode,
                c.country.unwrap_or_default(),
            ];
            out.push_row(
                n,
                std::array::from_fn(|i| vals[i].as_str()),
                default_country.unwrap_or_default(),
                Ok(c.updated_at),
            );
        }
    }
    Ok(out)
}
