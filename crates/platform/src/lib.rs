//! `dedupd-platform`: what dedupd's jobs need from a contact-center platform, as traits.
//!
//! A job asks for a capability, never for a vendor: a [`contact_list`] to upsert contacts
//! into, a [`directory`] of customer records to scan, fetch and merge, a [`messaging`]
//! endpoint to forward inbound messages to and annotate, and a [`notify`] sender that may or
//! may not dedupe on a key and may or may not be read back. Each platform crate (Genesys Cloud
//! today) implements these traits; the jobs are generic over them, and what differs between
//! platforms is stated as capabilities (merge batch size, whether a send is idempotent, how
//! merged values are placed), not as `if genesys` in a job.
//!
//! No I/O happens here: this crate only names the contract.

pub mod contact_list;
pub mod directory;
pub mod error;
pub mod messaging;
pub mod notify;
pub mod usage;

pub use error::{ErrorKind, PlatformError};
pub use usage::{CallStats, Session};
