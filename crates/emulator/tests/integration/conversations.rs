//! Conversations, participant attributes and inbound Open Messaging.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Emu, start_default};

fn inbound(from: &str, text: &str) -> Value {
    json!({
        "channel": {"from": {"id": from, "idType": "Phone", "nickname": "Jo"}, "time": "2026-11-24T10:00:00.000+00:00", "messageId": format!("m-{text}")},
        "text": text,
        "metadata": {"source": "sms"}
    })
}

async fn send(e: &Emu, integration: &str, body: Value) -> Value {
    e.post(
        &format!("/api/v2/conversations/messages/{integration}/inbound/open/message"),
        body,
    )
    .await
    .expect(200)
}

#[tokio::test]
async fn inbound_messages_create_or_join_conversations() {
    let e = start_default().await;
    let contact = e
        .create_ext(json!({"firstName": "Jo", "cellPhone": {"display": "+14155550100"}}))
        .await;
    let m1 = send(&e, "int-1", inbound("+14155550100", "hello")).await;
    let conv = m1["conversationId"]
        .as_str()
        .expect("conversationId")
        .to_owned();
    assert!(m1["id"].is_string());
    assert_eq!(m1["type"], "Text");
    assert_eq!(m1["channel"]["platform"], "Open");
    assert_eq!(m1["channel"]["messageId"], "m-hello");
    let m2 = send(&e, "int-1", inbound("+14155550100", "again")).await;
    assert_eq!(
        m2["conversationId"],
        conv.as_str(),
        "an open conversation is reused for the same sender"
    );
    assert_ne!(m2["id"], m1["id"]);
    let m3 = send(&e, "int-1", inbound("+14155550199", "other")).await;
    assert_ne!(m3["conversationId"], conv.as_str());

    let c = e
        .get(&format!("/api/v2/conversations/{conv}"))
        .await
        .expect(200);
    let customer = c["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["purpose"] == "customer")
        .expect("customer participant")
        .clone();
    assert_eq!(customer["address"], "+14155550100");
    assert_eq!(customer["name"], "Jo");
    assert_eq!(customer["externalContactId"], contact["id"]);
    let pid = customer["id"].as_str().expect("participant id");

    let r = e
        .call(
            Method::PATCH,
            &format!("/api/v2/conversations/{conv}/participants/{pid}/attributes"),
            Some(json!({"attributes": {"dedupd.duplicates": "2", "dedupd.fingerprint": "abc"}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202);
    assert!(r.raw.is_empty(), "202 has no body");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let c = e
        .get(&format!("/api/v2/conversations/{conv}"))
        .await
        .expect(200);
    let customer = c["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["id"] == pid)
        .expect("same participant")
        .clone();
    assert_eq!(customer["attributes"]["dedupd.duplicates"], "2");
    e.call(
        Method::PATCH,
        &format!("/api/v2/conversations/{conv}/participants/{pid}/attributes"),
        Some(json!({"attributes": {"n": 1}})),
    )
    .await
    .expect_error(400, "invalid.value");
    e.call(
        Method::PATCH,
        &format!("/api/v2/conversations/{conv}/participants/nope/attributes"),
        Some(json!({"attributes": {}})),
    )
    .await
    .expect_error(404, "not.found");
    e.get("/api/v2/conversations/nope")
        .await
        .expect_error(404, "not.found");

    // Admin: the messages, and ending a conversation.
    let admin = e
        .admin(
            Method::GET,
            &format!("/__emulator/conversations/{conv}"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(admin["messages"].as_array().map(Vec::len), Some(2));
    e.admin(
        Method::POST,
        &format!("/__emulator/conversations/{conv}/disconnect"),
        None,
    )
    .await
    .expect(200);
    let m4 = send(&e, "int-1", inbound("+14155550100", "later")).await;
    assert_ne!(
        m4["conversationId"],
        conv.as_str(),
        "a disconnected conversation is not reused"
    );
    let all = e
        .admin(Method::GET, "/__emulator/conversations", None)
        .await
        .expect(200);
    assert_eq!(all.as_array().map(Vec::len), Some(3));

    // Validation of the inbound body.
    let mut no_from = inbound("x", "t");
    no_from["channel"].as_object_mut().map(|c| c.remove("from"));
    e.post(
        "/api/v2/conversations/messages/int-1/inbound/open/message",
        no_from,
    )
    .await
    .expect_error(400, "invalid.value");
    let mut bad_type = inbound("x", "t");
    bad_type["channel"]["from"]["idType"] = json!("Pigeon");
    e.post(
        "/api/v2/conversations/messages/int-1/inbound/open/message",
        bad_type,
    )
    .await
    .expect_error(400, "invalid.value");
}

#[tokio::test]
async fn seeded_data_is_served() {
    let e = start_default().await;
    let seeded = e
        .admin(
            Method::POST,
            "/__emulator/seed",
            Some(json!({
                "contactLists": [{"id": "list-1", "name": "Seeded", "columnNames": ["phone", "name"],
                    "contacts": [{"id": "c1", "data": {"phone": "+1", "name": "a"}}]}],
                "externalContacts": [{"id": "ec-1", "firstName": "Seed", "activeAssociations": true}, {"id": "ec-2", "firstName": "Two"}],
                "conversations": [{"id": "conv-1", "participants": [{"id": "p1", "purpose": "customer", "attributes": {"k": "v"}}]}]
            })),
        )
        .await
        .expect(200);
    assert_eq!(seeded["contactLists"], json!(["list-1"]));
    assert_eq!(
        e.get("/api/v2/outbound/contactlists/list-1/contacts/c1")
            .await
            .expect(200)["data"]["name"],
        "a"
    );
    assert_eq!(
        e.get("/api/v2/externalcontacts/contacts/ec-1")
            .await
            .expect(200)["firstName"],
        "Seed"
    );
    assert_eq!(
        e.get("/api/v2/conversations/conv-1").await.expect(200)["participants"][0]["attributes"]["k"],
        "v"
    );
    e.post(
        "/api/v2/externalcontacts/contacts/merge",
        json!({"contactIds": ["ec-2", "ec-1"]}),
    )
    .await
    .expect_error(409, "general.conflict");
    e.admin(
        Method::POST,
        "/__emulator/seed",
        Some(json!({"contactLists": [{"id": "list-1", "name": "dup", "columnNames": ["x"]}]})),
    )
    .await
    .expect_error(409, "general.conflict");
    let r = e
        .http
        .post(format!("{}/__emulator/seed", e.base))
        .body("{not json")
        .send()
        .await
        .expect("sent");
    crate::common::to_resp(r)
        .await
        .expect_error(400, "bad.request");
}
