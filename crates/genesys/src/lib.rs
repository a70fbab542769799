//! A client for the Genesys Cloud Platform API v2, built to survive what the real platform does
//! (the request loop, token cache, rate budget, retries and reachability circuit are
//! `dedupd-http-client`'s, shared with the CXone client):
//! token expiry, 429s, 5xx, timeouts, 504s whose work was done anyway, and batch calls that
//! succeed for some records only.
//!
//! # Principal types
//!
//! - [`GenesysClient`]: cheap to clone; every call goes through one loop that waits for the
//!   [`RateBudget`], takes a cached OAuth token, sends, and decides with a typed [`RetryAction`].
//! - [`ClientConfig`] / [`Endpoint`] / [`RetryPolicy`] / [`RedisBudget`]: configuration, from code
//!   or from the environment ([`ClientConfig::from_env`]).
//! - Typed endpoints: [`OutboundApi`] (contact lists and contacts), [`ExternalContactsApi`],
//!   [`ConversationsApi`] (participant attributes, inbound Open Messaging).
//! - [`Error`]: ask it [`Error::is_transient`], [`Error::is_outcome_unknown`] and
//!   [`Error::rejected_entity_ids`].
//! - [`StatsSnapshot`]: API calls, retries, 429s, time spent waiting for budget.
//!
//! # Behaviour
//!
//! - **Tokens**: client credentials, cached, renewed at 80 % of `expires_in`, single-flight
//!   (N concurrent callers cause one token request), renewed once on a 401 and the request
//!   re-sent. Secrets and tokens are `SecretString`s and are never logged.
//! - **Budget**: requests leave evenly spaced at 98 % of `requests_per_minute`, shared by all
//!   clones in a process, or across processes through Redis (one atomic GCRA script).
//! - **Retries**: 408, 429, 5xx except 501, timeouts and resets, with exponential backoff and
//!   full jitter; `Retry-After` always wins; a total-time cap. 4xx validation errors are never
//!   retried. A 504 (or a timeout after sending) on a non-idempotent request is reported as
//!   [`Error::OutcomeUnknown`] at once: the work may have been applied, so the caller reconciles.
//! - **Giving up**: with [`ClientConfig::give_up_after`], one circuit shared by all clones gives
//!   up on a platform that has answered nothing (connect errors, timeouts, 5xx, 429) for that
//!   long: every call then fails at once with [`Error::Unreachable`], so a run stops on time
//!   instead of retrying batch after batch.
//! - **Batches**: see [`OutboundApi::add_contacts`] (whole-request 4xx naming records) and
//!   [`BulkResults`] (External Contacts' per-entity results; a 200 is not "all succeeded").
//!
//! # Example: against the emulator
//!
//! ```no_run
//! # async fn run() -> Result<(), dedupd_genesys::Error> {
//! use dedupd_genesys::{AddContactsOptions, ClientConfig, Endpoint, GenesysClient,
//!     WritableDialerContact};
//!
//! let endpoint = Endpoint::base_url("http://127.0.0.1:8080")?; // or Endpoint::region("eu-west-1")?
//! let config = ClientConfig::new(endpoint, "client-id", "client-secret".to_owned());
//! let client = GenesysClient::new(config).await?;
//! let contact = WritableDialerContact {
//!     id: Some("cust_42".into()),
//!     contact_list_id: "list-id".into(),
//!     data: [("phone".to_owned(), "+14155552671".to_owned())].into(),
//!     ..Default::default()
//! };
//! let stored = client
//!     .outbound()
//!     .add_contacts("list-id", &[contact], AddContactsOptions::default())
//!     .await?;
//! println!("{} stored, {:?}", stored.len(), client.stats());
//! # Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agentless;
mod client;
mod common;
mod config;
mod conversations;
mod error;
mod external;
mod outbound;
pub mod seams;

pub use client::GenesysClient;
pub use common::{CursorPage, Cursors, EntityRef, Page};
pub use config::{
    ClientConfig, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REGION,
    ENV_REQUESTS_PER_MINUTE, Endpoint, REGIONS, RedisBudget, RetryPolicy,
};
pub use conversations::{
    Conversation, ConversationsApi, OpenIdType, OpenInboundChannel, OpenInboundMessage,
    OpenMessageNormalized, OpenMessagingFrom, Participant,
};
pub use dedupd_http_client::{
    ClientStats, HEADROOM, REFRESH_AT, RateBudget, RedisGcra, RetryAction, StatsSnapshot,
    classify_status, classify_transport, emission_interval, parse_retry_after,
};
pub use error::{ApiError, Error, ErrorBody, ErrorDetail, ErrorLimit, OutcomeUnknown, Unreachable};
pub use external::{
    BulkEntityError, BulkErrorDetail, BulkPartition, BulkResult, BulkResults, ContactAddress,
    ContactIdentifier, ContactScan, ContactType, ExternalContact, ExternalContactsApi, ExternalId,
    ExternalSource, IdentifierType, MAX_MERGE_IDS, MIN_MERGE_IDS, PatchAction, PatchChange,
    PhoneNumber, SearchQuery,
};
pub use outbound::{
    AddContactsOptions, AddContactsReport, ColumnStatus, ColumnType, ContactList, ContactListQuery,
    ContactListingRequest, ContactSort, ContactableStatus, DELETE_IDS_PER_CALL, DialerContact,
    EmailColumn, FilterClause, FilterOperator, FilterPredicate, FilterRange, FilterType,
    MAX_CONTACTS_PER_ADD, MAX_PAGE_SIZE, OutboundApi, PhoneColumn, PhoneNumberStatus,
    RejectedContact, SearchCriteria, WritableDialerContact,
};
pub use secrecy::SecretString;
