//! The contact state: per `externalId`, the merged contact with per-field source timestamps
//! and its content hash, what each sync target last accepted, and the run bookkeeping of the
//! jobs that write it.
//!
//! Backends: [`EmbeddedStore`] (redb, one directory, no server; the default). Every backend
//! passes the same behavioural suite, `suite` (feature `testing`).

pub mod codec;
mod embedded;
#[cfg(any(test, feature = "testing"))]
pub mod suite;

use dedupd_core::{Change, Contact};

pub use embedded::{EmbeddedStore, EmbeddedWriter};

use crate::StoreError;

/// A contact as stored: the merged contact, the hash of its platform-visible content, and what
/// changed about it that no completed run has reported yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContact {
    /// The merged contact.
    pub contact: Contact,
    /// [`Contact::content_hash`] at the time of writing.
    pub hash: [u8; 16],
    /// The change a run recorded with this write, and that run (see [`ContactState::begin_run`]).
    pub change: Option<RunChange>,
}

/// A change and the run that committed it; it is pending until a run at least that recent has
/// written its outputs ([`ContactState::complete_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunChange {
    /// The run that committed (or first committed) the change.
    pub run: u64,
    /// What changed.
    pub change: Change,
}

impl StoredContact {
    /// Wraps `contact` with its current content hash, with no change to report.
    pub fn new(contact: Contact) -> Self {
        let hash = contact.content_hash();
        Self {
            contact,
            hash,
            change: None,
        }
    }

    /// Wraps `contact` with its content hash and the change `run` records with it.
    pub fn with_change(contact: Contact, run: u64, change: Change) -> Self {
        Self {
            change: Some(RunChange { run, change }),
            ..Self::new(contact)
        }
    }

    /// The change not yet reported by a completed run, given the last completed run.
    pub fn pending_change(&self, completed_run: u64) -> Option<RunChange> {
        self.change.filter(|c| c.run > completed_run)
    }
}

/// The contact state of one dedupd deployment.
///
/// Writes go through [`ContactState::put_batch`], one atomic commit per batch; a pipeline hands
/// batches to a single writer (see [`EmbeddedStore::writer`]) so that commits are grouped.
pub trait ContactState: Send + Sync {
    /// The stored contact under `external_id`.
    fn get(&self, external_id: &str) -> Result<Option<StoredContact>, StoreError>;
    /// Looks up many keys in one read snapshot; the result is in the order of `ids`.
    fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<StoredContact>>, StoreError>;
    /// Writes a batch atomically: all of it or none.
    fn put_batch(&self, batch: &[StoredContact]) -> Result<(), StoreError>;
    /// Visits every stored contact in `externalId` order.
    fn for_each(
        &self,
        f: &mut dyn FnMut(StoredContact) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// How many contacts are stored.
    fn len(&self) -> Result<u64, StoreError>;
    /// True when nothing is stored.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Visits every contact in `externalId` order with the hash `target` (e.g. a contact list
    /// id) last accepted for it (`None`: never sent). The caller decides what is pending by
    /// comparing that hash with the hash of what it would send now.
    fn for_each_with_synced(
        &self,
        target: &str,
        f: &mut dyn FnMut(StoredContact, Option<[u8; 16]>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Records that `target` accepted these contacts with these payload hashes, in one atomic
    /// commit. This is the sync journal: only what the platform acknowledged is marked, so a
    /// killed run resends at most what was in flight (and upserts make that harmless).
    fn mark_synced(&self, target: &str, entries: &[(String, [u8; 16])]) -> Result<(), StoreError>;

    /// The content hash `target` last accepted for `external_id`.
    fn synced_hash(&self, target: &str, external_id: &str) -> Result<Option<[u8; 16]>, StoreError>;

    /// Starts a run of `job` (e.g. `ingest`): returns its number, durably greater than every
    /// number handed out before, killed runs included.
    fn begin_run(&self, job: &str) -> Result<u64, StoreError>;

    /// The last run of `job` that wrote its outputs (0: none yet). Changes recorded by later
    /// runs ([`StoredContact::pending_change`]) have not been reported yet.
    fn completed_run(&self, job: &str) -> Result<u64, StoreError>;

    /// Records that `run` of `job` wrote its outputs: every change recorded by it or an earlier
    /// run is reported. Called only after the outputs are in place, so a run killed before that
    /// leaves its changes to the next run's outputs.
    fn complete_run(&self, job: &str, run: u64) -> Result<(), StoreError>;
}
