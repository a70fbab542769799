//! The `externalId`: one stable key per real customer.
//!
//! # Algorithm (version 1; changing it re-keys every contact, so it never changes silently)
//!
//! Inputs are the configured key fields in their configured order (for example
//! `["customer_id"]` or `["customer_id", "account_number"]`). Phone and e-mail can never be key
//! fields: people change them, and two people can share them.
//!
//! 1. Each value is cleaned with [`crate::normalize::clean`] (NFKC, whitespace collapsed and
//!    trimmed). Case is kept: source systems' ids are case-sensitive.
//! 2. `digest = SHA-256("dedupd.externalId.v1" ‖ for each field: 0x1F ‖ name ‖ 0x1E ‖ value)`.
//! 3. `readable` = the cleaned values joined by `_`, every character outside `[A-Za-z0-9]`
//!    replaced by `_`, cut to 40 characters.
//! 4. `externalId = readable ‖ "_" ‖ lowercase hex of digest[0..8]`.
//!
//! So `CUST-100402` becomes `CUST_100402_` followed by 16 hex digits: people recognise the
//! customer in the platform's UI, the result uses only `[A-Za-z0-9_]`, and two ids that read the
//! same once sanitized (`CUST-1` and `CUST_1`) still get different keys through the digest.
//! A golden test pins the output.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::normalize::text;

/// Key fields that are never allowed: they are not stable identifiers of a person.
pub const FORBIDDEN_KEY_FIELDS: &[&str] = &["phone", "phone_e164", "email"];

/// Errors of the key builder.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A record lacks a value for a configured key field.
    #[error("key field `{0}` is empty")]
    Missing(String),
    /// The configuration names no key field.
    #[error("no key field configured")]
    NoFields,
    /// The configuration names a field that must never be a key.
    #[error(
        "`{0}` cannot be a key field: phone numbers and e-mail addresses change and are shared"
    )]
    Forbidden(String),
}

/// Builds `externalId`s from the configured stable fields.
#[derive(Debug, Clone)]
pub struct ExternalIdBuilder {
    fields: Vec<String>,
}

impl ExternalIdBuilder {
    /// A builder over `fields`, in order.
    pub fn new<I, S>(fields: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let fields: Vec<String> = fields.into_iter().map(Into::into).collect();
        if fields.is_empty() {
            return Err(KeyError::NoFields);
        }
        if let Some(bad) = fields
            .iter()
            .find(|f| FORBIDDEN_KEY_FIELDS.contains(&f.as_str()))
        {
            return Err(KeyError::Forbidden(bad.clone()));
        }
        Ok(Self { fields })
    }

    /// The configured key fields.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Builds the key; `value_of(field)` returns a record's raw value of a field.
    pub fn build<'a>(
        &self,
        mut value_of: impl FnMut(&str) -> Option<&'a str>,
    ) -> Result<String, KeyError> {
        let mut hasher = Sha256::new();
        hasher.update(b"dedupd.externalId.v1");
        let mut readable = String::with_capacity(48);
        for (i, field) in self.fields.iter().enumerate() {
            let value = value_of(field).map(text::clean).unwrap_or_default();
            if value.is_empty() {
                return Err(KeyError::Missing(field.clone()));
            }
            hasher.update([0x1F]);
            hasher.update(field.as_bytes());
            hasher.update([0x1E]);
            hasher.update(value.as_bytes());
            if i > 0 {
                readable.push('_');
            }
            readable.extend(
                value
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            );
        }
        readable.truncate(40);
        let digest = hasher.finalize();
        readable.push('_');
        for b in &digest[..8] {
            readable.push(hex_digit(b >> 4));
            readable.push(hex_digit(b & 0x0F));
        }
        Ok(readable)
    }
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// The key of a set of record ids: `prefix` followed by 16 lowercase hex digits of SHA-256 over
/// the sorted, de-duplicated ids, each followed by a newline. The same ids always give the same
/// key, whatever their order or repetitions.
///
/// One function serves every set-of-ids key, so they cannot drift apart: the cluster id of
/// `plan.json` (`k…`), the journal key of a cluster (`c…`), the idempotency key of a merge
/// request (`m…`) and the lock of a contact (`l…`). Journals and plans written earlier stay
/// valid only as long as the output bytes never change: a golden test pins them.
pub fn ids_key<'a>(prefix: char, ids: impl IntoIterator<Item = &'a str>) -> String {
    use std::fmt::Write as _;
    let sorted: std::collections::BTreeSet<&str> = ids.into_iter().collect();
    let mut hasher = Sha256::new();
    for id in sorted {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(prefix.len_utf8() + 16);
    out.push(prefix);
    for byte in &digest[..8] {
        // Writing into a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(field: &'static str, value: &'static str) -> impl FnMut(&str) -> Option<&'static str> {
        move |f| (f == field).then_some(value)
    }

    /// Pins algorithm v1 (the expected values were computed independently with Python's hashlib). If this fails, every deployed contact would be re-keyed: don't change
    /// the expected values, version the algorithm instead.
    #[test]
    fn golden() {
        let b = ExternalIdBuilder::new(["customer_id"]).unwrap();
        assert_eq!(
            b.build(one("customer_id", "CUST-100402")).unwrap(),
            "CUST_100402_92995554161a0f06"
        );
        assert_eq!(
            b.build(one("customer_id", "  CUST-100402 \t")).unwrap(),
            "CUST_100402_92995554161a0f06"
        );
        assert_eq!(
            b.build(one("customer_id", "CUST_100402")).unwrap(),
            "CUST_100402_86a1c8cce0b47a05"
        );
        let two = ExternalIdBuilder::new(["customer_id", "account_number"]).unwrap();
        let id = two
            .build(|f| match f {
                "customer_id" => Some("CUST-1"),
                "account_number" => Some("ACC9"),
                _ => None,
            })
            .unwrap();
        assert_eq!(id, "CUST_1_ACC9_a0672ce28d7b5055");
    }

    #[test]
    fn refuses_missing_and_forbidden() {
        let b = ExternalIdBuilder::new(["customer_id"]).unwrap();
        assert_eq!(
            b.build(|_| None),
            Err(KeyError::Missing("customer_id".into()))
        );
        assert_eq!(
            b.build(one("customer_id", "  ")),
            Err(KeyError::Missing("customer_id".into()))
        );
        assert!(matches!(
            ExternalIdBuilder::new(["email"]),
            Err(KeyError::Forbidden(_))
        ));
        assert!(matches!(
            ExternalIdBuilder::new(Vec::<String>::new()),
            Err(KeyError::NoFields)
        ));
    }

    proptest! {
        #[test]
        fn charset_and_determinism(v in any::<String>()) {
            let b = ExternalIdBuilder::new(["customer_id"]).unwrap();
            if let Ok(id) = b.build(|_| Some(v.as_str())) {
                prop_assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                prop_assert!(id.len() <= 57);
                prop_assert_eq!(b.build(|_| Some(v.as_str())).unwrap(), id);
            }
        }
    }

    #[test]
    fn ids_key_output_is_pinned() {
        // Values produced by the implementations this function replaced (the journal's
        // `ids_key` and plan.json's `cluster_id`): existing journals and plans stay valid.
        assert_eq!(ids_key('k', ["C2", "C1", "C3"]), "k2c9ffc22ff7a00a0");
        assert_eq!(ids_key('m', ["b", "a"]), "m911169ddaaf146af");
        assert_eq!(ids_key('c', ["a", "b", "a"]), "c911169ddaaf146af");
        assert_eq!(ids_key('l', ["C1"]), "l2493ec15ec53171c");
    }

    #[test]
    fn ids_key_depends_only_on_the_set_of_ids_and_the_prefix() {
        let a = ids_key('m', ["b", "a"]);
        assert_eq!(a, ids_key('m', ["a", "b", "a"]));
        assert_ne!(a, ids_key('m', ["a", "b", "c"]));
        assert_ne!(a, ids_key('c', ["a", "b"]));
        assert_eq!(a.len(), 17);
    }
}
