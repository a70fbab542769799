//! The relay against the local HTTP provider (dedupes on the key) and the emulator's agentless
//! messages (does not): retries, Retry-After, permanent errors, caps, ambiguous outcomes,
//! read-back, take-over of a dead relay's lease, `not_after`.

use std::collections::BTreeMap;

use chrono::Duration;
use dedupd_emulator::{FaultKind, FaultProfile, FaultRule};
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
                .contains("invalid destination"),
            "the provider's reason: {failed}"
        );
        let amb = status(&api, "ambiguous").await;
        assert_eq!(
            amb["status"], "pending",
            "a 500 from a deduping provider is retried: {amb}"
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
        for _ in 0..cfg.relay.max_attempts {
            local.push(&doomed, Fault::Unavailable);
        }
        for _ in 0..=cfg.relay.max_attempts {
            api.clock.advance(Duration::minutes(5));
            relay.round().await.unwrap();
        }
        let s = status(&api, "doomed").await;
        assert_eq!(s["status"], "failed", "{backend:?}: {s}");
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
