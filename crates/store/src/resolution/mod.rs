//! The resolution index: the known customers that `POST /v1/contacts/resolve` and
//! `merge plan --incremental` resolve new records against.
//!
//! # Principal types
//!
//! - [`ResolutionIndex`]: the trait every backend implements: [`EmbeddedIndex`] (redb, the
//!   default; one process at a time) and [`PgIndex`] (PostgreSQL; appends from several
//!   processes serialized by an advisory lock, so all load the records in commit order). What it keeps is all [`Resolver::restore`](dedupd_core::matching::Resolver)
//!   needs: the settings and learned model of the batch run that built it ([`Settings`]), and
//!   every known record with its customer, in the order they became known ([`Entry`]). Everything
//!   else (features, blocks, generic values, name counts) is derived again when it is loaded, by
//!   the batch engine's own stages.
//! - [`ResolutionIndex::replace`] writes a batch run's result (`merge plan`, `dedupd resolve
//!   build`); [`ResolutionIndex::append`] records resolved records, one durable commit per call
//!   (callers group many records into one call); [`ResolutionIndex::load`] reads it all back.
//!   When a record joins two known customers into one, the absorbed customer's id becomes an
//!   alias of the surviving one, so its older records load under the survivor.
//! - `suite` (feature `testing`): the behaviour suite every backend passes.

mod embedded;
mod postgres;
#[cfg(any(test, feature = "testing"))]
pub mod suite;

use std::future::Future;

use dedupd_core::matching::{COLUMNS, MatchConfig, Model, Record};
use serde::{Deserialize, Serialize};

pub use embedded::{EmbeddedIndex, INDEX_FILE};
pub use postgres::{Appends, PgIndex, PgRecording};

use crate::StoreError;

/// The batch run's settings and learned model: the index resolves with these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The matcher settings.
    pub config: MatchConfig,
    /// The learned weights.
    pub model: Model,
}

/// One known record and the customer it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The record, normalized.
    pub record: Record,
    /// Its customer's id.
    pub customer: String,
    /// Customers this record's evidence joined into `customer` (their ids become aliases).
    pub absorbed: Vec<String>,
}

/// Everything an index holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Settings and model.
    pub settings: Settings,
    /// Every known record with its customer (aliases followed), in the order they became
    /// known.
    pub entries: Vec<Entry>,
}

/// The resolution index, whatever the backend.
pub trait ResolutionIndex: Send + Sync {
    /// Which backend (`embedded`), for logs and readiness.
    fn backend(&self) -> &'static str;

    /// Replaces everything with a batch run's result, in one transaction.
    fn replace(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records resolved records after the known ones, in one durable commit.
    fn append(&self, entries: Vec<Entry>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Everything known, customers with aliases followed; `None` when nothing was ever built.
    fn load(&self) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;
}

/// How a record is stored: its normalized values in column order, when it was updated, and
/// its customer.
#[derive(Serialize, Deserialize)]
struct Stored {
    v: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
    c: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    a: Vec<String>,
}

impl Stored {
    fn of(e: &Entry) -> Stored {
        Stored {
            v: COLUMNS
                .iter()
                .map(|&c| e.record.get(c).unwrap_or("").to_owned())
                .collect(),
            t: e.record.updated_at,
            c: e.customer.clone(),
            a: e.absorbed.clone(),
        }
    }

    fn into_entry(self) -> Option<Entry> {
        if self.v.len() != COLUMNS.len() {
            return None;
        }
        let values: [&str; 11] = std::array::from_fn(|i| self.v[i].as_str());
        let updated = self
            .t
            .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0));
        Some(Entry {
            record: Record::new(values, updated),
            customer: self.c,
            absorbed: self.a,
        })
    }
}

/// Follows aliases to the surviving customer (a chain is never longer than the number of
/// aliases; a cycle, which no run writes, stops where it closes).
fn follow<'a>(aliases: &'a std::collections::HashMap<String, String>, mut id: &'a str) -> &'a str {
    for _ in 0..=aliases.len() {
        match aliases.get(id) {
            Some(next) if next != id => id = next,
            _ => break,
        }
    }
    id
}
