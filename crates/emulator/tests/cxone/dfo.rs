//! Channels, outbound sends, BYOC inbound messages, message / thread / contact searches.

use dedupd_emulator::cxone::{CxoneEmulatorConfig, CxoneSeed, InboundRepeat, SeedCustomer};
use reqwest::Method;
use serde_json::json;

use crate::common::{channel, inbound, outbound, roomy, start, start_default};

#[tokio::test]
async fn channels_are_created_listed_and_filtered() {
    let cx = start_default().await;
    let created = cx
        .post("/dfo/3.0/channels", channel("c1"))
        .await
        .expect(200);
    assert_eq!(created["id"], "c1");
    let mut private = channel("c2");
    private["isPrivate"] = json!(false);
    cx.post("/dfo/3.0/channels", private).await.expect(200);
    // Same id again replaces.
    let mut renamed = channel("c1");
    renamed["name"] = json!("Renamed");
    cx.post("/dfo/3.0/channels", renamed).await.expect(200);
    let all = cx.get("/dfo/3.0/channels").await.expect(200);
    let all = all.as_array().expect("a bare array");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["name"], "Renamed");
    let only = cx
        .get("/dfo/3.0/channels?isPrivate=false")
        .await
        .expect(200);
    assert_eq!(only.as_array().map(Vec::len), Some(1));
    let by_id = cx.get("/dfo/3.0/channels?id[]=c2").await.expect(200);
    assert_eq!(by_id[0]["id"], "c2");
    let mut bad = channel("c3");
    bad.as_object_mut()
        .map(|o| o.remove("channelIntegrationId"));
    let err = cx
        .post("/dfo/3.0/channels", bad)
        .await
        .expect_dfo_error(400);
    assert_eq!(err["errors"][0]["field"], "channelIntegrationId");
}

#[tokio::test]
async fn outbound_sends_every_time_it_is_called() {
    let cx = start_default().await;
    let ch = cx.seed_channel();
    let path = format!("/dfo/3.0/channels/{ch}/outbound");
    // What NICE's SDK sends besides the body.
    let first = cx
        .call_with(
            Method::POST,
            &path,
            Some(outbound("notif-1", "+15550100", "Your order shipped")),
            Some(&cx.token),
            &[
                ("Originating-Service-Identifier", "CXoneAgent"),
                ("x-message-sender", "cxagent"),
                ("X-Trace-Id", "trace-1"),
                ("content-type", "application/json; charset=UTF-8"),
            ],
        )
        .await
        .expect(202);
    assert_eq!(first["message"]["direction"], "outbound");
    assert_eq!(first["message"]["threadIdOnExternalPlatform"], "notif-1");
    assert!(first["message"]["id"].is_string());
    assert!(first["consumerContact"]["id"].is_string());
    let customer = first["consumerContact"]["endUser"]["id"]
        .as_str()
        .expect("end user")
        .to_owned();
    // The same send again: a second message, same thread (no idempotency).
    let second = cx
        .post(
            &path,
            outbound("notif-1", "+15550100", "Your order shipped"),
        )
        .await
        .expect(202);
    assert_ne!(second["message"]["id"], first["message"]["id"]);
    assert_eq!(
        second["consumerContact"]["id"],
        first["consumerContact"]["id"]
    );
    let msgs = cx.emu.state().messages();
    assert_eq!(msgs.len(), 2, "two sends, two messages");
    assert!(msgs.iter().all(|m| m["customerId"] == customer.as_str()));
    // The recipient became a customer card (an identity seen for the first time).
    let card = cx
        .get(&format!("/dfo/3.0/customers/{customer}"))
        .await
        .expect(200);
    assert_eq!(card["identities"][0]["idOnExternalPlatform"], "+15550100");
    assert_eq!(card["messageStatistics"]["outbound"], 2);
    // Read-back handle: the thread exists once a send created it.
    let threads = cx.get("/dfo/3.0/threads?query=notif-1").await.expect(200);
    assert_eq!(threads["totalRecords"], 1);
    assert_eq!(threads["data"][0]["idOnExternalPlatform"], "notif-1");
    assert_eq!(threads["data"][0]["channelId"], ch.as_str());
    let none = cx.get("/dfo/3.0/threads?query=notif-2").await.expect(200);
    assert_eq!(none["totalRecords"], 0);
    // Thread search is a "contains" search: an exact look-up must compare.
    cx.post(&path, outbound("notif-10", "+15550100", "x"))
        .await
        .expect(202);
    let loose = cx
        .get("/dfo/3.0/threads?query=notif-1&withContext=1")
        .await
        .expect(200);
    assert_eq!(loose["totalRecords"], 2);
    assert!(
        loose["_context"]["messages"]
            .as_array()
            .is_some_and(|m| m.len() == 3)
    );
}

#[tokio::test]
async fn outbound_is_refused_when_the_channel_or_body_is_wrong() {
    let cx = start_default().await;
    cx.post(
        "/dfo/3.0/channels/nope/outbound",
        outbound("t", "+1555", "x"),
    )
    .await
    .expect_dfo_error(404);
    // A channel created without hasOutboundFlow does not send.
    cx.post("/dfo/3.0/channels", channel("quiet"))
        .await
        .expect(200);
    let e = cx
        .post(
            "/dfo/3.0/channels/quiet/outbound",
            outbound("t", "+1555", "x"),
        )
        .await
        .expect_dfo_error(400);
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("hasOutboundFlow"))
    );
    let ch = cx.seed_channel();
    let path = format!("/dfo/3.0/channels/{ch}/outbound");
    let mut no_recipients = outbound("t", "+1555", "x");
    no_recipients["recipients"] = json!([]);
    let e = cx.post(&path, no_recipients).await.expect_dfo_error(400);
    assert_eq!(e["errors"][0]["field"], "recipients");
    let mut no_text = outbound("t", "+1555", "x");
    no_text["messageContent"]["payload"] = json!({});
    let e = cx.post(&path, no_text).await.expect_dfo_error(400);
    assert_eq!(e["errors"][0]["field"], "messageContent.payload.text");
    let e = cx
        .call_with(
            Method::POST,
            &path,
            None,
            Some(&cx.token),
            &[("content-type", "text/plain")],
        )
        .await
        .expect_dfo_error(400);
    assert_eq!(e["errors"][0]["field"], "$");
    assert!(cx.emu.state().messages().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn byoc_inbound_creates_customers_and_a_repeat_is_a_duplicate() {
    let cx = start_default().await;
    let ch = cx.seed_channel();
    let path = format!("/dfo/3.0/channels/{ch}/messages");
    let first = cx
        .post(&path, inbound("m-1", "conv-1", "+15550101", "hello"))
        .await
        .expect(200);
    assert_eq!(first["message"]["idOnExternalPlatform"], "m-1");
    assert_eq!(
        first["message"]["authorEndUserIdentity"]["idOnExternalPlatform"],
        "+15550101"
    );
    let jane = first["consumerContact"]["endUser"].clone();
    assert_eq!(jane["firstName"], "Jane");
    assert_eq!(jane["surname"], "Doe");
    assert_eq!(jane["fullName"], "Jane Doe");
    // The same message id again: stored a second time (the least forgiving reading).
    let again = cx
        .post(&path, inbound("m-1", "conv-1", "+15550101", "hello"))
        .await
        .expect(200);
    assert_ne!(again["message"]["id"], first["message"]["id"]);
    assert_eq!(again["consumerContact"]["endUser"]["id"], jane["id"]);
    let found = cx
        .get(&format!(
            "/dfo/3.0/messages?idOnExternalPlatform[]=m-1&channel[]={ch}"
        ))
        .await
        .expect(200);
    assert_eq!(found["hits"], 2);
    // Another author on another thread: another card.
    let other = cx
        .post(&path, inbound("m-2", "conv-2", "bob@example.com", "hi"))
        .await
        .expect(200);
    assert_ne!(other["consumerContact"]["endUser"]["id"], jane["id"]);
    // Searches.
    let by_author = cx
        .get("/dfo/3.0/messages?authorIdOnExternalPlatform[]=BOB@example.com")
        .await
        .expect(200);
    assert_eq!(by_author["hits"], 1);
    let by_text = cx
        .get("/dfo/3.0/messages?contentContains=HELLO&direction=inbound")
        .await
        .expect(200);
    assert_eq!(by_text["hits"], 2);
    assert_eq!(
        cx.get("/dfo/3.0/messages?direction=outbound")
            .await
            .expect(200)["hits"],
        0
    );
    let id = other["message"]["id"].as_str().expect("id");
    let one = cx.get(&format!("/dfo/3.0/messages/{id}")).await.expect(200);
    assert_eq!(one["idOnExternalPlatform"], "m-2");
    cx.get("/dfo/3.0/messages/nope").await.expect_dfo_error(404);
    // Required fields, named.
    for (field, mutate) in [
        ("idOnExternalPlatform", "idOnExternalPlatform"),
        ("thread.idOnExternalPlatform", "thread"),
        ("createdAtWithMilliseconds", "createdAtWithMilliseconds"),
        ("authorEndUserIdentity", "authorEndUserIdentity"),
        ("direction", "direction"),
    ] {
        let mut body = inbound("m-9", "conv-9", "+1555", "x");
        body.as_object_mut().map(|o| o.remove(mutate));
        let e = cx.post(&path, body).await.expect_dfo_error(400);
        assert_eq!(e["errors"][0]["field"], field);
    }
    let mut bad_time = inbound("m-9", "conv-9", "+1555", "x");
    bad_time["createdAtWithMilliseconds"] = json!("yesterday");
    cx.post(&path, bad_time).await.expect_dfo_error(400);
    assert_eq!(cx.emu.state().messages().len(), 3);
}

#[tokio::test]
async fn the_reject_policy_refuses_a_repeated_message_id() {
    let cx = start(CxoneEmulatorConfig {
        inbound_repeat: InboundRepeat::Reject,
        ..roomy()
    })
    .await;
    let ch = cx.seed_channel();
    let path = format!("/dfo/3.0/channels/{ch}/messages");
    cx.post(&path, inbound("m-1", "conv-1", "+1555", "x"))
        .await
        .expect(200);
    let e = cx
        .post(&path, inbound("m-1", "conv-1", "+1555", "x"))
        .await
        .expect_dfo_error(409);
    assert_eq!(e["errors"][0]["errorCode"], "MessageAlreadyExists");
    assert_eq!(cx.emu.state().messages().len(), 1);
}

#[tokio::test]
async fn inbound_from_a_known_identity_lands_on_its_card_and_contacts_page() {
    let cx = start_default().await;
    let ch = cx.seed_channel();
    cx.seed(CxoneSeed {
        customers: vec![SeedCustomer {
            id: Some("C-1".into()),
            first_name: Some("Ann".into()),
            surname: Some("Lee".into()),
            phones: vec!["+15550111".into()],
            ..SeedCustomer::default()
        }],
        ..CxoneSeed::default()
    });
    let path = format!("/dfo/3.0/channels/{ch}/messages");
    let mut body = inbound("m-1", "conv-1", "+15550111", "hi");
    body["contact"] = json!({"customFields": [{"ident": "dup", "value": "no"}], "skillId": 42});
    let r = cx.post(&path, body).await.expect(200);
    assert_eq!(r["consumerContact"]["endUser"]["id"], "C-1");
    assert_eq!(r["consumerContact"]["customFields"][0]["ident"], "dup");
    assert_eq!(r["consumerContact"]["skillId"], 42);
    for i in 0..5 {
        cx.post(
            &path,
            inbound(
                &format!("m-x{i}"),
                &format!("conv-x{i}"),
                &format!("+1555020{i}"),
                "x",
            ),
        )
        .await
        .expect(200);
    }
    // Contacts: 6 cases, paged by 4.
    let p1 = cx
        .get(&format!("/dfo/3.0/contacts?channel[]={ch}&size=4"))
        .await
        .expect(200);
    assert_eq!(p1["hits"], 6);
    assert_eq!(p1["data"].as_array().map(Vec::len), Some(4));
    let token = p1["scrollToken"]
        .as_str()
        .expect("a full page has a scrollToken");
    let p2 = cx
        .get(&format!(
            "/dfo/3.0/contacts?channel[]={ch}&size=4&scrollToken={token}"
        ))
        .await
        .expect(200);
    assert_eq!(p2["data"].as_array().map(Vec::len), Some(2));
    assert!(p2.get("scrollToken").is_none());
    // A token of another search is refused.
    cx.get(&format!(
        "/dfo/3.0/contacts?status[]=new&size=4&scrollToken={token}"
    ))
    .await
    .expect_dfo_error(400);
    let mine = cx
        .get("/dfo/3.0/contacts?endUserIdOnExternalPlatform[]=%2B15550111")
        .await
        .expect(200);
    assert_eq!(mine["hits"], 1);
    let id = mine["data"][0]["id"].as_str().expect("id");
    cx.get(&format!("/dfo/3.0/contacts/{id}")).await.expect(200);
    cx.get("/dfo/3.0/contacts/999999")
        .await
        .expect_dfo_error(404);
}
