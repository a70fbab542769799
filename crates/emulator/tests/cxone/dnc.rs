//! DNC groups: create, records add / expire / list, search, skills.

use dedupd_emulator::cxone::{CxoneSeed, SeedDncGroup};
use reqwest::Method;
use serde_json::json;

use crate::common::{V, start_default};

#[tokio::test]
async fn numbers_are_added_expired_and_found() {
    let cx = start_default().await;
    let created = cx
        .post(
            &format!("{V}/dnc-groups"),
            json!({"dncGroupName": "dedupd", "dncGroupDescription": "from sync"}),
        )
        .await
        .expect(200);
    let g = created["dncGroups"][0]["dncGroupId"]
        .as_i64()
        .expect("group id");
    assert_eq!(created["dncGroups"][0]["isActive"], true);
    let add = cx
        .post(
            &format!("{V}/dnc-groups/{g}/records"),
            json!({"dncGroupRecords": [
                {"phoneNumber": 14155550100u64},
                {"phoneNumber": "+1 (415) 555-0101"},
                {"phoneNumber": "12"},
                {"phoneNumber": "14155550102", "expiredDate": "2020-01-01"},
            ]}),
        )
        .await
        .expect(200);
    let rs = &add["resultSet"];
    assert_eq!(rs["errorCount"], 1, "a 200 can hide failed rows: {add}");
    assert_eq!(rs["recordResults"][1]["formattedPhone"], "14155550101");
    assert_eq!(rs["recordResults"][2]["error"], "InvalidPhoneNumber");
    // Adding an active number again is reported as an error and changes nothing.
    let again = cx
        .post(&format!("{V}/dnc-groups/{g}/records"), json!({"dncGroupRecords": [{"phoneNumber": "4155550100"}, {"phoneNumber": "14155550100"}]}))
        .await
        .expect(200);
    assert_eq!(
        again["resultSet"]["recordResults"][0]["success"], true,
        "other digits, other number"
    );
    assert_eq!(
        again["resultSet"]["recordResults"][1]["error"],
        "DuplicateRecord"
    );
    let group = cx.get(&format!("{V}/dnc-groups/{g}")).await.expect(200);
    assert_eq!(
        group["resultSet"]["dncGroups"][0]["validRecords"], 3,
        "one was added already expired"
    );
    // Expire: the record stays, with an expiredDate; an unknown number becomes an expired record.
    let exp = cx
        .delete(
            &format!("{V}/dnc-groups/{g}/records"),
            Some(json!({"dncGroupRecords": [{"phoneNumber": "14155550101"}, {"phoneNumber": "14155550199"}]})),
        )
        .await
        .expect(200);
    assert_eq!(exp["errorCount"], 0);
    assert_eq!(exp["recordResults"][0]["success"], true);
    let found = cx
        .post(
            &format!("{V}/dnc-groups/search?phoneNumber=%2B1-415-555-0101"),
            json!(null),
        )
        .await
        .expect(200);
    assert_eq!(found["searchResults"][0]["dncGroupId"], g);
    assert!(found["searchResults"][0]["expiredDate"].is_string());
    let active = cx
        .post(
            &format!("{V}/dnc-groups/search?phoneNumber=14155550100"),
            json!(null),
        )
        .await
        .expect(200);
    assert!(active["searchResults"][0]["expiredDate"].is_null());
    let none = cx
        .post(
            &format!("{V}/dnc-groups/search?phoneNumber=19999999999"),
            json!(null),
        )
        .await
        .expect(200);
    assert_eq!(none["searchResults"], json!([]));
    cx.post(&format!("{V}/dnc-groups/search"), json!(null))
        .await
        .expect_admin_error(400, "InvalidPhoneNumber");
    let listed = cx
        .get(&format!("{V}/dnc-groups/{g}/records?top=2&skip=1"))
        .await
        .expect(200);
    assert_eq!(listed["resultSet"]["totalRecords"], 5);
    assert_eq!(
        listed["resultSet"]["dncRecords"].as_array().map(Vec::len),
        Some(2)
    );
    // Re-adding an expired number renews it.
    let renew = cx
        .post(
            &format!("{V}/dnc-groups/{g}/records"),
            json!({"dncGroupRecords": [{"phoneNumber": "14155550101"}]}),
        )
        .await
        .expect(200);
    assert_eq!(renew["resultSet"]["errorCount"], 0);
    let admin = cx.emu.state().dnc_groups();
    let active_numbers: Vec<&str> = admin[0]["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["active"] == true)
        .filter_map(|r| r["phoneNumber"].as_str())
        .collect();
    assert_eq!(
        active_numbers,
        vec!["14155550100", "14155550101", "4155550100"]
    );
}

#[tokio::test]
async fn groups_update_list_and_wire_skills() {
    let cx = start_default().await;
    let out = cx.seed(CxoneSeed {
        dnc_groups: vec![SeedDncGroup {
            dnc_group_name: "seeded".into(),
            phone_numbers: vec!["+44 20 7946 0958".into()],
            ..SeedDncGroup::default()
        }],
        ..CxoneSeed::default()
    });
    let g = out.dnc_groups[0];
    let all = cx.get(&format!("{V}/dnc-groups")).await.expect(200);
    assert_eq!(all["resultSet"]["totalGroups"], 1);
    assert_eq!(all["resultSet"]["dncGroups"][0]["validRecords"], 1);
    let up = cx
        .call(
            Method::PUT,
            &format!("{V}/dnc-groups/{g}?dncGroupName=renamed&isActive=false"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(up["dncGroups"][0]["dncGroupName"], "renamed");
    assert_eq!(up["dncGroups"][0]["isActive"], false);
    for kind in ["scrubbed-skills", "contributing-skills"] {
        let r = cx
            .call(
                Method::POST,
                &format!("{V}/dnc-groups/{g}/{kind}/4242"),
                None,
            )
            .await;
        assert_eq!(r.status.as_u16(), 204, "{}", r.raw);
        let key = if kind == "scrubbed-skills" {
            "scrubbedSkills"
        } else {
            "contributingSkills"
        };
        let l = cx
            .get(&format!("{V}/dnc-groups/{g}/{kind}"))
            .await
            .expect(200);
        assert_eq!(l[key][0]["skillId"], 4242);
        let r = cx
            .delete(&format!("{V}/dnc-groups/{g}/{kind}/4242"), None)
            .await;
        assert_eq!(r.status.as_u16(), 204);
        cx.delete(&format!("{V}/dnc-groups/{g}/{kind}/4242"), None)
            .await
            .expect_admin_error(404, "InvalidSkillId");
    }
    cx.get(&format!("{V}/dnc-groups/9999"))
        .await
        .expect_admin_error(404, "InvalidDncGroupId");
    cx.get(&format!("{V}/dnc-groups/abc/records"))
        .await
        .expect_admin_error(404, "InvalidDncGroupId");
    cx.post(&format!("{V}/dnc-groups"), json!({}))
        .await
        .expect_admin_error(400, "InvalidDncGroupName");
    cx.post(
        &format!("{V}/dnc-groups/{g}/records"),
        json!({"dncGroupRecords": []}),
    )
    .await
    .expect_admin_error(400, "InvalidDncGroupRecords");
}

#[tokio::test]
async fn injected_record_failures_show_in_the_results() {
    let cx = start_default().await;
    let g = cx
        .post(&format!("{V}/dnc-groups"), json!({"dncGroupName": "f"}))
        .await
        .expect(200)["dncGroups"][0]["dncGroupId"]
        .as_i64()
        .expect("id");
    let r = cx
        .call_with(
            Method::POST,
            &format!("{V}/dnc-groups/{g}/records"),
            Some(json!({"dncGroupRecords": [{"phoneNumber": "15550000001"}, {"phoneNumber": "15550000002"}]})),
            Some(&cx.token),
            &[("x-emulator-fault", "record-failure=0")],
        )
        .await
        .expect(200);
    assert_eq!(r["resultSet"]["errorCount"], 1);
    assert_eq!(
        r["resultSet"]["recordResults"][0]["error"],
        "ProcessingError"
    );
    assert_eq!(r["resultSet"]["recordResults"][1]["success"], true);
    assert_eq!(cx.faults("record_failure"), 1);
}
