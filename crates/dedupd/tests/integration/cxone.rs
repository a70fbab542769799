//! The jobs on NICE CXone, end to end: the real binary over real HTTP against the CXone
//! emulator, with its fault profile (`fault-profiles/cxone-chaos.toml`) and `kill -9` loops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use dedupd_emulator::cxone::{
    CxoneEmulatorConfig, CxoneSeed, CxoneState, RunningCxoneEmulator, SeedCustomer, SeedDncGroup,
};
use dedupd_emulator::{FaultProfile, RateLimitScope};
use serde_json::Value;

const CLIENT_ID: &str = "dedupd-demo";
const CLIENT_SECRET: &str = "dedupd-demo-secret";
const KEY_ID: &str = "dedupd-demo-key";
const KEY_SECRET: &str = "dedupd-demo-key-secret";

impl super::Outage for CxoneState {
    fn outage_after(&self, after: u64) {
        CxoneState::outage_after(self, after);
    }
    fn end_outage(&self) {
        CxoneState::end_outage(self);
    }
    fn refused(&self) -> u64 {
        self.stats()
            .faults_injected
            .get("outage")
            .copied()
            .unwrap_or(0)
    }
}

/// A bulk test's emulator: the budget raised so that the run measures dedupd, not the wait.
async fn emulator() -> RunningCxoneEmulator {
    RunningCxoneEmulator::start(CxoneEmulatorConfig {
        rate_limit_per_minute: 1_000_000,
        rate_limit_scope: RateLimitScope::default(),
        ..CxoneEmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// The acceptance profile, with its 429s answered without a long `Retry-After` (a bulk run
/// would otherwise spend its time waiting out seconds-long pauses; the client's handling of
/// `Retry-After` is tested in `crates/cxone`): every other rule as in the file.
fn chaos() -> FaultProfile {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../emulator/fault-profiles/cxone-chaos.toml");
    let mut p = FaultProfile::from_file(&path).unwrap();
    for r in &mut p.rules {
        if r.retry_after_secs.is_some_and(|s| s > 0) {
            r.retry_after_secs = Some(0);
        }
    }
    p
}

/// `dedupd` with the CXone credentials of the emulator in its environment.
fn dedupd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
    c.env("CXONE_CLIENT_ID", CLIENT_ID)
        .env("CXONE_CLIENT_SECRET", CLIENT_SECRET)
        .env("CXONE_ACCESS_KEY_ID", KEY_ID)
        .env("CXONE_ACCESS_KEY_SECRET", KEY_SECRET)
        .env_remove("CXONE_TENANT_ID")
        .env_remove("CXONE_ISSUER")
        .env_remove("CXONE_API_ENDPOINT")
        .env_remove("CXONE_DFO_BASE")
        .env_remove("CXONE_REQUESTS_PER_MINUTE")
        .env_remove("DEDUPD_GIVE_UP_AFTER")
        .env_remove("DEDUPD_PLATFORM")
        .args(["--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The 20k sample's records as customer cards (id = record id; e-mail and phone identities).
fn sample_cards() -> Vec<SeedCustomer> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contacts_20k/contacts_20k.csv");
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| {
            let r = r.unwrap();
            SeedCustomer {
                id: Some(r[0].to_owned()),
                first_name: non_empty(&r[2]),
                surname: non_empty(&r[3]),
                emails: non_empty(&r[4]).into_iter().collect(),
                phones: non_empty(&r[5]).into_iter().collect(),
                created_at: non_empty(&r[11]),
                ..SeedCustomer::default()
            }
        })
        .collect()
}

/// The 20k sample's cards, seeded through the emulator's admin seed, planned with
/// `merge plan --from-cxone`, then merged under the fault profile by runs `kill -9`ed at
/// seeded random points, and a last run left to finish: every planned cluster ends as one live
/// card (its survivor) with every other member merged into it, each once, nothing
/// quarantined, nothing left, and the resolved values written on the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_the_20k_sample_is_planned_and_merged_once_each_under_faults_and_kills() {
    let emu = emulator().await;
    let cards = sample_cards();
    assert_eq!(cards.len(), 20_000);
    emu.state()
        .seed(&CxoneSeed {
            customers: cards,
            ..CxoneSeed::default()
        })
        .unwrap();
    let base = emu.base_url();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_owned();

    let plan = dedupd()
        .args([
            "merge",
            "plan",
            "--from-cxone",
            "--base-url",
            &base,
            "--rate",
            "1000000",
            "--out",
        ])
        .arg(d.join("plan"))
        .output()
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let planned = json_file(&d.join("plan/plan.json"));
    let clusters: Vec<(String, Vec<String>)> = planned["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["survivor"].as_str().unwrap().to_owned(),
                c["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["record_id"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert!(
        clusters.len() > 1_000,
        "the sample's duplicates are found: {}",
        clusters.len()
    );
    assert_eq!(planned["input"], "cxone:customers");

    emu.state().set_faults(chaos());
    let (seed, state) = (super::kill_seed(), emu.state());
    let dir = d.clone();
    let kills = tokio::task::spawn_blocking(move || {
        let apply = || {
            let mut c = dedupd();
            c.args([
                "merge",
                "apply",
                "--platform",
                "cxone",
                "--approve-all",
                "--plan",
            ])
            .arg(dir.join("plan"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--out")
            .arg(dir.join("out"))
            .args([
                "--base-url",
                &base,
                "--rate",
                "1000000",
                "--concurrency",
                "8",
            ])
            .stderr(Stdio::null());
            c
        };
        // Each run is killed after 0–1500 requests: pre-flights, absorbed marks, merges,
        // read-backs and value writes, mid-cluster as often as not.
        let mut killed = Vec::new();
        for after in super::kill_points(seed, 8, 1_500) {
            let finished = super::kill_after_requests(&state, after, &mut apply());
            killed.push((after, finished));
        }
        // Under the faults a run may leave clusters for the next (an outcome that stayed
        // unknown, retries run out): exit status 4, run again, as an operator would.
        let mut runs = Vec::new();
        for _ in 0..4 {
            let out = apply().stderr(Stdio::piped()).output().unwrap();
            let done = out.status.success();
            runs.push((out.status, String::from_utf8_lossy(&out.stderr).into_owned()));
            if done {
                return killed;
            }
        }
        panic!("the runs after the kills never completed: {runs:?}; kills {killed:?} (DEDUPD_KILL_SEED={seed})");
    })
    .await
    .unwrap();
    assert!(
        kills.iter().filter(|(_, finished)| !finished).count() >= 4,
        "most runs were killed mid-way: {kills:?} (DEDUPD_KILL_SEED={seed})"
    );

    let report = json_file(&d.join("out/apply_report.json"));
    assert_eq!(report["remaining"], 0, "{report} (DEDUPD_KILL_SEED={seed})");
    assert_eq!(
        report["quarantined_contacts"], 0,
        "{report} (DEDUPD_KILL_SEED={seed})"
    );
    let st = emu.state();
    let mut seen = BTreeSet::new();
    for (survivor, members) in &clusters {
        let card = st
            .customer(survivor)
            .unwrap_or_else(|| panic!("survivor {survivor} exists (DEDUPD_KILL_SEED={seed})"));
        assert!(
            card.get("mergedInto").is_none_or(Value::is_null),
            "survivor {survivor} is live: {card} (DEDUPD_KILL_SEED={seed})"
        );
        for m in members {
            assert!(seen.insert(m.clone()), "{m} is in one cluster");
            if m != survivor {
                assert_eq!(
                    st.merged_into(m).as_deref(),
                    Some(survivor.as_str()),
                    "{m} merged into its survivor (DEDUPD_KILL_SEED={seed})"
                );
            }
        }
    }
    // Once each: one merge applied per merged-away member, whatever the retries and kills.
    let merged_away = st.customers(true).len() - st.customers(false).len();
    let members: usize = clusters.iter().map(|(_, m)| m.len() - 1).sum();
    assert_eq!(merged_away, members, "(DEDUPD_KILL_SEED={seed})");
    emu.shutdown().await;
}

/// Ingest's contacts synced into a Personal Connection calling list created by dedupd, under
/// the fault profile, by runs `kill -9`ed at seeded random points and a last run left to
/// finish: the list holds each callable contact exactly once (no duplicate externalId, none
/// missing, none extra), the do-not-call numbers are in the DNC group and off the list, and no
/// upload started the skill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_sync_leaves_the_calling_list_exact_after_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_owned();
    super::ingest_with(
        &super::repo().join("examples/feeds.toml"),
        &d.join("state"),
        &d.join("out"),
    );
    let contacts = super::lines(&d.join("out/contacts.ndjson"));
    let emu = emulator().await;
    let group = emu
        .state()
        .seed(&CxoneSeed {
            dnc_groups: vec![SeedDncGroup {
                dnc_group_name: "dedupd do-not-call".into(),
                ..SeedDncGroup::default()
            }],
            ..CxoneSeed::default()
        })
        .unwrap()
        .dnc_groups[0];
    emu.state().set_faults(chaos());
    let base = emu.base_url();
    let (seed, state) = (super::kill_seed(), emu.state());
    let dir = d.clone();
    let kills = tokio::task::spawn_blocking(move || {
        let sync = || {
            let mut c = dedupd();
            c.args(["sync", "--platform", "cxone", "--config"])
                .arg(super::repo().join("examples/feeds.toml"))
                .arg("--state")
                .arg(dir.join("state"))
                .arg("--out")
                .arg(dir.join("sync-out"))
                .args(["--create-list", "dedupd-it", "--skill-id", "4242"])
                .args(["--dnc-group-id", &group.to_string()])
                .args(["--base-url", &base, "--rate", "1000000"])
                .args(["--batch-size", "10", "--concurrency", "2"])
                .stderr(Stdio::null());
            c
        };
        // Each run is killed after 0–40 requests: the list lookup or creation, removals, DNC
        // writes, uploads and job polls.
        let mut killed = Vec::new();
        for after in super::kill_points(seed, 10, 40) {
            let finished = super::kill_after_requests(&state, after, &mut sync());
            killed.push((after, finished));
        }
        // Faults can leave rows pending (an upload whose job could not be found): a run or two
        // more, as an operator would, until the report says nothing is left.
        for _ in 0..5 {
            let status = sync().status().unwrap();
            let report = json_file(&dir.join("sync-out/sync_report.json"));
            if status.success() && report["remaining"] == 0 {
                return killed;
            }
        }
        panic!("the runs after the kills never finished: {killed:?} (DEDUPD_KILL_SEED={seed})");
    })
    .await
    .unwrap();
    assert!(
        kills.iter().filter(|(_, finished)| !finished).count() >= 5,
        "most runs were killed mid-way: {kills:?} (DEDUPD_KILL_SEED={seed})"
    );

    let st = emu.state();
    let lists: Vec<Value> = st
        .calling_lists()
        .into_iter()
        .filter(|l| l["listName"] == "dedupd-it")
        .collect();
    assert_eq!(
        lists.len(),
        1,
        "one list created: {lists:?} (DEDUPD_KILL_SEED={seed})"
    );
    let list = &lists[0];
    let got: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["externalId"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = got.iter().copied().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "no externalId twice (DEDUPD_KILL_SEED={seed})"
    );
    let dnc = |c: &Value| c["do_not_call"].as_bool().unwrap();
    let want: BTreeSet<&str> = contacts
        .iter()
        .filter(|c| !dnc(c))
        .map(|c| c["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        unique, want,
        "the list is exactly the callable contacts (DEDUPD_KILL_SEED={seed})"
    );
    assert_eq!(list["skillStarted"], false);
    assert!(st.upload_jobs().iter().all(|j| j["startSkill"] == false));

    let groups = st.dnc_groups();
    let g = groups.iter().find(|g| g["dncGroupId"] == group).unwrap();
    let numbers: BTreeSet<String> = g["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| dedupd_cxone::dnc_digits(r["phoneNumber"].as_str().unwrap()))
        .collect();
    let dnc_phones: BTreeMap<&str, String> = contacts
        .iter()
        .filter(|c| dnc(c))
        .filter_map(|c| {
            let p = c["phone_e164"].as_str().filter(|p| !p.is_empty())?;
            Some((
                c["external_id"].as_str().unwrap(),
                dedupd_cxone::dnc_digits(p),
            ))
        })
        .collect();
    assert!(
        !dnc_phones.is_empty(),
        "the sample has do-not-call contacts with phones"
    );
    for (id, digits) in &dnc_phones {
        assert!(
            numbers.contains(digits),
            "{id}: its number is in the DNC group"
        );
    }
    emu.shutdown().await;
}

/// The CXone platform as `dedupd` builds it from `--platform cxone --base-url` and the
/// environment (here given), with retries fast enough for a test.
fn platform(emu: &RunningCxoneEmulator) -> dedupd::shared::platform::Platform {
    use dedupd::shared::platform::{Platform, PlatformArgs, PlatformKind};
    let args = PlatformArgs {
        kind: PlatformKind::Cxone,
        base_url: Some(emu.base_url()),
        region: None,
        client_id: None,
        rate: 1_000_000,
        redis: None,
        redis_key: None,
        give_up_after: None,
        skill_id: None,
        dnc_group_id: None,
    };
    let env = |n: &str| {
        let v = match n {
            "CXONE_CLIENT_ID" => CLIENT_ID,
            "CXONE_CLIENT_SECRET" => CLIENT_SECRET,
            "CXONE_ACCESS_KEY_ID" => KEY_ID,
            "CXONE_ACCESS_KEY_SECRET" => KEY_SECRET,
            _ => return None,
        };
        Some(v.to_owned())
    };
    match args.platform_with(false, 0, env).unwrap() {
        Platform::Cxone(mut c) => {
            c.config.retry = dedupd_cxone::RetryPolicy {
                base_delay: std::time::Duration::from_millis(5),
                max_delay: std::time::Duration::from_millis(50),
                max_total: std::time::Duration::from_secs(20),
                max_attempts: 12,
            };
            Platform::Cxone(c)
        }
        other => panic!("not CXone: {other:?}"),
    }
}

const CHANNEL: &str = "chat_dedupd_byoc";

fn seed_channel(emu: &RunningCxoneEmulator) {
    emu.state()
        .seed(&CxoneSeed {
            channels: vec![serde_json::json!({
                "id": CHANNEL,
                "idOnExternalPlatform": "+13175550100",
                "channelIntegrationId": "byoc-1",
                "realExternalPlatformId": "custom",
                "name": "dedupd SMS",
                "hasOutboundFlow": true,
                "isPrivate": false,
                "hasTreeStructure": false,
            })],
            ..CxoneSeed::default()
        })
        .unwrap();
}

/// Polls `ok` every 20 ms for at most 60 s (a condition wait).
async fn wait_for(what: &str, ok: impl Fn() -> bool) {
    for _ in 0..3_000 {
        if ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for {what}");
}

/// The sample message stream through the gateway, forwarding to CXone's BYOC channel (the
/// forwarder `serve --forward cxone --channel-id` builds) under the fault profile: one BYOC
/// inbound message per PROCESS decision, its `idOnExternalPlatform` the message id, none for a
/// SUPPRESS; every duplicate recorded on the first message's customer card (custom fields),
/// asynchronously with retry. The profile's 5xx answer reads only here: a BYOC post refused
/// with a 5xx *before* the work ends `outcome unknown` and is never resent (at most once), so
/// the forward route gets the rest of the profile (429s, 504 after the work, token expiry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_the_sample_stream_is_forwarded_once_per_process_and_duplicates_recorded() {
    use dedupd_gateway::forward::ATTR_COUNT;
    use dedupd_gateway::{ContactIndex, ForwardConfig, Forwarder, Gateway, GatewayConfig};
    use dedupd_store::window::{EmbeddedWindow, Window};
    use std::sync::Arc;

    let emu = emulator().await;
    seed_channel(&emu);
    let mut faults = chaos();
    for r in &mut faults.rules {
        if r.kind == dedupd_emulator::FaultKind::ServerError {
            r.methods = vec!["GET".into(), "PUT".into()];
        }
    }
    emu.state().set_faults(faults);
    let ingress = platform(&emu).message_ingress(CHANNEL).await.unwrap();
    let window = Window::Embedded(Arc::new(EmbeddedWindow::new(100_000)));
    let (forwarder, _worker) = Forwarder::start(ingress, window.clone(), ForwardConfig::default());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/fixtures");
    let contacts = ContactIndex::load_ndjson(&fixtures.join("contacts.ndjson"), "US".parse().ok())
        .unwrap()
        .0;
    let gateway = Gateway::new(
        GatewayConfig::default(),
        contacts,
        window,
        Some(forwarder.clone()),
    );
    let app = dedupd_http::compose(
        vec![gateway.api(dedupd_http::Auth::open(1 << 20))],
        gateway.health(),
        dedupd_http::metrics::install(),
        &dedupd_http::ServiceOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let stream = super::lines(&fixtures.join("messages.ndjson"));
    let mut process = Vec::new();
    let mut suppressed_of: BTreeMap<String, u64> = BTreeMap::new();
    for m in &stream {
        let id = format!("sample-{}", m["seq"]);
        let mut body = serde_json::json!({
            "channel": m["channel"], "from": m["address"], "message_id": id,
        });
        if let Some(b64) = m.get("body_latin1_b64").and_then(Value::as_str) {
            body["body_base64"] = b64.into();
            body["charset"] = "iso-8859-1".into();
        } else {
            body["text"] = m["body"].clone();
        }
        let answer: Value = http
            .post(format!("http://{addr}/v1/messages"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let decision = answer["decision"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: {answer}"));
        assert_eq!(
            decision, m["expect"],
            "{id}: the sample's expected decision"
        );
        match decision {
            "PROCESS" => process.push(id),
            "SUPPRESS" => {
                let first = answer["duplicate_of"]["message_id"]
                    .as_str()
                    .unwrap_or_default();
                *suppressed_of.entry(first.to_owned()).or_default() += 1;
            }
            other => panic!("{id}: {other}"),
        }
    }
    assert!(!suppressed_of.is_empty(), "the sample has duplicates");
    let n = process.len() as u64;
    wait_for("every PROCESS message forwarded", || {
        let s = forwarder.stats();
        s.sent + s.failed + s.outcome_unknown >= n
    })
    .await;
    let stats = forwarder.stats();
    assert_eq!(stats.sent, n, "{stats:?}");

    let st = emu.state();
    let inbound: Vec<Value> = st
        .messages()
        .into_iter()
        .filter(|m| m["direction"] == "inbound")
        .collect();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &inbound {
        *by_id
            .entry(m["idOnExternalPlatform"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let want: BTreeMap<String, usize> = process.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(
        by_id, want,
        "one BYOC message per PROCESS, keyed by the message id"
    );

    // Each first message's card carries a note of its duplicates, once the retries are
    // through. A card is one per customer: when its customer wrote two first messages, the
    // note names the case it is about and counts that one's duplicates.
    let case_of: BTreeMap<&str, (String, String)> = inbound
        .iter()
        .map(|m| {
            (
                m["idOnExternalPlatform"].as_str().unwrap(),
                (
                    m["contactNumber"].to_string().trim_matches('"').to_owned(),
                    m["customerId"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let dups_by_case: BTreeMap<&str, u64> = suppressed_of
        .iter()
        .map(|(first, n)| (case_of[first.as_str()].0.as_str(), *n))
        .collect();
    let field = |card: &Value, name: &str| -> Option<String> {
        card["customFields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["ident"] == name)
            .and_then(|f| f["value"].as_str())
            .map(str::to_owned)
    };
    let count_field = dedupd_cxone::seams::messaging::field_ident(ATTR_COUNT);
    let case_field = dedupd_cxone::seams::messaging::CASE_FIELD;
    let settled = || -> Result<(), String> {
        for first in suppressed_of.keys() {
            let (_, customer) = &case_of[first.as_str()];
            let card = st.customer(customer).unwrap();
            let (Some(case), Some(count)) = (field(&card, case_field), field(&card, &count_field))
            else {
                return Err(format!("{first}: no note on card {card}"));
            };
            let want = dups_by_case.get(case.as_str()).copied().unwrap_or(0);
            if count != want.to_string() {
                return Err(format!(
                    "{first}: card {card} counts {count} for case {case}, which has {want}"
                ));
            }
        }
        Ok(())
    };
    let mut last = settled();
    for _ in 0..3_000 {
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        last = settled();
    }
    assert_eq!(last, Ok(()), "forwarder {:?}", forwarder.stats());
    server.abort();
    emu.shutdown().await;
}

/// 1,000 notifications through the `cxone_dfo` provider: two `dedupd relay` processes on one
/// PostgreSQL outbox, each `kill -9`-ed at seeded random moments and restarted, DFO answering
/// with the fault profile (504 after sending, 5xx, 429s, 30 s tokens). CXone takes no
/// idempotency key: every ambiguous send is read back by its thread (`dedupd-n-{id}`) before
/// anything is sent again. Every notification ends delivered, with exactly one outbound
/// message on its thread: never two to a customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_notifications_are_delivered_exactly_once_with_ambiguous_answers_and_killed_relays() {
    use dedupd_core::notification::{Channel, NotificationRequest, Status, fingerprint};
    use dedupd_store::outbox::{
        AcceptOptions, GuardMode, NewNotification, Outbox, OutboxStore, PgOutbox, pg_test_url,
    };
    use std::process::Child;
    use std::time::{Duration, Instant};

    const TOTAL: u64 = 1_000;
    let url = pg_test_url();
    let schema = format!("t_cxone_{:016x}", fastrand::u64(..));
    let pg = match PgOutbox::connect_new_schema(&url, &schema, 8, Default::default()).await {
        Ok(pg) => pg,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: PostgreSQL is not reachable ({e})");
            return;
        }
        Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
    };
    let outbox = Outbox::Postgres(pg.clone());
    let emu = emulator().await;
    seed_channel(&emu);
    emu.state().set_faults(chaos());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[notifications]
[notifications.channels]
sms = "cxone"
[notifications.providers.cxone]
type = "cxone_dfo"
channels = {{ sms = "{CHANNEL}" }}
[notifications.relay]
max_attempts = 100
base_delay_ms = 50
max_delay_ms = 500
lease_secs = 3
request_timeout_secs = 2
reconcile_after_secs = 1
batch = 16
poll_ms = 50
"#
        ),
    )
    .unwrap();
    let base = emu.base_url();
    let (cfg_path, pg_url, schema_name) = (config.clone(), url.clone(), schema.clone());
    let cmd = move || {
        let mut c = dedupd();
        c.args(["relay", "--config"])
            .arg(&cfg_path)
            .args(["--postgres", &pg_url, "--postgres-schema", &schema_name])
            .env("CXONE_ISSUER", &base)
            .env("CXONE_API_ENDPOINT", &base)
            .env("CXONE_DFO_BASE", &base)
            .env("CXONE_REQUESTS_PER_MINUTE", "1000000")
            .stderr(Stdio::null());
        c
    };
    let mut children: [Child; 2] = [cmd().spawn().unwrap(), cmd().spawn().unwrap()];
    let notification = |i: u64| {
        let req = NotificationRequest {
            channel: Channel::Sms,
            to: format!("+1415555{:04}", i),
            text: format!("Order {i} has shipped"),
            template: None,
            customer_id: Some(format!("C-{i}")),
            event_type: Some("order_shipped".into()),
            provider: None,
            not_after: None,
        };
        let request = serde_json::to_value(&req).unwrap();
        NewNotification {
            key: format!("order-{i}"),
            id: format!("ntf_cx_{i:04}"),
            fingerprint: fingerprint(&request),
            request,
            channel: req.channel.as_str().into(),
            provider: "cxone".into(),
            guard_key: None,
            not_after: None,
        }
    };
    let outbound = |st: &CxoneState| -> BTreeMap<String, u32> {
        let mut by_thread = BTreeMap::new();
        for m in st.messages() {
            if m["direction"] == "outbound" {
                *by_thread
                    .entry(
                        m["threadIdOnExternalPlatform"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                    .or_default() += 1;
            }
        }
        by_thread
    };

    // Ten waves of 100; after each, one relay is killed once the platform has seen a seeded
    // number of outbound sends more, and restarted.
    let seed = super::kill_seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let opts = AcceptOptions {
        guard: GuardMode::Off,
        ..AcceptOptions::default()
    };
    let st = emu.state();
    let sends = |st: &CxoneState| -> u64 {
        st.stats()
            .requests_by_route
            .get("POST /dfo/3.0/channels/{channelId}/outbound")
            .copied()
            .unwrap_or(0)
    };
    let mut kills = Vec::new();
    for wave in 0..10 {
        let start = sends(&st);
        for i in wave * 100..(wave + 1) * 100 {
            outbox
                .accept(notification(i), opts, chrono::Utc::now())
                .await
                .unwrap();
        }
        let after = rng.u64(1..=50);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sends(&st) < start + after {
            let counts = outbox.counts().await.unwrap();
            if counts.get(&Status::Pending).copied().unwrap_or(0)
                + counts.get(&Status::Sending).copied().unwrap_or(0)
                == 0
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no progress: {counts:?} (DEDUPD_KILL_SEED={seed})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let which = rng.usize(..2);
        children[which].kill().unwrap(); // SIGKILL
        children[which].wait().unwrap();
        children[which] = cmd().spawn().unwrap();
        kills.push((wave, after));
    }

    super::until_relays_settle(&outbox, Duration::from_secs(90), || {
        format!("kills {kills:?} (DEDUPD_KILL_SEED={seed})")
    })
    .await;
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }

    let by_thread = outbound(&st);
    for i in 0..TOTAL {
        let n = notification(i);
        let stored = outbox
            .get(&n.key, chrono::Utc::now())
            .await
            .unwrap()
            .unwrap();
        let sent = by_thread
            .get(&dedupd_cxone::seams::notify::thread_id(&n.id))
            .copied()
            .unwrap_or(0);
        assert_eq!(
            sent, 1,
            "{}: {sent} messages to the customer (DEDUPD_KILL_SEED={seed})",
            n.key
        );
        assert_eq!(
            stored.status,
            Status::Delivered,
            "{}: {:?} (DEDUPD_KILL_SEED={seed})",
            n.key,
            stored.last_error
        );
    }
    let injected = st.stats().faults_injected;
    assert!(
        injected
            .get("gateway_timeout_applied")
            .copied()
            .unwrap_or(0)
            > 0,
        "no 504-after-sending was injected: {injected:?}"
    );
    emu.shutdown().await;
    pg.drop_schema().await.unwrap();
}
