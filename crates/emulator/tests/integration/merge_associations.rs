//! Merge pre-conditions `merge apply` relies on: a contact in an open conversation has active
//! associations (409 naming it) until the conversation ends; merged inputs carry `mergedTo`;
//! a second merge of the same heads is refused.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::start_default;

const EC: &str = "/api/v2/externalcontacts/contacts";

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn an_open_conversation_blocks_the_merge_until_it_ends() {
    let e = start_default().await;
    let a = id(&e
        .create_ext(json!({"firstName": "Ann", "workEmail": "ann@example.com"}))
        .await);
    let b = id(&e
        .create_ext(json!({"firstName": "Ann", "lastName": "Lee"}))
        .await);
    // The customer writes in from her address: the conversation's participant is contact a.
    let msg = e
        .post(
            "/api/v2/conversations/messages/int-1/inbound/open/message",
            json!({
                "channel": {"from": {"id": "ann@example.com", "idType": "Email"},
                            "time": "2026-11-24T10:00:00.000Z", "messageId": "m-1"},
                "text": "hello"
            }),
        )
        .await
        .expect(200);
    let conversation = msg["conversationId"]
        .as_str()
        .expect("conversation")
        .to_owned();
    let conv = e
        .get(&format!("/api/v2/conversations/{conversation}"))
        .await
        .expect(200);
    assert!(
        conv["participants"]
            .as_array()
            .expect("participants")
            .iter()
            .any(|p| p["externalContactId"] == a.as_str()),
        "{conv}"
    );

    let refused = e
        .post(&format!("{EC}/merge"), json!({"contactIds": [b, a]}))
        .await
        .expect_error(409, "general.conflict");
    assert_eq!(
        refused["entityId"],
        a.as_str(),
        "the 409 names the associated contact"
    );
    assert!(e.emu.state().external_contact(&a).expect("a")["mergedTo"].is_null());

    e.admin(
        Method::POST,
        &format!("/__emulator/conversations/{conversation}/disconnect"),
        None,
    )
    .await
    .expect(200);
    let merged = e
        .post(&format!("{EC}/merge"), json!({"contactIds": [b, a]}))
        .await
        .expect(200);
    let c = id(&merged);
    for input in [&a, &b] {
        let original = e.get(&format!("{EC}/{input}/unresolved")).await.expect(200);
        assert_eq!(original["mergedTo"]["id"], c.as_str());
        assert_eq!(original["canonicalContact"]["id"], c.as_str());
    }
    // Merging the same inputs again is refused: they already share one canonical contact.
    e.post(&format!("{EC}/merge"), json!({"contactIds": [a, b]}))
        .await
        .expect_error(400, "invalid.value");
}
