//! Shared helpers: start an emulator, get a token, make JSON calls.

#![allow(dead_code)]

use dedupd_emulator::{EmulatorConfig, RunningEmulator};
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const CLIENT_ID: &str = "dedupd-demo";
pub(crate) const CLIENT_SECRET: &str = "dedupd-demo-secret";

#[path = "../support/resp.rs"]
mod resp;
pub(crate) use resp::{Resp, to_resp};

impl Resp {
    /// Asserts an `ErrorBody` with `status` and `code`.
    #[track_caller]
    pub(crate) fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.raw
        );
        assert_eq!(
            self.body["code"], code,
            "unexpected code; body: {}",
            self.raw
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["message"].is_string());
        assert!(self.body["details"].is_array() && self.body["errors"].is_array());
        let cid = self
            .header("inin-correlation-id")
            .expect("correlation id header");
        assert_eq!(
            self.body["contextId"], cid,
            "contextId equals ININ-Correlation-Id"
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        self.body
    }
}

pub(crate) struct Emu {
    pub(crate) emu: RunningEmulator,
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

pub(crate) async fn start(cfg: EmulatorConfig) -> Emu {
    let emu = RunningEmulator::start(cfg).await.expect("emulator starts");
    let base = emu.base_url();
    let http = reqwest::Client::new();
    let mut e = Emu {
        emu,
        http,
        base,
        token: String::new(),
    };
    e.token = e.new_token().await;
    e
}

pub(crate) async fn start_default() -> Emu {
    start(EmulatorConfig::default()).await
}

impl Emu {
    pub(crate) async fn token_request(&self, id: &str, secret: &str, body: &str) -> Resp {
        let r = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .expect("token request sent");
        to_resp(r).await
    }

    pub(crate) async fn new_token(&self) -> String {
        let b = self
            .token_request(CLIENT_ID, CLIENT_SECRET, "grant_type=client_credentials")
            .await
            .expect(200);
        b["access_token"].as_str().expect("access_token").to_owned()
    }

    /// A call with the current token.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, Some(&self.token), &[])
            .await
    }

    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
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

    pub(crate) async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, None, &[]).await
    }

    /// Creates a contact list with the given columns; returns its id.
    pub(crate) async fn create_list(&self, name: &str, columns: &[&str]) -> String {
        let b = self
            .post(
                "/api/v2/outbound/contactlists",
                json!({"name": name, "columnNames": columns, "phoneColumns": [{"columnName": columns[0], "type": "cell"}]}),
            )
            .await
            .expect(200);
        b["id"].as_str().expect("list id").to_owned()
    }

    pub(crate) async fn create_ext(&self, body: Value) -> Value {
        self.post("/api/v2/externalcontacts/contacts", body)
            .await
            .expect(200)
    }
}

pub(crate) fn contact(list: &str, id: Option<&str>, phone: &str, name: &str) -> Value {
    let mut c = json!({"contactListId": list, "data": {"phone": phone, "name": name}});
    if let Some(id) = id {
        c["id"] = json!(id);
    }
    c
}
