//! Per-contact locks as lock files: `merge/locks/<hash of the id>.lock` in the state directory,
//! held with an exclusive advisory `flock`.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::ContactLocks;
use crate::StoreError;

/// Lock files under `STATE/merge/locks`.
#[derive(Debug, Clone)]
pub struct FileLocks {
    dir: PathBuf,
}

/// Locks held on a set of contacts; dropping it (or the process dying) releases them.
#[derive(Debug)]
pub struct FileLocksHeld {
    _files: Vec<File>,
}

impl FileLocks {
    /// The locks of `state_dir`; their directory is created if missing.
    pub fn open(state_dir: &Path) -> Result<FileLocks, StoreError> {
        let dir = state_dir.join("merge").join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Open {
            path: dir.display().to_string(),
            source: Box::new(e),
        })?;
        Ok(FileLocks { dir })
    }

    /// The lock file of a contact: `l` and 16 hex digits of SHA-256 over the id and a newline
    /// (the name earlier releases used, so runs of both agree).
    pub fn path_of(&self, id: &str) -> PathBuf {
        let mut name = dedupd_core::keys::ids_key('l', [id]);
        name.push_str(".lock");
        self.dir.join(name)
    }

    /// [`ContactLocks::try_lock`], without waiting on anything.
    pub fn try_lock_now(&self, ids: &[String]) -> Result<Option<FileLocksHeld>, StoreError> {
        let sorted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let mut held = Vec::with_capacity(sorted.len());
        for id in sorted {
            let path = self.path_of(id);
            let err = |e| StoreError::backend("lock", path.display().to_string(), e);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(err)?;
            match file.try_lock() {
                Ok(()) => held.push(file),
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(err(e)),
            }
        }
        Ok(Some(FileLocksHeld { _files: held }))
    }
}

impl ContactLocks for FileLocks {
    type Held = FileLocksHeld;

    async fn try_lock(&self, ids: &[String]) -> Result<Option<FileLocksHeld>, StoreError> {
        self.try_lock_now(ids)
    }

    /// A `flock` lasts as long as its holder: nothing to renew.
    async fn renew(&self, _held: &FileLocksHeld) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn release(&self, held: FileLocksHeld) -> Result<(), StoreError> {
        drop(held);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::locks::suite;

    #[tokio::test]
    async fn file_locks_pass_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileLocks::open(dir.path()).unwrap();
        let b = FileLocks::open(dir.path()).unwrap();
        suite::run(&a, &b).await;
    }

    #[test]
    fn a_dropped_hold_is_released_and_file_names_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let locks = FileLocks::open(dir.path()).unwrap();
        let ab = vec!["a".to_owned(), "b".to_owned()];
        let held = locks.try_lock_now(&ab).unwrap().expect("free");
        assert!(locks.try_lock_now(&ab[1..]).unwrap().is_none(), "b is held");
        drop(held); // the process died
        assert!(locks.try_lock_now(&ab).unwrap().is_some());
        // The name earlier releases gave the lock of contact "a".
        assert_eq!(
            locks.path_of("a"),
            dir.path().join("merge/locks/l87428fc522803d31.lock")
        );
    }
}
