//! The file journal: one append-only NDJSON file per cluster (`merge/journal/<cluster
//! key>.ndjson`), each event written with one `write` and an `fsync` before the run goes on. One
//! file per cluster keeps concurrent runs (each holding the cluster's locks) from ever
//! interleaving their events, and a torn last line (a crash mid-write) is skipped on reading.
//!
//! Runs are marked in `merge/runs/`: `<run>.lock` held with an exclusive advisory `flock` for as
//! long as the run's process lives (the OS drops it when the process dies, `kill -9` included),
//! and `<run>.done` once its outputs are written.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{Event, History, MergeJournal, RunMark};
use crate::StoreError;

/// The merge journal in a state directory (`STATE/merge/journal`, `STATE/merge/runs`).
#[derive(Debug, Clone)]
pub struct FileJournal {
    journal: PathBuf,
    runs: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::backend(op, path.display().to_string(), e)
}

impl FileJournal {
    /// The journal of `state_dir`; its directories are created if missing.
    pub fn open(state_dir: &Path) -> Result<FileJournal, StoreError> {
        let journal = state_dir.join("merge").join("journal");
        let runs = state_dir.join("merge").join("runs");
        for dir in [&journal, &runs] {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: dir.display().to_string(),
                source: Box::new(e),
            })?;
        }
        Ok(FileJournal { journal, runs })
    }

    /// The file holding the journal of `cluster_key`.
    pub fn path_of(&self, cluster_key: &str) -> PathBuf {
        self.journal.join(format!("{cluster_key}.ndjson"))
    }

    fn run_file(&self, run: &str, ext: &str) -> PathBuf {
        self.runs.join(format!("{run}.{ext}"))
    }
}

impl MergeJournal for FileJournal {
    fn history(&self, cluster_key: &str) -> Result<History, StoreError> {
        let path = self.path_of(cluster_key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(History::default()),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut h = History::default();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io_err("read", &path))?;
            match serde_json::from_str::<Event>(&line) {
                Ok(event) => h.apply(event),
                Err(_) if line.trim().is_empty() => {}
                Err(_) => tracing::warn!(
                    cluster = cluster_key,
                    "Skipping an unreadable journal line (a write cut short by a crash)."
                ),
            }
        }
        Ok(h)
    }

    fn append(&self, cluster_key: &str, event: &Event) -> Result<(), StoreError> {
        let path = self.path_of(cluster_key);
        let mut line = serde_json::to_vec(event)
            .map_err(|e| StoreError::backend("encode", path.display().to_string(), e))?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        // A previous writer killed mid-line left no newline: start on a fresh line.
        let len = file.metadata().map_err(io_err("stat", &path))?.len();
        if len > 0 && !ends_with_newline(&path).map_err(io_err("read", &path))? {
            line.insert(0, b'\n');
        }
        file.write_all(&line).map_err(io_err("write", &path))?;
        file.sync_data().map_err(io_err("fsync", &path))
    }

    fn begin_run(&self) -> Result<RunMark, StoreError> {
        let id = format!(
            "{}-{:016x}",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            fastrand::u64(..)
        );
        let path = self.run_file(&id, "lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("create run mark", &path))?;
        file.try_lock().map_err(|e| {
            let e = match e {
                TryLockError::Error(e) => e,
                TryLockError::WouldBlock => std::io::Error::other("a run of this name is live"),
            };
            io_err("lock run mark", &path)(e)
        })?;
        Ok(RunMark::new(id, file))
    }

    fn complete_run(&self, run: &RunMark) -> Result<(), StoreError> {
        let done_path = self.run_file(&run.id, "done");
        let done = File::create(&done_path).map_err(io_err("create run mark", &done_path))?;
        done.sync_all().map_err(io_err("fsync", &done_path))?;
        let lock_path = self.run_file(&run.id, "lock");
        match std::fs::remove_file(&lock_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("remove run mark", &lock_path)(e))
            }
            _ => Ok(()),
        }
    }

    fn was_interrupted(&self, run: &str) -> Result<bool, StoreError> {
        if self.run_file(run, "done").exists() {
            return Ok(false);
        }
        let lock_path = self.run_file(run, "lock");
        let file = match OpenOptions::new().write(true).open(&lock_path) {
            Ok(f) => f,
            // Neither done nor a lock: the run's outputs were never written.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io_err("open run mark", &lock_path)(e)),
        };
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(io_err("lock run mark", &lock_path)(e)),
        }
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::merge_journal::{SettledOutcome, suite};

    #[test]
    fn the_file_journal_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::open(dir.path()).unwrap();
        suite::run(&journal);
    }

    #[test]
    fn the_file_journal_keeps_its_paths_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::open(dir.path()).unwrap();
        assert!(dir.path().join("merge/runs").is_dir());
        journal
            .append(
                "c1",
                &Event::Settled {
                    at: Utc::now(),
                    outcome: SettledOutcome::PartiallyMerged,
                    canonical: None,
                    quarantined: vec!["q".into()],
                    run: None,
                    decision: None,
                },
            )
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("merge/journal/c1.ndjson")).unwrap();
        assert!(
            text.contains(r#""event":"settled""#)
                && text.contains(r#""outcome":"partially_merged""#),
            "{text}"
        );
        assert!(
            !text.contains("\"run\""),
            "an unnamed run is left out: {text}"
        );
        let run = journal.begin_run().unwrap();
        assert!(
            dir.path()
                .join(format!("merge/runs/{}.lock", run.id))
                .exists()
        );
        journal.complete_run(&run).unwrap();
        assert!(
            dir.path()
                .join(format!("merge/runs/{}.done", run.id))
                .exists()
        );
        assert!(
            !dir.path()
                .join(format!("merge/runs/{}.lock", run.id))
                .exists()
        );
    }

    #[test]
    fn a_journal_written_before_outcomes_were_typed_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::open(dir.path()).unwrap();
        // Lines as the journal of earlier releases wrote them (outcome as a string, no run).
        std::fs::write(
            journal.path_of("c9"),
            concat!(
                r#"{"event":"intent","at":"2026-11-01T10:00:00Z","key":"m1","ids":["a","b"]}"#,
                "\n",
                r#"{"event":"merged","at":"2026-11-01T10:00:01Z","key":"m1","ids":["a","b"],"canonical":"X"}"#,
                "\n",
                r#"{"event":"settled","at":"2026-11-01T10:00:02Z","outcome":"already_merged","canonical":"X","quarantined":[]}"#,
                "\n",
            ),
        )
        .unwrap();
        let h = journal.history("c9").unwrap();
        let settled = h.settled.clone().unwrap();
        assert_eq!(settled.outcome, SettledOutcome::AlreadyMerged);
        assert_eq!(settled.canonical.as_deref(), Some("X"));
        assert_eq!(settled.run, None);
        assert!(h.is_final());
    }

    #[test]
    fn a_torn_line_is_skipped_and_the_next_event_starts_a_fresh_line() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::open(dir.path()).unwrap();
        let ids = vec!["a".to_owned(), "b".to_owned()];
        journal
            .append(
                "c1",
                &Event::Merged {
                    at: Utc::now(),
                    key: "m1".into(),
                    ids,
                    canonical: "X".into(),
                },
            )
            .unwrap();
        // A crash mid-write leaves half a line; the next event still lands on its own line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(journal.path_of("c1"))
            .unwrap();
        f.write_all(br#"{"event":"intent","at":"#).unwrap();
        drop(f);
        journal
            .append(
                "c1",
                &Event::Settled {
                    at: Utc::now(),
                    outcome: SettledOutcome::Merged,
                    canonical: Some("X".into()),
                    quarantined: vec![],
                    run: Some("r1".into()),
                    decision: None,
                },
            )
            .unwrap();
        let h = journal.history("c1").unwrap();
        assert_eq!(h.canonical.as_deref(), Some("X"));
        assert_eq!(h.open_intent, None);
        assert_eq!(h.merges, 1);
        assert!(h.is_final());
        assert_eq!(
            h.settled.and_then(|s| s.run).as_deref(),
            Some("r1"),
            "the settlement after the torn line is read"
        );
    }

    #[test]
    fn an_unreadable_journal_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::open(dir.path()).unwrap();
        // A directory where the cluster's file should be: reading it fails.
        std::fs::create_dir(journal.path_of("c1")).unwrap();
        let err = journal.history("c1").unwrap_err().to_string();
        assert!(err.contains("c1.ndjson"), "{err}");
    }
}
