//! Replaying the sample stream gives exactly the `expect` decision for every message, with
//! each backend, and every SUPPRESS names its first message.

use dedupd_gateway::GatewayConfig;
use dedupd_store::window::Window;

use crate::support::{self, Server};

async fn replay(server: &Server) {
    let samples = support::samples();
    assert!(samples.len() > 100, "the sample stream is there");
    let mut mismatches = Vec::new();
    let mut suppressed = 0;
    for s in &samples {
        let (status, answer) = server.post(&s.body).await;
        assert_eq!(status, 200, "seq {}: {answer}", s.seq);
        let decision = answer["decision"].as_str().unwrap();
        if decision != s.expect {
            mismatches.push(format!("seq {}: got {decision}, want {}", s.seq, s.expect));
            continue;
        }
        assert_eq!(answer["degraded"], false);
        assert_eq!(answer["window_seconds"], 300);
        assert_eq!(answer["fingerprint"].as_str().unwrap().len(), 64);
        if decision == "SUPPRESS" {
            suppressed += 1;
            let first = format!("seq-{}", s.dup_of.unwrap());
            assert_eq!(
                answer["duplicate_of"]["message_id"], first,
                "seq {} names its first message",
                s.seq
            );
        } else {
            assert!(answer["duplicate_of"].is_null());
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(suppressed > 10, "the stream has duplicates to find");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_stream_replays_exactly_with_the_embedded_window() {
    let server = support::start(support::embedded(), GatewayConfig::default(), None).await;
    replay(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_stream_replays_exactly_with_redis() {
    let Some(redis) = support::redis("replay").await else {
        return;
    };
    let server = support::start(Window::Redis(redis.clone()), GatewayConfig::default(), None).await;
    replay(&server).await;
    assert!(redis.clear().await.unwrap() > 0);
}

#[tokio::test]
async fn same_customer_across_channels_and_strangers_apart() {
    let server = support::start(support::embedded(), GatewayConfig::default(), None).await;
    // C00002: +12013093185 / alex.brooks2@example.com (from the contact index).
    let sms = serde_json::json!({"channel": "sms", "from": "(201) 309-3185", "text": "Where is my refund?"});
    let mail = serde_json::json!({"channel": "email", "from": "ALEX.BROOKS2@example.com",
        "content_type": "text/html", "text": "<p>Where is my <b>REFUND</b></p>"});
    let (_, first) = server.post(&sms).await;
    let (_, second) = server.post(&mail).await;
    assert_eq!(first["decision"], "PROCESS");
    assert_eq!(first["customer"], "C00002");
    assert_eq!(second["decision"], "SUPPRESS");
    assert_eq!(second["duplicate_of"]["channel"], "sms");
    assert_eq!(second["duplicates"], 1);
    // Someone the index does not know is their own customer, and meets only themselves.
    let stranger = serde_json::json!({"channel": "sms", "from": "+12025550111", "text": "Where is my refund?"});
    let (_, s1) = server.post(&stranger).await;
    assert_eq!(s1["decision"], "PROCESS");
    assert_eq!(s1["customer"], "phone:+12025550111");
    // Metadata never enters the fingerprint.
    let mut again = stranger.clone();
    again["message_id"] = "other-id".into();
    again["received_at"] = "2026-01-02T03:04:05+02:00".into();
    again["channel"] = "chat".into();
    let (_, s2) = server.post(&again).await;
    assert_eq!(s2["decision"], "SUPPRESS");
    assert_eq!(s2["fingerprint"], s1["fingerprint"]);
}

#[tokio::test]
async fn attachments_take_part_in_the_decision() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let server = support::start(support::embedded(), GatewayConfig::default(), None).await;
    let pdf = |bytes: &[u8]| {
        serde_json::json!({"channel": "email", "from": "a@b.test", "text": "see attached",
            "attachments": [{"content_type": "application/pdf", "data_base64": b64(bytes)}]})
    };
    let (_, a) = server.post(&pdf(b"%PDF-one")).await;
    let (_, b) = server.post(&pdf(b"%PDF-two")).await;
    let (_, c) = server.post(&pdf(b"%PDF-one")).await;
    assert_eq!(a["decision"], "PROCESS");
    assert_eq!(b["decision"], "PROCESS", "other bytes: another message");
    assert_eq!(c["decision"], "SUPPRESS");
}
