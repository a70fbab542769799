//! The HTTP surface: one error envelope for every 4xx/5xx (axum's own rejections included),
//! auth by bearer token or signature, /openapi.json, /metrics, /healthz, /readyz.

use dedupd_gateway::{Gateway, GatewayConfig};
use dedupd_http::auth::sign;
use dedupd_http::{Auth, ErrorEnvelope};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{self, Server};

async fn raw(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, ErrorEnvelope) {
    let mut req = server
        .http
        .request(method, format!("{}{path}", server.base))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let envelope: ErrorEnvelope = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status} is not the envelope ({e}): {text}"));
    assert_eq!(envelope.error.status, status);
    (status, envelope)
}

#[tokio::test]
async fn every_error_is_the_envelope_naming_the_field() {
    let config = GatewayConfig {
        body_limit: 4096,
        ..GatewayConfig::default()
    };
    let server = support::start(support::embedded(), config, None).await;
    let post = reqwest::Method::POST;
    let json = Some("application/json");

    let (s, e) = raw(
        &server,
        post.clone(),
        "/v1/messages",
        json,
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!((s, e.error.code.as_str()), (400, "malformed_json"));

    let (s, e) = raw(
        &server,
        post.clone(),
        "/v1/messages",
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!((s, e.error.code.as_str()), (415, "unsupported_media_type"));

    let big = json!({"channel": "sms", "from": "+12015550100", "text": "x".repeat(10_000)});
    let (s, e) = raw(
        &server,
        post.clone(),
        "/v1/messages",
        json,
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!((s, e.error.code.as_str()), (413, "payload_too_large"));

    let cases = [
        (json!({"from": "+12015550100", "text": "hi"}), "channel"),
        (
            json!({"channel": 5, "from": "+12015550100", "text": "hi"}),
            "channel",
        ),
        (
            json!({"channel": "sms", "from": "  ", "text": "hi"}),
            "from",
        ),
        (json!({"channel": "sms", "from": "x"}), "text"),
        (
            json!({"channel": "sms", "from": "x", "text": "a", "body_base64": "YQ=="}),
            "body_base64",
        ),
        (
            json!({"channel": "sms", "from": "x", "body_base64": "***"}),
            "body_base64",
        ),
        (
            json!({"channel": "sms", "from": "x", "body_base64": "YQ==", "charset": "klingon"}),
            "charset",
        ),
        (
            json!({"channel": "sms", "from": "x", "text": "a", "content_type": "image/png"}),
            "content_type",
        ),
        (
            json!({"channel": "sms", "from": "x", "text": "a", "received_at": "yesterday"}),
            "received_at",
        ),
        (
            json!({"channel": "sms", "from": "x", "attachments": [{"content_type": "image/png", "data_base64": "%%"}]}),
            "attachments[0].data_base64",
        ),
        (
            json!({"channel": "sms", "from": "x", "attachments": [{"content_type": "image/png"}]}),
            "attachments[0].data_base64",
        ),
    ];
    for (body, field) in cases {
        let (s, e) = raw(
            &server,
            post.clone(),
            "/v1/messages",
            json,
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(s, 422, "{body}: {e:?}");
        assert_eq!(e.error.code, "invalid_field");
        assert_eq!(e.error.field.as_deref(), Some(field), "{body}: {e:?}");
    }

    let (s, e) = raw(
        &server,
        reqwest::Method::GET,
        "/v1/messages",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!((s, e.error.code.as_str()), (405, "method_not_allowed"));
    let (s, e) = raw(
        &server,
        reqwest::Method::GET,
        "/v2/nothing",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!((s, e.error.code.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn errors_never_echo_personal_data() {
    let server = support::start(support::embedded(), GatewayConfig::default(), None).await;
    let body = json!({"channel": "sms", "from": "ann@example.com", "text": "hi", "message_id": {"x": "ann@example.com"}});
    let (s, e) = raw(
        &server,
        reqwest::Method::POST,
        "/v1/messages",
        Some("application/json"),
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(e.error.field.as_deref(), Some("message_id"));
    assert!(!e.error.message.contains("ann@"), "{e:?}");
}

#[tokio::test]
async fn bearer_token_or_signature_is_required_when_configured() {
    let gateway = Gateway::new(
        GatewayConfig::default(),
        support::contacts(),
        support::embedded(),
        None,
    );
    let auth = Auth::open(1 << 20)
        .with_bearer(SecretString::from("tok-abc"))
        .with_hmac_secret(SecretString::from("hook-secret"));
    let server = support::serve(gateway, auth).await;
    let url = format!("{}/v1/messages", server.base);
    let body = serde_json::to_vec(&json!({"channel": "sms", "from": "+12015550100", "text": "hi"}))
        .unwrap();
    let send = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut req = server
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let r = send(vec![], body.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    let e: ErrorEnvelope = r.json().await.unwrap();
    assert_eq!(e.error.code, "unauthorized");
    assert_eq!(
        send(vec![("authorization", "Bearer wrong".into())], body.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(
            vec![("authorization", "Bearer tok-abc".into())],
            body.clone()
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let good = sign("hook-secret", &body);
    assert_eq!(
        send(vec![("x-hub-signature-256", good.clone())], body.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    // The signature covers the body: a changed body fails.
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] = b'o';
    assert_eq!(
        send(vec![("x-hub-signature-256", good)], tampered)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(
            vec![("x-hub-signature-256", sign("other", &body))],
            body.clone()
        )
        .await
        .unwrap()
        .status(),
        401
    );
    // Health and metrics stay open.
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn openapi_metrics_and_health() {
    let server = support::start(support::embedded(), GatewayConfig::default(), None).await;
    server
        .post(&json!({"channel": "sms", "from": "+12015550100", "text": "metrics please"}))
        .await;
    server
        .post(&json!({"channel": "sms", "from": "+12015550100", "text": "metrics please"}))
        .await;

    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["paths"]["/v1/messages"]["post"].is_object(), "{doc}");
    assert!(doc["components"]["schemas"]["DecisionResponse"].is_object());
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());

    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("dedupd_gateway_decisions_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("decision=\"SUPPRESS\""), "{metrics}");
    assert!(
        metrics.contains("dedupd_gateway_backend_seconds"),
        "{metrics}"
    );
    assert!(!metrics.contains("12015550100"), "no addresses in metrics");

    let (status, body) = server.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""window":"ready""#), "{body}");
}
