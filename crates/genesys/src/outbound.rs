//! Outbound contact lists (`/api/v2/outbound/contactlists`): lists and their contacts.
//!
//! Adding contacts is an **upsert keyed on `id`**: send a contact with a caller-chosen id
//! (dedupd's `externalId`) and a known id is updated, never duplicated. That makes
//! [`OutboundApi::add_contacts`] idempotent when every contact carries an id, so the client
//! retries it through timeouts and 504s; without ids the server mints new ones and a 504 is
//! reported as [`Error::OutcomeUnknown`].

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Call, GenesysClient, path};
use crate::common::{EntityRef, Page};
use crate::error::{Error, ErrorBody};

/// Largest batch add-contacts accepts.
pub const MAX_CONTACTS_PER_ADD: usize = 1000;
/// Ids per request of [`OutboundApi::delete_contacts`].
pub const DELETE_IDS_PER_CALL: usize = 100;
/// Largest page size of contact list listings and contact searches.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A phone column of a contact list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneColumn {
    /// Column name.
    pub column_name: String,
    /// Phone type, e.g. `cell`, `home`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Column holding the callable time window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callable_time_column: Option<String>,
}

/// An email column of a contact list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailColumn {
    /// Column name.
    pub column_name: String,
    /// Email type, e.g. `work`, `personal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Column holding the contactable time window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contactable_time_column: Option<String>,
}

/// A contact list (`ContactList`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactList {
    /// Server-assigned id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name, unique in the org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Current version; a `PUT` must echo it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Division.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<EntityRef>,
    /// Every column of the list's contacts (required).
    #[serde(default)]
    pub column_names: Vec<String>,
    /// Phone columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_columns: Vec<PhoneColumn>,
    /// Email columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_columns: Vec<EmailColumn>,
    /// Column deciding preview mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_mode_column_name: Option<String>,
    /// Values of the preview column that allow preview.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview_mode_accepted_values: Vec<String>,
    /// Map contacts to time zones automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_time_zone_mapping: Option<bool>,
    /// Zip-code column for time-zone mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code_column_name: Option<String>,
    /// Trim whitespace of imported values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim_whitespace: Option<bool>,
    /// Number of contacts (with `includeSize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<DateTime<Utc>>,
    /// Last modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_modified: Option<DateTime<Utc>>,
    /// URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    /// Fields this model does not name (import status, attempt limits, …), kept so that a
    /// fetched list can be `PUT` back whole.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ContactList {
    /// A new list to create.
    pub fn new(name: impl Into<String>, column_names: Vec<String>) -> Self {
        Self {
            name: Some(name.into()),
            column_names,
            ..Self::default()
        }
    }
}

/// Per-phone-column dialing status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PhoneNumberStatus {
    /// Whether the number may be dialed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callable: Option<bool>,
}

/// Per-column contactability.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ColumnStatus {
    /// Whether the column may be contacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contactable: Option<bool>,
}

/// Contactability for one media type (`Voice`, `SMS`, `Email`, `WhatsApp`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContactableStatus {
    /// Whether the contact may be reached on this media at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contactable: Option<bool>,
    /// Per-column overrides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_status: Option<BTreeMap<String, ColumnStatus>>,
}

/// A contact to add or upsert (`WritableDialerContact`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WritableDialerContact {
    /// Caller-chosen id: the upsert key. Leave `None` to have the server mint one (then the
    /// request is not idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The list (required).
    pub contact_list_id: String,
    /// Column values (required).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Whether the contact may be dialed; `false` is the soft delete for do-not-call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callable: Option<bool>,
    /// Per phone column: whether it may be dialed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_status: Option<BTreeMap<String, PhoneNumberStatus>>,
    /// Per media type: whether the contact may be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contactable_status: Option<BTreeMap<String, ContactableStatus>>,
}

/// A contact as the server returns it (`DialerContact`). Also the body of a `PUT`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DialerContact {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The list.
    #[serde(default)]
    pub contact_list_id: String,
    /// Column values.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Whether the contact may be dialed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callable: Option<bool>,
    /// Per phone column: whether it may be dialed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_status: Option<BTreeMap<String, PhoneNumberStatus>>,
    /// Per media type: whether the contact may be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contactable_status: Option<BTreeMap<String, ContactableStatus>>,
    /// Creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<DateTime<Utc>>,
    /// URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    /// Server-maintained fields this model does not name (`callRecords`,
    /// `contactColumnTimeZones`, `configurationOverrides`, evaluations, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl From<&DialerContact> for WritableDialerContact {
    fn from(c: &DialerContact) -> Self {
        Self {
            id: c.id.clone(),
            contact_list_id: c.contact_list_id.clone(),
            data: c.data.clone(),
            callable: c.callable,
            phone_number_status: c.phone_number_status.clone(),
            contactable_status: c.contactable_status.clone(),
        }
    }
}

/// Query options of add-contacts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddContactsOptions {
    /// `priority`: put the contacts at the front of the dialing queue.
    pub priority: Option<bool>,
    /// `clearSystemData`: reset call records of contacts that already exist.
    pub clear_system_data: Option<bool>,
    /// `doNotQueue`: keep updated contacts' queue position (no redial of dialed contacts).
    pub do_not_queue: Option<bool>,
}

/// How clauses or predicates combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterType {
    /// All must hold.
    #[serde(rename = "AND")]
    And,
    /// Any may hold.
    #[serde(rename = "OR")]
    Or,
}

/// How a column compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// As numbers.
    Numeric,
    /// As text.
    Alphabetic,
}

/// Predicate operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum FilterOperator {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
    Contains,
    BeginsWith,
    EndsWith,
    Before,
    After,
    Between,
    In,
}

/// A range for `BETWEEN` / `IN`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FilterRange {
    /// Lower bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    /// Upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// Whether `min` is included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_inclusive: Option<bool>,
    /// Whether `max` is included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inclusive: Option<bool>,
    /// The set for `IN`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub in_set: Vec<String>,
}

/// One condition on a column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterPredicate {
    /// The column.
    pub column: String,
    /// How it compares.
    pub column_type: ColumnType,
    /// The operator.
    pub operator: FilterOperator,
    /// The operand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The range, for `BETWEEN` and `IN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<FilterRange>,
    /// Negate the predicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverted: Option<bool>,
}

/// A group of predicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterClause {
    /// How the predicates combine.
    pub filter_type: FilterType,
    /// The predicates.
    pub predicates: Vec<FilterPredicate>,
}

/// Search criteria (`ContactBulkSearchCriteria`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchCriteria {
    /// How the clauses combine.
    pub filter_type: FilterType,
    /// The clauses.
    pub clauses: Vec<FilterClause>,
}

/// Sort order of a contact search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactSort {
    /// Column to sort by.
    pub field_name: String,
    /// `ASC` or `DESC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Compare as numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<bool>,
}

/// Body of a contact search (`ContactListingRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactListingRequest {
    /// Page number, from 1.
    pub page_number: u32,
    /// Page size, at most [`MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// Filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<SearchCriteria>,
    /// Sort order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact_sorts: Vec<ContactSort>,
    /// A saved filter to apply instead of `criteria`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_list_filter_id: Option<String>,
}

impl ContactListingRequest {
    /// Contacts whose `column` equals `value` (text comparison).
    pub fn column_equals(
        column: impl Into<String>,
        value: impl Into<String>,
        page_number: u32,
        page_size: u32,
    ) -> Self {
        Self {
            page_number,
            page_size,
            criteria: Some(SearchCriteria {
                filter_type: FilterType::And,
                clauses: vec![FilterClause {
                    filter_type: FilterType::And,
                    predicates: vec![FilterPredicate {
                        column: column.into(),
                        column_type: ColumnType::Alphabetic,
                        operator: FilterOperator::Equals,
                        value: Some(value.into()),
                        range: None,
                        inverted: None,
                    }],
                }],
            }),
            contact_sorts: Vec::new(),
            contact_list_filter_id: None,
        }
    }
}

/// Query of [`OutboundApi::list_contact_lists`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactListQuery {
    /// Page number, from 1 (default 1).
    pub page_number: Option<u32>,
    /// Page size, at most 100 (default 25).
    pub page_size: Option<u32>,
    /// Filter by name.
    pub name: Option<String>,
    /// Include each list's size.
    pub include_size: Option<bool>,
}

/// A contact the platform refused, with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedContact {
    /// The contact as sent.
    pub contact: WritableDialerContact,
    /// The platform's error (its `code` and `message` go to the reject file).
    pub error: ErrorBody,
}

/// Outcome of [`OutboundApi::add_contacts_isolating`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddContactsReport {
    /// Contacts the platform accepted, as it returned them.
    pub accepted: Vec<DialerContact>,
    /// Contacts refused permanently (a 4xx naming them, or a 4xx of a batch of one).
    pub rejected: Vec<RejectedContact>,
    /// Ids sent in a batch that succeeded but that the response did not return: not confirmed,
    /// so not to be committed as written (send them again).
    pub unconfirmed: Vec<String>,
    /// Add-contacts calls made, retries excluded.
    pub calls: u32,
}

/// Outbound contact-list endpoints. Get one with [`GenesysClient::outbound`].
#[derive(Clone, Copy, Debug)]
pub struct OutboundApi<'a> {
    client: &'a GenesysClient,
}

fn lists_path(rest: &[&str]) -> String {
    let mut segments = vec!["api", "v2", "outbound", "contactlists"];
    segments.extend_from_slice(rest);
    path(&segments)
}

impl GenesysClient {
    /// Outbound contact lists and their contacts.
    pub fn outbound(&self) -> OutboundApi<'_> {
        OutboundApi { client: self }
    }
}

impl OutboundApi<'_> {
    /// `POST /api/v2/outbound/contactlists`.
    pub async fn create_contact_list(&self, list: &ContactList) -> Result<ContactList, Error> {
        self.client
            .json(Call::post(lists_path(&[])).json(list)?)
            .await
    }

    /// `GET /api/v2/outbound/contactlists/{contactListId}` (with `includeSize=true`).
    pub async fn get_contact_list(&self, list_id: &str) -> Result<ContactList, Error> {
        self.client
            .json(Call::get(lists_path(&[list_id])).query("includeSize", true))
            .await
    }

    /// `GET /api/v2/outbound/contactlists`.
    pub async fn list_contact_lists(
        &self,
        query: &ContactListQuery,
    ) -> Result<Page<ContactList>, Error> {
        let call = Call::get(lists_path(&[]))
            .query_opt("pageNumber", query.page_number)
            .query_opt("pageSize", query.page_size)
            .query_opt("name", query.name.as_deref())
            .query_opt("includeSize", query.include_size);
        self.client.json(call).await
    }

    /// `PUT /api/v2/outbound/contactlists/{contactListId}`; `list.version` must be current.
    pub async fn update_contact_list(&self, list: &ContactList) -> Result<ContactList, Error> {
        let id = list
            .id
            .as_deref()
            .ok_or_else(|| Error::InvalidRequest("a contact list to update needs its id".into()))?;
        self.client
            .json(Call::put(lists_path(&[id])).json(list)?)
            .await
    }

    /// `DELETE /api/v2/outbound/contactlists/{contactListId}`.
    pub async fn delete_contact_list(&self, list_id: &str) -> Result<(), Error> {
        self.client.unit(Call::delete(lists_path(&[list_id]))).await
    }

    /// `POST /api/v2/outbound/contactlists/{contactListId}/contacts`: add or update (upsert by
    /// `id`) up to [`MAX_CONTACTS_PER_ADD`] contacts. Returns the contacts as stored.
    ///
    /// Idempotent, and retried through 504s and timeouts, when every contact has an id.
    ///
    /// **A 200 is not proof that every contact was written**: compare the returned ids with
    /// the sent ones, or use [`OutboundApi::add_contacts_isolating`], which does.
    ///
    /// **Per-record errors.** When one contact is invalid the platform refuses the whole
    /// request with a 4xx. [`Error::rejected_entity_ids`] gives the ids it names: write those
    /// contacts to the reject file with the error's `code` and `message`, and send the rest
    /// again. [`OutboundApi::add_contacts_isolating`] does exactly that (and bisects the batch
    /// when the error names no contact).
    pub async fn add_contacts(
        &self,
        list_id: &str,
        contacts: &[WritableDialerContact],
        options: AddContactsOptions,
    ) -> Result<Vec<DialerContact>, Error> {
        if contacts.len() > MAX_CONTACTS_PER_ADD {
            return Err(Error::InvalidRequest(format!(
                "add-contacts takes at most {MAX_CONTACTS_PER_ADD} contacts, got {}",
                contacts.len()
            )));
        }
        let all_have_ids = contacts
            .iter()
            .all(|c| c.id.as_deref().is_some_and(|id| !id.is_empty()));
        let call = Call::post(lists_path(&[list_id, "contacts"]))
            .query_opt("priority", options.priority)
            .query_opt("clearSystemData", options.clear_system_data)
            .query_opt("doNotQueue", options.do_not_queue)
            .json(contacts)?
            .idempotent(all_have_ids);
        self.client.json(call).await
    }

    /// [`OutboundApi::add_contacts`] that isolates permanently refused contacts instead of
    /// failing the batch: on a 400/413/422 naming contacts of the batch, those are moved to
    /// [`AddContactsReport::rejected`] and the rest is sent again; on one naming none, the
    /// batch is split in halves until the offenders stand alone (a contact refused alone is
    /// rejected). Every contact must carry an id (the upsert key), which makes re-sending safe.
    ///
    /// Other errors end the call with `Err`: transient failures that outlast the retry
    /// policy, [`Error::OutcomeUnknown`], and errors about the request as a whole (401, 403,
    /// 404 unknown list, …). Sub-batches sent before may already be written; since every write
    /// is an upsert by id, send the whole batch again later.
    pub async fn add_contacts_isolating(
        &self,
        list_id: &str,
        contacts: Vec<WritableDialerContact>,
        options: AddContactsOptions,
    ) -> Result<AddContactsReport, Error> {
        if let Some(position) = contacts
            .iter()
            .position(|c| c.id.as_deref().is_none_or(str::is_empty))
        {
            return Err(Error::InvalidRequest(format!(
                "contact #{position} has no id; add_contacts_isolating needs ids to upsert safely"
            )));
        }
        let mut report = AddContactsReport::default();
        let mut pending: Vec<Vec<WritableDialerContact>> = contacts
            .chunks(MAX_CONTACTS_PER_ADD)
            .map(<[_]>::to_vec)
            .collect();
        while let Some(batch) = pending.pop() {
            if batch.is_empty() {
                continue;
            }
            report.calls += 1;
            match self.add_contacts(list_id, &batch, options).await {
                Ok(stored) => {
                    let returned: HashSet<&str> =
                        stored.iter().filter_map(|c| c.id.as_deref()).collect();
                    report.unconfirmed.extend(
                        batch
                            .iter()
                            .filter_map(|c| c.id.as_deref())
                            .filter(|id| !returned.contains(id))
                            .map(str::to_owned),
                    );
                    report.accepted.extend(stored);
                }
                Err(error) if is_per_record_error(&error) => {
                    let body = error.error_body().cloned().unwrap_or_default();
                    let named: HashSet<String> = error.rejected_entity_ids().into_iter().collect();
                    let (offenders, rest): (Vec<_>, Vec<_>) = batch
                        .into_iter()
                        .partition(|c| c.id.as_ref().is_some_and(|id| named.contains(id)));
                    if !offenders.is_empty() {
                        tracing::info!(
                            rejected = offenders.len(),
                            code = body.code.as_deref().unwrap_or(""),
                            "Contacts refused by the platform; sending the rest of the batch again."
                        );
                        report.rejected.extend(offenders.into_iter().map(|contact| {
                            RejectedContact {
                                contact,
                                error: body.clone(),
                            }
                        }));
                        pending.push(rest);
                    } else if rest.len() == 1 {
                        report
                            .rejected
                            .extend(rest.into_iter().map(|contact| RejectedContact {
                                contact,
                                error: body.clone(),
                            }));
                    } else {
                        let mut left = rest;
                        let right = left.split_off(left.len() / 2);
                        pending.push(right);
                        pending.push(left);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(report)
    }

    /// `GET /api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}`.
    pub async fn get_contact(
        &self,
        list_id: &str,
        contact_id: &str,
    ) -> Result<DialerContact, Error> {
        self.client
            .json(Call::get(lists_path(&[list_id, "contacts", contact_id])))
            .await
    }

    /// `PUT /api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}`: replace one
    /// contact (there is no PATCH). `contact.id` names the contact.
    pub async fn update_contact(
        &self,
        list_id: &str,
        contact: &DialerContact,
    ) -> Result<DialerContact, Error> {
        let id = contact
            .id
            .as_deref()
            .ok_or_else(|| Error::InvalidRequest("a contact to update needs its id".into()))?;
        self.client
            .json(Call::put(lists_path(&[list_id, "contacts", id])).json(contact)?)
            .await
    }

    /// `DELETE /api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}`.
    pub async fn delete_contact(&self, list_id: &str, contact_id: &str) -> Result<(), Error> {
        self.client
            .unit(Call::delete(lists_path(&[list_id, "contacts", contact_id])))
            .await
    }

    /// `DELETE /api/v2/outbound/contactlists/{contactListId}/contacts?contactIds=…`: delete
    /// many. The ids are sent comma-joined, as the official SDKs do, [`DELETE_IDS_PER_CALL`]
    /// per request so URLs stay short. Contacts in use by a campaign are not deleted.
    pub async fn delete_contacts(
        &self,
        list_id: &str,
        contact_ids: &[String],
    ) -> Result<(), Error> {
        for chunk in contact_ids.chunks(DELETE_IDS_PER_CALL) {
            let call = Call::delete(lists_path(&[list_id, "contacts"]))
                .query("contactIds", chunk.join(","));
            self.client.unit(call).await?;
        }
        Ok(())
    }

    /// `POST /api/v2/outbound/contactlists/{contactListId}/contacts/bulk`: fetch contacts by id.
    /// Ids that do not exist are simply absent from the result.
    pub async fn get_contacts_bulk(
        &self,
        list_id: &str,
        contact_ids: &[String],
    ) -> Result<Vec<DialerContact>, Error> {
        let call = Call::post(lists_path(&[list_id, "contacts", "bulk"]))
            .json(contact_ids)?
            .idempotent(true);
        self.client.json(call).await
    }

    /// `POST /api/v2/outbound/contactlists/{contactListId}/contacts/search`.
    pub async fn search_contacts(
        &self,
        list_id: &str,
        request: &ContactListingRequest,
    ) -> Result<Page<DialerContact>, Error> {
        let call = Call::post(lists_path(&[list_id, "contacts", "search"]))
            .json(request)?
            .idempotent(true);
        self.client.json(call).await
    }

    /// Every contact whose `column` equals `value` (all pages of a search).
    pub async fn search_by_column(
        &self,
        list_id: &str,
        column: &str,
        value: &str,
    ) -> Result<Vec<DialerContact>, Error> {
        let mut found = Vec::new();
        let mut page_number = 1;
        loop {
            let request =
                ContactListingRequest::column_equals(column, value, page_number, MAX_PAGE_SIZE);
            let page = self.search_contacts(list_id, &request).await?;
            let empty = page.entities.is_empty();
            let more = page.has_next();
            found.extend(page.entities);
            if empty || !more {
                return Ok(found);
            }
            page_number += 1;
        }
    }
}

/// Errors that can be caused by individual contacts of a batch, so that isolating them helps:
/// validation (400, 422) and a body too large (413). Anything else (401/403 permissions, 404 no
/// such list, 409, …) is about the request as a whole and ends the call.
fn is_per_record_error(error: &Error) -> bool {
    matches!(error, Error::Api(_))
        && error
            .status()
            .is_some_and(|s| matches!(s.as_u16(), 400 | 413 | 422))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_contact_serializes_camel_case_and_skips_none() {
        let contact = WritableDialerContact {
            id: Some("cust_1".into()),
            contact_list_id: "list-1".into(),
            data: BTreeMap::from([("phone".into(), "+14155552671".into())]),
            callable: Some(false),
            phone_number_status: None,
            contactable_status: Some(BTreeMap::from([(
                "Voice".into(),
                ContactableStatus {
                    contactable: Some(false),
                    column_status: None,
                },
            )])),
        };
        let json = serde_json::to_value(&contact).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "cust_1",
                "contactListId": "list-1",
                "data": {"phone": "+14155552671"},
                "callable": false,
                "contactableStatus": {"Voice": {"contactable": false}}
            })
        );
    }

    #[test]
    fn dialer_contact_keeps_unknown_fields_for_put() {
        let raw = r#"{"id":"c1","contactListId":"l","data":{"a":"1"},"callable":true,
            "callRecords":{"phone":{"lastResult":"x"}},"dateCreated":"2026-01-02T03:04:05.000Z",
            "selfUri":"/api/v2/outbound/contactlists/l/contacts/c1"}"#;
        let contact: DialerContact = serde_json::from_str(raw).unwrap();
        assert_eq!(contact.id.as_deref(), Some("c1"));
        assert!(contact.other.contains_key("callRecords"));
        let back = serde_json::to_value(&contact).unwrap();
        assert_eq!(back["callRecords"]["phone"]["lastResult"], "x");
        assert_eq!(WritableDialerContact::from(&contact).data["a"], "1");
    }

    #[test]
    fn column_search_body_matches_the_schema() {
        let body = ContactListingRequest::column_equals("email", "a@b.c", 1, 100);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["criteria"]["clauses"][0]["predicates"][0]["operator"],
            "EQUALS"
        );
        assert_eq!(
            json["criteria"]["clauses"][0]["predicates"][0]["columnType"],
            "alphabetic"
        );
        assert_eq!(json["criteria"]["filterType"], "AND");
        assert!(json.get("contactSorts").is_none());
    }
}
