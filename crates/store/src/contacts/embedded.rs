//! The embedded backend: one redb file in the state directory, no server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{ContactState, StoredContact, codec};
use crate::StoreError;

const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts_v1");
/// Key: `target` 0x1F `externalId`; value: the content hash the target accepted.
const SYNCED: TableDefinition<&str, &[u8]> = TableDefinition::new("synced_v1");
/// Key: a job (`ingest`, …); value: (last run started, last run that wrote its outputs).
const RUNS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("runs_v1");

fn synced_key(target: &str, external_id: &str) -> String {
    let mut k = String::with_capacity(target.len() + 1 + external_id.len());
    k.push_str(target);
    k.push('\u{1f}');
    k.push_str(external_id);
    k
}

/// The file name inside the state directory.
pub(crate) const STATE_FILE: &str = "state.redb";

/// Contact state in a redb file under a directory.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (creating when needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: dir.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        let path = dir.join(STATE_FILE);
        let db = Database::create(&path).map_err(|e| open_err(Box::new(e)))?;
        // Create the table up front so readers never meet a missing table.
        let tx = db.begin_write().map_err(|e| open_err(Box::new(e)))?;
        tx.open_table(CONTACTS).map_err(|e| open_err(Box::new(e)))?;
        tx.open_table(SYNCED).map_err(|e| open_err(Box::new(e)))?;
        tx.open_table(RUNS).map_err(|e| open_err(Box::new(e)))?;
        tx.commit().map_err(|e| open_err(Box::new(e)))?;
        Ok(Self {
            db: Arc::new(db),
            path,
        })
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The redb file, for errors.
    fn at(&self) -> String {
        self.path.display().to_string()
    }

    /// Starts the single writer: a thread that owns all writes and commits one transaction per
    /// `batch_size` contacts, so a run of a million contacts makes a hundred commits, not a
    /// million. Contacts sent after an error are dropped; [`EmbeddedWriter::finish`] reports it.
    pub fn writer(&self, batch_size: usize) -> EmbeddedWriter {
        let (tx, rx) = sync_channel::<Vec<StoredContact>>(4);
        let store = self.clone();
        let handle = std::thread::Builder::new()
            .name("dedupd-state-writer".into())
            .spawn(move || writer_loop(&store, &rx));
        EmbeddedWriter {
            tx: Some(tx),
            handle: handle.ok(),
            pending: Vec::new(),
            batch_size: batch_size.max(1),
            written: 0,
        }
    }
}

fn writer_loop(
    store: &EmbeddedStore,
    rx: &Receiver<Vec<StoredContact>>,
) -> Result<u64, StoreError> {
    let mut written = 0u64;
    for batch in rx {
        store.put_batch(&batch)?;
        written += batch.len() as u64;
        tracing::debug!(
            contacts = batch.len(),
            total = written,
            "Committed a batch of contacts to the state."
        );
    }
    Ok(written)
}

/// The handle of the single writer thread (see [`EmbeddedStore::writer`]).
#[derive(Debug)]
pub struct EmbeddedWriter {
    tx: Option<SyncSender<Vec<StoredContact>>>,
    handle: Option<JoinHandle<Result<u64, StoreError>>>,
    pending: Vec<StoredContact>,
    batch_size: usize,
    written: u64,
}

impl EmbeddedWriter {
    /// Queues one contact; a full batch is handed to the writer thread.
    pub fn put(&mut self, c: StoredContact) -> Result<(), StoreError> {
        self.pending.push(c);
        if self.pending.len() >= self.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(self.batch_size));
        self.written += batch.len() as u64;
        match &self.tx {
            Some(tx) if tx.send(batch).is_ok() => Ok(()),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Commits what is queued, stops the thread and returns how many contacts were written.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        let flushed = self.flush();
        drop(self.tx.take());
        let joined = match self.handle.take() {
            Some(h) => h.join().map_err(|_| StoreError::WriterGone)?,
            None => Err(StoreError::WriterGone),
        };
        let written = joined?;
        flushed?;
        debug_assert_eq!(written, self.written);
        Ok(written)
    }
}

impl EmbeddedStore {
    /// Reads and rewrites the run counters of `job` in one write transaction.
    fn update_runs<T>(
        &self,
        job: &str,
        f: impl FnOnce((u64, u64)) -> (T, (u64, u64)),
    ) -> Result<T, StoreError> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| StoreError::backend("write", self.at(), e))?;
        let out = {
            let mut table = tx
                .open_table(RUNS)
                .map_err(|e| StoreError::backend("write", self.at(), e))?;
            let now = table
                .get(job)
                .map_err(|e| StoreError::backend("write", self.at(), e))?
                .map_or((0, 0), |v| v.value());
            let (out, next) = f(now);
            table
                .insert(job, next)
                .map_err(|e| StoreError::backend("write", self.at(), e))?;
            out
        };
        tx.commit()
            .map_err(|e| StoreError::backend("commit", self.at(), e))?;
        Ok(out)
    }
}

impl ContactState for EmbeddedStore {
    fn get(&self, external_id: &str) -> Result<Option<StoredContact>, StoreError> {
        Ok(self.get_many(&[external_id])?.pop().flatten())
    }

    fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<StoredContact>>, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let table = tx
            .open_table(CONTACTS)
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        ids.iter()
            .map(|id| {
                let v = table
                    .get(*id)
                    .map_err(|e| StoreError::backend("read", self.at(), e))?;
                v.map(|v| codec::decode(id, v.value())).transpose()
            })
            .collect()
    }

    fn put_batch(&self, batch: &[StoredContact]) -> Result<(), StoreError> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| StoreError::backend("write", self.at(), e))?;
        {
            let mut table = tx
                .open_table(CONTACTS)
                .map_err(|e| StoreError::backend("write", self.at(), e))?;
            let mut buf = Vec::with_capacity(256);
            for c in batch {
                codec::encode(c, &mut buf);
                table
                    .insert(c.contact.external_id.as_str(), buf.as_slice())
                    .map_err(|e| StoreError::backend("write", self.at(), e))?;
            }
        }
        tx.commit()
            .map_err(|e| StoreError::backend("commit", self.at(), e))
    }

    fn for_each(
        &self,
        f: &mut dyn FnMut(StoredContact) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("scan", self.at(), e))?;
        let table = tx
            .open_table(CONTACTS)
            .map_err(|e| StoreError::backend("scan", self.at(), e))?;
        for entry in table
            .iter()
            .map_err(|e| StoreError::backend("scan", self.at(), e))?
        {
            let (k, v) = entry.map_err(|e| StoreError::backend("scan", self.at(), e))?;
            f(codec::decode(k.value(), v.value())?)?;
        }
        Ok(())
    }

    fn for_each_with_synced(
        &self,
        target: &str,
        f: &mut dyn FnMut(StoredContact, Option<[u8; 16]>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("scan", self.at(), e))?;
        let contacts = tx
            .open_table(CONTACTS)
            .map_err(|e| StoreError::backend("scan", self.at(), e))?;
        let synced = tx
            .open_table(SYNCED)
            .map_err(|e| StoreError::backend("scan", self.at(), e))?;
        let mut key = String::new();
        for entry in contacts
            .iter()
            .map_err(|e| StoreError::backend("scan", self.at(), e))?
        {
            let (k, v) = entry.map_err(|e| StoreError::backend("scan", self.at(), e))?;
            let c = codec::decode(k.value(), v.value())?;
            key.clear();
            key.push_str(target);
            key.push('\u{1f}');
            key.push_str(k.value());
            let hash = synced
                .get(key.as_str())
                .map_err(|e| StoreError::backend("scan", self.at(), e))?
                .and_then(|h| h.value().try_into().ok());
            f(c, hash)?;
        }
        Ok(())
    }

    fn mark_synced(&self, target: &str, entries: &[(String, [u8; 16])]) -> Result<(), StoreError> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| StoreError::backend("write", self.at(), e))?;
        {
            let mut table = tx
                .open_table(SYNCED)
                .map_err(|e| StoreError::backend("write", self.at(), e))?;
            for (id, hash) in entries {
                table
                    .insert(synced_key(target, id).as_str(), hash.as_slice())
                    .map_err(|e| StoreError::backend("write", self.at(), e))?;
            }
        }
        tx.commit()
            .map_err(|e| StoreError::backend("commit", self.at(), e))
    }

    fn synced_hash(&self, target: &str, external_id: &str) -> Result<Option<[u8; 16]>, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let table = tx
            .open_table(SYNCED)
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let v = table
            .get(synced_key(target, external_id).as_str())
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        Ok(v.and_then(|v| v.value().try_into().ok()))
    }

    fn begin_run(&self, job: &str) -> Result<u64, StoreError> {
        self.update_runs(job, |(started, completed)| {
            let run = started.max(completed) + 1;
            (run, (run, completed))
        })
    }

    fn completed_run(&self, job: &str) -> Result<u64, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let table = tx
            .open_table(RUNS)
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let v = table
            .get(job)
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        Ok(v.map_or(0, |v| v.value().1))
    }

    fn complete_run(&self, job: &str, run: u64) -> Result<(), StoreError> {
        self.update_runs(job, |(started, completed)| {
            ((), (started.max(run), completed.max(run)))
        })
    }

    fn len(&self) -> Result<u64, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("count", self.at(), e))?;
        let table = tx
            .open_table(CONTACTS)
            .map_err(|e| StoreError::backend("count", self.at(), e))?;
        table
            .len()
            .map_err(|e| StoreError::backend("count", self.at(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::suite;

    #[test]
    fn embedded_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        suite::run(&store);
    }

    #[test]
    fn writer_batches_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let mut w = store.writer(7);
            for i in 0..100 {
                w.put(StoredContact::new(suite::sample_contact(
                    &format!("K{i:03}"),
                    i,
                    i % 2 == 0,
                )))
                .unwrap();
            }
            assert_eq!(w.finish().unwrap(), 100);
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.len().unwrap(), 100);
        assert_eq!(store.begin_run("ingest").unwrap(), 1);
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            store.begin_run("ingest").unwrap(),
            2,
            "run numbers survive a reopen (a killed run's number is never reused)"
        );
        let got = store.get("K042").unwrap().unwrap();
        assert_eq!(
            got,
            StoredContact::new(suite::sample_contact("K042", 42, true))
        );
    }
}
