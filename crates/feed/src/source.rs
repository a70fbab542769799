//! A feed source (`[[source]]` of the config file): where it is, how it is written, and where
//! each contact field is found; checked once, before any row is read.

use std::path::{Path, PathBuf};

use dedupd_core::ExternalIdBuilder;
use dedupd_core::normalize::Region;
use dedupd_core::time::TimestampFormat;
use encoding_rs::Encoding;
use serde::Deserialize;

use crate::options::{csv_delimiter, text_encoding, timestamp_format};

/// Input format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// One top-level JSON array of objects (streamed, never loaded whole).
    Json,
}

/// `[[source]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A short name used in rejects and reports.
    pub name: String,
    /// File path, relative to the config file; `-` reads standard input.
    pub path: String,
    /// `csv`, `ndjson` or `json`.
    pub format: Format,
    /// Text encoding label (WHATWG): `utf-8` (default), `windows-1252`, `iso-8859-1`, …
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// CSV only: the field delimiter, one ASCII character (`,` default; `;`, `\t`, `|`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Region for phone numbers written in national form (ISO 3166-1 alpha-2: `US`, `GB`,
    /// `DE`). Without it, only international numbers are accepted.
    #[serde(default)]
    pub default_region: Option<String>,
    /// How `updated_at` is written: `rfc3339`, `epoch_seconds`, `epoch_millis` or a strftime
    /// pattern such as `%Y-%m-%d %H:%M:%S` or `%d.%m.%Y %H:%M`.
    pub timestamp_format: String,
    /// UTC offset of timestamps written without one (`+01:00`); default UTC.
    #[serde(default)]
    pub timestamp_offset: Option<String>,
    /// Where each contact field is found: a CSV header name, or for JSON a top-level key or a
    /// JSON pointer (`/contact/phone`).
    pub fields: FieldMap,
    /// Values of the `status` field that mean "do not contact" (compared case-insensitively,
    /// trimmed), e.g. `["CLOSED"]`.
    #[serde(default)]
    pub do_not_call_values: Vec<String>,
}

fn default_encoding() -> String {
    "utf-8".into()
}

/// `[source.fields]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// The source's customer id.
    pub customer_id: Option<String>,
    /// The account number.
    pub account_number: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// A full name, split into first (first word) and last (the rest) when first/last are not
    /// mapped or empty.
    pub full_name: Option<String>,
    /// Phone number, any format.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// The record's last-update time (required: field-level merge orders by it).
    pub updated_at: String,
    /// A status column; see `do_not_call_values`.
    pub status: Option<String>,
}

/// A validated source, ready to read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its name.
    pub name: String,
    /// Resolved path, or `None` for stdin.
    pub path: Option<PathBuf>,
    /// Format.
    pub format: Format,
    /// Encoding.
    pub encoding: &'static Encoding,
    /// CSV delimiter.
    pub delimiter: u8,
    /// Region for national phone numbers.
    pub region: Option<Region>,
    /// Timestamp format.
    pub timestamp: TimestampFormat,
    /// Field mapping.
    pub fields: FieldMap,
    /// Uppercased status values meaning do-not-call.
    pub do_not_call_values: Vec<String>,
}

impl SourceConfig {
    /// Checks the source and resolves it for reading: `base` is the config file's folder
    /// (relative paths resolve against it), `key` the `externalId` builder (each of its fields
    /// must be mapped). An error names the key within the source (`encoding`,
    /// `fields.customer_id`, …) and why.
    pub fn validate(
        self,
        base: &Path,
        key: &ExternalIdBuilder,
    ) -> Result<Source, (String, String)> {
        let err = |name: String, reason: String| (name, reason);
        if self.name.trim().is_empty() {
            return Err(err("name".into(), "must not be empty".into()));
        }
        let encoding =
            text_encoding(&self.encoding).map_err(|reason| err("encoding".into(), reason))?;
        let delimiter = match (&self.delimiter, self.format) {
            (None, _) => b',',
            (Some(d), Format::Csv) => {
                csv_delimiter(d).map_err(|reason| err("delimiter".into(), reason))?
            }
            (Some(_), _) => {
                return Err(err(
                    "delimiter".into(),
                    "only CSV sources have a delimiter".into(),
                ));
            }
        };
        let region = self
            .default_region
            .as_deref()
            .map(str::parse::<Region>)
            .transpose()
            .map_err(|e| err("default_region".into(), e.to_string()))?;
        let timestamp = timestamp_format(&self.timestamp_format, self.timestamp_offset.as_deref())
            .map_err(|(key, reason)| err(key.into(), reason))?;
        for kf in key.fields() {
            let mapped = match kf.as_str() {
                "customer_id" => self.fields.customer_id.is_some(),
                _ => self.fields.account_number.is_some(),
            };
            if !mapped {
                return Err(err(
                    format!("fields.{kf}"),
                    "a key field must be mapped in every source".into(),
                ));
            }
        }
        if !self.do_not_call_values.is_empty() && self.fields.status.is_none() {
            return Err(err(
                "fields.status".into(),
                "do_not_call_values needs a status field".into(),
            ));
        }
        let resolved = if self.path == "-" {
            None
        } else {
            Some(base.join(&self.path))
        };
        Ok(Source {
            name: self.name,
            path: resolved,
            format: self.format,
            encoding,
            delimiter,
            region,
            timestamp,
            fields: self.fields,
            do_not_call_values: self
                .do_not_call_values
                .iter()
                .map(|v| dedupd_core::row::do_not_call_value(v))
                .collect(),
        })
    }
}
