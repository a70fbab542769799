//! `dedupd serve` as a real process: two gateway processes sharing Redis decide a burst of
//! 1,000 identical messages with exactly one PROCESS; SIGTERM shuts down gracefully and the
//! embedded window survives a restart through its snapshot.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};

fn contacts_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/fixtures/contacts.ndjson")
}

struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Gateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("DEDUPD_API_TOKEN")
        .env_remove("DEDUPD_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("dedupd serve listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Gateway { child, base }
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis_available() -> bool {
    let ok = redis::Client::open(redis_url())
        .and_then(|c| c.get_connection())
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Redis is required under CI=true (REDIS_URL)"
        );
        eprintln!("skipping: no Redis at REDIS_URL");
    }
    ok
}

fn delete_prefix(prefix: &str) -> usize {
    let mut conn = redis::Client::open(redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap();
    for k in &keys {
        redis::cmd("DEL").arg(k).query::<i64>(&mut conn).unwrap();
    }
    keys.len()
}

async fn post(http: &reqwest::Client, base: &str, body: &Value) -> Value {
    let r = http
        .post(format!("{base}/v1/messages"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_processes_sharing_redis_let_one_of_a_thousand_through() {
    if !redis_available() {
        return;
    }
    let prefix = format!("dedupd-serve-test:{}:", std::process::id());
    let contacts = contacts_fixture();
    let contacts = contacts.to_str().unwrap();
    let args = [
        "--contacts",
        contacts,
        "--redis",
        &redis_url(),
        "--redis-prefix",
        &prefix,
    ];
    let a = spawn(&args);
    let b = spawn(&args);
    let http = reqwest::Client::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
            let http = http.clone();
            let barrier = barrier.clone();
            // The same question from one customer: SMS, chat and e-mail renderings.
            let body = match i % 3 {
                0 => json!({"channel": "sms", "from": "(201) 309-3185", "text": "Where is my refund?"}),
                1 => json!({"channel": "chat", "from": "+12013093185", "text": "**where is my refund**"}),
                _ => json!({"channel": "email", "from": "ALEX.BROOKS2@EXAMPLE.COM", "text": "<p>Where is my refund?</p>"}),
            };
            tokio::spawn(async move {
                barrier.wait().await;
                post(&http, &base, &body).await
            })
        })
        .collect();
    let mut process = 0;
    let mut suppress = 0;
    for t in tasks {
        let answer = t.await.unwrap();
        assert_eq!(answer["degraded"], false);
        assert_eq!(answer["customer"], "C00002");
        match answer["decision"].as_str().unwrap() {
            "PROCESS" => process += 1,
            _ => suppress += 1,
        }
    }
    assert_eq!((process, suppress), (1, 999));
    assert_eq!(
        delete_prefix(&prefix),
        1,
        "one window key, under the prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_saves_the_embedded_window_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("window.snapshot");
    let contacts = contacts_fixture();
    let args = [
        "--contacts",
        contacts.to_str().unwrap(),
        "--snapshot",
        snapshot.to_str().unwrap(),
    ];
    let http = reqwest::Client::new();
    let msg = json!({"channel": "sms", "from": "+12015550188", "text": "Restart me", "message_id": "m-1"});
    let mut first = spawn(&args);
    assert_eq!(post(&http, &first.base, &msg).await["decision"], "PROCESS");
    let status = Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = first.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    assert!(snapshot.exists(), "the window was saved on the way out");

    let second = spawn(&args);
    let again = post(&http, &second.base, &msg).await;
    assert_eq!(again["decision"], "SUPPRESS");
    assert_eq!(again["duplicate_of"]["message_id"], "m-1");
}
