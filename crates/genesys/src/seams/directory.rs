//! Genesys Cloud behind dedupd's platform seams: Outbound contact lists as a
//! [`ContactListSink`], External Contacts as a [`CustomerDirectory`], and this client's errors
//! as [`PlatformError`] kinds.

use std::collections::{BTreeMap, HashSet};

use dedupd_platform::contact_list::{
    ContactListSink, ListCapabilities, ListLayout, ListRow, ListTarget, RefusedRow, ResolvedList,
    UpsertOutcome,
};
use dedupd_platform::directory::{
    CustomerDirectory, CustomerRecord, DirectoryCapabilities, MergeValues, Merged, Placement,
    Resolved, Scan, ScanPage,
};
use dedupd_platform::{CallStats, ErrorKind, PlatformError, Session};

use super::platform_error;
use crate::{
    AddContactsOptions, ContactAddress, ContactList, ContactListQuery, ContactableStatus,
    EmailColumn, ExternalContact, GenesysClient, MAX_CONTACTS_PER_ADD, MAX_MERGE_IDS,
    MIN_MERGE_IDS, PhoneColumn, PhoneNumber, PhoneNumberStatus, WritableDialerContact,
};

/// The largest merge set External Contacts allows (every contact of a merge tree, canonical
/// ones included).
pub const MERGE_SET_MAX: usize = 52;

/// Contacts per bulk fetch.
const FETCH_CHUNK: usize = 25;

/// Contacts per scan page (the API's largest).
const SCAN_PAGE: u32 = 200;

/// Contact-list lookups behind [`ContactListSink::resolve`].
impl GenesysClient {
    /// An existing list, checked to have every column the layout writes.
    async fn existing_list(
        &self,
        id: &str,
        layout: &ListLayout,
    ) -> Result<ResolvedList, PlatformError> {
        let list = self
            .outbound()
            .get_contact_list(id)
            .await
            .map_err(|e| platform_error(&e, &format!("reading contact list {id}"), &[]))?;
        let missing: Vec<&str> = layout
            .columns
            .iter()
            .filter(|c| !list.column_names.contains(c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(PlatformError::new(
                ErrorKind::Permanent,
                format!(
                    "contact list {id} lacks the columns {} (it has: {}); add them, or create a list with --create-list",
                    missing.join(", "),
                    list.column_names.join(", ")
                ),
            ));
        }
        Ok(ResolvedList {
            id: id.to_owned(),
            created: false,
        })
    }

    /// The ids of the lists named exactly `name` (the API's `name` filter also matches longer
    /// names, so every page it returns is checked).
    async fn lists_named(&self, name: &str) -> Result<Vec<String>, PlatformError> {
        let mut ids = Vec::new();
        for page_number in 1.. {
            let page = self
                .outbound()
                .list_contact_lists(&ContactListQuery {
                    page_number: Some(page_number),
                    page_size: Some(100),
                    name: Some(name.to_owned()),
                    include_size: None,
                })
                .await
                .map_err(|e| {
                    platform_error(&e, &format!("looking for contact list {name:?}"), &[])
                })?;
            let n = page.entities.len();
            ids.extend(
                page.entities
                    .into_iter()
                    .filter(|l| l.name.as_deref() == Some(name))
                    .filter_map(|l| l.id),
            );
            if n == 0 || page.page_count.is_none_or(|c| page_number >= c) {
                break;
            }
        }
        Ok(ids)
    }
}

impl Session for GenesysClient {
    fn usage(&self) -> CallStats {
        let s = self.stats();
        CallStats {
            api_calls: s.api_calls,
            retries: s.retries,
            rate_limited: s.rate_limited,
            server_errors: s.server_errors,
            outcome_unknown: s.outcome_unknown,
            token_requests: s.token_requests,
            budget_wait: s.budget_wait(),
        }
    }

    fn gave_up(&self) -> Option<String> {
        self.unreachable().map(|u| u.to_string())
    }
}

/// The Outbound contact list of `name` with `layout`'s columns: its phone column dialable as a
/// cell phone, its e-mail column a personal address.
pub fn contact_list_for(name: &str, layout: &ListLayout) -> ContactList {
    let mut list = ContactList::new(name, layout.columns.clone());
    if let Some(phone) = &layout.phone_column {
        list.phone_columns = vec![PhoneColumn {
            column_name: phone.clone(),
            kind: "cell".into(),
            callable_time_column: None,
        }];
    }
    if let Some(email) = &layout.email_column {
        list.email_columns = vec![EmailColumn {
            column_name: email.clone(),
            kind: "personal".into(),
            contactable_time_column: None,
        }];
    }
    list
}

/// The add-contacts body of a row: `id` = the row's key (an upsert); a not-callable row is a
/// soft delete (`callable: false`, its phone column not callable, not contactable on Voice,
/// SMS and Email).
pub fn dialer_contact(list_id: &str, layout: &ListLayout, row: &ListRow) -> WritableDialerContact {
    let callable = row.callable;
    let media = ["Voice", "SMS", "Email"]
        .into_iter()
        .map(|m| {
            (
                m.to_owned(),
                ContactableStatus {
                    contactable: Some(callable),
                    column_status: None,
                },
            )
        })
        .collect();
    let phone_status = layout.phone_column.as_ref().map(|col| {
        BTreeMap::from([(
            col.clone(),
            PhoneNumberStatus {
                callable: Some(callable),
            },
        )])
    });
    WritableDialerContact {
        id: Some(row.key.clone()),
        contact_list_id: list_id.to_owned(),
        data: row.values.iter().cloned().collect(),
        callable: Some(callable),
        phone_number_status: phone_status,
        contactable_status: Some(media),
    }
}

impl ContactListSink for GenesysClient {
    const CAPABILITIES: ListCapabilities = ListCapabilities {
        max_batch: MAX_CONTACTS_PER_ADD,
        idempotent_upsert: true,
    };

    type Request = WritableDialerContact;

    fn request(list_id: &str, layout: &ListLayout, row: &ListRow) -> WritableDialerContact {
        dialer_contact(list_id, layout, row)
    }

    async fn resolve(
        &self,
        target: &ListTarget,
        layout: &ListLayout,
    ) -> Result<ResolvedList, PlatformError> {
        match target {
            ListTarget::Existing(id) => self.existing_list(id, layout).await,
            ListTarget::Create(name) => {
                // Creating a list is not idempotent, and a second run (or one killed after the
                // create) must find the list it made, not make another of the same name.
                let named = self.lists_named(name).await?;
                match named.as_slice() {
                    [] => {}
                    [id] => return self.existing_list(id, layout).await,
                    several => {
                        return Err(PlatformError::new(
                            ErrorKind::Permanent,
                            format!(
                                "{} contact lists are named {name:?} ({}); name one with --contact-list",
                                several.len(),
                                several.join(", ")
                            ),
                        ));
                    }
                }
                let created = self
                    .outbound()
                    .create_contact_list(&contact_list_for(name, layout))
                    .await
                    .map_err(|e| {
                        platform_error(&e, &format!("creating contact list {name:?}"), &[])
                    })?;
                let id = created.id.ok_or_else(|| {
                    PlatformError::new(
                        ErrorKind::Permanent,
                        format!("creating contact list {name:?}: the platform returned a contact list without an id"),
                    )
                })?;
                Ok(ResolvedList { id, created: true })
            }
        }
    }

    async fn upsert(
        &self,
        list_id: &str,
        layout: &ListLayout,
        rows: Vec<ListRow>,
    ) -> Result<UpsertOutcome, PlatformError> {
        let n = rows.len();
        let contacts: Vec<WritableDialerContact> = rows
            .iter()
            .map(|r| dialer_contact(list_id, layout, r))
            .collect();
        let options = AddContactsOptions {
            do_not_queue: Some(true),
            ..AddContactsOptions::default()
        };
        let r = self
            .outbound()
            .add_contacts_isolating(list_id, contacts, options)
            .await
            .map_err(|e| {
                platform_error(
                    &e,
                    &format!("adding {n} contacts to contact list {list_id}"),
                    &[],
                )
            })?;
        let sent: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        Ok(UpsertOutcome {
            accepted: r
                .accepted
                .iter()
                .filter_map(|c| c.id.clone())
                .filter(|id| sent.contains(id.as_str()))
                .collect(),
            refused: r
                .rejected
                .into_iter()
                .map(|rej| RefusedRow {
                    key: rej.contact.id.unwrap_or_default(),
                    status: rej.error.status,
                    code: rej.error.code,
                    message: rej.error.message,
                })
                .collect(),
            unconfirmed: r.unconfirmed,
        })
    }
}

/// An External Contact as a record to plan from: the first of its e-mails (work, personal,
/// other) and of its phones (cell, home, work, other; the E.164 form when the platform has
/// it), its address and `modifyDate`; the other e-mails and phones stay on the platform,
/// which keeps them through a merge.
pub fn customer_record(c: &ExternalContact) -> CustomerRecord {
    let phone = [&c.cell_phone, &c.home_phone, &c.work_phone, &c.other_phone]
        .into_iter()
        .flatten()
        .find_map(|p| p.e164.clone().or_else(|| p.display.clone()))
        .unwrap_or_default();
    let email = [&c.work_email, &c.personal_email, &c.other_email]
        .into_iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_default();
    let addr = c.address.clone().unwrap_or_default();
    let street = [addr.address1.as_deref(), addr.address2.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let source = c
        .kind
        .as_ref()
        .and_then(|k| serde_json::to_value(k).ok())
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .unwrap_or_else(|| "genesys".to_owned());
    CustomerRecord {
        id: c.id.clone().unwrap_or_default(),
        source,
        first_name: c.first_name.clone().unwrap_or_default(),
        last_name: c.last_name.clone().unwrap_or_default(),
        email,
        phone,
        street,
        city: addr.city.unwrap_or_default(),
        region: addr.state.unwrap_or_default(),
        postcode: addr.postal_code.unwrap_or_default(),
        country: addr.country_code,
        updated_at: c.modify_date,
    }
}

/// Places a cluster's values in an External Contact's slots: `first_name` → `firstName`,
/// `last_name` → `lastName` (the resolved value only: one slot each); e-mails fill
/// `workEmail`, `personalEmail`, `otherEmail` in that order; phones fill `cellPhone`,
/// `homePhone`, `workPhone`, `otherPhone` (as E.164 `display`); `street`, `city`, `region`,
/// `postcode`, `country` → `address{address1, city, state, postalCode, countryCode}`. What finds
/// no slot is listed as unplaced (the platform keeps every source record, so it stays readable
/// there).
pub fn place_values(values: &MergeValues) -> Placement<ExternalContact> {
    let mut unplaced = values.unplaced.clone();
    let mut c = ExternalContact::default();
    let single = |field: &str, unplaced: &mut BTreeMap<String, Vec<String>>| {
        let v = values.field(field);
        MergeValues::left_out(unplaced, field, v.extra);
        v.resolved
    };
    c.first_name = single("first_name", &mut unplaced);
    c.last_name = single("last_name", &mut unplaced);
    let address = ContactAddress {
        address1: single("street", &mut unplaced),
        address2: None,
        city: single("city", &mut unplaced),
        state: single("region", &mut unplaced),
        postal_code: single("postcode", &mut unplaced),
        country_code: single("country", &mut unplaced),
    };
    if address != ContactAddress::default() {
        c.address = Some(address);
    }
    let emails = values.field("email");
    let mut emails = emails.all().map(str::to_owned);
    c.work_email = emails.next();
    c.personal_email = emails.next();
    c.other_email = emails.next();
    MergeValues::left_out(&mut unplaced, "email", emails);
    let phones = values.field("phone");
    let mut phones = phones.all().map(PhoneNumber::e164);
    c.cell_phone = phones.next();
    c.home_phone = phones.next();
    c.work_phone = phones.next();
    c.other_phone = phones.next();
    MergeValues::left_out(&mut unplaced, "phone", phones.filter_map(|p| p.display));
    // Fields without a slot at all.
    for (field, v) in &values.fields {
        if ![
            "first_name",
            "last_name",
            "street",
            "city",
            "region",
            "postcode",
            "country",
            "email",
            "phone",
        ]
        .contains(&field.as_str())
        {
            MergeValues::left_out(&mut unplaced, field, v.all().map(str::to_owned));
        }
    }
    Placement {
        values: c,
        unplaced,
    }
}

fn resolved_of(requested: &str, e: &ExternalContact) -> Resolved {
    Resolved::Found {
        canonical: e.id.clone().unwrap_or_else(|| requested.to_owned()),
        set: e.merge_set.len().max(1),
    }
}

impl CustomerDirectory for GenesysClient {
    const CAPABILITIES: DirectoryCapabilities = DirectoryCapabilities {
        max_ids_per_merge: MAX_MERGE_IDS,
        min_ids_per_merge: MIN_MERGE_IDS,
        max_merge_set: Some(MERGE_SET_MAX),
        merge_reversible: false,
        merge_keeps_survivor_id: false,
        max_ids_per_fetch: FETCH_CHUNK,
    };

    type Values = ExternalContact;

    fn place(values: &MergeValues) -> Placement<ExternalContact> {
        place_values(values)
    }

    async fn scan_page(&self, scan: &mut Scan) -> Result<Option<ScanPage>, PlatformError> {
        if scan.done {
            return Ok(None);
        }
        let api = self.external_contacts();
        let mut pages = match &scan.cursor {
            Some(cursor) => api.scan_from(SCAN_PAGE, scan.scope.as_deref(), cursor),
            None => api.scan(SCAN_PAGE, scan.scope.as_deref()),
        };
        let before = scan.cursor.clone();
        let page = pages
            .next_page()
            .await
            .map_err(|e| platform_error(&e, "scanning External Contacts", &[]))?;
        let Some(page) = page else {
            scan.done = true;
            return Ok(None);
        };
        let after = pages.cursor().map(str::to_owned);
        if after.is_none() || after == before {
            scan.done = true;
        }
        scan.cursor = after;
        scan.read += page.len() as u64;
        // Contacts merged into another are left out: only canonical contacts can be merged.
        Ok(Some(
            page.iter()
                .filter(|c| c.merged_to.is_none())
                .map(customer_record)
                .collect(),
        ))
    }

    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, Resolved>, PlatformError> {
        let api = self.external_contacts();
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(FETCH_CHUNK) {
            let res = api.bulk_fetch(chunk).await.map_err(|e| {
                platform_error(&e, &format!("fetching {} contacts", chunk.len()), &[])
            })?;
            for r in res.results {
                let Some(id) = r.id.clone() else { continue };
                if r.success {
                    if let Some(e) = r.entity {
                        out.insert(id.clone(), resolved_of(&id, &e));
                    }
                } else if r.status == Some(404)
                    || r.error.as_ref().and_then(|e| e.status) == Some(404)
                {
                    out.insert(id, Resolved::NotFound);
                }
            }
        }
        // Transient per-record failures fall back to a single GET, which the client retries.
        for id in ids {
            if out.contains_key(id) {
                continue;
            }
            match api.get(id).await {
                Ok(e) => {
                    out.insert(id.clone(), resolved_of(id, &e));
                }
                Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => {
                    out.insert(id.clone(), Resolved::NotFound);
                }
                Err(e) => return Err(platform_error(&e, &format!("fetching contact {id}"), &[])),
            }
        }
        Ok(out)
    }

    async fn merge(
        &self,
        ids: &[String],
        values: &ExternalContact,
    ) -> Result<Merged, PlatformError> {
        let c = self
            .external_contacts()
            .merge(ids, Some(values))
            .await
            .map_err(|e| platform_error(&e, &format!("merge of {} contacts", ids.len()), &[]))?;
        Ok(Merged {
            canonical: c.id,
            set: c.merge_set.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiError, Error, ErrorBody};
    use reqwest::{Method, StatusCode};

    fn api(status: u16, body: ErrorBody) -> Error {
        Error::Api(Box::new(ApiError {
            method: Method::POST,
            path: "/api/v2/externalcontacts/contacts/merge".into(),
            status: StatusCode::from_u16(status).unwrap(),
            body,
            retry_after: None,
            attempts: 1,
        }))
    }

    #[test]
    fn errors_map_to_the_kinds_a_job_acts_on() {
        let body = ErrorBody {
            message: Some("active associations".into()),
            entity_id: Some("c-2".into()),
            ..ErrorBody::default()
        };
        let conflict = platform_error(&api(409, body), "merge of 3 contacts", &[]);
        assert_eq!(conflict.kind, ErrorKind::Conflict);
        assert_eq!(conflict.entity_ids, vec!["c-2"]);
        assert_eq!(conflict.status, Some(409));
        assert_eq!(
            conflict.platform_message.as_deref(),
            Some("active associations")
        );
        assert!(conflict.message.starts_with("merge of 3 contacts: "));
        let kind = |e: Error| platform_error(&e, "x", &[]).kind;
        assert_eq!(kind(api(401, ErrorBody::default())), ErrorKind::Auth);
        assert_eq!(kind(api(403, ErrorBody::default())), ErrorKind::Auth);
        assert_eq!(kind(api(404, ErrorBody::default())), ErrorKind::NotFound);
        assert_eq!(kind(api(400, ErrorBody::default())), ErrorKind::Permanent);
        assert_eq!(kind(api(503, ErrorBody::default())), ErrorKind::Transient);
        assert_eq!(kind(api(429, ErrorBody::default())), ErrorKind::Transient);
        assert_eq!(kind(Error::Config("x".into())), ErrorKind::Config);
        assert_eq!(
            kind(Error::InvalidRequest("x".into())),
            ErrorKind::Permanent
        );
        let unknown = Error::OutcomeUnknown(Box::new(crate::OutcomeUnknown {
            method: Method::POST,
            path: "/p".into(),
            status: Some(StatusCode::GATEWAY_TIMEOUT),
            body: None,
            attempts: 1,
        }));
        assert_eq!(kind(unknown), ErrorKind::OutcomeUnknown);
        let gone = Error::from(crate::Unreachable {
            base_url: "http://127.0.0.1:9".into(),
            down_for: std::time::Duration::from_secs(5),
            last_failure: "connection refused".into(),
        });
        assert_eq!(kind(gone), ErrorKind::Unreachable);
    }

    #[test]
    fn a_do_not_call_row_is_a_soft_delete_keyed_by_external_id() {
        let layout = ListLayout::for_columns(&["customer_id".into(), "phone_e164".into()]);
        let row = ListRow {
            key: "k1".into(),
            values: vec![
                ("customer_id".into(), "C1".into()),
                ("phone_e164".into(), "+14155552671".into()),
            ],
            callable: false,
        };
        let c = dialer_contact("list-1", &layout, &row);
        assert_eq!(c.id.as_deref(), Some("k1"));
        assert_eq!(c.contact_list_id, "list-1");
        assert_eq!(c.callable, Some(false));
        assert_eq!(
            c.phone_number_status.unwrap()["phone_e164"].callable,
            Some(false)
        );
        assert!(
            c.contactable_status
                .unwrap()
                .values()
                .all(|s| s.contactable == Some(false))
        );
        assert_eq!(c.data["customer_id"], "C1");
        let list = contact_list_for("crm", &layout);
        assert_eq!(list.phone_columns.len(), 1);
        assert!(list.email_columns.is_empty());
    }
}
