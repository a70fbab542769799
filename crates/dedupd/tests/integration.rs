//! End-to-end tests of `dedupd ingest`: the library entry point and the real binary.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dedupd::jobs::ingest::{self, Reason, Report};
use dedupd::shared::feeds::Config;
use serde_json::Value;

#[path = "integration/brokers.rs"]
mod brokers;
#[path = "integration/cxone.rs"]
mod cxone;
#[path = "integration/first_hour.rs"]
mod first_hour;
#[path = "integration/forward.rs"]
mod forward;
#[path = "integration/merge_apply.rs"]
mod merge_apply;
#[path = "integration/merge_plan.rs"]
mod merge_plan;
#[path = "integration/notify.rs"]
mod notify;
#[path = "integration/resolve.rs"]
mod resolve;
#[path = "integration/review.rs"]
mod review;
#[path = "integration/serve.rs"]
mod serve;

/// Waits until the relays have nothing left to do in `outbox`: nothing pending or sending, and
/// no `unknown` notification waiting for a read-back. Bounded by `limit` (a stuck outbox fails
/// the test with `context()`, which names the kills and the seed to replay them).
async fn until_relays_settle(
    outbox: &dedupd_store::outbox::Outbox,
    limit: std::time::Duration,
    context: impl Fn() -> String,
) {
    use dedupd_core::notification::Status;
    use dedupd_store::outbox::OutboxStore;
    let deadline = std::time::Instant::now() + limit;
    loop {
        let counts = outbox.counts().await.unwrap();
        let busy = counts.get(&Status::Pending).copied().unwrap_or(0)
            + counts.get(&Status::Sending).copied().unwrap_or(0);
        let rechecks = outbox
            .list(Status::Unknown, 10_000)
            .await
            .unwrap()
            .iter()
            .filter(|n| n.next_attempt_at.is_some())
            .count();
        if busy == 0 && rechecks == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relays did not finish: {counts:?}, {rechecks} unknown awaiting a read-back; {}",
            context()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The seed of the kill tests: `DEDUPD_KILL_SEED` when set (to replay a failure), else drawn
/// from the clock. Printed, and named in every assertion message of the kill tests.
fn kill_seed() -> u64 {
    let seed = std::env::var("DEDUPD_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        })
        | 1;
    eprintln!("kill points seeded with {seed}: replay with DEDUPD_KILL_SEED={seed}");
    seed
}

/// `n` kill points in `0..=max` drawn from `seed` (xorshift): the number of platform requests a
/// child may make before it is killed.
fn kill_points(seed: u64, n: usize, max: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % (max + 1)
        })
        .collect()
}

/// Runs `cmd` against the emulator until the emulator has served `after` more `/api/v2`
/// requests and refused the next one (a scheduled outage: nothing after the kill point reaches
/// the platform), then `kill -9`s it and ends the outage. Returns whether the child finished on
/// its own before reaching the kill point.
///
/// The wait is a condition wait, not a delay: it polls the child and the emulator's outage
/// counter every 2 ms, for at most 60 s.
fn kill_after_requests(emu: &impl Outage, after: u64, cmd: &mut Command) -> bool {
    let refused = || emu.refused();
    let before = refused();
    emu.outage_after(after);
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let finished = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if refused() > before {
            break false;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child made neither {after} requests nor an exit in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    if !finished {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    emu.end_outage();
    finished
}

/// An emulator that can refuse every request after a number of them (a scheduled outage).
trait Outage {
    /// Serves `after` more requests, then refuses every one.
    fn outage_after(&self, after: u64);
    /// Serves again.
    fn end_outage(&self);
    /// Requests refused by outages so far.
    fn refused(&self) -> u64;
}

impl Outage for dedupd_emulator::EmulatorState {
    fn outage_after(&self, after: u64) {
        dedupd_emulator::EmulatorState::outage_after(self, after);
    }
    fn end_outage(&self) {
        dedupd_emulator::EmulatorState::end_outage(self);
    }
    fn refused(&self) -> u64 {
        self.stats()
            .faults_injected
            .get("outage")
            .copied()
            .unwrap_or(0)
    }
}

/// The base URL a `dedupd serve` child prints as its first stdout line (`--listen …:0`).
fn listening_on(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("serve's stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("dedupd serve listening on ")
        .unwrap_or_else(|| panic!("serve did not start: first line {line:?}"))
        .to_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Run {
    report: Report,
    out: PathBuf,
}

fn ingest_with(config: &Path, state: &Path, out: &Path) -> Run {
    let cfg = Config::load(config).expect("config loads");
    let opts = ingest::Options {
        config: cfg,
        state_dir: state.to_owned(),
        out_dir: out.to_owned(),
        progress: false,
    };
    let report = ingest::run(&opts).expect("ingest runs");
    Run {
        report,
        out: out.to_owned(),
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("output exists")
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

fn rejects_by_reason(r: &Report) -> BTreeMap<String, u64> {
    r.rejects
        .iter()
        .map(|(k, v)| {
            (
                serde_json::to_value(k)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
                *v,
            )
        })
        .collect()
}

#[test]
fn sample_feeds_reproduce_truth_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = ingest_with(
        &repo().join("examples/feeds.toml"),
        &tmp.path().join("state"),
        &tmp.path().join("out"),
    );
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("examples/feeds/truth.json")).unwrap(),
    )
    .unwrap();

    assert_eq!(
        run.report.records_read,
        truth["input_records"].as_u64().unwrap()
    );
    let want_rejects: BTreeMap<String, u64> =
        serde_json::from_value(truth["rejects"].clone()).unwrap();
    assert_eq!(rejects_by_reason(&run.report), want_rejects);

    let got = lines(&run.out.join("contacts.ndjson"));
    let want = truth["contacts"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "one contact per customer");
    let by_id: BTreeMap<&str, &Value> = got
        .iter()
        .map(|c| (c["customer_id"].as_str().unwrap(), c))
        .collect();
    for w in want {
        let id = w["customer_id"].as_str().unwrap();
        let g = by_id.get(id).unwrap_or_else(|| panic!("{id} missing"));
        for (field, value) in w.as_object().unwrap() {
            assert_eq!(&g[field], value, "{id}.{field}");
        }
        let ext = g["external_id"].as_str().unwrap();
        assert!(
            ext.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{ext}"
        );
        assert!(
            g["updated_at"].as_str().unwrap().ends_with('Z'),
            "UTC RFC 3339"
        );
    }
    assert_eq!(run.report.new, 200);
    assert_eq!(run.report.do_not_call, 5);

    // The import CSV: header, `id` = externalId, one row per contact, same ids as the NDJSON.
    let mut csv = csv::Reader::from_path(run.out.join("contacts.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[0], "id");
    assert!(header.contains(&"phone_e164".to_owned()));
    assert!(
        !header.contains(&"updated_at".to_owned()),
        "not a default column"
    );
    let ids: Vec<String> = csv.records().map(|r| r.unwrap()[0].to_owned()).collect();
    let nd_ids: Vec<String> = got
        .iter()
        .map(|c| c["external_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, nd_ids);

    // Rejects name source, line and reason, and never carry the raw phone or e-mail.
    let rejects = std::fs::read_to_string(run.out.join("rejects.ndjson")).unwrap();
    assert!(
        rejects.contains(r#""source":"crm","line":128,"field":null,"reason":"malformed_row""#),
        "{rejects}"
    );
    assert!(
        rejects.contains(r#""source":"webform","line":143"#),
        "{rejects}"
    );
    assert!(
        rejects.contains(r#""line":140,"field":"phone","reason":"invalid_phone""#),
        "{rejects}"
    );
    assert!(
        !rejects.contains("12345") && !rejects.contains("@example.com"),
        "no PII in rejects"
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("report.json")).unwrap())
            .unwrap();
    for key in [
        "records_read",
        "contacts",
        "rejects",
        "new",
        "changed",
        "unchanged",
        "stale",
        "do_not_call",
        "elapsed_seconds",
    ] {
        assert!(report.get(key).is_some(), "report.json has {key}");
    }
}

#[test]
fn second_run_changes_nothing_and_newer_or_older_rows_are_classified() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let first = ingest_with(
        &repo().join("examples/feeds.toml"),
        &state,
        &tmp.path().join("out1"),
    );
    let before = lines(&first.out.join("contacts.ndjson"));

    let again = ingest_with(
        &repo().join("examples/feeds.toml"),
        &state,
        &tmp.path().join("out2"),
    );
    assert_eq!(
        (again.report.new, again.report.changed, again.report.stale),
        (0, 0, 0)
    );
    assert_eq!(again.report.unchanged, 200);
    assert!(lines(&again.out.join("changes.ndjson")).is_empty());
    assert_eq!(
        lines(&again.out.join("contacts.ndjson")),
        before,
        "state is stable"
    );

    let expect: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("crm_update_expect.json")).unwrap())
            .unwrap();
    let upd = ingest_with(&fixture("update.toml"), &state, &tmp.path().join("out3"));
    assert_eq!(
        (
            upd.report.new,
            upd.report.changed,
            upd.report.stale,
            upd.report.unchanged
        ),
        (0, 3, 2, 1),
        "{:?}",
        upd.report
    );
    assert_eq!(upd.report.contacts, 200, "no contact added or removed");
    let changes = lines(&upd.out.join("changes.ndjson"));
    let of_kind = |k: &str| -> Vec<String> {
        changes
            .iter()
            .filter(|c| c["change"] == k)
            .map(|c| c["contact"]["customer_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let want = |k: &str| -> Vec<String> { serde_json::from_value(expect[k].clone()).unwrap() };
    assert_eq!(of_kind("changed"), want("changed"));
    assert_eq!(of_kind("stale"), want("stale"));
    for c in changes.iter().filter(|c| c["change"] == "changed") {
        assert_eq!(
            c["fields"],
            serde_json::json!(["email"]),
            "only the e-mail changed"
        );
        let email = c["contact"]["email"].as_str().unwrap();
        assert!(
            email.starts_with("new.") && email.ends_with("@example.org"),
            "{email}"
        );
        assert!(
            c["contact"]["first_name"].is_string(),
            "an empty cell never erases a value"
        );
    }
    for c in changes.iter().filter(|c| c["change"] == "stale") {
        assert_eq!(c["stale_fields"], serde_json::json!(["first_name"]));
        assert_ne!(
            c["contact"]["first_name"], "Oldname",
            "older data never overwrites newer"
        );
    }
}

#[test]
fn windows_1252_semicolon_export_with_european_times() {
    let tmp = tempfile::tempdir().unwrap();
    let run = ingest_with(
        &fixture("export_1252.toml"),
        &tmp.path().join("state"),
        &tmp.path().join("out"),
    );
    assert_eq!(run.report.records_read, 8);
    assert_eq!(
        rejects_by_reason(&run.report),
        BTreeMap::from([
            ("bad_timestamp".into(), 1),
            ("invalid_phone".into(), 1),
            ("missing_key".into(), 1)
        ])
    );
    let got = lines(&run.out.join("contacts.ndjson"));
    let by: BTreeMap<&str, &Value> = got
        .iter()
        .map(|c| (c["customer_id"].as_str().unwrap(), c))
        .collect();
    assert_eq!(by.len(), 4);
    let k1 = by["K-1001"];
    assert_eq!(k1["first_name"], "Jürgen");
    assert_eq!(k1["last_name"], "Müller", "the newer row's spelling wins");
    assert_eq!(k1["email"], "j.mueller@gmx.de");
    assert_eq!(k1["phone_e164"], "+4915123456789");
    assert_eq!(
        k1["updated_at"], "2024-04-01T07:00:00Z",
        "+01:00 local time to UTC"
    );
    assert_eq!(by["K-1002"]["first_name"], "Zoë");
    assert_eq!(by["K-1002"]["phone_e164"], "+49301234567");
    let k3 = by["K-1003"];
    assert_eq!(
        k3["last_name"], "Großmann; geb. Weiß",
        "quoted delimiter kept"
    );
    assert_eq!(k3["do_not_call"], true, "status gekündigt = do not call");
    assert_eq!(k3["updated_at"], "2024-03-07T22:59:00Z");
    assert_eq!(by["K-1006"]["first_name"], "Ève");
    let rejects = lines(&run.out.join("rejects.ndjson"));
    let at: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        at,
        vec![
            (6, "invalid_phone"),
            (7, "bad_timestamp"),
            (8, "missing_key")
        ]
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

const ONE_CSV: &str = r#"
[key]
fields = ["customer_id"]
[[source]]
name = "s"
path = "in.csv"
format = "csv"
default_region = "GB"
timestamp_format = "rfc3339"
fields = { customer_id = "id", full_name = "name", phone = "phone", email = "email", updated_at = "ts" }
"#;

#[test]
fn broken_rows_never_lose_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut csv = b"\xEF\xBB\xBFid,name,phone,email,ts\n".to_vec();
    csv.extend_from_slice(b"A1,Ann Lee,020 7946 0958,ann@x.io,2024-01-01T00:00:00Z\n");
    csv.extend_from_slice(
        b"A2,\"Bob \"\"Bobby\"\" Ray\",020 7946 0959,bob@x.io,2024-01-01T00:00:00Z\n",
    );
    csv.extend_from_slice(b"A3,\"Unclosed,020 7946 0960,c@x.io,2024-01-01T00:00:00Z\n");
    csv.extend_from_slice(b"A4,\"Multi\nLine\",020 7946 0961,d@x.io,2024-01-01T00:00:00Z\n");
    csv.extend_from_slice(b"A5,Bad \xFF Byte,020 7946 0962,e@x.io,2024-01-01T00:00:00Z\n");
    csv.extend_from_slice(b"A6,Eve,020 7946 0963,not-an-email,2024-01-01T00:00:00Z\n");
    csv.extend_from_slice(b"A7,Fay,020 7946 0964,f@x.io,yesterday\n");
    csv.extend_from_slice(b"A8,Gus,020 7946 0965,g@x.io,2024-01-01T00:00:00Z");
    write(d, "in.csv", &csv);
    write(d, "feeds.toml", ONE_CSV.as_bytes());
    let run = ingest_with(&d.join("feeds.toml"), &d.join("state"), &d.join("out"));
    let ids: Vec<String> = lines(&run.out.join("contacts.ndjson"))
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["A1", "A2", "A4", "A8"],
        "good rows after every bad one survive"
    );
    let rejects = lines(&run.out.join("rejects.ndjson"));
    let at: Vec<(u64, &str, Option<&str>)> = rejects
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap(),
                r["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        at,
        vec![
            (4, "malformed_row", None),
            (7, "bad_encoding", Some("name")),
            (8, "invalid_email", Some("email")),
            (9, "bad_timestamp", Some("ts")),
        ]
    );
    assert_eq!(run.report.records_read, 8);
    let contacts = lines(&run.out.join("contacts.ndjson"));
    assert_eq!(contacts[1]["first_name"], "Bob");
    assert_eq!(contacts[1]["last_name"], "\"Bobby\" Ray");
    assert_eq!(
        contacts[2]["first_name"], "Multi",
        "a quoted newline is one record"
    );
    assert_eq!(contacts[2]["last_name"], "Line");
}

/// Five data rows under a header, each line ended with `eols[i]` (the last one may be empty).
fn five_rows(eols: [&str; 6]) -> Vec<u8> {
    let rows = [
        "id,name,phone,email,ts",
        "C1,Ann Lee,020 7946 0958,ann@x.io,2024-01-01T00:00:00Z",
        "C2,\"Bob\nRay\",020 7946 0959,bob@x.io,2024-01-01T00:00:00Z",
        "C3,Cid Moe,020 7946 0960,cid@x.io,2024-01-01T00:00:00Z",
        "C4,Dee Fox,020 7946 0961,not-an-email,2024-01-01T00:00:00Z",
        "C5,Eve Kim,020 7946 0962,eve@x.io,2024-01-01T00:00:00Z",
    ];
    let mut out = Vec::new();
    for (row, eol) in rows.iter().zip(eols) {
        out.extend_from_slice(row.replace('\n', eol).as_bytes());
        out.extend_from_slice(eol.as_bytes());
    }
    out
}

#[test]
fn cr_line_endings_read_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "feeds.toml", ONE_CSV.as_bytes());
    // Bare CR (old Mac, some Excel saves), CRLF, LF, mixed, and a bare CR inside an LF file.
    for (i, eols) in [
        ["\r"; 6],
        ["\r\n"; 6],
        ["\n"; 6],
        ["\n", "\r", "\r\n", "\r", "\n", ""],
        ["\n", "\n", "\n", "\r", "\n", "\n"],
    ]
    .into_iter()
    .enumerate()
    {
        write(d, "in.csv", &five_rows(eols));
        let out = d.join(format!("out{i}"));
        let run = ingest_with(&d.join("feeds.toml"), &d.join(format!("state{i}")), &out);
        assert_eq!(run.report.records_read, 5, "{eols:?}");
        let ids: Vec<String> = lines(&out.join("contacts.ndjson"))
            .iter()
            .map(|c| c["customer_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["C1", "C2", "C3", "C5"], "{eols:?}");
        let rejects = lines(&out.join("rejects.ndjson"));
        let at: Vec<(u64, &str)> = rejects
            .iter()
            .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
            .collect();
        // C2's quoted line break makes it two physical lines: C4 starts on line 6.
        assert_eq!(at, vec![(6, "invalid_email")], "{eols:?}");
        let contacts = lines(&out.join("contacts.ndjson"));
        assert_eq!(contacts[1]["first_name"], "Bob", "{eols:?}");
        assert_eq!(contacts[1]["last_name"], "Ray", "{eols:?}");
    }
}

#[test]
fn ndjson_and_json_arrays_with_cr_line_endings_keep_every_record_and_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = |name: &str, format: &str| {
        format!(
            r#"
[key]
fields = ["customer_id"]
[[source]]
name = "j"
path = "{name}"
format = "{format}"
timestamp_format = "epoch_seconds"
fields = {{ customer_id = "id", phone = "p", updated_at = "t" }}
"#
        )
    };
    let ndjson = "{\"id\": \"N1\", \"p\": \"+442079460958\", \"t\": 1700000000}\r\
                  {\"id\": \"N2\", \"t\": 1700000000}\r\n\
                  \r\
                  {\"id\": \"N3\", \"t\": tru}\r\
                  {\"id\": \"N4\", \"t\": 1700000000}\n";
    write(d, "in.ndjson", ndjson.as_bytes());
    write(d, "n.toml", cfg("in.ndjson", "ndjson").as_bytes());
    let run = ingest_with(&d.join("n.toml"), &d.join("sn"), &d.join("on"));
    assert_eq!(run.report.records_read, 4);
    let rejects = lines(&run.out.join("rejects.ndjson"));
    let at: Vec<u64> = rejects
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(at, vec![4], "the blank CR line counts as a line");

    let json = "[\r {\"id\": \"J1\", \"t\": 1700000000},\r {\"id\": \"J2\", \"t\": tru},\r\n {\"id\": \"J3\", \"t\": 1700000000}\r]\r";
    write(d, "in.json", json.as_bytes());
    write(d, "j.toml", cfg("in.json", "json").as_bytes());
    let run = ingest_with(&d.join("j.toml"), &d.join("sj"), &d.join("oj"));
    assert_eq!(run.report.records_read, 3);
    let rejects = lines(&run.out.join("rejects.ndjson"));
    let at: Vec<u64> = rejects
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(at, vec![3], "an element's line counts bare CRs");
}

#[test]
fn header_errors_name_columns_never_values() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "feeds.toml", ONE_CSV.as_bytes());
    let ingest_err = |csv: &[u8]| -> String {
        write(d, "in.csv", csv);
        let opts = ingest::Options {
            config: Config::load(&d.join("feeds.toml")).unwrap(),
            state_dir: d.join("state"),
            out_dir: d.join("out"),
            progress: false,
        };
        format!("{:#}", ingest::run(&opts).unwrap_err())
    };
    // A file without a header row: its first line is a customer's data.
    let e = ingest_err(
        b"A1,Ann Lee,020 7946 0958,ann.lee@example.org,2024-01-01T00:00:00Z\n\
          A2,Bob Ray,020 7946 0959,bob@example.org,2024-01-01T00:00:00Z\n",
    );
    assert!(e.contains("`id`") && e.contains("header"), "{e}");
    for value in ["7946", "ann.lee@example.org", "Ann Lee", "2024-01-01"] {
        assert!(!e.contains(value), "{value} in {e}");
    }
    // A one-line file of 2 MB (a wrong encoding or a missing line break): the message stays short.
    let mut big = b"name,".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2 << 20));
    let e = ingest_err(&big);
    assert!(e.len() < 1024, "{} bytes", e.len());
    assert!(e.contains("`id`"), "{e}");
    // Real column names are named, a bounded number of them.
    let mut header: Vec<String> = (0..100).map(|i| format!("col{i}")).collect();
    header.push("ts".into());
    let e = ingest_err(format!("{}\n", header.join(",")).as_bytes());
    assert!(e.contains("col0") && e.contains("101 columns"), "{e}");
    assert!(!e.contains("col99") && e.len() < 1024, "{e}");
}

#[test]
fn json_array_streams_past_a_bad_element() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let json = "[\n {\"id\": \"J1\", \"p\": \"+442079460958\", \"t\": 1700000000},\n {\"id\": \"J2\", \"p\": tru},\n {\"id\": 3, \"p\": null, \"t\": \"1700000001\", \"nested\": {\"a\": [1, \"]\"]}},\n \"not an object\"\n]\n";
    write(d, "in.json", json.as_bytes());
    write(
        d,
        "feeds.toml",
        br#"
[key]
fields = ["customer_id"]
[[source]]
name = "j"
path = "in.json"
format = "json"
timestamp_format = "epoch_seconds"
fields = { customer_id = "id", phone = "p", updated_at = "t" }
"#,
    );
    let run = ingest_with(&d.join("feeds.toml"), &d.join("state"), &d.join("out"));
    let ids: Vec<String> = lines(&run.out.join("contacts.ndjson"))
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["3", "J1"]);
    let rejects = lines(&run.out.join("rejects.ndjson"));
    let at: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(at, vec![(3, "malformed_row"), (5, "malformed_row")]);
    assert_eq!(run.report.rejects.get(&Reason::MalformedRow), Some(&2));
}

#[test]
fn cli_reads_stdin_and_exits_2_with_one_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "feeds.toml",
        ONE_CSV.replace("\"in.csv\"", "\"-\"").as_bytes(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["ingest", "--config"])
        .arg(d.join("feeds.toml"))
        .arg("--out")
        .arg(d.join("out"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"id,name,phone,email,ts\nS1,Sue,+442079460958,,2024-01-01T00:00:00Z\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 new"), "{stderr}");
    assert!(
        d.join(".dedupd").is_dir(),
        "state defaults to .dedupd/ beside the config"
    );
    assert!(
        !stderr.contains("+442079460958"),
        "no phone numbers on the terminal"
    );

    // A config error: exit 2, one message naming the key.
    write(
        d,
        "bad.toml",
        ONE_CSV
            .replace("format = \"csv\"", "format = \"xml\"")
            .as_bytes(),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["ingest", "--config"])
        .arg(d.join("bad.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("format") && stderr.contains("xml"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );

    // A missing input file: exit 2 too.
    write(
        d,
        "gone.toml",
        ONE_CSV.replace("in.csv", "nope.csv").as_bytes(),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["ingest", "--config"])
        .arg(d.join("gone.toml"))
        .arg("--out")
        .arg(d.join("out2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.csv"));
}

/// One CSV source with a name and an e-mail (no phone), for generated feeds.
const GENERATED_CSV: &str = r#"
[key]
fields = ["customer_id"]
[[source]]
name = "gen"
path = "FEED"
format = "csv"
timestamp_format = "rfc3339"
fields = { customer_id = "id", full_name = "name", email = "email", updated_at = "ts" }
"#;

/// A name made of letters only (names are normalized; digits would be odd in one).
fn letters(mut i: u64) -> String {
    let mut s = String::new();
    loop {
        s.push(char::from(b'a' + (i % 26) as u8));
        i /= 26;
        if i == 0 {
            break;
        }
    }
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Customers `ids` as they were on 2024-01-01; with `update`, those below `known` are the
/// customers of that first export: every third has a newer e-mail, every seventh (not third)
/// an older row with another name (stale), the rest are as before; those from `known` on are new.
fn generated_feed(path: &Path, ids: std::ops::Range<u64>, update: Option<u64>) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "id,name,email,ts").unwrap();
    for i in ids {
        let id = format!("G{i:07}");
        let name = format!("Ann {}", letters(i));
        let (name, email, ts) = match update {
            Some(known) if i < known && i % 3 == 0 => (
                name,
                format!("c{i}.new@example.org"),
                "2024-02-01T00:00:00Z",
            ),
            Some(known) if i < known && i % 7 == 0 => (
                format!("Old {}", letters(i)),
                format!("c{i}@example.org"),
                "2023-06-01T00:00:00Z",
            ),
            _ => (name, format!("c{i}@example.org"), "2024-01-01T00:00:00Z"),
        };
        writeln!(w, "{id},{name},{email},{ts}").unwrap();
    }
    w.flush().unwrap();
}

/// Issue 12: a run killed after some state commits left its changes committed but never
/// written to a change log, and the re-run called them unchanged. A contact is "changed since
/// the last completed run" until a run's outputs are written, so the re-run after a `kill -9`
/// must report exactly what one uninterrupted run reports.
#[test]
fn kill_dash_nine_mid_ingest_then_the_rerun_reports_every_change() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    const KNOWN: u64 = 60_000;
    generated_feed(&d.join("base.csv"), 0..KNOWN, None);
    generated_feed(
        &d.join("update.csv"),
        KNOWN / 2..KNOWN + 70_000,
        Some(KNOWN),
    );
    write(
        d,
        "base.toml",
        GENERATED_CSV.replace("FEED", "base.csv").as_bytes(),
    );
    write(
        d,
        "update.toml",
        GENERATED_CSV.replace("FEED", "update.csv").as_bytes(),
    );

    // The first export, completed; the control and the killed run start from copies of it.
    ingest_with(&d.join("base.toml"), &d.join("state"), &d.join("out-base"));
    for copy in ["state-control", "state-killed"] {
        std::fs::create_dir_all(d.join(copy)).unwrap();
        std::fs::copy(d.join("state/state.redb"), d.join(copy).join("state.redb")).unwrap();
    }
    let control = ingest_with(
        &d.join("update.toml"),
        &d.join("state-control"),
        &d.join("out-control"),
    );
    assert!(
        control.report.new > 0
            && control.report.changed > 0
            && control.report.stale > 0
            && control.report.unchanged > 0,
        "the update has every kind of change: {:?}",
        control.report
    );

    // The killed run: SIGKILL right after its k-th state commit (k seeded, printed).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let after_commits = 1 + (seed % 2) as usize;
    eprintln!("kill -9 after state commit {after_commits} (seed {seed})");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["--quiet", "ingest", "--config"])
        .arg(d.join("update.toml"))
        .arg("--state")
        .arg(d.join("state-killed"))
        .arg("--out")
        .arg(d.join("out-killed"))
        .env("RUST_LOG", "dedupd_store=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut commits = 0;
    for line in stderr.lines() {
        if line.unwrap().contains("Committed a batch of contacts") {
            commits += 1;
            if commits == after_commits {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(
        commits, after_commits,
        "the run was killed mid-way, after {after_commits} commits ({status})"
    );
    assert!(
        !status.success() && !d.join("out-killed/report.json").exists(),
        "the killed run wrote no outputs ({status})"
    );

    // The re-run over the same feed and the state the killed run left.
    let rerun = ingest_with(
        &d.join("update.toml"),
        &d.join("state-killed"),
        &d.join("out-rerun"),
    );
    let counts = |r: &Report| {
        (
            r.contacts,
            r.contacts_in_run,
            r.new,
            r.changed,
            r.unchanged,
            r.stale,
            r.do_not_call_new,
        )
    };
    assert_eq!(
        counts(&rerun.report),
        counts(&control.report),
        "(contacts, in run, new, changed, unchanged, stale, dnc new) after a kill at commit {after_commits}"
    );
    assert!(
        rerun.report.carried_over > 0 && control.report.carried_over == 0,
        "the re-run says how many changes the killed run had committed: {}",
        rerun.report.carried_over
    );
    let (got, want) = (
        lines(&rerun.out.join("changes.ndjson")),
        lines(&control.out.join("changes.ndjson")),
    );
    assert_eq!(got.len(), want.len(), "changes.ndjson lines");
    assert!(got == want, "changes.ndjson equals the uninterrupted run's");
    assert!(
        lines(&rerun.out.join("contacts.ndjson")) == lines(&control.out.join("contacts.ndjson")),
        "the contacts are the same"
    );

    // Once a run's outputs are written, its changes are reported: the next run has none.
    let again = ingest_with(
        &d.join("update.toml"),
        &d.join("state-killed"),
        &d.join("out-again"),
    );
    assert_eq!(
        (again.report.new, again.report.changed),
        (0, 0),
        "{:?}",
        again.report
    );
    assert_eq!(
        lines(&again.out.join("changes.ndjson")).len() as u64,
        again.report.stale
    );
}

/// Starts `dedupd emulator ARGS` with `envs`; returns the child, its banner line and the
/// `host:port` the banner names.
fn spawn_emulator(args: &[&str], envs: &[(&str, &str)]) -> (std::process::Child, String, String) {
    use std::io::{BufRead, BufReader};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dedupd"));
    cmd.arg("emulator").args(args).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    let host = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("banner names the URL")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    (child, banner, host)
}

/// A form POST over a raw HTTP/1.1 connection with Basic `cli-test:s3cret-value`; the whole
/// response as text.
fn post_form_basic(host: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    // Basic base64("cli-test:s3cret-value")
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic Y2xpLXRlc3Q6czNjcmV0LXZhbHVl\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn emulator_subcommand_serves_oauth_on_an_ephemeral_port() {
    let (mut child, banner, host) = spawn_emulator(
        &["--port", "0", "--client-id", "cli-test"],
        &[("DEDUPD_EMULATOR_CLIENT_SECRET", "s3cret-value")],
    );
    assert!(
        !banner.contains("s3cret-value"),
        "the secret is never printed: {banner}"
    );
    let resp = post_form_basic(&host, "/oauth/token", "grant_type=client_credentials");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("\"access_token\"") && resp.contains("\"expires_in\""),
        "{resp}"
    );
}

#[test]
fn emulator_subcommand_serves_cxone_with_the_password_grant() {
    let (mut child, banner, host) = spawn_emulator(
        &[
            "--platform",
            "cxone",
            "--port",
            "0",
            "--client-id",
            "cli-test",
        ],
        &[
            ("DEDUPD_EMULATOR_CLIENT_SECRET", "s3cret-value"),
            ("DEDUPD_EMULATOR_ACCESS_KEY_SECRET", "key-s3cret"),
        ],
    );
    assert!(
        banner.contains("NICE CXone") && !banner.contains("s3cret"),
        "named, and no secret printed: {banner}"
    );
    let resp = post_form_basic(
        &host,
        "/auth/token",
        "grant_type=password&username=dedupd-demo-key&password=key-s3cret",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("\"id_token\"") && resp.contains("\"refresh_token\""),
        "{resp}"
    );
}

// ---------------------------------------------------------------------------------------------
// sync, against the in-process emulator over real HTTP

mod sync_tests {
    use super::*;
    use dedupd::jobs::sync;
    use dedupd_emulator::{EmulatorConfig, FaultProfile, RateLimitScope, RunningEmulator};
    use dedupd_genesys::{
        ClientConfig, ContactList, Endpoint, GenesysClient, RetryPolicy, SecretString,
    };
    use std::time::Duration;

    const ID: &str = "sync-test";
    const SECRET: &str = "sync-test-secret";
    /// A second OAuth client for test setup, so that setup calls never use the budget under test.
    const SETUP_ID: &str = "sync-test-setup";

    fn emulator_config(rate: u32) -> EmulatorConfig {
        EmulatorConfig {
            rate_limit_per_minute: rate,
            clients: vec![(ID.into(), SECRET.into()), (SETUP_ID.into(), SECRET.into())],
            seed: 11,
            ..EmulatorConfig::default()
        }
    }

    fn client_config(emu: &RunningEmulator, rate: u32) -> ClientConfig {
        let mut c = ClientConfig::new(
            Endpoint::base_url(&emu.base_url()).unwrap(),
            ID,
            SecretString::from(SECRET),
        );
        c.requests_per_minute = rate;
        c.retry = RetryPolicy {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            max_total: Duration::from_secs(60),
            max_attempts: 12,
        };
        c
    }

    /// Ingests the sample feeds into `dir/state` and returns the config.
    fn ingested(dir: &Path) -> Config {
        ingest_with(
            &repo().join("examples/feeds.toml"),
            &dir.join("state"),
            &dir.join("out"),
        );
        Config::load(&repo().join("examples/feeds.toml")).unwrap()
    }

    fn options(
        dir: &Path,
        config: Config,
        target: sync::Target,
        client: ClientConfig,
        batch: usize,
    ) -> sync::Options {
        sync::Options {
            config,
            state_dir: dir.join("state"),
            out_dir: dir.join("sync-out"),
            target,
            platform: dedupd::shared::platform::Platform::Genesys(Box::new(client)),
            batch_size: batch,
            concurrency: 4,
            dry_run: false,
            progress: false,
        }
    }

    async fn create_list(emu: &RunningEmulator, name: &str, columns: &[String]) -> String {
        let mut setup = client_config(emu, 60_000);
        setup.client_id = SETUP_ID.into();
        let client = GenesysClient::new(setup).await.unwrap();
        let list = client
            .outbound()
            .create_contact_list(&ContactList::new(name, columns.to_vec()))
            .await
            .unwrap();
        list.id.unwrap()
    }

    /// The emulator's list holds exactly the contacts of `contacts.ndjson`: same ids, each once,
    /// same values, do-not-call as callable=false.
    fn assert_list_matches(emu: &RunningEmulator, list_id: &str, ingest_out: &Path) {
        let want = lines(&ingest_out.join("contacts.ndjson"));
        let got = emu
            .state()
            .contact_list_contacts(list_id)
            .expect("list exists");
        let ids: Vec<&str> = got.iter().map(|c| c["id"].as_str().unwrap()).collect();
        let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "no contact appears twice");
        assert_eq!(
            got.len(),
            want.len(),
            "one platform contact per ingested contact"
        );
        let by_id: BTreeMap<&str, &Value> =
            got.iter().map(|c| (c["id"].as_str().unwrap(), c)).collect();
        let customers: std::collections::BTreeSet<&str> = got
            .iter()
            .map(|c| c["data"]["customer_id"].as_str().unwrap())
            .collect();
        assert_eq!(customers.len(), got.len(), "no customer appears twice");
        for w in &want {
            let id = w["external_id"].as_str().unwrap();
            let g = by_id
                .get(id)
                .unwrap_or_else(|| panic!("{id} missing on the platform"));
            for field in [
                "customer_id",
                "first_name",
                "last_name",
                "phone_e164",
                "email",
            ] {
                assert_eq!(
                    g["data"][field].as_str().unwrap(),
                    w[field].as_str().unwrap_or(""),
                    "{id}.{field}"
                );
            }
            let dnc = w["do_not_call"].as_bool().unwrap();
            assert_eq!(g["data"]["do_not_call"], dnc.to_string());
            assert_eq!(g["callable"], !dnc, "{id}: do-not-call is a soft delete");
        }
    }

    fn add_calls(emu: &RunningEmulator) -> u64 {
        emu.state()
            .stats()
            .requests_by_route
            .get("POST /api/v2/outbound/contactlists/{contactListId}/contacts")
            .copied()
            .unwrap_or(0)
    }

    /// Regression (issue 18): `--create-list NAME` twice made a second list of that name. It
    /// now finds the list of exactly that name (not one whose name only contains it, as the
    /// API's filter also returns), and two lists of the name are an error naming both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_list_finds_its_list_by_exact_name() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let config = ingested(d);
        let emu = RunningEmulator::start(emulator_config(3000)).await.unwrap();
        let columns = config.csv_columns.clone();
        let decoy = create_list(&emu, "crm archive", &columns).await;
        let create = |name: &str| {
            options(
                d,
                config.clone(),
                sync::Target::Create(name.into()),
                client_config(&emu, 3000),
                100,
            )
        };
        let creates = || {
            emu.state()
                .stats()
                .requests_by_route
                .get("POST /api/v2/outbound/contactlists")
                .copied()
                .unwrap_or(0)
        };
        let before = creates();
        let first = sync::run(&create("crm")).await.unwrap();
        assert_ne!(first.contact_list_id, decoy);
        assert_eq!(first.accepted, 200);
        let again = sync::run(&create("crm")).await.unwrap();
        assert_eq!(again.contact_list_id, first.contact_list_id);
        assert_eq!((again.pending, again.sent), (0, 0));
        assert_eq!(creates() - before, 1, "one list created, by the first run");
        assert_eq!(emu.state().contact_list_contacts(&decoy).unwrap().len(), 0);

        let a = create_list(&emu, "twice", &columns).await;
        let b = create_list(&emu, "twice", &columns).await;
        let err = sync::run(&create("twice")).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(&a) && text.contains(&b), "{text}");
        emu.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clean_run_then_only_real_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let config = ingested(d);
        let emu = RunningEmulator::start(emulator_config(3000)).await.unwrap();

        let first = sync::run(&options(
            d,
            config.clone(),
            sync::Target::Create("crm".into()),
            client_config(&emu, 3000),
            25,
        ))
        .await
        .unwrap();
        assert_eq!(
            (
                first.pending,
                first.accepted,
                first.rejected,
                first.remaining
            ),
            (200, 200, 0, 0)
        );
        assert_eq!(first.do_not_call, 5);
        assert_eq!(first.batches, 8);
        let stats = emu.state().stats();
        assert_eq!(
            stats.rate_limited, 0,
            "no self-inflicted 429 in a clean run"
        );
        assert_list_matches(&emu, &first.contact_list_id, &d.join("out"));
        let list = sync::Target::List(first.contact_list_id.clone());
        let to_list = || {
            options(
                d,
                config.clone(),
                list.clone(),
                client_config(&emu, 3000),
                25,
            )
        };

        // Nothing changed: nothing is sent.
        let calls = add_calls(&emu);
        let again = sync::run(&to_list()).await.unwrap();
        assert_eq!((again.pending, again.sent), (0, 0));
        assert_eq!(add_calls(&emu), calls);

        // A newer export changes 3 contacts (2 stale rows change nothing): only those 3 go out.
        ingest_with(&fixture("update.toml"), &d.join("state"), &d.join("out"));
        let upd = sync::run(&to_list()).await.unwrap();
        assert_eq!((upd.pending, upd.sent, upd.accepted), (3, 3, 3));
        assert_eq!(add_calls(&emu), calls + 1, "one batch");
        assert_list_matches(&emu, &first.contact_list_id, &d.join("out"));

        // A dry run shows the plan and sends nothing.
        ingest_with(
            &fixture("export_1252.toml"),
            &d.join("state"),
            &d.join("out"),
        );
        let mut dry = to_list();
        dry.dry_run = true;
        let plan = sync::run(&dry).await.unwrap();
        assert_eq!((plan.pending, plan.sent), (4, 0));
        assert_eq!(lines(&d.join("sync-out/sync_plan.ndjson")).len(), 4);
        assert_eq!(add_calls(&emu), calls + 1);
        emu.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_the_fault_profile() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let config = ingested(d);
        let mut faults =
            FaultProfile::from_file(repo().join("crates/emulator/fault-profiles/sync-chaos.toml"))
                .unwrap();
        faults.token_ttl_secs = Some(1.0); // the profile's 30 s, compressed: tokens expire mid-run
        let mut cfg = emulator_config(6000);
        cfg.faults = faults;
        let emu = RunningEmulator::start(cfg).await.unwrap();
        let list_id = create_list(&emu, "it", &config.csv_columns).await;

        let report = sync::run(&options(
            d,
            config,
            sync::Target::List(list_id.clone()),
            client_config(&emu, 6000),
            5,
        ))
        .await
        .unwrap();
        let stats = emu.state().stats();
        assert!(
            stats.faults_injected.values().sum::<u64>() > 0,
            "faults were injected: {stats:?}"
        );
        assert!(
            report.calls.retries > 0 && report.calls.rate_limited > 0,
            "{report:?}"
        );
        assert_eq!(
            (report.accepted, report.remaining, report.rejected),
            (200, 0, 0),
            "{report:?}"
        );
        assert_list_matches(&emu, &list_id, &d.join("out"));
        emu.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permanently_refused_contacts_go_to_the_reject_file_and_the_rest_lands() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let config = ingested(d);
        let mut cfg = emulator_config(60_000);
        cfg.faults = FaultProfile::from_toml_str(
            "seed = 5\n[[rules]]\nkind = \"record_failure\"\nprobability = 0.03\nstatuses = [400]\n",
        )
        .unwrap();
        let emu = RunningEmulator::start(cfg).await.unwrap();
        let list_id = create_list(&emu, "it", &config.csv_columns).await;
        let opts = options(
            d,
            config,
            sync::Target::List(list_id.clone()),
            client_config(&emu, 60_000),
            50,
        );
        let report = sync::run(&opts).await.unwrap();
        assert!(
            report.rejected > 0,
            "the profile refuses some records: {report:?}"
        );
        assert_eq!(report.accepted + report.rejected, 200, "{report:?}");
        let rejects = lines(&d.join("sync-out/sync_rejects.ndjson"));
        assert_eq!(rejects.len() as u64, report.rejected);
        for r in &rejects {
            assert_eq!(r["status"], 400);
            assert!(r["code"].is_string() && r["message"].is_string(), "{r}");
        }
        let on_list = emu.state().contact_list_contacts(&list_id).unwrap();
        assert_eq!(
            on_list.len() as u64,
            report.accepted,
            "accepted contacts all landed, refused ones not"
        );
        let refused: std::collections::BTreeSet<&str> = rejects
            .iter()
            .map(|r| r["external_id"].as_str().unwrap())
            .collect();
        assert!(
            on_list
                .iter()
                .all(|c| !refused.contains(c["id"].as_str().unwrap()))
        );
        // Refused contacts stay pending: the next run offers them again (and they are refused again).
        let again = sync::run(&opts).await.unwrap();
        assert_eq!(
            (again.pending, again.accepted, again.rejected),
            (report.rejected, 0, report.rejected)
        );
        emu.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_dash_nine_at_random_points_then_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_owned();
        let config = ingested(&d);
        let emu = RunningEmulator::start(emulator_config(60_000))
            .await
            .unwrap();
        let list_id = create_list(&emu, "it", &config.csv_columns).await;
        let base = emu.base_url();
        let (dir, list) = (d.clone(), list_id.clone());
        let (seed, state) = (kill_seed(), emu.state());
        let kills = tokio::task::spawn_blocking(move || {
            let sync = |dir: &Path| {
                let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
                c.args(["--quiet", "sync", "--config"])
                    .arg(repo().join("examples/feeds.toml"))
                    .arg("--state")
                    .arg(dir.join("state"))
                    .arg("--out")
                    .arg(dir.join("sync-out"))
                    .args([
                        "--contact-list",
                        &list,
                        "--batch-size",
                        "4",
                        "--concurrency",
                        "2",
                        "--rate",
                        "150", // 50 batches: more than the 10 kills take (at most 5 requests each)
                    ])
                    .env("GENESYS_BASE_URL", &base)
                    .env("GENESYS_CLIENT_ID", ID)
                    .env("GENESYS_CLIENT_SECRET", SECRET)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                c
            };
            // Each run is killed after 0–5 requests (the list check, then batches).
            let mut killed = Vec::new();
            for after in kill_points(seed, 10, 5) {
                let finished = kill_after_requests(&state, after, &mut sync(&dir));
                killed.push((after, finished));
            }
            let status = sync(&dir).status().unwrap();
            assert!(
                status.success(),
                "the final run completes: {status}; kill points {killed:?} (DEDUPD_KILL_SEED={seed})"
            );
            killed
        })
        .await
        .unwrap();
        assert!(
            kills.iter().filter(|(_, finished)| !finished).count() >= 5,
            "most runs were killed mid-way: {kills:?} (DEDUPD_KILL_SEED={seed})"
        );
        assert_list_matches(&emu, &list_id, &d.join("out"));
        emu.shutdown().await;
    }

    /// `dedupd sync` as a child process against `base`, with `--give-up-after` when given.
    fn sync_cli(dir: &Path, base: &str, list: &str, give_up: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
        c.args(["--quiet", "sync", "--config"])
            .arg(repo().join("examples/feeds.toml"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--out")
            .arg(dir.join("sync-out"))
            .args(["--contact-list", list, "--batch-size", "10"])
            .args(["--concurrency", "2"])
            .env("GENESYS_BASE_URL", base)
            .env("GENESYS_CLIENT_ID", ID)
            .env("GENESYS_CLIENT_SECRET", SECRET)
            .env_remove("DEDUPD_GIVE_UP_AFTER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(secs) = give_up {
            c.args(["--give-up-after", secs]);
        }
        c
    }

    /// A dry run only says what it would send: exit 0, not 3 ("still pending"). On an empty
    /// state, sync says to run ingest first instead of "up to date".
    #[test]
    fn a_dry_run_exits_0_and_an_empty_state_says_run_ingest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let run = || {
            let out = sync_cli(d, "http://127.0.0.1:9", "list-1", None)
                .arg("--dry-run")
                .output()
                .unwrap();
            (out.status.code(), String::from_utf8(out.stderr).unwrap())
        };
        let (code, err) = run();
        assert_eq!(code, Some(0), "{err}");
        // A warning: said even with --quiet.
        assert!(err.contains("Run dedupd ingest first"), "{err}");
        assert_eq!(sync_report(d)["contacts_in_state"], 0);
        ingested(d);
        let (code, err) = run();
        assert_eq!(code, Some(0), "{err}");
        assert!(err.is_empty(), "--quiet: only warnings and errors: {err}");
        assert_eq!(
            sync_report(d)["pending"],
            200,
            "what the dry run would send"
        );
        // Without --quiet, the dry run says what it would send.
        let said = Command::new(env!("CARGO_BIN_EXE_dedupd"))
            .args(["sync", "--dry-run", "--contact-list", "list-1", "--config"])
            .arg(repo().join("examples/feeds.toml"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--out")
            .arg(d.join("sync-out"))
            .output()
            .unwrap();
        let err = String::from_utf8(said.stderr).unwrap();
        assert_eq!(said.status.code(), Some(0), "{err}");
        assert!(err.contains("Dry run: 200 contacts would be sent"), "{err}");
        assert_eq!(sync_report(d)["contacts_in_state"], 200);
    }

    fn sync_report(dir: &Path) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.join("sync-out/sync_report.json")).unwrap(),
        )
        .unwrap()
    }

    /// The platform goes away after the list check and 5 batches: the run stops once nothing
    /// has succeeded for `--give-up-after`, keeps the 50 accepted contacts, says the platform
    /// was unreachable and exits 3; the next run, the platform back, sends only the other 150.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_gives_up_when_the_platform_is_unreachable_and_keeps_what_was_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_owned();
        let config = ingested(&d);
        let emu = RunningEmulator::start(emulator_config(60_000))
            .await
            .unwrap();
        let list_id = create_list(&emu, "it", &config.csv_columns).await;
        let base = emu.base_url();
        // GET the list, then 5 add-contacts batches of 10; then every request gets 503.
        emu.state().outage_after(1 + 5);
        let (dir, list, url) = (d.clone(), list_id.clone(), base.clone());
        let out = tokio::task::spawn_blocking(move || {
            sync_cli(&dir, &url, &list, Some("2")).output().unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(&format!("the platform at {base}"))
                && last.contains("was unreachable for")
                && !last.contains(SECRET),
            "{stderr}"
        );
        let report = sync_report(&d);
        assert_eq!(report["accepted"], 50, "{report}");
        assert_eq!(report["remaining"], 150, "{report}");
        assert!(
            report["platform_unreachable"]
                .as_str()
                .is_some_and(|m| m.contains("was unreachable for")),
            "{report}"
        );
        assert_eq!(
            emu.state().contact_list_contacts(&list_id).unwrap().len(),
            50
        );

        // The platform is back: only the 150 not accepted before are sent.
        emu.state().end_outage();
        let (dir, list, url) = (d.clone(), list_id.clone(), base.clone());
        let out = tokio::task::spawn_blocking(move || {
            sync_cli(&dir, &url, &list, None).output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let again = sync_report(&d);
        assert_eq!(
            (&again["pending"], &again["sent"], &again["accepted"]),
            (&Value::from(150), &Value::from(150), &Value::from(150)),
            "{again}"
        );
        assert!(again.get("platform_unreachable").is_none(), "{again}");
        assert_list_matches(&emu, &list_id, &d.join("out"));
        emu.shutdown().await;
    }

    /// Nothing listens at the base URL (connection refused, the token request included): the
    /// run gives up after `--give-up-after` with exit status 3, not after the retry budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_gives_up_on_connection_refused_from_the_start() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_owned();
        ingested(&d);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let (dir, url) = (d.clone(), base.clone());
        let out = tokio::task::spawn_blocking(move || {
            sync_cli(&dir, &url, "some-list", Some("1"))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ")
                && last.contains(&format!("the platform at {base} was unreachable for"))
                && last.contains("connection failed")
                && !stderr.contains(SECRET),
            "{stderr}"
        );
    }

    /// Two `dedupd sync` processes of one OAuth client share one org-wide budget through Redis:
    /// the emulator limits all tokens of the client together (per-client scope) to N requests
    /// in any 60 s, and the two processes together need more than N requests, so without a
    /// shared budget they would meet 429s. This test runs a little over a minute by design.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_sharing_redis_stay_within_one_budget() {
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let reachable = std::net::TcpStream::connect_timeout(
            &redis_url
                .trim_start_matches("redis://")
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| "127.0.0.1:6379".parse().unwrap()),
            Duration::from_secs(1),
        )
        .is_ok();
        if !reachable {
            assert!(
                std::env::var("CI").is_err(),
                "Redis at {redis_url} is required under CI=true"
            );
            eprintln!("skipping: no Redis at {redis_url}");
            return;
        }
        const N: u32 = 20;
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let config = ingested(&a);
        ingested(&b);
        let mut cfg = emulator_config(N);
        cfg.rate_limit_scope = RateLimitScope::PerClient;
        let emu = RunningEmulator::start(cfg).await.unwrap();
        let la = create_list(&emu, "a", &config.csv_columns).await;
        let lb = create_list(&emu, "b", &config.csv_columns).await;
        let key = format!("dedupd-test:{{budget}}:{}", std::process::id());
        let base = emu.base_url();
        let spawn = |dir: &Path, list: &str| {
            Command::new(env!("CARGO_BIN_EXE_dedupd"))
                .args(["--quiet", "sync", "--config"])
                .arg(repo().join("examples/feeds.toml"))
                .arg("--state")
                .arg(dir.join("state"))
                .arg("--out")
                .arg(dir.join("sync-out"))
                .args([
                    "--contact-list",
                    list,
                    "--batch-size",
                    "20",
                    "--rate",
                    &N.to_string(),
                ])
                .args(["--redis", &redis_url, "--redis-key", &key])
                .env("GENESYS_BASE_URL", &base)
                .env("GENESYS_CLIENT_ID", ID)
                .env("GENESYS_CLIENT_SECRET", SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (pa, pb) = (spawn(&a, &la), spawn(&b, &lb));
        let outs = tokio::task::spawn_blocking(move || {
            (
                pa.wait_with_output().unwrap(),
                pb.wait_with_output().unwrap(),
            )
        })
        .await
        .unwrap();
        if let Ok(client) = redis::Client::open(redis_url.as_str())
            && let Ok(mut conn) = client.get_connection()
        {
            let _: Result<(), _> = redis::cmd("DEL").arg(&key).query(&mut conn);
        }
        for out in [&outs.0, &outs.1] {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stats = emu.state().stats();
        let total: u64 = stats
            .clients
            .iter()
            .filter(|c| c.client_id == ID)
            .map(|c| c.requests)
            .sum();
        assert!(
            total > u64::from(N),
            "the two processes needed more than one window's budget ({total})"
        );
        assert_eq!(
            stats.rate_limited, 0,
            "together they never exceeded the org budget: {stats:?}"
        );
        assert!(
            stats.max_requests_per_client_in_60s <= u64::from(N),
            "{stats:?}"
        );
        assert_list_matches(&emu, &la, &a.join("out"));
        assert_list_matches(&emu, &lb, &b.join("out"));
        emu.shutdown().await;
    }
}
