//! `POST /v1/contacts/resolve`: "who is this?" for one contact, against the resolution index
//! (`--resolve-index DIR`, built by `merge plan --resolve-index DIR`).
//!
//! The index is loaded into one in-memory [`Resolver`] (the batch engine's own functions, on
//! the blocks the contact touches), behind a read-write lock: asking (`?dry_run=true`) and the
//! gateway's lookups read at once; recording writes, held only while one contact is resolved.
//! A recorded contact is appended to the index by one writer thread that commits the contacts
//! waiting at that moment together (group commit: one write transaction and one fsync for
//! all of them, while the next group gathers); the answer goes out once its commit is durable.
//! Contacts are queued in the order the resolver recorded them, under its lock, so the index
//! appends them in that order. `?dry_run=true` answers without recording.
//!
//! On a PostgreSQL index shared by several `serve` processes, each process also follows the
//! others: a task listens for their appends (`LISTEN`, with a periodic read as a fallback) and
//! replays them into its resolver at once, so the gateway's sender lookup here knows a contact
//! recorded through another process from that moment, not from this process's next recording.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dedupd_core::matching::incremental::{Resolution, Status};
use dedupd_core::matching::{Column, Record, Resolver};
use dedupd_http::{ApiError, ErrorEnvelope, parse_json};
use dedupd_store::StoreError;
use dedupd_store::resolution::{EmbeddedIndex, Entry, PgIndex, ResolutionIndex};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Most bytes of one request body.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most contacts committed together.
const GROUP: usize = 512;
/// How often a process sharing a PostgreSQL index reads what the others recorded when no
/// notification woke it (the notification connection lost, or a notification missed).
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// The gauge of the records the resolver knows.
const RECORDS: &str = "dedupd_resolve_index_records";
/// The histogram of the embedded index's group commits: seconds each.
const COMMIT_SECONDS: &str = "dedupd_resolve_commit_seconds";
/// The histogram of the embedded index's group commits: contacts in each.
const COMMIT_CONTACTS: &str = "dedupd_resolve_commit_contacts";

type Pending = (Entry, oneshot::Sender<Result<(), Arc<StoreError>>>);

/// The resolve API's state: the resolver and the writer's queue.
#[derive(Clone)]
pub struct ResolveApi {
    resolver: Arc<RwLock<Resolver>>,
    backend: Backend,
}

/// Where recorded contacts go.
#[derive(Clone)]
enum Backend {
    /// The embedded index: this process alone; one writer task commits groups.
    Embedded(mpsc::UnboundedSender<Pending>),
    /// A PostgreSQL index shared with other `serve` processes: each recording locks the
    /// contact's keys, catches up with what the others recorded, resolves, appends, commits.
    Postgres {
        index: PgIndex,
        /// The last sequence number replayed into the resolver.
        seen: Arc<AtomicI64>,
    },
}

impl ResolveApi {
    /// The resolver, shared: the gateway's [`dedupd_gateway::ResolutionLookup`] reads the
    /// customers it records.
    pub fn resolver(&self) -> Arc<RwLock<Resolver>> {
        Arc::clone(&self.resolver)
    }
}

/// Opens the index in `dir`, loads it into a resolver and starts the writer.
pub async fn open(dir: &Path) -> anyhow::Result<ResolveApi> {
    let index = EmbeddedIndex::open(dir)
        .with_context(|| format!("opening the resolution index in {}", dir.display()))?;
    let snapshot = index.load().await?.with_context(|| {
        format!(
            "the resolution index in {} was never built: run `dedupd merge plan --resolve-index {}` first",
            dir.display(),
            dir.display()
        )
    })?;
    let resolver = tokio::task::spawn_blocking(move || {
        let known = snapshot
            .entries
            .into_iter()
            .map(|e| (e.record, e.customer))
            .collect();
        Resolver::restore(snapshot.settings.config, snapshot.settings.model, known)
    })
    .await?;
    tracing::info!(records = resolver.len(), "Loaded the resolution index.");
    describe(&resolver);
    let (writer, queue) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("resolve-writer".into())
        .spawn(move || write_loop(&index, queue))
        .context("starting the resolution index writer")?;
    Ok(ResolveApi {
        resolver: Arc::new(RwLock::new(resolver)),
        backend: Backend::Embedded(writer),
    })
}

/// Connects to the index in PostgreSQL (pinned to `schema` when given), shared with other
/// `serve` processes, and loads it into a resolver.
pub async fn open_postgres(url: &str, schema: Option<&str>) -> anyhow::Result<ResolveApi> {
    let index = PgIndex::connect(url, schema).await?;
    let snapshot = index.load().await?.context(
        "the resolution index in PostgreSQL was never built: run `dedupd merge plan --resolve-postgres` first",
    )?;
    let last = i64::try_from(snapshot.entries.len()).unwrap_or(i64::MAX) - 1;
    let resolver = tokio::task::spawn_blocking(move || {
        let known = snapshot
            .entries
            .into_iter()
            .map(|e| (e.record, e.customer))
            .collect();
        Resolver::restore(snapshot.settings.config, snapshot.settings.model, known)
    })
    .await?;
    tracing::info!(
        records = resolver.len(),
        "Loaded the shared resolution index from PostgreSQL."
    );
    describe(&resolver);
    let resolver = Arc::new(RwLock::new(resolver));
    let seen = Arc::new(AtomicI64::new(last));
    tokio::spawn(follow(
        Arc::clone(&resolver),
        index.clone(),
        Arc::clone(&seen),
    ));
    Ok(ResolveApi {
        resolver,
        backend: Backend::Postgres { index, seen },
    })
}

/// Describes the resolver's gauge and sets it.
fn describe(resolver: &Resolver) {
    metrics::describe_gauge!(
        RECORDS,
        "Records the resolution index holds, as this process knows them (loaded, recorded, or replayed from other processes sharing the index)."
    );
    metrics::gauge!(RECORDS).set(resolver.len() as f64);
    metrics::describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Durable commits of recorded contacts to the embedded resolution index: how long each took."
    );
    metrics::describe_histogram!(
        COMMIT_CONTACTS,
        "Durable commits of recorded contacts to the embedded resolution index: contacts in each (the group waiting when it began)."
    );
}

/// Replays what other processes recorded after `seen` into the resolver. Called with the
/// resolver locked: an entry an earlier catch-up already replayed (two read the same news
/// concurrently) is skipped, so every entry is replayed once and in order.
fn catch_up(resolver: &mut Resolver, news: Vec<(i64, Entry)>, seen: &AtomicI64) {
    for (seq, e) in news {
        if seq <= seen.load(Ordering::SeqCst) {
            continue;
        }
        resolver.replay(e.record, &e.customer, &e.absorbed);
        seen.store(seq, Ordering::SeqCst);
    }
    metrics::gauge!(RECORDS).set(resolver.len() as f64);
}

/// Follows the other processes sharing a PostgreSQL index for the life of the server: on each
/// of their appends (or every [`FOLLOW_EVERY`] when no notification comes), replays what they
/// recorded. A failure is logged and retried at the next wake; it never stops the server,
/// whose recordings catch up on their own.
async fn follow(resolver: Arc<RwLock<Resolver>>, index: PgIndex, seen: Arc<AtomicI64>) {
    let mut appends = None;
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if appends.is_none() {
            appends = match index.listen().await {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot listen for the other processes' recordings; reading every few seconds instead.");
                    None
                }
            };
        }
        tokio::select! {
            heard = async {
                match appends.as_mut() {
                    Some(a) => a.next().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = heard {
                    tracing::warn!(error = %e, "Lost the notifications of the other processes' recordings.");
                    appends = None;
                }
            }
            _ = tick.tick() => {}
        }
        match index.since(seen.load(Ordering::SeqCst)).await {
            Ok(news) if news.is_empty() => {}
            Ok(news) => match resolver.write() {
                Ok(mut r) => catch_up(&mut r, news, &seen),
                // A panic elsewhere poisoned the resolver: nothing more to follow.
                Err(_) => return,
            },
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the other processes' recordings; retrying.");
            }
        }
    }
}

/// Resolves (and unless `dry_run` records) `record` in the shared PostgreSQL index.
async fn resolve_shared(
    api: &ResolveApi,
    index: &PgIndex,
    seen: &AtomicI64,
    record: Record,
    dry_run: bool,
) -> Result<Resolution, StoreError> {
    let keys = if dry_run {
        Vec::new()
    } else {
        Resolver::lock_keys(&record)
    };
    let mut recording = index.begin(&keys).await?;
    let news = recording.since(seen.load(Ordering::SeqCst)).await?;
    let resolution = {
        let mut resolver = api.resolver.write().map_err(|_| StoreError::WriterGone)?;
        catch_up(&mut resolver, news, seen);
        if dry_run {
            resolver.resolve(&record)
        } else {
            let resolution = resolver.record(record.clone());
            metrics::gauge!(RECORDS).set(resolver.len() as f64);
            resolution
        }
    };
    if !dry_run && resolution.status != Status::Known {
        let entry = Entry {
            record,
            customer: resolution.customer.clone(),
            absorbed: resolution.absorbed.clone(),
        };
        recording.append(std::slice::from_ref(&entry)).await?;
    }
    recording.commit().await?;
    Ok(resolution)
}

/// Commits what is waiting, a group at a time, and answers each waiting request; ends when
/// every sender is gone (the server stopped).
fn write_loop(index: &EmbeddedIndex, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match queue.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let (entries, replies): (Vec<Entry>, Vec<_>) = group.into_iter().unzip();
        let n = entries.len();
        let started = std::time::Instant::now();
        let result = index.append_blocking(&entries).map_err(Arc::new);
        metrics::histogram!(COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(COMMIT_CONTACTS).record(n as f64);
        if let Err(e) = &result {
            tracing::error!(error = %e, contacts = n, "Could not record resolved contacts in the index.");
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

/// The route with its OpenAPI path and body limit.
pub fn routes(api: ResolveApi) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(resolve))
        .layer(dedupd_http::BodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(api)
}

/// The contact to resolve: any of its fields (at least a name, an e-mail or a phone).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// The caller's id of this record (a CRM id); without one, the id is derived from the
    /// values, so the same submission twice is the same record.
    #[serde(default)]
    pub record_id: Option<String>,
    /// Where it came from (`web`, `crm`, …).
    #[serde(default)]
    pub source: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number, any format (national numbers in the country's format).
    #[serde(default)]
    pub phone: Option<String>,
    /// Street line.
    #[serde(default)]
    pub street: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State, county or province.
    #[serde(default)]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postcode: Option<String>,
    /// ISO 3166-1 alpha-2 country (the default region of a national phone number).
    #[serde(default)]
    pub country: Option<String>,
}

/// `?dry_run=true`: answer without recording.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ResolveQuery {
    /// Answer without recording the contact.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer: the customer, how sure, and why.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    record_id: &'a str,
    dry_run: bool,
    #[serde(flatten)]
    resolution: &'a Resolution,
}

/// The record of a request body, or the field that cannot be one and why.
fn record_of(body: &ContactBody) -> Result<Record, ApiError> {
    fn get(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }
    let mut raw: [&str; 11] = [
        get(&body.record_id),
        get(&body.source),
        get(&body.first_name),
        get(&body.last_name),
        get(&body.email),
        get(&body.phone),
        get(&body.street),
        get(&body.city),
        get(&body.region),
        get(&body.postcode),
        get(&body.country),
    ];
    if raw[2..].iter().all(|v| v.trim().is_empty()) {
        return Err(ApiError::invalid_field(
            "body",
            "give at least one of first_name, last_name, email, phone, street, postcode",
        ));
    }
    let derived;
    if raw[0].trim().is_empty() {
        derived = derived_id(&raw[2..]);
        raw[0] = &derived;
    } else if raw[0].chars().count() > 256 {
        return Err(ApiError::invalid_field(
            "record_id",
            "longer than 256 characters",
        ));
    }
    let (record, dropped) = Record::from_raw(raw, None);
    if let Some(d) = dropped.first() {
        return Err(ApiError::invalid_field(d.column.name(), d.reason));
    }
    let identifies = [
        Column::FirstName,
        Column::LastName,
        Column::Email,
        Column::Phone,
    ];
    if identifies.iter().all(|&c| record.get(c).is_none()) && record.get(Column::Street).is_none() {
        return Err(ApiError::invalid_field(
            "body",
            "nothing that identifies a person: give a name, an e-mail, a phone or a street",
        ));
    }
    Ok(record)
}

/// An id for a record sent without one: `res_` and 16 hex digits of SHA-256 over its values.
fn derived_id(values: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"dedupd.resolve.v1");
    for v in values {
        h.update([0x1f]);
        h.update(v.trim().as_bytes());
    }
    let d = h.finalize();
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("res_{hex}")
}

/// Resolve a contact to a known customer, or to a new one.
///
/// The contact goes through the same normalizers, blocking, comparison, learned weights and
/// chain guard as `merge plan`. The answer names the customer it joins (or its new customer
/// id) with the confidence and the per-field evidence of the best match; unless `dry_run`,
/// the contact is recorded, so the next contact of the same person finds it.
#[utoipa::path(
    post,
    path = "/v1/contacts/resolve",
    tag = "resolve",
    params(ResolveQuery),
    request_body(content = ContactBody, content_type = "application/json", description = "The contact"),
    responses(
        (status = 200, description = "The customer: `status` joined, new or known; `customer`, `confidence`, `matched_record`, `evidence`, `absorbed`"),
        (status = 400, description = "Not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid bearer token / signature", body = ErrorEnvelope),
        (status = 413, description = "Body over the size cap", body = ErrorEnvelope),
        (status = 422, description = "A field is invalid (named in `field`)", body = ErrorEnvelope),
        (status = 503, description = "The index could not record the contact; try again", body = ErrorEnvelope),
    )
)]
async fn resolve(
    State(api): State<ResolveApi>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let query = query_of(&uri)?;
    let body = body.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than the limit",
        )
    })?;
    let contact: ContactBody = parse_json(&body)?;
    let record = record_of(&contact)?;
    let id = record.id().to_owned();
    let resolution = match &api.backend {
        Backend::Postgres { index, seen } => {
            resolve_shared(&api, index, seen, record, query.dry_run)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "The shared resolution index failed.");
                    ApiError::unavailable("the resolution index is unavailable; try again", 1)
                })?
        }
        Backend::Embedded(writer) => {
            let (resolution, committed) = if query.dry_run {
                // Asking only reads: any number at once, beside the gateway's lookups.
                let resolver = api.resolver.read().map_err(|_| ApiError::internal())?;
                (resolver.resolve(&record), None)
            } else {
                let mut resolver = api.resolver.write().map_err(|_| ApiError::internal())?;
                let resolution = resolver.record(record.clone());
                metrics::gauge!(RECORDS).set(resolver.len() as f64);
                if resolution.status == Status::Known {
                    (resolution, None)
                } else {
                    // Sent while the lock is held: the index appends in the order recorded.
                    let (tx, rx) = oneshot::channel();
                    let entry = Entry {
                        record,
                        customer: resolution.customer.clone(),
                        absorbed: resolution.absorbed.clone(),
                    };
                    writer
                        .send((entry, tx))
                        .map_err(|_| ApiError::unavailable("the index writer stopped", 1))?;
                    (resolution, Some(rx))
                }
            };
            if let Some(rx) = committed
                && !matches!(rx.await, Ok(Ok(())))
            {
                return Err(ApiError::unavailable(
                    "the contact could not be recorded in the index; try again",
                    1,
                ));
            }
            resolution
        }
    };
    tracing::debug!(
        customer = %resolution.customer,
        status = ?resolution.status,
        compared = resolution.compared,
        "Resolved a contact."
    );
    let answer = Answer {
        record_id: &id,
        dry_run: query.dry_run,
        resolution: &resolution,
    };
    let json = serde_json::to_vec(&answer).map_err(|_| ApiError::internal())?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The query string's options: `dry_run` (`true`, `false`, `1`, `0`); other parameters are
/// ignored.
fn query_of(uri: &Uri) -> Result<ResolveQuery, ApiError> {
    let mut q = ResolveQuery::default();
    for pair in uri.query().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if k == "dry_run" {
            q.dry_run = match v {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::invalid_field("dry_run", "must be true or false"));
                }
            };
        }
    }
    Ok(q)
}
