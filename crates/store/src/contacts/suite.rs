//! The behavioural suite every [`ContactState`] backend must pass.
//!
//! Backends call [`run`] from their own tests with a fresh, empty store.

use chrono::{TimeZone, Utc};
use dedupd_core::{Change, Contact, ContactRecord, Field};

use super::{ContactState, StoredContact};

/// A deterministic contact for tests: `n` varies the values, `dnc` sets `do_not_call`.
pub fn sample_contact(key: &str, n: i64, dnc: bool) -> Contact {
    let at = Utc
        .timestamp_opt(1_700_000_000 + n, 0)
        .single()
        .unwrap_or_default();
    let mut r = ContactRecord::new(at);
    r.set(Field::CustomerId, Some(format!("CUST-{n}")));
    r.set(Field::FirstName, Some(format!("Näme{n}")));
    r.set(
        Field::PhoneE164,
        Some(format!("+1201555{:04}", n.rem_euclid(10_000))),
    );
    r.do_not_call = dnc;
    Contact::from_record(key.to_owned(), r)
}

/// Runs the suite; panics (test failure) on the first violation.
pub fn run(store: &dyn ContactState) {
    assert!(
        store.is_empty().expect("len"),
        "the suite needs an empty store"
    );
    assert_eq!(store.get("missing").expect("get"), None);

    let a = StoredContact::new(sample_contact("A", 1, false));
    let b = StoredContact::new(sample_contact("B", 2, true));
    let c = StoredContact::new(sample_contact("C", 3, false));
    store
        .put_batch(&[c.clone(), a.clone(), b.clone()])
        .expect("put");
    assert_eq!(store.len().expect("len"), 3);
    assert_eq!(
        store.get("B").expect("get"),
        Some(b.clone()),
        "round trip keeps every field"
    );

    let many = store.get_many(&["C", "zz", "A"]).expect("get_many");
    assert_eq!(
        many,
        vec![Some(c.clone()), None, Some(a.clone())],
        "get_many keeps the order of ids"
    );

    // Overwrite: a put replaces the whole stored contact.
    let a2 = StoredContact::new(sample_contact("A", 9, true));
    store.put_batch(std::slice::from_ref(&a2)).expect("put");
    assert_eq!(store.get("A").expect("get"), Some(a2.clone()));
    assert_eq!(store.len().expect("len"), 3, "an overwrite adds no contact");

    // Scan order is externalId order.
    let mut seen = Vec::new();
    store
        .for_each(&mut |s| {
            seen.push(s.contact.external_id);
            Ok(())
        })
        .expect("scan");
    assert_eq!(seen, vec!["A", "B", "C"]);

    // An empty batch is fine.
    store.put_batch(&[]).expect("empty batch");

    // Sync bookkeeping, per target: here "pending" = the synced hash differs from the
    // contact's content hash (sync itself compares with its payload hash).
    let pending = |target: &str| {
        let mut ids = Vec::new();
        store
            .for_each_with_synced(target, &mut |s, synced| {
                if synced != Some(s.hash) {
                    ids.push(s.contact.external_id);
                }
                Ok(())
            })
            .expect("pending scan");
        ids
    };
    assert_eq!(pending("list-1"), vec!["A", "B", "C"]);
    store
        .mark_synced("list-1", &[("A".into(), a2.hash), ("B".into(), [0u8; 16])])
        .expect("mark");
    assert_eq!(
        store.synced_hash("list-1", "A").expect("hash"),
        Some(a2.hash)
    );
    assert_eq!(
        store.synced_hash("list-2", "A").expect("hash"),
        None,
        "targets are separate"
    );
    assert_eq!(
        pending("list-1"),
        vec!["B", "C"],
        "a stale hash keeps a contact pending"
    );
    assert_eq!(pending("list-2"), vec!["A", "B", "C"]);
    // A changed contact becomes pending again.
    let a3 = StoredContact::new(sample_contact("A", 10, true));
    store.put_batch(std::slice::from_ref(&a3)).expect("put");
    assert_eq!(pending("list-1"), vec!["A", "B", "C"]);

    runs(store);
}

/// Run numbers and the changes a run records with its writes, pending until a run completes.
fn runs(store: &dyn ContactState) {
    assert_eq!(store.completed_run("ingest").expect("runs"), 0);
    let r1 = store.begin_run("ingest").expect("begin");
    let r2 = store.begin_run("ingest").expect("begin");
    assert!(r2 > r1 && r1 > 0, "a run never reuses a number: {r1}, {r2}");
    assert_eq!(
        store.begin_run("sync").expect("begin"),
        1,
        "jobs count separately"
    );

    // A change is stored with the contact, in the same batch, and read back with it.
    let d = StoredContact::with_change(sample_contact("D", 4, true), r1, Change::NEW);
    let e = StoredContact::new(sample_contact("E", 5, false));
    store.put_batch(&[d.clone(), e.clone()]).expect("put");
    assert_eq!(
        store.get_many(&["D", "E"]).expect("get"),
        vec![Some(d.clone()), Some(e)]
    );
    let completed = store.completed_run("ingest").expect("runs");
    assert_eq!(
        store
            .get("D")
            .expect("get")
            .and_then(|s| s.pending_change(completed)),
        d.change,
        "pending while no run at least as recent has completed"
    );

    // Completing the later run reports it; completing an older one after it changes nothing.
    store.complete_run("ingest", r2).expect("complete");
    store.complete_run("ingest", r1).expect("complete");
    assert_eq!(store.completed_run("ingest").expect("runs"), r2);
    assert_eq!(store.completed_run("sync").expect("runs"), 0);
    let completed = store.completed_run("ingest").expect("runs");
    assert_eq!(
        store
            .get("D")
            .expect("get")
            .and_then(|s| s.pending_change(completed)),
        None
    );
    assert!(
        store.begin_run("ingest").expect("begin") > r2,
        "numbers keep rising past the completed run"
    );

    // A write without a change clears the recorded one.
    let d2 = StoredContact::new(sample_contact("D", 4, true));
    store.put_batch(std::slice::from_ref(&d2)).expect("put");
    assert_eq!(store.get("D").expect("get").and_then(|s| s.change), None);
}
