//! The four seams against the emulator, with the least forgiving behaviours it takes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use dedupd_core::notification::{Channel, NotificationRequest};
use dedupd_cxone::CxoneClient;
use dedupd_cxone::seams::directory::ABSORBED_FIELD;
use dedupd_cxone::seams::list::CallingListSink;
use dedupd_cxone::seams::messaging::ByocIngress;
use dedupd_cxone::seams::notify::{DfoSender, thread_id};
use dedupd_emulator::cxone::{CxoneEmulatorConfig, CxoneSeed, SeedCustomer, SeedDncGroup};
use dedupd_platform::ErrorKind;
use dedupd_platform::contact_list::{ContactListSink, ListLayout, ListRow, ListTarget};
use dedupd_platform::directory::{CustomerDirectory, Resolved, Scan};
use dedupd_platform::messaging::{InboundMessage, MessageIngress, MessageSender, SenderKind};
use dedupd_platform::notify::{Ambiguity, NotificationSender, Readback, SendResult};

use crate::common::*;

fn customers(n: usize) -> CxoneSeed {
    CxoneSeed {
        customers: (0..n)
            .map(|i| SeedCustomer {
                id: Some(format!("C{i:04}")),
                first_name: Some("Ann".into()),
                surname: Some(format!("Lee{i}")),
                emails: vec![format!("ann{i}@example.com")],
                phones: vec![format!("+1415555{i:04}")],
                ..SeedCustomer::default()
            })
            .collect(),
        ..CxoneSeed::default()
    }
}

#[tokio::test]
async fn the_directory_scans_every_card_once() {
    let emu = default_emulator().await;
    emu.state().seed(&customers(230)).unwrap();
    let client = client_for(&emu).await;
    let mut scan = Scan::default();
    let mut seen = BTreeSet::new();
    while let Some(page) = client.scan_page(&mut scan).await.unwrap() {
        for r in page {
            assert!(r.email.ends_with("@example.com"), "{r:?}");
            assert!(r.phone.starts_with("+1415555"), "{r:?}");
            assert!(seen.insert(r.id.clone()), "{} twice", r.id);
        }
    }
    assert_eq!(seen.len(), 230);
    assert_eq!(scan.read, 230);
    assert!(scan.done);
}

#[tokio::test]
async fn a_merge_takes_one_source_and_the_source_resolves_to_its_survivor_later() {
    let emu = default_emulator().await;
    emu.state().seed(&customers(3)).unwrap();
    let client = client_for(&emu).await;
    assert_eq!(
        <CxoneClient as CustomerDirectory>::CAPABILITIES.max_ids_per_merge,
        2
    );
    const { assert!(!<CxoneClient as CustomerDirectory>::CAPABILITIES.merge_reversible) };

    let err = client
        .merge(
            &["C0000".into(), "C0001".into(), "C0002".into()],
            &Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);

    let values = vec![dedupd_cxone::CustomField {
        ident: "dedupd_email".into(),
        value: "ann1@example.com".into(),
    }];
    let merged = client
        .merge(&["C0000".into(), "C0001".into()], &values)
        .await
        .unwrap();
    assert_eq!(merged.canonical.as_deref(), Some("C0000"));
    assert_eq!(emu.state().merged_into("C0001").as_deref(), Some("C0000"));
    // Then C0000 into C0002: the chain follows.
    client
        .merge(&["C0002".into(), "C0000".into()], &Vec::new())
        .await
        .unwrap();

    // A new client (a new run, after a kill -9) still finds where every id went.
    let fresh = client_for(&emu).await;
    let ids = [
        "C0000".to_owned(),
        "C0001".into(),
        "C0002".into(),
        "C9999".into(),
    ];
    let resolved = fresh.resolve(&ids).await.unwrap();
    for id in &ids[..3] {
        assert_eq!(
            resolved[id],
            Resolved::Found {
                canonical: "C0002".into(),
                set: 3
            },
            "{id}"
        );
    }
    assert_eq!(resolved["C9999"], Resolved::NotFound);
    let card = emu.state().customer("C0002").unwrap();
    let fields = card["customFields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["ident"] == ABSORBED_FIELD));
}

#[tokio::test]
async fn a_merge_whose_answer_was_lost_is_found_done_and_not_sent_again() {
    let emu = default_emulator().await;
    emu.state().seed(&customers(2)).unwrap();
    let client = client_for(&emu).await;
    emu.state().set_faults(faults(vec![rule(
        FaultKind::GatewayTimeoutApplied,
        1.0,
        &["PUT"],
        &["/dfo/3.0/customers/*/merge"],
    )]));
    let ids = ["C0000".to_owned(), "C0001".into()];
    let err = client.merge(&ids, &Vec::new()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutcomeUnknown);
    emu.state().set_faults(faults(Vec::new()));
    let resolved = client.resolve(&ids).await.unwrap();
    assert_eq!(
        resolved["C0001"],
        Resolved::Found {
            canonical: "C0000".into(),
            set: 2
        }
    );
    // Running the merge again (a resumed run) completes without a second merge call.
    let merges = route_count(&emu, "PUT /dfo/3.0/customers/{customerId}/merge");
    client.merge(&ids, &Vec::new()).await.unwrap();
    assert_eq!(
        route_count(&emu, "PUT /dfo/3.0/customers/{customerId}/merge"),
        merges
    );
}

fn notification(to: &str) -> NotificationRequest {
    NotificationRequest {
        channel: Channel::Sms,
        to: to.into(),
        text: "Your order shipped.".into(),
        template: None,
        customer_id: None,
        event_type: Some("order_shipped".into()),
        provider: None,
        not_after: None,
    }
}

#[tokio::test]
async fn a_notification_is_sent_once_and_an_ambiguous_one_is_read_back() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let sender = DfoSender::new(client, BTreeMap::from([(Channel::Sms, CHANNEL.to_owned())]));
    let caps = sender.capabilities();
    assert!(!caps.dedupes_on_key, "CXone has no idempotency key");
    assert_eq!(caps.ambiguity(), Ambiguity::Reconcile);

    let req = notification("+14155550120");
    let (since, until) = (Utc::now(), Utc::now());
    assert_eq!(
        sender.find("n-1", &req, since, until).await,
        Readback::NotFound
    );
    assert!(matches!(
        sender.send("n-1", &req).await,
        SendResult::Delivered { id: Some(_) }
    ));
    assert!(matches!(
        sender.find("n-1", &req, since, until).await,
        Readback::Found(_)
    ));

    // 504 after the work: ambiguous, and the read-back finds it: nothing is sent again.
    emu.state().set_faults(faults(vec![rule(
        FaultKind::GatewayTimeoutApplied,
        1.0,
        &["POST"],
        &["/dfo/3.0/channels/*/outbound"],
    )]));
    let r = sender.send("n-2", &req).await;
    let SendResult::Ambiguous { reason } = r else {
        panic!("{r:?}")
    };
    assert!(
        !reason.contains("+14155550120") && !reason.contains("shipped"),
        "{reason}"
    );
    emu.state().set_faults(faults(Vec::new()));
    assert!(matches!(
        sender.find("n-2", &req, since, until).await,
        Readback::Found(_)
    ));

    // A 500 before the work: ambiguous too (never resent by the client); the read-back
    // finds nothing, so the relay may send it again, once.
    let mut r500 = rule(
        FaultKind::ServerError,
        1.0,
        &["POST"],
        &["/dfo/3.0/channels/*/outbound"],
    );
    r500.statuses = Some(vec![500]);
    emu.state().set_faults(faults(vec![r500]));
    assert!(matches!(
        sender.send("n-3", &req).await,
        SendResult::Ambiguous { .. }
    ));
    emu.state().set_faults(faults(Vec::new()));
    assert_eq!(
        sender.find("n-3", &req, since, until).await,
        Readback::NotFound
    );
    assert!(matches!(
        sender.send("n-3", &req).await,
        SendResult::Delivered { .. }
    ));

    let threads: Vec<String> = emu
        .state()
        .threads()
        .iter()
        .filter_map(|t| t["idOnExternalPlatform"].as_str().map(str::to_owned))
        .collect();
    for n in ["n-1", "n-2", "n-3"] {
        assert_eq!(
            threads.iter().filter(|t| **t == thread_id(n)).count(),
            1,
            "{n}"
        );
    }
    let outbound = emu
        .state()
        .messages()
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .count();
    assert_eq!(outbound, 3, "exactly one message per notification");

    // A channel without a configured CXone channel is refused for good.
    let mut mail = req.clone();
    mail.channel = Channel::Email;
    assert!(matches!(
        sender.send("n-4", &mail).await,
        SendResult::Permanent { .. }
    ));
}

fn inbound(fingerprint: &str, from: &str) -> InboundMessage {
    InboundMessage {
        fingerprint: fingerprint.into(),
        channel: "sms".into(),
        from: MessageSender {
            id: from.into(),
            kind: SenderKind::Phone,
        },
        sent_at: Utc::now(),
        message_id: Some(fingerprint.into()),
        text: "Where is my order?".into(),
        metadata: BTreeMap::from([("dedupd.fingerprint".to_owned(), fingerprint.to_owned())]),
    }
}

#[tokio::test]
async fn a_forward_becomes_one_byoc_message_and_duplicates_are_noted_on_the_card() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let ingress = ByocIngress::new(client, CHANNEL);
    assert_eq!(ingress.platform(), "cxone");
    let fwd = ingress
        .forward(&inbound("fp-a", "+14155550130"))
        .await
        .unwrap();
    let conversation = fwd.conversation_id.unwrap();
    assert!(fwd.message_id.is_some());
    ingress
        .annotate(
            &conversation,
            &BTreeMap::from([("dedupd.duplicates".to_owned(), "2".to_owned())]),
        )
        .await
        .unwrap();
    let card = emu
        .state()
        .customers(false)
        .into_iter()
        .find(|c| {
            c["identities"].as_array().is_some_and(|ids| {
                ids.iter()
                    .any(|i| i["idOnExternalPlatform"] == "+14155550130")
            })
        })
        .unwrap();
    assert!(
        card["customFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["ident"] == "dedupd_duplicates" && f["value"] == "2"),
        "{card}"
    );

    // A 504 after the work: the forward reads the message back and reports it forwarded.
    emu.state().set_faults(faults(vec![rule(
        FaultKind::GatewayTimeoutApplied,
        1.0,
        &["POST"],
        &["/dfo/3.0/channels/*/messages"],
    )]));
    let fwd = ingress
        .forward(&inbound("fp-b", "+14155550131"))
        .await
        .unwrap();
    assert!(fwd.message_id.is_some());
    // …and names its case, so that its duplicates can still be noted on the card.
    assert!(fwd.conversation_id.is_some(), "{fwd:?}");
    emu.state().set_faults(faults(Vec::new()));
    let count = |fp: &str| {
        emu.state()
            .messages()
            .iter()
            .filter(|m| m["idOnExternalPlatform"] == fp)
            .count()
    };
    assert_eq!(count("fp-a"), 1);
    assert_eq!(count("fp-b"), 1);

    // A 500 before the work: unknown, never resent by the client.
    let mut r500 = rule(
        FaultKind::ServerError,
        1.0,
        &["POST"],
        &["/dfo/3.0/channels/*/messages"],
    );
    r500.statuses = Some(vec![500]);
    emu.state().set_faults(faults(vec![r500]));
    let err = ingress
        .forward(&inbound("fp-c", "+14155550132"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::OutcomeUnknown);
    assert!(!err.message.contains("+14155550132"), "{}", err.message);
    assert_eq!(
        route_count(&emu, "POST /dfo/3.0/channels/{channelId}/messages"),
        3
    );
}

fn layout() -> ListLayout {
    ListLayout {
        columns: vec!["phone".into(), "first_name".into()],
        phone_column: Some("phone".into()),
        email_column: None,
    }
}

fn row(key: &str, phone: &str, name: &str, callable: bool) -> ListRow {
    ListRow {
        key: key.into(),
        values: vec![
            ("phone".into(), phone.into()),
            ("first_name".into(), name.into()),
        ],
        callable,
    }
}

fn keys_on(emu: &dedupd_emulator::cxone::RunningCxoneEmulator, list_id: &str) -> Vec<String> {
    let list = emu.state().calling_list(list_id.parse().unwrap()).unwrap();
    assert_eq!(list["skillStarted"], false, "uploads never start the skill");
    let mut keys: Vec<String> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["externalId"].as_str().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_calling_list_ends_exact_through_uploads_and_dnc_goes_to_the_group() {
    let emu = emulator(CxoneEmulatorConfig::default()).await; // jobs complete on a later poll
    let seeded = emu
        .state()
        .seed(&CxoneSeed {
            dnc_groups: vec![SeedDncGroup {
                dnc_group_name: "dedupd".into(),
                ..SeedDncGroup::default()
            }],
            ..CxoneSeed::default()
        })
        .unwrap();
    let group = seeded.dnc_groups[0].to_string();
    let client = client_for(&emu).await;
    let sink = CallingListSink::new(client.clone(), 4242, Some(group.clone()), "2027-12-31");
    const { assert!(!<CallingListSink as ContactListSink>::CAPABILITIES.idempotent_upsert) };

    let target = ListTarget::Create("dedupd-sync".into());
    let list = sink.resolve(&target, &layout()).await.unwrap();
    assert!(list.created);
    // A re-run finds it instead of creating a second list of the same name.
    let again = sink.resolve(&target, &layout()).await.unwrap();
    assert_eq!(again.id, list.id);
    assert!(!again.created);

    let out = sink
        .upsert(
            &list.id,
            &layout(),
            vec![
                row("k1", "+14155550140", "Ann", true),
                row("k2", "+14155550141", "Bob", true),
                row("k3", "+14155550142", "Cy", false),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.accepted.len(), 3, "{out:?}");
    assert!(out.refused.is_empty() && out.unconfirmed.is_empty());
    assert_eq!(keys_on(&emu, &list.id), ["k1", "k2"]);

    // A changed row and the same rows again: still one record per external id.
    let out = sink
        .upsert(
            &list.id,
            &layout(),
            vec![
                row("k1", "+14155550140", "Ann-Marie", true),
                row("k2", "+14155550141", "Bob", true),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.accepted.len(), 2);
    assert_eq!(keys_on(&emu, &list.id), ["k1", "k2"]);

    // k2 becomes do-not-call: off the list, into the group.
    sink.upsert(
        &list.id,
        &layout(),
        vec![row("k2", "+14155550141", "Bob", false)],
    )
    .await
    .unwrap();
    assert_eq!(keys_on(&emu, &list.id), ["k1"]);
    let hits = client.admin().search_dnc("+14155550141").await.unwrap();
    assert!(
        hits.iter()
            .any(|h| h.dnc_group_id.as_deref() == Some(group.as_str()))
    );
    assert!(
        !client
            .admin()
            .search_dnc("+14155550142")
            .await
            .unwrap()
            .is_empty()
    );

    // Rows the platform counts invalid are refused by key, the rest accepted.
    let mut bad = rule(FaultKind::RecordFailure, 1.0, &["POST"], &[]);
    bad.paths = vec!["/inContactAPI/services/*/lists/call-lists/*/upload".into()];
    emu.state().set_faults(faults(vec![bad]));
    let out = sink
        .upsert(
            &list.id,
            &layout(),
            vec![row("k4", "+14155550143", "Di", true)],
        )
        .await
        .unwrap();
    emu.state().set_faults(faults(Vec::new()));
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].key, "k4");
    assert_eq!(keys_on(&emu, &list.id), ["k1"]);
}

#[tokio::test]
async fn an_upload_whose_answer_was_lost_is_found_by_its_file_name() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let sink = CallingListSink::new(client, 4242, None, "2027-12-31");
    let list = sink
        .resolve(&ListTarget::Create("dedupd-lost".into()), &layout())
        .await
        .unwrap();
    emu.state().set_faults(faults(vec![rule(
        FaultKind::GatewayTimeoutApplied,
        1.0,
        &["POST"],
        &["/inContactAPI/services/*/lists/call-lists/*/upload"],
    )]));
    let out = sink
        .upsert(
            &list.id,
            &layout(),
            vec![
                row("k1", "+14155550150", "Ann", true),
                row("k9", "+14155550159", "Zed", false),
            ],
        )
        .await
        .unwrap();
    emu.state().set_faults(faults(Vec::new()));
    assert_eq!(out.accepted, vec!["k1".to_owned()]);
    // Without a DNC group a do-not-call row cannot be kept from being dialled: refused.
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].key, "k9");
    assert_eq!(keys_on(&emu, &list.id), ["k1"]);
}

/// Regression: a run killed after its batch's upload completed, before it recorded the batch,
/// leaves the batch pending; the next run removes the records and uploads them again, with
/// the same content. When that upload's answer is lost, the job found by its file name must be
/// this upload's, not the earlier completed one: taking the earlier one counted the records
/// as on the list while they were removed and this job was still pending (and later cancelled
/// by the next run): records missing from the list (seen in the CXone sync kill test).
#[tokio::test]
async fn a_lost_upload_is_never_mistaken_for_an_earlier_upload_of_the_same_records() {
    let emu = emulator(CxoneEmulatorConfig {
        upload_job_polls: 1,
        ..CxoneEmulatorConfig::default()
    })
    .await;
    let client = client_for(&emu).await;
    let first = CallingListSink::new(client.clone(), 4242, None, "2027-12-31");
    let list = first
        .resolve(&ListTarget::Create("dedupd-again".into()), &layout())
        .await
        .unwrap();
    let rows = || vec![row("k1", "+14155550150", "Ann", true)];
    let out = first.upsert(&list.id, &layout(), rows()).await.unwrap();
    assert_eq!(out.accepted, ["k1"]);
    assert_eq!(keys_on(&emu, &list.id), ["k1"]);

    // The next run sends the same batch again; its upload is applied but the answer is lost.
    emu.state().set_faults(faults(vec![rule(
        FaultKind::GatewayTimeoutApplied,
        1.0,
        &["POST"],
        &["/inContactAPI/services/*/lists/call-lists/*/upload"],
    )]));
    let next = CallingListSink::new(client, 4242, None, "2027-12-31");
    let out = next.upsert(&list.id, &layout(), rows()).await.unwrap();
    emu.state().set_faults(faults(Vec::new()));
    assert_eq!(out.accepted, ["k1"]);
    // Accepted means on the list now, not once some other job completes.
    assert_eq!(keys_on(&emu, &list.id), ["k1"]);
    let jobs = emu.state().upload_jobs();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j["isComplete"] == true), "{jobs:?}");
}

/// A run killed after its upload, before the job finished, leaves a pending job; were it to
/// finish after the next run removed and re-uploaded the same records, each would be on the
/// list twice. The next sink cancels it (and waits until it is settled) before its first
/// removal: every record once.
#[tokio::test]
async fn a_pending_upload_of_a_killed_run_never_lands_beside_its_reupload() {
    let emu = emulator(CxoneEmulatorConfig {
        upload_job_polls: 1,
        ..CxoneEmulatorConfig::default()
    })
    .await;
    let client = client_for(&emu).await;
    let first = CallingListSink::new(client.clone(), 4242, None, "2027-12-31");
    let list = first
        .resolve(&ListTarget::Create("dedupd-killed".into()), &layout())
        .await
        .unwrap();
    let rows = vec![
        row("k1", "+14155550150", "Ann", true),
        row("k2", "+14155550151", "Bob", true),
    ];
    // The killed run: its upload queued, its job never read.
    let refs: Vec<&ListRow> = rows.iter().collect();
    let file = dedupd_cxone::seams::list::csv_file(&layout(), &refs);
    client
        .admin()
        .upload(
            &list.id,
            &dedupd_cxone::Upload {
                list_file: base64_of(file.as_bytes()),
                file_name: dedupd_cxone::seams::list::file_name(&list.id, &refs, 1),
                skill_id: 4242,
                force_overwrite: false,
                expiration_date: "2027-12-31".into(),
                start_skill: false,
                send_email: false,
            },
        )
        .await
        .unwrap();
    assert!(keys_on(&emu, &list.id).is_empty(), "the job is pending");

    let next = CallingListSink::new(client, 4242, None, "2027-12-31");
    let out = next.upsert(&list.id, &layout(), rows).await.unwrap();
    assert_eq!(out.accepted, ["k1", "k2"]);
    assert_eq!(keys_on(&emu, &list.id), ["k1", "k2"]);
    let jobs = emu.state().upload_jobs();
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs.iter()
            .all(|j| j["isComplete"] == true || j["isCancelled"] == true),
        "{jobs:?}"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The relay's policy for a sender that reads back, run over the CXone acceptance fault
/// profile (429s with and without `Retry-After`, 5xx, 504 after the work, 30 s tokens):
/// every notification reaches the customer exactly once.
#[tokio::test]
async fn under_the_chaos_profile_every_notification_goes_out_exactly_once() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let profile = dedupd_emulator::FaultProfile::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../emulator/fault-profiles/cxone-chaos.toml"
    ))
    .unwrap();
    emu.state().set_faults(profile);
    let sender = DfoSender::new(client, BTreeMap::from([(Channel::Sms, CHANNEL.to_owned())]));
    let (since, until) = (Utc::now(), Utc::now());
    const N: usize = 40;
    let mut ambiguous = 0;
    for i in 0..N {
        let id = format!("chaos-{i}");
        let req = notification(&format!("+1415556{i:04}"));
        let mut delivered = false;
        for _ in 0..30 {
            match sender.send(&id, &req).await {
                SendResult::Delivered { .. } => {
                    delivered = true;
                    break;
                }
                SendResult::Transient { .. } => continue,
                SendResult::Permanent { reason } => panic!("{id}: {reason}"),
                SendResult::Ambiguous { .. } => {
                    ambiguous += 1;
                    // Read back until the read-back itself answers.
                    let found = loop {
                        match sender.find(&id, &req, since, until).await {
                            Readback::Found(_) => break true,
                            Readback::NotFound => break false,
                            Readback::Failed(_) => continue,
                        }
                    };
                    if found {
                        delivered = true;
                        break;
                    }
                }
            }
        }
        assert!(delivered, "{id} never went out");
    }
    emu.state()
        .set_faults(dedupd_emulator::FaultProfile::default());
    let messages = emu.state().messages();
    for i in 0..N {
        let thread = thread_id(&format!("chaos-{i}"));
        let sent = messages
            .iter()
            .filter(|m| m["threadIdOnExternalPlatform"] == thread.as_str())
            .count();
        assert_eq!(sent, 1, "{thread}");
    }
    let faults = emu.state().stats().faults_injected;
    assert!(
        !faults.is_empty(),
        "the profile injected faults: {faults:?}"
    );
    eprintln!("ambiguous sends read back: {ambiguous}; faults: {faults:?}");
}
