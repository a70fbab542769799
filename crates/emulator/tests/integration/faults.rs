//! Fault injection: per request (header) and per profile (seeded).

use std::time::Duration;

use dedupd_emulator::{EmulatorConfig, FaultKind, FaultProfile, FaultRule};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Emu, contact, start, start_default};

fn profile(rules: Vec<FaultRule>) -> FaultProfile {
    FaultProfile {
        rules,
        ..FaultProfile::default()
    }
}

async fn add(e: &Emu, list: &str, contacts: Value, fault: &str) -> crate::common::Resp {
    let headers: Vec<(&str, &str)> = if fault.is_empty() {
        vec![]
    } else {
        vec![("x-emulator-fault", fault)]
    };
    e.call_with(
        Method::POST,
        &format!("/api/v2/outbound/contactlists/{list}/contacts"),
        Some(contacts),
        Some(&e.token),
        &headers,
    )
    .await
}

fn faults(e: &Emu, kind: &str) -> u64 {
    e.emu
        .state()
        .stats()
        .faults_injected
        .get(kind)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn gateway_timeout_applied_does_the_write_then_answers_504() {
    let e = start_default().await;
    let list = e.create_list("504", &["phone", "name"]).await;
    add(
        &e,
        &list,
        json!([contact(&list, Some("K1"), "+1", "a")]),
        "504-applied",
    )
    .await
    .expect_error(504, "request.timeout");
    let stored = e.emu.state().contact_list_contacts(&list).expect("list");
    assert_eq!(stored.len(), 1, "the write was applied anyway");
    assert_eq!(stored[0]["id"], "K1");
    assert_eq!(faults(&e, "gateway_timeout_applied"), 1);

    // Plain 504: nothing applied.
    add(
        &e,
        &list,
        json!([contact(&list, Some("K2"), "+1", "b")]),
        "504",
    )
    .await
    .expect_error(504, "request.timeout");
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(1)
    );

    // From a profile, restricted to POSTs on contacts: a GET is untouched.
    let mut r = FaultRule::new(FaultKind::GatewayTimeoutApplied, 1.0);
    r.methods = vec!["POST".into()];
    r.paths = vec!["/api/v2/outbound/contactlists/*/contacts".into()];
    e.emu.state().set_faults(profile(vec![r]));
    add(
        &e,
        &list,
        json!([contact(&list, Some("K3"), "+1", "c")]),
        "",
    )
    .await
    .expect_error(504, "request.timeout");
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(2)
    );
    e.get(&format!("/api/v2/outbound/contactlists/{list}"))
        .await
        .expect(200);
}

#[tokio::test]
async fn server_errors_from_header_and_profile() {
    let e = start_default().await;
    for status in ["500", "502", "503"] {
        let r = e
            .call_with(
                Method::GET,
                "/api/v2/outbound/contactlists",
                None,
                Some(&e.token),
                &[("x-emulator-fault", status)],
            )
            .await;
        assert_eq!(r.status.as_str(), status);
        assert_eq!(r.body["status"].to_string(), status);
    }
    let mut r = FaultRule::new(FaultKind::ServerError, 1.0);
    r.statuses = Some(vec![503]);
    r.retry_after_secs = Some(2);
    e.emu.state().set_faults(profile(vec![r]));
    let resp = e.get("/api/v2/outbound/contactlists").await;
    assert_eq!(resp.header("retry-after"), Some("2"));
    resp.expect_error(503, "service.unavailable");
    assert_eq!(faults(&e, "server_error"), 4);
    // The token endpoint is left alone unless a rule names it.
    e.new_token().await;
    let mut r = FaultRule::new(FaultKind::ServerError, 1.0);
    r.paths = vec!["/oauth/token".into()];
    e.emu.state().set_faults(profile(vec![r]));
    let t = e
        .token_request(
            "dedupd-demo",
            "dedupd-demo-secret",
            "grant_type=client_credentials",
        )
        .await;
    assert!(t.status.is_server_error());
    e.get("/api/v2/outbound/contactlists").await.expect(200);
}

#[tokio::test]
async fn rate_limit_bursts() {
    let e = start_default().await;
    let mut r = FaultRule::new(FaultKind::RateLimitBurst, 1.0);
    r.burst = Some(3);
    r.retry_after_secs = Some(2);
    r.paths = vec!["/api/v2/externalcontacts/**".into()];
    e.emu.state().set_faults(profile(vec![r]));
    let first = e.get("/api/v2/externalcontacts/contacts").await;
    assert_eq!(first.header("retry-after"), Some("2"));
    let body = first.expect_error(429, "too.many.requests.retry.after");
    assert_eq!(
        body["message"],
        "Rate limit exceeded the maximum. Retry the request in [2] seconds"
    );
    // The burst continues for the token on any route, with the same Retry-After, then stops.
    let second = e.get("/api/v2/outbound/contactlists").await;
    assert_eq!(second.header("retry-after"), Some("2"));
    second.expect_error(429, "too.many.requests.retry.after");
    e.get("/api/v2/outbound/contactlists")
        .await
        .expect_error(429, "too.many.requests.retry.after");
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    let s = e.emu.state().stats();
    assert_eq!(s.faults_injected.get("rate_limit_burst"), Some(&3));
    assert_eq!(s.too_many_requests_sent, 3);
    assert_eq!(s.rate_limited, 0, "no real budget overrun");
    // Header form.
    let r = e
        .call_with(
            Method::GET,
            "/api/v2/outbound/contactlists",
            None,
            Some(&e.token),
            &[("x-emulator-fault", "429=7")],
        )
        .await;
    assert_eq!(r.header("retry-after"), Some("7"));
}

#[tokio::test]
async fn slow_and_timeout() {
    let e = start_default().await;
    let list = e.create_list("slow", &["phone", "name"]).await;
    add(
        &e,
        &list,
        json!([contact(&list, Some("S1"), "+1", "a")]),
        "slow=30",
    )
    .await
    .expect(200);
    assert_eq!(faults(&e, "slow"), 1);

    // A timeout longer than the client's: the client gives up and nothing is applied.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = client
        .post(format!(
            "{}/api/v2/outbound/contactlists/{list}/contacts",
            e.base
        ))
        .bearer_auth(&e.token)
        .header("x-emulator-fault", "timeout=3000")
        .json(&json!([contact(&list, Some("S2"), "+1", "b")]))
        .send()
        .await
        .expect_err("the client times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(faults(&e, "timeout"), 1);
    let ids: Vec<Value> = e
        .emu
        .state()
        .contact_list_contacts(&list)
        .expect("list")
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("S1")]);

    // A short timeout fault answers 504 itself.
    add(
        &e,
        &list,
        json!([contact(&list, Some("S3"), "+1", "c")]),
        "timeout=20",
    )
    .await
    .expect_error(504, "request.timeout");
    let mut r = FaultRule::new(FaultKind::Slow, 1.0);
    r.delay_ms = Some(10);
    e.emu.state().set_faults(profile(vec![r]));
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    assert_eq!(faults(&e, "slow"), 2);
}

#[tokio::test]
async fn per_record_failures_in_batches() {
    let e = start_default().await;
    let list = e.create_list("records", &["phone", "name"]).await;
    let batch = json!([
        contact(&list, Some("R0"), "+1", "a"),
        contact(&list, Some("R1"), "+1", "b"),
        contact(&list, Some("R2"), "+1", "c"),
    ]);
    let err = add(&e, &list, batch.clone(), "record-failure=1")
        .await
        .expect_error(400, "invalid.value");
    assert_eq!(err["entityId"], "R1");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("[1]") && m.contains("R1"))
    );
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(0),
        "atomic"
    );

    // Bulk external contacts: a per-entity error; the others are applied.
    let ents = json!({"entities": [{"firstName": "x0"}, {"firstName": "x1"}, {"firstName": "x2"}]});
    let r = e
        .call_with(
            Method::POST,
            "/api/v2/externalcontacts/bulk/contacts/add",
            Some(ents),
            Some(&e.token),
            &[("x-emulator-fault", "record-failure=2")],
        )
        .await
        .expect(200);
    assert_eq!(r["errorCount"], 1);
    let failed = &r["results"][r["errorIndexes"][0].as_u64().expect("index") as usize];
    assert_eq!(failed["error"]["entity"]["firstName"], "x2");
    assert_eq!(failed["error"]["retryable"], false);

    // From a profile: 4xx record failures are a property of the record, stable across retries.
    let mut rf = FaultRule::new(FaultKind::RecordFailure, 0.3);
    rf.paths = vec!["/api/v2/outbound/contactlists/*/contacts".into()];
    e.emu.state().set_faults(FaultProfile {
        seed: Some(11),
        rules: vec![rf],
        ..FaultProfile::default()
    });
    let many: Vec<Value> = (0..40)
        .map(|i| contact(&list, Some(&format!("P{i}")), "+1", "p"))
        .collect();
    let mut offenders = Vec::new();
    for c in &many {
        let r = add(&e, &list, json!([c]), "").await;
        if r.status.as_u16() == 400 {
            offenders.push(r.body["entityId"].as_str().expect("entityId").to_owned());
        } else {
            assert_eq!(r.status.as_u16(), 200, "{}", r.raw);
        }
    }
    assert!(
        !offenders.is_empty() && offenders.len() < 40,
        "{offenders:?}"
    );
    for o in &offenders {
        let c = many
            .iter()
            .find(|c| c["id"] == o.as_str())
            .expect("offender");
        add(&e, &list, json!([c]), "")
            .await
            .expect_error(400, "invalid.value");
    }
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(40 - offenders.len())
    );
}

#[tokio::test]
async fn merge_conflicts_on_sources_with_active_associations() {
    let e = start_default().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            e.create_ext(json!({"firstName": format!("m{i}")})).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let merge = |ids: Value, fault: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = fault
            .map(|f| vec![("x-emulator-fault", f)])
            .unwrap_or_default();
        let e = &e;
        async move {
            e.call_with(
                Method::POST,
                "/api/v2/externalcontacts/contacts/merge",
                Some(json!({"contactIds": ids})),
                Some(&e.token),
                &headers,
            )
            .await
        }
    };
    let err = merge(json!([ids[0], ids[1]]), Some("merge-conflict"))
        .await
        .expect_error(409, "general.conflict");
    assert_eq!(err["entityId"], ids[0].as_str());

    let flag = e
        .admin(
            Method::PUT,
            &format!("/__emulator/externalcontacts/{}/associations", ids[3]),
            Some(json!({"active": true})),
        )
        .await
        .expect(200);
    assert_eq!(flag["activeAssociations"], true);
    let err = merge(json!([ids[2], ids[3]]), None)
        .await
        .expect_error(409, "general.conflict");
    assert_eq!(err["entityId"], ids[3].as_str());
    // Nothing was merged.
    assert_eq!(
        e.get(&format!("/api/v2/externalcontacts/contacts/{}", ids[2]))
            .await
            .expect(200)["id"],
        ids[2].as_str()
    );
    e.emu.state().set_active_associations(&ids[3], false);
    merge(json!([ids[2], ids[3]]), None).await.expect(200);

    // From a profile with probability 1, every source conflicts.
    e.emu
        .state()
        .set_faults(profile(vec![FaultRule::new(FaultKind::MergeConflict, 1.0)]));
    merge(json!([ids[0], ids[1]]), None)
        .await
        .expect_error(409, "general.conflict");
    assert_eq!(
        faults(&e, "merge_conflict"),
        2,
        "the header-forced one and the profile one"
    );
}

#[tokio::test]
async fn same_seed_same_faults_for_the_same_request_order() {
    async fn run(seed: u64) -> Vec<u16> {
        let mut r = FaultRule::new(FaultKind::ServerError, 0.5);
        r.statuses = Some(vec![500, 502, 503]);
        let e = start(EmulatorConfig {
            seed,
            faults: profile(vec![r]),
            ..EmulatorConfig::default()
        })
        .await;
        let mut out = Vec::new();
        for _ in 0..30 {
            out.push(e.get("/api/v2/outbound/contactlists").await.status.as_u16());
        }
        e.emu.shutdown().await;
        out
    }
    let a = run(42).await;
    let b = run(42).await;
    assert_eq!(a, b);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500), "{a:?}");
}

#[tokio::test]
async fn faults_over_the_admin_api_and_from_a_file() {
    let e = start_default().await;
    let bad = e
        .admin(
            Method::PUT,
            "/__emulator/faults",
            Some(json!({"rules": [{"kind": "slow", "probability": 3}]})),
        )
        .await
        .expect_error(400, "invalid.value");
    assert!(
        bad["message"]
            .as_str()
            .is_some_and(|m| m.contains("rules[0].probability")),
        "{bad}"
    );
    let typo = e
        .admin(
            Method::PUT,
            "/__emulator/faults",
            Some(json!({"rulez": []})),
        )
        .await
        .expect_error(400, "invalid.value");
    assert!(
        typo["message"]
            .as_str()
            .is_some_and(|m| m.contains("rulez")),
        "{typo}"
    );
    e.admin(
        Method::PUT,
        "/__emulator/faults",
        Some(json!({"seed": 3, "rules": [{"kind": "server_error", "probability": 1.0, "statuses": [502]}]})),
    )
    .await
    .expect(200);
    e.get("/api/v2/outbound/contactlists")
        .await
        .expect_error(502, "bad.gateway");
    let got = e
        .admin(Method::GET, "/__emulator/faults", None)
        .await
        .expect(200);
    assert_eq!(got["rules"][0]["kind"], "server_error");
    e.admin(Method::PUT, "/__emulator/faults", Some(json!({})))
        .await
        .expect(200);
    e.get("/api/v2/outbound/contactlists").await.expect(200);

    let dir = std::env::temp_dir().join(format!("dedupd-emu-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("faults.toml");
    std::fs::write(&file, "seed = 1\n[[rules]]\nkind = \"gateway_timeout_applied\"\nprobability = 0.02\nmethods = [\"POST\"]\n")
        .expect("write");
    let p = EmulatorConfig::from_faults_file(&file).expect("valid file");
    assert_eq!(p.rules[0].kind, FaultKind::GatewayTimeoutApplied);
    std::fs::write(&file, "[[rules]]\nkind = \"slow\"\ndelay = 5\n").expect("write");
    let err = EmulatorConfig::from_faults_file(&file)
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("delay"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
    // An invalid profile in the config is refused at start.
    let cfg = EmulatorConfig {
        faults: profile(vec![FaultRule::new(FaultKind::Slow, 2.0)]),
        ..EmulatorConfig::default()
    };
    assert!(dedupd_emulator::RunningEmulator::start(cfg).await.is_err());
    // Unknown header directives are a 400, not silently ignored.
    e.call_with(
        Method::GET,
        "/api/v2/outbound/contactlists",
        None,
        Some(&e.token),
        &[("x-emulator-fault", "boom")],
    )
    .await
    .expect_error(400, "bad.request");
}

#[tokio::test]
async fn a_scheduled_outage_serves_n_requests_then_answers_503_until_it_ends() {
    let e = start_default().await;
    e.emu.state().outage_after(2);
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    for _ in 0..3 {
        e.get("/api/v2/outbound/contactlists")
            .await
            .expect_error(503, "service.unavailable");
    }
    // The token endpoint is down too.
    let t = e
        .token_request(
            "dedupd-demo",
            "dedupd-demo-secret",
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(t.status.as_u16(), 503);
    assert_eq!(faults(&e, "outage"), 4);
    e.emu.state().end_outage();
    e.get("/api/v2/outbound/contactlists").await.expect(200);
    e.new_token().await;
}
