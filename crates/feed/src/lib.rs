//! # dedupd-feed: reading what customers send dedupd
//!
//! One set of readers for every file a job reads, so every job agrees on line numbers, line
//! ends (LF, CRLF, bare CR), quoting, field counts and encodings, and never stops at a bad row:
//!
//! - [`read`]: the CSV, NDJSON and JSON-array readers (rows with their 1-based physical line,
//!   rejects that name the field and the reason, never the value), decoding, and label files.
//! - [`options`]: the reader options every input config shares (delimiter, encoding,
//!   timestamps), checked with the key at fault named.
//! - [`source`]: a feed source of the config file (`[[source]]`): format, encoding, field map.
//! - [`contacts`]: a source read into one contact per `externalId`, for `ingest`.
//! - [`export`]: a contact export read into the matcher's records, for `merge plan`.
//!
//! What a row *means* (names, do-not-call, the record of a row) is the core's; this crate only
//! gets the values out of the bytes and hands them over.

pub mod contacts;
pub mod export;
pub mod options;
pub mod read;
pub mod source;
