//! The per-cluster journal and the per-contact locks of `merge apply`, both in the state
//! directory.
//!
//! - **Journal**: one append-only NDJSON file per cluster (`merge/journal/<cluster key>.ndjson`),
//!   each event written with one `write` and an `fsync` before the run goes on. An `intent` is
//!   durable before its merge request leaves; its `merged` (or `not_applied`) follows once the
//!   answer, or a read-back, settles it. A run killed between the two finds the intent and reads
//!   the platform state back before deciding, so nothing is merged twice and nothing is lost.
//!   One file per cluster keeps concurrent runs (each holding the cluster's locks) from ever
//!   interleaving their events, and a torn last line (a crash mid-write) is skipped on reading.
//! - **Locks**: one lock file per contact (`merge/locks/<hash of the id>.lock`) held with an
//!   exclusive advisory `flock`, which the OS drops when the process dies, `kill -9` included: a
//!   crashed run never leaves a stale lock behind. With `--redis`, the same contacts are also
//!   locked in Redis (see [`super::redis_lock`]) for runs on other machines.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use dedupd_core::keys::ids_key;

/// One journal event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A merge request is about to be sent (durable before it leaves).
    Intent {
        /// When (UTC).
        at: DateTime<Utc>,
        /// Idempotency key: hash of the sorted ids.
        key: String,
        /// The contact ids of the request.
        ids: Vec<String>,
    },
    /// The merge happened (its answer, or a read-back after an unknown outcome).
    Merged {
        /// When (UTC).
        at: DateTime<Utc>,
        /// Idempotency key of the request.
        key: String,
        /// The contact ids of the request.
        ids: Vec<String>,
        /// The new canonical contact.
        canonical: String,
    },
    /// The merge did not happen (refused, or a read-back showed nothing changed).
    NotApplied {
        /// When (UTC).
        at: DateTime<Utc>,
        /// Idempotency key of the request.
        key: String,
    },
    /// The cluster reached an end state for this run.
    Settled {
        /// When (UTC).
        at: DateTime<Utc>,
        /// `merged`, `partially_merged`, `already_merged` or `quarantined`.
        outcome: String,
        /// The canonical contact the cluster ended in, if any.
        canonical: Option<String>,
        /// Members quarantined by this run (they are tried again by later runs).
        quarantined: Vec<String>,
        /// The run that settled it (absent in journals written before runs were named).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<String>,
    },
}

/// What a cluster's journal says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The last canonical contact a merge of this cluster produced.
    pub canonical: Option<String>,
    /// Every canonical contact merges of this cluster produced, oldest first.
    pub canonicals: Vec<String>,
    /// A merge sent without a known outcome: `(key, ids)`.
    pub open_intent: Option<(String, Vec<String>)>,
    /// The last `Settled` event: `(outcome, canonical, quarantined)`.
    pub settled: Option<(String, Option<String>, Vec<String>)>,
    /// Merges recorded as done.
    pub merges: u64,
    /// The run that wrote the last `Settled` event, when named.
    pub settled_by: Option<String>,
}

impl History {
    /// Settled for good: merged (or found merged) with nothing left in quarantine.
    pub fn is_final(&self) -> bool {
        self.open_intent.is_none()
            && self
                .settled
                .as_ref()
                .is_some_and(|(outcome, _, quarantined)| {
                    quarantined.is_empty() && (outcome == "merged" || outcome == "already_merged")
                })
    }
}

/// The journal and lock directories of one state directory.
#[derive(Debug, Clone)]
pub struct StateDirs {
    journal: PathBuf,
    locks: PathBuf,
    runs: PathBuf,
}

/// A live `merge apply` run: its name, and a lock held for as long as the process lives, so
/// another run can tell an interrupted run (lock free, outputs never written) from a live one.
#[derive(Debug)]
pub struct RunMark {
    /// The run's name, written into the `Settled` events it appends.
    pub id: String,
    _alive: File,
}

impl StateDirs {
    /// `STATE/merge/journal` and `STATE/merge/locks`, created if missing.
    pub fn open(state_dir: &Path) -> std::io::Result<StateDirs> {
        let journal = state_dir.join("merge").join("journal");
        let locks = state_dir.join("merge").join("locks");
        let runs = state_dir.join("merge").join("runs");
        std::fs::create_dir_all(&journal)?;
        std::fs::create_dir_all(&locks)?;
        std::fs::create_dir_all(&runs)?;
        Ok(StateDirs {
            journal,
            locks,
            runs,
        })
    }

    /// Starts a run: a fresh name and its liveness lock.
    pub fn begin_run(&self) -> std::io::Result<RunMark> {
        let id = format!(
            "{}-{:016x}",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            fastrand::u64(..)
        );
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.runs.join(format!("{id}.lock")))?;
        file.try_lock().map_err(|e| match e {
            TryLockError::Error(e) => e,
            TryLockError::WouldBlock => std::io::Error::other("a run of this name is live"),
        })?;
        Ok(RunMark { id, _alive: file })
    }

    /// Marks a run complete once its outputs are written: from then on, what it settled was
    /// reported, and later runs skip it.
    pub fn complete_run(&self, run: &RunMark) -> std::io::Result<()> {
        let done = File::create(self.runs.join(format!("{}.done", run.id)))?;
        done.sync_all()?;
        match std::fs::remove_file(self.runs.join(format!("{}.lock", run.id))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether `run` settled clusters that no report has shown: it never completed and its
    /// process is gone (its liveness lock is free). A live run is never taken over.
    pub fn was_interrupted(&self, run: &str) -> std::io::Result<bool> {
        if self.runs.join(format!("{run}.done")).exists() {
            return Ok(false);
        }
        let file = match OpenOptions::new()
            .write(true)
            .open(self.runs.join(format!("{run}.lock")))
        {
            Ok(f) => f,
            // Neither done nor a lock: the run's outputs were never written.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn journal_path(&self, cluster_key: &str) -> PathBuf {
        self.journal.join(format!("{cluster_key}.ndjson"))
    }

    /// Reads a cluster's journal (empty when it has none). Unreadable lines (a torn write) are
    /// skipped.
    pub fn history(&self, cluster_key: &str) -> std::io::Result<History> {
        let path = self.journal_path(cluster_key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(History::default()),
            Err(e) => return Err(e),
        };
        let mut h = History::default();
        for line in BufReader::new(file).lines() {
            let line = line?;
            let Ok(event) = serde_json::from_str::<Event>(&line) else {
                if !line.trim().is_empty() {
                    tracing::warn!(
                        cluster = cluster_key,
                        "Skipping an unreadable journal line (a write cut short by a crash)."
                    );
                }
                continue;
            };
            match event {
                Event::Intent { key, ids, .. } => h.open_intent = Some((key, ids)),
                Event::Merged { key, canonical, .. } => {
                    if h.open_intent.as_ref().is_some_and(|(k, _)| *k == key) {
                        h.open_intent = None;
                    }
                    h.canonicals.push(canonical.clone());
                    h.canonical = Some(canonical);
                    h.merges += 1;
                }
                Event::NotApplied { key, .. } => {
                    if h.open_intent.as_ref().is_some_and(|(k, _)| *k == key) {
                        h.open_intent = None;
                    }
                }
                Event::Settled {
                    outcome,
                    canonical,
                    quarantined,
                    run,
                    ..
                } => {
                    h.settled = Some((outcome, canonical, quarantined));
                    h.settled_by = run;
                }
            }
        }
        Ok(h)
    }

    /// Appends one event durably (one write, then fsync).
    pub fn append(&self, cluster_key: &str, event: &Event) -> std::io::Result<()> {
        let path = self.journal_path(cluster_key);
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        // A previous writer killed mid-line left no newline: start on a fresh line.
        if file.metadata()?.len() > 0 && !ends_with_newline(&path)? {
            line.insert(0, b'\n');
        }
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Tries to lock every id (sorted, all or none). `Ok(None)` when another process holds
    /// one of them.
    pub fn try_lock(&self, ids: &[String]) -> std::io::Result<Option<LocalLocks>> {
        let sorted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let mut held = Vec::with_capacity(sorted.len());
        for id in sorted {
            let path = self.locks.join(format!("{}.lock", ids_key('l', [id])));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            match file.try_lock() {
                Ok(()) => held.push(file),
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok(Some(LocalLocks { _files: held }))
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

/// Locks held on a cluster's contacts; dropping it (or the process dying) releases them.
#[derive(Debug)]
pub struct LocalLocks {
    _files: Vec<File>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn keys_ignore_order_and_duplicates() {
        let a = ids_key('m', ["b", "a"]);
        assert_eq!(a, ids_key('m', ["a", "b", "a"]));
        assert_ne!(a, ids_key('m', ["a", "b", "c"]));
        assert_ne!(a, ids_key('c', ["a", "b"]));
    }

    #[test]
    fn history_tracks_intents_merges_and_settlement_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDirs::open(dir.path()).unwrap();
        let ids = vec!["a".to_owned(), "b".to_owned()];
        s.append(
            "c1",
            &Event::Intent {
                at: now(),
                key: "m1".into(),
                ids: ids.clone(),
            },
        )
        .unwrap();
        assert_eq!(
            s.history("c1").unwrap().open_intent,
            Some(("m1".into(), ids.clone()))
        );
        s.append(
            "c1",
            &Event::Merged {
                at: now(),
                key: "m1".into(),
                ids,
                canonical: "X".into(),
            },
        )
        .unwrap();
        // A crash mid-write leaves half a line; the next event still lands on its own line.
        let path = s.journal_path("c1");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"event":"intent","at":"#).unwrap();
        drop(f);
        s.append(
            "c1",
            &Event::Settled {
                at: now(),
                outcome: "merged".into(),
                canonical: Some("X".into()),
                quarantined: vec![],
                run: Some("r1".into()),
            },
        )
        .unwrap();
        let h = s.history("c1").unwrap();
        assert_eq!(h.canonical.as_deref(), Some("X"));
        assert_eq!(h.open_intent, None);
        assert_eq!(h.merges, 1);
        assert!(h.is_final());
        assert_eq!(h.settled_by.as_deref(), Some("r1"));
        assert_eq!(s.history("other").unwrap(), History::default());
    }

    #[test]
    fn a_run_is_interrupted_only_when_its_process_is_gone_before_it_completed() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDirs::open(dir.path()).unwrap();
        let live = s.begin_run().unwrap();
        assert!(
            !s.was_interrupted(&live.id).unwrap(),
            "a live run is not taken over"
        );
        let id = live.id.clone();
        drop(live); // the process died before writing its outputs
        assert!(s.was_interrupted(&id).unwrap());
        let done = s.begin_run().unwrap();
        s.complete_run(&done).unwrap();
        assert!(!s.was_interrupted(&done.id).unwrap());
        assert!(s.was_interrupted("never-started").unwrap());
    }

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDirs::open(dir.path()).unwrap();
        let ab = vec!["a".to_owned(), "b".to_owned()];
        let bc = vec!["b".to_owned(), "c".to_owned()];
        let held = s.try_lock(&ab).unwrap().expect("free");
        assert!(s.try_lock(&bc).unwrap().is_none(), "b is held");
        drop(held);
        assert!(s.try_lock(&bc).unwrap().is_some());
    }
}
