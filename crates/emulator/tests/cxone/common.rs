//! Shared helpers: start a CXone emulator, log in the way a client does, make JSON calls.

#![allow(dead_code)]

use base64::Engine;
use dedupd_emulator::cxone::{CxoneEmulatorConfig, CxoneSeed, RunningCxoneEmulator};
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const CLIENT_ID: &str = "dedupd-demo";
pub(crate) const CLIENT_SECRET: &str = "dedupd-demo-secret";
pub(crate) const KEY_ID: &str = "dedupd-demo-key";
pub(crate) const KEY_SECRET: &str = "dedupd-demo-key-secret";
pub(crate) const V: &str = "/inContactAPI/services/v30.0";

#[path = "../support/resp.rs"]
mod resp;
pub(crate) use resp::{Resp, to_resp};

impl Resp {
    /// A DFO error: `{"errors":[{"message", "errorCode", …}], "uid"}`.
    #[track_caller]
    pub(crate) fn expect_dfo_error(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.raw
        );
        assert!(
            self.body["errors"][0]["message"].is_string(),
            "DFO error shape expected: {}",
            self.raw
        );
        assert!(self.body["uid"].is_string(), "{}", self.raw);
        assert_eq!(self.header("content-type"), Some("application/json"));
        self.body
    }

    /// An Admin error: `{"error", "errorDescription"}` with `code`.
    #[track_caller]
    pub(crate) fn expect_admin_error(self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.raw
        );
        assert_eq!(self.body["error"], code, "{}", self.raw);
        assert!(self.body["errorDescription"].is_string(), "{}", self.raw);
        self.body
    }

    /// An OAuth error: `{"error", "error_description"}` with `code`.
    #[track_caller]
    pub(crate) fn expect_oauth_error(self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.raw
        );
        assert_eq!(self.body["error"], code, "{}", self.raw);
        assert!(self.body["error_description"].is_string(), "{}", self.raw);
        self.body
    }
}

pub(crate) struct Cx {
    pub(crate) emu: RunningCxoneEmulator,
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

/// A config with a budget no test reaches unless it means to.
pub(crate) fn roomy() -> CxoneEmulatorConfig {
    CxoneEmulatorConfig {
        rate_limit_per_minute: 1_000_000,
        ..CxoneEmulatorConfig::default()
    }
}

pub(crate) async fn start(cfg: CxoneEmulatorConfig) -> Cx {
    let emu = RunningCxoneEmulator::start(cfg)
        .await
        .expect("emulator starts");
    let base = emu.base_url();
    let mut cx = Cx {
        emu,
        http: reqwest::Client::new(),
        base,
        token: String::new(),
    };
    cx.token = cx.login().await["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    cx
}

pub(crate) async fn start_default() -> Cx {
    start(roomy()).await
}

impl Cx {
    /// A token request with HTTP Basic client auth and a form body.
    pub(crate) async fn token_request(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self
            .http
            .post(format!("{}/auth/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        if let Some((id, secret)) = basic {
            rb = rb.basic_auth(id, Some(secret));
        }
        to_resp(rb.send().await.expect("token request sent")).await
    }

    /// The password grant with the default access key.
    pub(crate) async fn login(&self) -> Value {
        self.token_request(
            Some((CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "password"),
                ("username", KEY_ID),
                ("password", KEY_SECRET),
            ],
        )
        .await
        .expect(200)
    }

    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("accept", "application/json");
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        to_resp(rb.send().await.expect("request sent")).await
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, Some(&self.token), &[])
            .await
    }

    pub(crate) async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str, body: Option<Value>) -> Resp {
        self.call(Method::DELETE, path, body).await
    }

    /// An admin (`/__emulator/…`) call: no token.
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, None, &[]).await
    }

    pub(crate) fn seed(&self, seed: CxoneSeed) -> dedupd_emulator::cxone::SeedOutcome {
        self.emu.state().seed(&seed).expect("seed")
    }

    /// Seeds one SMS channel `sms-1` (outbound allowed).
    pub(crate) fn seed_channel(&self) -> String {
        self.seed(CxoneSeed {
            channels: vec![channel("sms-1")],
            ..CxoneSeed::default()
        });
        "sms-1".to_owned()
    }

    pub(crate) fn faults(&self, kind: &str) -> u64 {
        self.emu
            .state()
            .stats()
            .faults_injected
            .get(kind)
            .copied()
            .unwrap_or(0)
    }
}

/// A channel body in the `POST /dfo/3.0/channels` shape.
pub(crate) fn channel(id: &str) -> Value {
    json!({
        "id": id,
        "idOnExternalPlatform": format!("ext-{id}"),
        "channelIntegrationId": "byoc-1",
        "realExternalPlatformId": "sms",
        "name": format!("Channel {id}"),
        "isPrivate": true,
        "hasTreeStructure": false,
    })
}

/// A BYOC inbound message body.
pub(crate) fn inbound(msg_id: &str, thread: &str, author: &str, text: &str) -> Value {
    json!({
        "idOnExternalPlatform": msg_id,
        "thread": {"idOnExternalPlatform": thread},
        "direction": "inbound",
        "createdAtWithMilliseconds": "2026-11-24T10:00:00.123Z",
        "messageContent": {"type": "TEXT", "payload": {"text": text}},
        "authorEndUserIdentity": {"idOnExternalPlatform": author, "firstName": "Jane", "lastName": "Doe"},
    })
}

/// An outbound send body.
pub(crate) fn outbound(thread: &str, to: &str, text: &str) -> Value {
    json!({
        "thread": {"idOnExternalPlatform": thread, "threadName": "notice"},
        "messageContent": {"type": "TEXT", "payload": {"text": text}},
        "recipients": [{"idOnExternalPlatform": to, "name": "Jane Doe", "isPrimary": true}],
    })
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes the payload of a JWT without verifying it (as a client does).
pub(crate) fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
