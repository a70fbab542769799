//! External Contacts (`/api/v2/externalcontacts`): CRUD, PATCH changes, search, cursor scan,
//! identifier lookup, merge, unresolved ancestors and the bulk endpoints.
//!
//! **Bulk calls answer 200 with one result per entity**, in no guaranteed order, and a 200 is
//! not "all succeeded": see [`BulkResults`].

use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Call, GenesysClient, path};
use crate::common::{CursorPage, EntityRef, Page};
use crate::error::{Error, is_transient_status};

/// Most ids `contacts/merge` takes at once.
pub const MAX_MERGE_IDS: usize = 25;
/// Fewest ids `contacts/merge` takes.
pub const MIN_MERGE_IDS: usize = 2;

/// A phone number of an external contact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PhoneNumber {
    /// As displayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<i64>,
    /// Whether it accepts SMS.
    #[serde(rename = "acceptsSMS", skip_serializing_if = "Option::is_none")]
    pub accepts_sms: Option<bool>,
    /// Country used to normalize `display`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalization_country_code: Option<String>,
    /// As the user typed it (server-set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_input: Option<String>,
    /// E.164 form (server-set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e164: Option<String>,
    /// Country code (server-set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

impl PhoneNumber {
    /// A number given in E.164 (`+14155552671`).
    pub fn e164(number: impl Into<String>) -> Self {
        Self {
            display: Some(number.into()),
            ..Self::default()
        }
    }
}

/// A postal address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs)]
pub struct ContactAddress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

/// The source system of an external id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSource {
    /// Id of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name of the source (required).
    #[serde(default)]
    pub name: String,
}

/// An id of the contact in another system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalId {
    /// The system.
    #[serde(default)]
    pub external_source: ExternalSource,
    /// The id there.
    #[serde(default)]
    pub value: String,
}

/// Kinds of contact identifiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum IdentifierType {
    Email,
    Phone,
    ExternalId,
    Cookie,
    SocialLine,
    SocialFacebook,
    SocialTwitter,
    SocialWhatsapp,
    SocialInstagram,
    AppleOpaqueId,
    /// A kind this client does not know (newer API). Never sent.
    #[serde(other)]
    Unknown,
}

/// A key identifying a contact (`ContactIdentifier`), as used by identifier lookup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactIdentifier {
    /// Kind of key.
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    /// The key; phones as `+<country code>…`.
    pub value: String,
    /// Source system, for `ExternalId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_source: Option<ExternalSource>,
    /// Division.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<EntityRef>,
    /// Creation time (server-set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<DateTime<Utc>>,
}

impl ContactIdentifier {
    /// An identifier of `kind` with `value`.
    pub fn new(kind: IdentifierType, value: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
            external_source: None,
            division: None,
            date_created: None,
        }
    }
}

/// Lifecycle type of an external contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactType {
    /// Created automatically from an interaction; expires.
    Ephemeral,
    /// Has identifiers; expires.
    Identified,
    /// Curated by people; never expires.
    Curated,
    /// A type this client does not know (newer API). Never sent.
    #[serde(other)]
    Unknown,
}

/// An external contact (`ExternalContact`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ExternalContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<EntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salutation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_phone: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_phone: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_phone: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_phone: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<ContactAddress>,
    /// At most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ids: Vec<ExternalId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<ContactIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey_opt_out: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_system_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Map<String, Value>>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ContactType>,
    /// Head of the merge tree; `None` when the contact was never merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_contact: Option<EntityRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_set: Vec<EntityRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<EntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_to: Option<EntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    /// Fields this model does not name (social ids, organization, schema, …), kept so that a
    /// fetched contact can be `PUT` back whole.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// What a PATCH change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum PatchAction {
    UpdateIfEmpty,
    UpdateIfExists,
    Update,
    AppendToCollection,
    Remove,
    RemoveFromCollection,
}

/// One change of a PATCH (`ContactsPatchChange`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchChange {
    /// JSONPath of the field, e.g. `$.firstName`.
    pub field: String,
    /// The value (absent for removals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// What to do.
    pub action: PatchAction,
}

#[derive(Serialize)]
struct PatchRequest<'a> {
    changes: &'a [PatchChange],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MergeRequest<'a> {
    contact_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    value_override: Option<&'a ExternalContact>,
}

#[derive(Serialize)]
struct IdEntity<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Entities<T> {
    entities: T,
}

/// Query of [`ExternalContactsApi::search`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Free-text query (names, phones, emails, …).
    pub q: Option<String>,
    /// Page size (default 20); `page_size * page_number` must stay ≤ 1000.
    pub page_size: Option<u32>,
    /// Page number, from 1.
    pub page_number: Option<u32>,
    /// `firstName:asc`, `lastName:desc`, …
    pub sort_order: Option<String>,
    /// Divisions to search (at most 50).
    pub division_ids: Vec<String>,
}

/// Error of one entity in a bulk response (`BulkEntityError…`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BulkEntityError {
    /// Error code, e.g. `invalid.value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// HTTP status for this entity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The platform's own verdict on retrying this entity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Field-level details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<BulkErrorDetail>,
    /// The entity as sent, echoed by the platform: how a failed add (which has no id) is
    /// matched to the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<Value>,
}

/// A field-level detail of a [`BulkEntityError`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BulkErrorDetail {
    /// The field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    /// Its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Result for one entity of a bulk call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult<T> {
    /// The entity's id (absent for failed adds of entities without ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Whether this entity succeeded.
    #[serde(default)]
    pub success: bool,
    /// The entity as stored, on success.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub entity: Option<T>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<BulkEntityError>,
    /// HTTP status for this entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl<T> BulkResult<T> {
    /// The entity failed and sending it again may succeed: the platform says `retryable`, or,
    /// when it says nothing, the status is transient (429, 5xx except 501).
    pub fn is_retryable_failure(&self) -> bool {
        if self.success {
            return false;
        }
        let error = self.error.as_ref();
        match error.and_then(|e| e.retryable) {
            Some(retryable) => retryable,
            None => error
                .and_then(|e| e.status)
                .or(self.status)
                .and_then(|s| reqwest::StatusCode::from_u16(s).ok())
                .is_some_and(is_transient_status),
        }
    }
}

/// A bulk response: `{results, errorCount, errorIndexes}`.
///
/// Results come in **no guaranteed order**; match them to what you sent by `id`. Handle the
/// three groups [`BulkResults::partition`] gives: successes (commit them), permanent failures
/// (to the reject file with `error.code` / `error.message`), retryable failures (send those
/// entities again in a later batch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkResults<T> {
    /// One result per entity.
    #[serde(default = "Vec::new")]
    pub results: Vec<BulkResult<T>>,
    /// Number of failed entities, as the platform counts them.
    #[serde(default)]
    pub error_count: u32,
    /// Positions in the *request* of the failed entities.
    #[serde(default)]
    pub error_indexes: Vec<usize>,
}

/// [`BulkResults`] split by what the caller must do.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkPartition<T> {
    /// Succeeded.
    pub succeeded: Vec<BulkResult<T>>,
    /// Failed; may succeed if sent again.
    pub retryable: Vec<BulkResult<T>>,
    /// Failed for good.
    pub rejected: Vec<BulkResult<T>>,
}

impl<T> BulkResults<T> {
    /// Whether every entity succeeded (`errorCount` is 0 and no result says otherwise).
    pub fn all_succeeded(&self) -> bool {
        self.error_count == 0
            && self.error_indexes.is_empty()
            && self.results.iter().all(|r| r.success)
    }

    /// The failed results.
    pub fn failures(&self) -> impl Iterator<Item = &BulkResult<T>> {
        self.results.iter().filter(|r| !r.success)
    }

    /// Splits the results into succeeded / retryable / rejected.
    pub fn partition(self) -> BulkPartition<T> {
        let mut out = BulkPartition {
            succeeded: Vec::new(),
            retryable: Vec::new(),
            rejected: Vec::new(),
        };
        for result in self.results {
            if result.success {
                out.succeeded.push(result);
            } else if result.is_retryable_failure() {
                out.retryable.push(result);
            } else {
                out.rejected.push(result);
            }
        }
        out
    }
}

/// Scans every external contact, page by page, following cursors. Get one with
/// [`ExternalContactsApi::scan`].
#[derive(Debug)]
pub struct ContactScan {
    client: GenesysClient,
    limit: u32,
    division_id: Option<String>,
    cursor: Option<String>,
    done: bool,
}

impl ContactScan {
    /// The next page, `None` after the last. Resume a scan later (a cursor lives 24 h) with
    /// [`ContactScan::cursor`] and [`ExternalContactsApi::scan_from`].
    pub async fn next_page(&mut self) -> Result<Option<Vec<ExternalContact>>, Error> {
        if self.done {
            return Ok(None);
        }
        let call = Call::get(ec_path(&["scan", "contacts"]))
            .query("limit", self.limit)
            .query_opt("cursor", self.cursor.as_deref())
            .query_opt("divisionId", self.division_id.as_deref());
        let page: CursorPage<ExternalContact> = self.client.json(call).await?;
        match page.next_cursor() {
            Some(next) if !page.entities.is_empty() => self.cursor = Some(next.to_owned()),
            _ => self.done = true,
        }
        if page.entities.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(page.entities))
    }

    /// The cursor the next page will be fetched with (`None` before the first page).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// The scan as a stream of pages.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<ExternalContact>, Error>> {
        futures_util::stream::try_unfold(self, |mut scan| async move {
            Ok(scan.next_page().await?.map(|page| (page, scan)))
        })
    }
}

fn ec_path(rest: &[&str]) -> String {
    let mut segments = vec!["api", "v2", "externalcontacts"];
    segments.extend_from_slice(rest);
    path(&segments)
}

/// External Contacts endpoints. Get one with [`GenesysClient::external_contacts`].
#[derive(Clone, Copy, Debug)]
pub struct ExternalContactsApi<'a> {
    client: &'a GenesysClient,
}

impl GenesysClient {
    /// External Contacts.
    pub fn external_contacts(&self) -> ExternalContactsApi<'_> {
        ExternalContactsApi { client: self }
    }
}

impl ExternalContactsApi<'_> {
    /// `POST /api/v2/externalcontacts/contacts`. Not idempotent: a 504 or a timeout is
    /// [`Error::OutcomeUnknown`]; look the contact up by an identifier before creating again.
    pub async fn create(&self, contact: &ExternalContact) -> Result<ExternalContact, Error> {
        self.client
            .json(Call::post(ec_path(&["contacts"])).json(contact)?)
            .await
    }

    /// `GET /api/v2/externalcontacts/contacts/{contactId}`. For a merged id this returns the
    /// canonical contact.
    pub async fn get(&self, contact_id: &str) -> Result<ExternalContact, Error> {
        self.client
            .json(Call::get(ec_path(&["contacts", contact_id])))
            .await
    }

    /// `PUT /api/v2/externalcontacts/contacts/{contactId}`: replace a contact; `contact.id`
    /// names it.
    pub async fn update(&self, contact: &ExternalContact) -> Result<ExternalContact, Error> {
        let id = contact
            .id
            .as_deref()
            .ok_or_else(|| Error::InvalidRequest("a contact to update needs its id".into()))?;
        self.client
            .json(Call::put(ec_path(&["contacts", id])).json(contact)?)
            .await
    }

    /// `PATCH /api/v2/externalcontacts/contacts/{contactId}` with field changes. Idempotent
    /// (retried through 504s) unless it appends to a collection.
    pub async fn patch(
        &self,
        contact_id: &str,
        changes: &[PatchChange],
    ) -> Result<ExternalContact, Error> {
        let idempotent = changes
            .iter()
            .all(|c| c.action != PatchAction::AppendToCollection);
        let call = Call::patch(ec_path(&["contacts", contact_id]))
            .json(&PatchRequest { changes })?
            .idempotent(idempotent);
        self.client.json(call).await
    }

    /// `DELETE /api/v2/externalcontacts/contacts/{contactId}`.
    pub async fn delete(&self, contact_id: &str) -> Result<(), Error> {
        self.client
            .unit(Call::delete(ec_path(&["contacts", contact_id])))
            .await
    }

    /// `GET /api/v2/externalcontacts/contacts?q=…`: one page of a search.
    /// `page_size * page_number` must stay ≤ 1000; use [`ExternalContactsApi::scan`] to walk
    /// everything.
    pub async fn search(&self, query: &SearchQuery) -> Result<Page<ExternalContact>, Error> {
        let mut call = Call::get(ec_path(&["contacts"]))
            .query_opt("q", query.q.as_deref())
            .query_opt("pageSize", query.page_size)
            .query_opt("pageNumber", query.page_number)
            .query_opt("sortOrder", query.sort_order.as_deref());
        if !query.division_ids.is_empty() {
            call = call.query("divisionIds", query.division_ids.join(","));
        }
        self.client.json(call).await
    }

    /// `GET /api/v2/externalcontacts/scan/contacts`: a scan of every contact, `limit` (10–200)
    /// per page.
    pub fn scan(&self, limit: u32, division_id: Option<&str>) -> ContactScan {
        ContactScan {
            client: self.client.clone(),
            limit: limit.clamp(10, 200),
            division_id: division_id.map(str::to_owned),
            cursor: None,
            done: false,
        }
    }

    /// A scan resumed from a cursor saved from [`ContactScan::cursor`].
    pub fn scan_from(&self, limit: u32, division_id: Option<&str>, cursor: &str) -> ContactScan {
        let mut scan = self.scan(limit, division_id);
        scan.cursor = Some(cursor.to_owned());
        scan
    }

    /// `POST /api/v2/externalcontacts/identifierlookup/contacts`: the contact holding an
    /// identifier, or `Ok(None)` when none does (404).
    pub async fn lookup_by_identifier(
        &self,
        identifier: &ContactIdentifier,
    ) -> Result<Option<ExternalContact>, Error> {
        let call = Call::post(ec_path(&["identifierlookup", "contacts"]))
            .json(identifier)?
            .idempotent(true);
        match self.client.json(call).await {
            Ok(contact) => Ok(Some(contact)),
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v2/externalcontacts/contacts/merge`: merge 2–25 contacts into a **new**
    /// canonical contact, returned. Null fields of `value_override` are taken from the most
    /// recently modified contact. Not idempotent: on [`Error::OutcomeUnknown`] read the sources
    /// back (their `mergedTo`) before merging again.
    pub async fn merge(
        &self,
        contact_ids: &[String],
        value_override: Option<&ExternalContact>,
    ) -> Result<ExternalContact, Error> {
        if !(MIN_MERGE_IDS..=MAX_MERGE_IDS).contains(&contact_ids.len()) {
            return Err(Error::InvalidRequest(format!(
                "merge takes {MIN_MERGE_IDS} to {MAX_MERGE_IDS} contact ids, got {}",
                contact_ids.len()
            )));
        }
        let call = Call::post(ec_path(&["contacts", "merge"])).json(&MergeRequest {
            contact_ids,
            value_override,
        })?;
        self.client.json(call).await
    }

    /// `GET /api/v2/externalcontacts/contacts/{contactId}/unresolved`: the contact as it was
    /// before any merge (not resolved to its canonical contact).
    pub async fn get_unresolved(&self, contact_id: &str) -> Result<ExternalContact, Error> {
        self.client
            .json(Call::get(ec_path(&["contacts", contact_id, "unresolved"])))
            .await
    }

    /// `POST /api/v2/externalcontacts/bulk/contacts`: fetch contacts by id.
    pub async fn bulk_fetch(&self, ids: &[String]) -> Result<BulkResults<ExternalContact>, Error> {
        self.bulk(&["bulk", "contacts"], &ids_body(ids), true).await
    }

    /// `POST /api/v2/externalcontacts/bulk/contacts/add`. Not idempotent (each success is a
    /// new contact): on [`Error::OutcomeUnknown`] look the contacts up before adding again.
    pub async fn bulk_add(
        &self,
        contacts: &[ExternalContact],
    ) -> Result<BulkResults<ExternalContact>, Error> {
        self.bulk(
            &["bulk", "contacts", "add"],
            &Entities { entities: contacts },
            false,
        )
        .await
    }

    /// `POST /api/v2/externalcontacts/bulk/contacts/update`: replace contacts (each needs
    /// its id). Idempotent.
    pub async fn bulk_update(
        &self,
        contacts: &[ExternalContact],
    ) -> Result<BulkResults<ExternalContact>, Error> {
        self.bulk(
            &["bulk", "contacts", "update"],
            &Entities { entities: contacts },
            true,
        )
        .await
    }

    /// `POST /api/v2/externalcontacts/bulk/contacts/remove`: delete contacts by id.
    pub async fn bulk_remove(&self, ids: &[String]) -> Result<BulkResults<Value>, Error> {
        self.bulk(&["bulk", "contacts", "remove"], &ids_body(ids), true)
            .await
    }

    async fn bulk<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
        idempotent: bool,
    ) -> Result<BulkResults<T>, Error> {
        let results: BulkResults<T> = self
            .client
            .json(
                Call::post(ec_path(segments))
                    .json(body)?
                    .idempotent(idempotent),
            )
            .await?;
        if !results.all_succeeded() {
            tracing::info!(
                failed = results.error_count,
                total = results.results.len(),
                "Bulk call answered 200 with failed entities."
            );
        }
        Ok(results)
    }
}

fn ids_body(ids: &[String]) -> Entities<Vec<IdEntity<'_>>> {
    Entities {
        entities: ids.iter().map(|id| IdEntity { id }).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_results_parse_per_entity_outcomes_in_any_order() {
        let raw = r#"{
            "results": [
                {"id":"c3","success":false,"status":400,
                 "error":{"code":"invalid.value","message":"bad email","status":400,"retryable":false,
                          "details":[{"fieldName":"workEmail","value":"x","message":"not an email"}]}},
                {"id":"c1","success":true,"status":200,"entity":{"id":"c1","firstName":"Ann","unknownField":1}},
                {"id":"c2","success":false,"error":{"code":"internal.server.error","status":503}},
                {"id":"c4","success":false,"error":{"code":"x","status":500,"retryable":false}}
            ],
            "errorCount": 3, "errorIndexes": [1,2,3]
        }"#;
        let results: BulkResults<ExternalContact> = serde_json::from_str(raw).unwrap();
        assert!(!results.all_succeeded());
        assert_eq!(results.failures().count(), 3);
        let parts = results.partition();
        assert_eq!(parts.succeeded.len(), 1);
        assert_eq!(
            parts.succeeded[0]
                .entity
                .as_ref()
                .unwrap()
                .first_name
                .as_deref(),
            Some("Ann")
        );
        let retry_ids: Vec<_> = parts.retryable.iter().map(|r| r.id.as_deref()).collect();
        assert_eq!(retry_ids, vec![Some("c2")]);
        let rejected_ids: Vec<_> = parts.rejected.iter().map(|r| r.id.as_deref()).collect();
        assert_eq!(rejected_ids, vec![Some("c3"), Some("c4")]);
        let detail = &parts.rejected[0].error.as_ref().unwrap().details[0];
        assert_eq!(detail.field_name.as_deref(), Some("workEmail"));
    }

    #[test]
    fn a_200_with_error_count_is_not_all_succeeded() {
        let results: BulkResults<Value> =
            serde_json::from_str(r#"{"results":[],"errorCount":1,"errorIndexes":[0]}"#).unwrap();
        assert!(!results.all_succeeded());
        let ok: BulkResults<Value> =
            serde_json::from_str(r#"{"results":[{"id":"a","success":true}],"errorCount":0}"#)
                .unwrap();
        assert!(ok.all_succeeded());
    }

    #[test]
    fn external_contact_round_trips_and_skips_none() {
        let contact = ExternalContact {
            first_name: Some("Ann".into()),
            cell_phone: Some(PhoneNumber::e164("+14155552671")),
            external_ids: vec![ExternalId {
                external_source: ExternalSource {
                    id: None,
                    name: "crm".into(),
                },
                value: "cust_1".into(),
            }],
            ..ExternalContact::default()
        };
        let json = serde_json::to_value(&contact).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "firstName": "Ann",
                "cellPhone": {"display": "+14155552671"},
                "externalIds": [{"externalSource": {"name": "crm"}, "value": "cust_1"}]
            })
        );
        let fetched: ExternalContact = serde_json::from_str(
            r#"{"id":"x","type":"Curated","mergeSet":[{"id":"a"},{"id":"b"}],
                "twitterId":{"screenName":"ann"},"modifyDate":"2026-03-04T05:06:07.123Z",
                "cellPhone":{"display":"+1 415","acceptsSMS":true,"e164":"+1415"}}"#,
        )
        .unwrap();
        assert_eq!(fetched.kind, Some(ContactType::Curated));
        assert_eq!(fetched.merge_set.len(), 2);
        assert!(fetched.other.contains_key("twitterId"));
        assert_eq!(fetched.cell_phone.unwrap().accepts_sms, Some(true));
    }

    #[test]
    fn unknown_enum_values_do_not_break_decoding() {
        let id: ContactIdentifier =
            serde_json::from_str(r#"{"type":"SocialWhatsappBsuid","value":"v"}"#).unwrap();
        assert_eq!(id.kind, IdentifierType::Unknown);
        let c: ExternalContact = serde_json::from_str(r#"{"type":"Galactic"}"#).unwrap();
        assert_eq!(c.kind, Some(ContactType::Unknown));
    }
}
