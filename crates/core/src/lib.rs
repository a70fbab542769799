//! `dedupd-core`: every rule about *what* is a duplicate lives here.
//!
//! This crate does no I/O and has no async code. Every job of dedupd (ingest, sync, merge, the
//! message gateway) normalizes a phone number, an e-mail address or a name through the same
//! functions of [`normalize`], builds keys through [`keys`] and merges records through
//! [`contact`], so the jobs cannot disagree on what "the same customer" means.

pub mod contact;
pub mod contact_list;
pub mod keys;
pub mod matching;
pub mod merge_values;
pub mod message;
pub mod normalize;
pub mod notification;
pub mod plan;
pub mod row;
pub mod time;

pub use contact::{Change, ChangeKind, Contact, ContactRecord, Field, MergeOutcome, Stamped};
pub use keys::{ExternalIdBuilder, KeyError};
