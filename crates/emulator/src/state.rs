//! The emulator's in-memory state: data, tokens, rate-limit windows, fault RNG and stats.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{EmulatorConfig, FaultProfile, RateLimitScope};

/// The rate-limit window: a sliding 60 s log per token (or per client, see [`RateLimitScope`]).
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

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
    pub(crate) rate_limit_per_minute: u32,
    pub(crate) rate_limit_scope: RateLimitScope,
    pub(crate) token_ttl: Duration,
    pub(crate) clients: Vec<(String, String)>,
    pub(crate) base_seed: u64,
    pub(crate) inner: Mutex<Inner>,
}

/// Counters served by `GET /__emulator/stats` and [`EmulatorState::stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests to Genesys routes (`/oauth/token` and `/api/v2/…`), admin calls excluded.
    pub total_requests: u64,
    /// Per route template, keyed `"METHOD /path/{param}"`; unmatched paths count as `"METHOD (unmatched)"`.
    pub requests_by_route: BTreeMap<String, u64>,
    /// Per HTTP status of the response.
    pub responses_by_status: BTreeMap<u16, u64>,
    /// 429s sent because a token (or, with [`RateLimitScope::PerClient`], a client) exceeded
    /// its budget.
    pub rate_limited: u64,
    /// All 429s sent (budget exceeded plus injected bursts).
    pub too_many_requests_sent: u64,
    /// Injected faults by kind (`rate_limit_burst`, `server_error`, `slow`, `timeout`,
    /// `gateway_timeout_applied`, `record_failure`, `merge_conflict`, `token_revoked`,
    /// `outage`).
    pub faults_injected: BTreeMap<String, u64>,
    /// `POST /oauth/token` calls (successful or not).
    pub token_requests: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// Largest number of requests any single token made within any 60 s window (429s included).
    pub max_requests_per_token_in_60s: u64,
    /// Per token, in issue order (the token value itself is never exposed).
    pub tokens: Vec<TokenStats>,
    /// Largest number of requests all tokens of one OAuth client made together within any 60 s
    /// window (429s included), whatever the [`RateLimitScope`].
    #[serde(default)]
    pub max_requests_per_client_in_60s: u64,
    /// Per OAuth client that obtained a token, sorted by client id.
    #[serde(default)]
    pub clients: Vec<ClientStats>,
}

/// Per-client counters (all tokens of one OAuth client id together).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientStats {
    /// The OAuth client id.
    pub client_id: String,
    /// Tokens issued to it.
    pub tokens: u64,
    /// Authenticated requests made with its tokens.
    pub requests: u64,
    /// Largest number of requests of its tokens together within any 60 s window.
    pub max_requests_in_60s: u64,
}

/// Per-token counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenStats {
    /// 1-based issue order.
    pub ordinal: u64,
    /// The OAuth client that obtained it.
    pub client_id: String,
    /// Authenticated requests made with it.
    pub requests: u64,
    /// Largest number of its requests within any 60 s window.
    pub max_requests_in_60s: u64,
}

pub(crate) struct TokenInfo {
    pub(crate) ordinal: u64,
    pub(crate) client_id: String,
    pub(crate) issued: Instant,
    pub(crate) expires: Instant,
    pub(crate) revoked: bool,
    /// Requests admitted by the limiter in the last 60 s.
    pub(crate) admitted: VecDeque<Instant>,
    /// All requests in the last 60 s (for the stats maximum).
    pub(crate) seen: VecDeque<Instant>,
    pub(crate) requests: u64,
    pub(crate) max_in_window: u64,
    /// Remaining injected 429s of a burst.
    pub(crate) burst_left: u32,
    /// `Retry-After` of the ongoing burst.
    pub(crate) burst_retry_after: u64,
}

/// One client's sliding windows (all its tokens together).
#[derive(Default)]
pub(crate) struct ClientWindow {
    /// Requests admitted by the limiter in the last 60 s (used with `PerClient` only).
    pub(crate) admitted: VecDeque<Instant>,
    /// All requests in the last 60 s (for the stats maximum).
    pub(crate) seen: VecDeque<Instant>,
    pub(crate) requests: u64,
    pub(crate) max_in_window: u64,
}

/// The windows of client `id`, created on first use (without allocating a key otherwise).
fn client_window<'a>(
    windows: &'a mut BTreeMap<String, ClientWindow>,
    id: &str,
) -> &'a mut ClientWindow {
    if !windows.contains_key(id) {
        windows.insert(id.to_owned(), ClientWindow::default());
    }
    windows
        .get_mut(id)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// Drops the entries of `log` that left the 60 s window ending at `now`.
fn prune(log: &mut VecDeque<Instant>, now: Instant) {
    while log
        .front()
        .is_some_and(|f| now.duration_since(*f) >= WINDOW)
    {
        log.pop_front();
    }
}

/// Admits a request at `now` into the sliding window `admitted` if it holds fewer than `limit`
/// entries. Returns `(admitted, count, reset_secs)` as [`Inner::rate_check`].
fn slide(admitted: &mut VecDeque<Instant>, limit: u32, now: Instant) -> (bool, u64, u64) {
    prune(admitted, now);
    let ok = admitted.len() < limit as usize;
    if ok {
        admitted.push_back(now);
    }
    let reset = match admitted.front() {
        Some(oldest) => {
            let left = WINDOW.saturating_sub(now.duration_since(*oldest));
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        }
        None => WINDOW.as_secs(),
    };
    (ok, admitted.len() as u64, reset.max(1))
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
    pub(crate) faults: FaultProfile,
    pub(crate) faults_set_at: Instant,
    pub(crate) effective_seed: u64,
    pub(crate) fault_rng: StdRng,
    pub(crate) id_rng: StdRng,
    pub(crate) tokens: HashMap<String, TokenInfo>,
    pub(crate) token_seq: u64,
    /// Per OAuth client id: the windows shared by all its tokens.
    pub(crate) client_windows: BTreeMap<String, ClientWindow>,
    pub(crate) lists: BTreeMap<String, ContactListRec>,
    pub(crate) ext: HashMap<String, ExtRec>,
    pub(crate) ext_seq: u64,
    /// Creation order → id (the scan order).
    pub(crate) ext_order: BTreeMap<u64, String>,
    pub(crate) conversations: HashMap<String, ConversationRec>,
    /// `(integrationId, from.id)` → open conversation id.
    pub(crate) open_conversations: HashMap<(String, String), String>,
    pub(crate) stats: Stats,
    /// A scheduled outage ([`EmulatorState::outage_after`]): `/api/v2` requests still served
    /// before it starts; `Some(0)` while it lasts.
    pub(crate) outage_in: Option<u64>,
}

const ID_SEED_SALT: u64 = 0x5eed_1d5a_17ed_0001;

impl Inner {
    fn new(faults: FaultProfile, base_seed: u64) -> Inner {
        let seed = faults.seed.unwrap_or(base_seed);
        Inner {
            faults,
            faults_set_at: Instant::now(),
            effective_seed: seed,
            fault_rng: StdRng::seed_from_u64(seed),
            id_rng: StdRng::seed_from_u64(seed ^ ID_SEED_SALT),
            tokens: HashMap::new(),
            token_seq: 0,
            client_windows: BTreeMap::new(),
            lists: BTreeMap::new(),
            ext: HashMap::new(),
            ext_seq: 0,
            ext_order: BTreeMap::new(),
            conversations: HashMap::new(),
            open_conversations: HashMap::new(),
            stats: Stats::default(),
            outage_in: None,
        }
    }

    pub(crate) fn new_id(&mut self) -> String {
        crate::util::guid(&mut self.id_rng)
    }

    pub(crate) fn count_fault(&mut self, kind: &str) {
        *self
            .stats
            .faults_injected
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    /// Records a request of `token` at `now`, for the token and its client (stats maxima).
    pub(crate) fn note_token_request(&mut self, token: &str, now: Instant) {
        let Inner {
            tokens,
            client_windows,
            stats,
            ..
        } = self;
        let Some(t) = tokens.get_mut(token) else {
            return;
        };
        t.requests += 1;
        t.seen.push_back(now);
        prune(&mut t.seen, now);
        t.max_in_window = t.max_in_window.max(t.seen.len() as u64);
        stats.max_requests_per_token_in_60s =
            stats.max_requests_per_token_in_60s.max(t.max_in_window);

        let c = client_window(client_windows, &t.client_id);
        c.requests += 1;
        c.seen.push_back(now);
        prune(&mut c.seen, now);
        c.max_in_window = c.max_in_window.max(c.seen.len() as u64);
        stats.max_requests_per_client_in_60s =
            stats.max_requests_per_client_in_60s.max(c.max_in_window);
    }

    /// The sliding-window limiter, on the token's window or its client's (`scope`). Returns
    /// `(admitted, count, reset_secs)`: whether the request is admitted, how many admitted
    /// requests the window holds, and whole seconds until the oldest of them leaves the window
    /// (a slot frees up).
    pub(crate) fn rate_check(
        &mut self,
        token: &str,
        limit: u32,
        scope: RateLimitScope,
        now: Instant,
    ) -> (bool, u64, u64) {
        let Some(t) = self.tokens.get_mut(token) else {
            return (true, 0, WINDOW.as_secs());
        };
        match scope {
            RateLimitScope::PerToken => slide(&mut t.admitted, limit, now),
            RateLimitScope::PerClient => slide(
                &mut client_window(&mut self.client_windows, &t.client_id).admitted,
                limit,
                now,
            ),
        }
    }

    /// Whether `token` is currently valid.
    pub(crate) fn token_valid(&self, token: &str, now: Instant) -> bool {
        let Some(t) = self.tokens.get(token) else {
            return false;
        };
        if t.revoked || now >= t.expires {
            return false;
        }
        if let Some(period) = self
            .faults
            .revoke_tokens_every_secs
            .and_then(|every| Duration::try_from_secs_f64(every).ok())
            .filter(|p| !p.is_zero())
        {
            let epoch = |at: Instant| {
                at.checked_duration_since(self.faults_set_at)
                    .map_or(0, |d| d.as_nanos() / period.as_nanos().max(1))
            };
            if epoch(t.issued) != epoch(now) {
                return false;
            }
        }
        true
    }
}

impl EmulatorState {
    /// A fresh, empty state for `cfg`.
    pub fn new(cfg: &EmulatorConfig) -> EmulatorState {
        EmulatorState {
            shared: Arc::new(Shared {
                rate_limit_per_minute: cfg.rate_limit_per_minute,
                rate_limit_scope: cfg.rate_limit_scope,
                token_ttl: cfg.token_ttl,
                clients: cfg.clients.clone(),
                base_seed: cfg.seed,
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
        let inner = self.lock();
        let mut stats = inner.stats.clone();
        let mut tokens: Vec<&TokenInfo> = inner.tokens.values().collect();
        tokens.sort_by_key(|t| t.ordinal);
        stats.tokens = tokens
            .into_iter()
            .map(|t| TokenStats {
                ordinal: t.ordinal,
                client_id: t.client_id.clone(),
                requests: t.requests,
                max_requests_in_60s: t.max_in_window,
            })
            .collect();
        let mut clients: BTreeMap<&str, ClientStats> = BTreeMap::new();
        for t in inner.tokens.values() {
            clients
                .entry(&t.client_id)
                .or_insert_with(|| ClientStats {
                    client_id: t.client_id.clone(),
                    ..ClientStats::default()
                })
                .tokens += 1;
        }
        for (id, w) in &inner.client_windows {
            let c = clients.entry(id).or_insert_with(|| ClientStats {
                client_id: id.clone(),
                ..ClientStats::default()
            });
            c.requests = w.requests;
            c.max_requests_in_60s = w.max_in_window;
        }
        stats.clients = clients.into_values().collect();
        stats
    }

    /// Replaces the fault profile. The fault RNG is re-seeded (from the profile's `seed`, else
    /// the configured one) and the revocation clock restarts.
    pub fn set_faults(&self, f: FaultProfile) {
        let mut inner = self.lock();
        let seed = f.seed.unwrap_or(self.shared.base_seed);
        inner.effective_seed = seed;
        inner.fault_rng = StdRng::seed_from_u64(seed);
        inner.faults = f;
        inner.faults_set_at = Instant::now();
        for t in inner.tokens.values_mut() {
            t.burst_left = 0;
        }
    }

    /// Schedules an outage: the next `after` `/api/v2` requests are served as usual, then every
    /// request, the token endpoint's included, answers 503 `service.unavailable` (counted as the
    /// fault `outage`) until [`EmulatorState::end_outage`]. `after = 0` starts it now. Lets a
    /// test take the platform away part-way through a run at an exact point.
    pub fn outage_after(&self, after: u64) {
        self.lock().outage_in = Some(after);
    }

    /// Ends an outage (or cancels a scheduled one): requests are served again.
    pub fn end_outage(&self) {
        self.lock().outage_in = None;
    }

    /// The current fault profile.
    pub fn faults(&self) -> FaultProfile {
        self.lock().faults.clone()
    }

    /// Forgets all data, tokens and counters and re-seeds the generators. The fault profile is
    /// kept.
    pub fn reset(&self) {
        let mut inner = self.lock();
        let faults = inner.faults.clone();
        *inner = Inner::new(faults, self.shared.base_seed);
    }

    /// Revokes every token issued so far (clients must get a new one).
    pub fn revoke_tokens(&self) -> usize {
        let mut inner = self.lock();
        let mut n = 0;
        for t in inner.tokens.values_mut() {
            if !t.revoked {
                t.revoked = true;
                n += 1;
            }
        }
        n
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
