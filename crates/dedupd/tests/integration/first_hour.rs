//! A new user's first hour (issue 18): what `dedupd serve` says and shows before any traffic,
//! `dedupd relay` on the wrong outbox, `--version`, completions and the man page, the shipped
//! examples and deployment files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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
    let base = super::listening_on(&mut child);
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
    let _held = dedupd_store::outbox::EmbeddedOutbox::open(&outbox, Default::default()).unwrap();
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

fn dedupd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

// Regression (issue 18): `--version` said only `dedupd 0.1.0`.
#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = dedupd(&["--version"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let rest = line
        .trim()
        .strip_prefix(&format!("dedupd {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line:?}"));
    let (commit, date) = rest
        .strip_suffix(')')
        .and_then(|r| r.rsplit_once(", built "))
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(
        (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()))
            || commit == "unknown (not built from a git checkout)",
        "{line:?}"
    );
    let parts: Vec<&str> = date.split('-').collect();
    assert!(
        parts.len() == 3
            && [4, 2, 2] == [parts[0].len(), parts[1].len(), parts[2].len()]
            && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())),
        "{line:?}"
    );
    // Subcommands say the same (`dedupd-serve 0.1.0 (commit …)`).
    let sub = String::from_utf8(dedupd(&["serve", "--version"]).stdout).unwrap();
    assert_eq!(
        sub.strip_prefix("dedupd-serve"),
        line.strip_prefix("dedupd")
    );
}

#[test]
fn completions_and_the_man_page_name_every_command() {
    let commands = [
        "ingest", "sync", "merge", "eval", "serve", "relay", "emulator",
    ];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = dedupd(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for c in commands {
            assert!(script.contains(c), "{shell} completions lack {c}");
        }
    }
    let bash = String::from_utf8(dedupd(&["completions", "bash"]).stdout).unwrap();
    assert!(bash.contains("complete -F"), "not a bash completion script");
    assert!(
        bash.contains("--near-duplicates"),
        "serve's flags are completed"
    );
    let bad = dedupd(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));

    let out = dedupd(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH dedupd 1"), "{page}");
    for c in commands {
        assert!(page.contains(c), "the man page lacks {c}");
    }
}

// Regression (issue 18): errors repeated their cause ("…(os error 2): …(os error 2)").
#[test]
fn an_error_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    for args in [
        vec!["ingest", "--config", missing.to_str().unwrap(), "--out"],
        vec!["serve", "--config", missing.to_str().unwrap()],
        vec!["relay", "--config", missing.to_str().unwrap()],
    ] {
        let mut args = args;
        let out_dir = dir.path().join("out");
        if args.last() == Some(&"--out") {
            args.push(out_dir.to_str().unwrap());
        }
        let out = dedupd(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("missing.toml"), "{args:?}: {stderr}");
        assert_eq!(
            stderr.matches("os error 2").count(),
            1,
            "{args:?}: the cause is said once: {stderr}"
        );
    }
}

// Regression (issue 18): `dedupd eval` scored a truth file that shares no record id with the
// predictions and printed zeros as if they were a result.
#[test]
fn eval_refuses_files_that_share_no_record_id() {
    let dir = tempfile::tempdir().unwrap();
    let clusters = dir.path().join("clusters.csv");
    let truth = dir.path().join("truth.csv");
    let wrong = dir.path().join("other_truth.csv");
    std::fs::write(&clusters, "record_id,cluster\nA1,c1\nA2,c1\nA3,c2\n").unwrap();
    std::fs::write(&truth, "record_id,entity_id\nA1,e1\nA2,e1\nA3,e2\n").unwrap();
    std::fs::write(&wrong, "record_id,entity_id\nB1,e1\nB2,e1\n").unwrap();
    let ok = dedupd(&[
        "eval",
        "--clusters",
        clusters.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let scores: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(scores["records"], 3);
    assert_eq!(scores["pairs"]["f1"], 1.0, "{scores}");

    let out = dedupd(&[
        "eval",
        "--clusters",
        clusters.to_str().unwrap(),
        "--truth",
        wrong.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "no scores are printed");
    assert!(stderr.contains("share no record id"), "{stderr}");
    assert!(stderr.contains("clusters.csv"), "{stderr}");
    assert!(stderr.contains("other_truth.csv"), "{stderr}");
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds (a condition wait,
/// not a delay).
async fn poll<T, F: std::future::Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

// examples/serve.toml as shipped: the gateway resolves customers through the contacts it names,
// and a notification goes through the in-process relay to the emulator's agentless messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_example_decides_messages_and_delivers_a_notification() {
    let emu = dedupd_emulator::RunningEmulator::start(dedupd_emulator::EmulatorConfig {
        rate_limit_per_minute: 60_000,
        ..dedupd_emulator::EmulatorConfig::default()
    })
    .await
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = repo().join("examples/serve.toml");
    let (snapshot, outbox) = (
        state.path().join("window.snapshot"),
        state.path().join("outbox"),
    );
    // The example's own listen address and state directory would collide with a user's
    // server and write into the repository: a free port and a temporary directory instead.
    let s = serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--snapshot",
            snapshot.to_str().unwrap(),
            "--outbox",
            outbox.to_str().unwrap(),
        ],
        &[
            ("GENESYS_BASE_URL", &emu.base_url()),
            ("GENESYS_CLIENT_ID", "dedupd-demo"),
            ("GENESYS_CLIENT_SECRET", "dedupd-demo-secret"),
        ],
    );
    let http = reqwest::Client::new();
    let message = |body: Value| {
        let (http, base) = (http.clone(), s.base.clone());
        async move {
            let r = http
                .post(format!("{base}/v1/messages"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = message(
        serde_json::json!({"channel": "sms", "from": "(201) 309-3185",
        "text": "Where is my refund?", "message_id": "sms-1"}),
    )
    .await;
    assert_eq!(first["decision"], "PROCESS", "{first}");
    assert_eq!(
        first["customer"], "C00002",
        "the example's contacts resolve: {first}"
    );
    let second = message(
        serde_json::json!({"channel": "email", "from": "ALEX.BROOKS2@EXAMPLE.COM",
        "text": "<p>Where is my <b>refund</b>?</p>"}),
    )
    .await;
    assert_eq!(second["decision"], "SUPPRESS", "{second}");
    assert_eq!(
        second["window_seconds"], 3600,
        "the sms/email pair's window: {second}"
    );

    let r = http
        .post(format!("{}/v1/notifications", s.base))
        .header("idempotency-key", "order-42-shipped")
        .json(&serde_json::json!({"channel": "sms", "to": "+14155552671",
            "template": "Order {{n}} shipped", "params": {"n": 42}, "customer_id": "C-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let url = format!("{}/v1/notifications/order-42-shipped", s.base);
    let delivered = poll(30, "the notification delivered", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            (v["status"] == "delivered").then_some(v)
        }
    })
    .await;
    assert_eq!(delivered["attempts"], 1, "{delivered}");
}

// examples/merge.toml as shipped: a semicolon CSV with German headers, day-first local times and
// national numbers; the obvious duplicates are found.
#[test]
fn the_merge_example_plans_the_german_export() {
    let out = tempfile::tempdir().unwrap();
    let config = repo().join("examples/merge.toml");
    let run = dedupd(&[
        "merge",
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["records"], 16, "{report}");
    assert_eq!(report["rejects"], 0, "every row reads: {report}");
    let clusters = std::fs::read_to_string(out.path().join("clusters.csv")).unwrap();
    let cluster_of = |id: &str| {
        clusters
            .lines()
            .find(|l| l.starts_with(&format!("{id},")))
            .and_then(|l| l.split(',').nth(1))
            .unwrap_or_else(|| panic!("{id} missing from clusters.csv:\n{clusters}"))
            .to_owned()
    };
    for (a, b) in [
        ("K-1001", "K-1002"),
        ("K-1003", "K-1004"),
        ("K-1006", "K-1007"),
    ] {
        assert_eq!(cluster_of(a), cluster_of(b), "{a} and {b}:\n{clusters}");
    }
    assert_ne!(cluster_of("K-1001"), cluster_of("K-1003"));
    assert_ne!(cluster_of("K-1005"), cluster_of("K-1008"));
}

/// `[section]` → `Key=value` lines of a systemd unit (repeated keys kept in order).
fn unit_sections(text: &str) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not Key=value: {line}"));
        out.entry(section.clone())
            .or_default()
            .push((k.trim().to_owned(), v.trim().to_owned()));
    }
    out
}

fn tool_available(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true (.ci/run installs it)"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

#[test]
fn the_systemd_unit_is_hardened_and_its_command_line_runs() {
    let path = repo().join("deploy/dedupd.service");
    let text = std::fs::read_to_string(&path).unwrap();
    let units = unit_sections(&text);
    let service = &units["Service"];
    let get = |k: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let dynamic = get("DynamicUser") == ["yes"];
    let user = get("User");
    assert!(
        dynamic || (user.len() == 1 && !["root", "0"].contains(&user[0])),
        "runs as an unprivileged user"
    );
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestartPreventExitStatus", "2"),
    ] {
        assert_eq!(get(key), [want], "{key}");
    }
    assert!(units["Install"].iter().any(|(k, _)| k == "WantedBy"));

    // ExecStart: the binary, then a command line dedupd accepts; its state under StateDirectory
    // (the only writable place under ProtectSystem=strict).
    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1);
    let argv: Vec<&str> = exec[0].split_whitespace().collect();
    assert_eq!(argv[0], "/usr/local/bin/dedupd");
    let state = format!("/var/lib/{}", get("StateDirectory")[0]);
    assert_eq!(get("WorkingDirectory"), [state.as_str()]);
    for flag in ["--snapshot", "--outbox"] {
        let i = argv.iter().position(|a| *a == flag).unwrap();
        assert!(argv[i + 1].starts_with(&format!("{state}/")), "{flag}");
    }
    let mut args: Vec<&str> = argv[1..].to_vec();
    args.push("--help");
    let help = dedupd(&args);
    assert!(
        help.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&help.stderr)
    );

    if tool_available("systemd-analyze") {
        // verify wants ExecStart's binary to exist: point it at the one just built.
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("dedupd.service");
        std::fs::write(
            &unit,
            text.replace("/usr/local/bin/dedupd", env!("CARGO_BIN_EXE_dedupd")),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "systemd-analyze verify: {stderr}");
        assert!(
            !stderr.contains("dedupd.service:"),
            "systemd-analyze verify warns about the unit: {stderr}"
        );
    }
}

/// The instructions of a Containerfile (continuation lines joined), as (INSTRUCTION, rest).
fn container_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                let (op, rest) = current.split_once(' ').unwrap();
                out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

fn json_argv(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not an exec-form JSON array ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_containerfile_runs_as_non_root_on_a_minimal_base_with_a_working_health_check() {
    let text = std::fs::read_to_string(repo().join("deploy/Containerfile")).unwrap();
    let all = container_instructions(&text);
    let last_from = all.iter().rposition(|(op, _)| op == "FROM").unwrap();
    let (_, base) = &all[last_from];
    let fin = &all[last_from..];
    assert!(
        base.contains("distroless") || base.contains("-slim") || base.contains("alpine"),
        "a minimal base: {base}"
    );
    let one = |op: &str| -> &str {
        let found: Vec<&str> = fin
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(found.len(), 1, "one {op} in the final stage");
        found[0]
    };
    let user = one("USER");
    let name = user.split(':').next().unwrap();
    assert!(!["root", "0", ""].contains(&name), "USER {user}");

    // ENTRYPOINT + CMD: a command line dedupd accepts, listening on the exposed port.
    let mut argv = json_argv(one("ENTRYPOINT"));
    argv.extend(json_argv(one("CMD")));
    assert_eq!(argv[0], "/usr/local/bin/dedupd");
    let listen = &argv[argv.iter().position(|a| a == "--listen").unwrap() + 1];
    let port = listen.rsplit(':').next().unwrap();
    assert_eq!(one("EXPOSE"), port);
    let mut args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    args.push("--help");
    assert!(dedupd(&args).status.success(), "{args:?}");

    // HEALTHCHECK: /healthz through the image's own binary, run against a live server.
    let health = one("HEALTHCHECK");
    let cmd = &health[health.find("CMD ").unwrap() + 4..];
    let check = json_argv(cmd);
    assert_eq!(check[0], "/usr/local/bin/dedupd");
    let url = check.iter().find(|a| a.ends_with("/healthz")).unwrap();
    assert!(url.contains(&format!(":{port}/")), "{url}");
    let s = serve(&[], &[]);
    let live_url = format!("{}/healthz", s.base);
    let run_check = |url: &str| {
        let args: Vec<&str> = check[1..]
            .iter()
            .map(|a| {
                if a.ends_with("/healthz") {
                    url
                } else {
                    a.as_str()
                }
            })
            .collect();
        dedupd(&args)
    };
    let ok = run_check(&live_url);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    drop(s);
    let down = run_check(&live_url);
    assert_eq!(down.status.code(), Some(1), "a stopped server is unhealthy");
    assert!(String::from_utf8_lossy(&down.stderr).contains("unhealthy"));
}

/// The metric names a Prometheus text exposition holds.
fn exposed_metrics(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// Every `dedupd_…` name in a PromQL expression.
fn queried_metrics(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("dedupd_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_queries_is_in_a_fresh_serves_metrics() {
    let dashboard: Value = serde_json::from_slice(
        &std::fs::read(repo().join("deploy/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 10, "the dashboard has its queries: {all:?}");
    let dir = tempfile::tempdir().unwrap();
    let config = notifications_config(dir.path(), "http://127.0.0.1:9/v1/send");
    let s = serve(&["--config", config.to_str().unwrap()], &[]);
    // Before any message or notification: a fresh server's /metrics is what a new dashboard sees.
    let text = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposed = exposed_metrics(&text);
    let mut missing = Vec::new();
    for expr in &all {
        for name in queried_metrics(expr) {
            if !exposed.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "queried by the dashboard, absent from /metrics: {missing:?}\n{text}"
    );
}

/// `dedupd demo` runs the whole product end to end on its bundled data: every step's report
/// (on stdout with `--json`) says what the step did, and what the server did is checked at the
/// emulator: each notification sent once.
#[test]
fn the_demo_runs_every_job_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = dedupd(&["demo", "--dir", dir.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON report on stdout");

    // Each step is printed as the command a user can run again, with where to look.
    for step in [
        "$ dedupd ingest --config feeds.toml --out ingest",
        "$ dedupd sync --config feeds.toml --out sync --create-list 'dedupd demo'",
        "$ dedupd merge plan --input contacts.csv --out plan",
        "$ dedupd merge apply --plan plan --out apply --min-confidence 0.9",
        "$ dedupd serve --config serve.toml --listen 127.0.0.1:0",
        "dedupd merge review --plan",
    ] {
        assert!(stderr.contains(step), "{step:?} missing from:\n{stderr}");
    }
    assert!(stderr.matches("→ look at").count() >= 5, "{stderr}");

    // The feeds: 200 customers into a new list; the second run finds the list, sends nothing.
    assert_eq!(r["ingest"]["contacts"], 200);
    assert_eq!(r["sync"]["accepted"], 200);
    assert_eq!(r["resync"]["pending"], 0);
    assert_eq!(r["resync"]["contact_list_id"], r["sync"]["contact_list_id"]);
    assert!(stderr.contains("already exists"), "{stderr}");

    // The export: 1,500 records of 953 people; the confident clusters merged, the rest left.
    assert_eq!(r["external_contacts_seeded"], 1500);
    let clusters = r["merge_plan"]["clusters"].as_u64().unwrap();
    assert!(clusters > 200, "{clusters} clusters");
    let apply = &r["merge_apply"];
    let to_merge = apply["to_merge"].as_u64().unwrap();
    assert!(to_merge > 0 && to_merge <= clusters, "{apply}");
    assert_eq!(apply["merged"], to_merge, "{apply}");
    assert_eq!(
        apply["not_approved"].as_u64().unwrap() + to_merge,
        clusters,
        "{apply}"
    );
    assert_eq!(apply["quarantined"], 0, "{apply}");

    // The server: every message decided as labelled; each notification accepted once,
    // retried, delivered, and sent once by the emulator.
    let m = &r["serve"]["messages"];
    assert_eq!(m["sent"], 118, "{m}");
    assert_eq!(m["as_labelled"], m["sent"], "{m}");
    assert_eq!(m["suppress"], 65, "{m}");
    let n = &r["serve"]["notifications"];
    assert_eq!(n["accepted"], 20, "{n}");
    assert_eq!(n["replayed"], 20, "{n}");
    assert_eq!(n["refused"], 1, "{n}");
    assert_eq!(n["delivered"], 20, "{n}");
    assert_eq!(n["sms_sent"], 20, "{n}");

    // A second demo replaces the first one's directory; someone else's is refused.
    let other = tmp.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let refused = dedupd(&["demo", "--dir", other.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not a demo directory"));
    assert!(other.join("notes.txt").is_file());
}

/// Results on stdout for scripts (`--json`: the report, nothing else), talk on stderr, and
/// `--quiet` leaves only warnings and errors: the same in every job.
#[test]
fn json_puts_the_report_on_stdout_and_quiet_leaves_stderr_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let feeds = repo().join("examples/feeds.toml");
    let state = tmp.path().join("state");
    let run = |flags: &[&str], out: &str| {
        let mut args = flags.to_vec();
        args.extend([
            "ingest",
            "--config",
            feeds.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--out",
        ]);
        let out = tmp.path().join(out);
        args.push(out.to_str().unwrap());
        dedupd(&args)
    };
    let plain = run(&[], "a");
    assert!(plain.status.success());
    assert!(plain.stdout.is_empty(), "stdout carries only results");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("Read 389 records"));

    let json = run(&["--json"], "b");
    assert!(json.status.success());
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let file: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("b/report.json")).unwrap()).unwrap();
    assert_eq!(report["contacts"], 200);
    assert_eq!(
        report["unchanged"], file["unchanged"],
        "the report file's object"
    );

    let quiet = run(&["-q", "--json"], "c");
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    assert!(serde_json::from_slice::<Value>(&quiet.stdout).is_ok());

    // Merge plan too: the summary on stderr, the report with --json.
    let plan = dedupd(&[
        "merge",
        "plan",
        "--json",
        "--input",
        repo().join("examples/demo/contacts.csv").to_str().unwrap(),
        "--out",
        tmp.path().join("plan").to_str().unwrap(),
    ]);
    assert!(plan.status.success());
    let report: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(report["records"], 1500);
}

/// Regression (issue 18): missing flags and variables were reported one per run.
#[test]
fn everything_missing_is_named_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["sync", "--config"])
        .arg(repo().join("examples/feeds.toml"))
        .arg("--state")
        .arg(tmp.path().join("state"))
        .args(["--contact-list", "l-1", "--out"])
        .arg(tmp.path().join("out"))
        .env_remove("GENESYS_BASE_URL")
        .env_remove("GENESYS_REGION")
        .env_remove("GENESYS_CLIENT_ID")
        .env_remove("GENESYS_CLIENT_SECRET")
        .env_remove("DEDUPD_PLATFORM")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "--base-url",
        "--region",
        "--client-id",
        "GENESYS_CLIENT_SECRET",
    ] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let help = dedupd(&["sync", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.contains("[default: ]"),
        "no empty default is shown:\n{help}"
    );
}
