//! `dedupd ingest`: feeds → one normalized, deduplicated contact per `externalId`.
//!
//! Data flow: each source is read on its own thread (rows → normalized records → merged per
//! key within the source, then sorted by key) → the per-source results merge in config order in
//! one linear pass → each contact is compared with the state store, scanned once in key order
//! (new / changed / unchanged / stale) → changed state goes to the single store writer in
//! batched commits while the outputs are written in the same pass, from the run's contacts and
//! the stored contacts the run did not touch.

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

    // 1. Read every source in parallel; each merges its own records per key and sorts them.
    let results: Vec<anyhow::Result<SourceContacts>> = std::thread::scope(|scope| {
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
    let mut sorted = Vec::with_capacity(results.len());
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
        sorted.push(c.contacts);
    }

    // 2. Merge the sources (in config order) and compare with the state store, writing what
    // moved and the outputs in the same pass. Each write carries its change (new / changed /
    // stale) and this run's number, in the same commit: a run killed after some commits leaves
    // them marked, and they stay "changed since the last completed run" until a run has
    // written its outputs, however many runs die before. `changes.ndjson` lists every change
    // not yet reported by a completed run, this run's and those of runs killed before their
    // outputs.
    let completed = store.completed_run(INGEST_JOB)?;
    let run = store.begin_run(INGEST_JOB)?;
    let upper_bound: usize = sorted.iter().map(Vec::len).max().unwrap_or(0);
    let classify_bar = multi.add(ProgressBar::new(upper_bound as u64));
    classify_bar.set_style(bar_style("{prefix:>10} {bar:30} {pos} contacts"));
    classify_bar.set_prefix("state");
    let mut in_run = 0u64;
    let mut unchanged = 0u64;
    let settle_one = |incoming: Box<Contact>, before: Option<StoredContact>| {
        in_run += 1;
        classify_bar.inc(1);
        Ok(settle(*incoming, before, completed, run, &mut unchanged))
    };
    let written = output::write_contacts(
        &store,
        &opts.out_dir,
        &opts.config.csv_columns,
        completed,
        run,
        MergeSorted::new(sorted),
        settle_one,
        store.writer(COMMIT_BATCH),
    )?;
    classify_bar.finish_and_clear();
    report.contacts_in_run = in_run;
    report.unchanged = unchanged;
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

/// One source read: its contacts sorted by `externalId`, one per key. Boxed, as in the reader's
/// table: the sort and the merge move pointers, not contacts of a few hundred bytes.
#[allow(clippy::vec_box)]
struct SourceContacts {
    records_read: u64,
    contacts: Vec<Box<Contact>>,
    rejects: Vec<Reject>,
}

/// Reads one source into contacts sorted by `externalId`, its progress on `bar`. The sort runs
/// here, on the source's own thread, so that the sources merge in one linear pass.
fn collect_source(
    src: &Source,
    key: &ExternalIdBuilder,
    bar: &ProgressBar,
) -> anyhow::Result<SourceContacts> {
    let read = read_contacts(src, key, |n| bar.inc(n));
    bar.finish_and_clear();
    let Collected {
        records_read,
        contacts,
        rejects,
    } = read?;
    let mut contacts: Vec<Box<Contact>> = contacts.into_values().collect();
    contacts.sort_unstable_by(|a, b| a.external_id.cmp(&b.external_id));
    Ok(SourceContacts {
        records_read,
        contacts,
        rejects,
    })
}

/// The contacts of several sources, each sorted by `externalId` with one contact per key,
/// merged into one sorted stream: the contacts of one key are absorbed in source order (the
/// first source's contact absorbs the later ones').
struct MergeSorted {
    heads: Vec<std::iter::Peekable<std::vec::IntoIter<Box<Contact>>>>,
}

impl MergeSorted {
    #[allow(clippy::vec_box)]
    fn new(sources: Vec<Vec<Box<Contact>>>) -> Self {
        Self {
            heads: sources
                .into_iter()
                .map(|v| v.into_iter().peekable())
                .collect(),
        }
    }
}

impl Iterator for MergeSorted {
    type Item = Box<Contact>;

    fn next(&mut self) -> Option<Box<Contact>> {
        // The first source whose next key is the smallest.
        let mut first: Option<(usize, &str)> = None;
        for (i, h) in self.heads.iter_mut().enumerate() {
            if let Some(c) = h.peek()
                && first.is_none_or(|(_, k)| c.external_id.as_str() < k)
            {
                first = Some((i, c.external_id.as_str()));
            }
        }
        let (i, _) = first?;
        let mut merged = self.heads[i].next()?;
        for h in &mut self.heads[i + 1..] {
            if let Some(c) = h.next_if(|c| c.external_id == merged.external_id) {
                merged.absorb(&c);
            }
        }
        Some(merged)
    }
}

/// Compares a contact of this run with what the state holds under its key (`before`) and
/// decides what the state holds after this run, with the change to report, and whether it
/// must be rewritten. `completed` is the last run that wrote its outputs, `run` this one.
fn settle(
    incoming: Contact,
    before: Option<StoredContact>,
    completed: u64,
    run: u64,
    unchanged: &mut u64,
) -> output::Settled {
    let Some(before) = before else {
        return output::Settled {
            stored: StoredContact::with_change(incoming, run, Change::NEW),
            write: true,
        };
    };
    let earlier = before.pending_change(completed);
    let StoredContact {
        contact: mut after,
        hash,
        change: stored_change,
    } = before;
    let outcome = after.absorb(&incoming);
    // Nothing to write: the stored contact as it was.
    let kept = |contact| output::Settled {
        stored: StoredContact {
            contact,
            hash,
            change: stored_change,
        },
        write: false,
    };
    let Some(change) = Change::then(earlier.map(|e| e.change), Change::of_merge(&outcome)) else {
        *unchanged += 1;
        return if outcome.is_touched() {
            output::Settled {
                stored: StoredContact::new(after),
                write: true,
            }
        } else {
            kept(after)
        };
    };
    // A change first committed by an interrupted run keeps that run's number.
    let first_run = earlier.map_or(run, |e| e.run);
    if outcome.is_touched() || earlier.map(|e| e.change) != Some(change) {
        output::Settled {
            stored: StoredContact::with_change(after, first_run, change),
            write: true,
        }
    } else {
        kept(after)
    }
}
