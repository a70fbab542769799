//! Issue 16, real-time resolution over real HTTP: `merge plan --resolve-index` builds the index
//! from 90 % of the labelled sample; `dedupd serve --resolve-index` answers
//! `POST /v1/contacts/resolve` for held-out records exactly as the core resolver does in
//! process (one engine); a dry run records nothing; what was recorded survives a restart; bad
//! input is a 422 naming the field.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use dedupd_core::matching::incremental::Status;
use dedupd_core::matching::{MatchConfig, Record, Resolver};
use serde_json::{Value, json};

const COLUMNS: [&str; 11] = [
    "record_id",
    "source",
    "first_name",
    "last_name",
    "email",
    "phone",
    "street",
    "city",
    "region",
    "postcode",
    "country",
];

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(index: &Path) -> Server {
    let snapshot = index.join("window.snapshot");
    serve_with(
        &[
            "--resolve-index",
            index.to_str().unwrap(),
            "--snapshot",
            snapshot.to_str().unwrap(),
        ],
        &[],
    )
}

/// The sample's rows, split: every tenth row (by position) is held out.
fn split_sample(dir: &Path) -> (PathBuf, Vec<Vec<String>>, Vec<Vec<String>>) {
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contacts_20k/contacts_20k.csv");
    let mut reader = csv::Reader::from_path(sample).unwrap();
    let header = reader.headers().unwrap().clone();
    let known_path = dir.join("known.csv");
    let mut writer = csv::Writer::from_path(&known_path).unwrap();
    writer.write_record(&header).unwrap();
    let (mut known, mut held) = (Vec::new(), Vec::new());
    for (i, row) in reader.records().enumerate() {
        let row: Vec<String> = row.unwrap().iter().map(str::to_owned).collect();
        if i % 10 == 3 {
            held.push(row);
        } else {
            writer.write_record(&row).unwrap();
            known.push(row);
        }
    }
    writer.flush().unwrap();
    (known_path, known, held)
}

fn record(row: &[String]) -> Record {
    let raw: [&str; 11] = std::array::from_fn(|i| row[i].as_str());
    Record::from_row(raw, "", Ok(None)).0.unwrap()
}

fn body(row: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for (i, c) in COLUMNS.iter().enumerate() {
        if !row[i].is_empty() {
            m.insert((*c).to_owned(), json!(row[i]));
        }
    }
    Value::Object(m)
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = http.post(url).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_over_http_answers_as_the_core_resolver_and_keeps_what_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (known_path, known, held) = split_sample(dir.path());
    let index = dir.path().join("index");
    let status = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["merge", "plan", "--input"])
        .arg(&known_path)
        .arg("--out")
        .arg(dir.path().join("plan"))
        .arg("--resolve-index")
        .arg(&index)
        .status()
        .unwrap();
    assert!(status.success());
    // The same engine in process, from the same records.
    let mut expected = Resolver::build(
        known.iter().map(|r| record(r)).collect(),
        MatchConfig::default(),
    );
    let server = serve(&index);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/contacts/resolve", server.base);
    let dry = format!("{url}?dry_run=true");

    // A dry run records nothing: the same question twice gets the same answer, and the
    // record is not known afterwards.
    let first = body(&held[0]);
    let (s1, a1) = post(&http, &dry, &first).await;
    let (s2, a2) = post(&http, &dry, &first).await;
    assert_eq!((s1, s2), (200, 200), "{a1}");
    assert_eq!(a1, a2);
    assert_eq!(a1["dry_run"], true);
    assert_ne!(a1["status"], "known");

    // 300 held-out records, one by one: every answer is the in-process resolver's.
    let mut joined = 0;
    let mut refused = 0;
    for row in held.iter().take(300) {
        let raw: [&str; 11] = std::array::from_fn(|i| row[i].as_str());
        let (r, issues) = Record::from_row(raw, "", Ok(None));
        if let Some(issue) = issues.first() {
            // A value that does not normalize: refused, naming the field, recording nothing.
            let (status, got) = post(&http, &url, &body(row)).await;
            assert_eq!(status, 422, "{got}");
            assert_eq!(got["error"]["field"], issue.field, "{got}");
            refused += 1;
            continue;
        }
        let want = expected.record(r.unwrap());
        let (status, got) = post(&http, &url, &body(row)).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["record_id"], row[0].as_str());
        assert_eq!(got["customer"], want.customer.as_str(), "{}: {got}", row[0]);
        assert_eq!(got["status"], json!(want.status), "{}", row[0]);
        assert_eq!(got["members"], want.members, "{}", row[0]);
        assert_eq!(got["absorbed"], json!(want.absorbed), "{}", row[0]);
        if want.status == Status::Joined {
            joined += 1;
            let fields = got["evidence"]["fields"].as_array().unwrap();
            assert!(fields.iter().any(|f| f["level"] == "exact"), "{got}");
            assert!(got["confidence"].as_f64().unwrap() >= 0.5);
        }
    }
    assert!(joined > 50, "only {joined} of 300 joined a known customer");
    assert!(refused < 30, "{refused} of 300 refused");

    // Bad input: a 422 naming the field, never the value.
    let (s, e) = post(
        &http,
        &url,
        &json!({"first_name": "Ann", "phone": "555-01"}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("phone")),
        "{e}"
    );
    assert!(!e.to_string().contains("555-01"));
    let (s, e) = post(&http, &url, &json!({"source": "web"})).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("body")),
        "{e}"
    );
    let (s, e) = post(&http, &url, &json!({"first_name": 7})).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("first_name")),
        "{e}"
    );
    let (s, e) = post(&http, &format!("{url}?dry_run=perhaps"), &first).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("dry_run")),
        "{e}"
    );
    let spec: Value = http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/v1/contacts/resolve"]["post"].is_object());

    // The same new person sent 40 times at once, under 40 record ids: one customer.
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let body = json!({
                    "record_id": format!("burst-{n}"),
                    "first_name": "Philippa",
                    "last_name": "Wolstenholme",
                    "email": "philippa.wolstenholme@mail.example.org",
                    "phone": "+44 20 7946 0321",
                });
                post(&http, &url, &body).await
            })
        })
        .collect();
    let mut customers = std::collections::BTreeSet::new();
    let mut new = 0;
    for t in tasks {
        let (status, got) = t.await.unwrap();
        assert_eq!(status, 200, "{got}");
        new += usize::from(got["status"] == "new");
        customers.insert(got["customer"].as_str().unwrap().to_owned());
    }
    assert_eq!((customers.len(), new), (1, 1), "{customers:?}");

    // What was recorded survives a restart: a recorded record is known, with its customer.
    drop(server);
    let server = serve(&index);
    let url = format!("{}/v1/contacts/resolve", server.base);
    for row in held.iter().take(300).step_by(37) {
        let raw: [&str; 11] = std::array::from_fn(|i| row[i].as_str());
        let (Some(r), issues) = Record::from_row(raw, "", Ok(None)) else {
            continue;
        };
        if !issues.is_empty() {
            continue;
        }
        let want = expected.resolve(&r);
        let (status, got) = post(&http, &url, &body(row)).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["status"], "known", "{got}");
        assert_eq!(got["customer"], want.customer.as_str());
    }
}

/// `merge plan --incremental`: the held-out tenth of the sample resolved against the index
/// built from the rest gives a plan of the customers that changed, each holding a new record;
/// the same file again changes nothing.
#[test]
fn an_incremental_plan_merges_new_records_into_their_customers() {
    use dedupd::jobs::merge_plan::{self as plan, IndexTarget, MergeConfig, Options};
    use dedupd::shared::plan_file::{Plan, PlanFile};

    let dir = tempfile::tempdir().unwrap();
    let (known_path, _, held) = split_sample(dir.path());
    let new_path = dir.path().join("new.csv");
    let mut w = csv::Writer::from_path(&new_path).unwrap();
    w.write_record(COLUMNS.iter().copied().chain(["updated_at"]))
        .unwrap();
    for row in &held {
        w.write_record(row).unwrap();
    }
    w.flush().unwrap();
    let index = dir.path().join("index");
    let options = |input: &Path, out: &str, resolve_index: Option<IndexTarget>| Options {
        input: input.to_owned(),
        config: MergeConfig::default(),
        out: dir.path().join(out),
        html_limit: 10_000,
        resolve_index,
    };
    plan::run(&options(
        &known_path,
        "batch",
        Some(IndexTarget::Dir(index.clone())),
    ))
    .unwrap();
    let report = plan::run_incremental(&options(&new_path, "inc", None), &index, None).unwrap();
    assert_eq!(report.records, held.len());
    assert_eq!(report.known_before, 20_000 - held.len());
    assert_eq!(report.joined + report.new_customers, held.len());
    assert!(report.joined > 300, "{report:?}");
    assert!(report.clusters > 300, "{report:?}");
    let p = Plan::load(&dir.path().join("inc")).unwrap();
    assert_eq!(p.clusters.len(), report.clusters);
    let new_ids: std::collections::HashSet<&str> = held.iter().map(|r| r[0].as_str()).collect();
    for c in &p.clusters {
        assert!(
            c.members
                .iter()
                .any(|m| new_ids.contains(m.record_id.as_str())),
            "{} holds no new record",
            c.cluster_id
        );
        assert!(c.confidence >= 0.5, "{}", c.cluster_id);
        assert!(!c.pairs.is_empty());
    }
    let labels = plan::read_labels(&dir.path().join("inc/clusters.csv")).unwrap();
    assert!(
        labels
            .iter()
            .filter(|(id, _)| new_ids.contains(id.as_str()))
            .count()
            == held.len()
    );
    // The same records again: all known, nothing to merge.
    let again = plan::run_incremental(&options(&new_path, "again", None), &index, None).unwrap();
    assert_eq!((again.already_known, again.clusters), (held.len(), 0));
    // --since: only the records updated at or after it are resolved.
    let since: chrono::DateTime<chrono::Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
    let later = held
        .iter()
        .filter(|r| {
            r[11]
                .parse::<chrono::DateTime<chrono::Utc>>()
                .is_ok_and(|t| t >= since)
        })
        .count();
    assert!(later > 0 && later < held.len(), "{later}");
    let r = plan::run_incremental(&options(&new_path, "since", None), &index, Some(since)).unwrap();
    assert_eq!((r.records, r.before_since), (later, held.len() - later));
}

fn serve_with(args: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dedupd"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("DEDUPD_API_TOKEN")
        .env_remove("DEDUPD_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let base = super::listening_on(&mut child);
    Server { child, base }
}

/// Issue 16: two `serve` processes sharing the index in PostgreSQL, sent the same new person
/// 40 times at once (alternately, under 40 record ids), make one customer of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serves_sharing_the_postgres_index_make_one_customer_of_one_new_person() {
    use dedupd_store::resolution::{PgIndex, ResolutionIndex};

    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("t_resolve_it_{:016x}", fastrand::u64(..));
    let index = match PgIndex::connect_new_schema(&url, &schema).await {
        Ok(i) => i,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: PostgreSQL is not reachable ({e})");
            return;
        }
        Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
    };
    // The index of 5,000 sample records, built by merge plan into the schema.
    let dir = tempfile::tempdir().unwrap();
    let (_, known, _) = split_sample(dir.path());
    let input = dir.path().join("five_thousand.csv");
    let mut w = csv::Writer::from_path(&input).unwrap();
    w.write_record(COLUMNS.iter().copied().chain(["updated_at"]))
        .unwrap();
    for row in known.iter().take(5_000) {
        w.write_record(row).unwrap();
    }
    w.flush().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["merge", "plan", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("plan"))
        .args(["--resolve-postgres", "--resolve-schema", &schema])
        .env("DEDUPD_POSTGRES_URL", &url)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(index.load().await.unwrap().unwrap().entries.len(), 5_000);

    let envs = [("DEDUPD_POSTGRES_URL", url.as_str())];
    let servers: Vec<Server> = (0..2)
        .map(|n| {
            let snap = dir.path().join(format!("w{n}.snapshot"));
            serve_with(
                &[
                    "--resolve-postgres",
                    "--resolve-schema",
                    &schema,
                    "--snapshot",
                    snap.to_str().unwrap(),
                ],
                &envs,
            )
        })
        .collect();
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let http = http.clone();
            let url = format!("{}/v1/contacts/resolve", servers[n % 2].base);
            tokio::spawn(async move {
                let body = json!({
                    "record_id": format!("shared-{n}"),
                    "first_name": "Philippa",
                    "last_name": "Wolstenholme",
                    "email": "philippa.wolstenholme@mail.example.org",
                    "phone": "+44 20 7946 0321",
                });
                post(&http, &url, &body).await
            })
        })
        .collect();
    let mut customers = std::collections::BTreeSet::new();
    let mut new = 0;
    for t in tasks {
        let (status, got) = t.await.unwrap();
        assert_eq!(status, 200, "{got}");
        new += usize::from(got["status"] == "new");
        customers.insert(got["customer"].as_str().unwrap().to_owned());
    }
    assert_eq!((customers.len(), new), (1, 1), "{customers:?}");
    // The shared index holds the 40 records, one customer.
    let loaded = index.load().await.unwrap().unwrap();
    let shared: std::collections::BTreeSet<&str> = loaded
        .entries
        .iter()
        .filter(|e| e.record.id().starts_with("shared-"))
        .map(|e| e.customer.as_str())
        .collect();
    assert_eq!(loaded.entries.len(), 5_040);
    assert_eq!(shared.len(), 1);
    // Each server knows what the other recorded.
    for s in &servers {
        let (status, got) = post(
            &http,
            &format!("{}/v1/contacts/resolve?dry_run=true", s.base),
            &json!({"record_id": "shared-0", "first_name": "Philippa"}),
        )
        .await;
        assert_eq!(
            (status, got["status"].as_str()),
            (200, Some("known")),
            "{got}"
        );
    }
    drop(servers);
    index.drop_schema().await.unwrap();
}
