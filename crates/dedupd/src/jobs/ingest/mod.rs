//! `dedupd ingest`: feeds → one normalized, deduplicated contact per `externalId`.
//!
//! Data flow: each source is read on its own thread (rows → normalized records → merged per
//! key within the source) → the per-source results merge in config order → each contact is
//! compared with the state store (new / changed / unchanged / stale) → changed state goes to
//! the single store writer in batched commits → the outputs are written from the store.

pub(crate) mod output;

pub mod args;
mod report;

pub use report::{Report, SourceReport};

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use dedupd_core::{Change, Contact, ExternalIdBuilder};
use dedupd_store::{ContactState, EmbeddedStore, StoredContact};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustc_hash::FxHashMap as HashMap;

use crate::shared::feeds::{Config, Source};
use dedupd_feed::contacts::{Collected, read_contacts};
pub use dedupd_feed::read::{Reason, Reject};

pub use dedupd_core::ChangeKind;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The validated config.
    pub config: Config,
    /// State directory.
    pub state_dir: PathBuf,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Show progress bars (on a terminal).
    pub progress: bool,
}

/// Contacts per state commit.
const COMMIT_BATCH: usize = 20_000;

/// The job name under which ingest runs are numbered in the state.
const INGEST_JOB: &str = "ingest";

/// Runs an ingest and writes its outputs.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let store = EmbeddedStore::open(&opts.state_dir)?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create output directory {}", opts.out_dir.display()))?;

    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });

    // 1. Read every source in parallel; each merges its own records per key.
    let results: Vec<anyhow::Result<Collected>> = std::thread::scope(|scope| {
        let handles: Vec<_> = opts
            .config
            .sources
            .iter()
            .map(|src| {
                let bar = source_bar(&multi, src);
                let key = &opts.config.key;
                scope.spawn(move || collect_source(src, key, &bar))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a source reader thread panicked")))
            })
            .collect()
    });

    let mut report = Report::default();
    let mut rejects = Vec::new();
    let mut merged: HashMap<String, Box<Contact>> = HashMap::default();
    for (src, res) in opts.config.sources.iter().zip(results) {
        let c = res?;
        report.records_read += c.records_read;
        report.sources.push(SourceReport {
            name: src.name.clone(),
            records_read: c.records_read,
            rejected: c.rejects.len() as u64,
        });
        for r in &c.rejects {
            *report.rejects.entry(r.reason).or_default() += 1;
        }
        rejects.extend(c.rejects);
        if merged.is_empty() {
            merged = c.contacts;
        } else {
            for (k, v) in c.contacts {
                match merged.entry(k) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        e.get_mut().absorb(&v);
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(v);
                    }
                }
            }
        }
    }
    report.contacts_in_run = merged.len() as u64;

    // 2. Compare with the state store and write what moved. Each write carries its change
    // (new / changed / stale) and this run's number, in the same commit: a run killed after
    // some commits leaves them marked, and they stay "changed since the last completed run"
    // until a run has written its outputs (step 3), however many runs die before.
    let completed = store.completed_run(INGEST_JOB)?;
    let run = store.begin_run(INGEST_JOB)?;
    let mut run_contacts: Vec<Box<Contact>> = merged.into_values().collect();
    run_contacts.sort_unstable_by(|a, b| a.external_id.cmp(&b.external_id));
    let classify_bar = multi.add(ProgressBar::new(run_contacts.len() as u64));
    classify_bar.set_style(bar_style("{prefix:>10} {bar:30} {pos}/{len} contacts"));
    classify_bar.set_prefix("state");
    let mut writer = store.writer(COMMIT_BATCH);
    for chunk in run_contacts.chunks(COMMIT_BATCH) {
        let ids: Vec<&str> = chunk.iter().map(|c| c.external_id.as_str()).collect();
        let stored = store.get_many(&ids)?;
        for (incoming, before) in chunk.iter().zip(stored) {
            let Some(before) = before else {
                writer.put(StoredContact::with_change(
                    Contact::clone(incoming),
                    run,
                    Change::NEW,
                ))?;
                continue;
            };
            let earlier = before.pending_change(completed);
            let mut after = before.contact;
            let outcome = after.absorb(incoming);
            let Some(change) = Change::then(earlier.map(|e| e.change), Change::of_merge(&outcome))
            else {
                report.unchanged += 1;
                if outcome.is_touched() {
                    writer.put(StoredContact::new(after))?;
                }
                continue;
            };
            // A change first committed by an interrupted run keeps that run's number.
            let first_run = earlier.map_or(run, |e| e.run);
            if outcome.is_touched() || earlier.map(|e| e.change) != Some(change) {
                writer.put(StoredContact::with_change(after, first_run, change))?;
            }
        }
        classify_bar.inc(chunk.len() as u64);
    }
    drop(run_contacts);
    writer.finish()?;
    classify_bar.finish_and_clear();

    // 3. Outputs from the committed state; `changes.ndjson` lists every change not yet
    // reported by a completed run, this run's and those of runs killed before their outputs.
    let written = output::write_contacts(
        &store,
        &opts.out_dir,
        &opts.config.csv_columns,
        completed,
        run,
    )?;
    report.contacts = written.contacts;
    report.do_not_call = written.do_not_call;
    report.new = written.new;
    report.changed = written.changed;
    report.stale = written.stale;
    report.do_not_call_new = written.do_not_call_new;
    report.carried_over = written.carried_over;
    rejects.sort_by_key(|r| {
        let order = opts
            .config
            .sources
            .iter()
            .position(|s| s.name == r.source)
            .unwrap_or(usize::MAX);
        (order, r.line)
    });
    output::write_rejects(&opts.out_dir, &rejects)?;
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    report.peak_rss_bytes = crate::shared::peak_rss_bytes();
    crate::shared::fs::write_json(&opts.out_dir.join("report.json"), &report)?;
    // Only now are this run's changes (and those it carried over) reported.
    store.complete_run(INGEST_JOB, run)?;
    Ok(report)
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn source_bar(multi: &MultiProgress, src: &Source) -> ProgressBar {
    let size = src
        .path
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let bar = match size {
        Some(n) => {
            let b = multi.add(ProgressBar::new(n));
            b.set_style(bar_style(
                "{prefix:>10} {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
            ));
            b
        }
        None => {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(bar_style(
                "{prefix:>10} {spinner} {binary_bytes} {binary_bytes_per_sec}",
            ));
            b
        }
    };
    bar.set_prefix(src.name.clone());
    bar
}

/// Reads one source into contacts, its progress on `bar`.
fn collect_source(
    src: &Source,
    key: &ExternalIdBuilder,
    bar: &ProgressBar,
) -> anyhow::Result<Collected> {
    let read = read_contacts(src, key, |n| bar.inc(n));
    bar.finish_and_clear();
    Ok(read?)
}
