//! `dedupd sync`: push the contacts `ingest` produced into a Genesys Cloud Outbound contact
//! list: only real changes, never a duplicate, through every fault.
//!
//! - **Pending set**: the state store knows, per contact list, the hash of the payload the
//!   platform last accepted for each contact; a contact is pending when the payload it would
//!   get now hashes differently (never sent, or something the list holds changed since). A contact changed several times between two syncs is one write
//!   of its latest state: successive versions coalesce by construction.
//! - **Upsert by key**: every contact is sent through add-contacts with `id` = externalId, so a
//!   known key is an update, never a 409 and never a second contact. `do_not_call` becomes a
//!   soft delete: `callable: false`, and not contactable on Voice, SMS and Email.
//! - **Journal**: after each accepted batch, exactly the contacts the platform returned are
//!   marked with the hash that was sent, in one durable commit. A run killed at any moment
//!   resends at most its in-flight batches, which are upserts: nothing is lost, nothing doubles.
//! - **Failures**: the client retries transient errors (429 with `Retry-After`, 5xx, timeouts)
//!   under one shared rate budget; contacts the platform refuses permanently go to
//!   `sync_rejects.ndjson` with its code and message and stay pending; a batch whose retries
//!   ran out stays pending for the next run (exit status 3).
//! - **Unreachable platform**: when no request has had an answer for the give-up time
//!   (`--give-up-after`), the client stops sending; the run
//!   starts no other batch, lets those in flight settle, keeps what was accepted, writes its
//!   report with `platform_unreachable` and the CLI exits 3.

pub mod args;
mod report;

pub use report::Report;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use dedupd_platform::ErrorKind;
use dedupd_platform::contact_list::{
    ContactListSink, ListLayout, ListRow, ListTarget, payload_hash,
};
use dedupd_store::{ContactState, EmbeddedStore};
use futures_util::StreamExt;
use serde::Serialize;

use crate::shared::feeds::Config;
use crate::shared::fs::AtomicFile;
use crate::shared::platform::{ListJob, Platform};

/// Which contact list to write to.
#[derive(Debug, Clone)]
pub enum Target {
    /// An existing list, by id.
    List(String),
    /// Create a list with this name (with the configured columns) and use it.
    Create(String),
}

/// Options of one sync run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The ingest config (its `[output] csv_columns` are the list's data columns).
    pub config: Config,
    /// State directory (the one `ingest` wrote).
    pub state_dir: PathBuf,
    /// Where `sync_report.json`, `sync_rejects.ndjson` and (dry run) `sync_plan.ndjson` go.
    pub out_dir: PathBuf,
    /// The contact list.
    pub target: Target,
    /// The platform (endpoint, credentials, budget, retries).
    pub platform: Platform,
    /// Contacts per add-contacts request (1–1,000).
    pub batch_size: usize,
    /// Requests in flight at once (they share one rate budget).
    pub concurrency: usize,
    /// Show what would be sent; send nothing.
    pub dry_run: bool,
    /// Progress bar on a terminal.
    pub progress: bool,
}

#[derive(Serialize)]
struct RejectLine<'a> {
    external_id: &'a str,
    status: Option<u16>,
    code: Option<&'a str>,
    message: Option<&'a str>,
}

/// Contacts whose row differs from what `list_id` last accepted, in externalId order, with
/// the payload hash each one is sent with.
/// A list row not on the list as it is now, with its payload hash.
type Pending = (ListRow, [u8; 16]);

fn pending_set(
    store: &EmbeddedStore,
    list_id: &str,
    layout: &ListLayout,
) -> anyhow::Result<Vec<Pending>> {
    Ok(scan(store, list_id, layout)?.0)
}

/// The contacts the list does not hold as they are now, and how many contacts the state holds.
fn scan(
    store: &EmbeddedStore,
    list_id: &str,
    layout: &ListLayout,
) -> anyhow::Result<(Vec<Pending>, u64)> {
    let mut pending = Vec::new();
    let mut known = 0u64;
    store.for_each_with_synced(list_id, &mut |c, synced| {
        known += 1;
        let row = ListRow::for_contact(&c.contact, layout);
        let hash = payload_hash(&row);
        if synced != Some(hash) {
            pending.push((row, hash));
        }
        Ok(())
    })?;
    Ok((pending, known))
}

fn target(t: &Target) -> ListTarget {
    match t {
        Target::List(id) => ListTarget::Existing(id.clone()),
        Target::Create(name) => ListTarget::Create(name.clone()),
    }
}

/// Runs a sync on the platform `opts.platform` configures.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    opts.platform.run_list(opts.dry_run, Sync(opts)).await
}

/// `sync` as a job on any platform's contact lists.
struct Sync<'a>(&'a Options);

impl ListJob for Sync<'_> {
    type Output = Report;

    fn check<S: ContactListSink>(&self) -> anyhow::Result<()> {
        check_batch::<S>(self.0.batch_size)
    }

    async fn run<S: ContactListSink>(self, sink: Option<&S>) -> anyhow::Result<Report> {
        match sink {
            Some(sink) => run_on(sink, self.0).await,
            None => plan::<S>(self.0),
        }
    }
}

fn check_batch<S: ContactListSink>(batch_size: usize) -> anyhow::Result<()> {
    let max = S::CAPABILITIES.max_batch;
    if !(1..=max).contains(&batch_size) {
        bail!("--batch-size must be between 1 and {max}");
    }
    Ok(())
}

/// A dry run: writes what would be sent to `sync_plan.ndjson` (as platform `S` would be sent
/// it) and the report; contacts nothing.
pub fn plan<S: ContactListSink>(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    check_batch::<S>(opts.batch_size)?;
    let layout = ListLayout::for_columns(&opts.config.csv_columns);
    let store = EmbeddedStore::open(&opts.state_dir)?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create output directory {}", opts.out_dir.display()))?;
    let list_id = match &opts.target {
        Target::List(id) => id.clone(),
        Target::Create(name) => format!("(new list {name})"),
    };
    let (pending, known) = scan(&store, &list_id, &layout)?;
    let mut plan = AtomicFile::create(&opts.out_dir.join("sync_plan.ndjson"))?;
    for (row, _) in &pending {
        serde_json::to_writer(&mut *plan.writer(), &S::request(&list_id, &layout, row))?;
        plan.writer().write_all(b"\n")?;
    }
    let report = Report {
        contact_list_id: list_id.clone(),
        dry_run: true,
        contacts_in_state: known,
        pending: pending.len() as u64,
        remaining: pending.len() as u64,
        do_not_call: pending.iter().filter(|(r, _)| r.is_do_not_call()).count() as u64,
        batches: (pending.len() as u64).div_ceil(opts.batch_size as u64),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        ..Report::default()
    };
    plan.commit()?;
    crate::shared::fs::write_json(&opts.out_dir.join("sync_report.json"), &report)?;
    Ok(report)
}

/// Runs a sync into `sink`'s contact list (`opts.platform` and `opts.dry_run` are not used).
pub async fn run_on<S: ContactListSink>(sink: &S, opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    check_batch::<S>(opts.batch_size)?;
    let layout = ListLayout::for_columns(&opts.config.csv_columns);
    let store = EmbeddedStore::open(&opts.state_dir)?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create output directory {}", opts.out_dir.display()))?;

    let resolved = sink.resolve(&target(&opts.target), &layout).await?;
    let list_id = resolved.id;
    if let Target::Create(name) = &opts.target {
        crate::shared::output::summary(if resolved.created {
            format!(
                "Created contact list {name:?} with id {list_id}; use --contact-list {list_id} from now on."
            )
        } else {
            format!(
                "Contact list {name:?} already exists (id {list_id}): writing to it, not creating another."
            )
        });
    }

    let (pending, known) = scan(&store, &list_id, &layout)?;
    let mut report = Report {
        contact_list_id: list_id.clone(),
        contacts_in_state: known,
        pending: pending.len() as u64,
        do_not_call: pending.iter().filter(|(r, _)| r.is_do_not_call()).count() as u64,
        ..Report::default()
    };

    let bar = crate::shared::progress::bar(report.pending, opts.progress, "contacts", "sync");

    let mut rejects = AtomicFile::create(&opts.out_dir.join("sync_rejects.ndjson"))?;
    let mut batches: Vec<Vec<(ListRow, [u8; 16])>> = Vec::new();
    let mut rest = pending.into_iter();
    loop {
        let batch: Vec<_> = rest.by_ref().take(opts.batch_size).collect();
        if batch.is_empty() {
            break;
        }
        batches.push(batch);
    }
    // Once the session gives up on the platform, no other batch starts.
    let batches = batches.into_iter().take_while(|_| sink.gave_up().is_none());
    let (list, layout) = (&list_id, &layout);
    let mut results = futures_util::stream::iter(batches.map(|batch| async move {
        let hashes: HashMap<String, [u8; 16]> =
            batch.iter().map(|(r, h)| (r.key.clone(), *h)).collect();
        let rows: Vec<ListRow> = batch.into_iter().map(|(r, _)| r).collect();
        let res = sink.upsert(list, layout, rows).await;
        (hashes, res)
    }))
    .buffer_unordered(opts.concurrency.max(1));

    let mut fatal: Option<anyhow::Error> = None;
    let send_started = Instant::now();
    while let Some((hashes, res)) = results.next().await {
        report.batches += 1;
        report.sent += hashes.len() as u64;
        match res {
            Ok(r) => {
                let returned: HashSet<&str> = r.accepted.iter().map(String::as_str).collect();
                let marks: Vec<(String, [u8; 16])> = hashes
                    .iter()
                    .filter(|(id, _)| returned.contains(id.as_str()))
                    .map(|(id, h)| (id.clone(), *h))
                    .collect();
                store.mark_synced(&list_id, &marks)?;
                report.accepted += marks.len() as u64;
                for rej in &r.refused {
                    report.rejected += 1;
                    let line = RejectLine {
                        external_id: &rej.key,
                        status: rej.status,
                        code: rej.code.as_deref(),
                        message: rej.message.as_deref(),
                    };
                    serde_json::to_writer(&mut *rejects.writer(), &line)?;
                    rejects.writer().write_all(b"\n")?;
                }
                report.remaining += r.unconfirmed.len() as u64;
                bar.inc(hashes.len() as u64);
            }
            Err(e) if e.kind == ErrorKind::Unreachable => {
                // The session gave up on the platform; no other batch starts.
                report.failed_batches += 1;
                report.remaining += hashes.len() as u64;
                tracing::info!(
                    contacts = hashes.len(),
                    "A batch was cut short by the unreachable platform; its contacts stay pending."
                );
                bar.inc(hashes.len() as u64);
            }
            Err(e) if matches!(e.kind, ErrorKind::Transient | ErrorKind::OutcomeUnknown) => {
                // Pending rows are sent again by the next run: an upsert by key
                // (`ListCapabilities::idempotent_upsert`) makes that harmless.
                report.failed_batches += 1;
                report.remaining += hashes.len() as u64;
                tracing::warn!(
                    contacts = hashes.len(),
                    status = e.status,
                    "A batch failed after its retries; its contacts stay pending for the next run."
                );
                bar.inc(hashes.len() as u64);
            }
            Err(e) => {
                // Auth, permissions, a missing list and the like concern every batch: stop.
                fatal.get_or_insert(anyhow::Error::new(e).context("the platform refused the sync"));
                report.remaining += hashes.len() as u64;
                break;
            }
        }
    }
    drop(results);
    report.send_seconds = send_started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    rejects.commit()?;
    let gave_up = sink.gave_up();
    if let Some(u) = &gave_up {
        report.platform_unreachable = Some(u.clone());
    }
    if fatal.is_some() || gave_up.is_some() {
        // Batches never started are still pending too.
        let left = pending_set(&store, &list_id, layout)?.len() as u64;
        report.remaining = left.saturating_sub(report.rejected);
    }

    report.calls = sink.usage();
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    crate::shared::fs::write_json(&opts.out_dir.join("sync_report.json"), &report)?;
    if let Some(e) = fatal {
        return Err(e);
    }
    Ok(report)
}
