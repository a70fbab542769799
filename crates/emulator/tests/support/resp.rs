//! A response as the emulator tests read it (both platforms' harnesses include this file).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A response: status, headers, the body as JSON (`Value::Null` when empty or not JSON) and
/// as text.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) raw: String,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.raw
        );
        self.body
    }
}

pub(crate) async fn to_resp(r: reqwest::Response) -> Resp {
    let status = r.status();
    let headers = r.headers().clone();
    let raw = r.text().await.expect("body read");
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        raw,
    }
}
