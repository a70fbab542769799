//! A new user's first hour (issue 18): what `dedupd serve` says and shows before any traffic,
//! and `dedupd relay` on the wrong outbox.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A `dedupd serve` child in its own working directory (its `.dedupd/` lands there); killed
/// on drop.
pub(crate) struct Serve {
    child: Child,
    pub(crate) base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dedupd serve --listen 127.0.0.1:0 ARGS` with `envs`, in a fresh directory, and waits
/// for the line that prints its address.
pub(crate) fn serve(args: &[&str], envs: &[(&str, &str)]) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dedupd"));
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir.path())
        .env_remove("DEDUPD_API_TOKEN")
        .env_remove("DEDUPD_WEBHOOK_SECRET")
        .env_remove("DEDUPD_POSTGRES_URL")
        .env_remove("DEDUPD_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("dedupd serve listening on ")
        .unwrap_or_else(|| panic!("serve did not start: first line {line:?}"))
        .to_owned();
    Serve {
        child,
        base,
        _dir: dir,
    }
}

/// A config with a `[notifications]` section whose only provider is an HTTP one at `url`.
pub(crate) fn notifications_config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("serve.toml");
    std::fs::write(
        &path,
        format!(
            "[notifications]\noutbox = \"outbox\"\n\n[notifications.channels]\nemail = \"mailer\"\n\n\
             [notifications.providers.mailer]\ntype = \"http\"\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    path
}

async fn get_json(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn openapi_paths(doc: &Value) -> Vec<String> {
    let mut paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    paths.sort();
    paths
}

// Regression (issue 18): without a [notifications] config the notification routes answered 404
// "no such route", as if the URL were mistyped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_routes_say_notifications_are_off_and_how_to_turn_them_on() {
    let s = serve(&[], &[]);
    let http = reqwest::Client::new();
    let answers = [
        http.post(format!("{}/v1/notifications", s.base))
            .header("idempotency-key", "k1")
            .json(&serde_json::json!({"channel": "sms", "to": "+14155552671", "text": "hi"}))
            .send()
            .await
            .unwrap(),
        http.get(format!("{}/v1/notifications/k1", s.base))
            .send()
            .await
            .unwrap(),
    ];
    for r in answers {
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["status"], 404, "{body}");
        assert_eq!(body["error"]["code"], "notifications_disabled", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("[notifications]"), "{message}");
        assert!(message.contains("--config"), "{message}");
    }
    // Any other unknown route is still "no such route".
    let (status, body) = get_json(&s.base, "/v1/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // The document lists what this server serves: messages, not notifications.
    let (status, doc) = get_json(&s.base, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(openapi_paths(&doc), ["/v1/messages"]);
}

// Regression (issue 18): /openapi.json listed only /v1/messages, and /metrics was empty until
// the first message and had no outbox or relay metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_metrics_are_there_before_any_traffic() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing is sent in this test: the provider's address is never contacted.
    let config = notifications_config(dir.path(), "http://127.0.0.1:9/v1/send");
    let s = serve(&["--config", config.to_str().unwrap()], &[]);

    let (status, doc) = get_json(&s.base, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(
        openapi_paths(&doc),
        [
            "/v1/messages",
            "/v1/notifications",
            "/v1/notifications/{key}"
        ]
    );
    assert!(
        doc["paths"]["/v1/notifications"]["post"].is_object(),
        "{doc}"
    );
    assert!(
        doc["paths"]["/v1/notifications/{key}"]["get"].is_object(),
        "{doc}"
    );

    let metrics = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        // described, with a value, before any message or notification
        "# HELP dedupd_gateway_decisions_total",
        "dedupd_gateway_decisions_total{channel=\"sms\",decision=\"PROCESS\",reason=\"first\"} 0",
        "dedupd_gateway_backend_errors_total{backend=\"embedded\"} 0",
        "# HELP dedupd_outbox_backlog",
        "dedupd_outbox_backlog 0",
        "dedupd_outbox_oldest_age_seconds 0",
        "dedupd_notify_accepted_total{result=\"created\"} 0",
        "dedupd_relay_attempts_total{provider=\"mailer\"} 0",
        "dedupd_relay_outcomes_total{outcome=\"delivered\"} 0",
        "dedupd_notify_provider_paused{provider=\"mailer\"} 0",
        "# HELP dedupd_http_connections_open",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle:?} missing from:\n{metrics}"
        );
    }
}

// Regression (issue 18): a separate `dedupd relay` on the embedded outbox that `serve` holds
// failed with redb's "Database already open. Cannot acquire lock."
#[test]
fn a_relay_on_an_embedded_outbox_in_use_says_relays_need_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let config = notifications_config(dir.path(), "http://127.0.0.1:9/v1/send");
    let outbox = dir.path().join("outbox");
    // This process holds the outbox, as a running `dedupd serve` does.
    let _held = dedupd_store::outbox::EmbeddedOutbox::open(&outbox).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .arg("relay")
        .arg("--config")
        .arg(&config)
        .arg("--outbox")
        .arg(&outbox)
        .env_remove("DEDUPD_POSTGRES_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");
    assert!(stderr.contains("needs the PostgreSQL outbox"), "{stderr}");
    assert!(stderr.contains("--postgres"), "{stderr}");
    assert!(stderr.contains(outbox.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains("Cannot acquire lock"), "{stderr}");
}
