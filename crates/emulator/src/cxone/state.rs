//! The CXone emulator's in-memory state: customers, channels, threads, messages and cases
//! (DFO), calling lists, upload jobs and DNC groups (Admin), refresh tokens, beside the shared
//! [`Gate`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::config::{CxoneEmulatorConfig, CxoneTenant, InboundRepeat, UploadRepeat};
use crate::config::FaultProfile;
use crate::gate::{Gate, GateConfig, Stats};
use crate::util::iso;

/// A cheap, cloneable handle on a CXone emulator's state.
#[derive(Clone)]
pub struct CxoneState {
    pub(crate) shared: Arc<CxShared>,
}

impl std::fmt::Debug for CxoneState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CxoneState").finish_non_exhaustive()
    }
}

/// What does not change while the emulator runs.
pub(crate) struct CxShared {
    pub(crate) gate: GateConfig,
    pub(crate) clients: Vec<(String, String)>,
    pub(crate) access_keys: Vec<(String, String)>,
    pub(crate) tenant: CxoneTenant,
    /// The issuer and API base (no trailing slash).
    pub(crate) issuer: String,
    pub(crate) refresh_token_ttl: Duration,
    pub(crate) max_page_size: usize,
    pub(crate) inbound_repeat: InboundRepeat,
    pub(crate) upload_repeat: UploadRepeat,
    pub(crate) upload_job_polls: u32,
    pub(crate) admin_requires_accept_json: bool,
    pub(crate) inner: Mutex<CxInner>,
}

/// One identity of a customer (a channel address: phone, e-mail, handle…).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) nickname: Option<String>,
    pub(crate) image: Option<String>,
}

/// A custom field value (`{ident, value, updatedAt}`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CustomField {
    pub(crate) ident: String,
    pub(crate) value: String,
    pub(crate) updated_at: String,
}

/// A customer card.
#[derive(Debug, Clone)]
pub(crate) struct CustomerRec {
    pub(crate) id: String,
    /// Creation order.
    pub(crate) seq: u64,
    pub(crate) first_name: Option<String>,
    pub(crate) surname: Option<String>,
    pub(crate) image: Option<String>,
    pub(crate) identities: Vec<Identity>,
    pub(crate) custom_fields: Vec<CustomField>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) inbound: u64,
    pub(crate) outbound: u64,
    pub(crate) last_interaction_at: Option<String>,
}

/// A customer card merged away: what it was, and where it went.
pub(crate) struct MergedRec {
    pub(crate) rec: CustomerRec,
    pub(crate) into: String,
    pub(crate) merged_at: String,
}

pub(crate) struct ThreadRec {
    pub(crate) id: String,
    pub(crate) ext_id: String,
    pub(crate) name: String,
    pub(crate) channel_id: String,
    pub(crate) can_add_more: bool,
    pub(crate) case_id: String,
}

pub(crate) struct MessageRec {
    pub(crate) id: String,
    pub(crate) ext_id: String,
    pub(crate) thread_id: String,
    pub(crate) thread_ext_id: String,
    pub(crate) channel_id: String,
    pub(crate) direction: String,
    pub(crate) created_at: String,
    pub(crate) content: Value,
    /// `authorEndUserIdentity` (inbound) as stored.
    pub(crate) author: Option<Identity>,
    pub(crate) recipients: Value,
    pub(crate) attachments: Value,
    pub(crate) title: Option<String>,
    pub(crate) external_attributes: Value,
    pub(crate) case_id: String,
}

/// A digital contact ("case"): one conversation on one channel.
pub(crate) struct CaseRec {
    pub(crate) id: String,
    pub(crate) thread_id: String,
    pub(crate) thread_ext_id: String,
    pub(crate) channel_id: String,
    pub(crate) customer_id: String,
    /// The end user's identity on this case.
    pub(crate) end_user_identity: Identity,
    pub(crate) direction: String,
    pub(crate) status: String,
    pub(crate) created_at: String,
    pub(crate) status_updated_at: String,
    pub(crate) custom_fields: Vec<CustomField>,
    pub(crate) skill_id: Option<i64>,
}

pub(crate) struct ListRecord {
    pub(crate) external_id: String,
    /// The row as uploaded: `(column header, value)` in file order.
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) job_id: Option<i64>,
    pub(crate) file_name: Option<String>,
}

pub(crate) struct ListRec {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) external_id_column: String,
    /// The mapping call's `…Column` query parameters, `(parameter, column header)`.
    pub(crate) column_params: Vec<(String, String)>,
    /// `destinationMappings`: `(fieldName, fieldValue = column header)`.
    pub(crate) destinations: Vec<(String, String)>,
    pub(crate) expiration: Option<String>,
    pub(crate) created_at: String,
    pub(crate) uploaded_at: Option<String>,
    pub(crate) updated_at: String,
    /// In upload order.
    pub(crate) records: Vec<ListRecord>,
    /// Rows refused by completed uploads so far.
    pub(crate) invalid: u64,
    /// Skills named by uploads.
    pub(crate) skills: BTreeSet<i64>,
    /// Whether an upload asked to start the skill dialing (`startSkill: true`).
    pub(crate) skill_started: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Pending,
    Complete,
    Cancelled,
}

pub(crate) struct JobRec {
    pub(crate) id: i64,
    pub(crate) list_id: i64,
    pub(crate) list_name: String,
    pub(crate) file_name: Option<String>,
    pub(crate) submitted_at: String,
    pub(crate) started_at: Option<String>,
    pub(crate) completed_at: Option<String>,
    pub(crate) status: JobStatus,
    /// Status reads left that still say "not complete".
    pub(crate) polls_left: u32,
    /// The parsed file: header and rows, kept until the job completes.
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) skill_id: i64,
    pub(crate) start_skill: bool,
    pub(crate) force_overwrite: bool,
    pub(crate) send_email: bool,
    pub(crate) expiration_date: String,
    pub(crate) default_time_zone: Option<String>,
    /// Rows accepted / refused when the job completed.
    pub(crate) accepted: u64,
    pub(crate) refused: u64,
}

pub(crate) struct DncRecord {
    /// Digits only.
    pub(crate) phone: String,
    pub(crate) expired_at: Option<DateTime<Utc>>,
    pub(crate) collected_at: String,
    pub(crate) updated_at: String,
}

pub(crate) struct DncGroup {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) active: bool,
    pub(crate) removed: bool,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) records: BTreeMap<String, DncRecord>,
    pub(crate) contributing: BTreeSet<i64>,
    pub(crate) scrubbed: BTreeSet<i64>,
}

impl DncRecord {
    pub(crate) fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.expired_at.is_none_or(|e| e > now)
    }
}

pub(crate) struct RefreshRec {
    pub(crate) client_id: String,
    pub(crate) key_id: String,
    pub(crate) expires: Instant,
}

pub(crate) struct CxInner {
    pub(crate) gate: Gate,
    pub(crate) refresh_tokens: HashMap<String, RefreshRec>,
    pub(crate) channels: BTreeMap<String, Value>,
    pub(crate) field_defs: BTreeMap<String, Value>,
    pub(crate) customers: HashMap<String, CustomerRec>,
    pub(crate) customer_seq: u64,
    /// Creation order → id of the live cards (the default search order, without sorting).
    pub(crate) customer_order: BTreeMap<u64, String>,
    /// Lower-cased identity id → customers holding it, in the order they got it.
    pub(crate) identity_index: HashMap<String, Vec<String>>,
    pub(crate) merged: HashMap<String, MergedRec>,
    pub(crate) threads: HashMap<String, ThreadRec>,
    /// `(channelId, thread idOnExternalPlatform)` → thread id.
    pub(crate) thread_keys: HashMap<(String, String), String>,
    pub(crate) thread_order: Vec<String>,
    pub(crate) messages: Vec<MessageRec>,
    pub(crate) cases: BTreeMap<u64, CaseRec>,
    pub(crate) case_seq: u64,
    pub(crate) lists: BTreeMap<i64, ListRec>,
    pub(crate) list_seq: i64,
    pub(crate) jobs: BTreeMap<i64, JobRec>,
    pub(crate) job_seq: i64,
    pub(crate) dnc_groups: BTreeMap<i64, DncGroup>,
    pub(crate) dnc_seq: i64,
}

impl CxInner {
    fn new(faults: FaultProfile, base_seed: u64) -> CxInner {
        CxInner {
            gate: Gate::new(faults, base_seed),
            refresh_tokens: HashMap::new(),
            channels: BTreeMap::new(),
            field_defs: BTreeMap::new(),
            customers: HashMap::new(),
            customer_seq: 0,
            customer_order: BTreeMap::new(),
            identity_index: HashMap::new(),
            merged: HashMap::new(),
            threads: HashMap::new(),
            thread_keys: HashMap::new(),
            thread_order: Vec::new(),
            messages: Vec::new(),
            cases: BTreeMap::new(),
            case_seq: 1000,
            lists: BTreeMap::new(),
            list_seq: 1000,
            jobs: BTreeMap::new(),
            job_seq: 5000,
            dnc_groups: BTreeMap::new(),
            dnc_seq: 200,
        }
    }

    /// Now on the emulator's clock, in the wire format (RFC 3339, milliseconds, `Z`).
    pub(crate) fn now_iso(&self) -> String {
        iso(self.gate.wall_now())
    }

    /// The live customer that holds identity `id` (the first that got it), if any.
    pub(crate) fn customer_by_identity(&self, id: &str) -> Option<&str> {
        self.identity_index
            .get(&id.to_lowercase())?
            .iter()
            .find(|c| self.customers.contains_key(*c))
            .map(String::as_str)
    }

    /// Records that `customer` holds identity `id`.
    pub(crate) fn index_identity(&mut self, id: &str, customer: &str) {
        let holders = self.identity_index.entry(id.to_lowercase()).or_default();
        if !holders.iter().any(|h| h == customer) {
            holders.push(customer.to_owned());
        }
    }

    /// Stores a new customer card (no id clash checked: the caller did).
    pub(crate) fn insert_customer(&mut self, mut rec: CustomerRec) -> String {
        self.customer_seq += 1;
        rec.seq = self.customer_seq;
        let id = rec.id.clone();
        let ids: Vec<String> = rec.identities.iter().map(|i| i.id.clone()).collect();
        self.customer_order.insert(rec.seq, id.clone());
        self.customers.insert(id.clone(), rec);
        for i in ids {
            self.index_identity(&i, &id);
        }
        id
    }

    /// Creates a customer card for an identity seen for the first time.
    pub(crate) fn new_customer_for(&mut self, identity: Identity) -> String {
        let now = self.now_iso();
        let id = self.gate.new_id();
        self.insert_customer(CustomerRec {
            id,
            seq: 0,
            first_name: identity.first_name.clone(),
            surname: identity.last_name.clone(),
            image: identity.image.clone(),
            identities: vec![identity],
            custom_fields: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            inbound: 0,
            outbound: 0,
            last_interaction_at: None,
        })
    }

    /// The live customer holding `identity`, or a new card for it.
    pub(crate) fn customer_for(&mut self, identity: &Identity) -> String {
        match self.customer_by_identity(&identity.id) {
            Some(id) => id.to_owned(),
            None => self.new_customer_for(identity.clone()),
        }
    }
}

impl CxoneState {
    /// A fresh, empty state for `cfg`, whose discovery documents name `base_url` (unless
    /// `cfg.public_url` is set).
    pub fn new(cfg: &CxoneEmulatorConfig, base_url: &str) -> CxoneState {
        let issuer = cfg
            .public_url
            .as_deref()
            .unwrap_or(base_url)
            .trim_end_matches('/')
            .to_owned();
        CxoneState {
            shared: Arc::new(CxShared {
                gate: GateConfig {
                    rate_limit_per_minute: cfg.rate_limit_per_minute,
                    rate_limit_scope: cfg.rate_limit_scope,
                    token_ttl: cfg.token_ttl,
                    base_seed: cfg.seed,
                    retry_after_on_budget: cfg.retry_after_on_budget,
                },
                clients: cfg.clients.clone(),
                access_keys: cfg.access_keys.clone(),
                tenant: cfg.tenant.clone(),
                issuer,
                refresh_token_ttl: cfg.refresh_token_ttl,
                max_page_size: cfg.max_page_size.max(1),
                inbound_repeat: cfg.inbound_repeat,
                upload_repeat: cfg.upload_repeat,
                upload_job_polls: cfg.upload_job_polls,
                admin_requires_accept_json: cfg.admin_requires_accept_json,
                inner: Mutex::new(CxInner::new(cfg.faults.clone(), cfg.seed)),
            }),
        }
    }

    /// Locks the state; a poisoned lock (a panic elsewhere) is recovered, never propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, CxInner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The issuer, which is also the API (`api_endpoint`) and DFO base.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The tenant discovery reports.
    pub fn tenant(&self) -> CxoneTenant {
        self.shared.tenant.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.lock().gate.stats_snapshot()
    }

    /// Replaces the fault profile (the fault RNG is re-seeded).
    pub fn set_faults(&self, f: FaultProfile) {
        self.lock().gate.set_faults(f, self.shared.gate.base_seed);
    }

    /// The current fault profile.
    pub fn faults(&self) -> FaultProfile {
        self.lock().gate.faults.clone()
    }

    /// Schedules an outage: the next `after` API requests (`/dfo/…`, `/inContactAPI/…`) are
    /// served, then every request, the issuer's included, answers 503 until
    /// [`CxoneState::end_outage`].
    pub fn outage_after(&self, after: u64) {
        self.lock().gate.outage_in = Some(after);
    }

    /// Ends an outage (or cancels a scheduled one).
    pub fn end_outage(&self) {
        self.lock().gate.outage_in = None;
    }

    /// Revokes every access token issued so far (refresh tokens stay valid).
    pub fn revoke_tokens(&self) -> usize {
        self.lock().gate.revoke_all()
    }

    /// Moves the emulator's clock forward: tokens expire and timestamps advance as if `by` had
    /// elapsed.
    pub fn advance_clock(&self, by: Duration) {
        self.lock().gate.advance_clock(by);
    }

    /// Forgets all data, tokens and counters and re-seeds the generators (the fault profile is
    /// kept).
    pub fn reset(&self) {
        let mut inner = self.lock();
        let faults = inner.gate.faults.clone();
        *inner = CxInner::new(faults, self.shared.gate.base_seed);
    }
}
