//! # dedupd-merge: applying a reviewed merge plan to a customer directory, safely
//!
//! The engine behind `dedupd merge apply`, for any platform that implements
//! [`CustomerDirectory`]. Per cluster, under a lock on each of its contacts (this machine's
//! locks, plus shared ones such as Redis when configured, so concurrent runs never work on the
//! same contacts):
//!
//! 1. **Journal first.** A cluster settled for good by an earlier run is skipped. A merge sent
//!    by a run that died before its answer (an open `intent`) is settled by reading the sources
//!    back: if they all resolve to one new record, the merge happened. A cluster settled by a
//!    run killed before it wrote its outputs is reported by this one (`carried_over`).
//! 2. **Pre-flight.** Every member is resolved (a merged-away id resolves to its canonical
//!    record). Missing → quarantined (`not_found`). Merged into a record outside the cluster →
//!    quarantined (`already_merged_elsewhere`). All members in one merge tree already →
//!    `already_merged`, nothing sent. A cluster whose merge set would pass the platform's limit
//!    ([`DirectoryCapabilities::max_merge_set`]) → quarantined (`merge_set_limit`).
//! 3. **Merge.** The live heads are merged at most `cap` at a time: the first chunk (led by the
//!    survivor), then the resulting canonical record with the next chunk, and so on. Each
//!    request carries the cluster's resolved values as the platform places them
//!    ([`CustomerDirectory::place`]) and a deterministic key (hash of the sorted ids) written to
//!    the journal before it leaves.
//! 4. **Conflicts.** A refusal (409, or another 4xx) splits the group in halves until the
//!    offender is alone: it is quarantined (`active_associations` or `refused`) and the rest is
//!    merged. When everything was split down to single records with nothing merged yet, those
//!    the platform did not name are tried together again, once.
//! 5. **Unknown outcomes.** A timeout or 5xx after sending is never answered by resending: the
//!    sources are read back first and the journal records what happened.
//! 6. **Unreachable platform.** An [`ErrorKind::Unreachable`] leaves the cluster `remaining`
//!    with its intent open, so the next run reads it back.
//!
//! What a run writes and reports is the job's business (`dedupd merge apply`); this crate
//! returns one [`ClusterOutcome`] per cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dedupd_core::keys::ids_key;
use dedupd_core::plan::{Basis, Cluster, DecidedCluster};
use dedupd_platform::directory::{CustomerDirectory, DirectoryCapabilities, Resolved};
use dedupd_platform::{ErrorKind, PlatformError};
use dedupd_store::StoreError;
use dedupd_store::locks::ContactLocks;
use dedupd_store::merge_journal::{Event, MergeJournal, RunMark, SettledOutcome};
use serde::Serialize;

/// Fewest records any merge takes.
pub const MIN_MERGE_IDS: usize = 2;

/// `cap` records per merge request is outside what the directory takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--max-ids-per-merge must be between {min} and {max}, got {cap}")]
pub struct CapError {
    /// Asked for.
    pub cap: usize,
    /// Fewest the directory takes.
    pub min: usize,
    /// Most the directory takes.
    pub max: usize,
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
    /// A reviewer rejected it: never merged (set by the job from the decisions, never by the
    /// engine).
    Rejected,
    /// Not approved for this run: no review decision for its member set, or below
    /// `--min-confidence` (set by the job, never by the engine).
    NotApproved,
}

impl From<SettledOutcome> for Outcome {
    fn from(s: SettledOutcome) -> Outcome {
        match s {
            SettledOutcome::Merged => Outcome::Merged,
            SettledOutcome::PartiallyMerged => Outcome::PartiallyMerged,
            SettledOutcome::AlreadyMerged => Outcome::AlreadyMerged,
            SettledOutcome::Quarantined => Outcome::Quarantined,
        }
    }
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

/// Applies the clusters of one run to a customer directory. Shared by the cluster tasks of the
/// run (it is `Sync`): every cluster is [`Engine::apply`]'d on its own.
pub struct Engine<'a, D, L, S> {
    /// The platform's customer records.
    pub dir: &'a D,
    /// Where each cluster's intents, merges and settlement are written before and after they
    /// happen.
    pub journal: &'a dyn MergeJournal,
    /// This run, as the journal knows it.
    pub run: &'a RunMark,
    /// Per-contact locks of this machine (always taken first).
    pub locks: &'a L,
    /// Per-contact locks shared between machines (e.g. Redis), taken after `locks` and renewed
    /// before each merge, when configured.
    pub shared: Option<&'a S>,
    /// Records per merge request (within the directory's capabilities: see [`check_cap`]).
    pub cap: usize,
    /// How long to wait for contacts locked by another run before leaving the cluster for the
    /// next run.
    pub lock_wait: Duration,
}

/// A failure that concerns every cluster: the run stops.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The platform refused us for good (authentication, permissions, configuration).
    #[error("{what} failed")]
    Platform {
        /// What was being done.
        what: String,
        /// The platform's error.
        #[source]
        source: PlatformError,
    },
    /// The merge journal could not be read or written.
    #[error("cannot use the merge journal")]
    Journal(#[source] StoreError),
    /// The contacts could not be locked on this machine.
    #[error("cannot lock the cluster's contacts")]
    Locks(#[source] StoreError),
}

/// A cluster's work ended early: `Remaining` with a reason, or a fatal error.
enum Stop {
    Remaining(String),
    Fatal(ApplyError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Fatal(ApplyError::Journal(e))
    }
}

/// The locks this run holds on a cluster's contacts: always this machine's, and the shared
/// ones when configured.
struct Held<L: ContactLocks, S: ContactLocks> {
    local: L::Held,
    shared: Option<S::Held>,
}

impl Stop {
    fn api(what: &str, e: PlatformError) -> Stop {
        if is_fatal(&e) {
            Stop::Fatal(ApplyError::Platform {
                what: what.to_owned(),
                source: e,
            })
        } else {
            Stop::Remaining(format!("{what}: {e}"))
        }
    }
}

impl<D, L, S> Engine<'_, D, L, S>
where
    D: CustomerDirectory,
    L: ContactLocks,
    S: ContactLocks,
{
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
    /// of them, or, where a merge keeps the survivor's id
    /// ([`DirectoryCapabilities::merge_keeps_survivor_id`]), one of them.
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
            [h] if merged_into::<D>(ids, h) => Ok(ReadBack::Applied(h.clone(), set)),
            _ => Ok(ReadBack::NotApplied),
        }
    }

    async fn lock(&self, ids: &[String]) -> Result<Option<Held<L, S>>, Stop> {
        let deadline = Instant::now() + self.lock_wait;
        loop {
            if let Some(local) = self.locks.try_lock(ids).await.map_err(locks_error)? {
                let Some(shared) = self.shared else {
                    return Ok(Some(Held {
                        local,
                        shared: None,
                    }));
                };
                match shared.try_lock(ids).await {
                    Ok(Some(held)) => {
                        return Ok(Some(Held {
                            local,
                            shared: Some(held),
                        }));
                    }
                    Ok(None) => self.locks.release(local).await.map_err(locks_error)?,
                    Err(e) => {
                        self.locks.release(local).await.map_err(locks_error)?;
                        return Err(Stop::Remaining(format!("shared lock unavailable: {e}")));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(..150))).await;
        }
    }

    /// Lets go of a cluster's locks (the shared ones would otherwise expire with their lease).
    async fn unlock(&self, held: Held<L, S>) -> Result<(), Stop> {
        if let (Some(shared), Some(locked)) = (self.shared, held.shared)
            && let Err(e) = shared.release(locked).await
        {
            tracing::warn!(error = %e, "Could not release shared locks; they expire with their lease.");
        }
        self.locks.release(held.local).await.map_err(locks_error)
    }
}

fn locks_error(e: StoreError) -> Stop {
    Stop::Fatal(ApplyError::Locks(e))
}

/// The outcome of one cluster under construction.
struct Work<'c> {
    cluster: &'c Cluster,
    /// The decision the cluster carries out (recorded when it settles).
    basis: &'c Basis,
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
pub struct Applied {
    /// What became of the cluster.
    pub outcome: ClusterOutcome,
    /// An interrupted earlier run had settled it; this run reports it.
    pub carried_over: bool,
    /// Refusals (409 and other 4xx) met while merging it.
    pub conflicts: u64,
    /// Merges whose outcome had to be read back.
    pub read_backs: u64,
    /// Of those, how many had been applied.
    pub read_backs_applied: u64,
}

impl<D, L, S> Engine<'_, D, L, S>
where
    D: CustomerDirectory,
    L: ContactLocks,
    S: ContactLocks,
{
    /// Applies one cluster of the plan: locks its contacts, reads the journal, pre-flights,
    /// merges, settles. An `Err` concerns every cluster (the run stops); everything else is an
    /// outcome.
    pub async fn apply(&self, decided: &DecidedCluster) -> Result<Applied, ApplyError> {
        let cluster = &decided.cluster;
        let ids = cluster.sorted_ids();
        let key = ids_key('c', ids.iter().map(String::as_str));
        let ovr = D::place(&cluster.merge_values());
        let mut work = Work {
            cluster,
            basis: &decided.basis,
            key: key.clone(),
            merge_requests: 0,
            conflicts: 0,
            read_backs: 0,
            read_backs_applied: 0,
            quarantined: Vec::new(),
            carried_over: false,
        };
        let locked = match self.lock(&ids).await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(Stop::Remaining(
                "another run held the cluster's contacts for longer than the lock wait".into(),
            )),
            Err(s) => Err(s),
        };
        let result = match locked {
            Ok(held) => {
                let r = self.merge_locked(&ids, &ovr.values, &held, &mut work).await;
                match self.unlock(held).await {
                    Ok(()) => r,
                    Err(e) => r.and(Err(e)),
                }
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
        Ok(Applied {
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
    async fn merge_locked(
        &self,
        ids: &[String],
        value_override: &D::Values,
        held: &Held<L, S>,
        work: &mut Work<'_>,
    ) -> Result<(Outcome, Option<String>), Stop> {
        let key = work.key.clone();
        let history = self.journal.history(&key)?;
        if let Some(settled) = history.settled.as_ref().filter(|_| history.is_final()) {
            let interrupted = match &settled.run {
                Some(run) => self.journal.was_interrupted(run)?,
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
                SettledOutcome::AlreadyMerged
            } else {
                SettledOutcome::Merged
            };
            work.carried_over = true;
            self.settle(&key, outcome, canonical.clone(), work)?;
            return Ok((outcome.into(), canonical));
        }
        let mut merged_before = history.merges > 0;
        if let Some((mkey, mids)) = &history.open_intent {
            work.read_backs += 1;
            match self.read_back(mids).await? {
                ReadBack::Applied(canonical, _) => {
                    work.read_backs_applied += 1;
                    merged_before = true;
                    self.journal.append(
                        &key,
                        &Event::Merged {
                            at: Utc::now(),
                            key: mkey.clone(),
                            ids: mids.clone(),
                            canonical,
                        },
                    )?;
                }
                ReadBack::NotApplied => self.journal.append(
                    &key,
                    &Event::NotApplied {
                        at: Utc::now(),
                        key: mkey.clone(),
                    },
                )?,
            }
        }

        // Pre-flight.
        let heads = self.heads(ids).await?;
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
            && merged_into::<D>(ids, &head)
        {
            let outcome = if merged_before {
                SettledOutcome::Merged
            } else {
                SettledOutcome::AlreadyMerged
            };
            self.settle(&key, outcome, Some(head.clone()), work)?;
            return Ok((outcome.into(), Some(head)));
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
            let steps = (groups - 1).div_ceil(self.cap - 1);
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

        let canonical = self
            .run_merges(free, canonical, value_override, held, work)
            .await?;
        let outcome = match (&canonical, work.quarantined.is_empty()) {
            (Some(_), true) => SettledOutcome::Merged,
            (Some(_), false) => SettledOutcome::PartiallyMerged,
            (None, _) => SettledOutcome::Quarantined,
        };
        let canonical = canonical.map(|(c, _)| c);
        self.settle(&key, outcome, canonical.clone(), work)?;
        Ok((outcome.into(), canonical))
    }

    fn settle(
        &self,
        key: &str,
        outcome: SettledOutcome,
        canonical: Option<String>,
        work: &Work<'_>,
    ) -> Result<(), Stop> {
        self.journal.append(
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
                run: Some(self.run.id.clone()),
                decision: Some(work.basis.clone()),
            },
        )?;
        Ok(())
    }

    /// Merges `free` heads into `canonical` (or into a new one), chunked to the cap, isolating
    /// offenders by halving. Returns the canonical contact and its merge-set size.
    async fn run_merges(
        &self,
        free: Vec<(String, usize)>,
        mut canonical: Option<(String, usize)>,
        value_override: &D::Values,
        held: &Held<L, S>,
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
            let room = self.cap - usize::from(canonical.is_some());
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
            if let (Some(shared), Some(locked)) = (self.shared, &held.shared) {
                match shared.renew(locked).await {
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
            self.journal.append(
                &work.key,
                &Event::Intent {
                    at: Utc::now(),
                    key: mkey.clone(),
                    ids: request.clone(),
                },
            )?;
            work.merge_requests += 1;
            tracing::debug!(cluster = %work.cluster.cluster_id, key = %mkey, ids = request.len(), "Merging.");
            let answer = self.dir.merge(&request, value_override).await;
            let not_applied = |work: &Work<'_>| {
                self.journal.append(
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
                            "the merge answer carried no contact id; the next run reads it back"
                                .into(),
                        ));
                    };
                    let set = merged.set.max(request.len() + 1);
                    self.record_merge(work, &mkey, &request, &id)?;
                    canonical = Some((id, set));
                    queue.extend(waiting.drain(..).map(|w| vec![w]));
                }
                Err(e) if e.kind == ErrorKind::OutcomeUnknown => {
                    work.read_backs += 1;
                    match self.read_back(&request).await? {
                        ReadBack::Applied(id, set) => {
                            work.read_backs_applied += 1;
                            self.record_merge(work, &mkey, &request, &id)?;
                            canonical = Some((id, set));
                            queue.extend(waiting.drain(..).map(|w| vec![w]));
                        }
                        ReadBack::NotApplied => {
                            not_applied(work)?;
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
                    not_applied(work)?;
                    return Err(Stop::api("merge", e));
                }
                Err(e)
                    if matches!(e.kind, ErrorKind::Conflict | ErrorKind::Permanent)
                        && e.status.is_some_and(|s| (400..500).contains(&s)) =>
                {
                    not_applied(work)?;
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
                    not_applied(work)?;
                    return Err(Stop::api("merge", e));
                }
            }
        }
        // Contacts left alone: their partners were all quarantined (or there was only one).
        for lone in waiting {
            match named_in_conflict.get(&lone) {
                Some(msg) => {
                    work.quarantine(&lone, Reason::ActiveAssociations, format!("409: {msg}"))
                }
                None => work.quarantine(
                    &lone,
                    Reason::NoPartner,
                    "every other member of the cluster is quarantined; nothing to merge it with"
                        .into(),
                ),
            }
        }
        Ok(canonical)
    }

    fn record_merge(
        &self,
        work: &Work<'_>,
        mkey: &str,
        request: &[String],
        canonical: &str,
    ) -> Result<(), Stop> {
        self.journal.append(
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
}

/// Whether `ids` (two or more) all resolving to `head` means they were merged into it: `head`
/// is a new record, or one of them where the platform's merge keeps the survivor's id.
fn merged_into<D: CustomerDirectory>(ids: &[String], head: &str) -> bool {
    if D::CAPABILITIES.merge_keeps_survivor_id {
        ids.len() >= MIN_MERGE_IDS
    } else {
        !ids.iter().any(|i| i == head)
    }
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

/// Checks that `cap` records per merge request is within what the directory takes.
pub fn check_cap(cap: usize, caps: &DirectoryCapabilities) -> Result<(), CapError> {
    let (min, max) = (
        caps.min_ids_per_merge.max(MIN_MERGE_IDS),
        caps.max_ids_per_merge,
    );
    if !(min..=max).contains(&cap) {
        return Err(CapError { cap, min, max });
    }
    Ok(())
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
    fn one_source_per_request_chains_every_member_through_the_survivor() {
        let steps = planned_requests(&ids(4), 2);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0], vec!["c00", "c01"]);
        assert_eq!(steps[2], vec!["<canonical of step 2>", "c03"]);
    }

    #[test]
    fn the_cap_is_checked_against_the_directory() {
        let caps = DirectoryCapabilities {
            max_ids_per_merge: 25,
            min_ids_per_merge: 2,
            max_merge_set: Some(52),
            merge_reversible: false,
            merge_keeps_survivor_id: false,
            max_ids_per_fetch: 25,
        };
        assert_eq!(
            check_cap(1, &caps),
            Err(CapError {
                cap: 1,
                min: 2,
                max: 25
            })
        );
        assert!(check_cap(26, &caps).is_err());
        assert!(check_cap(2, &caps).is_ok());
        assert!(check_cap(25, &caps).is_ok());
        let pairwise = DirectoryCapabilities {
            max_ids_per_merge: 2,
            min_ids_per_merge: 1,
            ..caps
        };
        assert!(check_cap(2, &pairwise).is_ok());
        assert!(check_cap(3, &pairwise).is_err());
    }

    #[test]
    fn auth_failures_stop_the_run_and_conflicts_do_not() {
        assert!(is_fatal(&PlatformError::new(ErrorKind::Config, "x")));
        assert!(is_fatal(&PlatformError::new(ErrorKind::Auth, "x")));
        assert!(!is_fatal(&PlatformError::new(ErrorKind::Conflict, "x")));
        assert!(!is_fatal(&PlatformError::new(ErrorKind::Permanent, "x")));
    }

    #[test]
    fn every_settlement_is_an_outcome_of_the_same_name() {
        for (s, o) in [
            (SettledOutcome::Merged, "merged"),
            (SettledOutcome::PartiallyMerged, "partially_merged"),
            (SettledOutcome::AlreadyMerged, "already_merged"),
            (SettledOutcome::Quarantined, "quarantined"),
        ] {
            let outcome: Outcome = s.into();
            assert_eq!(serde_json::to_value(outcome).unwrap(), o);
        }
    }
}
