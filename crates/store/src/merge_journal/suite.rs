//! The behavioural suite every [`MergeJournal`] backend must pass.
//!
//! Backends call [`run`] from their own tests with a fresh, empty journal.

use chrono::{DateTime, TimeZone, Utc};

use dedupd_core::plan::Basis;

use super::{Event, History, MergeJournal, SettledOutcome, Settlement};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0)
        .single()
        .expect("a valid time")
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn settled(outcome: SettledOutcome, canonical: Option<&str>, quarantined: &[&str]) -> Event {
    Event::Settled {
        at: at(9),
        outcome,
        canonical: canonical.map(str::to_owned),
        quarantined: ids(quarantined),
        run: Some("r-suite".into()),
        decision: Some(Basis::ApproveAll),
    }
}

/// Runs the suite; panics (test failure) on the first violation.
pub fn run(journal: &impl MergeJournal) {
    events(journal);
    settlements(journal);
    runs(journal);
}

/// Intents, merges and refusals, per cluster.
fn events(journal: &impl MergeJournal) {
    assert_eq!(
        journal.history("c-none").expect("history"),
        History::default(),
        "a cluster without a journal has an empty history"
    );
    let ab = ids(&["a", "b"]);
    journal
        .append(
            "c-1",
            &Event::Intent {
                at: at(0),
                key: "m-1".into(),
                ids: ab.clone(),
            },
        )
        .expect("append");
    let h = journal.history("c-1").expect("history");
    assert_eq!(
        h.open_intent,
        Some(("m-1".into(), ab.clone())),
        "an intent is open until its outcome is known"
    );
    assert!(!h.is_final());
    assert_eq!(
        journal.history("c-2").expect("history"),
        History::default(),
        "clusters are separate"
    );

    journal
        .append(
            "c-1",
            &Event::Merged {
                at: at(1),
                key: "m-1".into(),
                ids: ab,
                canonical: "X".into(),
            },
        )
        .expect("append");
    // A refusal of the next request closes its intent and changes nothing else.
    journal
        .append(
            "c-1",
            &Event::Intent {
                at: at(2),
                key: "m-2".into(),
                ids: ids(&["X", "c"]),
            },
        )
        .expect("append");
    journal
        .append(
            "c-1",
            &Event::NotApplied {
                at: at(3),
                key: "m-2".into(),
            },
        )
        .expect("append");
    // A second merge of the cluster (its canonical contact with another member).
    journal
        .append(
            "c-1",
            &Event::Intent {
                at: at(4),
                key: "m-3".into(),
                ids: ids(&["X", "d"]),
            },
        )
        .expect("append");
    journal
        .append(
            "c-1",
            &Event::Merged {
                at: at(5),
                key: "m-3".into(),
                ids: ids(&["X", "d"]),
                canonical: "Y".into(),
            },
        )
        .expect("append");
    let h = journal.history("c-1").expect("history");
    assert_eq!(h.open_intent, None);
    assert_eq!(h.merges, 2);
    assert_eq!(
        h.canonical.as_deref(),
        Some("Y"),
        "the last canonical contact"
    );
    assert_eq!(
        h.canonicals,
        ids(&["X", "Y"]),
        "every canonical, oldest first"
    );
    assert_eq!(h.settled, None);

    // An outcome under another key does not close the open intent.
    journal
        .append(
            "c-3",
            &Event::Intent {
                at: at(6),
                key: "m-4".into(),
                ids: ids(&["e", "f"]),
            },
        )
        .expect("append");
    journal
        .append(
            "c-3",
            &Event::NotApplied {
                at: at(7),
                key: "m-other".into(),
            },
        )
        .expect("append");
    assert_eq!(
        journal.history("c-3").expect("history").open_intent,
        Some(("m-4".into(), ids(&["e", "f"])))
    );
}

/// What a settlement says, and which are final.
fn settlements(journal: &impl MergeJournal) {
    let cases = [
        ("s-merged", SettledOutcome::Merged, &[][..], true),
        ("s-already", SettledOutcome::AlreadyMerged, &[][..], true),
        (
            "s-partial",
            SettledOutcome::PartiallyMerged,
            &["q"][..],
            false,
        ),
        (
            "s-quarantined",
            SettledOutcome::Quarantined,
            &["q", "r"][..],
            false,
        ),
        // Merged with a member left in quarantine is tried again.
        ("s-merged-q", SettledOutcome::Merged, &["q"][..], false),
    ];
    for (cluster, outcome, quarantined, is_final) in cases {
        journal
            .append(cluster, &settled(outcome, Some("Z"), quarantined))
            .expect("append");
        let h = journal.history(cluster).expect("history");
        assert_eq!(
            h.settled,
            Some(Settlement {
                outcome,
                canonical: Some("Z".into()),
                quarantined: ids(quarantined),
                run: Some("r-suite".into()),
                decision: Some(Basis::ApproveAll),
            }),
            "{cluster}: the settlement reads back as written"
        );
        assert_eq!(h.is_final(), is_final, "{cluster}");
    }

    // The last settlement counts.
    journal
        .append(
            "s-partial",
            &settled(SettledOutcome::Merged, Some("Z"), &[]),
        )
        .expect("append");
    assert!(journal.history("s-partial").expect("history").is_final());

    // A merge sent after a settlement (an open intent) is not final until its outcome is known.
    journal
        .append(
            "s-merged",
            &Event::Intent {
                at: at(10),
                key: "m-9".into(),
                ids: ids(&["Z", "g"]),
            },
        )
        .expect("append");
    assert!(!journal.history("s-merged").expect("history").is_final());
}

/// Run marks: live, completed, interrupted.
fn runs(journal: &impl MergeJournal) {
    let live = journal.begin_run().expect("begin");
    let other = journal.begin_run().expect("begin");
    assert_ne!(live.id, other.id, "every run has its own name");
    assert!(
        !journal.was_interrupted(&live.id).expect("check"),
        "a live run is not taken over"
    );
    let id = live.id.clone();
    drop(live); // the process died before writing its outputs
    assert!(journal.was_interrupted(&id).expect("check"));

    journal.complete_run(&other).expect("complete");
    assert!(
        !journal.was_interrupted(&other.id).expect("check"),
        "a completed run was reported"
    );
    let done = other.id.clone();
    drop(other);
    assert!(
        !journal.was_interrupted(&done).expect("check"),
        "a completed run stays completed after its process is gone"
    );
    assert!(
        journal.was_interrupted("never-started").expect("check"),
        "a run with no mark never wrote its outputs"
    );
}
