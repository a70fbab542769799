//! `dedupd merge apply` over real HTTP against the emulator: clean apply, dry run, 409
//! isolation, 504-but-applied, already merged, active associations, chunked clusters, two
//! concurrent appliers, and a `kill -9` loop with the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use dedupd::jobs::merge_apply::{self as apply, Approve, Options, Report};
use dedupd::shared::plan_file::{
    Cluster, Fields, Member, PLAN_VERSION, Plan, PlanFile, cluster_id,
};
use dedupd::shared::platform::Platform;
use dedupd_emulator::{EmulatorConfig, FaultKind, FaultProfile, FaultRule, RunningEmulator};
use dedupd_genesys::{
    ClientConfig, Endpoint, ExternalContact, GenesysClient, OpenIdType, OpenInboundChannel,
    OpenInboundMessage, OpenMessagingFrom, PhoneNumber, RetryPolicy, SecretString,
};
use serde_json::Value;

pub(super) const ID: &str = "merge-test";
pub(super) const SECRET: &str = "merge-test-secret";
/// Setup calls use their own client and token, so they never touch the budget under test.
const SETUP_ID: &str = "merge-test-setup";
const MERGE_ROUTE: &str = "POST /api/v2/externalcontacts/contacts/merge";

pub(super) fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        rate_limit_per_minute: 60_000,
        clients: vec![(ID.into(), SECRET.into()), (SETUP_ID.into(), SECRET.into())],
        seed: 5,
        ..EmulatorConfig::default()
    }
}

fn client_config(emu: &RunningEmulator, client_id: &str, rate: u32) -> ClientConfig {
    let mut c = ClientConfig::new(
        Endpoint::base_url(&emu.base_url()).unwrap(),
        client_id,
        SecretString::from(SECRET),
    );
    c.requests_per_minute = rate;
    c.retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(300),
        max_total: Duration::from_secs(60),
        max_attempts: 12,
    };
    c
}

pub(super) async fn setup_client(emu: &RunningEmulator) -> GenesysClient {
    GenesysClient::new(client_config(emu, SETUP_ID, 60_000))
        .await
        .unwrap()
}

/// Creates `sizes.len()` clusters of contacts (cluster `c`, member `m` gets e-mail
/// `p{c}.{m}@example.com` and phone `+1555{c:03}{m:04}`) and returns their ids per cluster.
pub(super) async fn seed(setup: &GenesysClient, sizes: &[usize]) -> Vec<Vec<String>> {
    let api = setup.external_contacts();
    let mut out = Vec::new();
    for (c, &n) in sizes.iter().enumerate() {
        let mut ids = Vec::new();
        for m in 0..n {
            let contact = ExternalContact {
                first_name: Some(format!("First{c}")),
                last_name: Some(format!("Last{c}")),
                work_email: Some(format!("p{c}.{m}@example.com")),
                cell_phone: Some(PhoneNumber::e164(format!("+1555{c:03}{m:04}"))),
                ..ExternalContact::default()
            };
            ids.push(api.create(&contact).await.unwrap().id.unwrap());
        }
        out.push(ids);
    }
    out
}

/// A plan with one cluster per id list: survivor = first id, resolved = the survivor's values,
/// the other e-mails and phones as extra values.
pub(super) fn write_plan(dir: &Path, clusters: &[Vec<String>]) {
    let clusters = clusters
        .iter()
        .enumerate()
        .map(|(c, ids)| {
            let members: Vec<Member> = ids
                .iter()
                .enumerate()
                .map(|(m, id)| Member {
                    record_id: id.clone(),
                    source: Some("crm".into()),
                    updated_at: Some(Utc::now()),
                    fields: Fields {
                        first_name: Some(format!("First{c}")),
                        last_name: Some(format!("Last{c}")),
                        email: Some(format!("p{c}.{m}@example.com")),
                        phone: Some(format!("+1555{c:03}{m:04}")),
                        ..Fields::default()
                    },
                })
                .collect();
            let resolved = Fields {
                country: Some("US".into()),
                ..members[0].fields.clone()
            };
            let extra: BTreeMap<String, Vec<String>> = [
                (
                    "email".to_owned(),
                    members[1..]
                        .iter()
                        .filter_map(|m| m.fields.email.clone())
                        .collect(),
                ),
                (
                    "phone".to_owned(),
                    members[1..]
                        .iter()
                        .filter_map(|m| m.fields.phone.clone())
                        .collect(),
                ),
            ]
            .into();
            Cluster {
                cluster_id: cluster_id(ids.iter().map(String::as_str)),
                confidence: 0.95,
                survivor: ids[0].clone(),
                members,
                resolved,
                extra_values: extra,
                generic_values: Default::default(),
                doubtful: Vec::new(),
                pairs: vec![],
            }
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    Plan {
        version: PLAN_VERSION,
        generated_at: Utc::now(),
        input: "test".into(),
        clusters,
    }
    .save(dir)
    .unwrap();
}

fn options(emu: &RunningEmulator, dir: &Path) -> Options {
    options_with(emu, dir, |_| {})
}

/// Options whose client config `f` adjusted first.
fn options_with(
    emu: &RunningEmulator,
    dir: &Path,
    f: impl FnOnce(&mut dedupd_genesys::ClientConfig),
) -> Options {
    let mut client = client_config(emu, ID, 60_000);
    f(&mut client);
    let mut opts = Options::new(
        dir.join("plan"),
        dir.join("state"),
        dir.join("out"),
        Platform::Genesys(Box::new(client)),
    );
    // These tests are about the engine, not the review: every planned cluster is approved.
    opts.approve = Approve::All;
    opts
}

fn merge_calls(emu: &RunningEmulator) -> u64 {
    emu.state()
        .stats()
        .requests_by_route
        .get(MERGE_ROUTE)
        .copied()
        .unwrap_or(0)
}

pub(super) fn contact(emu: &RunningEmulator, id: &str) -> Value {
    emu.state().external_contact(id).unwrap()
}

/// The canonical contact `id` was merged into (following `mergedTo` to the head).
pub(super) fn head(emu: &RunningEmulator, id: &str) -> String {
    let mut cur = id.to_owned();
    for _ in 0..60 {
        match contact(emu, &cur)["mergedTo"]["id"].as_str() {
            Some(next) => cur = next.to_owned(),
            None => return cur,
        }
    }
    panic!("merge chain of {id} does not end");
}

/// Every id is in one merge tree whose set holds exactly the ids plus the `steps` canonical
/// contacts the merges created: nothing merged twice, nothing left out.
pub(super) fn assert_merged_once(emu: &RunningEmulator, ids: &[String], steps: usize) -> String {
    let heads: BTreeSet<String> = ids.iter().map(|id| head(emu, id)).collect();
    assert_eq!(
        heads.len(),
        1,
        "one canonical contact for {ids:?}: {heads:?}"
    );
    let h = heads.into_iter().next().unwrap();
    assert!(!ids.contains(&h), "the canonical contact is a new record");
    let set = contact(emu, &h)["mergeSet"].as_array().unwrap().len();
    assert_eq!(set, ids.len() + steps, "merge set of {ids:?}");
    h
}

pub(super) fn assert_untouched(emu: &RunningEmulator, id: &str) {
    let c = contact(emu, id);
    assert!(c.get("mergedTo").is_none(), "{id} was not merged: {c}");
}

pub(super) fn ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_apply_merges_each_cluster_once_and_a_second_run_sends_nothing() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[2, 3, 4, 2, 5]).await;
    let loner = seed(&setup, &[1]).await;
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &clusters);

    let report = apply::run(&options(&emu, tmp.path())).await.unwrap();
    assert_eq!(
        (
            report.clusters,
            report.merged,
            report.remaining,
            report.quarantined_contacts
        ),
        (5, 5, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.merge_requests, 5);
    assert_eq!(merge_calls(&emu), 5);
    for ids in &clusters {
        let h = assert_merged_once(&emu, ids, 1);
        // The override: survivor's name, its e-mail first, the others in free slots.
        let c = contact(&emu, &h);
        assert_eq!(
            c["workEmail"],
            format!("p{}.0@example.com", &c["firstName"].as_str().unwrap()[5..])
        );
        assert!(c.get("personalEmail").is_some(), "{c}");
        assert_eq!(c["address"]["countryCode"], "US");
    }
    assert_untouched(&emu, &loner[0][0]);
    let out = ndjson(&tmp.path().join("out/apply_clusters.ndjson"));
    assert_eq!(out.len(), 5);
    assert!(
        out.iter()
            .all(|o| o["outcome"] == "merged" && o["canonical"].is_string())
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/quarantine.ndjson")).unwrap(),
        ""
    );
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("out/apply_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["merged"], 5);

    // A second run: everything settled, no request to the merge API, no pre-flight either.
    let calls = emu.state().stats().total_requests;
    let again = apply::run(&options(&emu, tmp.path())).await.unwrap();
    assert_eq!((again.skipped, again.merge_requests), (5, 0), "{again:?}");
    assert_eq!(merge_calls(&emu), 5);
    assert!(
        emu.state().stats().total_requests - calls <= 1,
        "only a token request"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_the_requests_and_sends_nothing() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[2, 7]).await;
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &clusters);
    let before = emu.state().stats().total_requests;
    let mut opts = options(&emu, tmp.path());
    opts.dry_run = true;
    opts.max_ids_per_merge = Some(3);
    let report = apply::run(&opts).await.unwrap();
    assert!(report.dry_run);
    // 2 → one request; 7 with 3 per request → 3, then canonical + 2, then canonical + 2.
    assert_eq!(report.merge_requests, 4, "{report:?}");
    assert_eq!(emu.state().stats().total_requests, before, "nothing sent");
    let lines = ndjson(&tmp.path().join("out/apply_dry_run.ndjson"));
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .all(|l| l["contactIds"].as_array().unwrap().len() <= 3)
    );
    assert_eq!(lines[0]["contactIds"][0], clusters[0][0], "survivor first");
    assert_eq!(lines[0]["valueOverride"]["workEmail"], "p0.0@example.com");
    assert_eq!(lines[2]["contactIds"][0], "<canonical of step 1>");
    for ids in &clusters {
        for id in ids {
            assert_untouched(&emu, id);
        }
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_offender_is_isolated_by_halving_and_joins_once_it_is_free() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[8, 2]).await;
    let offender = clusters[0][5].clone();
    assert!(emu.state().set_active_associations(&offender, true));
    // The second cluster's survivor is in an open conversation: a customer wrote in from its
    // e-mail address, so the conversation's participant carries its externalContactId.
    let sent = setup
        .conversations()
        .send_inbound_open_message(
            "integration-1",
            &OpenInboundMessage {
                channel: OpenInboundChannel {
                    from: OpenMessagingFrom {
                        id: "p1.0@example.com".into(),
                        id_type: OpenIdType::Email,
                        nickname: None,
                        first_name: None,
                        last_name: None,
                        email: None,
                        image: None,
                    },
                    time: Utc::now(),
                    message_id: Some("m-1".into()),
                    metadata: None,
                },
                text: Some("hello".into()),
                content: vec![],
                metadata: None,
            },
            false,
        )
        .await
        .unwrap();
    let conversation = sent.conversation_id.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &clusters);

    let report = apply::run(&options(&emu, tmp.path())).await.unwrap();
    assert_eq!(report.partially_merged, 1, "{report:?}");
    assert_eq!(report.quarantined, 1, "{report:?}");
    assert_eq!(
        report.remaining, 0,
        "quarantine settles the run: {report:?}"
    );
    // 8 → 409; halves of 4: the clean half merges, the other 409s, then 2 and 1: a handful of
    // requests, not one per member.
    assert!(report.merge_requests <= 8, "{report:?}");
    let rest: Vec<String> = clusters[0]
        .iter()
        .filter(|id| **id != offender)
        .cloned()
        .collect();
    let heads: BTreeSet<String> = rest.iter().map(|id| head(&emu, id)).collect();
    assert_eq!(heads.len(), 1, "the seven others are one contact");
    assert_untouched(&emu, &offender);
    assert_untouched(&emu, &clusters[1][0]);
    assert_untouched(&emu, &clusters[1][1]);
    let q = ndjson(&tmp.path().join("out/quarantine.ndjson"));
    let by_id: BTreeMap<&str, &Value> = q
        .iter()
        .map(|l| (l["record_id"].as_str().unwrap(), l))
        .collect();
    assert_eq!(by_id[offender.as_str()]["reason"], "active_associations");
    assert_eq!(
        by_id[clusters[1][0].as_str()]["reason"],
        "active_associations"
    );
    assert_eq!(by_id[clusters[1][1].as_str()]["reason"], "no_partner");
    assert_eq!(q.len(), 3);

    // The associations end: the next run merges the offender into the canonical contact and
    // the second cluster as a whole.
    emu.state().set_active_associations(&offender, false);
    assert!(emu.state().end_conversation(&conversation));
    let again = apply::run(&options(&emu, tmp.path())).await.unwrap();
    assert_eq!(
        (again.merged, again.quarantined_contacts),
        (2, 0),
        "{again:?}"
    );
    assert_eq!(head(&emu, &offender), head(&emu, &rest[0]));
    assert_merged_once(&emu, &clusters[1], 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_after_the_merge_was_applied_is_read_back_not_resent() {
    let mut cfg = emulator_config();
    cfg.faults = FaultProfile {
        rules: vec![FaultRule {
            kind: FaultKind::GatewayTimeoutApplied,
            probability: 1.0,
            methods: vec!["POST".into()],
            paths: vec!["/api/v2/externalcontacts/contacts/merge".into()],
            statuses: None,
            delay_ms: None,
            burst: None,
            retry_after_secs: None,
        }],
        ..FaultProfile::default()
    };
    let emu = RunningEmulator::start(cfg).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[2, 3, 6]).await;
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &clusters);
    let mut opts = options(&emu, tmp.path());
    opts.max_ids_per_merge = Some(4); // the 6-member cluster takes two merges, both answered 504
    let report = apply::run(&opts).await.unwrap();
    assert_eq!((report.merged, report.remaining), (3, 0), "{report:?}");
    assert_eq!(report.merge_requests, 4);
    assert_eq!((report.read_backs, report.read_backs_applied), (4, 4));
    assert_eq!(merge_calls(&emu), 4, "never resent");
    assert_merged_once(&emu, &clusters[0], 1);
    assert_merged_once(&emu, &clusters[1], 1);
    assert_merged_once(&emu, &clusters[2], 2);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_contacts_are_recognised_missing_ones_quarantined_and_big_clusters_chunked() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[3, 3, 2, 12, 60]).await;
    let outsider = seed(&setup, &[1]).await[0][0].clone();
    let api = setup.external_contacts();
    // Cluster 0 was merged already (by someone else); cluster 1's first member was merged
    // into an outside contact; cluster 2 names a contact that does not exist.
    api.merge(&clusters[0], None).await.unwrap();
    api.merge(&[clusters[1][0].clone(), outsider.clone()], None)
        .await
        .unwrap();
    let mut plan = clusters.clone();
    plan[2].push("00000000-0000-4000-8000-00000000dead".into());
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &plan);
    let mut opts = options(&emu, tmp.path());
    opts.max_ids_per_merge = Some(5);
    let before = merge_calls(&emu);
    let report = apply::run(&opts).await.unwrap();
    assert_eq!(report.already_merged, 1, "{report:?}");
    assert_eq!(report.partially_merged, 2, "{report:?}");
    assert_eq!(report.merged, 1, "{report:?}");
    assert_eq!(report.quarantined, 1, "the 60-member cluster: {report:?}");
    assert_eq!(report.remaining, 0);
    // Cluster 0: nothing sent. Cluster 1: the two others. Cluster 2: its two real members.
    // Cluster 3: 12 ids 5 at a time: 5, then canonical + 4, then canonical + 3.
    assert_eq!(merge_calls(&emu) - before, 1 + 1 + 3, "{report:?}");
    assert_merged_once(&emu, &clusters[1][1..], 1);
    assert_merged_once(&emu, &clusters[2], 1);
    assert_merged_once(&emu, &clusters[3], 3);
    for id in &clusters[4] {
        assert_untouched(&emu, id);
    }
    let q = ndjson(&tmp.path().join("out/quarantine.ndjson"));
    let reasons: BTreeMap<String, usize> = q.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l["reason"].as_str().unwrap().to_owned())
            .or_default() += 1;
        m
    });
    assert_eq!(reasons["already_merged_elsewhere"], 1, "{q:?}");
    assert_eq!(reasons["not_found"], 1, "{q:?}");
    assert_eq!(reasons["merge_set_limit"], 60, "{q:?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_appliers_on_one_plan_never_merge_twice() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let sizes: Vec<usize> = (0..16).map(|i| 2 + i % 4).collect();
    let clusters = seed(&setup, &sizes).await;
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &clusters);
    // A slow budget, so that both runs are busy at the same time.
    let slow = |c: &mut dedupd_genesys::ClientConfig| c.requests_per_minute = 1_200;
    let (mut a, mut b) = (
        options_with(&emu, tmp.path(), slow),
        options_with(&emu, tmp.path(), slow),
    );
    a.out_dir = tmp.path().join("out-a");
    b.out_dir = tmp.path().join("out-b");
    let (ra, rb) = tokio::join!(apply::run(&a), apply::run(&b));
    let (ra, rb): (Report, Report) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.merge_requests + rb.merge_requests, 16, "{ra:?} {rb:?}");
    assert_eq!(merge_calls(&emu), 16);
    assert_eq!(ra.remaining + rb.remaining, 0);
    assert_eq!(
        ra.merged + rb.merged,
        16,
        "each cluster merged by exactly one run: {ra:?} {rb:?}"
    );
    for ids in &clusters {
        assert_merged_once(&emu, ids, 1);
    }
    emu.shutdown().await;
}

/// Two runs with separate state directories (two machines) lock the contacts in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_machines_sharing_redis_never_merge_twice() {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr = redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let reachable = addr
        .parse()
        .ok()
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok());
    if !reachable {
        assert!(
            std::env::var("CI").is_err(),
            "Redis at {redis_url} is required under CI=true"
        );
        eprintln!("skipping: no Redis at {redis_url}");
        return;
    }
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[2, 3, 2, 4, 2, 3, 2, 2]).await;
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &clusters);
    let key = format!("dedupd-test:{{budget}}:merge:{}", std::process::id());
    let machine = |name: &str| {
        let mut o = options_with(&emu, &tmp.path().join(name), |c| {
            c.requests_per_minute = 1_200;
            c.redis = Some(dedupd_genesys::RedisBudget {
                url: redis_url.clone(),
                key: key.clone(),
            });
        });
        o.plan_dir = tmp.path().join("plan");
        o
    };
    let (a, b) = (machine("a"), machine("b"));
    let (ra, rb) = tokio::join!(apply::run(&a), apply::run(&b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.remaining + rb.remaining, 0, "{ra:?} {rb:?}");
    assert_eq!(merge_calls(&emu), 8, "{ra:?} {rb:?}");
    assert_eq!(ra.merged + rb.merged, 8);
    assert_eq!(
        ra.already_merged + rb.already_merged,
        8,
        "the other run found them merged"
    );
    for ids in &clusters {
        assert_merged_once(&emu, ids, 1);
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_fault_profile_each_cluster_is_merged_once_and_offenders_quarantined() {
    let profile =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../emulator/fault-profiles/sync-chaos.toml");
    let mut faults = FaultProfile::from_file(&profile).unwrap();
    let rule = |kind, probability, paths: &[&str], statuses| FaultRule {
        kind,
        probability,
        methods: vec!["POST".into()],
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        statuses,
        delay_ms: None,
        burst: None,
        retry_after_secs: None,
    };
    faults.rules.extend([
        rule(
            FaultKind::GatewayTimeoutApplied,
            0.2,
            &["/api/v2/externalcontacts/contacts/merge"],
            None,
        ),
        rule(
            FaultKind::RecordFailure,
            0.1,
            &["/api/v2/externalcontacts/bulk/contacts"],
            Some(vec![503]),
        ),
    ]);
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let sizes: Vec<usize> = (0..40).map(|i| 2 + i % 5).collect();
    let clusters = seed(&setup, &sizes).await;
    emu.state().set_faults(faults); // after seeding: only the run under test meets them
    // Every 7th contact is in an open conversation (active associations).
    let flagged: BTreeSet<String> = clusters.iter().flatten().step_by(7).cloned().collect();
    for id in &flagged {
        assert!(emu.state().set_active_associations(id, true));
    }
    let tmp = tempfile::tempdir().unwrap();
    write_plan(&tmp.path().join("plan"), &clusters);
    let mut runs = Vec::new();
    loop {
        let r = apply::run(&options(&emu, tmp.path())).await.unwrap();
        let done = r.remaining == 0;
        runs.push(r);
        if done || runs.len() == 4 {
            break;
        }
    }
    let last = runs.last().unwrap();
    assert_eq!(last.remaining, 0, "{runs:?}");
    let stats = emu.state().stats();
    assert!(
        stats.faults_injected.values().sum::<u64>() > 10,
        "the faults happened: {stats:?}"
    );
    let q = ndjson(&tmp.path().join("out/quarantine.ndjson"));
    let quarantined: BTreeMap<String, String> = q
        .iter()
        .map(|l| {
            (
                l["record_id"].as_str().unwrap().to_owned(),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for id in &flagged {
        assert_eq!(
            quarantined.get(id).map(String::as_str),
            Some("active_associations"),
            "{id}"
        );
        assert_untouched(&emu, id);
    }
    for ids in &clusters {
        let free: Vec<String> = ids
            .iter()
            .filter(|id| !flagged.contains(*id))
            .cloned()
            .collect();
        if free.len() < 2 {
            for id in &free {
                assert_eq!(quarantined.get(id).map(String::as_str), Some("no_partner"));
                assert_untouched(&emu, id);
            }
            continue;
        }
        // One canonical contact; its merge set holds exactly the free members plus contacts
        // the merges created (nothing foreign, nothing twice).
        let heads: BTreeSet<String> = free.iter().map(|id| head(&emu, id)).collect();
        let outcomes =
            std::fs::read_to_string(tmp.path().join("out/apply_clusters.ndjson")).unwrap();
        let line = outcomes
            .lines()
            .find(|l| l.contains(free[0].as_str()))
            .unwrap_or("");
        assert_eq!(
            heads.len(),
            1,
            "{free:?}: {:?}; {line}; {runs:?}",
            free.iter()
                .map(|id| quarantined.get(id))
                .collect::<Vec<_>>()
        );
        let h = heads.into_iter().next().unwrap();
        let set: Vec<String> = contact(&emu, &h)["mergeSet"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let members: BTreeSet<&String> = set.iter().filter(|id| ids.contains(id)).collect();
        assert_eq!(members.len(), free.len(), "{set:?}");
        for other in set.iter().filter(|id| !ids.contains(id)) {
            assert!(
                contact(&emu, other)["mergedFrom"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()),
                "{other} in the merge set of {free:?} is a contact a merge created"
            );
        }
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_at_random_points_then_every_cluster_is_merged_exactly_once() {
    let mut cfg = emulator_config();
    // Some merges are applied but answered 504, so kills also land between a merge and its
    // read-back.
    cfg.faults = FaultProfile {
        rules: vec![FaultRule {
            kind: FaultKind::GatewayTimeoutApplied,
            probability: 0.2,
            methods: vec!["POST".into()],
            paths: vec!["/api/v2/externalcontacts/contacts/merge".into()],
            statuses: None,
            delay_ms: None,
            burst: None,
            retry_after_secs: None,
        }],
        ..FaultProfile::default()
    };
    let emu = RunningEmulator::start(cfg).await.unwrap();
    let setup = setup_client(&emu).await;
    let sizes: Vec<usize> = (0..30).map(|i| 2 + i % 7).collect();
    let clusters = seed(&setup, &sizes).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_owned();
    write_plan(&d.join("plan"), &clusters);
    let base = emu.base_url();
    let (kill_seed, state) = (super::kill_seed(), emu.state());
    let kills = tokio::task::spawn_blocking(move || {
        let apply = || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
            c.args(["--quiet", "merge", "apply", "--approve-all", "--plan"])
                .arg(d.join("plan"))
                .arg("--state")
                .arg(d.join("state"))
                .arg("--out")
                .arg(d.join("out"))
                // ~3 requests per cluster: ~90 requests, more than the 10 kills take (≤ 8 each).
                .args([
                    "--rate",
                    "360",
                    "--max-ids-per-merge",
                    "4",
                    "--concurrency",
                    "2",
                ])
                .env("GENESYS_BASE_URL", &base)
                .env("GENESYS_CLIENT_ID", ID)
                .env("GENESYS_CLIENT_SECRET", SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        };
        // Each run is killed after 0–8 requests (pre-flight fetches, merges, read-backs).
        let mut killed = Vec::new();
        for after in super::kill_points(kill_seed, 10, 8) {
            let finished = super::kill_after_requests(&state, after, &mut apply());
            killed.push((after, finished));
        }
        let status = apply().status().unwrap();
        assert!(
            status.success(),
            "the final run completes: {status}; kills {killed:?} (DEDUPD_KILL_SEED={kill_seed})"
        );
        killed
    })
    .await
    .unwrap();
    assert!(
        kills.iter().filter(|(_, finished)| !finished).count() >= 5,
        "most runs were killed mid-way: {kills:?} (DEDUPD_KILL_SEED={kill_seed})"
    );
    for (ids, n) in clusters.iter().zip(&sizes) {
        // n ids, 4 per merge: 4, then canonical + 3, …
        let steps = 1 + n.saturating_sub(4).div_ceil(3);
        assert_merged_once(&emu, ids, steps);
    }
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("out/apply_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["remaining"], 0, "{report}");
    assert_eq!(report["quarantined_contacts"], 0, "{report}");
    emu.shutdown().await;
}

/// The shared sample's true duplicate clusters (the first 300 of two or more records), seeded
/// into the emulator and merged under the fault profile: each cluster once, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_contacts_true_clusters_are_merged_once_under_faults() {
    // The shared sample, copied into the repository's fixtures.
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contacts_20k");
    let mut truth: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in csv::Reader::from_path(samples.join("contacts_20k_truth.csv"))
        .unwrap()
        .records()
    {
        let r = r.unwrap();
        truth
            .entry(r[1].to_owned())
            .or_default()
            .push(r[0].to_owned());
    }
    let wanted: Vec<Vec<String>> = truth
        .into_values()
        .filter(|v| v.len() >= 2)
        .take(300)
        .collect();
    let records: BTreeSet<&str> = wanted.iter().flatten().map(String::as_str).collect();
    let mut rows: BTreeMap<String, csv::StringRecord> = BTreeMap::new();
    let mut reader = csv::Reader::from_path(samples.join("contacts_20k.csv")).unwrap();
    for r in reader.records() {
        let r = r.unwrap();
        if records.contains(&r[0]) {
            rows.insert(r[0].to_owned(), r);
        }
    }

    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let api = setup.external_contacts();
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let mut ext_id: BTreeMap<String, String> = BTreeMap::new();
    for (record, r) in &rows {
        // What the platform accepts: a plausible e-mail; the phone as typed, read in the
        // record's country.
        let email = non_empty(&r[4]).filter(|e| {
            e.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                && !e.contains(char::is_whitespace)
        });
        let phone = non_empty(&r[5]).map(|p| PhoneNumber {
            display: Some(p),
            normalization_country_code: non_empty(&r[10]),
            ..PhoneNumber::default()
        });
        let contact = ExternalContact {
            first_name: non_empty(&r[2]),
            last_name: non_empty(&r[3]),
            work_email: email,
            cell_phone: phone,
            ..ExternalContact::default()
        };
        ext_id.insert(
            record.clone(),
            api.create(&contact).await.unwrap().id.unwrap(),
        );
    }
    let clusters: Vec<Cluster> = wanted
        .iter()
        .map(|records| {
            let members: Vec<Member> = records
                .iter()
                .map(|rec| {
                    let r = &rows[rec];
                    Member {
                        record_id: ext_id[rec].clone(),
                        source: non_empty(&r[1]),
                        updated_at: r[11].parse().ok(),
                        fields: Fields {
                            first_name: non_empty(&r[2]),
                            last_name: non_empty(&r[3]),
                            email: non_empty(&r[4]),
                            phone: non_empty(&r[5]),
                            street: non_empty(&r[6]),
                            city: non_empty(&r[7]),
                            region: non_empty(&r[8]),
                            postcode: non_empty(&r[9]),
                            country: non_empty(&r[10]),
                        },
                    }
                })
                .collect();
            let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for m in &members[1..] {
                for (field, v) in [("email", &m.fields.email), ("phone", &m.fields.phone)] {
                    if let Some(v) = v {
                        extra.entry(field.to_owned()).or_default().push(v.clone());
                    }
                }
            }
            Cluster {
                cluster_id: cluster_id(members.iter().map(|m| m.record_id.as_str())),
                confidence: 0.9,
                survivor: members[0].record_id.clone(),
                resolved: members[0].fields.clone(),
                members,
                extra_values: extra,
                generic_values: Default::default(),
                doubtful: Vec::new(),
                pairs: vec![],
            }
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    Plan {
        version: PLAN_VERSION,
        generated_at: Utc::now(),
        input: "contacts_20k.csv".into(),
        clusters: clusters.clone(),
    }
    .save(&{
        let p = tmp.path().join("plan");
        std::fs::create_dir_all(&p).unwrap();
        p
    })
    .unwrap();
    let profile =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../emulator/fault-profiles/sync-chaos.toml");
    emu.state()
        .set_faults(FaultProfile::from_file(&profile).unwrap());

    let mut runs = Vec::new();
    while runs.last().is_none_or(|r: &Report| r.remaining > 0) && runs.len() < 4 {
        runs.push(apply::run(&options(&emu, tmp.path())).await.unwrap());
    }
    let last = runs.last().unwrap();
    assert_eq!(last.remaining, 0, "{runs:?}");
    assert_eq!(last.quarantined_contacts, 0, "{runs:?}");
    for c in &clusters {
        assert_merged_once(&emu, &c.sorted_ids(), 1);
    }
    emu.shutdown().await;
}

/// The platform goes away after three clusters (a bulk fetch and a merge each, one cluster at
/// a time): the run stops once nothing has succeeded for `--give-up-after`, starts no other
/// cluster, journals the three merges, says the platform was unreachable and exits 3; the next
/// run, the platform back, merges only the other seven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_apply_gives_up_when_the_platform_is_unreachable_and_keeps_what_was_merged() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[2; 10]).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_owned();
    write_plan(&d.join("plan"), &clusters);
    let base = emu.base_url();
    let apply = move |give_up: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
        c.args(["--quiet", "merge", "apply", "--approve-all", "--plan"])
            .arg(d.join("plan"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--out")
            .arg(d.join("out"))
            .args(["--concurrency", "1"])
            .env("GENESYS_BASE_URL", &base)
            .env("GENESYS_CLIENT_ID", ID)
            .env("GENESYS_CLIENT_SECRET", SECRET)
            .env_remove("DEDUPD_GIVE_UP_AFTER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(secs) = give_up {
            c.args(["--give-up-after", secs]);
        }
        c
    };
    let report = || -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("out/apply_report.json")).unwrap(),
        )
        .unwrap()
    };
    emu.state().outage_after(3 * 2);
    let first = apply(Some("2"));
    let out = tokio::task::spawn_blocking(move || { first }.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("the platform at {}", emu.base_url()))
            && last.contains("was unreachable for")
            && !last.contains(SECRET),
        "{stderr}"
    );
    let r = report();
    assert_eq!(
        (&r["merged"], &r["remaining"]),
        (&Value::from(3), &Value::from(7)),
        "{r}"
    );
    assert!(r["platform_unreachable"].is_string(), "{r}");
    assert_eq!(merge_calls(&emu), 3);
    let outcomes = ndjson(&tmp.path().join("out/apply_clusters.ndjson"));
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o["outcome"] == "remaining")
            .count(),
        7
    );

    // The platform is back: the journal skips the three, the other seven are merged.
    emu.state().end_outage();
    let second = apply(None);
    let out = tokio::task::spawn_blocking(move || { second }.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report();
    assert_eq!(
        (&r["skipped"], &r["merged"], &r["remaining"]),
        (&Value::from(3), &Value::from(7), &Value::from(0)),
        "{r}"
    );
    assert_eq!(merge_calls(&emu), 10, "each cluster merged once");
    for ids in &clusters {
        assert_merged_once(&emu, ids, 1);
    }
    emu.shutdown().await;
}

#[test]
fn cli_rejects_a_broken_plan_naming_the_cluster_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("plan.json"),
        r#"{"version":1,"generated_at":"2026-11-24T22:40:00Z","input":"x","clusters":[
            {"cluster_id":"kbad","confidence":0.9,"survivor":"Z","members":[
              {"record_id":"A","fields":{}},{"record_id":"B","fields":{}}]}]}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args([
            "--quiet",
            "merge",
            "apply",
            "--approve-all",
            "--dry-run",
            "--plan",
        ])
        .arg(tmp.path())
        .arg("--out")
        .arg(tmp.path().join("out"))
        .env_remove("GENESYS_BASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster kbad (#0): survivor"), "{err}");
}

/// Issue 12: a run killed after it merged clusters but before it wrote its outputs showed
/// those merges in no report. The next run reports them (merged, `carried_over`), not as
/// skipped; the run after that skips them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_after_merges_then_the_rerun_reports_them_as_merged() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let setup = setup_client(&emu).await;
    let clusters = seed(&setup, &[2; 10]).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_owned();
    write_plan(&d.join("plan"), &clusters);
    let base = emu.base_url();
    let journal = d.join("state/merge/journal");
    let out_dir = d.join("out");
    let apply = move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
        c.args(["--quiet", "merge", "apply", "--approve-all", "--plan"])
            .arg(d.join("plan"))
            .arg("--state")
            .arg(d.join("state"))
            .arg("--out")
            .arg(d.join("out"))
            // About 1 request a second: the run is still going when its second cluster settles.
            .args(["--concurrency", "1", "--rate", "60"])
            .env("GENESYS_BASE_URL", &base)
            .env("GENESYS_CLIENT_ID", ID)
            .env("GENESYS_CLIENT_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let settled = move || -> usize {
        std::fs::read_dir(&journal)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| {
                        std::fs::read_to_string(e.path())
                            .is_ok_and(|t| t.contains("\"event\":\"settled\""))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let (killed_after, apply) = tokio::task::spawn_blocking(move || {
        let mut child = apply().spawn().unwrap();
        // Wait for the condition (two clusters settled in the journal), then SIGKILL.
        while settled() < 2 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before two clusters settled"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        (settled(), apply)
    })
    .await
    .unwrap();
    assert!(
        !out_dir.join("apply_report.json").exists(),
        "the killed run wrote no report"
    );
    let run = |mut c: Command| async move {
        let status = tokio::task::spawn_blocking(move || c.status().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "{status}");
    };
    let report = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("apply_report.json")).unwrap())
            .unwrap()
    };
    run(apply()).await;
    let r = report();
    assert_eq!(
        (&r["merged"], &r["skipped"], &r["remaining"]),
        (&Value::from(10), &Value::from(0), &Value::from(0)),
        "every cluster the killed run merged is reported by the re-run: {r}"
    );
    assert_eq!(r["carried_over"], Value::from(killed_after as u64), "{r}");
    assert_eq!(merge_calls(&emu), 10, "each cluster merged once");

    run(apply()).await;
    let r = report();
    assert_eq!(
        (&r["merged"], &r["skipped"], &r["carried_over"]),
        (&Value::from(0), &Value::from(10), &Value::from(0)),
        "a completed run's merges are not reported again: {r}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_not_on_a_terminal_prints_progress_lines_unless_quiet() {
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let clusters = seed(&setup_client(&emu).await, &[2, 3, 2]).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_owned();
    write_plan(&d.join("plan"), &clusters);
    let base = emu.base_url();
    let (loud, quiet) = tokio::task::spawn_blocking(move || {
        let run = |quiet: bool, out: &str| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_dedupd"));
            if quiet {
                c.arg("--quiet");
            }
            c.args(["merge", "apply", "--approve-all", "--plan"])
                .arg(d.join("plan"))
                .arg("--state")
                .arg(d.join(format!("state-{out}")))
                .arg("--out")
                .arg(d.join(out))
                .env("GENESYS_BASE_URL", &base)
                .env("GENESYS_CLIENT_ID", ID)
                .env("GENESYS_CLIENT_SECRET", SECRET)
                // A line on every cluster instead of every 30 s.
                .env("DEDUPD_PROGRESS_SECS", "0")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let out = c.output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stderr).unwrap()
        };
        (run(false, "loud"), run(true, "quiet"))
    })
    .await
    .unwrap();
    // stderr is a pipe here, as under a service manager: lines, not a bar.
    assert!(loud.contains("merge: 1/3 clusters"), "{loud}");
    assert!(loud.contains("merge: 3/3 clusters"), "{loud}");
    assert!(!loud.contains('\u{1b}'), "no terminal escapes: {loud:?}");
    assert!(!quiet.contains("merge: 1/3"), "{quiet}");
}

#[test]
fn a_missing_plan_or_review_is_named_before_the_platform_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |plan: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_dedupd"))
            .args(["merge", "apply", "--plan"])
            .arg(plan)
            // No platform flag or variable at all: the plan and the review come first.
            .env_remove("GENESYS_BASE_URL")
            .env_remove("GENESYS_REGION")
            .env_remove("GENESYS_CLIENT_ID")
            .env_remove("GENESYS_CLIENT_SECRET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run(&tmp.path().join("nowhere"));
    assert!(
        err.contains("plan.json not found") && err.contains("dedupd merge plan"),
        "{err}"
    );
    write_plan(&tmp.path().join("plan"), &[vec!["a".into(), "b".into()]]);
    let err = run(&tmp.path().join("plan"));
    assert!(
        err.contains("decisions.json not found") && err.contains("--approve-all"),
        "{err}"
    );
}
