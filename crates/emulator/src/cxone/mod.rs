//! # The NICE CXone emulator
//!
//! A local stand-in for the NICE CXone endpoints dedupd uses, built from
//! `shared/cxone/api-notes.md` and `shared/cxone/lists-notes.md` (real paths and bodies; none
//! of the invented ones: no `/api/v2/…`, no `oauth/token`, no client-credentials grant, no
//! events API, no Journey Builder, no extra list endpoints). It runs behind the same gate as
//! the Genesys emulator: per-token sliding-window rate limit, the same [`FaultProfile`] keys
//! and `x-emulator-fault` header, outages, the emulator clock, the same shared admin routes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dedupd_emulator::EmulatorError> {
//! use dedupd_emulator::cxone::{CxoneEmulatorConfig, CxoneSeed, RunningCxoneEmulator, SeedCustomer};
//! let emu = RunningCxoneEmulator::start(CxoneEmulatorConfig::default()).await?;
//! let base = emu.base_url(); // issuer, API and DFO base at once
//! emu.state().seed(&CxoneSeed {
//!     customers: vec![SeedCustomer {
//!         id: Some("C1".into()),
//!         first_name: Some("Jane".into()),
//!         surname: Some("Doe".into()),
//!         emails: vec!["jane@example.com".into()],
//!         ..SeedCustomer::default()
//!     }],
//!     ..CxoneSeed::default()
//! })?;
//! # let _ = base;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## How a client is configured
//! Everything is on **one port** and routed by path whatever the `Host` header, so one base
//! URL, `B = http://127.0.0.1:PORT`, is the issuer, the API endpoint and the DFO base:
//!
//! | what | value |
//! |---|---|
//! | issuer (`CXONE_ISSUER`) | `B` (OIDC discovery at `B/.well-known/openid-configuration`; its `token_endpoint` is `B/auth/token`) |
//! | API endpoint override | `B` (what tenant discovery returns as `api_endpoint`; Admin paths are `B/inContactAPI/services/v30.0/…`) |
//! | DFO base override | `B`: the notes' `{dfo}` (`https://api-de-{area}.{domain}/dfo/3.0`, which NICE's SDK *builds*) becomes `B/dfo/3.0`. Discovery answers `domain = cxone-emulator.invalid`, a name that never resolves, so a client that builds the host instead of taking the override fails at once |
//! | client id / secret (`CXONE_CLIENT_ID`, `CXONE_CLIENT_SECRET`) | `dedupd-demo` / `dedupd-demo-secret` |
//! | access key id / secret (`CXONE_ACCESS_KEY_ID`, `CXONE_ACCESS_KEY_SECRET`) | `dedupd-demo-key` / `dedupd-demo-key-secret` |
//! | tenant (`CXONE_TENANT_ID`; also the `tenantId` claim of the `id_token`) | `11eb0c8f-0000-4000-8000-00000000e0e1`, area `na1`, cluster `C32` |
//!
//! [`CxoneEmulatorConfig::public_url`] replaces `B` in the discovery documents when the
//! emulator is reached through another address.
//!
//! ## What is served ([`CXONE_ROUTES`])
//! - **Issuer.** `GET /.well-known/openid-configuration`; `POST /auth/token`, form-encoded:
//!   `grant_type=password` (`username` = access key id, `password` = access key secret) with
//!   the client authenticated by HTTP Basic or by `client_id`/`client_secret` form fields, and
//!   `grant_type=refresh_token` (`refresh_token` + Basic, or `client_id` with or without its
//!   secret). Answer `{access_token, token_type: "Bearer", expires_in, refresh_token,
//!   id_token}`; the `id_token` is an HS256 JWT (decode it without verifying) carrying `iss`,
//!   `tenantId`, `sub`, `aud`, `iat`, `exp`, `area`, `icClusterId`. Errors are OAuth's
//!   `{error, error_description}`: `invalid_client` (401), `invalid_grant` (400: wrong access
//!   key; refresh token unknown, expired or used), `unsupported_grant_type` (400, e.g.
//!   `client_credentials`: not CXone's back-end grant), `invalid_request` (400).
//!   `GET /auth/jwks` is an empty key set. `GET /.well-known/cxone-configuration?tenantId=…`
//!   answers `api_endpoint`, `area`, `cluster`, `domain`, `acdDomain`, `uhDomain`,
//!   `ui_endpoint`, `auth_endpoint`, `private`, `tenantId`, `globaldomain`; an unknown tenant
//!   is 404.
//! - **DFO** (`/dfo/3.0/…`, bearer token): channels (`GET` is a bare array; `POST` creates or
//!   replaces by `id`), outbound send, BYOC inbound message, message / thread / contact
//!   searches, customers (search, get, merge, custom fields and their definitions). Errors
//!   `{"errors":[{"field","message","parameters","errorCode"}],"uid"}`.
//! - **Admin** (`/inContactAPI/services/{v11.0|v12.0|v15.0|v30.0|v31.0}/…`, bearer token):
//!   calling lists (mapping, upload, jobs, download, attempts, delete, remove prospects) and
//!   DNC groups (groups, skills, records add/expire, search). Errors `{error,
//!   errorDescription}` with the QA suite's codes (`InvalidSkillId`, `InvalidOverwrite`,
//!   `InvalidListName`, `InvalidUpdatedSince`, `InvalidListId` — also for a malformed id).
//!   Requests without `Accept: application/json` get 406 and the text `No known way to render
//!   data`, as integrators report ([`CxoneEmulatorConfig::admin_requires_accept_json`]).
//! - A missing, unknown, expired or revoked token on DFO or Admin is 401 in the family's shape;
//!   an unknown path is a JSON 404 (DFO shape outside the Admin and issuer families).
//! - What NICE's SDK sends is accepted (api-notes §10): `Originating-Service-Identifier`,
//!   `x-message-sender`, `X-Trace-Id` (ignored), `application/json` with or without a charset,
//!   unencoded customer queries, a leading `?&`, `name[]` or repeated list parameters.
//! - Customers are never created through the API (no such endpoint exists): a card appears
//!   when an identity not seen before writes in (BYOC inbound) or is written to (outbound),
//!   and from the admin seed.
//!
//! ## Rate limit and faults
//! As on the Genesys side (see the crate docs): a sliding 60 s window of
//! [`CxoneEmulatorConfig::rate_limit_per_minute`] admitted requests per token (NICE publishes
//! no number; configure it). A 429 for an exhausted budget carries **no** `Retry-After` by
//! default (a live integrator reports none is reliable); injected 429s carry one unless their
//! rule says `retry_after_secs = 0` or the header says `429=0`. Fault rules apply to `/dfo/…`
//! and `/inContactAPI/…` unless `paths` name others (e.g. `/auth/token`). `504-applied` does
//! the work then answers 504: a send, a BYOC message, a merge, an upload really happened.
//! `record_failure` rules (and `record-failure=N`) fail rows of an upload (counted invalid,
//! keyed by external id, so a bad row stays bad) and DNC records (`success:false`);
//! `merge_conflict` rules (and `merge-conflict`) refuse a merge with 409. No CXone rate-limit
//! headers are sent (none are documented). `crates/emulator/fault-profiles/cxone-chaos.toml`
//! is a profile for acceptance runs (both kinds of 429, 5xx, 504-after-the-work, 30 s tokens).
//!
//! ## Behaviours the platform does not document, and what the emulator does
//! Each is the least forgiving plausible reading, so that a client safe here is safe there.
//! - **Outbound send** has no idempotency key: every call that reaches the platform sends
//!   another message; a thread id already used appends to that thread (api-notes §9.2). 202
//!   `{consumerContact, message}`. The channel must have `hasOutboundFlow: true` (absent =
//!   false for `POST /channels`; seeded channels default to true). Read back with
//!   `GET /dfo/3.0/threads?query=<thread id>` (a thread exists only once a send created it).
//! - **BYOC inbound with a repeated `idOnExternalPlatform`** creates a second message
//!   ([`InboundRepeat::Duplicate`]; [`InboundRepeat::Reject`] answers 409 instead). Read back
//!   with `GET /dfo/3.0/messages?idOnExternalPlatform[]=…&channel[]=…`.
//! - **Thread search** matches threads whose id or name *contains* the query, newest first:
//!   compare the answers exactly. Message and thread searches have no paging in the spec:
//!   they return at most [`CxoneEmulatorConfig::max_page_size`] items (`hits` /
//!   `totalRecords` count all).
//! - **Customer search**: the grammar of [`query`] (SDK forms; `OR` refused); an absent query
//!   lists every card (how a scan works); `size` is clamped to `max_page_size` (100) without
//!   error; `scrollToken` comes only with a full page; default order is creation order.
//! - **Identities** are matched exactly (ignoring case) on `idOnExternalPlatform`, whatever
//!   the channel; a new identity is a new card. Seeded cards may share an identity (shared
//!   family phones); a message then goes to the earliest card holding it.
//! - **Merge** (`PUT …/{target}/merge`, 204): the source's identities and conversations move
//!   to the target; the source's names and custom fields are **dropped** (the target keeps
//!   its own, even empty ones), so resolved values must be written afterwards with
//!   `PUT …/custom-fields`. The source id is then 404 for every call, a repeated merge
//!   included: after an ambiguous answer, read back (source 404 and its identities on the
//!   target = done). No un-merge.
//! - **Custom fields**: setting an ident without a definition is 400; `PUT …/custom-fields`
//!   answers 200 with the card.
//! - **Calling list creation** is not idempotent (the same name twice = two lists); so is DNC
//!   group creation.
//! - **Same external id uploaded twice**: a second record is appended, i.e. a duplicate
//!   ([`UploadRepeat::Duplicate`]; [`UploadRepeat::Replace`] replaces instead);
//!   `forceOverwrite` is required but changes nothing. Rows without the external id (or
//!   without a phone when `PhoneNumber` is mapped), or over 512 characters, count as
//!   `invalidRecords`; DNC numbers are **not** scrubbed from lists.
//! - **Upload jobs** are asynchronous: the records appear when the job completes, on its
//!   second status read by default ([`CxoneEmulatorConfig::upload_job_polls`]); jobs of a list
//!   complete in order. The job status has no per-record counts (as on the platform): read the
//!   list's `validRecords` / `invalidRecords`. CSV or tab-separated UTF-8 files with a header
//!   only (no spreadsheets); 500,000 records per file at most.
//! - **Download** (`GET …/call-lists/{id}`): records only with `includeRecords=true`, each as
//!   `{column header: value}` of the uploaded file; `skip`/`top` (at most 100); `totalRecords`
//!   in the `resultSet` is a string (as some live answers give it).
//! - **removeProspects**: `{sourceName}` is taken as the list name; every list with that name
//!   loses every record with each external id; `resultCode` `Success` / `NotFound`.
//! - **DNC**: numbers are stored as digits (7–15); adding a number already active in the group
//!   reports `success:false`, `error: DuplicateRecord` (and counts in `errorCount`) while the
//!   record stays; expiring (`DELETE …/records`) keeps the record with `expiredDate`, and
//!   expiring an unknown number creates an expired record (the help site's file behaviour).
//!   Search returns expired records too.
//!
//! ## Admin API (`/__emulator/…`, no auth)
//! The shared routes ([`SHARED_ADMIN_ROUTES`](crate::SHARED_ADMIN_ROUTES): stats, reset,
//! faults, revoke tokens, clock, outage) and [`CXONE_ADMIN_ROUTES`]: `POST /__emulator/seed`
//! with a [`CxoneSeed`] (20,000 customers in one call), reads of customers (merged-away ones
//! with `?includeMerged=true`), messages, threads, calling lists with all their records,
//! upload jobs (and `POST /__emulator/upload-jobs/complete`), DNC groups with their records.

mod admin;
mod auth;
mod config;
mod customers;
mod dfo;
mod dnc;
mod error;
mod extract;
mod lists;
mod paging;
pub mod query;
mod routes;
mod state;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};

pub use admin::{
    CXONE_ADMIN_ROUTES, CxoneSeed, SeedCallingList, SeedCustomer, SeedDncGroup, SeedIdentity,
    SeedMessage, SeedOutcome,
};
pub use config::{CxoneEmulatorConfig, CxoneTenant, InboundRepeat, UploadRepeat};
pub use routes::{ADMIN_API_VERSIONS, CXONE_ROUTES, cxone_router};
pub use state::CxoneState;

#[cfg(doc)]
use crate::FaultProfile;
use crate::error::EmulatorError;
use crate::gate::server::{Listening, StartSpec};

/// A CXone emulator serving on a local port, in a background task.
#[derive(Debug)]
pub struct RunningCxoneEmulator {
    server: Listening,
    state: CxoneState,
}

impl RunningCxoneEmulator {
    /// Starts on `127.0.0.1` with an ephemeral port.
    pub async fn start(cfg: CxoneEmulatorConfig) -> Result<RunningCxoneEmulator, EmulatorError> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr` (port 0 = ephemeral).
    pub async fn start_on(
        cfg: CxoneEmulatorConfig,
        addr: SocketAddr,
    ) -> Result<RunningCxoneEmulator, EmulatorError> {
        let spec = StartSpec {
            addr,
            faults: &cfg.faults,
            header_timeout: cfg.header_timeout,
            max_connections: cfg.max_connections,
            label: "NICE CXone emulator",
        };
        let (server, state) = crate::gate::server::start(spec, |base| {
            let state = CxoneState::new(&cfg, base);
            (state.clone(), cxone_router(state))
        })
        .await?;
        Ok(RunningCxoneEmulator { server, state })
    }

    /// `http://127.0.0.1:PORT`: the issuer, API and DFO base.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// A handle on the state, for seeding and in-process inspection.
    pub fn state(&self) -> CxoneState {
        self.state.clone()
    }

    /// Stops accepting, lets in-flight requests finish for up to 2 s, then stops.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
