//! The Genesys emulator's in-memory state: its data beside the shared [`Gate`] (tokens,
//! rate-limit windows, fault RNG, stats, clock).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{EmulatorConfig, FaultProfile};
use crate::gate::{Gate, GateConfig, Stats};

/// A cheap, cloneable handle on a running (or not yet started) emulator's state.
#[derive(Clone)]
pub struct EmulatorState {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for EmulatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorState").finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    pub(crate) gate: GateConfig,
    pub(crate) clients: Vec<(String, String)>,
    pub(crate) inner: Mutex<Inner>,
}

pub(crate) struct ContactListRec {
    pub(crate) id: String,
    /// Writable fields as last written (`name`, `columnNames`, `phoneColumns`, …).
    pub(crate) fields: Map<String, Value>,
    pub(crate) version: i64,
    pub(crate) date_created: String,
    pub(crate) date_modified: String,
    /// Contacts by id: the stored DialerContact JSON.
    pub(crate) contacts: BTreeMap<String, Map<String, Value>>,
}

pub(crate) struct ExtRec {
    pub(crate) id: String,
    /// Writable fields as last written (server-set fields stripped).
    pub(crate) fields: Map<String, Value>,
    pub(crate) create_date: String,
    pub(crate) modify_date: String,
    /// Monotonic modification counter ("most recently modified" without clock ties).
    pub(crate) modify_seq: u64,
    /// Creation order, the scan order.
    pub(crate) seq: u64,
    pub(crate) deleted: bool,
    pub(crate) merged_to: Option<String>,
    pub(crate) merged_from: Vec<String>,
    /// Head of the merge tree, when part of one.
    pub(crate) canonical: Option<String>,
    pub(crate) merge_set: Vec<String>,
    pub(crate) active_associations: bool,
}

pub(crate) struct ParticipantRec {
    pub(crate) id: String,
    pub(crate) purpose: String,
    pub(crate) name: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) external_contact_id: Option<String>,
    pub(crate) start: String,
    pub(crate) attributes: BTreeMap<String, String>,
}

pub(crate) struct ConversationRec {
    pub(crate) id: String,
    pub(crate) start: String,
    pub(crate) end: Option<String>,
    pub(crate) integration_id: Option<String>,
    pub(crate) from_id: Option<String>,
    pub(crate) participants: Vec<ParticipantRec>,
    pub(crate) messages: Vec<Value>,
}

pub(crate) struct Inner {
    /// Tokens, windows, faults, counters and clock.
    pub(crate) gate: Gate,
    pub(crate) lists: BTreeMap<String, ContactListRec>,
    pub(crate) ext: HashMap<String, ExtRec>,
    pub(crate) ext_seq: u64,
    /// Creation order → id (the scan order).
    pub(crate) ext_order: BTreeMap<u64, String>,
    pub(crate) conversations: HashMap<String, ConversationRec>,
    /// `(integrationId, from.id)` → open conversation id.
    pub(crate) open_conversations: HashMap<(String, String), String>,
}

impl Inner {
    fn new(faults: FaultProfile, base_seed: u64) -> Inner {
        Inner {
            gate: Gate::new(faults, base_seed),
            lists: BTreeMap::new(),
            ext: HashMap::new(),
            ext_seq: 0,
            ext_order: BTreeMap::new(),
            conversations: HashMap::new(),
            open_conversations: HashMap::new(),
        }
    }

    pub(crate) fn new_id(&mut self) -> String {
        self.gate.new_id()
    }
}

impl EmulatorState {
    /// A fresh, empty state for `cfg`.
    pub fn new(cfg: &EmulatorConfig) -> EmulatorState {
        EmulatorState {
            shared: Arc::new(Shared {
                gate: GateConfig {
                    rate_limit_per_minute: cfg.rate_limit_per_minute,
                    rate_limit_scope: cfg.rate_limit_scope,
                    token_ttl: cfg.token_ttl,
                    base_seed: cfg.seed,
                    retry_after_on_budget: true,
                },
                clients: cfg.clients.clone(),
                inner: Mutex::new(Inner::new(cfg.faults.clone(), cfg.seed)),
            }),
        }
    }

    /// Locks the state; a poisoned lock (a panic elsewhere) is recovered, never propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The contacts of a contact list as DialerContact JSON, sorted by id; `None` if the list
    /// does not exist.
    pub fn contact_list_contacts(&self, list_id: &str) -> Option<Vec<Value>> {
        let inner = self.lock();
        let list = inner.lists.get(list_id)?;
        Some(
            list.contacts
                .values()
                .map(crate::outbound::render_contact)
                .collect(),
        )
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.lock().gate.stats_snapshot()
    }

    /// Replaces the fault profile. The fault RNG is re-seeded (from the profile's `seed`, else
    /// the configured one) and the revocation clock restarts.
    pub fn set_faults(&self, f: FaultProfile) {
        self.lock().gate.set_faults(f, self.shared.gate.base_seed);
    }

    /// Schedules an outage: the next `after` `/api/v2` requests are served as usual, then every
    /// request, the token endpoint's included, answers 503 `service.unavailable` (counted as the
    /// fault `outage`) until [`EmulatorState::end_outage`]. `after = 0` starts it now. Lets a
    /// test take the platform away part-way through a run at an exact point.
    pub fn outage_after(&self, after: u64) {
        self.lock().gate.outage_in = Some(after);
    }

    /// Ends an outage (or cancels a scheduled one): requests are served again.
    pub fn end_outage(&self) {
        self.lock().gate.outage_in = None;
    }

    /// The current fault profile.
    pub fn faults(&self) -> FaultProfile {
        self.lock().gate.faults.clone()
    }

    /// Forgets all data, tokens and counters and re-seeds the generators. The fault profile is
    /// kept.
    pub fn reset(&self) {
        let mut inner = self.lock();
        let faults = inner.gate.faults.clone();
        *inner = Inner::new(faults, self.shared.gate.base_seed);
    }

    /// Revokes every token issued so far (clients must get a new one).
    pub fn revoke_tokens(&self) -> usize {
        self.lock().gate.revoke_all()
    }

    /// Moves the emulator's clock forward: tokens expire, revocation periods pass and rate
    /// windows slide as if `by` had elapsed (no waiting in tests).
    pub fn advance_clock(&self, by: Duration) {
        self.lock().gate.advance_clock(by);
    }

    /// Marks an external contact as having (or not) active associations; merges that include
    /// it as a source then fail with 409. Returns false if the contact does not exist.
    pub fn set_active_associations(&self, contact_id: &str, active: bool) -> bool {
        let mut inner = self.lock();
        match inner.ext.get_mut(contact_id) {
            Some(rec) => {
                rec.active_associations = active;
                true
            }
            None => false,
        }
    }

    /// A conversation as the API renders it, plus `messages` (the inbound messages received).
    pub fn conversation(&self, id: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .conversations
            .get(id)
            .map(crate::conversations::render_admin)
    }

    /// Every conversation (admin rendering), sorted by start time then id.
    pub fn conversations(&self) -> Vec<Value> {
        let inner = self.lock();
        let mut convs: Vec<&ConversationRec> = inner.conversations.values().collect();
        convs.sort_by(|a, b| (&a.start, &a.id).cmp(&(&b.start, &b.id)));
        convs
            .into_iter()
            .map(crate::conversations::render_admin)
            .collect()
    }

    /// An external contact's own record (not resolved through merges), as the API renders it.
    pub fn external_contact(&self, id: &str) -> Option<Value> {
        let inner = self.lock();
        inner.ext.get(id).map(crate::external::render)
    }

    /// Ends conversation `id` (as `POST /__emulator/conversations/{id}/disconnect`); false if
    /// there is no such conversation.
    pub fn end_conversation(&self, id: &str) -> bool {
        let mut inner = self.lock();
        crate::conversations::end_conversation(&mut inner, id)
    }
}
