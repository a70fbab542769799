//! Customer cards: bulk seed, search and scan, get, merge semantics, custom fields.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use dedupd_emulator::cxone::{CxoneSeed, SeedCustomer, SeedIdentity};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{inbound, start_default};

fn person(id: &str, first: &str, last: &str, email: &str, phone: &str) -> SeedCustomer {
    SeedCustomer {
        id: Some(id.into()),
        first_name: Some(first.into()),
        surname: Some(last.into()),
        emails: vec![email.into()],
        phones: vec![phone.into()],
        ..SeedCustomer::default()
    }
}

#[tokio::test]
async fn twenty_thousand_cards_seed_in_one_call_and_scan_completely() {
    let cx = start_default().await;
    let customers: Vec<Value> = (0..20_000)
        .map(|i| {
            json!({
                "id": format!("C{i:08}"),
                "firstName": format!("First{i}"),
                "lastName": format!("Last{}", i % 97),
                "emails": [format!("p{i}@example.com")],
                "phones": [format!("+1555{i:07}")],
                "customFields": {"source": "crm"},
            })
        })
        .collect();
    let out = cx
        .admin(
            Method::POST,
            "/__emulator/seed",
            Some(json!({"customers": customers})),
        )
        .await
        .expect(200);
    assert_eq!(out["customers"].as_array().map(Vec::len), Some(20_000));
    // A scan: no query, pages of 100 (a larger size is clamped), following scrollToken.
    let mut seen = BTreeSet::new();
    let mut path = "/dfo/3.0/customers?size=500".to_owned();
    let mut pages = 0;
    loop {
        let page = cx.get(&path).await.expect(200);
        assert_eq!(page["hits"], 20_000);
        let data = page["data"].as_array().expect("data");
        assert!(data.len() <= 100);
        for c in data {
            assert!(
                seen.insert(c["id"].as_str().expect("id").to_owned()),
                "no repeats"
            );
        }
        pages += 1;
        match page.get("scrollToken").and_then(Value::as_str) {
            Some(t) => path = format!("/dfo/3.0/customers?size=500&scrollToken={t}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20_000);
    assert_eq!(
        pages, 201,
        "200 full pages, then an empty one ends the scan"
    );
    let one = cx.get("/dfo/3.0/customers/C00000042").await.expect(200);
    assert_eq!(one["surname"], "Last42");
    assert_eq!(one["fullName"], "First42 Last42");
    assert_eq!(one["customFields"][0]["ident"], "source");
    let defs = cx
        .get("/dfo/3.0/customers/custom-field-definitions")
        .await
        .expect(200);
    assert_eq!(defs[0]["ident"], "source", "seeded idents get a definition");
}

#[tokio::test]
async fn the_sdk_query_shapes_find_cards() {
    let cx = start_default().await;
    cx.seed(CxoneSeed {
        customers: vec![
            person("A", "Jane", "Doe", "jane@example.com", "+15550001"),
            person("B", "John", "Doe", "john@example.com", "+15550002"),
            person("C", "Mary", "Major", "mary@example.com", "+15550003"),
        ],
        ..CxoneSeed::default()
    });
    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Unencoded as the SDK sends it (reqwest encodes spaces; parentheses and commas raw).
    let r = cx
        .get("/dfo/3.0/customers?query=identityIdOnExternalPlatform NOT IN (jane@example.com, x) AND fullName LIKE doe&size=10")
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["B"]);
    let r = cx
        .get("/dfo/3.0/customers?query=email=mary@example.com")
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["C"]);
    // Keys run together (an SDK bug) still work.
    let r = cx
        .get("/dfo/3.0/customers?query=email=jane@example.comphone=%2B15550001")
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["A"]);
    let r = cx
        .get("/dfo/3.0/customers?&size=25&query=Doe&orderBy=updatedAt&order=desc")
        .await
        .expect(200);
    assert_eq!(r["hits"], 2);
    for c in r["data"].as_array().expect("data") {
        for k in [
            "id",
            "firstName",
            "surname",
            "fullName",
            "customFields",
            "identities",
            "messageStatistics",
            "updatedAt",
        ] {
            assert!(c.get(k).is_some(), "{k} in {c}");
        }
        assert!(c.get("lastName").is_none(), "surname, not lastName");
    }
    cx.get("/dfo/3.0/customers?query=a = b OR c = d")
        .await
        .expect_dfo_error(400);
    cx.get("/dfo/3.0/customers?orderBy=shoeSize")
        .await
        .expect_dfo_error(400);
    cx.get("/dfo/3.0/customers?size=0")
        .await
        .expect_dfo_error(400);
    cx.get("/dfo/3.0/customers/nope")
        .await
        .expect_dfo_error(404);
}

#[tokio::test]
async fn merge_moves_identities_and_conversations_drops_the_rest_and_cannot_repeat() {
    let cx = start_default().await;
    let ch = cx.seed_channel();
    cx.seed(CxoneSeed {
        custom_field_definitions: vec![
            json!({"ident": "canonical", "label": "Canonical", "type": "text"}),
        ],
        customers: vec![
            SeedCustomer {
                custom_fields: BTreeMap::from([("canonical".to_owned(), "K-target".to_owned())]),
                ..person("T", "Jane", "Doe", "jane@example.com", "+15550001")
            },
            SeedCustomer {
                first_name: Some("Janet".into()),
                identities: vec![SeedIdentity {
                    id_on_external_platform: "jdoe-chat".into(),
                    ..SeedIdentity::default()
                }],
                custom_fields: BTreeMap::from([("canonical".to_owned(), "K-source".to_owned())]),
                ..person("S", "Janet", "Doe", "janet@example.com", "+15550001")
            },
        ],
        ..CxoneSeed::default()
    });
    // A conversation of the source.
    cx.post(
        &format!("/dfo/3.0/channels/{ch}/messages"),
        inbound("m1", "t1", "janet@example.com", "hi"),
    )
    .await
    .expect(200);
    let r = cx
        .put(
            "/dfo/3.0/customers/T/merge",
            json!({"customerToMerge": {"id": "S"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
    assert!(r.raw.is_empty());
    let t = cx.get("/dfo/3.0/customers/T").await.expect(200);
    let idents: Vec<&str> = t["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["idOnExternalPlatform"].as_str())
        .collect();
    assert_eq!(
        idents,
        vec![
            "jane@example.com",
            "+15550001",
            "janet@example.com",
            "jdoe-chat"
        ]
    );
    assert_eq!(t["firstName"], "Jane", "the target keeps its own names");
    assert_eq!(t["customFields"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        t["customFields"][0]["value"], "K-target",
        "the source's custom fields are gone"
    );
    assert_eq!(
        t["messageStatistics"]["inbound"], 1,
        "its conversation moved"
    );
    // The source is gone for every call; a repeated merge is a 404, not a success.
    cx.get("/dfo/3.0/customers/S").await.expect_dfo_error(404);
    cx.put(
        "/dfo/3.0/customers/T/merge",
        json!({"customerToMerge": {"id": "S"}}),
    )
    .await
    .expect_dfo_error(404);
    let found = cx
        .get("/dfo/3.0/customers?query=identity=janet@example.com")
        .await
        .expect(200);
    assert_eq!(found["data"][0]["id"], "T");
    // A new message from a moved identity lands on the survivor.
    let m = cx
        .post(
            &format!("/dfo/3.0/channels/{ch}/messages"),
            inbound("m2", "t2", "jdoe-chat", "again"),
        )
        .await
        .expect(200);
    assert_eq!(m["consumerContact"]["endUser"]["id"], "T");
    // The admin view keeps the merged card and where it went.
    let s = cx
        .admin(Method::GET, "/__emulator/customers/S", None)
        .await
        .expect(200);
    assert_eq!(s["mergedInto"], "T");
    assert_eq!(cx.emu.state().merged_into("S").as_deref(), Some("T"));
    assert_eq!(cx.emu.state().customers(false).len(), 1);
    assert_eq!(cx.emu.state().customers(true).len(), 2);
    // Errors.
    cx.put(
        "/dfo/3.0/customers/T/merge",
        json!({"customerToMerge": {"id": "T"}}),
    )
    .await
    .expect_dfo_error(400);
    let e = cx
        .put("/dfo/3.0/customers/T/merge", json!({}))
        .await
        .expect_dfo_error(400);
    assert_eq!(e["errors"][0]["field"], "customerToMerge.id");
    cx.put(
        "/dfo/3.0/customers/nope/merge",
        json!({"customerToMerge": {"id": "T"}}),
    )
    .await
    .expect_dfo_error(404);
}

#[tokio::test]
async fn merge_conflicts_and_504_applied_merges() {
    let cx = start_default().await;
    cx.seed(CxoneSeed {
        customers: vec![
            person("A", "A", "A", "a@x.com", "+1"),
            person("B", "B", "B", "b@x.com", "+2"),
            person("C", "C", "C", "c@x.com", "+3"),
        ],
        ..CxoneSeed::default()
    });
    let e = cx
        .call_with(
            Method::PUT,
            "/dfo/3.0/customers/A/merge",
            Some(json!({"customerToMerge": {"id": "B"}})),
            Some(&cx.token),
            &[("x-emulator-fault", "merge-conflict")],
        )
        .await
        .expect_dfo_error(409);
    assert_eq!(e["errors"][0]["errorCode"], "CustomerMergeConflict");
    cx.get("/dfo/3.0/customers/B").await.expect(200);
    assert_eq!(cx.faults("merge_conflict"), 1);
    // 504 after the merge was done: the read-back shows it.
    cx.call_with(
        Method::PUT,
        "/dfo/3.0/customers/A/merge",
        Some(json!({"customerToMerge": {"id": "C"}})),
        Some(&cx.token),
        &[("x-emulator-fault", "504-applied")],
    )
    .await
    .expect_dfo_error(504);
    cx.get("/dfo/3.0/customers/C").await.expect_dfo_error(404);
    assert_eq!(cx.emu.state().merged_into("C").as_deref(), Some("A"));
}

#[tokio::test]
async fn custom_fields_need_a_definition_and_keep_the_others() {
    let cx = start_default().await;
    cx.seed(CxoneSeed {
        customers: vec![person("A", "A", "A", "a@x.com", "+1")],
        ..CxoneSeed::default()
    });
    let e = cx
        .put(
            "/dfo/3.0/customers/A/custom-fields",
            json!([{"ident": "dedupd_dups", "value": "3"}]),
        )
        .await
        .expect_dfo_error(400);
    assert_eq!(e["errors"][0]["field"], "[0].ident");
    let r = cx
        .put(
            "/dfo/3.0/customers/custom-field-definitions",
            json!({"ident": "dedupd_dups", "label": "Duplicates", "type": "text"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    cx.put(
        "/dfo/3.0/customers/custom-field-definitions",
        json!({"ident": "x", "label": "X", "type": "number"}),
    )
    .await
    .expect_dfo_error(400);
    let defs = cx
        .get("/dfo/3.0/customers/custom-field-definitions")
        .await
        .expect(200);
    assert_eq!(defs.as_array().map(Vec::len), Some(1));
    cx.put(
        "/dfo/3.0/customers/custom-field-definitions",
        json!({"ident": "note", "label": "Note", "type": "text"}),
    )
    .await
    .expect(204);
    cx.put(
        "/dfo/3.0/customers/A/custom-fields",
        json!([{"ident": "note", "value": "keep"}]),
    )
    .await
    .expect(200);
    let c = cx
        .put(
            "/dfo/3.0/customers/A/custom-fields",
            json!([{"ident": "dedupd_dups", "value": "3"}]),
        )
        .await
        .expect(200);
    let fields: BTreeMap<String, String> = c["customFields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f["ident"].as_str().unwrap_or_default().to_owned(),
                f["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(fields.get("note").map(String::as_str), Some("keep"));
    assert_eq!(fields.get("dedupd_dups").map(String::as_str), Some("3"));
    cx.put(
        "/dfo/3.0/customers/A/custom-fields",
        json!({"ident": "note"}),
    )
    .await
    .expect_dfo_error(400);
    let r = cx
        .delete("/dfo/3.0/customers/A/custom-fields/note", None)
        .await;
    assert_eq!(r.status.as_u16(), 204);
    cx.delete("/dfo/3.0/customers/A/custom-fields/note", None)
        .await
        .expect_dfo_error(404);
    cx.put("/dfo/3.0/customers/nope/custom-fields", json!([]))
        .await
        .expect_dfo_error(404);
}

#[tokio::test]
async fn seeding_names_the_bad_item() {
    let cx = start_default().await;
    let dup = cx
        .admin(
            Method::POST,
            "/__emulator/seed",
            Some(json!({"customers": [{"id": "A"}, {"id": "A"}]})),
        )
        .await
        .expect_dfo_error(400);
    assert!(
        dup["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("customers[1].id"))
    );
    let typo = cx
        .admin(
            Method::POST,
            "/__emulator/seed",
            Some(json!({"customerz": []})),
        )
        .await
        .expect_dfo_error(400);
    assert!(
        typo["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("customerz"))
    );
}
