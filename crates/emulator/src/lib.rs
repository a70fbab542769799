//! # dedupd-emulator: in-memory emulators of Genesys Cloud (this page) and NICE CXone ([`cxone`])
//!
//! A local stand-in for the Genesys Cloud endpoints dedupd uses, on the **real paths, bodies,
//! status codes and error codes** (`shared/genesys/openapi-excerpt.json`; the route table
//! [`ROUTES`] is checked against it by the test suite), with per-token (optionally per-client)
//! rate limits and seeded fault injection. Tests start it in process on an ephemeral port;
//! `dedupd emulator` runs it alone.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dedupd_emulator::EmulatorError> {
//! use dedupd_emulator::{EmulatorConfig, RunningEmulator};
//! let emu = RunningEmulator::start(EmulatorConfig::default()).await?;
//! let base = emu.base_url(); // serves /oauth/token and /api/v2/… on one listener
//! # let _ = base;
//! let stats = emu.state().stats();
//! # let _ = stats;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## What is served
//! - `POST /oauth/token`: client credentials (Basic auth or form fields, form body
//!   `grant_type=client_credentials`) → `{access_token, token_type: "bearer", expires_in}`.
//!   Bad credentials → 401 `bad.credentials` (an `ErrorBody` that also carries the OAuth
//!   `error: "invalid_client"` / `error_description` fields). Missing, unknown, expired or revoked
//!   bearer tokens on `/api/v2` → 401 `authentication.required`.
//! - Outbound contact lists and contacts, External Contacts (CRUD, PATCH changes, search, scan,
//!   identifier lookup, merge, unresolved, bulk), conversations (GET, participant attributes)
//!   and inbound Open Messaging: see [`ROUTES`].
//! - Every response is `application/json` and carries `ININ-Correlation-Id`; errors are the
//!   platform's `ErrorBody` `{message, code, status, contextId, details[], errors[]}` with
//!   `contextId` = the correlation id. Bodies are checked against the excerpt's request schemas
//!   (wrong type or enum → 400 `invalid.value`; malformed JSON → 400 `bad.request`; a literal
//!   `null` body counts as no body; `Content-Type: application/json` on GET is fine; list query
//!   parameters may be comma-joined or repeated; echoed server fields on PUT are ignored).
//!
//! ## Rate limit
//! Per token, a **sliding 60 s window** of admitted requests: a request is admitted when the
//! token made fewer than `rate_limit_per_minute` admitted requests in the last 60 s. A client
//! can therefore use the full budget at any steady pace (e.g. a GCRA/token bucket of
//! `N`/minute never sees a 429), and no 60 s interval ever holds more than `N` admitted
//! requests. Rejected requests do not consume budget. Headers on every `/api/v2` response:
//! `inin-ratelimit-allowed` (the limit), `inin-ratelimit-count` (admitted requests in the
//! window) and `inin-ratelimit-reset` (whole seconds until the oldest of them leaves the window).
//! A 429 has `Retry-After` (whole seconds, ≥ 1, the same value) and the normalized body
//! `{"message":"Rate limit exceeded the maximum. Retry the request in [N] seconds","code":"too.many.requests.retry.after",…}`.
//! [`Stats::max_requests_per_token_in_60s`] records the most requests (429s included) any
//! token made in any 60 s window; [`Stats::max_requests_per_client_in_60s`] the most that all
//! tokens of one OAuth client made together (per client: [`Stats::clients`]).
//!
//! **Scope** ([`EmulatorConfig::rate_limit_scope`]): the real platform limits **per token**
//! ([`RateLimitScope::PerToken`], the default), so two processes of one integration, each with
//! its own token, get twice the budget. [`RateLimitScope::PerClient`] instead makes all tokens
//! issued to one client id share **one** sliding window of `rate_limit_per_minute` admitted
//! requests: it models an org-wide budget, which the platform does not enforce but dedupd keeps
//! itself (e.g. through its shared Redis GCRA), and lets tests prove that several processes stay
//! within it. The `inin-ratelimit-*` headers, the 429s and [`Stats::rate_limited`] follow the
//! active scope (the count is then the client's); injected 429 bursts stay per token.
//!
//! ## Fault injection
//! Declared in a TOML file ([`FaultProfile`], example there), replaced at run time with
//! `PUT /__emulator/faults` (same keys, JSON) or [`EmulatorState::set_faults`], and per request
//! with the emulator-only header `x-emulator-fault` (`;`- or `,`-separated):
//! `429[=secs]` (`429=0`: no `Retry-After`), `500`, `502`, `503[=retry-after]`, `504` (not applied), `504-applied` (the
//! write is applied, then 504 `request.timeout`), `slow=MS`, `timeout=MS` (wait, then 504,
//! nothing applied), `record-failure=INDEX` (repeatable), `merge-conflict`, `revoke-token`.
//! Decisions per request are drawn from one RNG seeded with the seed, so a given seed and
//! request order give the same faults. Rules apply to `/api/v2` routes unless `paths` name
//! others (e.g. `/oauth/token`).
//!
//! **Outages**: [`EmulatorState::outage_after`] lets the next N `/api/v2` requests through and
//! then answers every request (the token endpoint's too) with 503 until
//! [`EmulatorState::end_outage`]: the platform going away part-way through a run
//! (`PUT /__emulator/outage {"after": N}`, `DELETE /__emulator/outage` over HTTP).
//!
//! **Clock**: token lifetimes, revocation periods and rate windows run on the emulator's own
//! clock, which [`EmulatorState::advance_clock`] (`POST /__emulator/clock/advance {"secs": N}`)
//! moves forward: a test expires a token without waiting.
//!
//! The gate (tokens, budget, faults, outages, counters, clock), the listener and these shared
//! admin routes ([`SHARED_ADMIN_ROUTES`]) are platform-neutral (module `gate`): the NICE
//! CXone emulator ([`cxone`], `RunningCxoneEmulator`) runs behind the same machinery, with the
//! same profile keys and header.
//!
//! `crates/emulator/fault-profiles/sync-chaos.toml` is the profile of the sync acceptance run
//! (10 % 429, 5 % 5xx, 2 % 504-but-applied, tokens expiring every 30 s).
//!
//! **Per-record failures** (how the platform reports them is not documented; the closest
//! plausible forms were chosen):
//! - add contacts (`POST …/contactlists/{id}/contacts`) is **atomic**: a bad record (validation
//!   or an injected 4xx failure) rejects the whole request with **400 `invalid.value`** whose
//!   `message` names the record's index and id, `entityId` = its id and
//!   `details[{errorCode, fieldName, entityId}]`; nothing is applied. An injected 5xx record
//!   failure answers that status for the whole request, naming the record.
//! - bulk External Contacts operations answer 200 with a **per-entity result**
//!   `{id, success: false, status, error{code, message, status, retryable, details, entity}}`
//!   and list it in `errorIndexes`; the other entities are applied.
//! - Injected 4xx record failures are a deterministic function of the seed and the record (its
//!   id, or its content when it has none): a bad record stays bad on retry and can be isolated
//!   by splitting the batch. 5xx ones are drawn per request (transient).
//!
//! **Merge conflicts**: a merge naming a source that has active associations (a participant of
//! an open conversation carries its `externalContactId`; seeded with
//! `activeAssociations: true`, set with [`EmulatorState::set_active_associations`], or chosen by
//! a `merge_conflict` rule, deterministically per seed and contact id) fails with 409
//! `general.conflict`, `entityId` = that source.
//!
//! **Tokens**: `token_ttl_secs` in the profile overrides `expires_in`; `revoke_tokens_every_secs`
//! invalidates every older token each period; `POST /__emulator/revoke-tokens` revokes all now.
//!
//! ## Merge semantics
//! `POST /api/v2/externalcontacts/contacts/merge` `{contactIds (2–25, distinct), valueOverride?}`
//! creates a **new** canonical contact: field values come from the most recently modified
//! source, its empty fields filled from the others (most recent first), differing e-mails and
//! phones moved to free slots, external ids united; non-null `valueOverride` fields win. Sources
//! get `mergedTo`; every member gets `canonicalContact` and `mergeSet` (all contacts of the
//! tree, heads included); a merge whose set would exceed 52 fails (400 `invalid.value`).
//! `GET …/contacts/{id}` of a merged-away id returns the canonical contact;
//! `GET …/contacts/{id}/unresolved` the original record.
//!
//! ## Choices where the platform is not documented
//! - More than 1,000 contacts in one add-contacts request → 400 `invalid.value`.
//! - Contact-list `PUT` with a stale `version` → 409 `general.conflict`; without one → 400.
//! - Add-contacts rejects data columns that are not in the list's `columnNames`; numbers and
//!   booleans in `data` are stored as text.
//! - Inbound Open Messaging always returns `conversationId` (200); a sender with an open
//!   conversation on the same integration joins it (`POST /__emulator/conversations/{id}/disconnect`
//!   ends one).
//! - E.164 reading of `PhoneNumber.display` is an approximation (leading `+`, or a small table
//!   of regions with `normalizationCountryCode`, default +1).
//! - External sources referenced in `externalIds` get `name` = their id when none is given.
//!
//! ## Admin API (`/__emulator/…`, no auth)
//! See [`ADMIN_ROUTES`]: seed data, read stats, reset, get/put faults, revoke tokens, read a
//! contact list's contacts, flag active associations, read or end conversations.

mod admin;
mod agentless;
mod associations;
mod config;
mod conversations;
pub mod cxone;
mod error;
mod external;
mod gate;
mod http;
mod oauth;
mod outbound;
mod routes;
pub mod schema;
mod state;
mod util;

use std::net::{Ipv4Addr, SocketAddr};

pub use admin::ADMIN_ROUTES;
pub use agentless::AGENTLESS_ROUTES;
pub use config::{EmulatorConfig, FaultKind, FaultProfile, FaultRule, RateLimitScope};
pub use error::EmulatorError;
pub use external::{MERGE_MAX, MERGE_MIN, MERGE_SET_MAX};
pub use gate::admin::SHARED_ADMIN_ROUTES;
pub use gate::middleware::FAULT_HEADER;
pub use gate::{ClientStats, Stats, TokenStats};
pub use outbound::MAX_CONTACTS_PER_REQUEST;
pub use routes::{ROUTES, router};
pub use state::EmulatorState;

use gate::server::{Listening, StartSpec};

/// An emulator serving on a local port, in a background task.
#[derive(Debug)]
pub struct RunningEmulator {
    server: Listening,
    state: EmulatorState,
}

impl RunningEmulator {
    /// Starts on `127.0.0.1` with an ephemeral port.
    pub async fn start(cfg: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr` (port 0 = ephemeral).
    pub async fn start_on(
        cfg: EmulatorConfig,
        addr: SocketAddr,
    ) -> Result<RunningEmulator, EmulatorError> {
        let spec = StartSpec {
            addr,
            faults: &cfg.faults,
            header_timeout: cfg.header_timeout,
            max_connections: cfg.max_connections,
            label: "Genesys Cloud emulator",
        };
        let (server, state) = gate::server::start(spec, |_| {
            let state = EmulatorState::new(&cfg);
            (state.clone(), router(state))
        })
        .await?;
        Ok(RunningEmulator { server, state })
    }

    /// `http://127.0.0.1:PORT` (an unspecified bind address is shown as 127.0.0.1).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// A handle on the state, for in-process inspection.
    pub fn state(&self) -> EmulatorState {
        self.state.clone()
    }

    /// Stops accepting, lets in-flight requests finish for up to 2 s, then stops the task
    /// (requests held by a `timeout` fault are cut).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
