//! The behaviour suite every outbox backend passes. Backends call [`run`] from their own tests
//! with a fresh, empty outbox. The clock is passed in: nothing here sleeps.

use chrono::{DateTime, Duration, TimeZone, Utc};
use dedupd_core::notification::{Channel, Status, content_guard_key};
use serde_json::json;

use super::{
    AcceptOptions, Accepted, Backlog, GuardMode, NewNotification, Notification, OutboxStore,
    Outcome, StatusEvent, Work,
};

const SENT: Work = Work {
    sent: true,
    read_back: false,
};
const READ_BACK: Work = Work {
    sent: false,
    read_back: true,
};

/// The suite's clock origin.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A notification for `key` whose body (and so fingerprint and guard key) follows `text`.
pub fn new_notification(key: &str, text: &str) -> NewNotification {
    let body = json!({"channel": "sms", "to": "+14155552671", "text": text});
    NewNotification {
        key: key.to_owned(),
        id: format!("ntf_{key}_{:08x}", fastrand::u32(..)),
        fingerprint: dedupd_core::notification::fingerprint(&body),
        request: body,
        channel: "sms".into(),
        provider: "test".into(),
        guard_key: Some(content_guard_key("C1", Channel::Sms, text)),
        not_after: None,
    }
}

async fn created(
    o: &impl OutboxStore,
    n: NewNotification,
    opts: AcceptOptions,
    now: DateTime<Utc>,
) -> Notification {
    match o.accept(n, opts, now).await.expect("accept") {
        Accepted::Created(n) => n,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// Runs the suite; panics (test failure) on the first violation.
pub async fn run<O: OutboxStore + Clone + 'static>(o: &O) {
    let now = t0();
    let opts = AcceptOptions::default();
    let lease = Duration::seconds(30);

    assert_eq!(o.backlog().await.expect("backlog"), Backlog::default());

    // Insert-or-get by key with the fingerprint.
    let first = created(o, new_notification("k1", "hello"), opts, now).await;
    assert_eq!(first.status, Status::Pending);
    assert_eq!(first.accepted_status, Status::Pending);
    assert_eq!(first.next_attempt_at, Some(now));
    assert_eq!(first.expires_at, now + Duration::hours(24));
    assert_eq!(first.duplicate_of, None);
    let mut again = new_notification("k1", "hello");
    again.id = "another-id".into();
    match o
        .accept(again, opts, now + Duration::seconds(1))
        .await
        .expect("accept")
    {
        Accepted::Replay(n) => assert_eq!(n, first, "a replay returns the stored notification"),
        other => panic!("same key, same body must replay: {other:?}"),
    }
    match o
        .accept(new_notification("k1", "HELLO"), opts, now)
        .await
        .expect("accept")
    {
        Accepted::Mismatch(n) => assert_eq!(n.id, first.id),
        other => panic!("same key, other body must mismatch: {other:?}"),
    }
    assert_eq!(o.get("k1", now).await.expect("get"), Some(first.clone()));
    assert_eq!(o.get("nope", now).await.expect("get"), None);

    // The content guard: report, suppress, window, off.
    let dup = created(o, new_notification("k2", "hello"), opts, now).await;
    assert_eq!(dup.duplicate_of.as_deref(), Some("k1"));
    assert_eq!(dup.status, Status::Pending, "report mode still sends");
    let suppress = AcceptOptions {
        guard: GuardMode::Suppress,
        ..opts
    };
    let sup = created(o, new_notification("k3", "hello"), suppress, now).await;
    assert_eq!(sup.status, Status::Failed);
    assert_eq!(sup.accepted_status, Status::Failed);
    assert_eq!(sup.next_attempt_at, None);
    assert!(
        sup.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("suppressed"))
    );
    let later = created(
        o,
        new_notification("k4", "hello"),
        opts,
        now + Duration::hours(25),
    )
    .await;
    assert_eq!(later.duplicate_of, None, "outside the window");
    let off = AcceptOptions {
        guard: GuardMode::Off,
        ..opts
    };
    let unguarded = created(o, new_notification("k5", "hello"), off, now).await;
    assert_eq!(unguarded.duplicate_of, None);
    assert_eq!(
        o.backlog().await.expect("backlog"),
        Backlog {
            count: 4,
            oldest: Some(now)
        },
        "k1, k2, k4, k5 have work ahead; the suppressed k3 has none"
    );

    // Claims: due work only, leases, take-over after the lease.
    let mut other = new_notification("k6", "other text");
    other.not_after = Some(now + Duration::minutes(5));
    created(o, other, opts, now).await;
    let claimed = o.claim(now, lease, 10).await.expect("claim");
    let mut keys: Vec<&str> = claimed
        .iter()
        .map(|c| c.notification.key.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["k1", "k2", "k5", "k6"],
        "k3 is suppressed, k4 is not due yet"
    );
    for c in &claimed {
        assert_eq!(c.previous, Status::Pending);
        assert_eq!(c.notification.status, Status::Sending);
        assert_eq!(c.notification.attempts, 0, "a claim is not an attempt");
        assert_eq!(c.notification.readbacks, 0);
        assert_eq!(c.notification.first_attempt_at, Some(now));
        assert!(c.notification.lease.is_some());
    }
    let k6 = claimed
        .iter()
        .find(|c| c.notification.key == "k6")
        .expect("k6");
    assert_eq!(k6.notification.not_after, Some(now + Duration::minutes(5)));
    assert!(
        o.claim(now + Duration::seconds(1), lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    assert_eq!(o.claim(now, lease, 1).await.expect("claim").len(), 0);

    let lease_of = |key: &str| {
        claimed
            .iter()
            .find(|c| c.notification.key == key)
            .and_then(|c| c.notification.lease.clone())
            .expect("leased")
    };
    // Finishing needs the lease.
    let delivered = Outcome::Delivered {
        provider_message_id: Some("pm-1".into()),
    };
    assert!(
        !o.finish("k1", "wrong", delivered.clone(), SENT, now)
            .await
            .expect("finish")
    );
    assert!(
        o.finish("k1", &lease_of("k1"), delivered.clone(), SENT, now)
            .await
            .expect("finish")
    );
    assert!(
        !o.finish("k1", &lease_of("k1"), delivered, SENT, now)
            .await
            .expect("finish"),
        "once"
    );
    let k1 = o.get("k1", now).await.expect("get").expect("k1");
    assert_eq!(
        o.backlog().await.expect("backlog").count,
        4,
        "k1 delivered leaves k2, k4, k5, k6 (k2, k5, k6 leased)"
    );
    assert_eq!(k1.status, Status::Delivered);
    assert_eq!(k1.provider_message_id.as_deref(), Some("pm-1"));
    assert_eq!(k1.delivered_at, Some(now));
    assert_eq!(k1.lease, None);
    assert_eq!(
        (k1.attempts, k1.readbacks),
        (1, 0),
        "one send, counted once: the refused finishes count nothing"
    );

    // Retry: due again at the given time, not before.
    let at = now + Duration::seconds(10);
    let retry = Outcome::Retry {
        at,
        error: "429".into(),
    };
    assert!(
        o.finish("k2", &lease_of("k2"), retry, SENT, now)
            .await
            .expect("finish")
    );
    // Unknown with a recheck, and unknown for good.
    let unknown = Outcome::Unknown {
        recheck_at: Some(at),
        error: "504".into(),
    };
    assert!(
        o.finish("k5", &lease_of("k5"), unknown, SENT, now)
            .await
            .expect("finish")
    );
    assert!(
        o.finish(
            "k6",
            &lease_of("k6"),
            Outcome::Expired,
            Work::default(),
            now
        )
        .await
        .expect("finish")
    );
    let k6 = o.get("k6", now).await.expect("get").expect("k6");
    assert_eq!((k6.attempts, k6.readbacks), (0, 0), "expired unsent");
    assert!(
        o.claim(at - Duration::seconds(1), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = o.claim(at, lease, 10).await.expect("claim");
    let mut prev: Vec<(String, Status)> = again
        .iter()
        .map(|c| (c.notification.key.clone(), c.previous))
        .collect();
    prev.sort();
    assert_eq!(
        prev,
        [
            ("k2".to_owned(), Status::Pending),
            ("k5".to_owned(), Status::Unknown)
        ]
    );
    let k2 = again
        .iter()
        .find(|c| c.notification.key == "k2")
        .expect("k2");
    assert_eq!(k2.notification.attempts, 1, "one send so far");
    assert_eq!(
        k2.notification.first_attempt_at,
        Some(now),
        "the first attempt is kept"
    );
    assert_eq!(k2.notification.last_error.as_deref(), Some("429"));
    // A lease that runs out: another relay takes over, the old holder is fenced off.
    let stale_lease = k2.notification.lease.clone().expect("lease");
    let takeover = o.claim(at + lease, lease, 10).await.expect("claim");
    let k2b = takeover
        .iter()
        .find(|c| c.notification.key == "k2")
        .expect("k2 taken over");
    assert_eq!(
        k2b.previous,
        Status::Sending,
        "the taker sees an attempt may have gone out"
    );
    assert!(
        !o.finish(
            "k2",
            &stale_lease,
            Outcome::Failed { error: "x".into() },
            SENT,
            at + lease
        )
        .await
        .expect("finish")
    );
    let k2_lease = k2b.notification.lease.clone().expect("lease");
    assert!(
        o.finish(
            "k2",
            &k2_lease,
            Outcome::Failed {
                error: "400 bad number".into()
            },
            SENT,
            at + lease
        )
        .await
        .expect("finish")
    );
    let k2 = o.get("k2", at + lease).await.expect("get").expect("k2");
    assert_eq!(
        k2.attempts, 2,
        "the fenced-off holder's send is not counted, the taker's is"
    );
    let k5 = takeover
        .iter()
        .find(|c| c.notification.key == "k5")
        .expect("k5");
    let k5_lease = k5.notification.lease.clone().expect("lease");
    let give_up = Outcome::Unknown {
        recheck_at: None,
        error: "read-back failed".into(),
    };
    assert!(
        o.finish("k5", &k5_lease, give_up, READ_BACK, at + lease)
            .await
            .expect("finish")
    );
    let k5 = o.get("k5", at + lease).await.expect("get").expect("k5");
    assert_eq!(
        (k5.attempts, k5.readbacks),
        (1, 1),
        "a read-back is no attempt"
    );
    // k4 (accepted 25 h later) is the only work left.
    let end = now + Duration::hours(25);
    let rest = o.claim(end, lease, 10).await.expect("claim");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].notification.key, "k4");

    let counts = o.counts().await.expect("counts");
    assert_eq!(counts.get(&Status::Delivered), Some(&1));
    assert_eq!(
        counts.get(&Status::Failed),
        Some(&2),
        "k2 and the suppressed k3"
    );
    assert_eq!(counts.get(&Status::Unknown), Some(&1));
    assert_eq!(counts.get(&Status::Expired), Some(&1));
    assert_eq!(counts.get(&Status::Sending), Some(&1));
    let failed = o.list(Status::Failed, 10).await.expect("list");
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].last_error.as_deref(), Some("400 bad number"));

    // Keys expire after the retention: forgotten, and usable again with another body.
    let past = now + Duration::hours(24) + Duration::seconds(1);
    assert_eq!(o.get("k1", past).await.expect("get"), None);
    let reused = created(o, new_notification("k1", "a new body"), opts, past).await;
    assert_ne!(reused.id, first.id);
    // The purge forgets expired keys that need no more work (k3, k5, k6, k2), not k4.
    let purged = o.purge_expired(past).await.expect("purge");
    assert_eq!(purged, 4);
    assert!(o.get("k4", past).await.expect("get").is_some());

    // A plain insert (the benchmark's baseline) refuses an existing key.
    o.insert_plain(new_notification("p1", "plain"), now)
        .await
        .expect("insert");
    assert!(
        o.insert_plain(new_notification("p1", "plain"), now)
            .await
            .is_err()
    );

    // Concurrent accepts of one key: one is created, the others replay it.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let o = o.clone();
            tokio::spawn(async move { o.accept(new_notification("race", "same"), opts, now).await })
        })
        .collect();
    let mut created_n = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.expect("join").expect("accept") {
            Accepted::Created(_) => created_n += 1,
            Accepted::Replay(_) => replayed += 1,
            Accepted::Mismatch(_) => panic!("same body"),
        }
    }
    assert_eq!((created_n, replayed), (1, 15));

    status_events(o).await;
}

/// Status events (issue 17): one per transition, written with the change, stable ids, listed
/// until marked published.
async fn status_events<O: OutboxStore>(o: &O) {
    let now = t0() + Duration::days(30);
    let opts = AcceptOptions {
        guard: GuardMode::Off,
        ..AcceptOptions::default()
    };
    let lease = Duration::seconds(30);
    // What the run before left: the accepted events of its notifications, among others.
    let before = o.unpublished_events(100_000).await.expect("events");
    assert!(
        before
            .iter()
            .any(|e| e.key == "k1" && e.transition == "accepted"),
        "every accept wrote its event: {before:?}"
    );
    let ids: Vec<String> = before.iter().map(|e| e.id.clone()).collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "event ids are unique");
    assert_eq!(o.events_backlog().await.expect("backlog"), ids.len() as u64);
    assert_eq!(
        o.remove_published(ids.clone()).await.expect("remove"),
        ids.len() as u64
    );
    assert!(o.unpublished_events(10).await.expect("events").is_empty());
    assert_eq!(o.remove_published(ids).await.expect("remove"), 0, "once");
    assert_eq!(
        o.events_backlog().await.expect("backlog"),
        0,
        "published events are deleted, not kept"
    );

    // Accepted: one event; a replay writes none.
    let n = created(o, new_notification("ev1", "events"), opts, now).await;
    let _ = o.accept(new_notification("ev1", "events"), opts, now).await;
    let ev = o.unpublished_events(10).await.expect("events");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0], StatusEvent::of(&n, "accepted", now));
    assert_eq!(ev[0].id, format!("{}:accepted", n.id));
    assert_eq!(ev[0].schema, "dedupd.notification.status/v1");

    // A retry is no event; unknown is, once however often; delivered is.
    let take = |at| async move {
        let c = o.claim(at, lease, 100).await.expect("claim");
        let c = c
            .into_iter()
            .find(|c| c.notification.key == "ev1")
            .expect("ev1 due");
        c.notification.lease.expect("lease")
    };
    let l = take(now).await;
    let retry = Outcome::Retry {
        at: now,
        error: "503".into(),
    };
    assert!(o.finish("ev1", &l, retry, SENT, now).await.expect("finish"));
    for _ in 0..2 {
        let l = take(now).await;
        let unknown = Outcome::Unknown {
            recheck_at: Some(now),
            error: "timeout".into(),
        };
        assert!(
            o.finish("ev1", &l, unknown, SENT, now)
                .await
                .expect("finish")
        );
    }
    let l = take(now).await;
    let delivered = Outcome::Delivered {
        provider_message_id: Some("pm-1".into()),
    };
    assert!(
        o.finish("ev1", &l, delivered, SENT, now)
            .await
            .expect("finish")
    );
    let ev = o.unpublished_events(10).await.expect("events");
    let transitions: Vec<&str> = ev.iter().map(|e| e.transition.as_str()).collect();
    assert_eq!(transitions, ["accepted", "unknown", "delivered"], "{ev:?}");
    let last = &ev[2];
    assert_eq!(last.status, Status::Delivered);
    assert_eq!(last.attempts, 4);
    assert_eq!(last.provider_message_id.as_deref(), Some("pm-1"));
    // A finish that lost its lease writes no event.
    assert!(
        !o.finish("ev1", &l, Outcome::Expired, Work::default(), now)
            .await
            .expect("finish")
    );
    assert_eq!(o.unpublished_events(10).await.expect("events").len(), 3);
    // Published in part: the rest stays listed, in order.
    assert_eq!(
        o.remove_published(vec![ev[0].id.clone()])
            .await
            .expect("remove"),
        1
    );
    let rest = o.unpublished_events(10).await.expect("events");
    assert_eq!(rest, ev[1..].to_vec());
    assert_eq!(o.events_backlog().await.expect("backlog"), 2);

    // Once its event is published and deleted, an `unknown` that comes again (a recheck that
    // still cannot tell) is written again under the same id: consumers dedupe on it.
    let n2 = created(o, new_notification("ev2", "events two"), opts, now).await;
    let unknown = || Outcome::Unknown {
        recheck_at: Some(now),
        error: "timeout".into(),
    };
    let take2 = || async move {
        let c = o.claim(now, lease, 100).await.expect("claim");
        c.into_iter()
            .find(|c| c.notification.key == "ev2")
            .expect("ev2 due")
            .notification
            .lease
            .expect("lease")
    };
    let l = take2().await;
    assert!(
        o.finish("ev2", &l, unknown(), SENT, now)
            .await
            .expect("finish")
    );
    let ids: Vec<String> = o
        .unpublished_events(10)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.id)
        .collect();
    o.remove_published(ids).await.expect("remove");
    assert_eq!(o.events_backlog().await.expect("backlog"), 0);
    let l = take2().await;
    assert!(
        o.finish("ev2", &l, unknown(), READ_BACK, now)
            .await
            .expect("finish")
    );
    let again = o.unpublished_events(10).await.expect("events");
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].id, format!("{}:unknown", n2.id));
    let ids = again.into_iter().map(|e| e.id).collect();
    o.remove_published(ids).await.expect("remove");
}

/// The suite for an outbox opened without status events (no sink configured): the same
/// changes write none, and the accept stays one row.
pub async fn run_without_status_events<O: OutboxStore>(o: &O) {
    let now = t0();
    let opts = AcceptOptions::default();
    let lease = Duration::seconds(30);
    let n = created(o, new_notification("quiet", "no events"), opts, now).await;
    let c = o.claim(now, lease, 10).await.expect("claim");
    let l = c
        .into_iter()
        .find(|c| c.notification.key == "quiet")
        .and_then(|c| c.notification.lease)
        .expect("quiet due");
    let delivered = Outcome::Delivered {
        provider_message_id: None,
    };
    assert!(
        o.finish("quiet", &l, delivered, SENT, now)
            .await
            .expect("finish")
    );
    assert_eq!(
        o.get("quiet", now).await.expect("get").map(|g| g.status),
        Some(Status::Delivered),
        "{n:?}"
    );
    assert!(o.unpublished_events(10).await.expect("events").is_empty());
    assert_eq!(o.events_backlog().await.expect("backlog"), 0);
}
