//! Which customer a sender's address belongs to, so an SMS from a phone and an e-mail from an
//! address of the same customer meet: the [`CustomerLookup`] seam and its two
//! implementations.
//!
//! - [`ContactIndex`]: exact address → customer, built from an NDJSON file of
//!   `{"customer_id", "phone", "email"}` lines or from the ingest state store.
//! - [`ResolutionLookup`]: through the resolution index (issue 16, `serve --resolve-index` or
//!   `--resolve-postgres`), shared live with `POST /v1/contacts/resolve`: an address belongs
//!   to the customer the resolution engine put the records holding it in, so every address of
//!   the records one customer gathered (a home and a work e-mail, a phone) is that customer,
//!   and a contact recorded through the resolve endpoint counts from its next message on.
//!
//! Phones and e-mails are normalized with the same `core` functions as ingest and as the
//! gateway's `from`. In both, an address that two customers share (a household landline, a
//! shared mailbox) or a placeholder resolves to no one: it stays its own customer rather than
//! merging strangers, and so does an address no one holds.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::BufRead;
use std::path::Path;

use std::sync::{Arc, RwLock};

use dedupd_core::Field;
use dedupd_core::matching::incremental::Holder;
use dedupd_core::matching::{COLUMNS, Column, Record, Resolver};
use dedupd_core::message::{Address, Customer};
use dedupd_core::normalize::phone::{Validity, normalize_phone_as};
use dedupd_core::normalize::{Region, normalize_email};
use dedupd_store::{ContactState, StoreError};
use serde::Deserialize;
use thiserror::Error;

/// The gateway's customer lookup: which customer a message's sender is.
pub trait CustomerLookup: Send + Sync + 'static {
    /// The customer of `address`: a known customer, or the address itself when nothing ties
    /// it to exactly one.
    fn customer(&self, address: Address) -> Customer;
}

impl CustomerLookup for ContactIndex {
    fn customer(&self, address: Address) -> Customer {
        self.resolve(address)
    }
}

/// The customer lookup through the resolution index: the customer of the known records that
/// hold the address ([`Resolver::holder_of`]).
///
/// What a message honestly tells about its sender is the address, and only that: a display
/// name is whatever the sender's client says, and the text is no identity. So the lookup
/// links an address only where the known records already tie it to one customer. An address
/// held by records of two customers (a shared mailbox, a household line), a placeholder or a
/// value the generic-value rule found held by many people, and an address no record holds are
/// each their own customer: a stranger's message is never suppressed as a known customer's.
/// Messages are not recorded in the index (they carry no contact record); contacts are, through
/// `POST /v1/contacts/resolve` and `merge plan`, and count from then on.
#[derive(Clone)]
pub struct ResolutionLookup {
    resolver: Arc<RwLock<Resolver>>,
}

impl ResolutionLookup {
    /// A lookup over `resolver`, shared with whatever records into it.
    pub fn new(resolver: Arc<RwLock<Resolver>>) -> Self {
        ResolutionLookup { resolver }
    }
}

impl std::fmt::Debug for ResolutionLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolutionLookup").finish_non_exhaustive()
    }
}

impl CustomerLookup for ResolutionLookup {
    fn customer(&self, address: Address) -> Customer {
        let (column, value) = match &address {
            Address::Phone(p) => (Column::Phone, p.as_str()),
            Address::Email(e) => (Column::Email, e.as_str()),
            Address::Opaque { .. } => return Customer::Unknown(address),
        };
        // The address as a contact with that one value (already normalized by the same core
        // functions the index's records went through).
        let values: [&str; 11] =
            std::array::from_fn(|i| if COLUMNS[i] == column { value } else { "" });
        let contact = Record::new(values, None);
        // A poisoned lock (a panic elsewhere) leaves the sender its own customer.
        let holder = match self.resolver.read() {
            Ok(r) => r.holder_of(&contact),
            Err(_) => Holder::Unknown,
        };
        match holder {
            Holder::Customer(id) => Customer::Known(id),
            Holder::Shared | Holder::Generic | Holder::Unknown => Customer::Unknown(address),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    One(String),
    Ambiguous,
}

/// Address → customer.
#[derive(Debug, Clone, Default)]
pub struct ContactIndex {
    by_address: HashMap<Address, Owner>,
}

/// What loading an index found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Records read.
    pub records: u64,
    /// Addresses indexed (phones and e-mails).
    pub addresses: u64,
    /// Addresses shared by two or more customers (resolve to no one).
    pub ambiguous: u64,
    /// Values skipped because they are not a valid phone or e-mail (1-based lines are logged,
    /// never the values).
    pub invalid_values: u64,
}

/// Errors loading an index.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The file could not be read.
    #[error("cannot read the contact index {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a JSON object with a `customer_id`.
    #[error("contact index {path} line {line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// Why (no values echoed).
        message: String,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Deserialize)]
struct Line {
    customer_id: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl ContactIndex {
    /// An empty index: every address is its own customer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes one customer's phone and e-mail (raw values; normalized here), counting into
    /// `report`.
    pub fn insert(
        &mut self,
        customer_id: &str,
        phone: Option<&str>,
        email: Option<&str>,
        region: Option<Region>,
        report: &mut IndexReport,
    ) {
        report.records += 1;
        let mut addresses = Vec::with_capacity(2);
        // As strict as the gateway reads a sender ([`dedupd_core::message::parse_address`]).
        match phone.map(|p| normalize_phone_as(p, region, Validity::Possible)) {
            Some(Ok(Some(p))) => addresses.push(Address::Phone(p)),
            Some(Err(_)) => report.invalid_values += 1,
            _ => {}
        }
        match email.map(normalize_email) {
            Some(Ok(Some(e))) => addresses.push(Address::Email(e)),
            Some(Err(_)) => report.invalid_values += 1,
            _ => {}
        }
        for address in addresses {
            match self.by_address.entry(address) {
                Entry::Vacant(v) => {
                    v.insert(Owner::One(customer_id.to_owned()));
                    report.addresses += 1;
                }
                Entry::Occupied(mut o) => {
                    if matches!(o.get(), Owner::One(existing) if existing != customer_id) {
                        o.insert(Owner::Ambiguous);
                        report.ambiguous += 1;
                    }
                }
            }
        }
    }

    /// Loads `customer_id,phone,email` NDJSON (blank lines skipped). National phones take
    /// `region`.
    pub fn load_ndjson(
        path: &Path,
        region: Option<Region>,
    ) -> Result<(ContactIndex, IndexReport), IndexError> {
        let p = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| IndexError::Read {
            path: p.clone(),
            source,
        })?;
        let mut index = ContactIndex::new();
        let mut report = IndexReport::default();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| IndexError::Read {
                path: p.clone(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let rec: Line = serde_json::from_str(&line).map_err(|e| IndexError::Line {
                path: p.clone(),
                line: i as u64 + 1,
                message: if e.is_data() {
                    "expected an object with customer_id (string), phone and email (string or null)"
                        .to_owned()
                } else {
                    "not valid JSON".to_owned()
                },
            })?;
            index.insert(
                &rec.customer_id,
                rec.phone.as_deref(),
                rec.email.as_deref(),
                region,
                &mut report,
            );
        }
        Ok((index, report))
    }

    /// Loads the ingest state: each contact's `externalId` is its canonical id, its stored
    /// E.164 phone and e-mail its addresses.
    pub fn from_state(
        state: &dyn ContactState,
        region: Option<Region>,
    ) -> Result<(ContactIndex, IndexReport), IndexError> {
        let mut index = ContactIndex::new();
        let mut report = IndexReport::default();
        state.for_each(&mut |stored| {
            let c = &stored.contact;
            index.insert(
                &c.external_id,
                c.get(Field::PhoneE164),
                c.get(Field::Email),
                region,
                &mut report,
            );
            Ok(())
        })?;
        Ok((index, report))
    }

    /// The customer of `address`: the indexed customer, or the address itself when it is
    /// unknown or ambiguous.
    pub fn resolve(&self, address: Address) -> Customer {
        match self.by_address.get(&address) {
            Some(Owner::One(id)) => Customer::Known(id.clone()),
            _ => Customer::Unknown(address),
        }
    }

    /// Indexed addresses.
    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_known_unknown_and_ambiguous() {
        let us: Region = "US".parse().unwrap();
        let mut index = ContactIndex::new();
        let mut report = IndexReport::default();
        index.insert(
            "C1",
            Some("(201) 555-0123"),
            Some("Ann@Example.com"),
            Some(us),
            &mut report,
        );
        index.insert(
            "C2",
            Some("+12015550199"),
            Some("shared@example.com"),
            Some(us),
            &mut report,
        );
        index.insert(
            "C3",
            Some("not a phone"),
            Some("SHARED@example.com"),
            Some(us),
            &mut report,
        );
        assert_eq!(report.records, 3);
        assert_eq!(report.invalid_values, 1);
        assert_eq!(report.ambiguous, 1);
        assert_eq!(
            index.resolve(Address::Phone("+12015550123".into())),
            Customer::Known("C1".into())
        );
        assert_eq!(
            index.resolve(Address::Email("ann@example.com".into())),
            Customer::Known("C1".into())
        );
        let shared = Address::Email("shared@example.com".into());
        assert_eq!(index.resolve(shared.clone()), Customer::Unknown(shared));
        let stranger = Address::Phone("+12015550000".into());
        assert_eq!(index.resolve(stranger.clone()), Customer::Unknown(stranger));
    }

    #[test]
    fn ndjson_errors_name_the_line_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ndjson");
        std::fs::write(&path, "{\"customer_id\":\"C1\",\"phone\":null,\"email\":\"a@b.test\"}\n\n{\"phone\":\"+12015550123\"}\n").unwrap();
        let err = ContactIndex::load_ndjson(&path, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("2015550123"), "{err}");
    }
}
