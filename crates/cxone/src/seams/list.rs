//! [`ContactListSink`] for CXone: a Personal Connection calling list and a DNC group.
//!
//! Calling lists change **only** through file uploads and remove-prospects (lists-notes §1:
//! there is no add- or update-one-record endpoint). What a re-upload of an external id the
//! list already holds does is undocumented (§2.3): the least forgiving reading is that it adds
//! a second record. So an upsert of a batch is:
//!
//! 0. once per list and sink, before its first removal: every upload job of the list still
//!    pending (left by a run killed before its job finished, or whose status could not be
//!    read) is cancelled and waited for until it is finished or cancelled. A pending job
//!    finishing *after* a later removal would put its rows back beside their new upload: two
//!    records for one external id;
//! 1. remove-prospects for every key of the batch (idempotent; it also clears any copy an
//!    earlier, ambiguous upload left);
//! 2. do-not-call rows: their numbers are added to the configured DNC group (digits; a number
//!    already there is fine) and they are left out of the list: a number in a DNC group that
//!    scrubs the skill is never dialled;
//! 3. the callable rows go up as one CSV file (header row, CRLF rows, UTF-8, base64) with a
//!    file name of its own (the batch's content and a random attempt number, so an earlier
//!    upload of the same records is never taken for this one), `startSkill: false`; the job is polled to
//!    completion. The upload is never resent after an ambiguous answer: the job is looked for
//!    by its file name instead, and when it cannot be found the rows stay pending
//!    (`unconfirmed`) for the next run, which starts again at step 1;
//! 4. the job status has no per-record counts: when the list's `invalidRecords` grew, the
//!    list is downloaded and the rows it lacks are refused.
//!
//! [`ListCapabilities::idempotent_upsert`] is false: an upload sent twice may duplicate.
//! One sink writes one list at a time (the counts of step 4 assume no concurrent upload to
//! the same list).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use dedupd_platform::contact_list::{
    ContactListSink, ListCapabilities, ListLayout, ListRow, ListTarget, RefusedRow, ResolvedList,
    UpsertOutcome, payload_hash,
};
use dedupd_platform::{ErrorKind, PlatformError, Session};
use serde::Serialize;
use tokio::sync::Mutex;

use super::{platform_error, summary};
use crate::{CxoneClient, ListMapping, Upload};

/// The file column holding each record's key (`externalIdColumn`).
pub const EXTERNAL_ID_COLUMN: &str = "dedupd_external_id";
/// Rows per upload.
pub const MAX_BATCH: usize = 500;
/// Status reads of an upload job before its rows are left pending.
pub const MAX_JOB_POLLS: u32 = 120;

/// A row as it goes into the uploaded file (for a dry run's plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadRow {
    /// The list.
    pub list_id: String,
    /// `dedupd_external_id`.
    pub external_id: String,
    /// The file's other columns.
    pub columns: BTreeMap<String, String>,
    /// False: added to the DNC group and left out of the list.
    pub callable: bool,
}

/// Writes calling lists of one skill, with do-not-call numbers in one DNC group.
#[derive(Debug)]
pub struct CallingListSink {
    client: CxoneClient,
    skill_id: i64,
    dnc_group_id: Option<String>,
    expiration_date: String,
    names: Mutex<BTreeMap<String, String>>,
    /// Lists whose earlier pending upload jobs are settled (step 0); held while settling.
    settled: Mutex<BTreeSet<String>>,
    /// Upload jobs this sink submitted: never cancelled by it.
    own_jobs: std::sync::Mutex<BTreeSet<String>>,
}

impl CallingListSink {
    /// A sink writing lists for `skill_id` (uploads never start the skill), with do-not-call
    /// numbers added to `dnc_group_id` (without one, do-not-call rows are refused: nothing
    /// else keeps a number from being dialled). `expiration_date` (`YYYY-MM-DD`) is the
    /// uploads' required `expirationDate`.
    pub fn new(
        client: CxoneClient,
        skill_id: i64,
        dnc_group_id: Option<String>,
        expiration_date: impl Into<String>,
    ) -> Self {
        Self {
            client,
            skill_id,
            dnc_group_id,
            expiration_date: expiration_date.into(),
            names: Mutex::default(),
            settled: Mutex::default(),
            own_jobs: std::sync::Mutex::default(),
        }
    }

    /// The client behind the sink.
    pub fn client(&self) -> &CxoneClient {
        &self.client
    }

    /// The list's name (remove-prospects addresses a list by it).
    async fn name_of(&self, list_id: &str) -> Result<String, PlatformError> {
        if let Some(n) = self.names.lock().await.get(list_id) {
            return Ok(n.clone());
        }
        let list = self
            .client
            .admin()
            .download(list_id, None)
            .await
            .map_err(|e| platform_error(&e, &format!("reading calling list {list_id}"), &[]))?;
        let name = list.list_name.ok_or_else(|| {
            PlatformError::new(
                ErrorKind::Permanent,
                format!("calling list {list_id} has no name"),
            )
        })?;
        self.names
            .lock()
            .await
            .insert(list_id.to_owned(), name.clone());
        Ok(name)
    }

    /// The ids of the lists named `name`.
    async fn lists_named(&self, name: &str) -> Result<Vec<String>, PlatformError> {
        let lists = self
            .client
            .admin()
            .calling_lists()
            .await
            .map_err(|e| platform_error(&e, "listing calling lists", &[]))?;
        Ok(lists
            .into_iter()
            .filter(|l| l.list_name.as_deref() == Some(name))
            .filter_map(|l| l.list_id)
            .collect())
    }

    async fn wait_for_job(&self, job_id: &str) -> Result<bool, PlatformError> {
        self.job_done(job_id, false).await
    }

    /// Step 0 (module docs): cancels every pending upload job of `list_id` this sink did not
    /// submit and waits until each is finished or cancelled, once per list.
    async fn settle_earlier_jobs(&self, list_id: &str) -> Result<(), PlatformError> {
        let mut settled = self.settled.lock().await;
        if settled.contains(list_id) {
            return Ok(());
        }
        let what = format!("settling earlier upload jobs of calling list {list_id}");
        let jobs = self
            .client
            .admin()
            .upload_jobs()
            .await
            .map_err(|e| platform_error(&e, &what, &[]))?;
        let own = self.own_jobs.lock().map(|o| o.clone()).unwrap_or_default();
        let stale: Vec<String> = jobs
            .into_iter()
            .filter(|j| !j.is_complete && !j.is_cancelled)
            .filter(|j| j.list_id.as_deref() == Some(list_id))
            .filter_map(|j| j.job_id)
            .filter(|id| !own.contains(id))
            .collect();
        for job in &stale {
            tracing::info!(list_id, job = %job, "Cancelling an earlier upload job that never finished.");
            // A job that finished meanwhile answers 400; either way the poll below says which.
            if let Err(e) = self.client.admin().cancel_upload_job(job).await {
                tracing::debug!(job = %job, error = %summary(&e, &[]), "Cancelling the upload job failed.");
            }
            if !self.job_done(job, true).await? {
                return Err(PlatformError::new(
                    ErrorKind::Transient,
                    format!("{what}: upload job {job} is still running"),
                ));
            }
        }
        settled.insert(list_id.to_owned());
        Ok(())
    }

    /// Polls `job_id` until it is complete (`true`), or cancelled (`cancelled_ok`: `true`,
    /// else `false`); `false` when the polls run out.
    async fn job_done(&self, job_id: &str, cancelled_ok: bool) -> Result<bool, PlatformError> {
        let mut delay = Duration::from_millis(100);
        for _ in 0..MAX_JOB_POLLS {
            let job =
                self.client.admin().upload_job(job_id).await.map_err(|e| {
                    platform_error(&e, &format!("reading upload job {job_id}"), &[])
                })?;
            match job {
                Some(j) if j.is_complete => return Ok(true),
                Some(j) if j.is_cancelled => return Ok(cancelled_ok),
                _ => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Ok(false)
    }

    /// Every external id the list holds.
    async fn keys_on(&self, list_id: &str) -> Result<BTreeSet<String>, PlatformError> {
        let mut keys = BTreeSet::new();
        let mut skip = 0;
        loop {
            let page = self
                .client
                .admin()
                .download(list_id, Some((skip, 100)))
                .await
                .map_err(|e| {
                    platform_error(&e, &format!("downloading calling list {list_id}"), &[])
                })?;
            let n = page.contact_records.len();
            keys.extend(page.contact_records.into_iter().filter_map(|r| {
                r.get(EXTERNAL_ID_COLUMN)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            }));
            if n < 100 {
                return Ok(keys);
            }
            skip += n;
        }
    }

    async fn invalid_count(&self, list_id: &str) -> Result<u64, PlatformError> {
        let list = self
            .client
            .admin()
            .download(list_id, None)
            .await
            .map_err(|e| platform_error(&e, &format!("reading calling list {list_id}"), &[]))?;
        Ok(list.invalid_records.unwrap_or(0))
    }

    /// Adds the do-not-call rows' numbers to the DNC group; returns the rows refused.
    async fn block(
        &self,
        layout: &ListLayout,
        rows: &[ListRow],
    ) -> Result<Vec<RefusedRow>, PlatformError> {
        let Some(group) = &self.dnc_group_id else {
            return Ok(rows
                .iter()
                .map(|r| RefusedRow {
                    key: r.key.clone(),
                    status: None,
                    code: Some("NoDncGroup".into()),
                    message: Some(
                        "a do-not-call contact needs a DNC group to keep it from being dialled"
                            .into(),
                    ),
                })
                .collect());
        };
        let phone_of = |r: &ListRow| {
            layout.phone_column.as_ref().and_then(|col| {
                r.values
                    .iter()
                    .find(|(c, _)| c == col)
                    .map(|(_, v)| crate::dnc_digits(v))
                    .filter(|d| !d.is_empty())
            })
        };
        let phones: Vec<String> = rows.iter().filter_map(phone_of).collect();
        if phones.is_empty() {
            return Ok(Vec::new());
        }
        let write = self
            .client
            .admin()
            .add_dnc_records(group, &phones)
            .await
            .map_err(|e| {
                platform_error(
                    &e,
                    &format!("adding {} numbers to DNC group {group}", phones.len()),
                    &[],
                )
            })?;
        let failed: BTreeSet<String> = write
            .record_results
            .iter()
            .filter(|r| !r.success && r.error.as_deref() != Some("DuplicateRecord"))
            .filter_map(|r| r.formatted_phone.as_deref().map(crate::dnc_digits))
            .collect();
        Ok(rows
            .iter()
            .filter(|r| phone_of(r).is_some_and(|p| failed.contains(&p)))
            .map(|r| RefusedRow {
                key: r.key.clone(),
                status: None,
                code: Some("DncRecordFailed".into()),
                message: Some(format!("DNC group {group} did not take the number")),
            })
            .collect())
    }
}

/// The CSV file of `rows`: header `dedupd_external_id` and the layout's columns; CRLF rows;
/// fields quoted when they need it.
pub fn csv_file(layout: &ListLayout, rows: &[&ListRow]) -> String {
    fn field(out: &mut String, v: &str) {
        if v.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&v.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(v);
        }
    }
    let mut out = String::new();
    out.push_str(EXTERNAL_ID_COLUMN);
    for c in &layout.columns {
        out.push(',');
        field(&mut out, c);
    }
    out.push_str("\r\n");
    for r in rows {
        field(&mut out, &r.key);
        for c in &layout.columns {
            out.push(',');
            let v = r
                .values
                .iter()
                .find(|(k, _)| k == c)
                .map_or("", |(_, v)| v.as_str());
            field(&mut out, v);
        }
        out.push_str("\r\n");
    }
    out
}

/// A file name naming the batch's content and this one upload of it (`attempt`, a fresh
/// random number per upload), so an upload whose answer was lost is found again among the
/// jobs, and never mistaken for an earlier upload of the same records: that one may have
/// completed before this batch removed its records again (a run killed before it recorded
/// the batch), and taking it for this one would count the records on the list while this
/// upload's own job is still pending, to be cancelled by the next run.
pub fn file_name(list_id: &str, rows: &[&ListRow], attempt: u64) -> String {
    let mut acc = [0u8; 16];
    for r in rows {
        let h = payload_hash(r);
        for (a, b) in acc.iter_mut().zip(h) {
            *a = a.rotate_left(3) ^ b;
        }
    }
    let hex: String = acc.iter().map(|b| format!("{b:02x}")).collect();
    format!("dedupd-{list_id}-{}-{hex}-{attempt:016x}.csv", rows.len())
}

impl Session for CallingListSink {
    fn usage(&self) -> dedupd_platform::CallStats {
        self.client.usage()
    }

    fn gave_up(&self) -> Option<String> {
        self.client.gave_up()
    }
}

impl ContactListSink for CallingListSink {
    const CAPABILITIES: ListCapabilities = ListCapabilities {
        max_batch: MAX_BATCH,
        idempotent_upsert: false,
    };

    type Request = UploadRow;

    fn request(list_id: &str, _layout: &ListLayout, row: &ListRow) -> UploadRow {
        UploadRow {
            list_id: list_id.to_owned(),
            external_id: row.key.clone(),
            columns: row.values.iter().cloned().collect(),
            callable: row.callable,
        }
    }

    /// An existing list is checked to exist (the API cannot read a list's mapping back); a
    /// list to create is looked for by name first, since creating one is not idempotent and
    /// a run killed after creating it must find it again.
    async fn resolve(
        &self,
        target: &ListTarget,
        layout: &ListLayout,
    ) -> Result<ResolvedList, PlatformError> {
        match target {
            ListTarget::Existing(id) => {
                self.name_of(id).await?;
                Ok(ResolvedList {
                    id: id.clone(),
                    created: false,
                })
            }
            ListTarget::Create(name) => {
                let found = self.lists_named(name).await?;
                match found.as_slice() {
                    [id] => {
                        return Ok(ResolvedList {
                            id: id.clone(),
                            created: false,
                        });
                    }
                    [] => {}
                    several => {
                        return Err(PlatformError::new(
                            ErrorKind::Permanent,
                            format!(
                                "{} calling lists are named {name:?} ({}); name one by id",
                                several.len(),
                                several.join(", ")
                            ),
                        ));
                    }
                }
                let mapping = ListMapping {
                    list_name: name.clone(),
                    external_id_column: EXTERNAL_ID_COLUMN.to_owned(),
                    first_name_column: None,
                    last_name_column: None,
                    destinations: layout
                        .phone_column
                        .iter()
                        .map(|c| ("PhoneNumber".to_owned(), c.clone()))
                        .collect(),
                };
                let what = format!("creating calling list {name:?}");
                match self.client.admin().create_calling_list(&mapping).await {
                    Ok(id) => Ok(ResolvedList { id, created: true }),
                    Err(e) if e.is_outcome_unknown() => {
                        match self.lists_named(name).await?.as_slice() {
                            [id] => Ok(ResolvedList {
                                id: id.clone(),
                                created: true,
                            }),
                            _ => Err(platform_error(&e, &what, &[])),
                        }
                    }
                    Err(e) => Err(platform_error(&e, &what, &[])),
                }
            }
        }
    }

    async fn upsert(
        &self,
        list_id: &str,
        layout: &ListLayout,
        rows: Vec<ListRow>,
    ) -> Result<UpsertOutcome, PlatformError> {
        let mut outcome = UpsertOutcome::default();
        if rows.is_empty() {
            return Ok(outcome);
        }
        if rows.len() > MAX_BATCH {
            return Err(PlatformError::new(
                ErrorKind::Permanent,
                format!("{} rows in one upsert; at most {MAX_BATCH}", rows.len()),
            ));
        }
        let name = self.name_of(list_id).await?;
        self.settle_earlier_jobs(list_id).await?;
        let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
        self.client
            .admin()
            .remove_prospects(&name, &keys)
            .await
            .map_err(|e| {
                platform_error(
                    &e,
                    &format!(
                        "removing {} records from calling list {list_id}",
                        keys.len()
                    ),
                    &[],
                )
            })?;

        let (callable, blocked): (Vec<&ListRow>, Vec<&ListRow>) =
            rows.iter().partition(|r| r.callable);
        if !blocked.is_empty() {
            let blocked_rows: Vec<ListRow> = blocked.iter().map(|r| (*r).clone()).collect();
            let refused = self.block(layout, &blocked_rows).await?;
            let refused_keys: BTreeSet<&str> = refused.iter().map(|r| r.key.as_str()).collect();
            outcome.accepted.extend(
                blocked
                    .iter()
                    .filter(|r| !refused_keys.contains(r.key.as_str()))
                    .map(|r| r.key.clone()),
            );
            outcome.refused.extend(refused);
        }
        if callable.is_empty() {
            return Ok(outcome);
        }

        let invalid_before = self.invalid_count(list_id).await?;
        let file = csv_file(layout, &callable);
        let upload = Upload {
            list_file: base64::engine::general_purpose::STANDARD.encode(file.as_bytes()),
            file_name: file_name(list_id, &callable, fastrand::u64(..)),
            skill_id: self.skill_id,
            force_overwrite: false,
            expiration_date: self.expiration_date.clone(),
            start_skill: false,
            send_email: false,
        };
        let what = format!(
            "uploading {} records to calling list {list_id}",
            callable.len()
        );
        let job = match self.client.admin().upload(list_id, &upload).await {
            Ok(job) => Some(job),
            Err(e) if e.is_outcome_unknown() => {
                let jobs = self
                    .client
                    .admin()
                    .upload_jobs()
                    .await
                    .map_err(|e| platform_error(&e, &what, &[]))?;
                jobs.into_iter()
                    .find(|j| {
                        j.file_name.as_deref() == Some(upload.file_name.as_str())
                            && j.list_id.as_deref().is_none_or(|l| l == list_id)
                    })
                    .and_then(|j| j.job_id)
            }
            Err(e) => return Err(platform_error(&e, &what, &[])),
        };
        if let (Some(job), Ok(mut own)) = (&job, self.own_jobs.lock()) {
            own.insert(job.clone());
        }
        let completed = match &job {
            Some(job) => self.wait_for_job(job).await?,
            None => false,
        };
        if !completed {
            tracing::warn!(
                list_id,
                rows = callable.len(),
                "Upload not confirmed; its rows stay pending for the next run."
            );
            outcome
                .unconfirmed
                .extend(callable.iter().map(|r| r.key.clone()));
            return Ok(outcome);
        }
        if self.invalid_count(list_id).await? == invalid_before {
            outcome
                .accepted
                .extend(callable.iter().map(|r| r.key.clone()));
            return Ok(outcome);
        }
        let on_list = self.keys_on(list_id).await?;
        for r in callable {
            if on_list.contains(&r.key) {
                outcome.accepted.push(r.key.clone());
            } else {
                outcome.refused.push(RefusedRow {
                    key: r.key.clone(),
                    status: None,
                    code: Some("InvalidRecord".into()),
                    message: Some("CXone counted the record invalid".into()),
                });
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, phone: &str) -> ListRow {
        ListRow {
            key: key.into(),
            values: vec![
                ("phone".into(), phone.into()),
                ("name".into(), "A, \"B\"".into()),
            ],
            callable: true,
        }
    }

    #[test]
    fn the_file_has_a_header_crlf_rows_and_quotes() {
        let layout = ListLayout {
            columns: vec!["phone".into(), "name".into()],
            phone_column: Some("phone".into()),
            email_column: None,
        };
        let r = row("k1", "+14155550100");
        assert_eq!(
            csv_file(&layout, &[&r]),
            "dedupd_external_id,phone,name\r\nk1,+14155550100,\"A, \"\"B\"\"\"\r\n"
        );
    }

    #[test]
    fn file_names_follow_the_content() {
        let (a, b) = (row("k1", "+1"), row("k2", "+2"));
        assert_eq!(file_name("7", &[&a, &b], 1), file_name("7", &[&a, &b], 1));
        assert_ne!(file_name("7", &[&a, &b], 1), file_name("7", &[&a], 1));
        assert_ne!(file_name("7", &[&a], 1), file_name("8", &[&a], 1));
        // Two uploads of the same records are two names.
        assert_ne!(file_name("7", &[&a], 1), file_name("7", &[&a], 2));
    }
}
