//! Typed Admin API endpoints (`{api_endpoint}/inContactAPI/services/v30.0`) for calling lists
//! and DNC groups (lists-notes §1–§5): create a list mapping, upload records, job status,
//! download a list, remove prospects; DNC groups (create, list), records add / expire, search.
//!
//! Answers are parsed leniently, as live answers vary (lists-notes §5): ids and totals as
//! strings or numbers, `resultSet` wrappers present or not. Every call sends
//! `Accept: application/json` (without it some endpoints answer in a non-JSON format).

use dedupd_http_client::{Call, path};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::CxoneClient;
use crate::error::Error;

/// A JSON number or string as a string.
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A JSON number or numeric string as a number.
fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The mapping of a new calling list (`POST /lists/call-lists`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMapping {
    /// `listName`.
    pub list_name: String,
    /// `externalIdColumn`: the file column holding each record's unique key.
    pub external_id_column: String,
    /// `firstNameColumn`, when the file has one.
    pub first_name_column: Option<String>,
    /// `lastNameColumn`, when the file has one.
    pub last_name_column: Option<String>,
    /// `destinationMappings`: `(fieldName, fieldValue)`, e.g. `("PhoneNumber", "phone")`.
    pub destinations: Vec<(String, String)>,
}

/// One calling list as the list of lists and the download summarise it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallingList {
    /// Its id.
    #[serde(deserialize_with = "lenient_string")]
    pub list_id: Option<String>,
    /// Its name.
    pub list_name: Option<String>,
    /// Records, valid and invalid.
    #[serde(deserialize_with = "lenient_u64")]
    pub total_records: Option<u64>,
    /// Valid records.
    #[serde(deserialize_with = "lenient_u64")]
    pub valid_records: Option<u64>,
    /// Invalid records.
    #[serde(deserialize_with = "lenient_u64")]
    pub invalid_records: Option<u64>,
    /// The records, when asked for (`includeRecords=true`): `{column header: value}`.
    pub contact_records: Vec<serde_json::Map<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Lists {
    calling_lists: Vec<CallingList>,
    result_set: Option<Box<Lists>>,
}

#[derive(Deserialize)]
struct Download {
    #[serde(rename = "resultSet")]
    result_set: CallingList,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListCreated {
    #[serde(deserialize_with = "lenient_string")]
    list_id: Option<String>,
}

/// `POST /lists/call-lists/{listId}/upload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    /// Base64 of the file bytes (UTF-8 CSV with a header row, CRLF rows).
    pub list_file: String,
    /// The file's name (dedupd makes it unique per batch, to find the job again).
    pub file_name: String,
    /// The skill the list serves.
    pub skill_id: i64,
    /// Required by the spec; what it overwrites is undocumented.
    pub force_overwrite: bool,
    /// `YYYY-MM-DD`.
    pub expiration_date: String,
    /// Start dialing once loaded: dedupd sends `false` unless told otherwise.
    pub start_skill: bool,
    /// E-mail the load result.
    pub send_email: bool,
}

/// One upload job's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UploadJob {
    /// Its id.
    #[serde(deserialize_with = "lenient_string")]
    pub job_id: Option<String>,
    /// The list.
    #[serde(deserialize_with = "lenient_string")]
    pub list_id: Option<String>,
    /// The uploaded file's name.
    pub file_name: Option<String>,
    /// Done.
    pub is_complete: bool,
    /// Cancelled.
    pub is_cancelled: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Jobs {
    upload_jobs: Vec<UploadJob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobQueued {
    #[serde(deserialize_with = "lenient_string")]
    job_id: Option<String>,
}

/// One `{externalId, resultCode}` of remove-prospects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProspectResult {
    /// The record's external id.
    #[serde(deserialize_with = "lenient_string")]
    pub external_id: Option<String>,
    /// `Success`, `NotFound`, …
    pub result_code: Option<String>,
}

/// What remove-prospects did, per id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemovedProspects {
    /// Removed.
    pub successful_records: Vec<ProspectResult>,
    /// Not removed (`NotFound` included).
    pub failed_records: Vec<ProspectResult>,
}

/// A DNC group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DncGroup {
    /// Its id.
    #[serde(deserialize_with = "lenient_string")]
    pub dnc_group_id: Option<String>,
    /// Its name.
    pub dnc_group_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Groups {
    dnc_groups: Vec<DncGroup>,
    result_set: Option<Box<Groups>>,
}

/// One record's result of a DNC write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DncRecordResult {
    /// The number as CXone stored it (digits).
    #[serde(deserialize_with = "lenient_string")]
    pub formatted_phone: Option<String>,
    /// Whether this record was written.
    pub success: bool,
    /// Why not (`DuplicateRecord`, …).
    pub error: Option<String>,
}

/// What a DNC write did, per record. A 2xx can hide failed rows: read `error_count`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DncWrite {
    /// Records that failed.
    #[serde(deserialize_with = "lenient_u64")]
    pub error_count: Option<u64>,
    /// Per record.
    pub record_results: Vec<DncRecordResult>,
    result_set: Option<Box<DncWrite>>,
}

impl DncWrite {
    fn flatten(self) -> DncWrite {
        match self.result_set {
            Some(inner) => inner.flatten(),
            None => self,
        }
    }
}

/// One DNC search hit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DncSearchHit {
    /// The group holding the number.
    #[serde(deserialize_with = "lenient_string")]
    pub dnc_group_id: Option<String>,
    /// The number (digits).
    #[serde(deserialize_with = "lenient_string")]
    pub formatted_phone: Option<String>,
    /// Set when the record is expired (no longer blocking new lists).
    pub expired_date: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Search {
    search_results: Vec<DncSearchHit>,
}

/// A DNC number: digits only, as CXone stores them (`+1 (415) 555-0100` → `14155550100`).
pub fn dnc_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// The Admin API.
#[derive(Clone, Copy, Debug)]
pub struct AdminApi<'a> {
    pub(crate) client: &'a CxoneClient,
}

impl AdminApi<'_> {
    /// `GET /lists/call-lists`: every calling list.
    pub async fn calling_lists(&self) -> Result<Vec<CallingList>, Error> {
        let lists: Lists = self
            .client
            .admin_json(Call::get(path(&["lists", "call-lists"])))
            .await?;
        Ok(match lists.result_set {
            Some(inner) if lists.calling_lists.is_empty() => inner.calling_lists,
            _ => lists.calling_lists,
        })
    }

    /// `POST /lists/call-lists?listName=…&externalIdColumn=…` `{destinationMappings}`:
    /// creates a list and its mapping. Not idempotent (the same name twice is two lists):
    /// never resent after an ambiguous answer.
    pub async fn create_calling_list(&self, mapping: &ListMapping) -> Result<String, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            destination_mappings: Vec<Dest<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Dest<'a> {
            field_name: &'a str,
            field_value: &'a str,
        }
        let body = Body {
            destination_mappings: mapping
                .destinations
                .iter()
                .map(|(f, v)| Dest {
                    field_name: f,
                    field_value: v,
                })
                .collect(),
        };
        let call = Call::post(path(&["lists", "call-lists"]))
            .query("listName", &mapping.list_name)
            .query("externalIdColumn", &mapping.external_id_column)
            .query_opt("firstNameColumn", mapping.first_name_column.as_ref())
            .query_opt("lastNameColumn", mapping.last_name_column.as_ref())
            .at_most_once()
            .json(&body)?;
        let created: ListCreated = self.client.admin_json(call).await?;
        created
            .list_id
            .ok_or_else(|| Error::InvalidRequest("the list was created without a listId".into()))
    }

    /// `POST /lists/call-lists/{listId}/upload`: queues an upload job; returns its id. Not
    /// idempotent (an external id uploaded twice may be two records): never resent after an
    /// ambiguous answer; find the job by its file name with [`AdminApi::upload_jobs`].
    pub async fn upload(&self, list_id: &str, upload: &Upload) -> Result<String, Error> {
        let call = Call::post(path(&["lists", "call-lists", list_id, "upload"]))
            .at_most_once()
            .json(upload)?;
        let queued: JobQueued = self.client.admin_json(call).await?;
        queued
            .job_id
            .ok_or_else(|| Error::InvalidRequest("the upload was queued without a jobId".into()))
    }

    /// `GET /lists/call-lists/jobs/{jobId}`.
    pub async fn upload_job(&self, job_id: &str) -> Result<Option<UploadJob>, Error> {
        let jobs: Jobs = self
            .client
            .admin_json(Call::get(path(&["lists", "call-lists", "jobs", job_id])))
            .await?;
        Ok(jobs.upload_jobs.into_iter().next())
    }

    /// `DELETE /lists/call-lists/jobs/{jobId}`: cancels a pending or processing upload (its
    /// rows never arrive). A finished job answers 400.
    pub async fn cancel_upload_job(&self, job_id: &str) -> Result<(), Error> {
        self.client
            .admin_unit(Call::delete(path(&["lists", "call-lists", "jobs", job_id])))
            .await
    }

    /// `GET /lists/call-lists/jobs`: every upload job.
    pub async fn upload_jobs(&self) -> Result<Vec<UploadJob>, Error> {
        let jobs: Jobs = self
            .client
            .admin_json(Call::get(path(&["lists", "call-lists", "jobs"])))
            .await?;
        Ok(jobs.upload_jobs)
    }

    /// `GET /lists/call-lists/{listId}`: the list's summary, and with `records` one page of
    /// its records (`skip`, `top` ≤ 100).
    pub async fn download(
        &self,
        list_id: &str,
        records: Option<(usize, usize)>,
    ) -> Result<CallingList, Error> {
        let mut call = Call::get(path(&["lists", "call-lists", list_id]));
        if let Some((skip, top)) = records {
            call = call
                .query("includeRecords", true)
                .query("skip", skip)
                .query("top", top);
        }
        let d: Download = self.client.admin_json(call).await?;
        Ok(d.result_set)
    }

    /// `DELETE /lists/call-lists/{sourceName}/removeProspects` `{prospectsToRemove}`: removes
    /// every record with these external ids. `source_name` is the list's name (the spec's
    /// `sourceName`; lists-notes §2.1). Idempotent.
    pub async fn remove_prospects(
        &self,
        source_name: &str,
        external_ids: &[String],
    ) -> Result<RemovedProspects, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            prospects_to_remove: Vec<Prospect<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Prospect<'a> {
            external_id: &'a str,
        }
        let call = Call::delete(path(&[
            "lists",
            "call-lists",
            source_name,
            "removeProspects",
        ]))
        .json(&Body {
            prospects_to_remove: external_ids
                .iter()
                .map(|id| Prospect { external_id: id })
                .collect(),
        })?;
        self.client.admin_json(call).await
    }

    /// `GET /dnc-groups`.
    pub async fn dnc_groups(&self) -> Result<Vec<DncGroup>, Error> {
        let g: Groups = self
            .client
            .admin_json(Call::get(path(&["dnc-groups"])))
            .await?;
        Ok(match g.result_set {
            Some(inner) if g.dnc_groups.is_empty() => inner.dnc_groups,
            _ => g.dnc_groups,
        })
    }

    /// `POST /dnc-groups` `{dncGroupName, dncGroupDescription}`. Not idempotent.
    pub async fn create_dnc_group(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<DncGroup, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            dnc_group_name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            dnc_group_description: Option<&'a str>,
        }
        let call = Call::post(path(&["dnc-groups"]))
            .at_most_once()
            .json(&Body {
                dnc_group_name: name,
                dnc_group_description: description,
            })?;
        let g: Groups = self.client.admin_json(call).await?;
        g.dnc_groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidRequest("the DNC group was created without an id".into()))
    }

    /// `POST /dnc-groups/{groupId}/records` `{dncGroupRecords:[{phoneNumber}]}`: adds numbers
    /// (digits only, sent as numbers as the live client does). Adding a number already there
    /// is harmless, so the call is retried like an idempotent one.
    pub async fn add_dnc_records(
        &self,
        group_id: &str,
        phones: &[String],
    ) -> Result<DncWrite, Error> {
        let call = Call::post(path(&["dnc-groups", group_id, "records"]))
            .idempotent(true)
            .json(&dnc_body(phones))?;
        let w: DncWrite = self.client.admin_json(call).await?;
        Ok(w.flatten())
    }

    /// `DELETE /dnc-groups/{groupId}/records`: expires numbers (not a hard delete).
    pub async fn expire_dnc_records(
        &self,
        group_id: &str,
        phones: &[String],
    ) -> Result<DncWrite, Error> {
        let call =
            Call::delete(path(&["dnc-groups", group_id, "records"])).json(&dnc_body(phones))?;
        let w: DncWrite = self.client.admin_json(call).await?;
        Ok(w.flatten())
    }

    /// `POST /dnc-groups/search?phoneNumber=…`: the groups holding a number (a read).
    pub async fn search_dnc(&self, phone: &str) -> Result<Vec<DncSearchHit>, Error> {
        let call = Call::post(path(&["dnc-groups", "search"]))
            .idempotent(true)
            .query("phoneNumber", dnc_digits(phone));
        let s: Search = self.client.admin_json(call).await?;
        Ok(s.search_results)
    }
}

fn dnc_body(phones: &[String]) -> Value {
    let records: Vec<Value> = phones
        .iter()
        .map(|p| {
            let digits = dnc_digits(p);
            match digits.parse::<u64>() {
                Ok(n) => serde_json::json!({ "phoneNumber": n }),
                Err(_) => serde_json::json!({ "phoneNumber": digits }),
            }
        })
        .collect();
    serde_json::json!({ "dncGroupRecords": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_leniently() {
        let d: Download = serde_json::from_str(
            r#"{"resultSet":{"listId":7,"listName":"x","totalRecords":"12","validRecords":10,
                "invalidRecords":2,"contactRecords":[{"ExternalId":"a","phone":"+1"}]}}"#,
        )
        .unwrap();
        assert_eq!(d.result_set.list_id.as_deref(), Some("7"));
        assert_eq!(d.result_set.total_records, Some(12));
        assert_eq!(d.result_set.contact_records.len(), 1);
        let w: DncWrite = serde_json::from_str(
            r#"{"resultSet":{"errorCount":1,"recordResults":[{"formattedPhone":"14155550100","success":false,"error":"DuplicateRecord"}]}}"#,
        )
        .unwrap();
        let w = w.flatten();
        assert_eq!(w.error_count, Some(1));
        assert_eq!(
            w.record_results[0].error.as_deref(),
            Some("DuplicateRecord")
        );
    }

    #[test]
    fn dnc_numbers_are_digits() {
        assert_eq!(dnc_digits("+1 (415) 555-0100"), "14155550100");
        assert_eq!(
            dnc_body(&["+14155550100".into()]),
            serde_json::json!({"dncGroupRecords":[{"phoneNumber":14155550100u64}]})
        );
    }
}
