//! The engine on a directory whose merge keeps the survivor's id (NICE CXone: the source card
//! goes, the target card stays): a read-back after an ambiguous answer and a pre-flight after
//! the work was done must both see the cluster merged, though its record is one of its ids.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use dedupd_core::plan::{Basis, Cluster, DecidedCluster};
use dedupd_merge::{Engine, Outcome};
use dedupd_platform::directory::{
    CustomerDirectory, DirectoryCapabilities, MergeValues, Merged, Placement, Resolved, Scan,
    ScanPage,
};
use dedupd_platform::{CallStats, ErrorKind, PlatformError, Session};
use dedupd_store::locks::FileLocks;
use dedupd_store::merge_journal::FileJournal;
use dedupd_store::merge_journal::MergeJournal;

/// Cards merged one source at a time into the first id; every merge is applied and then
/// answered ambiguously (a 504 after the work).
#[derive(Default)]
struct KeepsId {
    /// Merged-away card → the card it went into.
    gone: Mutex<BTreeMap<String, String>>,
    /// Merges applied.
    applied: Mutex<u32>,
    /// Cards that exist.
    live: Vec<String>,
}

impl Session for KeepsId {
    fn usage(&self) -> CallStats {
        CallStats::default()
    }
    fn gave_up(&self) -> Option<String> {
        None
    }
}

impl CustomerDirectory for KeepsId {
    const CAPABILITIES: DirectoryCapabilities = DirectoryCapabilities {
        max_ids_per_merge: 2,
        min_ids_per_merge: 2,
        max_merge_set: None,
        merge_reversible: false,
        merge_keeps_survivor_id: true,
        max_ids_per_fetch: 25,
    };
    type Values = ();

    fn place(values: &MergeValues) -> Placement<()> {
        Placement {
            values: (),
            unplaced: values.unplaced.clone(),
        }
    }

    async fn scan_page(&self, _scan: &mut Scan) -> Result<Option<ScanPage>, PlatformError> {
        Ok(None)
    }

    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, Resolved>, PlatformError> {
        let gone = self.gone.lock().unwrap();
        Ok(ids
            .iter()
            .map(|id| {
                let mut head = id.clone();
                while let Some(next) = gone.get(&head) {
                    head = next.clone();
                }
                let r = if self.live.contains(&head) {
                    let set = 1 + gone.values().filter(|v| **v == head).count();
                    Resolved::Found {
                        canonical: head,
                        set,
                    }
                } else {
                    Resolved::NotFound
                };
                (id.clone(), r)
            })
            .collect())
    }

    async fn merge(&self, ids: &[String], _values: &()) -> Result<Merged, PlatformError> {
        let [target, source] = ids else {
            return Err(
                PlatformError::new(ErrorKind::Permanent, "one source per merge").with_status(400),
            );
        };
        let mut gone = self.gone.lock().unwrap();
        if gone.contains_key(source) || gone.contains_key(target) {
            // A card merged away answers 404: the merge was sent twice.
            return Err(PlatformError::new(ErrorKind::NotFound, "no such card").with_status(404));
        }
        gone.insert(source.clone(), target.clone());
        *self.applied.lock().unwrap() += 1;
        Err(PlatformError::new(
            ErrorKind::OutcomeUnknown,
            "504 after the merge was done",
        ))
    }
}

fn decided(ids: &[&str]) -> DecidedCluster {
    let cluster: Cluster = serde_json::from_value(serde_json::json!({
        "cluster_id": "k1",
        "confidence": 1.0,
        "survivor": ids[0],
        "members": ids.iter().map(|i| serde_json::json!({"record_id": i})).collect::<Vec<_>>(),
    }))
    .unwrap();
    DecidedCluster {
        cluster,
        basis: Basis::Approved { decided_at: None },
    }
}

async fn apply_once(dir: &KeepsId, state: &std::path::Path, ids: &[&str]) -> dedupd_merge::Applied {
    let journal = FileJournal::open(state).unwrap();
    let locks = FileLocks::open(state).unwrap();
    let run = journal.begin_run().unwrap();
    let engine = Engine {
        dir,
        journal: &journal,
        run: &run,
        locks: &locks,
        shared: None::<&FileLocks>,
        cap: 2,
        lock_wait: Duration::from_secs(5),
    };
    engine.apply(&decided(ids)).await.unwrap()
}

#[tokio::test]
async fn ambiguous_merges_that_keep_the_survivor_id_are_read_back_as_done_and_never_resent() {
    let dir = KeepsId {
        live: ["a", "b", "c"].map(str::to_owned).to_vec(),
        ..KeepsId::default()
    };
    let state = tempfile::tempdir().unwrap();
    let applied = apply_once(&dir, state.path(), &["a", "b", "c"]).await;
    let o = &applied.outcome;
    assert_eq!(o.outcome, Outcome::Merged, "{o:?}");
    assert_eq!(o.canonical.as_deref(), Some("a"));
    assert!(o.quarantined.is_empty(), "{:?}", o.quarantined);
    assert_eq!(*dir.applied.lock().unwrap(), 2);
    assert_eq!(o.merge_requests, 2, "each merge sent once");
    assert_eq!((applied.read_backs, applied.read_backs_applied), (2, 2));

    // A run without this journal (another machine, a lost state directory) finds the cluster
    // merged into one of its ids: already merged, nothing sent, nobody quarantined.
    let fresh = tempfile::tempdir().unwrap();
    let again = apply_once(&dir, fresh.path(), &["a", "b", "c"]).await;
    assert_eq!(
        again.outcome.outcome,
        Outcome::AlreadyMerged,
        "{:?}",
        again.outcome
    );
    assert_eq!(again.outcome.canonical.as_deref(), Some("a"));
    assert_eq!(again.outcome.merge_requests, 0);
    assert!(again.outcome.quarantined.is_empty());
    assert_eq!(*dir.applied.lock().unwrap(), 2);
}

#[tokio::test]
async fn a_cluster_half_merged_into_its_survivor_is_finished_by_the_next_run() {
    let dir = KeepsId {
        live: ["a", "b", "c"].map(str::to_owned).to_vec(),
        ..KeepsId::default()
    };
    dir.gone.lock().unwrap().insert("b".into(), "a".into());
    let state = tempfile::tempdir().unwrap();
    let applied = apply_once(&dir, state.path(), &["a", "b", "c"]).await;
    assert_eq!(
        applied.outcome.outcome,
        Outcome::Merged,
        "{:?}",
        applied.outcome
    );
    assert_eq!(applied.outcome.canonical.as_deref(), Some("a"));
    assert_eq!(applied.outcome.merge_requests, 1);
    assert_eq!(
        dir.gone.lock().unwrap().get("c").map(String::as_str),
        Some("a")
    );
}
