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
//!   ([`ClientConfig::give_up_after`], `--give-up-after`), the client stops sending; the run
//!   starts no other batch, lets those in flight settle, keeps what was accepted, writes its
//!   report with `platform_unreachable` and the CLI exits 3.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use dedupd_genesys::{
    AddContactsOptions, ClientConfig, ContactList, ContactableStatus, EmailColumn, GenesysClient,
    PhoneColumn, PhoneNumberStatus, WritableDialerContact,
};
use dedupd_store::{ContactState, EmbeddedStore, StoredContact};
use futures_util::StreamExt;
use serde::Serialize;

use crate::shared::feeds::Config;
use crate::shared::fs::AtomicFile;

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
    /// API client settings (endpoint, credentials, budget, retries).
    pub client: ClientConfig,
    /// Contacts per add-contacts request (1–1,000).
    pub batch_size: usize,
    /// Requests in flight at once (they share one rate budget).
    pub concurrency: usize,
    /// Show what would be sent; send nothing.
    pub dry_run: bool,
    /// Progress bar on a terminal.
    pub progress: bool,
}

/// What a sync run did (`sync_report.json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// The contact list written to.
    pub contact_list_id: String,
    /// Nothing was sent.
    pub dry_run: bool,
    /// Contacts pending at the start (new or changed since the list last accepted them).
    pub pending: u64,
    /// Contacts included in add-contacts batches.
    pub sent: u64,
    /// Contacts the platform accepted (now marked as synced).
    pub accepted: u64,
    /// Contacts refused permanently (see `sync_rejects.ndjson`).
    pub rejected: u64,
    /// Contacts still pending at the end (unconfirmed, or their batch failed transiently).
    pub remaining: u64,
    /// Contacts sent with `callable: false` (do-not-call soft deletes).
    pub do_not_call: u64,
    /// Batches sent; batches that failed after retries.
    pub batches: u64,
    /// Batches that failed after their retries ran out.
    pub failed_batches: u64,
    /// HTTP requests to the Platform API, retries included.
    pub api_calls: u64,
    /// Retried attempts.
    pub retries: u64,
    /// 429 responses seen.
    pub rate_limited: u64,
    /// 5xx responses seen.
    pub server_errors: u64,
    /// Calls whose outcome stayed unknown (504 / timeout after sending).
    pub outcome_unknown: u64,
    /// OAuth token requests.
    pub token_requests: u64,
    /// Time spent waiting for the rate budget, summed over requests, seconds.
    pub budget_wait_seconds: f64,
    /// From the first add-contacts request to the last answer, seconds.
    pub send_seconds: f64,
    /// Wall time, seconds.
    pub elapsed_seconds: f64,
    /// Set when the run gave up on the platform: no request had an answer for the give-up time.
    /// Says where and for how long (no credentials, no contact data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_unreachable: Option<String>,
}

#[derive(Serialize)]
struct RejectLine<'a> {
    external_id: &'a str,
    status: Option<u16>,
    code: Option<&'a str>,
    message: Option<&'a str>,
}

/// The hash of what the platform would hold for a contact: its columns and statuses.
pub fn payload_hash(c: &WritableDialerContact) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    // serde_json writes struct fields in declaration order and BTreeMaps sorted: canonical.
    let bytes = serde_json::to_vec(c).unwrap_or_default();
    let d = Sha256::digest(&bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The add-contacts body of one contact: `id` = externalId; do-not-call is a soft delete.
pub fn to_dialer_contact(
    c: &StoredContact,
    list_id: &str,
    columns: &[String],
) -> WritableDialerContact {
    let callable = !c.contact.do_not_call();
    let media = ["Voice", "SMS", "Email"]
        .into_iter()
        .map(|m| {
            (
                m.to_owned(),
                ContactableStatus {
                    contactable: Some(callable),
                    column_status: None,
                },
            )
        })
        .collect();
    let phone_status = columns.iter().any(|c| c == "phone_e164").then(|| {
        BTreeMap::from([(
            "phone_e164".to_owned(),
            PhoneNumberStatus {
                callable: Some(callable),
            },
        )])
    });
    WritableDialerContact {
        id: Some(c.contact.external_id.clone()),
        contact_list_id: list_id.to_owned(),
        data: columns
            .iter()
            .map(|col| (col.clone(), c.contact.column(col)))
            .collect(),
        callable: Some(callable),
        phone_number_status: phone_status,
        contactable_status: Some(media),
    }
}

/// Contacts whose payload differs from what `list_id` last accepted, in externalId order, with
/// the payload hash each one is sent with.
fn pending_set(
    store: &EmbeddedStore,
    list_id: &str,
    columns: &[String],
) -> anyhow::Result<Vec<(WritableDialerContact, [u8; 16])>> {
    let mut pending = Vec::new();
    store.for_each_with_synced(list_id, &mut |c, synced| {
        let body = to_dialer_contact(&c, list_id, columns);
        let hash = payload_hash(&body);
        if synced != Some(hash) {
            pending.push((body, hash));
        }
        Ok(())
    })?;
    Ok(pending)
}

fn is_do_not_call(c: &WritableDialerContact) -> bool {
    c.callable == Some(false)
}

fn list_for(name: &str, columns: &[String]) -> ContactList {
    let mut list = ContactList::new(name, columns.to_vec());
    if columns.iter().any(|c| c == "phone_e164") {
        list.phone_columns = vec![PhoneColumn {
            column_name: "phone_e164".into(),
            kind: "cell".into(),
            callable_time_column: None,
        }];
    }
    if columns.iter().any(|c| c == "email") {
        list.email_columns = vec![EmailColumn {
            column_name: "email".into(),
            kind: "personal".into(),
            contactable_time_column: None,
        }];
    }
    list
}

/// Runs a sync.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    if !(1..=dedupd_genesys::MAX_CONTACTS_PER_ADD).contains(&opts.batch_size) {
        bail!(
            "--batch-size must be between 1 and {}",
            dedupd_genesys::MAX_CONTACTS_PER_ADD
        );
    }
    let columns = &opts.config.csv_columns;
    let store = EmbeddedStore::open(&opts.state_dir)?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create output directory {}", opts.out_dir.display()))?;

    if opts.dry_run {
        let list_id = match &opts.target {
            Target::List(id) => id.clone(),
            Target::Create(name) => format!("(new list {name})"),
        };
        let pending = pending_set(&store, &list_id, columns)?;
        let mut plan = AtomicFile::create(&opts.out_dir.join("sync_plan.ndjson"))?;
        for (body, _) in &pending {
            serde_json::to_writer(&mut *plan.writer(), body)?;
            plan.writer().write_all(b"\n")?;
        }
        let report = Report {
            contact_list_id: list_id.clone(),
            dry_run: true,
            pending: pending.len() as u64,
            remaining: pending.len() as u64,
            do_not_call: pending.iter().filter(|(c, _)| is_do_not_call(c)).count() as u64,
            batches: (pending.len() as u64).div_ceil(opts.batch_size as u64),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            ..Report::default()
        };
        plan.commit()?;
        crate::shared::fs::write_json(&opts.out_dir.join("sync_report.json"), &report)?;
        return Ok(report);
    }

    let client = GenesysClient::new(opts.client.clone())
        .await
        .context("cannot set up the Genesys Cloud client")?;
    let list_id = match &opts.target {
        Target::List(id) => {
            let list = client
                .outbound()
                .get_contact_list(id)
                .await
                .with_context(|| format!("cannot read contact list {id}"))?;
            let missing: Vec<&str> = columns
                .iter()
                .filter(|c| !list.column_names.contains(c))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                bail!(
                    "contact list {id} lacks the columns {} (it has: {}); add them, or create a list with --create-list",
                    missing.join(", "),
                    list.column_names.join(", ")
                );
            }
            id.clone()
        }
        Target::Create(name) => {
            let created = client
                .outbound()
                .create_contact_list(&list_for(name, columns))
                .await
                .with_context(|| format!("cannot create contact list {name:?}"))?;
            let id = created
                .id
                .context("the platform returned a contact list without an id")?;
            eprintln!(
                "Created contact list {name:?} with id {id}; use --contact-list {id} from now on."
            );
            id
        }
    };

    let pending = pending_set(&store, &list_id, columns)?;
    let mut report = Report {
        contact_list_id: list_id.clone(),
        pending: pending.len() as u64,
        do_not_call: pending.iter().filter(|(c, _)| is_do_not_call(c)).count() as u64,
        ..Report::default()
    };

    let bar = crate::shared::progress::bar(report.pending, opts.progress, "contacts", "sync");

    let mut rejects = AtomicFile::create(&opts.out_dir.join("sync_rejects.ndjson"))?;
    let mut batches: Vec<Vec<(WritableDialerContact, [u8; 16])>> = Vec::new();
    let mut rest = pending.into_iter();
    loop {
        let batch: Vec<_> = rest.by_ref().take(opts.batch_size).collect();
        if batch.is_empty() {
            break;
        }
        batches.push(batch);
    }
    let add_options = AddContactsOptions {
        do_not_queue: Some(true),
        ..AddContactsOptions::default()
    };
    // Once the client gives up on the platform, no other batch starts.
    let reachable = client.clone();
    let batches = batches
        .into_iter()
        .take_while(move |_| reachable.unreachable().is_none());
    let mut results = futures_util::stream::iter(batches.map(|batch| {
        let client = client.clone();
        let list_id = list_id.clone();
        async move {
            let hashes: HashMap<String, [u8; 16]> = batch
                .iter()
                .map(|(c, h)| (c.id.clone().unwrap_or_default(), *h))
                .collect();
            let contacts: Vec<WritableDialerContact> = batch.into_iter().map(|(c, _)| c).collect();
            let res = client
                .outbound()
                .add_contacts_isolating(&list_id, contacts, add_options)
                .await;
            (hashes, res)
        }
    }))
    .buffer_unordered(opts.concurrency.max(1));

    let mut fatal: Option<anyhow::Error> = None;
    let send_started = Instant::now();
    while let Some((hashes, res)) = results.next().await {
        report.batches += 1;
        report.sent += hashes.len() as u64;
        match res {
            Ok(r) => {
                let returned: HashSet<&str> =
                    r.accepted.iter().filter_map(|c| c.id.as_deref()).collect();
                let marks: Vec<(String, [u8; 16])> = hashes
                    .iter()
                    .filter(|(id, _)| returned.contains(id.as_str()))
                    .map(|(id, h)| (id.clone(), *h))
                    .collect();
                store.mark_synced(&list_id, &marks)?;
                report.accepted += marks.len() as u64;
                for rej in &r.rejected {
                    report.rejected += 1;
                    let line = RejectLine {
                        external_id: rej.contact.id.as_deref().unwrap_or_default(),
                        status: rej.error.status,
                        code: rej.error.code.as_deref(),
                        message: rej.error.message.as_deref(),
                    };
                    serde_json::to_writer(&mut *rejects.writer(), &line)?;
                    rejects.writer().write_all(b"\n")?;
                }
                report.remaining += r.unconfirmed.len() as u64;
                bar.inc(hashes.len() as u64);
            }
            Err(e) if e.is_unreachable() => {
                // The client gave up on the platform; no other batch starts.
                report.failed_batches += 1;
                report.remaining += hashes.len() as u64;
                tracing::info!(
                    contacts = hashes.len(),
                    "A batch was cut short by the unreachable platform; its contacts stay pending."
                );
                bar.inc(hashes.len() as u64);
            }
            Err(e) if e.is_transient() || e.is_outcome_unknown() => {
                report.failed_batches += 1;
                report.remaining += hashes.len() as u64;
                tracing::warn!(
                    contacts = hashes.len(),
                    status = e.status().map(|s| s.as_u16()),
                    "A batch failed after its retries; its contacts stay pending for the next run."
                );
                bar.inc(hashes.len() as u64);
            }
            Err(e) => {
                // 401/403/404 and the like concern every batch: stop sending.
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
    let gave_up = client.unreachable();
    if let Some(u) = &gave_up {
        report.platform_unreachable = Some(u.to_string());
    }
    if fatal.is_some() || gave_up.is_some() {
        // Batches never started are still pending too.
        let left = pending_set(&store, &list_id, columns)?.len() as u64;
        report.remaining = left.saturating_sub(report.rejected);
    }

    let s = client.stats();
    report.api_calls = s.api_calls;
    report.retries = s.retries;
    report.rate_limited = s.rate_limited;
    report.server_errors = s.server_errors;
    report.outcome_unknown = s.outcome_unknown;
    report.token_requests = s.token_requests;
    report.budget_wait_seconds = s.budget_wait().as_secs_f64();
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    crate::shared::fs::write_json(&opts.out_dir.join("sync_report.json"), &report)?;
    if let Some(e) = fatal {
        return Err(e);
    }
    Ok(report)
}
