//! A contact list to upsert contacts into (Genesys Cloud Outbound contact lists; NICE CXone
//! calling lists).
//!
//! What a list must hold for a contact is a rule of dedupd, not of the platform: it is
//! [`ListRow`] (columns from the feeds config, do-not-call → not callable) and
//! [`payload_hash`], in `dedupd-core`. A sink only writes rows and says, row by row, what the
//! platform made of them; what differs between platforms is stated in [`ListCapabilities`].

use std::future::Future;

use serde::Serialize;

pub use dedupd_core::contact_list::{ListLayout, ListRow, payload_hash};

use crate::{PlatformError, Session};

/// What a platform's contact lists can do; the sync job plans its batches from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCapabilities {
    /// Most rows one [`ContactListSink::upsert`] call takes.
    pub max_batch: usize,
    /// Whether sending a row again is harmless (an upsert by key): then a batch whose outcome
    /// is unknown may simply stay pending and be sent again by the next run. When false, a
    /// re-sent row may duplicate, and the sink must reconcile before it resends.
    pub idempotent_upsert: bool,
}

/// Which list to write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListTarget {
    /// An existing list, by the platform's id.
    Existing(String),
    /// Create a list with this name (and the layout's columns) and use it.
    Create(String),
}

/// A list resolved on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedList {
    /// The platform's id of the list.
    pub id: String,
    /// The list was created by this call.
    pub created: bool,
}

/// A row the platform refused for good: it stays pending and is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    /// The row's key.
    pub key: String,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// The platform's machine-readable code.
    pub code: Option<String>,
    /// The platform's message (value-free as the platform writes it).
    pub message: Option<String>,
}

/// What the platform made of one batch, row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// Keys of the rows the platform accepted (and returned).
    pub accepted: Vec<String>,
    /// Rows refused for good.
    pub refused: Vec<RefusedRow>,
    /// Keys of rows sent in an accepted batch that the platform did not confirm: pending.
    pub unconfirmed: Vec<String>,
}

/// A platform's contact lists.
pub trait ContactListSink: Session + Sync {
    /// What the platform's lists can do.
    const CAPABILITIES: ListCapabilities;

    /// A row as the platform would be sent it (for a dry run's plan file): no I/O.
    type Request: Serialize;

    /// The request body of `row` for list `list_id` of `layout`.
    fn request(list_id: &str, layout: &ListLayout, row: &ListRow) -> Self::Request;

    /// Finds the target list and checks it has the layout's columns (naming those it lacks),
    /// or creates it with them.
    fn resolve(
        &self,
        target: &ListTarget,
        layout: &ListLayout,
    ) -> impl Future<Output = Result<ResolvedList, PlatformError>> + Send;

    /// Upserts at most [`ListCapabilities::max_batch`] rows by key. An `Err` concerns the
    /// whole batch (none of it is known to be applied).
    fn upsert(
        &self,
        list_id: &str,
        layout: &ListLayout,
        rows: Vec<ListRow>,
    ) -> impl Future<Output = Result<UpsertOutcome, PlatformError>> + Send;
}
