//! The relay against the local HTTP provider (dedupes on the key) and the emulator's agentless
//! messages (does not): retries, Retry-After, permanent errors, caps, ambiguous outcomes,
//! read-back, take-over of a dead relay's lease, `not_after`.

use std::collections::BTreeMap;

use chrono::Duration;
use dedupd_emulator::{FaultKind, FaultProfile, FaultRule};
use dedupd_store::outbox::OutboxStore;
use serde_json::{Value, json};

use crate::common::{Api, BACKENDS, Fault, LocalProvider, config, drop_outbox, emulator};

fn sms(text: &str) -> Value {
    json!({"channel": "sms", "to": "+14155552671", "text": text})
}

async fn status(api: &Api, key: &str) -> Value {
    api.get(&format!("/v1/notifications/{key}"))
        .await
        .expect(200)
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_provider_retries_with_the_same_key() {
    for backend in BACKENDS {
        let cfg = config();
        let Some(api) = Api::start(backend, &cfg).await else {
            continue;
        };
        let local = LocalProvider::start().await;
        let relay = api.relay(
            BTreeMap::from([("local".to_owned(), local.provider())]),
            &cfg,
        );

        let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
        let ok = id(api.post("plain", &sms("one")).await.expect(202));
        let ambiguous = id(api.post("ambiguous", &sms("two")).await.expect(202));
        let limited = id(api.post("limited", &sms("three")).await.expect(202));
        let rejected = id(api.post("rejected", &sms("four")).await.expect(202));
        local.push(&ambiguous, Fault::ApplyThen500);
        local.push(&limited, Fault::TooMany(7));
        local.push(&rejected, Fault::Reject("invalid destination"));
        let stats = relay.round().await.unwrap();
        assert_eq!((stats.claimed, stats.recorded), (4, 4));

        assert_eq!(
            status(&api, "plain").await["status"],
            "delivered",
            "{backend:?}"
        );
        let failed = status(&api, "rejected").await;
        assert_eq!(failed["status"], "failed");
        assert!(
            failed["last_error"]
                .as_str()
                .unwrap()
                .starts_with("400 Bad Request"),
            "the provider's status, not its words: {failed}"
        );
        let amb = status(&api, "ambiguous").await;
        assert_eq!(amb["status"], "unknown", "a 500 may have gone out: {amb}");
        assert!(
            !amb["next_attempt_at"].is_null(),
            "a deduping provider is sent to again with the same key: {amb}"
        );
        let lim = status(&api, "limited").await;
        assert_eq!(lim["status"], "pending");
        // The 429's Retry-After (7 s) is honoured: not due before.
        let next: chrono::DateTime<chrono::Utc> =
            lim["next_attempt_at"].as_str().unwrap().parse().unwrap();
        assert!(
            next >= api.clock.now() + Duration::seconds(7),
            "Retry-After honoured: {lim}"
        );
        api.clock.advance(Duration::seconds(6));
        relay.round().await.unwrap();
        assert_eq!(
            status(&api, "limited").await["status"],
            "pending",
            "not before Retry-After"
        );
        api.clock.advance(Duration::seconds(2));
        relay.round().await.unwrap();
        for k in ["plain", "ambiguous", "limited"] {
            assert_eq!(
                status(&api, k).await["status"],
                "delivered",
                "{backend:?} {k}"
            );
        }
        // Exactly once at the provider; the ambiguous one was sent twice with the same key.
        for i in [&ok, &ambiguous, &limited] {
            assert_eq!(local.delivered(i), 1, "{backend:?}");
        }
        assert_eq!(local.requests(&ok), 1);
        assert_eq!(
            local.requests(&ambiguous),
            2,
            "sent again with the same key"
        );
        assert_eq!(local.requests(&limited), 2);
        assert_eq!(
            local.requests(&rejected),
            1,
            "a permanent error is not retried"
        );
        assert_eq!(local.delivered(&rejected), 0);
        assert_eq!(local.state.lock().unwrap().keyless, 0);
        drop_outbox(api.outbox()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_and_not_after() {
    for backend in BACKENDS {
        let cfg = config();
        let Some(api) = Api::start(backend, &cfg).await else {
            continue;
        };
        let local = LocalProvider::start().await;
        let relay = api.relay(
            BTreeMap::from([("local".to_owned(), local.provider())]),
            &cfg,
        );
        let doomed = api.post("doomed", &sms("x")).await.expect(202)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Answers that say nothing was sent: failed once the attempts are used up.
        for _ in 0..cfg.relay.max_attempts {
            local.push(&doomed, Fault::TooMany(0));
        }
        for _ in 0..=cfg.relay.max_attempts {
            api.clock.advance(Duration::seconds(5));
            relay.round().await.unwrap();
        }
        let s = status(&api, "doomed").await;
        assert_eq!(s["status"], "failed", "{backend:?}: {s}");
        assert_eq!(s["attempts"], cfg.relay.max_attempts, "{s}");
        assert!(
            s["last_error"]
                .as_str()
                .unwrap()
                .starts_with("gave up after 4 attempts"),
            "{s}"
        );

        let mut late = sms("too late");
        late["not_after"] = json!("2026-11-24T12:00:30Z");
        api.post("late", &late).await.expect(202);
        api.clock.advance(Duration::hours(1));
        relay.round().await.unwrap();
        assert_eq!(status(&api, "late").await["status"], "expired");
        drop_outbox(api.outbox()).await;
    }
}

fn agentless_fault(kind: FaultKind) -> FaultProfile {
    FaultProfile {
        rules: vec![FaultRule {
            kind,
            probability: 1.0,
            methods: vec!["POST".into()],
            paths: vec!["/api/v2/conversations/messages/agentless".into()],
            statuses: None,
            delay_ms: None,
            burst: None,
            retry_after_secs: None,
        }],
        ..FaultProfile::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentless_ambiguity_is_reconciled_not_resent_blindly() {
    for backend in BACKENDS {
        let mut cfg = config();
        cfg.channels
            .insert(dedupd_core::notification::Channel::Sms, "genesys".into());
        let Some(api) = Api::start(backend, &cfg).await else {
            continue;
        };
        let (emu, genesys) = emulator().await;
        let relay = api.relay(
            BTreeMap::from([("genesys".to_owned(), genesys.clone())]),
            &cfg,
        );
        let sends = |text: &str| {
            emu.state()
                .agentless_sends()
                .get(&("+14155552671".to_owned(), text.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        // The clock of the read-back must be the platform's: use the real time here.
        api.clock.advance(chrono::Utc::now() - api.clock.now());

        // A plain send.
        api.post("a1", &sms("plain")).await.expect(202);
        relay.round().await.unwrap();
        let s = status(&api, "a1").await;
        assert_eq!(s["status"], "delivered", "{backend:?}: {s}");
        assert!(s["provider_message_id"].is_string());
        assert_eq!(sends("plain"), 1);

        // 504 but applied: unknown, then the read-back finds it: delivered, sent once.
        emu.state()
            .set_faults(agentless_fault(FaultKind::GatewayTimeoutApplied));
        api.post("a2", &sms("applied")).await.expect(202);
        relay.round().await.unwrap();
        let s = status(&api, "a2").await;
        assert_eq!(s["status"], "unknown", "{backend:?}: {s}");
        assert_eq!(sends("applied"), 1);
        emu.state().set_faults(FaultProfile::default());
        api.clock.advance(Duration::seconds(10));
        relay.round().await.unwrap();
        let s = status(&api, "a2").await;
        assert_eq!(s["status"], "delivered", "{backend:?}: {s}");
        assert_eq!(sends("applied"), 1, "reconciled, not resent");

        // 504 and not applied: unknown, the read-back finds nothing: resent once.
        emu.state().set_faults(agentless_fault(FaultKind::Timeout));
        let mut faults = agentless_fault(FaultKind::Timeout);
        faults.rules[0].delay_ms = Some(1);
        emu.state().set_faults(faults);
        api.post("a3", &sms("lost")).await.expect(202);
        relay.round().await.unwrap();
        assert_eq!(status(&api, "a3").await["status"], "unknown");
        assert_eq!(sends("lost"), 0);
        emu.state().set_faults(FaultProfile::default());
        api.clock.advance(Duration::seconds(10));
        relay.round().await.unwrap();
        assert_eq!(status(&api, "a3").await["status"], "delivered");
        assert_eq!(sends("lost"), 1);

        // A relay that died mid-attempt: its lease runs out, the next one reads back first.
        api.post("a4", &sms("orphan")).await.expect(202);
        let claimed = api
            .outbox()
            .claim(api.clock.now(), Duration::seconds(30), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        // It had sent before dying.
        genesys
            .send(
                &claimed[0].notification.id,
                &serde_json::from_value(claimed[0].notification.request.clone()).unwrap(),
            )
            .await;
        assert_eq!(sends("orphan"), 1);
        api.clock.advance(Duration::seconds(31));
        relay.round().await.unwrap();
        let s = status(&api, "a4").await;
        assert_eq!(s["status"], "delivered", "{backend:?}: {s}");
        assert_eq!(
            sends("orphan"),
            1,
            "the take-over found the message instead of resending"
        );

        emu.shutdown().await;
        drop_outbox(api.outbox()).await;
    }
}

/// Runs rounds, moving the clock `step` before each, until nothing is due any more (at most
/// `max` rounds).
async fn drain(api: &Api, relay: &dedupd_notify::Relay, step: Duration, max: usize) {
    for _ in 0..max {
        api.clock.advance(step);
        relay.round().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncertain_sends_that_exhaust_the_attempts_end_unknown_and_attempts_count_sends() {
    for backend in BACKENDS {
        let cfg = config();
        let max = cfg.relay.max_attempts;
        let Some(api) = Api::start(backend, &cfg).await else {
            continue;
        };
        let local = LocalProvider::start().await;
        // A short timeout, so that a hung request ends quickly (the client's timeout fires).
        let relay = api.relay(
            BTreeMap::from([(
                "local".to_owned(),
                local.provider_with_timeout(std::time::Duration::from_millis(300)),
            )]),
            &cfg,
        );
        let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
        let uncertain = id(api.post("uncertain", &sms("u")).await.expect(202));
        let refused = id(api.post("refused", &sms("r")).await.expect(202));
        let throttled = id(api.post("throttled", &sms("t")).await.expect(202));
        let mixed = id(api.post("mixed", &sms("m")).await.expect(202));
        // Every answer is uncertain; the second one did reach the customer.
        for f in [
            Fault::Unavailable,
            Fault::ApplyThen500,
            Fault::Hang,
            Fault::Unavailable,
        ] {
            local.push(&uncertain, f);
        }
        local.push(&refused, Fault::Reject("invalid destination"));
        for _ in 0..max {
            local.push(&throttled, Fault::TooMany(0));
        }
        local.push(&mixed, Fault::Unavailable);
        local.push(&mixed, Fault::Reject("blocked"));
        // The test config's backoff is at most 4 s: 5 s per round makes every retry due.
        relay.round().await.unwrap();
        drain(&api, &relay, Duration::seconds(5), 2 * max as usize).await;

        let u = status(&api, "uncertain").await;
        assert_eq!(u["status"], "unknown", "{backend:?}: {u}");
        assert_eq!(u["attempts"], max, "attempts count sends: {u}");
        assert_eq!(local.requests(&uncertain), max, "{backend:?}");
        assert!(u["next_attempt_at"].is_null(), "unknown for good: {u}");
        assert_eq!(local.delivered(&uncertain), 1, "it did go out once");

        let r = status(&api, "refused").await;
        assert_eq!(r["status"], "failed", "{backend:?}: {r}");
        assert_eq!(r["attempts"], 1, "{r}");
        assert_eq!(local.requests(&refused), 1);

        // Answers that say nothing was sent (429) exhaust the attempts: failed, safe to resend.
        let t = status(&api, "throttled").await;
        assert_eq!(t["status"], "failed", "{backend:?}: {t}");
        assert_eq!(t["attempts"], max, "{t}");
        assert_eq!(local.requests(&throttled), max);
        assert!(
            t["last_error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("gave up after {max} attempts")),
            "{t}"
        );

        // A refusal after an uncertain send: the first may have gone out.
        let m = status(&api, "mixed").await;
        assert_eq!(m["status"], "unknown", "{backend:?}: {m}");
        assert_eq!(m["attempts"], 2, "{m}");
        assert!(m["next_attempt_at"].is_null(), "{m}");
        assert_eq!(local.requests(&mixed), 2);
        drop_outbox(api.outbox()).await;
    }
}

fn agentless_posts(emu: &dedupd_emulator::RunningEmulator) -> u64 {
    emu.state()
        .stats()
        .requests_by_route
        .get("POST /api/v2/conversations/messages/agentless")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentless_uncertain_sends_are_read_back_before_the_outcome_is_settled() {
    for backend in BACKENDS {
        let mut cfg = config();
        cfg.channels
            .insert(dedupd_core::notification::Channel::Sms, "genesys".into());
        cfg.relay.reconcile_after_secs = 1;
        let max = cfg.relay.max_attempts;
        let Some(api) = Api::start(backend, &cfg).await else {
            continue;
        };
        let (emu, genesys) = emulator().await;
        let relay = api.relay(BTreeMap::from([("genesys".to_owned(), genesys)]), &cfg);
        let sends = |text: &str| {
            emu.state()
                .agentless_sends()
                .get(&("+14155552671".to_owned(), text.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        api.clock.advance(chrono::Utc::now() - api.clock.now());

        // Every send times out without being applied; the read-back says so each time: after
        // the last send the read-back settles it as not sent (`failed`), with one attempt per
        // send (read-backs are not attempts).
        let mut faults = agentless_fault(FaultKind::Timeout);
        faults.rules[0].delay_ms = Some(1);
        emu.state().set_faults(faults);
        api.post("lost", &sms("lost every time")).await.expect(202);
        relay.round().await.unwrap();
        drain(&api, &relay, Duration::seconds(5), 3 * max as usize).await;
        let s = status(&api, "lost").await;
        assert_eq!(s["status"], "failed", "{backend:?}: {s}");
        assert_eq!(s["attempts"], max, "{s}");
        assert_eq!(agentless_posts(&emu), u64::from(max), "{backend:?}");
        assert_eq!(sends("lost every time"), 0);

        // Applied but answered 504, and the read-back keeps failing: never resent blindly, and
        // `unknown` for good once the read-backs run out; one send, one attempt.
        let mut faults = agentless_fault(FaultKind::GatewayTimeoutApplied);
        faults.rules.push(FaultRule {
            kind: FaultKind::ServerError,
            probability: 1.0,
            methods: vec!["POST".into()],
            paths: vec!["/api/v2/analytics/conversations/details/query".into()],
            statuses: None,
            delay_ms: None,
            burst: None,
            retry_after_secs: None,
        });
        emu.state().set_faults(faults);
        let before = agentless_posts(&emu);
        api.post("maybe", &sms("maybe sent")).await.expect(202);
        relay.round().await.unwrap();
        drain(&api, &relay, Duration::seconds(5), 3 * max as usize).await;
        let s = status(&api, "maybe").await;
        assert_eq!(s["status"], "unknown", "{backend:?}: {s}");
        assert_eq!(s["attempts"], 1, "{s}");
        assert!(s["next_attempt_at"].is_null(), "{s}");
        assert_eq!(agentless_posts(&emu) - before, 1, "not resent blindly");
        assert_eq!(sends("maybe sent"), 1);

        emu.shutdown().await;
        drop_outbox(api.outbox()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_echoing_the_request_never_reach_last_error() {
    for backend in BACKENDS {
        let cfg = config();
        let Some(api) = Api::start(backend, &cfg).await else {
            continue;
        };
        let local = LocalProvider::start().await;
        let relay = api.relay(
            BTreeMap::from([("local".to_owned(), local.provider())]),
            &cfg,
        );
        let id = api
            .post("echo", &sms("Your code is 4711"))
            .await
            .expect(202)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        local.push(
            &id,
            Fault::Reject(
                "number +14155552671 cannot receive: Your code is 4711 (jane@example.com)",
            ),
        );
        relay.round().await.unwrap();
        let s = status(&api, "echo").await;
        assert_eq!(s["status"], "failed", "{backend:?}: {s}");
        let e = s["last_error"].as_str().unwrap();
        assert!(e.starts_with("400"), "the status code is kept: {e}");
        for leak in [
            "4155552671",
            "Your code",
            "4711",
            "jane@example.com",
            "example",
        ] {
            assert!(!e.contains(leak), "last_error leaks {leak:?}: {e}");
        }
        assert!(e.chars().count() <= 200, "bounded: {e}");
        drop_outbox(api.outbox()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_provider_is_paused_and_the_others_keep_flowing() {
    use dedupd_http::{Readiness, ReadyCheck};
    for backend in BACKENDS {
        let mut cfg = config();
        cfg.providers.insert(
            "dead".into(),
            dedupd_notify::ProviderConfig::Http {
                url: "http://unused".into(),
                token_env: None,
                dedupes_on_key: true,
            },
        );
        cfg.channels
            .insert(dedupd_core::notification::Channel::Email, "dead".into());
        cfg.relay.provider_pause_after_secs = 60;
        cfg.relay.provider_probe_secs = 30;
        // Enough attempts that the dead provider's notifications are still being tried.
        cfg.relay.max_attempts = 100;
        cfg.validate().unwrap();
        let Some(api) = Api::start(backend, &cfg).await else {
            continue;
        };
        let live = LocalProvider::start().await;
        let dead = LocalProvider::start().await;
        dead.set_down(true);
        let relay = api.relay(
            BTreeMap::from([
                ("local".to_owned(), live.provider()),
                ("dead".to_owned(), dead.provider()),
            ]),
            &cfg,
        );
        let health = relay.health();
        let email = |text: &str| json!({"channel": "email", "to": "ann@example.com", "text": text});
        let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
        let mut held = Vec::new();
        for k in ["d1", "d2", "d3"] {
            held.push((k, id(api.post(k, &email(k)).await.expect(202))));
        }
        api.post("s1", &sms("s1")).await.expect(202);
        relay.round().await.unwrap();
        assert_eq!(status(&api, "s1").await["status"], "delivered");

        // A minute without a success (every retry due within 5 s): paused at 60 s, not before.
        for _ in 0..11 {
            api.clock.advance(Duration::seconds(5));
            relay.round().await.unwrap();
            assert!(relay.paused_providers().is_empty(), "{backend:?}");
        }
        assert_eq!(health.check().await, Readiness::Ready);
        api.clock.advance(Duration::seconds(5));
        relay.round().await.unwrap();
        assert_eq!(relay.paused_providers(), ["dead"], "{backend:?}");
        assert_eq!(health.check().await, Readiness::Degraded);

        // Paused: the dead provider is not contacted until the probe; the live one still is.
        let before = dead.total_requests();
        held.push(("d4", id(api.post("d4", &email("d4")).await.expect(202))));
        api.post("s2", &sms("s2")).await.expect(202);
        for _ in 0..5 {
            api.clock.advance(Duration::seconds(5));
            relay.round().await.unwrap();
        }
        assert_eq!(dead.total_requests(), before, "{backend:?}: not hammered");
        assert_eq!(status(&api, "s2").await["status"], "delivered");
        // One probe per probe interval; it fails: still paused.
        api.clock.advance(Duration::seconds(5));
        relay.round().await.unwrap();
        assert_eq!(dead.total_requests(), before + 1, "{backend:?}: one probe");
        assert_eq!(relay.paused_providers(), ["dead"]);
        for (k, _) in &held {
            let s = status(&api, k).await;
            assert!(!s["next_attempt_at"].is_null(), "held, not dropped: {s}");
        }

        // Back up: a probe succeeds, the provider resumes, everything goes out exactly once.
        dead.set_down(false);
        drain(&api, &relay, Duration::seconds(5), 20).await;
        assert!(relay.paused_providers().is_empty(), "{backend:?}");
        assert_eq!(health.check().await, Readiness::Ready);
        for (k, i) in &held {
            let s = status(&api, k).await;
            assert_eq!(s["status"], "delivered", "{backend:?}: {s}");
            assert_eq!(dead.delivered(i), 1, "{k}");
            assert_eq!(
                s["attempts"],
                dead.requests(i),
                "attempts count sends, not the holds: {s}"
            );
        }
        drop_outbox(api.outbox()).await;
    }
}
