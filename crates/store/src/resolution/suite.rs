//! The behaviour suite every resolution index backend passes. Backends call [`run`] from their
//! own tests with a fresh, empty index.

use dedupd_core::matching::{MatchConfig, Model, Record};

use super::{Entry, ResolutionIndex, Settings, Snapshot};

/// A model with every weight at one bit for agreement: the suite checks storage, not matching.
pub fn model() -> Model {
    let mut m = [[0.0; 6]; 7];
    let mut u = [[0.0; 6]; 7];
    for (mr, ur) in m.iter_mut().zip(u.iter_mut()) {
        for level in 1..6 {
            mr[level] = 0.5;
            ur[level] = 0.25;
        }
    }
    Model {
        m,
        u,
        lambda: 0.1,
        prior: 0.001,
        conflict_weight: -6.0,
        iterations: 3,
    }
}

/// A record as a row of an export would give it.
pub fn record(id: &str, first: &str, email: &str, phone: &str) -> Record {
    Record::from_raw(
        [
            id,
            "crm",
            first,
            "Lee",
            email,
            phone,
            "1 Main St",
            "Springfield",
            "IL",
            "62701",
            "US",
        ],
        chrono::DateTime::from_timestamp(1_764_000_000, 0),
    )
    .0
}

fn entry(r: Record, customer: &str, absorbed: &[&str]) -> Entry {
    Entry {
        record: r,
        customer: customer.to_owned(),
        absorbed: absorbed.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn customers(s: &Snapshot) -> Vec<(String, String)> {
    s.entries
        .iter()
        .map(|e| (e.record.id().to_owned(), e.customer.clone()))
        .collect()
}

/// Runs the suite; panics (test failure) on the first violation.
pub async fn run<I: ResolutionIndex>(index: &I) {
    assert!(
        index.load().await.expect("load").is_none(),
        "a new index is empty"
    );
    let early = index.append(vec![entry(record("x", "Ann", "", ""), "kx", &[])]);
    assert!(
        early.await.is_err(),
        "appending to an index never built is refused"
    );

    let settings = Settings {
        config: MatchConfig::default(),
        model: model(),
    };
    let built = Snapshot {
        settings: settings.clone(),
        entries: vec![
            entry(
                record("a1", "Ann", "ann@example.org", "+14155552671"),
                "kA",
                &[],
            ),
            entry(record("a2", "Ann", "ann@example.org", ""), "kA", &[]),
            entry(record("b1", "Bob", "", "+14155550000"), "kB", &[]),
            entry(record("c1", "Cid", "cid@example.org", ""), "kC", &[]),
        ],
    };
    index.replace(built.clone()).await.expect("replace");
    let loaded = index.load().await.expect("load").expect("built");
    assert_eq!(
        loaded, built,
        "what was built loads back as it was, in order"
    );
    assert_eq!(loaded.settings, settings);
    let a1 = &loaded.entries[0].record;
    assert_eq!(
        a1.get(dedupd_core::matching::Column::Phone),
        Some("+14155552671")
    );
    assert_eq!(a1.updated_at, Some(1_764_000_000));

    // A record joining Ann; then one joining Bob and absorbing Cid: Cid's record loads under
    // Bob's customer from then on.
    index
        .append(vec![entry(
            record("a3", "Ann", "", "+14155552671"),
            "kA",
            &[],
        )])
        .await
        .expect("append");
    index
        .append(vec![
            entry(record("d1", "Dan", "", ""), "kD", &[]),
            entry(
                record("b2", "Bob", "cid@example.org", "+14155550000"),
                "kB",
                &["kC"],
            ),
        ])
        .await
        .expect("append a group");
    let loaded = index.load().await.expect("load").expect("built");
    let got = customers(&loaded);
    let want: Vec<(String, String)> = [
        ("a1", "kA"),
        ("a2", "kA"),
        ("b1", "kB"),
        ("c1", "kB"),
        ("a3", "kA"),
        ("d1", "kD"),
        ("b2", "kB"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(got, want);
    // An alias of an alias: Bob's customer absorbed in turn.
    index
        .append(vec![entry(
            record("e1", "Bob", "", "+14155550000"),
            "kE",
            &["kB"],
        )])
        .await
        .expect("append");
    let loaded = index.load().await.expect("load").expect("built");
    let c1 = loaded
        .entries
        .iter()
        .find(|e| e.record.id() == "c1")
        .map(|e| e.customer.as_str());
    assert_eq!(c1, Some("kE"), "aliases are followed to the end");

    // A new build replaces everything, aliases included.
    let rebuilt = Snapshot {
        settings,
        entries: vec![entry(record("c1", "Cid", "cid@example.org", ""), "kC", &[])],
    };
    index.replace(rebuilt.clone()).await.expect("replace again");
    assert_eq!(index.load().await.expect("load"), Some(rebuilt));
}
