//! What every emulated platform shares: the bearer tokens, the rate-limit windows, the fault
//! profile and its seeded RNG, the counters, scheduled outages and the emulator's clock
//! ([`Gate`]); the middleware that applies them to each request ([`middleware`]); the listener
//! ([`server`]); and the admin routes every platform serves ([`admin`]).
//!
//! A platform plugs in through [`middleware::Platform`]: which paths are its API (bearer token,
//! budget, default target of fault rules), and how its errors look on the wire. Nothing here
//! knows a vendor's paths or bodies.

pub(crate) mod admin;
pub(crate) mod middleware;
pub(crate) mod server;
pub(crate) mod token;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{FaultProfile, RateLimitScope};
use crate::util::stable_hash;

/// The rate-limit window: a sliding 60 s log per token (or per client, see [`RateLimitScope`]).
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Counters served by `GET /__emulator/stats` and the states' `stats()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests to the platform's routes (token endpoint and API), admin calls excluded.
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
    /// Token endpoint calls (successful or not).
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

/// How a platform's gate behaves: fixed for the life of an emulator.
#[derive(Debug, Clone)]
pub(crate) struct GateConfig {
    pub(crate) rate_limit_per_minute: u32,
    pub(crate) rate_limit_scope: RateLimitScope,
    pub(crate) token_ttl: Duration,
    pub(crate) base_seed: u64,
    /// Whether a 429 for an exhausted budget carries `Retry-After`.
    pub(crate) retry_after_on_budget: bool,
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
    /// `Retry-After` of the ongoing burst (`None`: the burst's 429s carry none).
    pub(crate) burst_retry_after: Option<u64>,
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
/// entries. Returns `(admitted, count, reset_secs)` as [`Gate::rate_check`].
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

const ID_SEED_SALT: u64 = 0x5eed_1d5a_17ed_0001;

/// Tokens, windows, faults, counters and clock of one emulator instance (any platform).
pub(crate) struct Gate {
    pub(crate) faults: FaultProfile,
    pub(crate) faults_set_at: Instant,
    pub(crate) effective_seed: u64,
    pub(crate) fault_rng: StdRng,
    pub(crate) id_rng: StdRng,
    pub(crate) tokens: HashMap<String, TokenInfo>,
    pub(crate) token_seq: u64,
    /// Per OAuth client id: the windows shared by all its tokens.
    pub(crate) client_windows: BTreeMap<String, ClientWindow>,
    pub(crate) stats: Stats,
    /// A scheduled outage: API requests still served before it starts; `Some(0)` while it lasts.
    pub(crate) outage_in: Option<u64>,
    /// How far the emulator's clock runs ahead of the process's (see [`Gate::now`]).
    pub(crate) clock_offset: Duration,
}

impl Gate {
    pub(crate) fn new(faults: FaultProfile, base_seed: u64) -> Gate {
        let seed = faults.seed.unwrap_or(base_seed);
        Gate {
            faults,
            faults_set_at: Instant::now(),
            effective_seed: seed,
            fault_rng: StdRng::seed_from_u64(seed),
            id_rng: StdRng::seed_from_u64(seed ^ ID_SEED_SALT),
            tokens: HashMap::new(),
            token_seq: 0,
            client_windows: BTreeMap::new(),
            stats: Stats::default(),
            outage_in: None,
            clock_offset: Duration::ZERO,
        }
    }

    /// The emulator's clock: the process's monotonic clock plus what
    /// [`advance_clock`](Gate::advance_clock) added. Token lifetimes, revocation periods and
    /// rate windows are measured on it, so a test can expire a token without waiting.
    pub(crate) fn now(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.clock_offset).unwrap_or(now)
    }

    /// The wall-clock time on the emulator's clock (UTC), for timestamps in answers.
    pub(crate) fn wall_now(&self) -> chrono::DateTime<chrono::Utc> {
        let now = chrono::Utc::now();
        chrono::Duration::from_std(self.clock_offset)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now)
    }

    /// Moves the emulator's clock forward by `by`.
    pub(crate) fn advance_clock(&mut self, by: Duration) {
        self.clock_offset = self.clock_offset.saturating_add(by);
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

    /// Replaces the fault profile: the fault RNG is re-seeded (from the profile's `seed`, else
    /// `base_seed`), the revocation clock restarts and ongoing bursts stop.
    pub(crate) fn set_faults(&mut self, f: FaultProfile, base_seed: u64) {
        let seed = f.seed.unwrap_or(base_seed);
        self.effective_seed = seed;
        self.fault_rng = StdRng::seed_from_u64(seed);
        self.faults = f;
        self.faults_set_at = self.now();
        for t in self.tokens.values_mut() {
            t.burst_left = 0;
        }
    }

    /// Revokes every token issued so far; returns how many were still valid.
    pub(crate) fn revoke_all(&mut self) -> usize {
        let mut n = 0;
        for t in self.tokens.values_mut() {
            if !t.revoked {
                t.revoked = true;
                n += 1;
            }
        }
        n
    }

    /// Issues a fresh bearer token to `client_id`, valid for the profile's `token_ttl_secs` or
    /// `default_ttl`. Returns the token and its `expires_in` in whole seconds (rounded up).
    pub(crate) fn issue_token(
        &mut self,
        client_id: String,
        default_ttl: Duration,
    ) -> (String, u64) {
        let now = self.now();
        let ttl = self
            .faults
            .token_ttl_secs
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .unwrap_or(default_ttl);
        let token = self.random_token();
        self.token_seq += 1;
        self.tokens.insert(
            token.clone(),
            TokenInfo {
                ordinal: self.token_seq,
                client_id,
                issued: now,
                // A huge configured ttl means "never" rather than an overflow.
                expires: now
                    .checked_add(ttl)
                    .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)),
                revoked: false,
                admitted: VecDeque::new(),
                seen: VecDeque::new(),
                requests: 0,
                max_in_window: 0,
                burst_left: 0,
                burst_retry_after: Some(1),
            },
        );
        self.stats.tokens_issued += 1;
        let expires_in = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0));
        (token, expires_in)
    }

    /// 64 hex characters, unpredictable across processes (wall-clock nanos mixed with the id RNG).
    pub(crate) fn random_token(&mut self) -> String {
        let nonce: u64 = self.id_rng.random();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seq = self.token_seq.to_le_bytes();
        let mut token = String::with_capacity(64);
        let mut h = stable_hash(&[&nonce.to_le_bytes(), &nanos.to_le_bytes(), &seq]);
        for _ in 0..4 {
            token.push_str(&format!("{h:016x}"));
            h = stable_hash(&[&h.to_le_bytes(), &nanos.to_le_bytes()]);
        }
        token
    }

    /// Records a request of `token` at `now`, for the token and its client (stats maxima).
    pub(crate) fn note_token_request(&mut self, token: &str, now: Instant) {
        let Gate {
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

    /// A snapshot of the counters, with the per-token and per-client tables filled in.
    pub(crate) fn stats_snapshot(&self) -> Stats {
        let mut stats = self.stats.clone();
        let mut tokens: Vec<&TokenInfo> = self.tokens.values().collect();
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
        for t in self.tokens.values() {
            clients
                .entry(&t.client_id)
                .or_insert_with(|| ClientStats {
                    client_id: t.client_id.clone(),
                    ..ClientStats::default()
                })
                .tokens += 1;
        }
        for (id, w) in &self.client_windows {
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
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn an_advanced_clock_expires_tokens() {
        let mut g = Gate::new(FaultProfile::default(), 1);
        let (tok, expires_in) = g.issue_token("c".into(), Duration::from_secs(60));
        assert_eq!(expires_in, 60);
        assert!(g.token_valid(&tok, g.now()));
        g.advance_clock(Duration::from_secs(59));
        assert!(g.token_valid(&tok, g.now()));
        g.advance_clock(Duration::from_secs(1));
        assert!(!g.token_valid(&tok, g.now()));
    }
}
