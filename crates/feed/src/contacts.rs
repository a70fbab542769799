//! A feed source read into contacts, for `ingest`: every row through the core's row rules
//! (the `externalId`, the normalizers, names, do-not-call), the rows of one key merged into one
//! contact. Rows that cannot be used are rejects with their line and reason, never their data.

use std::path::PathBuf;

use dedupd_core::normalize::{normalize_email, normalize_phone, text};
use dedupd_core::row as row_rules;
use dedupd_core::time::parse_timestamp;
use dedupd_core::{Contact, ContactRecord, ExternalIdBuilder, Field};
use rustc_hash::FxHashMap as HashMap;
use thiserror::Error;

use crate::read::{self, Reason, Reject, Row, RowSink};
use crate::source::{Format, Source};

/// A source that could not be read (rows that cannot be used are rejects, not errors).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ContactsError {
    /// The file could not be opened.
    #[error("source `{source_name}`: cannot open {}", path.display())]
    Open {
        /// The source's name.
        source_name: String,
        /// Its file (`-`: standard input).
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The source could not be read to the end.
    #[error("source `{source_name}`: read failed")]
    Read {
        /// The source's name.
        source_name: String,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
}

/// One source's result.
pub struct Collected {
    /// Rows read (rejected ones included).
    pub records_read: u64,
    /// One contact per `externalId`, the source's rows merged into it. Boxed: a contact is a
    /// few hundred bytes, and the table's growth (and the sort that follows in ingest) then
    /// moves pointers, not contacts.
    pub contacts: HashMap<String, Box<Contact>>,
    /// Rows refused, with their line.
    pub rejects: Vec<Reject>,
}

/// Reads one source into contacts: each row through the row rules (key, normalizers, names,
/// do-not-call), rows of one key merged; `on_bytes` hears how far the reader got.
pub fn read_contacts(
    src: &Source,
    key: &ExternalIdBuilder,
    on_bytes: impl FnMut(u64),
) -> Result<Collected, ContactsError> {
    let input = read::open(src.path.as_deref(), src.encoding).map_err(|e| ContactsError::Open {
        source_name: src.name.clone(),
        path: src.path.clone().unwrap_or_else(|| PathBuf::from("-")),
        error: e,
    })?;
    let mut c = Collector {
        src,
        key,
        contacts: HashMap::default(),
        rejects: Vec::new(),
        records_read: 0,
    };
    let io = match src.format {
        Format::Csv => read::read_csv(&src.name, input, src.delimiter, &mut c, on_bytes),
        Format::Ndjson => read::read_ndjson(&src.name, input, &mut c, on_bytes),
        Format::Json => read::read_json_array(&src.name, input, &mut c, on_bytes),
    };
    io.map_err(|e| ContactsError::Read {
        source_name: src.name.clone(),
        error: e,
    })?;
    Ok(Collected {
        records_read: c.records_read,
        contacts: c.contacts,
        rejects: c.rejects,
    })
}

/// A CSV whose header lacks a mapped column is a configuration error, not a row error. The
/// message names the missing column and describes the header without echoing its cells: the
/// first line of a file without a header row is a customer's data.
fn check_header(src: &Source, header: &[String]) -> Result<(), String> {
    let f = &src.fields;
    let mapped = [
        &f.customer_id,
        &f.account_number,
        &f.first_name,
        &f.last_name,
        &f.full_name,
        &f.phone,
        &f.email,
        &f.status,
    ];
    for col in mapped
        .into_iter()
        .flatten()
        .chain(std::iter::once(&f.updated_at))
    {
        if !header.iter().any(|h| h == col) {
            return Err(format!(
                "column `{col}` is not in the header ({})",
                read::describe_header(header)
            ));
        }
    }
    Ok(())
}

struct Collector<'a> {
    src: &'a Source,
    key: &'a ExternalIdBuilder,
    contacts: HashMap<String, Box<Contact>>,
    rejects: Vec<Reject>,
    records_read: u64,
}

impl Collector<'_> {
    fn build(&self, line: u64, row: &dyn Row) -> Result<(String, ContactRecord), Reject> {
        let src = self.src;
        let f = &src.fields;
        let reject = |field: Option<&str>, reason: Reason, message: String| {
            Reject::new(&src.name, line, field, reason, message)
        };
        let get = |spec: &Option<String>| -> Result<Option<std::borrow::Cow<'_, str>>, Reject> {
            match spec {
                None => Ok(None),
                Some(s) => row
                    .get(s)
                    .map_err(|(reason, message)| reject(Some(s), reason, message)),
            }
        };
        let customer_id = get(&f.customer_id)?;
        let account = get(&f.account_number)?;
        let external_id = self
            .key
            .build(|name| match name {
                "customer_id" => customer_id.as_deref(),
                "account_number" => account.as_deref(),
                _ => None,
            })
            .map_err(|e| {
                let col = match &e {
                    dedupd_core::KeyError::Missing(n) if n == "account_number" => {
                        f.account_number.as_deref()
                    }
                    _ => f.customer_id.as_deref(),
                };
                reject(col, Reason::MissingKey, e.to_string())
            })?;

        let ts_raw = get(&Some(f.updated_at.clone()))?;
        let updated_at = parse_timestamp(ts_raw.as_deref().unwrap_or(""), &src.timestamp)
            .map_err(|e| reject(Some(&f.updated_at), Reason::BadTimestamp, e.to_string()))?;

        let mut rec = ContactRecord::new(updated_at);
        rec.set(
            Field::CustomerId,
            customer_id.as_deref().and_then(text::clean_opt),
        );
        rec.set(
            Field::AccountNumber,
            account.as_deref().and_then(text::clean_opt),
        );

        if let Some(raw) = get(&f.phone)? {
            let phone = normalize_phone(&raw, src.region)
                .map_err(|e| reject(f.phone.as_deref(), Reason::InvalidPhone, e.to_string()))?;
            rec.set(Field::PhoneE164, phone);
        }
        if let Some(raw) = get(&f.email)? {
            let email = normalize_email(&raw)
                .map_err(|e| reject(f.email.as_deref(), Reason::InvalidEmail, e.to_string()))?;
            rec.set(Field::Email, email);
        }
        let first = get(&f.first_name)?;
        let last = get(&f.last_name)?;
        let (first, last) =
            row_rules::person_names(first.as_deref(), last.as_deref(), || get(&f.full_name))?;
        rec.set(Field::FirstName, first);
        rec.set(Field::LastName, last);
        if !src.do_not_call_values.is_empty()
            && let Some(status) = get(&f.status)?
        {
            rec.do_not_call = row_rules::is_do_not_call(&status, &src.do_not_call_values);
        }
        Ok((external_id, rec))
    }
}

impl RowSink for Collector<'_> {
    fn header(&mut self, names: &[String]) -> Result<(), String> {
        check_header(self.src, names)
    }

    fn row(&mut self, line: u64, row: &dyn Row) {
        self.records_read += 1;
        match self.build(line, row) {
            Ok((id, rec)) => match self.contacts.get_mut(&id) {
                Some(c) => {
                    c.absorb(&Contact::from_record(id, rec));
                }
                None => {
                    self.contacts
                        .insert(id.clone(), Box::new(Contact::from_record(id, rec)));
                }
            },
            Err(r) => self.rejects.push(r),
        }
    }

    fn reject(&mut self, reject: Reject) {
        self.records_read += 1;
        self.rejects.push(reject);
    }
}
