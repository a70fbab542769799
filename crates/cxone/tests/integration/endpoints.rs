//! Each typed endpoint, as the emulator answers it.

use dedupd_cxone::{
    CustomField, Error, Identity, InboundByocMessage, ListMapping, MessageContent, OutboundMessage,
    Recipient, ThreadRef, Upload,
};
use dedupd_emulator::cxone::{CxoneSeed, SeedCustomer};

use crate::common::*;

fn outbound(thread: &str, to: &str) -> OutboundMessage {
    OutboundMessage {
        thread: ThreadRef {
            id_on_external_platform: thread.into(),
            thread_name: None,
        },
        message_content: MessageContent::text("Your order shipped."),
        recipients: vec![Recipient {
            id_on_external_platform: to.into(),
            name: None,
            is_primary: true,
            is_private: false,
        }],
        title: None,
    }
}

#[tokio::test]
async fn outbound_send_creates_a_thread_that_reads_back_exactly() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let dfo = client.dfo();
    assert!(dfo.find_thread("dedupd-n-1").await.unwrap().is_none());
    let created = dfo
        .send_outbound(CHANNEL, &outbound("dedupd-n-1", "+14155550101"))
        .await
        .unwrap();
    assert!(created.message.and_then(|m| m.id).is_some());
    assert!(created.consumer_contact.and_then(|c| c.id).is_some());
    let thread = dfo.find_thread("dedupd-n-1").await.unwrap().unwrap();
    assert_eq!(
        thread.id_on_external_platform.as_deref(),
        Some("dedupd-n-1")
    );
    // The search matches loosely ("contains"); the client compares exactly.
    assert!(dfo.find_thread("dedupd-n-").await.unwrap().is_none());
    let err = dfo
        .send_outbound("no-such-channel", &outbound("dedupd-n-2", "+14155550101"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api(_)));
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
}

#[tokio::test]
async fn a_byoc_message_creates_a_card_and_reads_back_by_its_id() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let dfo = client.dfo();
    let msg = InboundByocMessage {
        id_on_external_platform: "fp-1".into(),
        thread: ThreadRef {
            id_on_external_platform: "dedupd-m-fp-1".into(),
            thread_name: None,
        },
        direction: "inbound",
        created_at_with_milliseconds: InboundByocMessage::timestamp(chrono::Utc::now()),
        message_content: MessageContent::text("Where is my order?"),
        author_end_user_identity: Identity {
            id_on_external_platform: "+14155550102".into(),
            ..Identity::default()
        },
        external_attributes: Vec::new(),
    };
    let created = dfo.ingest_message(CHANNEL, &msg).await.unwrap();
    let contact_id = created.consumer_contact.and_then(|c| c.id).unwrap();
    let found = dfo.find_messages(CHANNEL, "fp-1").await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(dfo.find_messages(CHANNEL, "fp-2").await.unwrap().is_empty());
    let contact = dfo.contact(&contact_id).await.unwrap();
    let card = contact.end_user.unwrap();
    assert!(
        card.identities
            .iter()
            .any(|i| i.id_on_external_platform == "+14155550102")
    );
}

#[tokio::test]
async fn customers_search_get_custom_fields_and_merge() {
    let emu = default_emulator().await;
    emu.state()
        .seed(&CxoneSeed {
            customers: vec![
                SeedCustomer {
                    id: Some("C1".into()),
                    first_name: Some("Jane".into()),
                    surname: Some("Doe".into()),
                    emails: vec!["jane@example.com".into()],
                    ..SeedCustomer::default()
                },
                SeedCustomer {
                    id: Some("C2".into()),
                    first_name: Some("Jane".into()),
                    surname: Some("Doe".into()),
                    phones: vec!["+14155550103".into()],
                    ..SeedCustomer::default()
                },
            ],
            ..CxoneSeed::default()
        })
        .unwrap();
    let client = client_for(&emu).await;
    let dfo = client.dfo();
    let page = dfo.search_customers(None, 10, None).await.unwrap();
    assert_eq!(page.hits, Some(2));
    let c1 = dfo.customer("C1").await.unwrap();
    assert_eq!(c1.surname.as_deref(), Some("Doe"));

    // A value of an undefined field is refused, with the platform's message.
    let field = CustomField {
        ident: "dedupd_key".into(),
        value: "k-1".into(),
    };
    let err = dfo
        .set_custom_fields("C1", std::slice::from_ref(&field))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert!(
        err.error_body()
            .and_then(|b| b.platform_message())
            .is_some()
    );
    client.ensure_custom_fields(&["dedupd_key"]).await.unwrap();
    dfo.set_custom_fields("C1", std::slice::from_ref(&field))
        .await
        .unwrap();
    assert_eq!(
        dfo.customer("C1").await.unwrap().custom_field("dedupd_key"),
        Some("k-1")
    );

    dfo.merge_customers("C1", "C2").await.unwrap();
    assert_eq!(emu.state().merged_into("C2").as_deref(), Some("C1"));
    let err = dfo.customer("C2").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    let err = dfo.merge_customers("C1", "C2").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert!(err.to_string().contains("PUT /customers/C1/merge"), "{err}");
}

#[tokio::test]
async fn calling_list_mapping_upload_job_download_and_remove_prospects() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let admin = client.admin();
    let list_id = admin
        .create_calling_list(&ListMapping {
            list_name: "dedupd-endpoints".into(),
            external_id_column: "key".into(),
            first_name_column: None,
            last_name_column: None,
            destinations: vec![("PhoneNumber".into(), "phone".into())],
        })
        .await
        .unwrap();
    let file = "key,phone\r\nk1,+14155550104\r\nk2,+14155550105\r\n";
    use base64::Engine as _;
    let upload = Upload {
        list_file: base64::engine::general_purpose::STANDARD.encode(file),
        file_name: "endpoints.csv".into(),
        skill_id: 4242,
        force_overwrite: false,
        expiration_date: "2027-12-31".into(),
        start_skill: false,
        send_email: false,
    };
    let job = admin.upload(&list_id, &upload).await.unwrap();
    let status = admin.upload_job(&job).await.unwrap().unwrap();
    assert!(status.is_complete);
    assert!(
        admin
            .upload_jobs()
            .await
            .unwrap()
            .iter()
            .any(|j| j.file_name.as_deref() == Some("endpoints.csv"))
    );
    let list = admin.download(&list_id, Some((0, 100))).await.unwrap();
    assert_eq!(list.valid_records, Some(2));
    assert_eq!(list.contact_records.len(), 2);
    let removed = admin
        .remove_prospects("dedupd-endpoints", &["k1".into(), "k9".into()])
        .await
        .unwrap();
    assert_eq!(removed.successful_records.len(), 1);
    assert_eq!(removed.failed_records.len(), 1);
    assert_eq!(
        admin.download(&list_id, None).await.unwrap().valid_records,
        Some(1)
    );
    assert!(
        admin
            .calling_lists()
            .await
            .unwrap()
            .iter()
            .any(|l| l.list_id.as_deref() == Some(list_id.as_str()))
    );

    // A missing skill is the Admin API's 400 with its code.
    let err = admin
        .upload(
            &list_id,
            &Upload {
                skill_id: 0,
                ..upload
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(
        err.error_body().and_then(|b| b.error_code()),
        Some("InvalidSkillId")
    );
}

#[tokio::test]
async fn dnc_groups_records_add_expire_and_search() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    let admin = client.admin();
    let group = admin
        .create_dnc_group("dedupd-endpoints", None)
        .await
        .unwrap();
    let id = group.dnc_group_id.unwrap();
    let w = admin
        .add_dnc_records(&id, &["+1 (415) 555-0106".into()])
        .await
        .unwrap();
    assert_eq!(w.error_count, Some(0));
    let again = admin
        .add_dnc_records(&id, &["+14155550106".into()])
        .await
        .unwrap();
    assert_eq!(
        again.record_results[0].error.as_deref(),
        Some("DuplicateRecord")
    );
    let hits = admin.search_dnc("+14155550106").await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].expired_date, None);
    admin
        .expire_dnc_records(&id, &["+14155550106".into()])
        .await
        .unwrap();
    let hits = admin.search_dnc("+14155550106").await.unwrap();
    assert!(hits[0].expired_date.is_some());
    assert!(
        admin
            .dnc_groups()
            .await
            .unwrap()
            .iter()
            .any(|g| g.dnc_group_id.as_deref() == Some(id.as_str()))
    );
}
