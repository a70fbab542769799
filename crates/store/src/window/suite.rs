//! The behavioural suite every dedup window backend must pass.
//!
//! Backends call [`run`] from their tests with a fresh window (for Redis: a unique key prefix).
//! Time is the entries' `first_seen_at` for the embedded backend and the server clock for Redis,
//! so the expiry step both moves `first_seen_at` past the TTL and lets a little real time pass.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use dedupd_core::message::TextSketch;

use super::{Claim, DedupWindow, FirstSeen, NearProbe, WindowKey, WindowRules};

fn key(tag: u8, n: u8) -> WindowKey {
    let mut k = [tag; 32];
    k[1] = n;
    k
}

fn entry(message_id: &str, channel: &str, at: DateTime<Utc>) -> FirstSeen {
    FirstSeen {
        message_id: Some(message_id.to_owned()),
        conversation_id: None,
        channel: channel.to_owned(),
        first_seen_at: at,
    }
}

/// Runs the suite; panics (test failure) on the first violation.
pub async fn run<W: DedupWindow + Clone + 'static>(window: W) {
    let t0 = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .expect("a valid time");
    let ttl = &WindowRules::uniform(Duration::from_secs(300));
    let k = key(1, 0);

    // Insert if absent, else the first entry, with a duplicate count.
    let first = entry("m-1", "sms", t0);
    assert_eq!(
        window.claim(&k, &first, ttl).await.expect("claim"),
        Claim::First
    );
    let later = t0 + chrono::Duration::seconds(5);
    for n in 1..=3u64 {
        let dup = entry(&format!("m-dup-{n}"), "email", later);
        assert_eq!(
            window.claim(&k, &dup, ttl).await.expect("claim"),
            Claim::Duplicate {
                first: first.clone(),
                duplicates: n
            },
            "a duplicate returns the first entry, unchanged"
        );
    }
    assert_eq!(
        window.get(&k, later).await.expect("get"),
        Some((first.clone(), 3))
    );
    assert_eq!(window.get(&key(1, 1), later).await.expect("get"), None);

    // Keys are independent.
    let other = entry("m-2", "chat", later);
    assert_eq!(
        window.claim(&key(1, 2), &other, ttl).await.expect("claim"),
        Claim::First
    );

    // The conversation learned later is returned to later duplicates.
    assert!(
        window
            .set_conversation(&k, "conv-1", later)
            .await
            .expect("set")
    );
    assert!(
        !window
            .set_conversation(&key(1, 3), "conv-x", later)
            .await
            .expect("set"),
        "no entry: nothing to attach to, and nothing is created"
    );
    assert_eq!(window.get(&key(1, 3), later).await.expect("get"), None);
    match window.claim(&k, &entry("m-5", "sms", later), ttl).await {
        Ok(Claim::Duplicate {
            first: f,
            duplicates,
        }) => {
            assert_eq!(f.conversation_id.as_deref(), Some("conv-1"));
            assert_eq!(f.message_id.as_deref(), Some("m-1"));
            assert_eq!(f.first_seen_at, t0);
            assert_eq!(duplicates, 4);
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }

    // After the TTL the key is free again.
    let short = key(1, 4);
    assert_eq!(
        window
            .claim(
                &short,
                &entry("m-6", "sms", t0),
                &WindowRules::uniform(Duration::from_millis(1))
            )
            .await
            .expect("claim"),
        Claim::First
    );
    let after = t0 + chrono::Duration::seconds(1);
    // The embedded window expires by the clock passed in, Redis by its own (PEXPIRE, 1 ms):
    // a condition wait (at most 100 polls, 5 ms apart) until the key is gone, not a delay.
    let mut left = window.get(&short, after).await.expect("get");
    for _ in 0..100 {
        if left.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        left = window.get(&short, after).await.expect("get");
    }
    assert_eq!(left, None);
    assert_eq!(
        window
            .claim(&short, &entry("m-7", "sms", after), ttl)
            .await
            .expect("claim"),
        Claim::First,
        "an expired key is claimed anew"
    );

    // Concurrent claims of one key: exactly one First, and every duplicate count once.
    let hot = key(1, 5);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let w = window.clone();
            let rules = ttl.clone();
            tokio::spawn(async move {
                w.claim(&hot, &entry(&format!("c-{i}"), "sms", later), &rules)
                    .await
                    .expect("claim")
            })
        })
        .collect();
    let mut firsts = 0;
    let mut counts = BTreeSet::new();
    for t in tasks {
        match t.await.expect("task") {
            Claim::First => firsts += 1,
            Claim::Duplicate { duplicates, .. } => {
                counts.insert(duplicates);
            }
        }
    }
    assert_eq!(firsts, 1, "exactly one claim wins");
    assert_eq!(counts, (1..=999).collect::<BTreeSet<u64>>());

    channel_pairs(&window, t0).await;
    near_duplicates(&window, t0).await;
}

/// Near-duplicates: per customer, the most similar recent message inside its pair's window.
async fn near_duplicates(window: &(impl DedupWindow + Clone), t0: DateTime<Utc>) {
    let rules = WindowRules::uniform(Duration::from_secs(300))
        .with_pair("sms/email", Duration::from_secs(3600))
        .expect("a valid pair");
    let ask = |customer: u8, fp: u8, text: &'static str, id: &'static str, channel, secs| {
        let window = window.clone();
        let rules = rules.clone();
        async move {
            let sketch = TextSketch::of(text);
            let entry = entry(id, channel, t0 + chrono::Duration::seconds(secs));
            let probe = NearProbe {
                customer: &key(3, customer),
                fingerprint: &key(4, fp),
                sketch: &sketch,
                entry: &entry,
                threshold: 0.6,
                keep: 3,
            };
            window.near(&probe, &rules).await.expect("near")
        }
    };
    assert_eq!(
        ask(1, 1, "where is my order 4471", "n-1", "sms", 0).await,
        None
    );
    let hit = ask(1, 2, "where is my ordr 4471", "n-2", "email", 10)
        .await
        .expect("a typo is near");
    assert_eq!(hit.first.message_id.as_deref(), Some("n-1"));
    assert_eq!(hit.fingerprint, key(4, 1));
    assert!(
        hit.similarity >= 0.6 && hit.similarity < 1.0,
        "{}",
        hit.similarity
    );
    assert_eq!(
        ask(1, 3, "please cancel my subscription", "n-3", "sms", 20).await,
        None,
        "another question"
    );
    assert_eq!(
        ask(2, 4, "where is my order 4471", "n-4", "sms", 20).await,
        None,
        "another customer"
    );
    assert_eq!(
        ask(1, 1, "where is my order 4471", "n-5", "sms", 30)
            .await
            .map(|h| h.first.message_id),
        Some(Some("n-2".to_owned())),
        "the same fingerprint is not its own near-duplicate; the typo'd one is"
    );
    // Windows by pair: chat/sms is 300 s, sms/email an hour.
    assert_eq!(
        ask(1, 6, "where is my order 4471 ?!", "n-6", "chat", 1000).await,
        None,
        "past the chat pair's window"
    );
    // Only `keep` (3) are remembered: n-1 and n-2 are gone, n-5 is left.
    let hit = ask(1, 7, "where is my order 4471", "n-7", "email", 1100)
        .await
        .expect("within sms/email");
    assert_eq!(hit.first.message_id.as_deref(), Some("n-5"));
}

/// Windows by channel pair: each later message is judged by the window of its pair with the
/// first, and a first message is kept as long as its longest pair.
async fn channel_pairs(window: &(impl DedupWindow + Clone), t0: DateTime<Utc>) {
    let s = Duration::from_secs;
    let rules = WindowRules::uniform(s(300))
        .with_pair("sms/sms", s(60))
        .and_then(|r| r.with_pair("sms/email", s(3600)))
        .expect("valid pairs");
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let k = key(2, 0);
    let claim = |id: &str, channel: &str, secs: i64| {
        let e = entry(id, channel, at(secs));
        let rules = rules.clone();
        let window = window.clone();
        async move { window.claim(&k, &e, &rules).await.expect("claim") }
    };
    assert_eq!(claim("p-1", "sms", 0).await, Claim::First);
    assert!(
        matches!(claim("p-2", "SMS", 30).await, Claim::Duplicate { .. }),
        "sms/sms is 60 s (channel case does not matter)"
    );
    assert_eq!(
        claim("p-3", "sms", 90).await,
        Claim::First,
        "past the sms/sms window the retry is new, and becomes the first"
    );
    match claim("p-4", "email", 3000).await {
        Claim::Duplicate { first, duplicates } => {
            assert_eq!(first.message_id.as_deref(), Some("p-3"));
            assert_eq!(duplicates, 1, "the count restarts with the new first");
        }
        other => panic!("sms/email is an hour, got {other:?}"),
    }
    assert_eq!(
        claim("p-5", "chat", 3000).await,
        Claim::First,
        "sms/chat has the default 300 s"
    );
    assert!(
        matches!(claim("p-6", "chat", 3200).await, Claim::Duplicate { .. }),
        "chat/chat: the default"
    );
    assert_eq!(
        claim("p-7", "email", 3400).await,
        Claim::First,
        "chat/email: the default 300 s, passed"
    );
}
