//! The HTTP semantics of `POST /v1/notifications` and `GET /v1/notifications/{key}`, with
//! both backends.

use chrono::Duration;
use dedupd_store::outbox::{GuardMode, OutboxStore};
use serde_json::json;

use crate::common::{Api, BACKENDS, config, drop_outbox, resp};

fn sms(text: &str) -> serde_json::Value {
    json!({"channel": "sms", "to": "+14155552671", "text": text, "customer_id": "C-1"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_semantics() {
    for backend in BACKENDS {
        let Some(api) = Api::start(backend, &config()).await else {
            continue;
        };

        // No key → 400; a malformed key → 400.
        api.post_raw(None, Some("application/json"), sms("hi").to_string())
            .await
            .expect_error(400, "missing_idempotency_key");
        api.post_raw(
            Some("has space"),
            Some("application/json"),
            sms("hi").to_string(),
        )
        .await
        .expect_error(400, "invalid_idempotency_key");

        // First use → 202 with id and status.
        let first = api.post("order-42", &sms("Your order shipped")).await;
        let body = first.expect(202).clone();
        assert_eq!(body["status"], "pending", "{backend:?}");
        assert_eq!(body["key"], "order-42");
        assert!(body["id"].as_str().unwrap().starts_with("ntf_"));
        assert_eq!(first.headers["location"], "/v1/notifications/order-42");
        assert!(first.headers.get("idempotent-replayed").is_none());

        // The same body (other key order and spacing) → the first response, byte for byte.
        let same = r#"{ "customer_id":"C-1",  "text":"Your order shipped", "to":"+14155552671", "channel":"sms" }"#;
        let replay = api
            .post_raw(Some("order-42"), Some("application/json"), same)
            .await;
        replay.expect(202);
        assert_eq!(
            replay.raw, first.raw,
            "{backend:?}: the stored response is replayed"
        );
        assert_eq!(replay.headers["idempotent-replayed"], "true");

        // Another body → 422.
        api.post("order-42", &sms("Your order was cancelled"))
            .await
            .expect_error(422, "idempotency_key_reused");

        // While a request with the key is in flight → 409 with Retry-After.
        let held = api.api.inflight().hold("order-43").unwrap();
        let conflict = api.post("order-43", &sms("other")).await;
        conflict.expect_error(409, "request_in_progress");
        assert_eq!(conflict.headers["retry-after"], "1");
        drop(held);
        api.post("order-43", &sms("other")).await.expect(202);

        // Status: whatever happens later, the replay stays the first response.
        let status = api.get("/v1/notifications/order-42").await;
        let s = status.expect(200);
        assert_eq!(s["status"], "pending");
        assert_eq!(s["attempts"], 0);
        assert_eq!(s["id"], body["id"]);
        assert_eq!(s["created_at"], "2026-11-24T12:00:00Z", "RFC 3339 in UTC");
        api.get("/v1/notifications/nope")
            .await
            .expect_error(404, "not_found");

        // Keys are kept 24 h: still replayed just before, forgotten after.
        api.clock
            .advance(Duration::hours(24) - Duration::seconds(1));
        let late = api.post("order-42", &sms("Your order shipped")).await;
        assert_eq!(
            late.raw, first.raw,
            "{backend:?}: replayed until the retention ends"
        );
        api.clock.advance(Duration::seconds(2));
        api.get("/v1/notifications/order-42")
            .await
            .expect_error(404, "not_found");
        let reused = api.post("order-42", &sms("A new order")).await;
        assert_ne!(
            reused.expect(202)["id"],
            body["id"],
            "an expired key starts afresh"
        );

        drop_outbox(api.outbox()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_make_one_notification() {
    for backend in BACKENDS {
        let Some(api) = Api::start(backend, &config()).await else {
            continue;
        };
        let api = std::sync::Arc::new(api);
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let api = std::sync::Arc::clone(&api);
                tokio::spawn(async move { api.post("burst", &sms("once")).await })
            })
            .collect();
        let mut ok = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            match r.status {
                202 => ok.push(r.raw),
                409 => {
                    r.expect_error(409, "request_in_progress");
                }
                other => panic!("{backend:?}: unexpected {other}: {}", r.raw),
            }
        }
        assert!(!ok.is_empty());
        assert!(
            ok.iter().all(|r| *r == ok[0]),
            "every 202 is the same response"
        );
        let counts = api.outbox().counts().await.unwrap();
        assert_eq!(
            counts.values().sum::<u64>(),
            1,
            "{backend:?}: one notification"
        );
        drop_outbox(api.outbox()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_guard_reports_or_suppresses() {
    for backend in BACKENDS {
        for mode in [GuardMode::Report, GuardMode::Suppress] {
            let mut cfg = config();
            cfg.guard = mode;
            let Some(api) = Api::start(backend, &cfg).await else {
                continue;
            };
            api.post("k1", &sms("Code 1234")).await.expect(202);
            // A producer that mints a new key per retry: same customer, channel and text.
            let second = api.post("k2", &sms("Code  1234")).await;
            let b = second.expect(202);
            assert_eq!(b["duplicate_of"], "k1", "{backend:?} {mode:?}");
            let want = if mode == GuardMode::Suppress {
                "failed"
            } else {
                "pending"
            };
            assert_eq!(b["status"], want);
            assert_eq!(b["suppressed"], mode == GuardMode::Suppress);
            let st = api.get("/v1/notifications/k2").await;
            assert_eq!(st.expect(200)["status"], want);
            // Another customer, or another text, is not a duplicate.
            let mut other = sms("Code 1234");
            other["customer_id"] = json!("C-2");
            let b = api.post("k3", &other).await.expect(202).clone();
            assert!(b.get("duplicate_of").is_none());
            // Outside the window it is not either.
            api.clock.advance(Duration::hours(25));
            let b = api.post("k4", &sms("Code 1234")).await.expect(202).clone();
            assert!(
                b.get("duplicate_of").is_none(),
                "{backend:?} {mode:?}: window"
            );
            drop_outbox(api.outbox()).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_the_envelope() {
    for backend in BACKENDS {
        let Some(api) = Api::start(backend, &config()).await else {
            continue;
        };
        api.post_raw(Some("k"), Some("application/json"), "{not json")
            .await
            .expect_error(400, "malformed_json");
        api.post_raw(Some("k"), Some("application/json"), "[1,2]")
            .await
            .expect_error(400, "malformed_json");
        api.post_raw(Some("k"), Some("text/plain"), sms("x").to_string())
            .await
            .expect_error(415, "unsupported_media_type");
        api.post_raw(Some("k"), None, sms("x").to_string())
            .await
            .expect_error(415, "unsupported_media_type");
        let e = api
            .post("k", &json!({"channel": "sms", "to": "12", "text": "x"}))
            .await;
        let err = e.expect_error(422, "invalid_field");
        assert_eq!(err["field"], "to");
        assert!(!e.raw.contains("\"12\""), "the value is not echoed");
        let e = api
            .post(
                "k",
                &json!({"channel": "voice", "to": "+14155552671", "text": "x"}),
            )
            .await;
        assert_eq!(
            e.expect_error(422, "invalid_field")["field"],
            "channel",
            "no provider for voice"
        );
        let e = api
            .post(
                "k",
                &json!({"channel": "sms", "to": "+14155552671", "text": "x", "provider": "nope"}),
            )
            .await;
        assert_eq!(e.expect_error(422, "invalid_field")["field"], "provider");
        let e = api
            .post(
                "k",
                &json!({"channel": "sms", "to": "+14155552671", "template": "Hi {{name}}"}),
            )
            .await;
        assert_eq!(e.expect_error(422, "invalid_field")["field"], "params.name");
        // The server answers 413 once the limit is passed, before the rest of the body is read,
        // and closes the connection: a client still writing may see the reset instead of the
        // answer (a race under load). Such a send is tried again; the answer must be the
        // envelope whenever one arrives.
        let big = json!({"channel": "sms", "to": "+14155552671", "text": "x".repeat(70_000)});
        // Its own client, without a pool: the connection the server closes after the 413 must
        // not be handed to the next request of the shared client.
        let once = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut answered = None;
        for _ in 0..5 {
            let sent = once
                .post(format!("{}/v1/notifications", api.base))
                .header("Idempotency-Key", "k")
                .header("Content-Type", "application/json")
                .body(big.to_string())
                .send()
                .await;
            if let Ok(r) = sent {
                answered = Some(resp(r).await);
                break;
            }
        }
        answered
            .expect("an answer to the oversized body")
            .expect_error(413, "payload_too_large");
        api.post_raw(Some("k"), Some("application/json"), vec![0xff, 0xfe, 0x00])
            .await
            .expect_error(400, "malformed_json");
        api.get("/v1/nothing").await.expect_error(404, "not_found");
        let r = api
            .http
            .delete(format!("{}/v1/notifications", api.base))
            .send()
            .await
            .unwrap();
        crate::common::resp(r)
            .await
            .expect_error(405, "method_not_allowed");
        api.get("/v1/notifications/%FF%FE")
            .await
            .expect_error(400, "bad_request");
        // Nothing of the above was stored.
        assert_eq!(
            api.outbox().counts().await.unwrap().values().sum::<u64>(),
            0
        );
        // A template renders, and the stored response says so.
        let ok = api
            .post("tpl", &json!({"channel": "sms", "to": "+14155552671", "template": "Hi {{name}}", "params": {"name": "Ann"}}))
            .await;
        ok.expect(202);
        drop_outbox(api.outbox()).await;
    }
}

/// A declared `Content-Length` over the limit is refused as soon as the headers are in: the
/// client never sends the body, and the 413 still comes (before, the handler waited for the
/// body for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_over_the_limit_gets_413_without_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(api) = Api::start(crate::common::Backend::Embedded, &config()).await else {
        return;
    };
    let addr = api.base.strip_prefix("http://").unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/notifications HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nIdempotency-Key: k-big\r\nContent-Length: {}\r\n\r\n",
        100 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The answer, then the server closes: read to the end (no body is ever sent).
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}
