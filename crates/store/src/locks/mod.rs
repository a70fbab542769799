//! Per-contact locks: a run that works on a set of contacts holds a lock on each of them, so
//! concurrent runs never work on the same contacts.
//!
//! [`ContactLocks::try_lock`] takes every contact of a set or none (never a part, so two runs
//! locking overlapping sets cannot deadlock) and hands back a guard. A holder renews the guard
//! before each step that must still be exclusive ([`ContactLocks::renew`]: false when the lock
//! was lost) and releases it at the end.
//!
//! Backends:
//!
//! - [`FileLocks`]: one lock file per contact in the state directory, held with an exclusive
//!   advisory `flock` that the OS drops when the process dies (`kill -9` included): a crashed run
//!   never leaves a stale lock behind. Local to one machine.
//! - [`RedisLocks`]: one key per contact with an owner token and a lease, for runs on several
//!   machines. A dead holder's lock frees itself after the lease.
//!
//! Both pass the same behavioural suite, `suite` (feature `testing`).

mod file;
mod redis;
#[cfg(any(test, feature = "testing"))]
pub mod suite;

use std::future::Future;

pub use file::{FileLocks, FileLocksHeld};
pub use redis::{RedisLocks, RedisLocksHeld};

use crate::StoreError;

/// A per-contact lock backend. Each value is one holder (e.g. one run): two values lock against
/// each other even in one process.
pub trait ContactLocks: Send + Sync {
    /// What a holder keeps while it holds a set of contacts.
    type Held: Send + Sync;

    /// Locks every id of `ids`, or none: `Ok(None)` when another holder holds one of them.
    /// Duplicate ids count once.
    fn try_lock(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Option<Self::Held>, StoreError>> + Send;

    /// Extends the hold on every contact of `held`; `Ok(false)` when one of them is no longer
    /// held (its lease lapsed, and another holder may have taken it).
    fn renew(&self, held: &Self::Held) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Releases every contact of `held` this holder still holds.
    fn release(&self, held: Self::Held) -> impl Future<Output = Result<(), StoreError>> + Send;
}
