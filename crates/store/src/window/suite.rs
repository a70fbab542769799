//! The behavioural suite every dedup window backend must pass.
//!
//! Backends call [`run`] from their tests with a fresh window (for Redis: a unique key prefix).
//! Time is the entries' `first_seen_at` for the embedded backend and the server clock for Redis,
//! so the expiry step both moves `first_seen_at` past the TTL and lets a little real time pass.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{Claim, DedupWindow, FirstSeen, Window, WindowKey};

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
pub async fn run(window: Window) {
    let t0 = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .expect("a valid time");
    let ttl = Duration::from_secs(300);
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
            .claim(&short, &entry("m-6", "sms", t0), Duration::from_millis(1))
            .await
            .expect("claim"),
        Claim::First
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = t0 + chrono::Duration::seconds(1);
    assert_eq!(window.get(&short, after).await.expect("get"), None);
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
            tokio::spawn(async move {
                w.claim(&hot, &entry(&format!("c-{i}"), "sms", later), ttl)
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
}
