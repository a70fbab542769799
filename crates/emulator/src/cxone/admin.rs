//! The CXone admin API under `/__emulator/` (no auth, no faults, not counted): the shared
//! routes of [`crate::gate::admin`] plus seeding and reading CXone data. Every read has a Rust
//! twin on [`CxoneState`].

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::customers::definition;
use super::dfo::{NewMessage, store_message, validate_channel};
use super::dnc::{create_group, group_json, normalize_phone};
use super::error::{CxError, CxResult};
use super::extract::{Pth, Q};
use super::lists::{COLUMN_PARAMS, complete_job, create_list, job_json, parse_date, record_json};
use super::state::{CustomField, CustomerRec, CxoneState, DncRecord, Identity, JobStatus};
use super::wire::{self, ok};
use crate::error::EmulatorError;
use crate::gate::admin::admin_json;
use crate::gate::middleware::GateError;
use crate::util::iso;

/// The CXone-only admin routes, `(METHOD, path)` (besides
/// [`SHARED_ADMIN_ROUTES`](crate::SHARED_ADMIN_ROUTES)).
pub const CXONE_ADMIN_ROUTES: &[(&str, &str)] = &[
    ("POST", "/__emulator/seed"),
    ("GET", "/__emulator/channels"),
    ("GET", "/__emulator/customers"),
    ("GET", "/__emulator/customers/{customerId}"),
    ("GET", "/__emulator/messages"),
    ("GET", "/__emulator/threads"),
    ("GET", "/__emulator/calling-lists"),
    ("GET", "/__emulator/calling-lists/{listId}"),
    ("GET", "/__emulator/upload-jobs"),
    ("POST", "/__emulator/upload-jobs/complete"),
    ("GET", "/__emulator/dnc-groups"),
];

/// What `POST /__emulator/seed` (or [`CxoneState::seed`]) creates. Every part is optional;
/// items are applied in order (channels, definitions, customers, messages, lists, DNC groups)
/// and, on an error, the items before it stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CxoneSeed {
    /// Channels in the `POST /dfo/3.0/channels` shape; `hasOutboundFlow` defaults to true.
    #[serde(default)]
    pub channels: Vec<Value>,
    /// Customer custom-field definitions (`{ident, label, type}`); idents a seeded customer
    /// uses without a definition get a `text` one.
    #[serde(default)]
    pub custom_field_definitions: Vec<Value>,
    /// Customer cards.
    #[serde(default)]
    pub customers: Vec<SeedCustomer>,
    /// Messages (each on a channel's thread, as if posted through the API).
    #[serde(default)]
    pub messages: Vec<SeedMessage>,
    /// Calling lists with their records.
    #[serde(default)]
    pub calling_lists: Vec<SeedCallingList>,
    /// DNC groups with their numbers.
    #[serde(default)]
    pub dnc_groups: Vec<SeedDncGroup>,
}

/// A customer card to seed (e.g. one row of a contact export). E-mails and phones become
/// identities as given (the platform stores channel addresses unnormalized).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedCustomer {
    /// The card's id (a GUID is drawn when absent); a clash is an error.
    #[serde(default)]
    pub id: Option<String>,
    /// `firstName`.
    #[serde(default)]
    pub first_name: Option<String>,
    /// `surname` (`lastName` accepted).
    #[serde(default, alias = "lastName")]
    pub surname: Option<String>,
    /// E-mail identities.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Phone identities.
    #[serde(default)]
    pub phones: Vec<String>,
    /// Other identities.
    #[serde(default)]
    pub identities: Vec<SeedIdentity>,
    /// Custom field values by ident.
    #[serde(default)]
    pub custom_fields: BTreeMap<String, String>,
    /// `createdAt` / `updatedAt` (RFC 3339; default now).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// An identity to seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedIdentity {
    /// The address (`idOnExternalPlatform`).
    pub id_on_external_platform: String,
    /// `firstName`.
    #[serde(default)]
    pub first_name: Option<String>,
    /// `lastName`.
    #[serde(default)]
    pub last_name: Option<String>,
    /// `nickname`.
    #[serde(default)]
    pub nickname: Option<String>,
}

/// A text message to seed on a channel's thread. Its end user (author of an inbound message,
/// recipient of an outbound one) is found by identity or gets a new card, as through the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedMessage {
    /// The channel (must exist).
    pub channel_id: String,
    /// The thread.
    pub thread_id_on_external_platform: String,
    /// The message id on the external platform (a GUID when absent).
    #[serde(default)]
    pub id_on_external_platform: Option<String>,
    /// `inbound` (default) or `outbound`.
    #[serde(default)]
    pub direction: Option<String>,
    /// The text.
    pub text: String,
    /// The end user's identity.
    pub end_user_id_on_external_platform: String,
    /// RFC 3339 (default now).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A calling list to seed: the mapping call's parameters and the rows of an uploaded file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedCallingList {
    /// `listName`.
    pub list_name: String,
    /// `externalIdColumn`.
    pub external_id_column: String,
    /// Other `…Column` parameters of the mapping call (e.g. `firstNameColumn`).
    #[serde(default)]
    pub column_mappings: BTreeMap<String, String>,
    /// `destinationMappings` as `fieldName → fieldValue` (e.g. `PhoneNumber → phone`).
    #[serde(default)]
    pub destination_mappings: BTreeMap<String, String>,
    /// The file's header.
    #[serde(default)]
    pub header: Vec<String>,
    /// The file's rows (stored as uploaded, duplicates included).
    #[serde(default)]
    pub rows: Vec<Vec<String>>,
}

/// A DNC group to seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedDncGroup {
    /// `dncGroupName`.
    pub dnc_group_name: String,
    /// `dncGroupDescription`.
    #[serde(default)]
    pub dnc_group_description: Option<String>,
    /// Numbers (any formatting; stored as digits).
    #[serde(default)]
    pub phone_numbers: Vec<String>,
}

/// The ids a seed created, per part, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedOutcome {
    /// Channel ids.
    pub channels: Vec<String>,
    /// Customer ids.
    pub customers: Vec<String>,
    /// Message ids (CXone's).
    pub messages: Vec<String>,
    /// Calling list ids.
    pub calling_lists: Vec<i64>,
    /// DNC group ids.
    pub dnc_groups: Vec<i64>,
}

fn seed_err(what: String) -> EmulatorError {
    EmulatorError::InvalidSeed(what)
}

fn cx_seed_err(what: &str, e: &CxError) -> EmulatorError {
    let body = e.body("");
    let msg = body["errors"][0]["message"]
        .as_str()
        .or(body["errorDescription"].as_str())
        .unwrap_or("invalid")
        .to_owned();
    seed_err(format!("{what}: {msg}"))
}

fn seed_time(what: &str, t: Option<&str>, now: &str) -> Result<String, EmulatorError> {
    match t {
        None => Ok(now.to_owned()),
        Some(t) => parse_date(t)
            .map(iso)
            .ok_or_else(|| seed_err(format!("{what}: not an RFC 3339 date-time"))),
    }
}

impl CxoneState {
    /// Seeds data (see [`CxoneSeed`]); the error names the item (`customers[3].id`, …).
    pub fn seed(&self, seed: &CxoneSeed) -> Result<SeedOutcome, EmulatorError> {
        let mut inner = self.lock();
        let mut out = SeedOutcome::default();
        let now = inner.now_iso();
        for (i, c) in seed.channels.iter().enumerate() {
            let mut ch =
                validate_channel(c).map_err(|e| cx_seed_err(&format!("channels[{i}]"), &e))?;
            ch.entry("hasOutboundFlow").or_insert(Value::Bool(true));
            let id = ch
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            inner.channels.insert(id.clone(), Value::Object(ch));
            out.channels.push(id);
        }
        for (i, d) in seed.custom_field_definitions.iter().enumerate() {
            let (ident, def) = definition(d)
                .map_err(|e| cx_seed_err(&format!("customFieldDefinitions[{i}]"), &e))?;
            inner.field_defs.insert(ident, def);
        }
        for (i, c) in seed.customers.iter().enumerate() {
            let id = match &c.id {
                Some(id) if id.trim().is_empty() => {
                    return Err(seed_err(format!("customers[{i}].id: empty")));
                }
                Some(id) => id.clone(),
                None => inner.gate.new_id(),
            };
            if inner.customers.contains_key(&id) || inner.merged.contains_key(&id) {
                return Err(seed_err(format!("customers[{i}].id: {id} already exists")));
            }
            let created = seed_time(
                &format!("customers[{i}].createdAt"),
                c.created_at.as_deref(),
                &now,
            )?;
            let plain = |id: &str| Identity {
                id: id.to_owned(),
                first_name: c.first_name.clone(),
                last_name: c.surname.clone(),
                nickname: None,
                image: None,
            };
            let mut identities: Vec<Identity> = Vec::new();
            for addr in c.emails.iter().chain(&c.phones) {
                if addr.trim().is_empty() {
                    return Err(seed_err(format!(
                        "customers[{i}]: an empty e-mail or phone"
                    )));
                }
                identities.push(plain(addr));
            }
            for (k, s) in c.identities.iter().enumerate() {
                if s.id_on_external_platform.trim().is_empty() {
                    return Err(seed_err(format!(
                        "customers[{i}].identities[{k}].idOnExternalPlatform: empty"
                    )));
                }
                identities.push(Identity {
                    id: s.id_on_external_platform.clone(),
                    first_name: s.first_name.clone(),
                    last_name: s.last_name.clone(),
                    nickname: s.nickname.clone(),
                    image: None,
                });
            }
            let mut seen = std::collections::HashSet::new();
            identities.retain(|x| seen.insert(x.id.to_lowercase()));
            for ident in c.custom_fields.keys() {
                if !inner.field_defs.contains_key(ident) {
                    inner.field_defs.insert(
                        ident.clone(),
                        json!({"ident": ident, "label": ident, "type": "text", "isRequired": false,
                               "isEditable": true, "isVisibleInRightPanel": true,
                               "isVisibleInCustomerCard": true, "values": []}),
                    );
                }
            }
            let custom_fields = c
                .custom_fields
                .iter()
                .map(|(k, v)| CustomField {
                    ident: k.clone(),
                    value: v.clone(),
                    updated_at: created.clone(),
                })
                .collect();
            let id = inner.insert_customer(CustomerRec {
                id,
                seq: 0,
                first_name: c.first_name.clone(),
                surname: c.surname.clone(),
                image: None,
                identities,
                custom_fields,
                created_at: created.clone(),
                updated_at: created,
                inbound: 0,
                outbound: 0,
                last_interaction_at: None,
            });
            out.customers.push(id);
        }
        for (i, m) in seed.messages.iter().enumerate() {
            let what = format!("messages[{i}]");
            if !inner.channels.contains_key(&m.channel_id) {
                return Err(seed_err(format!(
                    "{what}.channelId: no channel {}",
                    m.channel_id
                )));
            }
            let direction = m.direction.clone().unwrap_or_else(|| "inbound".to_owned());
            if direction != "inbound" && direction != "outbound" {
                return Err(seed_err(format!("{what}.direction: inbound or outbound")));
            }
            let created = seed_time(&format!("{what}.createdAt"), m.created_at.as_deref(), &now)?;
            let ext_id = m
                .id_on_external_platform
                .clone()
                .unwrap_or_else(|| inner.gate.new_id());
            let end_user = Identity {
                id: m.end_user_id_on_external_platform.clone(),
                first_name: None,
                last_name: None,
                nickname: None,
                image: None,
            };
            let inbound = direction == "inbound";
            let index = store_message(
                &mut inner,
                NewMessage {
                    channel_id: m.channel_id.clone(),
                    thread_ext_id: m.thread_id_on_external_platform.clone(),
                    thread_name: None,
                    end_user: end_user.clone(),
                    ext_id,
                    direction,
                    created_at: created,
                    content: json!({"type": "TEXT", "payload": {"text": m.text}}),
                    author: inbound.then(|| end_user.clone()),
                    recipients: if inbound {
                        json!([])
                    } else {
                        json!([{"idOnExternalPlatform": end_user.id, "isPrimary": true}])
                    },
                    attachments: json!([]),
                    title: None,
                    external_attributes: json!([]),
                    case_fields: Vec::new(),
                    skill_id: None,
                },
            )
            .map_err(|e| cx_seed_err(&what, &e))?;
            if let Some(msg) = inner.messages.get(index) {
                out.messages.push(msg.id.clone());
            }
        }
        for (i, l) in seed.calling_lists.iter().enumerate() {
            let what = format!("callingLists[{i}]");
            if l.list_name.trim().is_empty() || l.external_id_column.trim().is_empty() {
                return Err(seed_err(format!(
                    "{what}: listName and externalIdColumn are required"
                )));
            }
            for p in l.column_mappings.keys() {
                if !COLUMN_PARAMS.contains(&p.as_str()) {
                    return Err(seed_err(format!(
                        "{what}.columnMappings: unknown parameter {p}"
                    )));
                }
            }
            let id = create_list(
                &mut inner,
                &l.list_name,
                &l.external_id_column,
                l.column_mappings.clone().into_iter().collect(),
                l.destination_mappings.clone().into_iter().collect(),
                None,
            );
            let ext_idx = l
                .header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(&l.external_id_column))
                .ok_or_else(|| {
                    seed_err(format!("{what}.header: no column {}", l.external_id_column))
                })?;
            let at = inner.now_iso();
            if let Some(list) = inner.lists.get_mut(&id) {
                for (r, row) in l.rows.iter().enumerate() {
                    let ext = row
                        .get(ext_idx)
                        .map(|e| e.trim().to_owned())
                        .unwrap_or_default();
                    if ext.is_empty() {
                        return Err(seed_err(format!("{what}.rows[{r}]: no external id")));
                    }
                    list.records.push(super::state::ListRecord {
                        external_id: ext,
                        columns: l.header.iter().cloned().zip(row.iter().cloned()).collect(),
                        job_id: None,
                        file_name: None,
                    });
                }
                if !l.rows.is_empty() {
                    list.uploaded_at = Some(at);
                }
            }
            out.calling_lists.push(id);
        }
        for (i, g) in seed.dnc_groups.iter().enumerate() {
            let what = format!("dncGroups[{i}]");
            if g.dnc_group_name.trim().is_empty() {
                return Err(seed_err(format!("{what}.dncGroupName: required")));
            }
            let id = create_group(
                &mut inner,
                g.dnc_group_name.trim(),
                g.dnc_group_description.as_deref().unwrap_or_default(),
            );
            let at = inner.now_iso();
            if let Some(group) = inner.dnc_groups.get_mut(&id) {
                for (k, p) in g.phone_numbers.iter().enumerate() {
                    let phone = normalize_phone(&Value::String(p.clone())).ok_or_else(|| {
                        seed_err(format!("{what}.phoneNumbers[{k}]: 7 to 15 digits needed"))
                    })?;
                    group.records.insert(
                        phone.clone(),
                        DncRecord {
                            phone,
                            expired_at: None,
                            collected_at: at.clone(),
                            updated_at: at.clone(),
                        },
                    );
                }
            }
            out.dnc_groups.push(id);
        }
        Ok(out)
    }

    /// Every channel as stored, by id.
    pub fn channels(&self) -> Vec<Value> {
        self.lock().channels.values().cloned().collect()
    }

    /// Customer cards as the API renders them, in creation order; with `include_merged`, the
    /// merged-away cards too (as they were, plus `mergedInto` and `mergedAt`).
    pub fn customers(&self, include_merged: bool) -> Vec<Value> {
        let inner = self.lock();
        let mut all: Vec<(u64, Value)> = inner
            .customers
            .values()
            .map(|c| (c.seq, wire::customer(c)))
            .collect();
        if include_merged {
            all.extend(inner.merged.values().map(|m| (m.rec.seq, merged_json(m))));
        }
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, v)| v).collect()
    }

    /// One card, live or merged away (then with `mergedInto` and `mergedAt`).
    pub fn customer(&self, id: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .customers
            .get(id)
            .map(wire::customer)
            .or_else(|| inner.merged.get(id).map(merged_json))
    }

    /// Where a merged-away card went (following chains of merges to the live survivor).
    pub fn merged_into(&self, id: &str) -> Option<String> {
        let inner = self.lock();
        let mut cur = inner.merged.get(id)?.into.clone();
        let mut hops = 0;
        while let Some(next) = inner.merged.get(&cur) {
            cur = next.into.clone();
            hops += 1;
            if hops > inner.merged.len() {
                break;
            }
        }
        Some(cur)
    }

    /// Every message as the API renders it, in arrival order, plus `customerId` (the end
    /// user's card now).
    pub fn messages(&self) -> Vec<Value> {
        let inner = self.lock();
        inner
            .messages
            .iter()
            .map(|m| {
                let mut v = wire::message(m);
                let customer = m
                    .case_id
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| inner.cases.get(&n))
                    .map(|c| c.customer_id.clone());
                v["customerId"] = json!(customer);
                v
            })
            .collect()
    }

    /// Every thread as the API renders it, in creation order.
    pub fn threads(&self) -> Vec<Value> {
        let inner = self.lock();
        inner
            .thread_order
            .iter()
            .filter_map(|id| inner.threads.get(id))
            .map(wire::thread)
            .collect()
    }

    /// Every calling list with its mapping, `skillStarted` and all its records
    /// (`{externalId, jobId, fileName, columns}`), by id.
    pub fn calling_lists(&self) -> Vec<Value> {
        let inner = self.lock();
        inner
            .lists
            .keys()
            .filter_map(|id| list_admin(&inner, *id))
            .collect()
    }

    /// One calling list as [`CxoneState::calling_lists`] renders it.
    pub fn calling_list(&self, id: i64) -> Option<Value> {
        list_admin(&self.lock(), id)
    }

    /// Every upload job with what it was sent (`skillId`, `startSkill`, `forceOverwrite`, …)
    /// and, once complete, how many rows it accepted and refused.
    pub fn upload_jobs(&self) -> Vec<Value> {
        let inner = self.lock();
        inner
            .jobs
            .values()
            .map(|j| {
                let mut v = job_json(j);
                v["skillId"] = json!(j.skill_id);
                v["startSkill"] = json!(j.start_skill);
                v["forceOverwrite"] = json!(j.force_overwrite);
                v["sendEmail"] = json!(j.send_email);
                v["expirationDate"] = json!(j.expiration_date);
                v["defaultTimeZone"] = json!(j.default_time_zone);
                v["acceptedRecords"] = json!(j.accepted);
                v["refusedRecords"] = json!(j.refused);
                v
            })
            .collect()
    }

    /// Completes every pending upload job now, in submission order; returns how many.
    pub fn complete_upload_jobs(&self) -> usize {
        let mut inner = self.lock();
        let pending: Vec<i64> = inner
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Pending)
            .map(|j| j.id)
            .collect();
        for id in &pending {
            complete_job(&mut inner, *id, self.shared.upload_repeat);
        }
        pending.len()
    }

    /// Every DNC group with all its records and skills, by id.
    pub fn dnc_groups(&self) -> Vec<Value> {
        let inner = self.lock();
        let now = inner.gate.wall_now();
        inner
            .dnc_groups
            .values()
            .map(|g| {
                let mut v = group_json(g, now);
                v["records"] = Value::Array(
                    g.records
                        .values()
                        .map(|r| {
                            json!({"phoneNumber": r.phone, "expiredDate": r.expired_at.map(iso),
                                   "active": r.active_at(now), "dateCollected": r.collected_at})
                        })
                        .collect(),
                );
                v["contributingSkills"] = json!(g.contributing);
                v["scrubbedSkills"] = json!(g.scrubbed);
                v
            })
            .collect()
    }
}

fn merged_json(m: &super::state::MergedRec) -> Value {
    let mut v = wire::customer(&m.rec);
    v["mergedInto"] = json!(m.into);
    v["mergedAt"] = json!(m.merged_at);
    v
}

fn list_admin(inner: &super::state::CxInner, id: i64) -> Option<Value> {
    let l = inner.lists.get(&id)?;
    Some(json!({
        "listId": l.id,
        "listName": l.name,
        "externalIdColumn": l.external_id_column,
        "columnMappings": l.column_params.iter().cloned().collect::<BTreeMap<_, _>>(),
        "destinationMappings": l.destinations.iter().map(|(f, v)| json!({"fieldName": f, "fieldValue": v})).collect::<Vec<_>>(),
        "validRecords": l.records.len(),
        "invalidRecords": l.invalid,
        "skills": l.skills,
        "skillStarted": l.skill_started,
        "createDate": l.created_at,
        "uploadDate": l.uploaded_at,
        "records": l.records.iter().map(|r| json!({
            "externalId": r.external_id,
            "jobId": r.job_id,
            "fileName": r.file_name,
            "columns": record_json(r),
        })).collect::<Vec<_>>(),
    }))
}

/// The router: shared admin routes plus [`CXONE_ADMIN_ROUTES`].
pub(crate) fn router() -> Router<CxoneState> {
    crate::gate::admin::router::<CxoneState>()
        .route("/__emulator/seed", post(seed))
        .route("/__emulator/channels", get(channels))
        .route("/__emulator/customers", get(customers))
        .route("/__emulator/customers/{customerId}", get(customer))
        .route("/__emulator/messages", get(messages))
        .route("/__emulator/threads", get(threads))
        .route("/__emulator/calling-lists", get(calling_lists))
        .route("/__emulator/calling-lists/{listId}", get(calling_list))
        .route("/__emulator/upload-jobs", get(upload_jobs))
        .route("/__emulator/upload-jobs/complete", post(complete_jobs))
        .route("/__emulator/dnc-groups", get(dnc_groups))
}

fn admin_err(e: GateError) -> CxError {
    CxError::from_gate(super::error::Family::Dfo, e)
}

/// Body: a [`CxoneSeed`] (camelCase JSON). Answers the [`SeedOutcome`].
async fn seed(State(st): State<CxoneState>, bytes: Bytes) -> CxResult<Response> {
    let body = admin_json(&bytes).map_err(admin_err)?;
    let seed: CxoneSeed = serde_json::from_value(body)
        .map_err(|e| admin_err(GateError::InvalidValue(format!("Invalid seed: {e}"))))?;
    let outcome = st
        .seed(&seed)
        .map_err(|e| admin_err(GateError::InvalidValue(e.to_string())))?;
    serde_json::to_value(outcome)
        .map(ok)
        .map_err(|e| admin_err(GateError::InvalidValue(e.to_string())))
}

async fn channels(State(st): State<CxoneState>) -> Response {
    ok(Value::Array(st.channels()))
}

async fn customers(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let merged = q.bool("includeMerged")?.unwrap_or(false);
    Ok(ok(Value::Array(st.customers(merged))))
}

async fn customer(State(st): State<CxoneState>, Pth(id): Pth<String>) -> CxResult<Response> {
    st.customer(&id)
        .map(ok)
        .ok_or_else(|| CxError::dfo_not_found(format!("Customer {id}")))
}

async fn messages(State(st): State<CxoneState>) -> Response {
    ok(Value::Array(st.messages()))
}

async fn threads(State(st): State<CxoneState>) -> Response {
    ok(Value::Array(st.threads()))
}

async fn calling_lists(State(st): State<CxoneState>) -> Response {
    ok(Value::Array(st.calling_lists()))
}

async fn calling_list(State(st): State<CxoneState>, Pth(id): Pth<i64>) -> CxResult<Response> {
    st.calling_list(id)
        .map(ok)
        .ok_or_else(|| CxError::dfo_not_found(format!("Calling list {id}")))
}

async fn upload_jobs(State(st): State<CxoneState>) -> Response {
    ok(Value::Array(st.upload_jobs()))
}

async fn complete_jobs(State(st): State<CxoneState>) -> Response {
    ok(json!({"completed": st.complete_upload_jobs()}))
}

async fn dnc_groups(State(st): State<CxoneState>) -> Response {
    ok(Value::Array(st.dnc_groups()))
}
