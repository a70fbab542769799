//! `dedupd merge apply --plan DIR`: apply a reviewed merge plan through the real External
//! Contacts merge API (`POST /api/v2/externalcontacts/contacts/merge`), safely.
//!
//! Per cluster, under a lock on each of its contacts (a `flock` per contact in the state
//! directory, plus Redis with `--redis`, so concurrent runs never work on the same contacts):
//!
//! 1. **Journal first.** A cluster settled for good by an earlier run is skipped. A merge sent
//!    by a run that died before its answer (an open `intent`) is settled by reading the sources
//!    back: if they all resolve to one new contact, the merge happened.
//! 2. **Pre-flight.** Every member is fetched (bulk fetch; a merged-away id resolves to its
//!    canonical contact). Missing → quarantined (`not_found`). Merged into a contact outside the
//!    cluster → quarantined (`already_merged_elsewhere`). All members in one merge tree already
//!    → `already_merged`, nothing sent. A cluster whose merge set would pass the platform's 52
//!    → quarantined (`merge_set_limit`).
//! 3. **Merge.** The live heads are merged at most `max_ids_per_merge` (≤ 25) at a time: the
//!    first chunk, then the resulting canonical contact with the next chunk, and so on. Each
//!    request carries the cluster's `valueOverride` ([`value`]) and a deterministic idempotency
//!    key (hash of the sorted ids) written to the journal before it leaves.
//! 4. **Conflicts.** A 409 (the platform's "active associations", e.g. a contact in an open
//!    conversation) splits the group in halves until the offender is alone: it is quarantined
//!    (`active_associations`) and the rest is merged. The platform documents no read of a
//!    contact's associations, so the merge's own 409 is the authoritative pre-flight signal;
//!    the platform names the contact in `entityId`, and the halving relies on it only when it
//!    has split everything down to single contacts with nothing merged yet (those not named are
//!    then tried together). Another 4xx is isolated the same way (`refused`).
//! 5. **Unknown outcomes.** A 504 or a timeout after sending is never answered by resending:
//!    the sources are read back first (`mergedTo` / their canonical contact) and the journal
//!    records what happened.
//!
//! 6. **Unreachable platform.** When no request has had an answer for the give-up time
//!    ([`ClientConfig::give_up_after`], `--give-up-after`), the client stops sending: no other
//!    cluster starts, those in flight end as `remaining` (a merge sent without an answer keeps
//!    its open intent, so the next run reads it back), the report says `platform_unreachable`
//!    and the CLI exits 3.
//!
//! Quarantined contacts are written to `quarantine.ndjson` with their reason, and are looked at
//! again by the next run (an association may have ended): a later run merges them into the
//! cluster's canonical contact. Every run writes `apply_report.json` and `apply_clusters.ndjson`
//! (one outcome per cluster of the plan) to `--out`.

pub mod args;
mod report;

pub use report::Report;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use dedupd_genesys::{ClientConfig, GenesysClient};
use dedupd_platform::directory::{CustomerDirectory, DirectoryCapabilities, Resolved};
use dedupd_platform::{ErrorKind, PlatformError};
use futures_util::StreamExt;
use serde::Serialize;

pub use dedupd_core::keys::ids_key;
use dedupd_store::StoreError;
use dedupd_store::locks::{ContactLocks, FileLocks, FileLocksHeld, RedisLocks, RedisLocksHeld};
use dedupd_store::merge_journal::{Event, FileJournal, MergeJournal, RunMark, SettledOutcome};

use crate::shared::fs::{AtomicFile, write_json};
use crate::shared::plan_file::{Cluster, Plan, PlanFile};

/// Fewest records any merge takes.
const MIN_MERGE_IDS: usize = 2;

/// Options of one `merge apply` run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plan directory (holding `plan.json`).
    pub plan_dir: PathBuf,
    /// State directory: the journal and the lock files (`STATE/merge/…`).
    pub state_dir: PathBuf,
    /// Where `apply_report.json`, `apply_clusters.ndjson`, `quarantine.ndjson` and (dry run)
    /// `apply_dry_run.ndjson` go.
    pub out_dir: PathBuf,
    /// API client settings (endpoint, credentials, rate budget incl. Redis, retries).
    pub client: ClientConfig,
    /// Contact ids per merge request (2–25).
    pub max_ids_per_merge: usize,
    /// Clusters worked on at once (their requests share the rate budget).
    pub concurrency: usize,
    /// Write what would be sent; send nothing, contact nothing.
    pub dry_run: bool,
    /// Progress bar on a terminal.
    pub progress: bool,
    /// How long to wait for contacts locked by another run before leaving the cluster for the
    /// next run.
    pub lock_wait: Duration,
    /// Redis locks (with `--redis`): how long a lock outlives a holder that stopped renewing it.
    pub redis_lock_lease: Duration,
}

impl Options {
    /// Options with the defaults: 25 ids per merge, 4 clusters at once, 120 s lock wait,
    /// 120 s Redis lease.
    pub fn new(
        plan_dir: PathBuf,
        state_dir: PathBuf,
        out_dir: PathBuf,
        client: ClientConfig,
    ) -> Options {
        Options {
            plan_dir,
            state_dir,
            out_dir,
            client,
            max_ids_per_merge: dedupd_genesys::MAX_MERGE_IDS,
            concurrency: 4,
            dry_run: false,
            progress: false,
            lock_wait: Duration::from_secs(120),
            redis_lock_lease: Duration::from_secs(120),
        }
    }
}

/// What became of a cluster in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every member is now in one canonical contact, merged by this run (or an earlier,
    /// interrupted one).
    Merged,
    /// Merged, except members quarantined (see `quarantine.ndjson`).
    PartiallyMerged,
    /// Pre-flight found every member already in one merge tree; nothing was sent.
    AlreadyMerged,
    /// Settled for good by an earlier run (journal); not looked at again.
    Skipped,
    /// Nothing could be merged; every member is quarantined.
    Quarantined,
    /// Left for the next run (retries ran out, an outcome stayed unknown, or another run held
    /// the contacts for longer than the lock wait).
    Remaining,
    /// Dry run: what would be sent is in `apply_dry_run.ndjson`.
    Planned,
}

/// Why a contact was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The contact does not exist (404).
    NotFound,
    /// It is already merged into a contact outside the cluster (`mergedTo` / `canonicalContact`).
    AlreadyMergedElsewhere,
    /// The merge was refused with 409: the contact has active associations (e.g. an open
    /// conversation).
    ActiveAssociations,
    /// Merging it would take the merge set past the platform's limit of 52.
    MergeSetLimit,
    /// The merge was refused with another 4xx isolated to this contact.
    Refused,
    /// Every other member was quarantined: nothing is left to merge it with.
    NoPartner,
}

/// One quarantined contact (`quarantine.ndjson`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantine {
    /// The plan's cluster id.
    pub cluster_id: String,
    /// The contact.
    pub record_id: String,
    /// Why.
    pub reason: Reason,
    /// The platform's message or our explanation (no contact data).
    pub detail: String,
    /// When (UTC).
    pub at: DateTime<Utc>,
}

/// One cluster's result (`apply_clusters.ndjson`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterOutcome {
    /// The plan's cluster id.
    pub cluster_id: String,
    /// Our journal key: hash of the sorted member ids.
    pub key: String,
    /// What happened.
    pub outcome: Outcome,
    /// The canonical contact the cluster now is, when merged.
    pub canonical: Option<String>,
    /// Members in the plan.
    pub members: usize,
    /// Merge requests sent for it in this run (conflicts included).
    pub merge_requests: u64,
    /// Members quarantined in this run.
    pub quarantined: Vec<Quarantine>,
    /// Values of the plan that found no slot in the override (they stay on the source records).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unplaced: BTreeMap<String, Vec<String>>,
    /// Why it was left for the next run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A failure that concerns every cluster (auth, permissions, configuration): stop the run.
fn is_fatal(e: &PlatformError) -> bool {
    matches!(e.kind, ErrorKind::Auth | ErrorKind::Config)
}

/// The live head of a contact, as fetched.
#[derive(Debug, Clone, PartialEq)]
enum Head {
    /// `id` is the head itself or its canonical contact; `set` the size of its merge set (1 when
    /// never merged).
    Found {
        id: String,
        set: usize,
    },
    NotFound,
}

/// Read-back of a merge whose outcome is unknown.
enum ReadBack {
    Applied(String, usize),
    NotApplied,
}

/// Shared by the cluster tasks of one run.
struct Ctx<'a, D> {
    opts: &'a Options,
    run: RunMark,
    dir: &'a D,
    journal: FileJournal,
    locks: FileLocks,
    redis: Option<RedisLocks>,
    cap: usize,
}

/// A cluster's work ended early: `Remaining` with a reason, or a fatal error.
enum Stop {
    Remaining(String),
    Fatal(anyhow::Error),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Fatal(anyhow::Error::new(e).context("cannot write the merge journal"))
    }
}

/// The locks this run holds on a cluster's contacts: always the lock files, and with `--redis`
/// the Redis locks too.
struct Held {
    _local: FileLocksHeld,
    redis: Option<RedisLocksHeld>,
}

impl Stop {
    fn api(what: &str, e: PlatformError) -> Stop {
        if is_fatal(&e) {
            Stop::Fatal(anyhow::Error::new(e).context(format!("{what} failed")))
        } else {
            Stop::Remaining(format!("{what}: {e}"))
        }
    }
}

impl<D: CustomerDirectory> Ctx<'_, D> {
    /// Where every id lives now (a merged-away id resolves to its canonical record).
    async fn heads(&self, ids: &[String]) -> Result<HashMap<String, Head>, Stop> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(D::CAPABILITIES.max_ids_per_fetch.max(1)) {
            let found = self
                .dir
                .resolve(chunk)
                .await
                .map_err(|e| Stop::api("fetching the cluster's contacts", e))?;
            for (id, r) in found {
                let head = match r {
                    Resolved::Found { canonical, set } => Head::Found { id: canonical, set },
                    Resolved::NotFound => Head::NotFound,
                };
                out.insert(id, head);
            }
        }
        Ok(out)
    }

    /// Did a merge of `ids` happen? Only if every id now resolves to one contact that is none
    /// of them.
    async fn read_back(&self, ids: &[String]) -> Result<ReadBack, Stop> {
        let heads = self.heads(ids).await?;
        let mut found = BTreeSet::new();
        let mut set = 0;
        for id in ids {
            match heads.get(id) {
                Some(Head::Found { id: h, set: s }) => {
                    found.insert(h.clone());
                    set = *s;
                }
                _ => return Ok(ReadBack::NotApplied),
            }
        }
        match found.into_iter().collect::<Vec<_>>().as_slice() {
            [h] if !ids.contains(h) => Ok(ReadBack::Applied(h.clone(), set)),
            _ => Ok(ReadBack::NotApplied),
        }
    }

    async fn lock(&self, ids: &[String]) -> Result<Option<Held>, Stop> {
        let deadline = Instant::now() + self.opts.lock_wait;
        loop {
            if let Some(local) = self.locks.try_lock(ids).await? {
                match &self.redis {
                    None => {
                        return Ok(Some(Held {
                            _local: local,
                            redis: None,
                        }));
                    }
                    Some(r) => match r.try_lock(ids).await {
                        Ok(Some(held)) => {
                            return Ok(Some(Held {
                                _local: local,
                                redis: Some(held),
                            }));
                        }
                        Ok(None) => drop(local),
                        Err(e) => {
                            return Err(Stop::Remaining(format!("Redis lock unavailable: {e}")));
                        }
                    },
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(..150))).await;
        }
    }
}

/// The outcome of one cluster under construction.
struct Work<'c> {
    cluster: &'c Cluster,
    key: String,
    merge_requests: u64,
    conflicts: u64,
    read_backs: u64,
    read_backs_applied: u64,
    quarantined: Vec<Quarantine>,
    /// The cluster was settled by an interrupted earlier run and is reported by this one.
    carried_over: bool,
}

impl Work<'_> {
    fn quarantine(&mut self, id: &str, reason: Reason, detail: String) {
        tracing::info!(
            cluster = %self.cluster.cluster_id,
            contact = id,
            ?reason,
            "Quarantined a contact."
        );
        self.quarantined.push(Quarantine {
            cluster_id: self.cluster.cluster_id.clone(),
            record_id: id.to_owned(),
            reason,
            detail,
            at: Utc::now(),
        });
    }
}

/// Per-cluster counters handed back to the run.
struct Counted {
    outcome: ClusterOutcome,
    carried_over: bool,
    conflicts: u64,
    read_backs: u64,
    read_backs_applied: u64,
}

async fn apply_cluster<D: CustomerDirectory>(
    ctx: &Ctx<'_, D>,
    cluster: &Cluster,
) -> anyhow::Result<Counted> {
    let ids = cluster.sorted_ids();
    let key = ids_key('c', ids.iter().map(String::as_str));
    let ovr = D::place(&cluster.merge_values());
    let mut work = Work {
        cluster,
        key: key.clone(),
        merge_requests: 0,
        conflicts: 0,
        read_backs: 0,
        read_backs_applied: 0,
        quarantined: Vec::new(),
        carried_over: false,
    };
    let locked = match ctx.lock(&ids).await {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(Stop::Remaining(
            "another run held the cluster's contacts for longer than the lock wait".into(),
        )),
        Err(s) => Err(s),
    };
    let result = match locked {
        Ok(held) => {
            let r = merge_locked(ctx, &ids, &ovr.values, &held, &mut work).await;
            if let (Some(redis), Some(locked)) = (&ctx.redis, held.redis)
                && let Err(e) = redis.release(locked).await
            {
                tracing::warn!(error = %e, "Could not release Redis locks; they expire with their lease.");
            }
            r
        }
        Err(s) => Err(s),
    };
    let (outcome, canonical, detail) = match result {
        Ok((o, c)) => (o, c, None),
        Err(Stop::Remaining(why)) => {
            tracing::warn!(cluster = %cluster.cluster_id, reason = %why, "Cluster left for the next run.");
            (Outcome::Remaining, None, Some(why))
        }
        Err(Stop::Fatal(e)) => return Err(e),
    };
    Ok(Counted {
        carried_over: work.carried_over,
        conflicts: work.conflicts,
        read_backs: work.read_backs,
        read_backs_applied: work.read_backs_applied,
        outcome: ClusterOutcome {
            cluster_id: cluster.cluster_id.clone(),
            key,
            outcome,
            canonical,
            members: ids.len(),
            merge_requests: work.merge_requests,
            quarantined: work.quarantined,
            unplaced: if matches!(outcome, Outcome::Skipped | Outcome::AlreadyMerged) {
                BTreeMap::new()
            } else {
                ovr.unplaced
            },
            detail,
        },
    })
}

/// The work on one cluster whose contacts this run holds.
async fn merge_locked<D: CustomerDirectory>(
    ctx: &Ctx<'_, D>,
    ids: &[String],
    value_override: &D::Values,
    held: &Held,
    work: &mut Work<'_>,
) -> Result<(Outcome, Option<String>), Stop> {
    let key = work.key.clone();
    let history = ctx.journal.history(&key)?;
    if let Some(settled) = history.settled.as_ref().filter(|_| history.is_final()) {
        let interrupted = match &settled.run {
            Some(run) => ctx.journal.was_interrupted(run)?,
            None => false,
        };
        let canonical = settled.canonical.clone();
        if !interrupted {
            return Ok((Outcome::Skipped, canonical));
        }
        // Settled by a run killed before its outputs were written: no report has shown it.
        // This run reports the real outcome and takes the settlement over, so a kill now
        // carries it to the next run again.
        let outcome = if settled.outcome == SettledOutcome::AlreadyMerged {
            Outcome::AlreadyMerged
        } else {
            Outcome::Merged
        };
        work.carried_over = true;
        settle(ctx, &key, outcome, canonical.clone(), work)?;
        return Ok((outcome, canonical));
    }
    let mut merged_before = history.merges > 0;
    if let Some((mkey, mids)) = &history.open_intent {
        work.read_backs += 1;
        match ctx.read_back(mids).await? {
            ReadBack::Applied(canonical, _) => {
                work.read_backs_applied += 1;
                merged_before = true;
                ctx.journal.append(
                    &key,
                    &Event::Merged {
                        at: Utc::now(),
                        key: mkey.clone(),
                        ids: mids.clone(),
                        canonical,
                    },
                )?;
            }
            ReadBack::NotApplied => ctx.journal.append(
                &key,
                &Event::NotApplied {
                    at: Utc::now(),
                    key: mkey.clone(),
                },
            )?,
        }
    }

    // Pre-flight.
    let heads = ctx.heads(ids).await?;
    let mut by_head: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    for id in ids {
        match heads.get(id) {
            Some(Head::Found { id: h, set }) => {
                let e = by_head.entry(h.clone()).or_insert((Vec::new(), *set));
                e.0.push(id.clone());
            }
            _ => work.quarantine(
                id,
                Reason::NotFound,
                "the contact does not exist (404)".into(),
            ),
        }
    }
    let member_set: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    if work.quarantined.is_empty()
        && by_head.len() == 1
        && let Some(head) = by_head.keys().next().cloned()
        && !member_set.contains(head.as_str())
    {
        let outcome = if merged_before {
            Outcome::Merged
        } else {
            Outcome::AlreadyMerged
        };
        settle(ctx, &key, outcome, Some(head.clone()), work)?;
        return Ok((outcome, Some(head)));
    }
    // A head that is not a member is ours (a merge of this cluster) when two or more members
    // resolve to it, or the journal produced it; a single member merged elsewhere is not.
    let mut canonical: Option<(String, usize)> = None;
    let mut free: Vec<(String, usize)> = Vec::new();
    for (head, (members, set)) in &by_head {
        if member_set.contains(head.as_str()) {
            free.push((head.clone(), *set));
        } else if members.len() >= 2 || history.canonicals.contains(head) {
            if canonical.is_none() {
                canonical = Some((head.clone(), *set));
            } else {
                free.push((head.clone(), *set));
            }
        } else {
            work.quarantine(
                &members[0],
                Reason::AlreadyMergedElsewhere,
                format!("already merged into contact {head}, outside this cluster"),
            );
        }
    }
    // The survivor's head first: it leads the first chunk.
    let survivor_head = match heads.get(&work.cluster.survivor) {
        Some(Head::Found { id, .. }) => Some(id.clone()),
        _ => None,
    };
    free.sort_by_key(|(h, _)| (Some(h) != survivor_head.as_ref(), h.clone()));

    // Merge-set limit: the whole cluster must fit, chunked merges' canonical contacts included.
    let groups = free.len() + usize::from(canonical.is_some());
    if groups >= 2 {
        let steps = (groups - 1).div_ceil(ctx.cap - 1);
        let set: usize = free.iter().map(|(_, s)| s).sum::<usize>()
            + canonical.as_ref().map_or(0, |(_, s)| *s)
            + steps;
        if let Some(max) = D::CAPABILITIES.max_merge_set
            && set > max
        {
            for (h, _) in &free {
                work.quarantine(
                    h,
                    Reason::MergeSetLimit,
                    format!(
                        "merging the cluster would make a merge set of {set} contacts; the platform allows {max}"
                    ),
                );
            }
            free.clear();
        }
    }

    let canonical = run_merges(ctx, free, canonical, value_override, held, work).await?;
    let outcome = match (&canonical, work.quarantined.is_empty()) {
        (Some(_), true) => Outcome::Merged,
        (Some(_), false) => Outcome::PartiallyMerged,
        (None, _) => Outcome::Quarantined,
    };
    let canonical = canonical.map(|(c, _)| c);
    settle(ctx, &key, outcome, canonical.clone(), work)?;
    Ok((outcome, canonical))
}

fn settle<D>(
    ctx: &Ctx<'_, D>,
    key: &str,
    outcome: Outcome,
    canonical: Option<String>,
    work: &Work<'_>,
) -> Result<(), Stop> {
    let outcome = match outcome {
        Outcome::Merged => SettledOutcome::Merged,
        Outcome::PartiallyMerged => SettledOutcome::PartiallyMerged,
        Outcome::AlreadyMerged => SettledOutcome::AlreadyMerged,
        Outcome::Quarantined => SettledOutcome::Quarantined,
        Outcome::Skipped | Outcome::Remaining | Outcome::Planned => {
            return Err(Stop::Fatal(anyhow::anyhow!(
                "a cluster cannot be settled as {outcome:?}"
            )));
        }
    };
    ctx.journal.append(
        key,
        &Event::Settled {
            at: Utc::now(),
            outcome,
            canonical,
            quarantined: work
                .quarantined
                .iter()
                .map(|q| q.record_id.clone())
                .collect(),
            run: Some(ctx.run.id.clone()),
        },
    )?;
    Ok(())
}

/// Merges `free` heads into `canonical` (or into a new one), chunked to the cap, isolating
/// offenders by halving. Returns the canonical contact and its merge-set size.
async fn run_merges<D: CustomerDirectory>(
    ctx: &Ctx<'_, D>,
    free: Vec<(String, usize)>,
    mut canonical: Option<(String, usize)>,
    value_override: &D::Values,
    held: &Held,
    work: &mut Work<'_>,
) -> Result<Option<(String, usize)>, Stop> {
    let mut queue: VecDeque<Vec<String>> = VecDeque::new();
    if !free.is_empty() {
        queue.push_back(free.into_iter().map(|(h, _)| h).collect());
    }
    let mut waiting: Vec<String> = Vec::new();
    let mut named_in_conflict: BTreeMap<String, String> = BTreeMap::new();
    let mut unknown_retries = 0;
    let mut regrouped: BTreeSet<Vec<String>> = BTreeSet::new();
    loop {
        let Some(mut group) = queue.pop_front() else {
            // Nothing merged yet and only single contacts left (the halving split every
            // group down to one): a lone contact cannot be tried alone, so those the platform
            // did not name in a 409 (`entityId`) are tried together again, once per set.
            if canonical.is_some() {
                break;
            }
            let retry: Vec<String> = waiting
                .iter()
                .filter(|w| !named_in_conflict.contains_key(*w))
                .cloned()
                .collect();
            if retry.len() >= MIN_MERGE_IDS && regrouped.insert(retry.clone()) {
                waiting.retain(|w| !retry.contains(w));
                queue.push_back(retry);
                continue;
            }
            break;
        };
        let room = ctx.cap - usize::from(canonical.is_some());
        if group.len() > room {
            let rest = group.split_off(room);
            queue.push_front(rest);
        }
        let request: Vec<String> = canonical
            .iter()
            .map(|(c, _)| c.clone())
            .chain(group.iter().cloned())
            .collect();
        if request.len() < MIN_MERGE_IDS {
            // One contact and nothing merged yet: it waits for a canonical contact.
            waiting.extend(group);
            continue;
        }
        if let (Some(redis), Some(locked)) = (&ctx.redis, &held.redis) {
            match redis.renew(locked).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Stop::Remaining(
                        "the Redis lock lease lapsed; another run may hold the contacts".into(),
                    ));
                }
                Err(e) => return Err(Stop::Remaining(format!("Redis lock unavailable: {e}"))),
            }
        }
        let mkey = ids_key('m', request.iter().map(String::as_str));
        ctx.journal.append(
            &work.key,
            &Event::Intent {
                at: Utc::now(),
                key: mkey.clone(),
                ids: request.clone(),
            },
        )?;
        work.merge_requests += 1;
        tracing::debug!(cluster = %work.cluster.cluster_id, key = %mkey, ids = request.len(), "Merging.");
        let answer = ctx.dir.merge(&request, value_override).await;
        let not_applied = |ctx: &Ctx<'_, D>, work: &Work<'_>| {
            ctx.journal.append(
                &work.key,
                &Event::NotApplied {
                    at: Utc::now(),
                    key: mkey.clone(),
                },
            )
        };
        match answer {
            Ok(merged) => {
                let Some(id) = merged.canonical.clone() else {
                    return Err(Stop::Remaining(
                        "the merge answer carried no contact id; the next run reads it back".into(),
                    ));
                };
                let set = merged.set.max(request.len() + 1);
                record_merge(ctx, work, &mkey, &request, &id)?;
                canonical = Some((id, set));
                queue.extend(waiting.drain(..).map(|w| vec![w]));
            }
            Err(e) if e.kind == ErrorKind::OutcomeUnknown => {
                work.read_backs += 1;
                match ctx.read_back(&request).await? {
                    ReadBack::Applied(id, set) => {
                        work.read_backs_applied += 1;
                        record_merge(ctx, work, &mkey, &request, &id)?;
                        canonical = Some((id, set));
                        queue.extend(waiting.drain(..).map(|w| vec![w]));
                    }
                    ReadBack::NotApplied => {
                        not_applied(ctx, work)?;
                        unknown_retries += 1;
                        if unknown_retries > 3 {
                            return Err(Stop::Remaining(format!(
                                "merge outcome kept being unknown: {e}"
                            )));
                        }
                        queue.push_front(group);
                    }
                }
            }
            Err(e) if e.kind == ErrorKind::Unreachable => {
                // No answer for the give-up time: leave the intent open, the next run reads the
                // contacts back before sending anything.
                return Err(Stop::api("merge", e));
            }
            Err(e) if is_fatal(&e) => {
                not_applied(ctx, work)?;
                return Err(Stop::api("merge", e));
            }
            Err(e)
                if matches!(e.kind, ErrorKind::Conflict | ErrorKind::Permanent)
                    && e.status.is_some_and(|s| (400..500).contains(&s)) =>
            {
                not_applied(ctx, work)?;
                let conflict = e.kind == ErrorKind::Conflict;
                if conflict {
                    work.conflicts += 1;
                    for id in &e.entity_ids {
                        named_in_conflict
                            .insert(id.clone(), e.platform_message.clone().unwrap_or_default());
                    }
                }
                if group.len() >= 2 {
                    let back = group.split_off(group.len() / 2);
                    queue.push_front(back);
                    queue.push_front(group);
                    continue;
                }
                let lone = group.remove(0);
                if let Some((c, _)) = &canonical
                    && named_in_conflict.contains_key(c)
                    && !named_in_conflict.contains_key(&lone)
                {
                    return Err(Stop::Remaining(format!(
                        "the cluster's canonical contact {c} is refused: {e}"
                    )));
                }
                let detail = e.platform_message.clone().unwrap_or_else(|| e.to_string());
                let reason = if conflict {
                    Reason::ActiveAssociations
                } else {
                    Reason::Refused
                };
                work.quarantine(
                    &lone,
                    reason,
                    format!("{}: {detail}", e.status.unwrap_or(0)),
                );
            }
            Err(e) => {
                not_applied(ctx, work)?;
                return Err(Stop::api("merge", e));
            }
        }
    }
    // Contacts left alone: their partners were all quarantined (or there was only one).
    for lone in waiting {
        match named_in_conflict.get(&lone) {
            Some(msg) => work.quarantine(&lone, Reason::ActiveAssociations, format!("409: {msg}")),
            None => work.quarantine(
                &lone,
                Reason::NoPartner,
                "every other member of the cluster is quarantined; nothing to merge it with".into(),
            ),
        }
    }
    Ok(canonical)
}

fn record_merge<D>(
    ctx: &Ctx<'_, D>,
    work: &Work<'_>,
    mkey: &str,
    request: &[String],
    canonical: &str,
) -> Result<(), Stop> {
    ctx.journal.append(
        &work.key,
        &Event::Merged {
            at: Utc::now(),
            key: mkey.to_owned(),
            ids: request.to_vec(),
            canonical: canonical.to_owned(),
        },
    )?;
    Ok(())
}

/// One line of `apply_dry_run.ndjson`: a merge request as it would be sent.
#[derive(Serialize)]
struct DryRunLine<'a, V> {
    cluster_id: &'a str,
    key: String,
    step: usize,
    #[serde(rename = "contactIds")]
    contact_ids: Vec<String>,
    #[serde(rename = "valueOverride")]
    value_override: &'a V,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    unplaced: &'a BTreeMap<String, Vec<String>>,
}

/// The merge requests of a cluster as if none of its members were merged yet; later steps name
/// the previous step's canonical contact `<canonical of step N>`.
pub fn planned_requests(ids: &[String], cap: usize) -> Vec<Vec<String>> {
    let mut steps = Vec::new();
    let mut rest = ids.iter();
    let first: Vec<String> = rest.by_ref().take(cap).cloned().collect();
    if first.len() < MIN_MERGE_IDS {
        return steps;
    }
    steps.push(first);
    loop {
        let next: Vec<String> = rest.by_ref().take(cap - 1).cloned().collect();
        if next.is_empty() {
            break;
        }
        let mut req = vec![format!("<canonical of step {}>", steps.len())];
        req.extend(next);
        steps.push(req);
    }
    steps
}

fn check_cap(cap: usize, caps: &DirectoryCapabilities) -> anyhow::Result<()> {
    let (min, max) = (
        caps.min_ids_per_merge.max(MIN_MERGE_IDS),
        caps.max_ids_per_merge,
    );
    if !(min..=max).contains(&cap) {
        anyhow::bail!("--max-ids-per-merge must be between {min} and {max}, got {cap}");
    }
    Ok(())
}

/// Runs `merge apply` against Genesys Cloud, the platform `opts.client` configures.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    if opts.dry_run {
        return run_on::<GenesysClient>(None, opts).await;
    }
    check_cap(
        opts.max_ids_per_merge,
        &<GenesysClient as CustomerDirectory>::CAPABILITIES,
    )?;
    let client = GenesysClient::new(opts.client.clone())
        .await
        .context("cannot set up the Genesys Cloud client")?;
    run_on(Some(&client), opts).await
}

/// Runs `merge apply` on `dir` (`None`: a dry run, which contacts nothing and writes the
/// requests as platform `D` would be sent them). `opts.client` only names the Redis of the
/// locks and the budget reported.
pub async fn run_on<D: CustomerDirectory>(
    dir: Option<&D>,
    opts: &Options,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    check_cap(opts.max_ids_per_merge, &D::CAPABILITIES)?;
    let plan = Plan::load(&opts.plan_dir)?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create output directory {}", opts.out_dir.display()))?;
    let journal = FileJournal::open(&opts.state_dir)
        .with_context(|| format!("cannot use state directory {}", opts.state_dir.display()))?;
    let locks = FileLocks::open(&opts.state_dir)
        .with_context(|| format!("cannot use state directory {}", opts.state_dir.display()))?;
    let mut report = Report {
        plan: Plan::path_in(&opts.plan_dir).display().to_string(),
        dry_run: opts.dry_run,
        clusters: plan.clusters.len() as u64,
        contacts: plan.clusters.iter().map(|c| c.members.len() as u64).sum(),
        requests_per_minute: opts.client.requests_per_minute,
        ..Report::default()
    };

    let Some(dir) = dir else {
        let mut lines = AtomicFile::create(&opts.out_dir.join("apply_dry_run.ndjson"))?;
        let mut outcomes = AtomicFile::create(&opts.out_dir.join("apply_clusters.ndjson"))?;
        for cluster in &plan.clusters {
            let ids = cluster.sorted_ids();
            let key = ids_key('c', ids.iter().map(String::as_str));
            let history = journal.history(&key)?;
            let ovr = D::place(&cluster.merge_values());
            let (outcome, requests) = if history.is_final() {
                report.skipped += 1;
                (Outcome::Skipped, 0)
            } else {
                let mut ordered = ids.clone();
                ordered.sort_by_key(|id| (*id != cluster.survivor, id.clone()));
                let steps = planned_requests(&ordered, opts.max_ids_per_merge);
                for (i, step) in steps.iter().enumerate() {
                    let line = DryRunLine {
                        cluster_id: &cluster.cluster_id,
                        key: ids_key('m', step.iter().map(String::as_str)),
                        step: i + 1,
                        contact_ids: step.clone(),
                        value_override: &ovr.values,
                        unplaced: &ovr.unplaced,
                    };
                    serde_json::to_writer(&mut *lines.writer(), &line)?;
                    lines.writer().write_all(b"\n")?;
                }
                report.unplaced_values +=
                    ovr.unplaced.values().map(|v| v.len() as u64).sum::<u64>();
                (Outcome::Planned, steps.len() as u64)
            };
            report.merge_requests += requests;
            let line = ClusterOutcome {
                cluster_id: cluster.cluster_id.clone(),
                key,
                outcome,
                canonical: history.settled.and_then(|s| s.canonical),
                members: ids.len(),
                merge_requests: requests,
                quarantined: Vec::new(),
                unplaced: ovr.unplaced,
                detail: None,
            };
            serde_json::to_writer(&mut *outcomes.writer(), &line)?;
            outcomes.writer().write_all(b"\n")?;
        }
        lines.commit()?;
        outcomes.commit()?;
        AtomicFile::create(&opts.out_dir.join("quarantine.ndjson"))?.commit()?;
        report.elapsed_seconds = started.elapsed().as_secs_f64();
        write_json(&opts.out_dir.join("apply_report.json"), &report)?;
        return Ok(report);
    };

    let redis = match &opts.client.redis {
        Some(r) => Some(
            RedisLocks::connect(
                &r.url,
                &format!("dedupd:{{merge-lock}}:{}:", opts.client.client_id),
                opts.redis_lock_lease,
            )
            .await
            .context("cannot connect to Redis for the merge locks")?,
        ),
        None => None,
    };
    let run = journal.begin_run().with_context(|| {
        format!(
            "cannot start a run in state directory {}",
            opts.state_dir.display()
        )
    })?;
    let ctx = Ctx {
        opts,
        run,
        dir,
        journal,
        locks,
        redis,
        cap: opts.max_ids_per_merge,
    };

    let bar = crate::shared::progress::bar(report.clusters, opts.progress, "clusters", "merge");

    let mut outcomes: Vec<Option<ClusterOutcome>> = vec![None; plan.clusters.len()];
    let mut fatal: Option<anyhow::Error> = None;
    {
        // Once the client gives up on the platform, no other cluster starts.
        let clusters = plan
            .clusters
            .iter()
            .enumerate()
            .take_while(|_| dir.gave_up().is_none());
        let mut stream = futures_util::stream::iter(clusters)
            .map(|(i, c)| {
                let ctx = &ctx;
                async move { (i, apply_cluster(ctx, c).await) }
            })
            .buffer_unordered(opts.concurrency.max(1));
        while let Some((i, res)) = stream.next().await {
            bar.inc(1);
            match res {
                Ok(c) => {
                    report.carried_over += u64::from(c.carried_over);
                    report.conflicts += c.conflicts;
                    report.read_backs += c.read_backs;
                    report.read_backs_applied += c.read_backs_applied;
                    outcomes[i] = Some(c.outcome);
                }
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    report.platform_unreachable = dir.gave_up();
    let not_started = if report.platform_unreachable.is_some() {
        "not started: the platform was unreachable"
    } else {
        "not started: the run stopped on an error"
    };

    let mut quarantine = AtomicFile::create(&opts.out_dir.join("quarantine.ndjson"))?;
    let mut lines = AtomicFile::create(&opts.out_dir.join("apply_clusters.ndjson"))?;
    for (cluster, outcome) in plan.clusters.iter().zip(outcomes) {
        let outcome = outcome.unwrap_or_else(|| ClusterOutcome {
            cluster_id: cluster.cluster_id.clone(),
            key: ids_key('c', cluster.members.iter().map(|m| m.record_id.as_str())),
            outcome: Outcome::Remaining,
            canonical: None,
            members: cluster.members.len(),
            merge_requests: 0,
            quarantined: Vec::new(),
            unplaced: BTreeMap::new(),
            detail: Some(not_started.into()),
        });
        match outcome.outcome {
            Outcome::Merged => report.merged += 1,
            Outcome::PartiallyMerged => report.partially_merged += 1,
            Outcome::AlreadyMerged => report.already_merged += 1,
            Outcome::Skipped => report.skipped += 1,
            Outcome::Quarantined => report.quarantined += 1,
            Outcome::Remaining | Outcome::Planned => report.remaining += 1,
        }
        report.merge_requests += outcome.merge_requests;
        report.quarantined_contacts += outcome.quarantined.len() as u64;
        report.unplaced_values += outcome
            .unplaced
            .values()
            .map(|v| v.len() as u64)
            .sum::<u64>();
        for q in &outcome.quarantined {
            serde_json::to_writer(&mut *quarantine.writer(), q)?;
            quarantine.writer().write_all(b"\n")?;
        }
        serde_json::to_writer(&mut *lines.writer(), &outcome)?;
        lines.writer().write_all(b"\n")?;
    }
    quarantine.commit()?;
    lines.commit()?;

    let s = dir.usage();
    report.api_calls = s.api_calls;
    report.retries = s.retries;
    report.rate_limited = s.rate_limited;
    report.server_errors = s.server_errors;
    report.token_requests = s.token_requests;
    report.budget_wait_seconds = s.budget_wait.as_secs_f64();
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    write_json(&opts.out_dir.join("apply_report.json"), &report)?;
    // Only now has every cluster this run settled been reported.
    ctx.journal
        .complete_run(&ctx.run)
        .context("cannot mark the run complete in the state directory")?;
    if let Some(e) = fatal {
        return Err(e.context("merge apply stopped"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:02}")).collect()
    }

    #[test]
    fn planned_requests_chain_through_the_canonical_contact() {
        assert_eq!(planned_requests(&ids(1), 25), Vec::<Vec<String>>::new());
        assert_eq!(planned_requests(&ids(3), 25), vec![ids(3)]);
        let steps = planned_requests(&ids(7), 3);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0], vec!["c00", "c01", "c02"]);
        assert_eq!(steps[1], vec!["<canonical of step 1>", "c03", "c04"]);
        assert_eq!(steps[2], vec!["<canonical of step 2>", "c05", "c06"]);
        assert!(steps.iter().all(|s| s.len() <= 3));
    }

    #[test]
    fn the_cap_is_checked() {
        let caps = <GenesysClient as CustomerDirectory>::CAPABILITIES;
        assert!(check_cap(1, &caps).is_err());
        assert!(check_cap(26, &caps).is_err());
        assert!(check_cap(2, &caps).is_ok());
        assert!(check_cap(25, &caps).is_ok());
    }

    #[test]
    fn auth_failures_stop_the_run_and_conflicts_do_not() {
        assert!(is_fatal(&PlatformError::new(ErrorKind::Config, "x")));
        assert!(is_fatal(&PlatformError::new(ErrorKind::Auth, "x")));
        assert!(!is_fatal(&PlatformError::new(ErrorKind::Conflict, "x")));
        assert!(!is_fatal(&PlatformError::new(ErrorKind::Permanent, "x")));
    }
}
