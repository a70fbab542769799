//! The merge journal of `merge apply`: per cluster, what was sent, what came of it, and how the
//! cluster ended; per run, whether it completed.
//!
//! An `intent` is durable before its merge request leaves; its `merged` (or `not_applied`)
//! follows once the answer, or a read-back, settles it. A run killed between the two finds the
//! intent ([`History::open_intent`]) and reads the platform state back before deciding, so
//! nothing is merged twice and nothing is lost. A cluster's `settled` event names the run that
//! wrote it; a run killed before its outputs were written ([`MergeJournal::was_interrupted`])
//! leaves its settlements to the next run's report.
//!
//! Keys are computed by the caller (the cluster key, the merge request's idempotency key): the
//! journal stores them as given.
//!
//! Backends: [`FileJournal`] (one NDJSON file per cluster in the state directory). Every backend
//! passes the same behavioural suite, `suite` (feature `testing`).

mod file;
#[cfg(any(test, feature = "testing"))]
pub mod suite;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use file::FileJournal;

use crate::StoreError;
use dedupd_core::plan::Basis;

/// How a cluster ended in a run, as the journal stores it (`settled` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettledOutcome {
    /// Every member is in one canonical contact, merged by this cluster's requests.
    Merged,
    /// Merged, except members quarantined.
    PartiallyMerged,
    /// Every member was found in one merge tree already; nothing was sent.
    AlreadyMerged,
    /// Nothing could be merged; every member is quarantined.
    Quarantined,
}

/// One journal event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A merge request is about to be sent (durable before it leaves).
    Intent {
        /// When (UTC).
        at: DateTime<Utc>,
        /// Idempotency key of the request.
        key: String,
        /// The contact ids of the request.
        ids: Vec<String>,
    },
    /// The merge happened (its answer, or a read-back after an unknown outcome).
    Merged {
        /// When (UTC).
        at: DateTime<Utc>,
        /// Idempotency key of the request.
        key: String,
        /// The contact ids of the request.
        ids: Vec<String>,
        /// The new canonical contact.
        canonical: String,
    },
    /// The merge did not happen (refused, or a read-back showed nothing changed).
    NotApplied {
        /// When (UTC).
        at: DateTime<Utc>,
        /// Idempotency key of the request.
        key: String,
    },
    /// The cluster reached an end state for this run.
    Settled {
        /// When (UTC).
        at: DateTime<Utc>,
        /// How it ended.
        outcome: SettledOutcome,
        /// The canonical contact the cluster ended in, if any.
        canonical: Option<String>,
        /// Members quarantined by this run (they are tried again by later runs).
        quarantined: Vec<String>,
        /// The run that settled it (absent in journals written before runs were named).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<String>,
        /// The decision the run carried out: a review's approval or split, or the run's
        /// `--approve-all` / `--min-confidence` (absent in journals written before reviews).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<Basis>,
    },
}

/// The last `settled` event of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// How it ended.
    pub outcome: SettledOutcome,
    /// The canonical contact it ended in, if any.
    pub canonical: Option<String>,
    /// Members quarantined by that run.
    pub quarantined: Vec<String>,
    /// The run that settled it, when named.
    pub run: Option<String>,
    /// The decision it carried out, when recorded.
    pub decision: Option<Basis>,
}

/// What a cluster's journal says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The last canonical contact a merge of this cluster produced.
    pub canonical: Option<String>,
    /// Every canonical contact merges of this cluster produced, oldest first.
    pub canonicals: Vec<String>,
    /// A merge sent without a known outcome: `(key, ids)`.
    pub open_intent: Option<(String, Vec<String>)>,
    /// The last `settled` event.
    pub settled: Option<Settlement>,
    /// Merges recorded as done.
    pub merges: u64,
}

impl History {
    /// Settled for good: merged (or found merged) with nothing left in quarantine.
    pub fn is_final(&self) -> bool {
        self.open_intent.is_none()
            && self.settled.as_ref().is_some_and(|s| {
                s.quarantined.is_empty()
                    && matches!(
                        s.outcome,
                        SettledOutcome::Merged | SettledOutcome::AlreadyMerged
                    )
            })
    }

    /// Folds one event into the history (events in the order they were appended).
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Intent { key, ids, .. } => self.open_intent = Some((key, ids)),
            Event::Merged { key, canonical, .. } => {
                if self.open_intent.as_ref().is_some_and(|(k, _)| *k == key) {
                    self.open_intent = None;
                }
                self.canonicals.push(canonical.clone());
                self.canonical = Some(canonical);
                self.merges += 1;
            }
            Event::NotApplied { key, .. } => {
                if self.open_intent.as_ref().is_some_and(|(k, _)| *k == key) {
                    self.open_intent = None;
                }
            }
            Event::Settled {
                outcome,
                canonical,
                quarantined,
                run,
                decision,
                ..
            } => {
                self.settled = Some(Settlement {
                    outcome,
                    canonical,
                    quarantined,
                    run,
                    decision,
                });
            }
        }
    }
}

/// A live run: its name, and whatever keeps it marked alive for as long as the process lives,
/// so another run can tell an interrupted run (gone, outputs never written) from a live one.
pub struct RunMark {
    /// The run's name, written into the `settled` events it appends.
    pub id: String,
    _alive: Box<dyn Send + Sync>,
}

impl RunMark {
    /// A run named `id`, alive while `alive` (e.g. a lock held on a file) is kept.
    pub fn new(id: String, alive: impl Send + Sync + 'static) -> RunMark {
        RunMark {
            id,
            _alive: Box::new(alive),
        }
    }
}

impl std::fmt::Debug for RunMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMark")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A merge journal backend.
pub trait MergeJournal: Send + Sync {
    /// What the journal of `cluster_key` says (empty when it has none). Unreadable events (a
    /// write cut short by a crash) are skipped.
    fn history(&self, cluster_key: &str) -> Result<History, StoreError>;

    /// Appends one event to the journal of `cluster_key`, durably, before returning.
    fn append(&self, cluster_key: &str, event: &Event) -> Result<(), StoreError>;

    /// Starts a run: a fresh name, marked alive until the [`RunMark`] is dropped.
    fn begin_run(&self) -> Result<RunMark, StoreError>;

    /// Marks `run` complete once its outputs are written: from then on, what it settled was
    /// reported, and later runs skip it.
    fn complete_run(&self, run: &RunMark) -> Result<(), StoreError>;

    /// Whether the run named `run` settled clusters that no report has shown: it never
    /// completed and it is gone. A live run is never taken over.
    fn was_interrupted(&self, run: &str) -> Result<bool, StoreError>;
}
