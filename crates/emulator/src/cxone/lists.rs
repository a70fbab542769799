//! Personal Connection calling lists (lists-notes §1–§2), under
//! `/inContactAPI/services/vNN.0`: create a mapping (`POST /lists/call-lists`), upload a file
//! (`POST …/{listId}/upload`, an asynchronous job), job status and cancel
//! (`/lists/call-lists/jobs[/{jobId}]`), download (`GET …/{listId}`), attempts, delete a list,
//! remove prospects by external id (`DELETE …/{sourceName}/removeProspects`). There is no
//! add-one-record or update-one-record endpoint: every record change goes through a file.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};

use super::config::UploadRepeat;
use super::error::{CxError, CxResult};
use super::extract::{J, Pth, Q};
use super::state::{CxInner, CxoneState, JobRec, JobStatus, ListRec, ListRecord};
use super::wire::{json_status, no_content, ok};
use crate::gate::middleware::ReqCtx;

/// The `…Column` query parameters of the mapping call besides `externalIdColumn`.
pub(crate) const COLUMN_PARAMS: &[&str] = &[
    "firstNameColumn",
    "lastNameColumn",
    "addressColumn",
    "cityColumn",
    "stateColumn",
    "zipColumn",
    "timeZoneColumn",
    "scoreColumn",
    "priorityColumn",
    "callerIdColumn",
    "customer1Column",
    "customer2Column",
    "complianceReqColumn",
    "confirmReqColumn",
    "overrideFinalizationColumn",
    "agentIdColumn",
    "callRequestTimeColumn",
    "callRequestStaleColumn",
    "notesColumn",
    "expirationDateColumn",
];

/// Most records in one file (help site).
pub(crate) const MAX_FILE_RECORDS: usize = 500_000;
/// Most Unicode characters in one record (help site).
pub(crate) const MAX_RECORD_CHARS: usize = 512;

fn bad(code: &str, message: impl Into<String>) -> CxError {
    CxError::admin(StatusCode::BAD_REQUEST, code, message)
}

fn invalid_list(raw: &str) -> CxError {
    CxError::admin(
        StatusCode::NOT_FOUND,
        "InvalidListId",
        format!("No calling list with id {raw:?}."),
    )
}

/// A list id from the path: a positive int32 naming a list, else 404 `InvalidListId` (as the
/// platform answers even for a malformed id).
fn list_id(inner: &CxInner, raw: &str) -> CxResult<i64> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .map(i64::from)
        .filter(|id| *id > 0 && inner.lists.contains_key(id))
        .ok_or_else(|| invalid_list(raw))
}

/// Parses `YYYY-MM-DD` or an RFC 3339 date-time.
pub(crate) fn parse_date(s: &str) -> Option<DateTime<chrono::Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

/// Creates a list (the mapping call's effect); shared with the admin seed.
pub(crate) fn create_list(
    inner: &mut CxInner,
    name: &str,
    external_id_column: &str,
    column_params: Vec<(String, String)>,
    destinations: Vec<(String, String)>,
    expiration: Option<String>,
) -> i64 {
    let now = inner.now_iso();
    inner.list_seq += 1;
    let id = inner.list_seq;
    inner.lists.insert(
        id,
        ListRec {
            id,
            name: name.to_owned(),
            external_id_column: external_id_column.to_owned(),
            column_params,
            destinations,
            expiration,
            created_at: now.clone(),
            uploaded_at: None,
            updated_at: now,
            records: Vec::new(),
            invalid: 0,
            skills: Default::default(),
            skill_started: false,
        },
    );
    id
}

fn list_summary(l: &ListRec) -> Value {
    json!({
        "listId": l.id,
        "listName": l.name,
        "status": "Active",
        "totalRecords": l.records.len() as u64 + l.invalid,
        "validRecords": l.records.len(),
        "invalidRecords": l.invalid,
        "finalizedRecords": 0,
        "prospectiveContactCount": l.records.len(),
        "createDate": l.created_at,
        "uploadDate": l.uploaded_at,
        "updateDate": l.updated_at,
        "removeDate": Value::Null,
        "skills": l.skills.iter().map(|s| json!({"skillId": s})).collect::<Vec<_>>(),
    })
}

/// A record as the download renders it: its columns under the file's own headers.
pub(crate) fn record_json(r: &ListRecord) -> Value {
    Value::Object(
        r.columns
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `GET /lists/call-lists`: `{totalRecords, _links, callingLists[…]}`; `skip`/`top` page it.
pub(crate) async fn list_lists(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let (skip, top) = q.skip_top(usize::MAX, usize::MAX)?;
    let inner = st.lock();
    let lists: Vec<Value> = inner
        .lists
        .values()
        .skip(skip)
        .take(top)
        .map(list_summary)
        .collect();
    Ok(ok(json!({
        "totalRecords": inner.lists.len(),
        "_links": {"self": Value::Null, "next": Value::Null, "previous": Value::Null},
        "callingLists": lists,
    })))
}

/// `POST /lists/call-lists?listName=…&externalIdColumn=…[&…Column=…]` with
/// `{destinationMappings:[{fieldName, fieldValue}]}` → 200 `{listId}`. Not idempotent: the
/// same name again creates another list.
pub(crate) async fn create(State(st): State<CxoneState>, q: Q, J(body): J) -> CxResult<Response> {
    let name = q
        .get("listName")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("InvalidListName", "listName is required."))?
        .to_owned();
    let ext_col = q
        .get("externalIdColumn")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("InvalidExternalIdColumn", "externalIdColumn is required."))?
        .to_owned();
    let expiration = match q.get("listExpirationDate").filter(|d| !d.is_empty()) {
        Some(d) => Some(parse_date(d).map(crate::util::iso).ok_or_else(|| {
            bad(
                "InvalidListExpirationDate",
                "listExpirationDate is not a date.",
            )
        })?),
        None => None,
    };
    let column_params: Vec<(String, String)> = COLUMN_PARAMS
        .iter()
        .filter_map(|p| {
            q.get(p)
                .filter(|v| !v.trim().is_empty())
                .map(|v| ((*p).to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mappings = body
        .as_ref()
        .and_then(|b| b.get("destinationMappings"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad(
                "InvalidDestinationMappings",
                "destinationMappings (array) is required in the body.",
            )
        })?;
    let mut destinations = Vec::with_capacity(mappings.len());
    for (i, m) in mappings.iter().enumerate() {
        let (Some(f), Some(v)) = (
            m.get("fieldName").and_then(Value::as_str),
            m.get("fieldValue").and_then(Value::as_str),
        ) else {
            return Err(bad(
                "InvalidDestinationMappings",
                format!("destinationMappings[{i}] needs fieldName and fieldValue."),
            ));
        };
        destinations.push((f.to_owned(), v.to_owned()));
    }
    let id = create_list(
        &mut st.lock(),
        &name,
        &ext_col,
        column_params,
        destinations,
        expiration,
    );
    Ok(ok(json!({"listId": id})))
}

fn req_bool(body: &Value, field: &str, code: &str) -> CxResult<bool> {
    body.get(field).and_then(Value::as_bool).ok_or_else(|| {
        bad(
            code,
            format!("{field} is required and must be true or false."),
        )
    })
}

/// Reads a CSV or tab-separated file (UTF-8, header row). Returns header and rows.
pub(crate) fn parse_file(bytes: &[u8]) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "The file is not UTF-8.".to_owned())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or_default();
    let delimiter = if first.contains('\t') && !first.contains(',') {
        b'\t'
    } else {
        b','
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("The header row cannot be read: {e}"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err("The file has no header row.".to_owned());
    }
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("Row {} cannot be read: {e}", i + 2))?;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push(rec.iter().map(str::to_owned).collect());
        if rows.len() > MAX_FILE_RECORDS {
            return Err(format!("More than {MAX_FILE_RECORDS} records in one file."));
        }
    }
    Ok((header, rows))
}

/// `POST /lists/call-lists/{listId}/upload` `{listFile (base64 of the file), fileName,
/// skillId, defaultTimeZone, forceOverwrite, expirationDate, startSkill, sendEmail}` → 202
/// `{jobId}`. The rows reach the list when the job completes (see
/// [`super::CxoneEmulatorConfig::upload_job_polls`]).
pub(crate) async fn upload(
    State(st): State<CxoneState>,
    ctx: ReqCtx,
    Pth((_version, raw_id)): Pth<(String, String)>,
    J(body): J,
) -> CxResult<Response> {
    let body = body.ok_or_else(|| bad("InvalidListFile", "A JSON body is required."))?;
    let file_b64 = body
        .get("listFile")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| bad("InvalidListFile", "listFile (base64) is required."))?;
    let file_name = body
        .get("fileName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let skill_id = match body.get("skillId") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
    .ok_or_else(|| bad("InvalidSkillId", "skillId is required (a positive number)."))?;
    let force_overwrite = req_bool(&body, "forceOverwrite", "InvalidOverwrite")?;
    let start_skill = req_bool(&body, "startSkill", "InvalidStartSkill")?;
    let send_email = req_bool(&body, "sendEmail", "InvalidSendEmail")?;
    let expiration_date = body
        .get("expirationDate")
        .and_then(Value::as_str)
        .filter(|d| parse_date(d).is_some())
        .ok_or_else(|| {
            bad(
                "InvalidExpirationDate",
                "expirationDate is required (YYYY-MM-DD or RFC 3339).",
            )
        })?
        .to_owned();
    let default_time_zone = body
        .get("defaultTimeZone")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if file_name.as_deref().is_some_and(|n| {
        n.to_ascii_lowercase().ends_with(".xls") || n.to_ascii_lowercase().ends_with(".xlsx")
    }) {
        return Err(bad(
            "InvalidListFile",
            "The emulator reads comma- or tab-separated files only, not spreadsheets.",
        ));
    }
    let bytes = STANDARD
        .decode(file_b64.trim())
        .map_err(|_| bad("InvalidListFile", "listFile is not valid base64."))?;
    let (header, rows) = parse_file(&bytes).map_err(|m| bad("InvalidListFile", m))?;

    let mut inner = st.lock();
    let id = list_id(&inner, &raw_id)?;
    let (list_name, ext_col) = inner
        .lists
        .get(&id)
        .map(|l| (l.name.clone(), l.external_id_column.clone()))
        .unwrap_or_default();
    // Injected per-record failures (record_failure rules, x-emulator-fault record-failure=N),
    // keyed by the row's external id: such rows count as invalid.
    let ext_idx = header.iter().position(|h| h.eq_ignore_ascii_case(&ext_col));
    let mut kept = Vec::with_capacity(rows.len());
    let mut refused = 0u64;
    for (i, row) in rows.into_iter().enumerate() {
        let key = ext_idx
            .and_then(|x| row.get(x))
            .cloned()
            .unwrap_or_else(|| row.join(","));
        if ctx.record_failure(&mut inner.gate, i, &key).is_some() {
            refused += 1;
        } else {
            kept.push(row);
        }
    }
    let now = inner.now_iso();
    inner.job_seq += 1;
    let job_id = inner.job_seq;
    inner.jobs.insert(
        job_id,
        JobRec {
            id: job_id,
            list_id: id,
            list_name,
            file_name,
            submitted_at: now.clone(),
            started_at: Some(now),
            completed_at: None,
            status: JobStatus::Pending,
            polls_left: st.shared.upload_job_polls,
            header,
            rows: kept,
            skill_id,
            start_skill,
            force_overwrite,
            send_email,
            expiration_date,
            default_time_zone,
            accepted: 0,
            refused,
        },
    );
    if st.shared.upload_job_polls == 0 {
        complete_job(&mut inner, job_id, st.shared.upload_repeat);
    }
    Ok(json_status(StatusCode::ACCEPTED, &json!({"jobId": job_id})))
}

/// Completes pending job `job_id` (and, first, the pending jobs submitted before it for the
/// same list): its rows enter the list.
pub(crate) fn complete_job(inner: &mut CxInner, job_id: i64, policy: UploadRepeat) {
    let Some(list_id) = inner
        .jobs
        .get(&job_id)
        .filter(|j| j.status == JobStatus::Pending)
        .map(|j| j.list_id)
    else {
        return;
    };
    let earlier: Vec<i64> = inner
        .jobs
        .values()
        .filter(|j| j.list_id == list_id && j.id < job_id && j.status == JobStatus::Pending)
        .map(|j| j.id)
        .collect();
    for id in earlier.into_iter().chain(std::iter::once(job_id)) {
        apply_job(inner, id, policy);
    }
}

fn apply_job(inner: &mut CxInner, job_id: i64, policy: UploadRepeat) {
    let now = inner.now_iso();
    let Some(job) = inner.jobs.get_mut(&job_id) else {
        return;
    };
    job.status = JobStatus::Complete;
    job.completed_at = Some(now.clone());
    let header = std::mem::take(&mut job.header);
    let rows = std::mem::take(&mut job.rows);
    let (list_id, file_name, skill_id, start_skill, refused) = (
        job.list_id,
        job.file_name.clone(),
        job.skill_id,
        job.start_skill,
        job.refused,
    );
    let Some(list) = inner.lists.get_mut(&list_id) else {
        return;
    };
    let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let ext_idx = find(&list.external_id_column);
    let phone_idx = list
        .destinations
        .iter()
        .find(|(f, _)| f.eq_ignore_ascii_case("PhoneNumber"))
        .map(|(_, col)| find(col));
    let mut accepted = 0u64;
    let mut invalid = refused;
    for row in rows {
        let value = |i: Option<usize>| i.and_then(|i| row.get(i)).map(|v| v.trim().to_owned());
        let ext = value(ext_idx).filter(|e| !e.is_empty());
        let phone_ok = match phone_idx {
            Some(idx) => value(idx).is_some_and(|p| p.chars().any(|c| c.is_ascii_digit())),
            None => true,
        };
        let chars: usize =
            row.iter().map(|f| f.chars().count()).sum::<usize>() + row.len().saturating_sub(1);
        let Some(ext) = ext.filter(|_| phone_ok && chars <= MAX_RECORD_CHARS) else {
            invalid += 1;
            continue;
        };
        if policy == UploadRepeat::Replace {
            list.records.retain(|r| r.external_id != ext);
        }
        list.records.push(ListRecord {
            external_id: ext,
            columns: header.iter().cloned().zip(row.iter().cloned()).collect(),
            job_id: Some(job_id),
            file_name: file_name.clone(),
        });
        accepted += 1;
    }
    list.invalid += invalid;
    list.uploaded_at = Some(now.clone());
    list.updated_at = now;
    list.skills.insert(skill_id);
    list.skill_started |= start_skill;
    if let Some(job) = inner.jobs.get_mut(&job_id) {
        job.accepted = accepted;
        job.refused = invalid;
    }
}

/// One status read of job `id`: a pending job either uses up one "not yet" or completes.
fn poll(inner: &mut CxInner, id: i64, policy: UploadRepeat) {
    let Some(job) = inner.jobs.get_mut(&id) else {
        return;
    };
    if job.status != JobStatus::Pending {
        return;
    }
    if job.polls_left > 0 {
        job.polls_left -= 1;
    } else {
        complete_job(inner, id, policy);
    }
}

pub(crate) fn job_json(j: &JobRec) -> Value {
    json!({
        "jobId": j.id,
        "listId": j.list_id,
        "listName": j.list_name,
        "fileName": j.file_name,
        "startDate": j.started_at,
        "submitDate": j.submitted_at,
        "isComplete": j.status == JobStatus::Complete,
        "isCancelled": j.status == JobStatus::Cancelled,
        "completedDate": j.completed_at,
    })
}

/// `GET /lists/call-lists/jobs`: every job (a status read of each pending one); `skip`/`top`.
pub(crate) async fn list_jobs(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let (skip, top) = q.skip_top(usize::MAX, usize::MAX)?;
    let mut inner = st.lock();
    let ids: Vec<i64> = inner.jobs.keys().copied().collect();
    for id in ids {
        poll(&mut inner, id, st.shared.upload_repeat);
    }
    let now = inner.now_iso();
    let jobs: Vec<Value> = inner
        .jobs
        .values()
        .skip(skip)
        .take(top)
        .map(job_json)
        .collect();
    Ok(ok(json!({
        "businessUnitId": 4_600_001,
        "lastPollTime": now,
        "totalRecords": inner.jobs.len(),
        "_links": {"self": Value::Null, "next": Value::Null, "previous": Value::Null},
        "uploadJobs": jobs,
    })))
}

fn job_id(inner: &CxInner, raw: &str) -> CxResult<i64> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| inner.jobs.contains_key(id))
        .ok_or_else(|| {
            CxError::admin(
                StatusCode::NOT_FOUND,
                "InvalidJobId",
                format!("No upload job with id {raw:?}."),
            )
        })
}

/// `GET /lists/call-lists/jobs/{jobId}` → `{uploadJobs:[…]}` (no per-record counts, as on the
/// platform: read the list's `validRecords`/`invalidRecords`).
pub(crate) async fn get_job(
    State(st): State<CxoneState>,
    Pth((_version, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    let mut inner = st.lock();
    let id = job_id(&inner, &raw)?;
    poll(&mut inner, id, st.shared.upload_repeat);
    let job = inner.jobs.get(&id).map(job_json);
    Ok(ok(
        json!({"uploadJobs": job.into_iter().collect::<Vec<_>>()}),
    ))
}

/// `DELETE /lists/call-lists/jobs/{jobId}`: cancels a pending job (its rows never arrive);
/// a finished one → 400 `InvalidJobState`. 204.
pub(crate) async fn cancel_job(
    State(st): State<CxoneState>,
    Pth((_version, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    let mut inner = st.lock();
    let id = job_id(&inner, &raw)?;
    let now = inner.now_iso();
    let Some(job) = inner.jobs.get_mut(&id) else {
        return Err(invalid_list(&raw));
    };
    if job.status != JobStatus::Pending {
        return Err(bad(
            "InvalidJobState",
            format!("Upload job {id} is no longer pending."),
        ));
    }
    job.status = JobStatus::Cancelled;
    job.completed_at = Some(now);
    job.rows.clear();
    Ok(no_content())
}

/// `GET /lists/call-lists/{listId}?includeRecords=…&finalized=…&skip=…&top=…`:
/// `{resultSet:{listName, status, totalRecords (a string, as some live answers give it),
/// validRecords, invalidRecords, finalizedRecords, listExpirationDate, skills, contactRecords}}`.
/// Records only with `includeRecords=true`, in upload order, `top` at most the page-size limit
/// (default that limit); nothing is ever finalized.
pub(crate) async fn download(
    State(st): State<CxoneState>,
    q: Q,
    Pth((_version, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    let include = q.bool("includeRecords")?.unwrap_or(false);
    let finalized = q.bool("finalized")?.unwrap_or(false);
    if let Some(since) = q.get("updatedSince").filter(|s| !s.is_empty())
        && parse_date(since).is_none()
    {
        return Err(bad("InvalidUpdatedSince", "updatedSince is not a date."));
    }
    let max = st.shared.max_page_size;
    let (skip, top) = q.skip_top(max, max)?;
    let inner = st.lock();
    let id = list_id(&inner, &raw)?;
    let Some(l) = inner.lists.get(&id) else {
        return Err(invalid_list(&raw));
    };
    let now = inner.now_iso();
    let mut rs = list_summary(l);
    rs["totalRecords"] = Value::String((l.records.len() as u64 + l.invalid).to_string());
    rs["lastPollTime"] = Value::String(now);
    rs["listExpirationDate"] = json!(l.expiration);
    if include {
        let records: Vec<Value> = if finalized {
            Vec::new()
        } else {
            l.records
                .iter()
                .skip(skip)
                .take(top)
                .map(record_json)
                .collect()
        };
        rs["contactRecords"] = Value::Array(records);
    }
    Ok(ok(json!({"resultSet": rs})))
}

/// `GET /lists/call-lists/{listId}/attempts`: the emulator dials nothing.
pub(crate) async fn attempts(
    State(st): State<CxoneState>,
    q: Q,
    Pth((_version, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    q.bool("finalized")?;
    let inner = st.lock();
    let id = list_id(&inner, &raw)?;
    let Some(l) = inner.lists.get(&id) else {
        return Err(invalid_list(&raw));
    };
    let mut rs = list_summary(l);
    rs["contactAttempts"] = json!([]);
    Ok(ok(json!({"resultSet": rs})))
}

/// `DELETE /lists/call-lists/{listId}?forceInactive=…&forceDelete=…`: the list and its
/// records are gone (404 afterwards). 204.
pub(crate) async fn delete_list(
    State(st): State<CxoneState>,
    q: Q,
    Pth((_version, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    q.bool("forceInactive")?;
    q.bool("forceDelete")?;
    let mut inner = st.lock();
    let id = list_id(&inner, &raw)?;
    inner.lists.remove(&id);
    Ok(no_content())
}

/// `DELETE /lists/call-lists/{sourceName}/removeProspects` `{prospectsToRemove:[{externalId}]}`:
/// `sourceName` is taken as the **list name** (the spec does not say; lists-notes §6.3); every
/// list with that name loses every record with each external id (string or number).
/// `{successfulRecords, failedRecords}` with `resultCode` `Success` / `NotFound`. An unknown
/// name → 404 `InvalidSourceName`.
pub(crate) async fn remove_prospects(
    State(st): State<CxoneState>,
    Pth((_version, source)): Pth<(String, String)>,
    J(body): J,
) -> CxResult<Response> {
    let items = body
        .as_ref()
        .and_then(|b| b.get("prospectsToRemove"))
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            bad(
                "InvalidProspects",
                "prospectsToRemove must list external ids.",
            )
        })?;
    let mut ids = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let id = match it.get("externalId") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(bad(
                    "InvalidProspects",
                    format!("prospectsToRemove[{i}].externalId is required."),
                ));
            }
        };
        ids.push(id);
    }
    let mut inner = st.lock();
    let now = inner.now_iso();
    let lists: Vec<i64> = inner
        .lists
        .values()
        .filter(|l| l.name == source)
        .map(|l| l.id)
        .collect();
    if lists.is_empty() {
        return Err(CxError::admin(
            StatusCode::NOT_FOUND,
            "InvalidSourceName",
            "No calling list has this name.",
        ));
    }
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut removed: HashSet<String> = HashSet::new();
    for id in lists {
        if let Some(l) = inner.lists.get_mut(&id) {
            let before = l.records.len();
            l.records.retain(|r| {
                let hit = wanted.contains(r.external_id.as_str());
                if hit {
                    removed.insert(r.external_id.clone());
                }
                !hit
            });
            if l.records.len() != before {
                l.updated_at = now.clone();
            }
        }
    }
    let (ok_ids, failed): (Vec<&String>, Vec<&String>) =
        ids.iter().partition(|id| removed.contains(*id));
    Ok(ok(json!({
        "successfulRecords": ok_ids.iter().map(|id| json!({"externalId": id, "resultCode": "Success"})).collect::<Vec<_>>(),
        "failedRecords": failed.iter().map(|id| json!({"externalId": id, "resultCode": "NotFound"})).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_csv_and_tsv_with_quotes_and_bom() {
        let (h, rows) = parse_file(
            "\u{feff}ExternalId,phone,name\r\nK1,+1555,\"Doe, Jane\"\r\n\r\nK2,+1666,Bo\r\n"
                .as_bytes(),
        )
        .expect("csv");
        assert_eq!(h, vec!["ExternalId", "phone", "name"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][2], "Doe, Jane");
        let (h, rows) = parse_file(b"id\tphone\nK1\t1\n").expect("tsv");
        assert_eq!(h, vec!["id", "phone"]);
        assert_eq!(rows[0], vec!["K1", "1"]);
        assert!(parse_file(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn dates_parse() {
        assert!(parse_date("2027-01-31").is_some());
        assert!(parse_date("2027-01-31T10:00:00Z").is_some());
        assert!(parse_date("31/01/2027").is_none());
    }
}
