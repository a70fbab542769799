//! Synthetic data for dedupd's benchmarks (`dedupd-bench`) and tests, kept out of the product.
//! Each generator is deterministic: the same arguments (and seed) give the same data.
//!
//! - [`feeds`]: multi-source feeds for `ingest`, with a share of changed customers.
//! - [`contacts`]: a contact export with known duplicates for `merge plan`, and its truth.
//! - [`clusters`]: clusters of duplicates to seed on a platform and merge (`merge apply`).
//! - [`list`]: clean contacts for a contact list (`sync`).
//! - [`messages`]: inbound messages for the gateway, and the wrk script that posts them.
//! - [`notifications`]: business notifications for the outbox.

pub mod clusters;
pub mod contacts;
pub mod feeds;
pub mod list;
pub mod messages;
pub mod notifications;
