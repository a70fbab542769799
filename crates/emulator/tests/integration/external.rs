//! External Contacts: CRUD, PATCH, search, scan, lookup, merge and bulk.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Emu, start_default};

const EC: &str = "/api/v2/externalcontacts/contacts";

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn fresh(e: &Emu, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let c = e
            .create_ext(json!({"firstName": format!("{tag}{i}"), "lastName": "Fresh", "workEmail": format!("{tag}{i}@example.com")}))
            .await;
        ids.push(id(&c));
    }
    ids
}

#[tokio::test]
async fn crud_patch_and_lookup() {
    let e = start_default().await;
    let c = e
        .create_ext(json!({
            "firstName": " Ann ", "lastName": "Lee", "workEmail": "Ann@Example.com",
            "cellPhone": {"display": "(415) 555-2671"},
            "externalIds": [{"externalSource": {"id": "crm"}, "value": "CUST_1"}]
        }))
        .await;
    let cid = id(&c);
    assert_eq!(c["firstName"], "Ann");
    assert_eq!(c["type"], "Curated");
    assert_eq!(c["cellPhone"]["e164"], "+14155552671");
    assert!(c["createDate"].is_string() && c["modifyDate"].is_string());
    let types: BTreeSet<&str> = c["identifiers"]
        .as_array()
        .expect("identifiers")
        .iter()
        .filter_map(|i| i["type"].as_str())
        .collect();
    assert_eq!(types, BTreeSet::from(["Email", "Phone", "ExternalId"]));

    let got = e.get(&format!("{EC}/{cid}")).await.expect(200);
    assert_eq!(got["lastName"], "Lee");

    // PUT replaces, ignoring echoed server fields.
    let mut put = got.clone();
    put["title"] = json!("Dr");
    put["modifyDate"] = json!("2001-01-01T00:00:00.000Z");
    let put = e
        .call(Method::PUT, &format!("{EC}/{cid}"), Some(put))
        .await
        .expect(200);
    assert_eq!(put["title"], "Dr");
    assert_ne!(put["modifyDate"], "2001-01-01T00:00:00.000Z");

    // PATCH with changes.
    let patched = e
        .call(
            Method::PATCH,
            &format!("{EC}/{cid}"),
            Some(json!({"changes": [
                {"field": "$.firstName", "action": "UpdateIfEmpty", "value": "Nope"},
                {"field": "$.middleName", "action": "UpdateIfEmpty", "value": "M"},
                {"field": "$.title", "action": "Remove"},
                {"field": "$.address.city", "action": "Update", "value": "Paris"},
                {"field": "$.externalIds", "action": "AppendToCollection", "value": {"externalSource": {"id": "web"}, "value": "W1"}}
            ]})),
        )
        .await
        .expect(200);
    assert_eq!(patched["firstName"], "Ann");
    assert_eq!(patched["middleName"], "M");
    assert!(patched.get("title").is_none());
    assert_eq!(patched["address"]["city"], "Paris");
    assert_eq!(patched["externalIds"].as_array().map(Vec::len), Some(2));
    e.call(
        Method::PATCH,
        &format!("{EC}/{cid}"),
        Some(json!({"changes": [{"field": "$.workEmail", "action": "Update", "value": "bad"}]})),
    )
    .await
    .expect_error(400, "invalid.value");
    e.call(
        Method::PATCH,
        &format!("{EC}/{cid}"),
        Some(json!({"changes": [{"field": "$.firstName", "action": "Smash", "value": "x"}]})),
    )
    .await
    .expect_error(400, "invalid.value");

    // Identifier lookup.
    let look = |t: &str, v: &str| json!({"type": t, "value": v});
    let by_mail = e
        .post(
            "/api/v2/externalcontacts/identifierlookup/contacts",
            look("Email", "ann@example.com"),
        )
        .await
        .expect(200);
    assert_eq!(id(&by_mail), cid);
    let by_phone = e
        .post(
            "/api/v2/externalcontacts/identifierlookup/contacts",
            look("Phone", "+14155552671"),
        )
        .await
        .expect(200);
    assert_eq!(id(&by_phone), cid);
    let by_ext = e
        .post(
            "/api/v2/externalcontacts/identifierlookup/contacts",
            json!({"type": "ExternalId", "value": "CUST_1", "externalSource": {"id": "crm", "name": "crm"}}),
        )
        .await
        .expect(200);
    assert_eq!(id(&by_ext), cid);
    e.post(
        "/api/v2/externalcontacts/identifierlookup/contacts",
        look("Phone", "4155552671"),
    )
    .await
    .expect_error(400, "invalid.value");
    e.post(
        "/api/v2/externalcontacts/identifierlookup/contacts",
        look("Email", "nobody@example.com"),
    )
    .await
    .expect_error(404, "not.found");
    e.post(
        "/api/v2/externalcontacts/identifierlookup/contacts",
        look("Shoe", "x"),
    )
    .await
    .expect_error(400, "invalid.value");

    // Delete.
    assert_eq!(
        e.call(Method::DELETE, &format!("{EC}/{cid}"), None)
            .await
            .expect(200),
        json!({})
    );
    e.get(&format!("{EC}/{cid}"))
        .await
        .expect_error(404, "not.found");
    e.post(EC, json!({"firstName": 12}))
        .await
        .expect_error(400, "invalid.value");
}

#[tokio::test]
async fn search_and_scan_with_cursor() {
    let e = start_default().await;
    let ids = fresh(&e, 25, "scan").await;
    e.create_ext(json!({"firstName": "Zed", "lastName": "Unique"}))
        .await;

    let s = e.get(&format!("{EC}?q=unique")).await.expect(200);
    assert_eq!(s["total"], 1);
    assert_eq!(s["entities"][0]["firstName"], "Zed");
    let all = e
        .get(&format!("{EC}?q=fresh&pageSize=10&pageNumber=3"))
        .await
        .expect(200);
    assert_eq!(all["total"], 25);
    assert_eq!(all["entities"].as_array().map(Vec::len), Some(5));
    e.get(&format!("{EC}?pageSize=100&pageNumber=11"))
        .await
        .expect_error(400, "invalid.value");

    let mut seen = Vec::new();
    let mut path = "/api/v2/externalcontacts/scan/contacts?limit=10".to_owned();
    let mut pages = 0;
    loop {
        let page = e.get(&path).await.expect(200);
        pages += 1;
        for c in page["entities"].as_array().expect("entities") {
            seen.push(id(c));
        }
        match page.get("nextUri").and_then(Value::as_str) {
            Some(next) => {
                assert!(page["cursors"]["after"].is_string());
                path = next.to_owned();
            }
            None => {
                assert!(
                    page.get("cursors").and_then(|c| c.get("after")).is_none(),
                    "no cursor on the last page"
                );
                break;
            }
        }
        assert!(pages < 10, "scan must end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 26);
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 26, "no contact twice");
    assert!(ids.iter().all(|i| distinct.contains(i)));
    e.get("/api/v2/externalcontacts/scan/contacts?limit=5")
        .await
        .expect_error(400, "invalid.value");
    e.get("/api/v2/externalcontacts/scan/contacts?cursor=garbage")
        .await
        .expect_error(400, "invalid.value");
}

#[tokio::test]
async fn merge_creates_a_new_canonical_and_resolves_old_ids() {
    let e = start_default().await;
    let older = e
        .create_ext(json!({"firstName": "Annie", "lastName": "Lee", "workEmail": "ann@old.example", "title": "Dr",
            "cellPhone": {"display": "+14155550001"}}))
        .await;
    let newer = e
        .create_ext(json!({"firstName": "Ann", "workEmail": "ann@new.example", "cellPhone": {"display": "+14155550002"}}))
        .await;
    let (a, b) = (id(&older), id(&newer));
    let merged = e
        .post(&format!("{EC}/merge"), json!({"contactIds": [a, b]}))
        .await
        .expect(200);
    let c = id(&merged);
    assert!(c != a && c != b, "a NEW canonical contact");
    assert_eq!(
        merged["firstName"], "Ann",
        "the most recently modified contact wins"
    );
    assert_eq!(
        merged["lastName"], "Lee",
        "null fields filled from the other"
    );
    assert_eq!(merged["title"], "Dr");
    assert_eq!(merged["workEmail"], "ann@new.example");
    assert_eq!(
        merged["personalEmail"], "ann@old.example",
        "a conflicting e-mail moves to a free slot"
    );
    assert_eq!(merged["cellPhone"]["e164"], "+14155550002");
    assert_eq!(merged["workPhone"]["e164"], "+14155550001");
    let from: BTreeSet<&str> = merged["mergedFrom"]
        .as_array()
        .expect("mergedFrom")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(from, BTreeSet::from([a.as_str(), b.as_str()]));
    assert_eq!(merged["mergeSet"].as_array().map(Vec::len), Some(3));
    assert_eq!(merged["canonicalContact"]["id"], c.as_str());

    // A GET on a merged-away id resolves to the canonical; unresolved gives the original.
    assert_eq!(id(&e.get(&format!("{EC}/{a}")).await.expect(200)), c);
    let orig = e.get(&format!("{EC}/{a}/unresolved")).await.expect(200);
    assert_eq!(id(&orig), a);
    assert_eq!(orig["firstName"], "Annie");
    assert_eq!(orig["mergedTo"]["id"], c.as_str());
    assert_eq!(orig["canonicalContact"]["id"], c.as_str());
    // Lookup by an old identifier finds the canonical contact.
    let look = e
        .post(
            "/api/v2/externalcontacts/identifierlookup/contacts",
            json!({"type": "Email", "value": "ann@old.example"}),
        )
        .await
        .expect(200);
    assert_eq!(id(&look), c);
    // Merging the same contacts again: they are already one.
    e.post(&format!("{EC}/merge"), json!({"contactIds": [a, b]}))
        .await
        .expect_error(400, "invalid.value");

    // valueOverride: non-null fields win.
    let x = fresh(&e, 2, "ovr").await;
    let m = e
        .post(
            &format!("{EC}/merge"),
            json!({"contactIds": x, "valueOverride": {"firstName": "Chosen", "lastName": null}}),
        )
        .await
        .expect(200);
    assert_eq!(m["firstName"], "Chosen");
    assert_eq!(m["lastName"], "Fresh");
}

#[tokio::test]
async fn merge_limits_2_to_25_and_merge_set_52() {
    let e = start_default().await;
    let one = fresh(&e, 1, "one").await;
    e.post(&format!("{EC}/merge"), json!({"contactIds": one}))
        .await
        .expect_error(400, "invalid.value");
    let many = fresh(&e, 26, "many").await;
    e.post(&format!("{EC}/merge"), json!({"contactIds": many}))
        .await
        .expect_error(400, "invalid.value");
    e.post(
        &format!("{EC}/merge"),
        json!({"contactIds": [many[0], many[0]]}),
    )
    .await
    .expect_error(400, "invalid.value");
    e.post(
        &format!("{EC}/merge"),
        json!({"contactIds": [many[0], "missing"]}),
    )
    .await
    .expect_error(404, "not.found");
    e.post(&format!("{EC}/merge"), json!({}))
        .await
        .expect_error(400, "invalid.value");

    // 25 + 25 sources: two trees of 26 each; together they would make 53 > 52.
    let t1 = e
        .post(&format!("{EC}/merge"), json!({"contactIds": many[..25]}))
        .await
        .expect(200);
    assert_eq!(t1["mergeSet"].as_array().map(Vec::len), Some(26));
    let other = fresh(&e, 25, "other").await;
    let t2 = e
        .post(&format!("{EC}/merge"), json!({"contactIds": other}))
        .await
        .expect(200);
    let err = e
        .post(
            &format!("{EC}/merge"),
            json!({"contactIds": [id(&t1), id(&t2)]}),
        )
        .await
        .expect_error(400, "invalid.value");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("52")),
        "{err}"
    );
    // 26 + 24 fresh + the new head = 51: allowed.
    let more = fresh(&e, 24, "more").await;
    let mut ids = vec![id(&t1)];
    ids.extend(more);
    let t3 = e
        .post(&format!("{EC}/merge"), json!({"contactIds": ids}))
        .await
        .expect(200);
    assert_eq!(t3["mergeSet"].as_array().map(Vec::len), Some(51));
    // The first tree's leaves now resolve to the newest head.
    assert_eq!(
        id(&e.get(&format!("{EC}/{}", many[3])).await.expect(200)),
        id(&t3)
    );
}

#[tokio::test]
async fn bulk_results_are_complete_in_any_order() {
    let e = start_default().await;
    let mut entities: Vec<Value> = (0..20)
        .map(|i| json!({"firstName": format!("B{i}"), "workEmail": format!("b{i}@example.com")}))
        .collect();
    entities[4]["workEmail"] = json!("broken");
    entities[11]["workEmail"] = json!("also broken");
    let r = e
        .post(
            "/api/v2/externalcontacts/bulk/contacts/add",
            json!({"entities": entities}),
        )
        .await
        .expect(200);
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 20, "one result per entity");
    assert_eq!(r["errorCount"], 2);
    let idx: Vec<usize> = r["errorIndexes"]
        .as_array()
        .expect("indexes")
        .iter()
        .filter_map(Value::as_u64)
        .map(|i| i as usize)
        .collect();
    assert_eq!(idx.len(), 2);
    for i in &idx {
        assert_eq!(results[*i]["success"], false);
        assert_eq!(results[*i]["error"]["code"], "invalid.value");
        assert_eq!(results[*i]["status"], 400);
    }
    let names: Vec<String> = results
        .iter()
        .filter(|r| r["success"] == true)
        .map(|r| r["entity"]["firstName"].as_str().expect("name").to_owned())
        .collect();
    let expected: Vec<String> = (0..20)
        .filter(|i| *i != 4 && *i != 11)
        .map(|i| format!("B{i}"))
        .collect();
    assert_ne!(names, expected, "seed 0 shuffles this batch");
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n[1..].parse::<u32>().unwrap_or(0));
    assert_eq!(sorted, expected, "every entity is there");

    let created: Vec<String> = results
        .iter()
        .filter(|r| r["success"] == true)
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    let fetch: Vec<Value> = created
        .iter()
        .map(|i| json!({"id": i}))
        .chain([json!({"id": "missing"})])
        .collect();
    let f = e
        .post(
            "/api/v2/externalcontacts/bulk/contacts",
            json!({"entities": fetch}),
        )
        .await
        .expect(200);
    assert_eq!(f["results"].as_array().map(Vec::len), Some(19));
    assert_eq!(f["errorCount"], 1);

    let upd: Vec<Value> = created[..3]
        .iter()
        .map(|i| json!({"id": i, "firstName": "Updated"}))
        .chain([json!({"id": "missing"})])
        .collect();
    let u = e
        .post(
            "/api/v2/externalcontacts/bulk/contacts/update",
            json!({"entities": upd}),
        )
        .await
        .expect(200);
    assert_eq!(u["errorCount"], 1);
    assert_eq!(
        e.get(&format!("{EC}/{}", created[0])).await.expect(200)["firstName"],
        "Updated"
    );

    let rm: Vec<Value> = created[..5].iter().map(|i| json!({"id": i})).collect();
    let d = e
        .post(
            "/api/v2/externalcontacts/bulk/contacts/remove",
            json!({"entities": rm}),
        )
        .await
        .expect(200);
    assert_eq!(d["errorCount"], 0);
    assert_eq!(d["results"].as_array().map(Vec::len), Some(5));
    e.get(&format!("{EC}/{}", created[0]))
        .await
        .expect_error(404, "not.found");
    e.post(
        "/api/v2/externalcontacts/bulk/contacts/remove",
        json!({"entities": "x"}),
    )
    .await
    .expect_error(400, "invalid.value");
}
