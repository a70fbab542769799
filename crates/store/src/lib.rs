//! `dedupd-store`: where dedupd keeps what it knows between runs.
//!
//! Every kind of state has the same shape: **a trait** (what the state does, one atomic
//! operation per method), **its backends**, and **one behaviour suite** that every backend
//! passes, so their semantics cannot drift. Where a deployment picks the backend at run time, a
//! thin enum implements the trait by dispatching to the backends (no `dyn`).
//!
//! | Kind | Trait | Backends | Chosen at run time by | Suite |
//! |------|-------|----------|-----------------------|-------|
//! | Contact state (per `externalId`: merged contact, field timestamps, content hash, sync and run bookkeeping) | [`contacts::ContactState`] | [`contacts::EmbeddedStore`] (redb) | — | `contacts::suite` |
//! | Dedup window of the message gateway | [`window::DedupWindow`] | [`window::EmbeddedWindow`], [`window::RedisWindow`] | [`window::Window`] | `window::suite` |
//! | Notification outbox | [`outbox::OutboxStore`] | [`outbox::EmbeddedOutbox`] (redb), [`outbox::PgOutbox`] (PostgreSQL) | [`outbox::Outbox`] | `outbox::suite` |
//! | Merge journal of `merge apply` | [`merge_journal::MergeJournal`] | [`merge_journal::FileJournal`] (NDJSON per cluster) | — | `merge_journal::suite` |
//! | Resolution index (known records and their customers, the batch run's model) | [`resolution::ResolutionIndex`] | [`resolution::EmbeddedIndex`] (redb), [`resolution::PgIndex`] (PostgreSQL) | — | `resolution::suite` |
//! | Per-contact locks of `merge apply` | [`locks::ContactLocks`] | [`locks::FileLocks`] (`flock`), [`locks::RedisLocks`] (owner token + lease) | — (file always, Redis too with `--redis`) | `locks::suite` |
//!
//! The suites, and the test helpers that go with them (test server URLs such as
//! `outbox::pg_test_url`), are compiled for this crate's tests and, for other crates' tests,
//! with the `testing` feature; they are not part of the product's API.
//!
//! Errors name what they concern: the key, the file path, or the server's address (its password
//! redacted).

pub mod contacts;
pub mod locks;
pub mod merge_journal;
pub mod outbox;
mod pg;
pub mod resolution;
pub mod window;

pub use contacts::{ContactState, EmbeddedStore, EmbeddedWriter, RunChange, StoredContact};

use thiserror::Error;

/// Errors of a state backend.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The state directory or file could not be created or opened.
    #[error("cannot open the state store at {path}: {source}")]
    Open {
        /// The path, or the server address (password redacted), that failed.
        path: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend failed during a read or write.
    #[error("state store {op} failed at {at}: {source}")]
    Backend {
        /// What was being done.
        op: &'static str,
        /// What it concerned: a file path, a key, or a server's address (password redacted).
        at: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value could not be decoded.
    #[error("stored contact {key:?} is corrupt: {reason}")]
    Corrupt {
        /// The key of the bad entry.
        key: String,
        /// Why decoding failed.
        reason: &'static str,
    },
    /// The background writer stopped (its error is reported by `finish`).
    #[error("the state writer stopped early")]
    WriterGone,
}

impl StoreError {
    /// Whether this is an embedded store that another process (or another open in this one)
    /// holds: redb allows one process per file.
    pub fn is_locked(&self) -> bool {
        match self {
            StoreError::Open { source, .. } => matches!(
                source.downcast_ref::<redb::DatabaseError>(),
                Some(redb::DatabaseError::DatabaseAlreadyOpen)
            ),
            _ => false,
        }
    }

    pub(crate) fn backend(
        op: &'static str,
        at: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            op,
            at: at.into(),
            source: Box::new(e),
        }
    }
}

/// The URL without its password, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
