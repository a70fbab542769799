//! A directory of customer records to scan, fetch and merge (Genesys Cloud External Contacts;
//! NICE CXone DFO customers).
//!
//! The jobs see records by id, and learn from the directory which canonical record an id now
//! belongs to (a merged-away id resolves to the record it was merged into). How a platform
//! merges is stated in [`DirectoryCapabilities`]: how many ids one merge takes (Genesys 25,
//! CXone 2: one card into another), whether a merge can be undone, how large a merge tree may
//! grow. Where merged values go is the platform's [`CustomerDirectory::place`]: the generic
//! part (which values, in which order, which are never sent) is
//! [`MergeValues`](dedupd_core::merge_values::MergeValues) in `dedupd-core`.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use dedupd_core::merge_values::MergeValues;

use crate::{PlatformError, Session};

/// What a platform's merges can do; the merge job chunks and checks from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryCapabilities {
    /// Most ids one merge call takes (the canonical record included).
    pub max_ids_per_merge: usize,
    /// Fewest ids one merge call takes.
    pub min_ids_per_merge: usize,
    /// Most records one merge tree may hold (every record merged into one, canonical records
    /// of earlier merges included), when the platform has such a limit.
    pub max_merge_set: Option<usize>,
    /// Whether a merge can be undone on the platform.
    pub merge_reversible: bool,
    /// Whether a merge keeps one of its ids (the first, the survivor) as the merged record
    /// (CXone: the source cards go, the target card stays), rather than producing a record
    /// that is none of them (Genesys: a new canonical contact). A read-back counts a merge as
    /// done when every id resolves to one record: a new one, or, when this is true, one of
    /// the ids.
    pub merge_keeps_survivor_id: bool,
    /// Most ids one fetch call takes.
    pub max_ids_per_fetch: usize,
}

/// One customer record as the planner reads it: the platform's fields mapped onto the plan's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerRecord {
    /// The platform's id.
    pub id: String,
    /// What kind of record it is on the platform (e.g. `ephemeral`), lowercase.
    pub source: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// The record's first e-mail address.
    pub email: String,
    /// The record's first phone number (E.164 when the platform has it).
    pub phone: String,
    /// Street line(s).
    pub street: String,
    /// City.
    pub city: String,
    /// Region, state or province.
    pub region: String,
    /// Postal code.
    pub postcode: String,
    /// Country code, when the platform has one.
    pub country: Option<String>,
    /// Last modified.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Where an id lives now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// `canonical` is the id itself or the record it was merged into; `set` the size of its
    /// merge tree (1 when never merged).
    Found {
        /// The live record.
        canonical: String,
        /// Records in its merge tree.
        set: usize,
    },
    /// No such record.
    NotFound,
}

/// The answer to a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The canonical record the merge produced, when the platform named it.
    pub canonical: Option<String>,
    /// Records in its merge tree, as the platform reported them (0 when it did not say).
    pub set: usize,
}

/// Where a platform puts a cluster's merged values.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement<V> {
    /// What the merge request carries.
    pub values: V,
    /// Per plan field, values that found no slot or were left out.
    pub unplaced: BTreeMap<String, Vec<String>>,
}

/// A page of scanned records.
pub type ScanPage = Vec<CustomerRecord>;

/// A platform's customer directory.
pub trait CustomerDirectory: Session + Sync {
    /// What the platform's merges can do.
    const CAPABILITIES: DirectoryCapabilities;

    /// The merged values as a merge request carries them (written as is by a dry run).
    type Values: Serialize + Send + Sync;

    /// Places `values` in the platform's fields: no I/O.
    fn place(values: &MergeValues) -> Placement<Self::Values>;

    /// The next page of a scan of every live record (merged-away records left out), `None`
    /// when the scan is over. `scope` narrows it (a Genesys division).
    fn scan_page(
        &self,
        scan: &mut Scan,
    ) -> impl Future<Output = Result<Option<ScanPage>, PlatformError>> + Send;

    /// Where each id lives now (at most [`DirectoryCapabilities::max_ids_per_fetch`] ids).
    /// An id the answer lacks could not be read.
    fn resolve(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Resolved>, PlatformError>> + Send;

    /// Merges `ids` (within the capabilities' bounds; a canonical record first when there is
    /// one) into one record carrying `values`.
    fn merge(
        &self,
        ids: &[String],
        values: &Self::Values,
    ) -> impl Future<Output = Result<Merged, PlatformError>> + Send;
}

/// The state of a scan: where it stands, opaque to the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Only this part of the directory (a Genesys division), when set.
    pub scope: Option<String>,
    /// The platform's cursor; `None` before the first page.
    pub cursor: Option<String>,
    /// The scan has ended.
    pub done: bool,
    /// Records read so far, merged-away ones included.
    pub read: u64,
}
