//! A client for NICE CXone, built from what NICE itself documents
//! (`shared/cxone/api-notes.md`, `lists-notes.md`) and on the request loop every dedupd
//! platform client shares (`dedupd-http-client`): token cache with refresh before expiry,
//! single-flight and one renewal on 401; the rate budget (in-process or Redis); retries with
//! full jitter only where a request is safe to repeat, `Retry-After` winning when present;
//! the reachability circuit; call statistics.
//!
//! # Principal types
//!
//! - [`CxoneClient`]: [`CxoneClient::connect`] runs OIDC discovery of the issuer, the
//!   access-key **password grant** with HTTP Basic client auth, and tenant discovery
//!   (`/.well-known/cxone-configuration`). Cheap to clone.
//! - [`CxoneConfig`]: from the environment ([`CxoneConfig::from_env`]: `CXONE_CLIENT_ID`,
//!   `CXONE_CLIENT_SECRET`, `CXONE_ACCESS_KEY_ID`, `CXONE_ACCESS_KEY_SECRET`,
//!   `CXONE_TENANT_ID`, and `CXONE_ISSUER` / `CXONE_API_ENDPOINT` / `CXONE_DFO_BASE` for a
//!   stand-in); secrets are `SecretString`s, redacted in `Debug`, never logged.
//! - Typed endpoints: [`DfoApi`] (channels, outbound, BYOC inbound, message and thread
//!   read-backs, customers search / get / merge / custom fields) and [`AdminApi`] (calling
//!   lists: mapping, upload, jobs, download, remove prospects; DNC groups: records add /
//!   expire, search).
//! - [`Error`]: method, path, status and the platform's message ([`CxoneErrorBody`] reads
//!   DFO's `errors[0].message`, Admin's `{error, errorDescription}` and OAuth's
//!   `error_description`).
//! - [`seams`]: CXone behind dedupd's platform seams.
//!
//! # What CXone lacks, and how the client stays safe
//!
//! - **No idempotency key on any send**: outbound sends, BYOC messages, merges, list creation
//!   and uploads are *at most once*: never resent after an answer that may follow work done
//!   (any 5xx, a timeout after sending). They end in [`Error::OutcomeUnknown`] and are read
//!   back (threads, messages, the customer, the jobs).
//! - **No un-merge**, and one source card per merge call.
//! - **Calling lists change only through uploads**; re-uploading an external id may duplicate
//!   it (undocumented; assumed), so changed records are removed first.
//! - **No published rate limit** and no reliable `Retry-After`: the budget is configured.
//!
//! None of the web guides' inventions appear here (no Journey Builder, no events API, no
//! client-credentials grant, no `/api/v2/…`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod admin;
mod client;
mod config;
mod dfo;
mod error;
pub mod seams;

pub use admin::{
    AdminApi, CallingList, DncGroup, DncRecordResult, DncSearchHit, DncWrite, ListMapping,
    ProspectResult, RemovedProspects, Upload, UploadJob, dnc_digits,
};
pub use client::{CxoneClient, Tenant, dfo_base_for, tenant_from_id_token};
pub use config::{
    CxoneConfig, DEFAULT_ADMIN_VERSION, DEFAULT_ISSUER, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET,
    ENV_API_ENDPOINT, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_DFO_BASE, ENV_ISSUER,
    ENV_REQUESTS_PER_MINUTE, ENV_TENANT_ID, RedisBudget,
};
pub use dedupd_http_client::{RateBudget, RetryPolicy, SecretString, StatsSnapshot};
pub use dfo::{
    Channel, Created, CustomField, CustomFieldDefinition, Customer, DfoApi, DigitalContact,
    ExternalAttribute, Identity, InboundByocMessage, Message, MessageContent, OutboundMessage,
    Recipient, SearchPage, TextPayload, Thread, ThreadRef,
};
pub use error::{ApiError, CxoneErrorBody, DfoErrorItem, Error};
