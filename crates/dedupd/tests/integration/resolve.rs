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

/// The same new person posted 40 times at once under 40 record ids (`{prefix}-{n}`), spread
/// over `urls` in turn: the customers answered and how many answers were `new`.
async fn one_person_at_once(
    http: &reqwest::Client,
    urls: &[String],
    prefix: &str,
) -> (std::collections::BTreeSet<String>, usize) {
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let (http, url) = (http.clone(), urls[n % urls.len()].clone());
            let record_id = format!("{prefix}-{n}");
            tokio::spawn(async move {
                let body = json!({
                    "record_id": record_id,
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
    (customers, new)
}

/// `merge plan` on `input` into `out`, writing the resolution index at `index`.
fn plan_with_index(input: &Path, out: &Path, index: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["merge", "plan", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .arg("--resolve-index")
        .arg(index)
        .status()
        .unwrap();
    assert!(status.success(), "merge plan --resolve-index failed");
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
    plan_with_index(&known_path, &dir.path().join("plan"), &index);
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
    let urls = vec![url.clone()];
    let (customers, new) = one_person_at_once(&http, &urls, "burst").await;
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
    let index = IndexTarget::Dir(index);
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
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("{}/v1/contacts/resolve", s.base))
        .collect();
    let (customers, new) = one_person_at_once(&http, &urls, "shared").await;
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
            &json!({
                "record_id": "shared-0",
                "first_name": "Philippa",
                "last_name": "Wolstenholme",
                "email": "philippa.wolstenholme@mail.example.org",
                "phone": "+44 20 7946 0321",
            }),
        )
        .await;
        assert_eq!(
            (status, got["status"].as_str()),
            (200, Some("known")),
            "{got}"
        );
    }
    // A contact recorded through one server is known to the other's gateway without any
    // request to the other: it follows the shared index's appends.
    let (status, recorded) = post(
        &http,
        &urls[0],
        &json!({
            "record_id": "followed-1",
            "first_name": "Ottoline",
            "last_name": "Featherstonehaugh",
            "email": "ottoline.f@mail.example.org",
            "phone": "+44 20 7946 0577",
        }),
    )
    .await;
    assert_eq!((status, recorded["status"].as_str()), (200, Some("new")));
    let other = &servers[1].base;
    wait_for_records(&http, other, 5_041).await;
    let m = message(&http, other, "email", "Ottoline.F@mail.example.org").await;
    assert_eq!(
        (m["decision"].as_str(), m["customer"].as_str()),
        (Some("PROCESS"), recorded["customer"].as_str()),
        "{m}"
    );
    drop(servers);
    index.drop_schema().await.unwrap();
}

/// Waits until the server at `base` says (`/metrics`) its resolver knows `n` records.
async fn wait_for_records(http: &reqwest::Client, base: &str, n: usize) {
    let want = format!("dedupd_resolve_index_records {n}");
    for _ in 0..1_000 {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == want) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the server at {base} never knew {n} records");
}

/// The known part of the sample plus a few people of our own, written as a CSV for
/// `merge plan`: Annabel with a home and a work e-mail on two records (one customer by her
/// name and phone), Bartholomew alone, two strangers sharing a family mailbox, and Ignatius,
/// whose number is in a range no numbering plan lists as assigned (area code 456).
fn sample_with_people(dir: &Path) -> PathBuf {
    let (_, known, _) = split_sample(dir);
    let path = dir.join("known_and_people.csv");
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(COLUMNS.iter().copied().chain(["updated_at"]))
        .unwrap();
    for row in known.iter().take(6_000) {
        w.write_record(row).unwrap();
    }
    let people: [[&str; 6]; 6] = [
        [
            "gw-a1",
            "Annabel",
            "Whitcombe",
            "annabel.home@mail.example.org",
            "+1 201 336 7089",
            "Hoboken",
        ],
        [
            "gw-a2",
            "Annabel",
            "Whitcombe",
            "annabel@work.example.com",
            "+1 201 336 7089",
            "Hoboken",
        ],
        [
            "gw-b1",
            "Bartholomew",
            "Quince",
            "bart.quince@mail.example.org",
            "+1 201 336 7188",
            "Newark",
        ],
        [
            "gw-s1",
            "Cordelia",
            "Fairweather",
            "family@mail.example.org",
            "",
            "Trenton",
        ],
        [
            "gw-s2",
            "Dmitri",
            "Okonkwo",
            "family@mail.example.org",
            "",
            "Camden",
        ],
        [
            "gw-c1",
            "Ignatius",
            "Pemberton",
            "ignatius.p@mail.example.org",
            "+1 456 555 0199",
            "Paterson",
        ],
    ];
    for [id, first, last, email, phone, city] in people {
        w.write_record([
            id, "crm", first, last, email, phone, "", city, "NJ", "", "US", "",
        ])
        .unwrap();
    }
    w.flush().unwrap();
    path
}

async fn message(http: &reqwest::Client, base: &str, channel: &str, from: &str) -> Value {
    let body = json!({
        "channel": channel,
        "from": from,
        "text": "Where is my refund for order 4471?",
    });
    let (status, got) = post(http, &format!("{base}/v1/messages"), &body).await;
    assert_eq!(status, 200, "{got}");
    got
}

/// Issue 16: with `serve --resolve-index`, the gateway resolves a sender through the
/// resolution index. A message from a known customer's address and one from that customer's
/// other address are duplicates (by e-mail and by SMS); a stranger, a mailbox two customers
/// share and an address no one holds are each their own customer and never suppress one
/// another; a contact recorded through `POST /v1/contacts/resolve` makes its new address the
/// customer's from the next message on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_finds_a_known_customer_by_any_of_its_addresses_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample_with_people(dir.path());
    let index = dir.path().join("index");
    plan_with_index(&input, &dir.path().join("plan"), &index);

    // The contact file and the index cannot both name the gateway's customers.
    let contacts = dir.path().join("contacts.ndjson");
    std::fs::write(
        &contacts,
        "{\"customer_id\":\"C1\",\"email\":\"a@b.test\"}\n",
    )
    .unwrap();
    let both = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--resolve-index"])
        .arg(&index)
        .arg("--contacts")
        .arg(&contacts)
        .output()
        .unwrap();
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("not both"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );

    let server = serve(&index);
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let labels: std::collections::HashMap<String, String> =
        dedupd::jobs::merge_plan::read_labels(&dir.path().join("plan/clusters.csv"))
            .unwrap()
            .into_iter()
            .collect();
    let customer = labels["gw-a1"].clone();
    assert_eq!(
        labels["gw-a2"], customer,
        "the batch run made one customer of her"
    );
    assert_ne!(labels["gw-s1"], labels["gw-s2"], "and two of the family");

    // Her home address first, then her work address and her phone: one customer, duplicates.
    let first = message(&http, &base, "email", "Annabel.Home@mail.example.org").await;
    assert_eq!(
        (first["decision"].as_str(), first["customer"].as_str()),
        (Some("PROCESS"), Some(customer.as_str()))
    );
    let other = message(&http, &base, "email", "annabel@work.example.com").await;
    assert_eq!(
        (other["decision"].as_str(), other["customer"].as_str()),
        (Some("SUPPRESS"), Some(customer.as_str())),
        "{other}"
    );
    assert_eq!(other["fingerprint"], first["fingerprint"]);
    let sms = message(&http, &base, "sms", "(201) 336-7089").await;
    assert_eq!(sms["decision"], "SUPPRESS", "{sms}");

    // A number of a range the numbering plan does not list (456): the index keeps it as the
    // matching engine reads it, and the gateway reads the sender the same way, so it is his.
    let unlisted = message(&http, &base, "sms", "(456) 555-0199").await;
    assert_eq!(
        (unlisted["decision"].as_str(), unlisted["customer"].as_str()),
        (Some("PROCESS"), Some(labels["gw-c1"].as_str())),
        "{unlisted}"
    );

    // Strangers: Bartholomew, the shared family mailbox, and an address no one holds. Each
    // is its own customer: the same text from each is a first message.
    let bart = message(&http, &base, "email", "bart.quince@mail.example.org").await;
    let family = message(&http, &base, "email", "family@mail.example.org").await;
    let nobody = message(&http, &base, "email", "someone.new@mail.example.org").await;
    for m in [&bart, &family, &nobody] {
        assert_eq!(m["decision"], "PROCESS", "{m}");
        assert_ne!(m["customer"].as_str(), Some(customer.as_str()));
    }
    assert_eq!(
        family["customer"], "email:family@mail.example.org",
        "a shared mailbox is no one's"
    );
    assert_eq!(nobody["customer"], "email:someone.new@mail.example.org");
    let bart_customer = bart["customer"].as_str().unwrap().to_owned();
    assert!(!bart_customer.starts_with("email:"), "{bart}");
    // The family mailbox again from one of the two: still its own customer, a duplicate of
    // itself only.
    let again = message(&http, &base, "email", "FAMILY@mail.example.org").await;
    assert_eq!(
        (again["decision"].as_str(), again["customer"].as_str()),
        (Some("SUPPRESS"), Some("email:family@mail.example.org"))
    );

    // Bartholomew's new job: an address no one held, so its own customer until a contact
    // record ties it to him (name and phone), recorded through the resolve endpoint.
    let before = message(&http, &base, "email", "bart.q@newjob.example.com").await;
    assert_eq!(before["decision"], "PROCESS", "{before}");
    assert_eq!(before["customer"], "email:bart.q@newjob.example.com");
    let (status, joined) = post(
        &http,
        &format!("{base}/v1/contacts/resolve"),
        &json!({
            "record_id": "gw-b2",
            "first_name": "Bartholomew",
            "last_name": "Quince",
            "email": "bart.q@newjob.example.com",
            "phone": "+1 201 336 7188",
            "country": "US",
        }),
    )
    .await;
    assert_eq!(
        (status, joined["status"].as_str()),
        (200, Some("joined")),
        "{joined}"
    );
    assert_eq!(joined["customer"].as_str(), Some(bart_customer.as_str()));
    let after = message(&http, &base, "chat", "bart.q@newjob.example.com").await;
    assert_eq!(
        (after["decision"].as_str(), after["customer"].as_str()),
        (Some("SUPPRESS"), Some(bart_customer.as_str())),
        "{after}"
    );
    assert_eq!(after["fingerprint"], bart["fingerprint"]);
}

/// Issue 16: `merge plan --incremental` re-resolves a record whose id the index knows but whose
/// values changed: it leaves its customer for the one its new values match, the report says
/// so, the plan merges it there; the same file again changes nothing. The same on the embedded
/// index and on the shared PostgreSQL one.
#[test]
fn an_incremental_plan_moves_a_changed_record_on_either_index() {
    use dedupd::jobs::merge_plan::IndexTarget;

    let dir = tempfile::tempdir().unwrap();
    moves_a_changed_record(dir.path(), IndexTarget::Dir(dir.path().join("index")));

    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("t_resolve_inc_{:016x}", fastrand::u64(..));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let index = match rt.block_on(dedupd_store::resolution::PgIndex::connect_new_schema(
        &url, &schema,
    )) {
        Ok(i) => i,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the PostgreSQL half: PostgreSQL is not reachable ({e})");
            return;
        }
        Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
    };
    let pg = tempfile::tempdir().unwrap();
    moves_a_changed_record(
        pg.path(),
        IndexTarget::Postgres {
            url,
            schema: Some(schema),
        },
    );
    rt.block_on(index.drop_schema()).unwrap();
}

fn moves_a_changed_record(dir: &Path, target: dedupd::jobs::merge_plan::IndexTarget) {
    use dedupd::jobs::merge_plan::{self as plan, IndexTarget, MergeConfig, Options};
    use dedupd::shared::plan_file::{Plan, PlanFile};

    let (_, known, _) = split_sample(dir);
    let known: Vec<Vec<String>> = known.into_iter().take(6_000).collect();
    let write = |name: &str, rows: &[&Vec<String>]| {
        let path = dir.join(name);
        let mut w = csv::Writer::from_path(&path).unwrap();
        w.write_record(COLUMNS.iter().copied().chain(["updated_at"]))
            .unwrap();
        for row in rows {
            w.write_record(row.iter()).unwrap();
        }
        w.flush().unwrap();
        path
    };
    let options = |input: &Path, out: &str, resolve_index: Option<IndexTarget>| Options {
        input: input.to_owned(),
        config: MergeConfig::default(),
        out: dir.join(out),
        html_limit: 10_000,
        resolve_index,
    };
    let batch = write("known.csv", &known.iter().collect::<Vec<_>>());
    plan::run(&options(&batch, "batch", Some(target.clone()))).unwrap();
    let labels: std::collections::HashMap<String, String> =
        plan::read_labels(&dir.join("batch/clusters.csv"))
            .unwrap()
            .into_iter()
            .collect();
    let mut sizes: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for l in labels.values() {
        *sizes.entry(l.as_str()).or_default() += 1;
    }
    // x: in a customer of two; z: alone, with a phone and an e-mail.
    let x = known
        .iter()
        .find(|r| sizes[labels[&r[0]].as_str()] == 2 && !r[11].is_empty())
        .unwrap();
    let z = known
        .iter()
        .find(|r| sizes[labels[&r[0]].as_str()] == 1 && !r[4].is_empty() && !r[5].is_empty())
        .unwrap();
    let unchanged = known.iter().find(|r| r[0] != x[0] && r[0] != z[0]).unwrap();
    // x now carries z's values (a CRM fixed a record filed under the wrong person), newer.
    let mut x_now = z.clone();
    x_now[0].clone_from(&x[0]);
    x_now[11] = "2026-12-01T00:00:00Z".to_owned();
    let changes = write("changes.csv", &[&x_now, unchanged]);
    let report = plan::run_incremental(&options(&changes, "inc", None), &target, None).unwrap();
    assert_eq!(
        (report.records, report.changed, report.already_known),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!((report.joined, report.new_customers), (0, 0));
    assert_eq!(
        report.moved,
        vec![plan::Moved {
            record_id: x[0].clone(),
            from: labels[&x[0]].clone(),
            to: labels[&z[0]].clone(),
        }]
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("inc/report.json")).unwrap()).unwrap();
    assert_eq!(written["moved"][0]["record_id"], x[0].as_str());
    // The plan merges x into z's customer.
    let p = Plan::load(&dir.join("inc")).unwrap();
    assert_eq!(p.clusters.len(), 1);
    let mut ids: Vec<&str> = p.clusters[0]
        .members
        .iter()
        .map(|m| m.record_id.as_str())
        .collect();
    ids.sort_unstable();
    let mut want = vec![x[0].as_str(), z[0].as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    // The same file again: both known as they are now.
    let again = plan::run_incremental(&options(&changes, "again", None), &target, None).unwrap();
    assert_eq!(
        (again.changed, again.already_known, again.clusters),
        (0, 2, 0),
        "{again:?}"
    );
    // The old values (older than what the index holds) change nothing either.
    let old = write("old.csv", &[x]);
    let stale = plan::run_incremental(&options(&old, "stale", None), &target, None).unwrap();
    assert_eq!((stale.changed, stale.already_known), (0, 1), "{stale:?}");
}
