//! The embedded resolution index: one redb file.
//!
//! Tables: `resolve_meta_v1` (`settings` → the [`Settings`] as JSON), `resolve_records_v1`
//! (sequence number → a record, its values and its customer, as JSON), `resolve_aliases_v1`
//! (absorbed customer → the customer it joined). Each call runs on a thread of its own, so a
//! commit never blocks the async runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{Entry, ResolutionIndex, Settings, Snapshot, Stored, follow};
use crate::StoreError;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("resolve_meta_v1");
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("resolve_records_v1");
const ALIASES: TableDefinition<&str, &str> = TableDefinition::new("resolve_aliases_v1");

/// The file name inside the index directory.
pub const INDEX_FILE: &str = "resolve.redb";

/// The resolution index in one redb file (one process at a time).
#[derive(Clone)]
pub struct EmbeddedIndex {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedIndex {
    /// Opens (or creates) the index in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(INDEX_FILE);
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        let db = Database::create(&path).map_err(|e| open_err(Box::new(e)))?;
        Ok(EmbeddedIndex {
            db: Arc::new(db),
            path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`ResolutionIndex::append`] on the calling thread, for a writer that has a thread of
    /// its own (no thread started per commit): one durable commit.
    pub fn append_blocking(&self, entries: &[Entry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        append_in(&self.db, entries, &self.path.display().to_string())
    }

    /// Runs `op` on a thread of its own and waits for it without blocking the runtime.
    async fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Database, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let (db, at) = (Arc::clone(&self.db), self.path.display().to_string());
        std::thread::Builder::new()
            .name("resolve-index".into())
            .spawn(move || {
                let result = op(&db, &at);
                // The file is free again (for a reopen) by the time the caller hears back.
                drop(db);
                let _ = tx.send(result);
            })
            .map_err(|e| StoreError::backend("spawn", self.path.display().to_string(), e))?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn w(at: &str) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError::backend("write", at, e)
}

fn r(at: &str) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError::backend("read", at, e)
}

fn encode(e: &Entry, at: &str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&Stored::of(e)).map_err(|err| StoreError::backend("encode", at, err))
}

/// Writes entries after the last one stored, and their aliases.
fn write_entries(
    tx: &redb::WriteTransaction,
    entries: &[Entry],
    at: &str,
) -> Result<(), StoreError> {
    let mut records = tx.open_table(RECORDS).map_err(|e| w(at)(e.into()))?;
    let next = match records.last().map_err(|e| w(at)(e.into()))? {
        Some((k, _)) => k.value() + 1,
        None => 0,
    };
    let mut aliases = tx.open_table(ALIASES).map_err(|e| w(at)(e.into()))?;
    for (seq, e) in (next..).zip(entries) {
        records
            .insert(seq, encode(e, at)?.as_slice())
            .map_err(|err| w(at)(err.into()))?;
        for absorbed in &e.absorbed {
            if absorbed != &e.customer {
                aliases
                    .insert(absorbed.as_str(), e.customer.as_str())
                    .map_err(|err| w(at)(err.into()))?;
            }
        }
    }
    Ok(())
}

/// Appends `entries` in one write transaction, refused when the index was never built.
fn append_in(db: &Database, entries: &[Entry], at: &str) -> Result<(), StoreError> {
    let tx = db.begin_write().map_err(|e| w(at)(e.into()))?;
    {
        let meta = tx.open_table(META).map_err(|e| w(at)(e.into()))?;
        if meta.get("settings").map_err(|e| w(at)(e.into()))?.is_none() {
            return Err(StoreError::backend(
                "append",
                at,
                std::io::Error::other(
                    "the index was never built: run merge plan with --resolve-index first",
                ),
            ));
        }
    }
    write_entries(&tx, entries, at)?;
    tx.commit().map_err(|e| w(at)(e.into()))
}

impl ResolutionIndex for EmbeddedIndex {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn replace(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.call(move |db, at| {
            let settings = serde_json::to_vec(&snapshot.settings)
                .map_err(|e| StoreError::backend("encode", at, e))?;
            let tx = db.begin_write().map_err(|e| w(at)(e.into()))?;
            tx.delete_table(RECORDS).map_err(|e| w(at)(e.into()))?;
            tx.delete_table(ALIASES).map_err(|e| w(at)(e.into()))?;
            {
                let mut meta = tx.open_table(META).map_err(|e| w(at)(e.into()))?;
                meta.insert("settings", settings.as_slice())
                    .map_err(|e| w(at)(e.into()))?;
            }
            write_entries(&tx, &snapshot.entries, at)?;
            tx.commit().map_err(|e| w(at)(e.into()))
        })
        .await
    }

    async fn append(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.call(move |db, at| append_in(db, &entries, at)).await
    }

    async fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        self.call(|db, at| {
            let tx = db.begin_read().map_err(|e| r(at)(e.into()))?;
            let meta = match tx.open_table(META) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(r(at)(e.into())),
            };
            let Some(settings) = meta.get("settings").map_err(|e| r(at)(e.into()))? else {
                return Ok(None);
            };
            let settings: Settings =
                serde_json::from_slice(settings.value()).map_err(|_| StoreError::Corrupt {
                    key: "settings".into(),
                    reason: "not the settings of a resolution index",
                })?;
            let mut aliases = HashMap::new();
            if let Ok(t) = tx.open_table(ALIASES) {
                for row in t.iter().map_err(|e| r(at)(e.into()))? {
                    let (k, v) = row.map_err(|e| r(at)(e.into()))?;
                    aliases.insert(k.value().to_owned(), v.value().to_owned());
                }
            }
            let mut entries = Vec::new();
            if let Ok(t) = tx.open_table(RECORDS) {
                for row in t.iter().map_err(|e| r(at)(e.into()))? {
                    let (k, v) = row.map_err(|e| r(at)(e.into()))?;
                    let corrupt = || StoreError::Corrupt {
                        key: k.value().to_string(),
                        reason: "not a record of a resolution index",
                    };
                    let stored: Stored =
                        serde_json::from_slice(v.value()).map_err(|_| corrupt())?;
                    let mut e = stored.into_entry().ok_or_else(corrupt)?;
                    let survivor = follow(&aliases, &e.customer);
                    if survivor != e.customer {
                        e.customer = survivor.to_owned();
                    }
                    entries.push(e);
                }
            }
            Ok(Some(Snapshot { settings, entries }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_index_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(dir.path()).unwrap();
        super::super::suite::run(&index).await;
        // What was committed is there after a reopen.
        let before = index.load().await.unwrap();
        drop(index);
        let again = EmbeddedIndex::open(dir.path()).unwrap();
        assert_eq!(again.load().await.unwrap(), before);
    }
}
