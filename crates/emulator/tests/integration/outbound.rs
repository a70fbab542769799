//! Outbound contact lists and contacts.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{contact, start_default};

#[tokio::test]
async fn add_contacts_is_an_upsert_by_id() {
    let e = start_default().await;
    let list = e.create_list("upsert", &["phone", "name"]).await;
    let path = format!("/api/v2/outbound/contactlists/{list}/contacts");

    let first = e
        .post(
            &path,
            json!([contact(&list, Some("K1"), "+14155550001", "Ann")]),
        )
        .await
        .expect(200);
    assert_eq!(first[0]["id"], "K1");
    assert_eq!(first[0]["callable"], true);
    assert!(first[0]["dateCreated"].is_string());
    let second = e
        .post(
            &path,
            json!([contact(&list, Some("K1"), "+14155550001", "Ann B")]),
        )
        .await
        .expect(200);
    assert_eq!(second[0]["data"]["name"], "Ann B");
    assert_eq!(
        second[0]["dateCreated"], first[0]["dateCreated"],
        "an update keeps the creation date"
    );

    let stored = e
        .emu
        .state()
        .contact_list_contacts(&list)
        .expect("list exists");
    assert_eq!(stored.len(), 1, "same id twice is one contact");
    assert_eq!(stored[0]["data"]["name"], "Ann B");

    // Without an id the platform generates one.
    let generated = e
        .post(&path, json!([contact(&list, None, "+14155550002", "Bob")]))
        .await
        .expect(200);
    let gid = generated[0]["id"].as_str().expect("generated id");
    assert_eq!(gid.len(), 36);
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(2)
    );

    // The admin view is the same data.
    let admin = e
        .admin(
            Method::GET,
            &format!("/__emulator/contactlists/{list}/contacts"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(admin.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn callable_and_contactable_status_round_trip() {
    let e = start_default().await;
    let list = e.create_list("dnc", &["phone", "name"]).await;
    let path = format!("/api/v2/outbound/contactlists/{list}/contacts");
    let mut c = contact(&list, Some("K9"), "+14155550009", "Dee");
    c["callable"] = json!(false);
    c["contactableStatus"] = json!({"Voice": {"contactable": false}, "SMS": {"contactable": false, "columnStatus": {"phone": {"contactable": false}}}});
    c["phoneNumberStatus"] = json!({"phone": {"callable": false}});
    e.post(&path, json!([c])).await.expect(200);
    let got = e.get(&format!("{path}/K9")).await.expect(200);
    assert_eq!(got["callable"], false);
    assert_eq!(got["contactableStatus"]["Voice"]["contactable"], false);
    assert_eq!(
        got["contactableStatus"]["SMS"]["columnStatus"]["phone"]["contactable"],
        false
    );
    assert_eq!(got["phoneNumberStatus"]["phone"]["callable"], false);

    // An upsert without the status keeps it (system data) unless clearSystemData=true.
    e.post(
        &path,
        json!([contact(&list, Some("K9"), "+14155550009", "Dee 2")]),
    )
    .await
    .expect(200);
    let got = e.get(&format!("{path}/K9")).await.expect(200);
    assert_eq!(got["callable"], false);
    assert_eq!(got["data"]["name"], "Dee 2");
    e.post(
        &format!("{path}?clearSystemData=true"),
        json!([contact(&list, Some("K9"), "+14155550009", "Dee 3")]),
    )
    .await
    .expect(200);
    let got = e.get(&format!("{path}/K9")).await.expect(200);
    assert_eq!(got["callable"], true);
    assert!(got.get("contactableStatus").is_none());
}

#[tokio::test]
async fn batch_limit_is_1000() {
    let e = start_default().await;
    let list = e.create_list("big", &["phone", "name"]).await;
    let path = format!("/api/v2/outbound/contactlists/{list}/contacts");
    let batch = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| {
                    contact(
                        &list,
                        Some(&format!("K{i}")),
                        &format!("+1415555{i:04}"),
                        "x",
                    )
                })
                .collect(),
        )
    };
    let err = e
        .post(&path, batch(1001))
        .await
        .expect_error(400, "invalid.value");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("1000")),
        "{err}"
    );
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(0),
        "nothing applied"
    );
    let ok = e.post(&path, batch(1000)).await.expect(200);
    assert_eq!(ok.as_array().map(Vec::len), Some(1000));
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(1000)
    );
}

#[tokio::test]
async fn invalid_records_reject_the_batch_naming_the_record() {
    let e = start_default().await;
    let list = e.create_list("v", &["phone", "name"]).await;
    let path = format!("/api/v2/outbound/contactlists/{list}/contacts");
    let good = contact(&list, Some("G"), "+1", "g");
    let mut wrong_list = contact(&list, Some("W"), "+1", "w");
    wrong_list["contactListId"] = json!("other");
    let err = e
        .post(&path, json!([good.clone(), wrong_list]))
        .await
        .expect_error(400, "invalid.value");
    assert_eq!(err["entityId"], "W");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("[1]")));
    assert_eq!(err["details"][0]["fieldName"], "contactListId");

    let mut unknown_col = contact(&list, Some("U"), "+1", "u");
    unknown_col["data"]["shoe"] = json!("42");
    let err = e
        .post(&path, json!([unknown_col]))
        .await
        .expect_error(400, "invalid.value");
    assert_eq!(err["details"][0]["fieldName"], "data.shoe");

    let no_data = json!([{"id": "N", "contactListId": list}]);
    e.post(&path, no_data)
        .await
        .expect_error(400, "invalid.value");
    // Wrong JSON types are caught by the schema: callable must be a boolean.
    let mut typed = contact(&list, Some("T"), "+1", "t");
    typed["callable"] = json!("yes");
    e.post(&path, json!([typed]))
        .await
        .expect_error(400, "invalid.value");
    // Malformed JSON, and a non-array body.
    let r = e
        .http
        .post(format!("{}{path}", e.base))
        .bearer_auth(&e.token)
        .header("content-type", "application/json")
        .body("[{\"id\": ")
        .send()
        .await
        .expect("sent");
    crate::common::to_resp(r)
        .await
        .expect_error(400, "bad.request");
    e.post(&path, json!({"id": "x"}))
        .await
        .expect_error(400, "invalid.value");
    assert_eq!(
        e.emu.state().contact_list_contacts(&list).map(|c| c.len()),
        Some(0)
    );
    // Unknown list.
    e.post("/api/v2/outbound/contactlists/nope/contacts", json!([]))
        .await
        .expect_error(404, "not.found");
}

#[tokio::test]
async fn contact_crud_bulk_get_delete_and_search() {
    let e = start_default().await;
    let list = e.create_list("crud", &["phone", "name", "age"]).await;
    let path = format!("/api/v2/outbound/contactlists/{list}/contacts");
    let mut batch = Vec::new();
    for (i, (name, age)) in [("Ann", "31"), ("Bob", "45"), ("Cid", "9"), ("Dora", "45")]
        .iter()
        .enumerate()
    {
        batch.push(json!({"id": format!("C{i}"), "contactListId": list, "data": {"phone": format!("+1415555000{i}"), "name": name, "age": age}}));
    }
    e.post(&path, Value::Array(batch)).await.expect(200);

    // PUT echoes server fields (as the SDKs do); they are ignored.
    let mut fetched = e.get(&format!("{path}/C1")).await.expect(200);
    fetched["data"]["name"] = json!("Bobby");
    fetched["selfUri"] = json!("/whatever");
    fetched["dateCreated"] = json!("2001-01-01T00:00:00.000Z");
    let put = e
        .call(Method::PUT, &format!("{path}/C1"), Some(fetched))
        .await
        .expect(200);
    assert_eq!(put["data"]["name"], "Bobby");
    assert_ne!(put["dateCreated"], "2001-01-01T00:00:00.000Z");
    e.call(
        Method::PUT,
        &format!("{path}/nope"),
        Some(contact(&list, None, "+1", "x")),
    )
    .await
    .expect_error(404, "not.found");

    let bulk = e
        .post(&format!("{path}/bulk"), json!(["C2", "missing", "C0"]))
        .await
        .expect(200);
    let ids: Vec<&str> = bulk
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["C2", "C0"]);

    let search = |criteria: Value| json!({"pageNumber": 1, "pageSize": 10, "criteria": criteria});
    let eq = e
        .post(
            &format!("{path}/search"),
            search(json!({"filterType": "AND", "clauses": [{"filterType": "AND", "predicates": [{"column": "age", "columnType": "numeric", "operator": "EQUALS", "value": "45"}]}]})),
        )
        .await
        .expect(200);
    assert_eq!(eq["total"], 2);
    assert_eq!(eq["contactsCount"], 4);
    let contains = e
        .post(
            &format!("{path}/search"),
            search(json!({"clauses": [{"predicates": [{"column": "name", "operator": "CONTAINS", "value": "o"}]}]})),
        )
        .await
        .expect(200);
    assert_eq!(contains["total"], 2, "Bobby and Dora: {contains}");
    let inset = e
        .post(
            &format!("{path}/search"),
            search(json!({"clauses": [{"predicates": [{"column": "name", "operator": "IN", "range": {"inSet": ["Ann", "Cid"]}}]}]})),
        )
        .await
        .expect(200);
    assert_eq!(inset["total"], 2);
    e.post(
        &format!("{path}/search"),
        json!({"pageNumber": 1, "pageSize": 101}),
    )
    .await
    .expect_error(400, "invalid.value");

    // DELETE one, and many with the SDKs' comma-joined form.
    e.call(Method::DELETE, &format!("{path}/C3"), None)
        .await
        .expect(200);
    e.call(Method::DELETE, &format!("{path}/C3"), None)
        .await
        .expect_error(404, "not.found");
    e.call(Method::DELETE, &format!("{path}?contactIds=C0%2CC1"), None)
        .await
        .expect(200);
    let left = e.emu.state().contact_list_contacts(&list).expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], "C2");
}

#[tokio::test]
async fn contact_list_crud_paging_and_version_check() {
    let e = start_default().await;
    for i in 0..5 {
        e.create_list(&format!("list {i}"), &["phone"]).await;
    }
    let page = e
        .get("/api/v2/outbound/contactlists?pageSize=2&pageNumber=2")
        .await
        .expect(200);
    assert_eq!(page["total"], 5);
    assert_eq!(page["pageCount"], 3);
    assert_eq!(page["entities"].as_array().map(Vec::len), Some(2));
    assert!(page["nextUri"].is_string() && page["previousUri"].is_string());
    let last = e
        .get("/api/v2/outbound/contactlists?pageSize=2&pageNumber=3")
        .await
        .expect(200);
    assert!(last.get("nextUri").is_none());
    e.get("/api/v2/outbound/contactlists?pageSize=101")
        .await
        .expect_error(400, "invalid.value");
    let named = e
        .get("/api/v2/outbound/contactlists?name=list%203")
        .await
        .expect(200);
    assert_eq!(named["total"], 1);

    let id = e.create_list("versioned", &["phone", "name"]).await;
    let path = format!("/api/v2/outbound/contactlists/{id}");
    let mut got = e.get(&format!("{path}?includeSize=true")).await.expect(200);
    assert_eq!(got["version"], 1);
    assert_eq!(got["size"], 0);
    assert_eq!(got["division"]["name"], "Home");
    got["name"] = json!("renamed");
    let put = e
        .call(Method::PUT, &path, Some(got.clone()))
        .await
        .expect(200);
    assert_eq!(put["version"], 2);
    e.call(Method::PUT, &path, Some(got.clone()))
        .await
        .expect_error(409, "general.conflict");
    got.as_object_mut().map(|m| m.remove("version"));
    e.call(Method::PUT, &path, Some(got))
        .await
        .expect_error(400, "invalid.value");
    e.post(
        "/api/v2/outbound/contactlists",
        json!({"name": "no columns"}),
    )
    .await
    .expect_error(400, "invalid.value");
    e.call(Method::DELETE, &path, None).await.expect(200);
    e.get(&path).await.expect_error(404, "not.found");
    assert!(e.emu.state().contact_list_contacts(&id).is_none());
}

#[tokio::test]
async fn sdk_quirks_are_accepted() {
    let e = start_default().await;
    let list = e.create_list("quirks", &["phone", "name"]).await;
    // GET with Content-Type: application/json and a literal `null` body.
    let r = e
        .http
        .get(format!("{}/api/v2/outbound/contactlists/{list}", e.base))
        .bearer_auth(&e.token)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .expect("sent");
    let r = crate::common::to_resp(r).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.raw);
    // Unknown paths and methods answer with one ErrorBody.
    e.get("/api/v2/nothing/here")
        .await
        .expect_error(404, "not.found");
    e.call(
        Method::PATCH,
        &format!("/api/v2/outbound/contactlists/{list}/contacts/x"),
        None,
    )
    .await
    .expect_error(405, "method.not.allowed");
    // Wrong query types.
    e.get("/api/v2/outbound/contactlists?pageSize=abc")
        .await
        .expect_error(400, "invalid.value");
    // A required body that is the literal null.
    let r = e
        .http
        .post(format!("{}/api/v2/outbound/contactlists", e.base))
        .bearer_auth(&e.token)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .expect("sent");
    crate::common::to_resp(r)
        .await
        .expect_error(400, "bad.request");
    // A non-JSON content type.
    let r = e
        .http
        .post(format!("{}/api/v2/outbound/contactlists", e.base))
        .bearer_auth(&e.token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("sent");
    crate::common::to_resp(r)
        .await
        .expect_error(415, "unsupported.media.type");
}
