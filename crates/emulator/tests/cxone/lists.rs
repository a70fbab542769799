//! Calling lists: mapping, upload jobs, download, duplicates on re-upload, remove prospects,
//! error codes, the Accept header and API versions.

use dedupd_emulator::cxone::{CxoneEmulatorConfig, UploadRepeat};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Cx, V, b64, roomy, start, start_default};

/// Creates a list `name` (ExternalId, phone, first) → its id.
async fn create_list(cx: &Cx, name: &str) -> i64 {
    let r = cx
        .post(
            &format!("{V}/lists/call-lists?listName={name}&externalIdColumn=ExternalId&firstNameColumn=first"),
            json!({"destinationMappings": [{"fieldName": "PhoneNumber", "fieldValue": "phone"}]}),
        )
        .await
        .expect(200);
    r["listId"].as_i64().expect("numeric listId")
}

fn upload_body(csv: &str) -> Value {
    json!({
        "listFile": b64(csv.as_bytes()),
        "fileName": "contacts.csv",
        "skillId": 4242,
        "forceOverwrite": true,
        "expirationDate": "2027-12-31",
        "startSkill": false,
        "sendEmail": false,
    })
}

async fn upload(cx: &Cx, list: i64, csv: &str) -> i64 {
    let r = cx
        .post(
            &format!("{V}/lists/call-lists/{list}/upload"),
            upload_body(csv),
        )
        .await
        .expect(202);
    r["jobId"].as_i64().expect("numeric jobId")
}

async fn job(cx: &Cx, job: i64) -> Value {
    cx.get(&format!("{V}/lists/call-lists/jobs/{job}"))
        .await
        .expect(200)["uploadJobs"][0]
        .clone()
}

async fn records(cx: &Cx, list: i64) -> Vec<Value> {
    let r = cx
        .get(&format!(
            "{V}/lists/call-lists/{list}?includeRecords=true&top=100"
        ))
        .await
        .expect(200);
    r["resultSet"]["contactRecords"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn upload_is_a_job_whose_rows_arrive_when_it_completes() {
    let cx = start_default().await;
    let list = create_list(&cx, "sync").await;
    let csv = "ExternalId,phone,first\r\nK1,+15550001,Ann\r\nK2,(555) 000-0002,Bo\r\n,+15550003,NoId\r\nK4,,NoPhone\r\n";
    let j = upload(&cx, list, csv).await;
    // Not complete on the first read: nothing in the list yet.
    let first = job(&cx, j).await;
    assert_eq!(first["isComplete"], false);
    assert_eq!(first["listId"], list);
    assert!(records(&cx, list).await.is_empty());
    let second = job(&cx, j).await;
    assert_eq!(second["isComplete"], true);
    assert!(second["completedDate"].is_string());
    assert!(
        second.get("validRecords").is_none(),
        "no per-record counts on a job"
    );
    let got = records(&cx, list).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        json!({"ExternalId": "K1", "phone": "+15550001", "first": "Ann"})
    );
    let rs = cx
        .get(&format!("{V}/lists/call-lists/{list}"))
        .await
        .expect(200)["resultSet"]
        .clone();
    assert_eq!(rs["validRecords"], 2);
    assert_eq!(rs["invalidRecords"], 2, "no id, no phone");
    assert_eq!(
        rs["totalRecords"], "4",
        "a string, as some live answers give it"
    );
    assert!(
        rs.get("contactRecords").is_none(),
        "records only with includeRecords=true"
    );
    let all = cx.get(&format!("{V}/lists/call-lists")).await.expect(200);
    assert_eq!(all["callingLists"][0]["listId"], list);
    let jobs = cx
        .get(&format!("{V}/lists/call-lists/jobs"))
        .await
        .expect(200);
    assert_eq!(jobs["uploadJobs"].as_array().map(Vec::len), Some(1));
    let admin = cx.emu.state().upload_jobs();
    assert_eq!(admin[0]["startSkill"], false);
    assert_eq!(admin[0]["skillId"], 4242);
    assert_eq!(
        cx.emu.state().calling_list(list).expect("list")["skillStarted"],
        false
    );
}

#[tokio::test]
async fn the_same_external_id_uploaded_twice_is_a_duplicate_unless_removed_first() {
    let cx = start(CxoneEmulatorConfig {
        upload_job_polls: 0,
        ..roomy()
    })
    .await;
    let list = create_list(&cx, "dups").await;
    upload(&cx, list, "ExternalId,phone\nK1,+15550001\nK2,+15550002\n").await;
    upload(&cx, list, "ExternalId,phone\nK1,+15550009\n").await;
    let ids: Vec<String> = records(&cx, list)
        .await
        .iter()
        .map(|r| r["ExternalId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec!["K1", "K2", "K1"],
        "a re-upload appends: a duplicate"
    );
    // Remove the prospect by external id (through the list name), then upload it again.
    let r = cx
        .delete(
            &format!("{V}/lists/call-lists/dups/removeProspects"),
            Some(json!({"prospectsToRemove": [{"externalId": "K1"}, {"externalId": 77}]})),
        )
        .await
        .expect(200);
    assert_eq!(
        r["successfulRecords"],
        json!([{"externalId": "K1", "resultCode": "Success"}])
    );
    assert_eq!(
        r["failedRecords"],
        json!([{"externalId": "77", "resultCode": "NotFound"}])
    );
    upload(&cx, list, "ExternalId,phone\nK1,+15550009\n").await;
    let got = records(&cx, list).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["phone"], "+15550009");
    cx.delete(
        &format!("{V}/lists/call-lists/nope/removeProspects"),
        Some(json!({"prospectsToRemove": [{"externalId": "K1"}]})),
    )
    .await
    .expect_admin_error(404, "InvalidSourceName");
}

#[tokio::test]
async fn the_replace_policy_updates_by_external_id() {
    let cx = start(CxoneEmulatorConfig {
        upload_job_polls: 0,
        upload_repeat: UploadRepeat::Replace,
        ..roomy()
    })
    .await;
    let list = create_list(&cx, "rep").await;
    upload(&cx, list, "ExternalId,phone\nK1,+15550001\nK2,+15550002\n").await;
    upload(&cx, list, "ExternalId,phone\nK1,+15550009\n").await;
    let got = records(&cx, list).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], json!({"ExternalId": "K1", "phone": "+15550009"}));
}

#[tokio::test]
async fn jobs_complete_in_order_and_can_be_cancelled() {
    let cx = start(CxoneEmulatorConfig {
        upload_job_polls: 3,
        ..roomy()
    })
    .await;
    let list = create_list(&cx, "order").await;
    let j1 = upload(&cx, list, "ExternalId,phone\nA,+15550001\n").await;
    let j2 = upload(&cx, list, "ExternalId,phone\nB,+15550002\n").await;
    let j3 = upload(&cx, list, "ExternalId,phone\nC,+15550003\n").await;
    let r = cx
        .delete(&format!("{V}/lists/call-lists/jobs/{j3}"), None)
        .await;
    assert_eq!(r.status.as_u16(), 204);
    // Completing j2 completes j1 first.
    for _ in 0..3 {
        assert_eq!(job(&cx, j2).await["isComplete"], false);
    }
    assert_eq!(job(&cx, j2).await["isComplete"], true);
    assert_eq!(job(&cx, j1).await["isComplete"], true);
    let j3v = job(&cx, j3).await;
    assert_eq!(j3v["isCancelled"], true);
    assert_eq!(j3v["isComplete"], false);
    let ids: Vec<Value> = records(&cx, list)
        .await
        .iter()
        .map(|r| r["ExternalId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("A"), json!("B")]);
    cx.delete(&format!("{V}/lists/call-lists/jobs/{j1}"), None)
        .await
        .expect_admin_error(400, "InvalidJobState");
    cx.get(&format!("{V}/lists/call-lists/jobs/999"))
        .await
        .expect_admin_error(404, "InvalidJobId");
    // The admin API completes what is pending.
    let j4 = upload(&cx, list, "ExternalId,phone\nD,+15550004\n").await;
    let done = cx
        .admin(Method::POST, "/__emulator/upload-jobs/complete", None)
        .await
        .expect(200);
    assert_eq!(done["completed"], 1);
    assert_eq!(job(&cx, j4).await["isComplete"], true);
}

#[tokio::test]
async fn upload_and_mapping_errors_use_the_qa_codes() {
    let cx = start_default().await;
    let list = create_list(&cx, "errs").await;
    let path = format!("{V}/lists/call-lists/{list}/upload");
    let csv = "ExternalId,phone\nK1,+1555\n";
    let mut no_skill = upload_body(csv);
    no_skill.as_object_mut().map(|o| o.remove("skillId"));
    cx.post(&path, no_skill)
        .await
        .expect_admin_error(400, "InvalidSkillId");
    let mut empty_skill = upload_body(csv);
    empty_skill["skillId"] = json!("");
    cx.post(&path, empty_skill)
        .await
        .expect_admin_error(400, "InvalidSkillId");
    let mut bad_overwrite = upload_body(csv);
    bad_overwrite["forceOverwrite"] = json!("yes");
    cx.post(&path, bad_overwrite)
        .await
        .expect_admin_error(400, "InvalidOverwrite");
    let mut not_b64 = upload_body(csv);
    not_b64["listFile"] = json!("%%%");
    cx.post(&path, not_b64)
        .await
        .expect_admin_error(400, "InvalidListFile");
    let mut xlsx = upload_body(csv);
    xlsx["fileName"] = json!("list.xlsx");
    cx.post(&path, xlsx)
        .await
        .expect_admin_error(400, "InvalidListFile");
    for bad in ["abc", "99999999999", "0", "4242"] {
        cx.post(
            &format!("{V}/lists/call-lists/{bad}/upload"),
            upload_body(csv),
        )
        .await
        .expect_admin_error(404, "InvalidListId");
        cx.get(&format!("{V}/lists/call-lists/{bad}"))
            .await
            .expect_admin_error(404, "InvalidListId");
    }
    cx.post(
        &format!("{V}/lists/call-lists?externalIdColumn=x"),
        json!({"destinationMappings": []}),
    )
    .await
    .expect_admin_error(400, "InvalidListName");
    cx.post(
        &format!("{V}/lists/call-lists?listName=x"),
        json!({"destinationMappings": []}),
    )
    .await
    .expect_admin_error(400, "InvalidExternalIdColumn");
    cx.post(
        &format!("{V}/lists/call-lists?listName=x&externalIdColumn=id"),
        json!({}),
    )
    .await
    .expect_admin_error(400, "InvalidDestinationMappings");
    cx.get(&format!("{V}/lists/call-lists/{list}?updatedSince=tuesday"))
        .await
        .expect_admin_error(400, "InvalidUpdatedSince");
    // The same name again: a second list (creation is not idempotent).
    let again = create_list(&cx, "errs").await;
    assert_ne!(again, list);
    // Delete: gone afterwards.
    let r = cx
        .delete(
            &format!("{V}/lists/call-lists/{again}?forceInactive=true&forceDelete=true"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    cx.get(&format!("{V}/lists/call-lists/{again}"))
        .await
        .expect_admin_error(404, "InvalidListId");
    let att = cx
        .get(&format!("{V}/lists/call-lists/{list}/attempts"))
        .await
        .expect(200);
    assert_eq!(att["resultSet"]["contactAttempts"], json!([]));
}

#[tokio::test]
async fn admin_paths_need_accept_json_and_a_known_version() {
    let cx = start_default().await;
    // Without Accept: application/json (reqwest sends */* by default).
    let r = crate::common::to_resp(
        cx.http
            .get(format!("{}{V}/dnc-groups", cx.base))
            .bearer_auth(&cx.token)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(r.status.as_u16(), 406);
    assert_eq!(r.raw, "No known way to render data");
    for v in ["v29.0", "v4.0", "vX"] {
        cx.get(&format!("/inContactAPI/services/{v}/dnc-groups"))
            .await
            .expect_admin_error(404, "InvalidApiVersion");
    }
    for v in ["v11.0", "v12.0", "v15.0", "v30.0", "v31.0"] {
        cx.get(&format!("/inContactAPI/services/{v}/lists/call-lists"))
            .await
            .expect(200);
    }
    // Without the Accept rule when configured off.
    let lax = start(CxoneEmulatorConfig {
        admin_requires_accept_json: false,
        ..roomy()
    })
    .await;
    let r = crate::common::to_resp(
        lax.http
            .get(format!("{}{V}/dnc-groups", lax.base))
            .bearer_auth(&lax.token)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200);
}

#[tokio::test]
async fn a_504_applied_upload_queued_its_job_and_bad_rows_are_isolated_by_external_id() {
    let cx = start(CxoneEmulatorConfig {
        upload_job_polls: 0,
        ..roomy()
    })
    .await;
    let list = create_list(&cx, "faulty").await;
    cx.call_with(
        Method::POST,
        &format!("{V}/lists/call-lists/{list}/upload"),
        Some(upload_body(
            "ExternalId,phone\nK1,+15550001\nK2,+15550002\nK3,+15550003\n",
        )),
        Some(&cx.token),
        &[("x-emulator-fault", "504-applied; record-failure=1")],
    )
    .await
    .expect_admin_error(504, "GatewayTimeout");
    let ids: Vec<Value> = records(&cx, list)
        .await
        .iter()
        .map(|r| r["ExternalId"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("K1"), json!("K3")],
        "the work was done; row 1 refused"
    );
    let rs = cx
        .get(&format!("{V}/lists/call-lists/{list}"))
        .await
        .expect(200)["resultSet"]
        .clone();
    assert_eq!(rs["invalidRecords"], 1);
    assert_eq!(cx.emu.state().upload_jobs().len(), 1);
}
