//! The ingest configuration file (TOML).
//!
//! The structs here *are* the reference: every field's doc comment is what the README's config
//! reference says. Unknown keys are errors, and every error names the key.

use std::path::{Path, PathBuf};

use dedupd_core::ExternalIdBuilder;
use dedupd_core::normalize::Region;
use dedupd_core::time::TimestampFormat;
use encoding_rs::Encoding;
use serde::Deserialize;
use thiserror::Error;

pub use dedupd_feed::options::{csv_delimiter, text_encoding, timestamp_format};

/// A configuration problem; the message names the file and the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax or schema error (the message carries the key and line).
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The config path.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("invalid config {path}: `{key}`: {reason}")]
    Value {
        /// The config path.
        path: String,
        /// The key, e.g. `source[1].encoding`.
        key: String,
        /// Why it is refused.
        reason: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How the `externalId` is built.
    pub key: KeyConfig,
    /// Output options.
    #[serde(default)]
    pub output: OutputConfig,
    /// `sync` options.
    #[serde(default)]
    pub sync: SyncConfig,
    /// The feeds, merged in the order given (`[[source]]` tables).
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// `dedupd serve` settings (read by `serve`; accepted here so one file can hold both).
    #[serde(default)]
    pub serve: Option<super::serve_section::ServeSection>,
    /// `[notifications]` (read by `serve` and `relay`; accepted here so one file can hold all).
    #[serde(default)]
    pub notifications: Option<dedupd_notify::NotifyConfig>,
}

/// `[key]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Stable fields the `externalId` is built from, in order: `customer_id`, `account_number`.
    /// Never `phone` or `email`.
    pub fields: Vec<String>,
}

/// `[output]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Columns of `contacts.csv` after the leading `id` (= externalId) column, and the data
    /// columns `sync` writes to the contact list. Any of
    /// `customer_id`, `account_number`, `first_name`, `last_name`, `phone_e164`, `email`,
    /// `do_not_call`, `updated_at`.
    #[serde(default = "default_csv_columns")]
    pub csv_columns: Vec<String>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            csv_columns: default_csv_columns(),
        }
    }
}

fn default_csv_columns() -> Vec<String> {
    [
        "customer_id",
        "first_name",
        "last_name",
        "phone_e164",
        "email",
        "do_not_call",
        "updated_at",
    ]
    .map(String::from)
    .to_vec()
}

/// `[sync]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Seconds without any answer from the platform (connect errors, timeouts, 5xx, 429) after
    /// which `sync` stops, keeps what was accepted and exits 3 [default: 120; 0 = never give
    /// up]. `--give-up-after` overrides it.
    pub give_up_after: Option<u64>,
}

/// Columns `contacts.csv` can carry.
pub const CSV_COLUMNS: &[&str] = &[
    "customer_id",
    "account_number",
    "first_name",
    "last_name",
    "phone_e164",
    "email",
    "do_not_call",
    "updated_at",
];

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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file.
    pub path: PathBuf,
    /// The key builder.
    pub key: ExternalIdBuilder,
    /// `contacts.csv` columns after `id`.
    pub csv_columns: Vec<String>,
    /// `[sync]` options.
    pub sync: SyncConfig,
    /// Sources in order.
    pub sources: Vec<Source>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; relative source paths resolve against `path`'s folder.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: p.clone(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let value_err = |key: String, reason: String| ConfigError::Value {
            path: p.clone(),
            key,
            reason,
        };

        let key = ExternalIdBuilder::new(raw.key.fields.clone())
            .map_err(|e| value_err("key.fields".into(), e.to_string()))?;
        for f in key.fields() {
            if !matches!(f.as_str(), "customer_id" | "account_number") {
                return Err(value_err(
                    "key.fields".into(),
                    format!("unknown key field `{f}` (use customer_id and/or account_number)"),
                ));
            }
        }
        for c in &raw.output.csv_columns {
            if !CSV_COLUMNS.contains(&c.as_str()) {
                return Err(value_err(
                    "output.csv_columns".into(),
                    format!("unknown column `{c}` (one of {})", CSV_COLUMNS.join(", ")),
                ));
            }
        }
        if raw.sources.is_empty() {
            return Err(value_err(
                "source".into(),
                "at least one [[source]] is needed".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut sources = Vec::with_capacity(raw.sources.len());
        for (i, s) in raw.sources.into_iter().enumerate() {
            let k = |name: &str| format!("source[{i}].{name}");
            if s.name.trim().is_empty() {
                return Err(value_err(k("name"), "must not be empty".into()));
            }
            if sources.iter().any(|o: &Source| o.name == s.name) {
                return Err(value_err(
                    k("name"),
                    format!("duplicate source name `{}`", s.name),
                ));
            }
            let encoding =
                text_encoding(&s.encoding).map_err(|reason| value_err(k("encoding"), reason))?;
            let delimiter = match (&s.delimiter, s.format) {
                (None, _) => b',',
                (Some(d), Format::Csv) => {
                    csv_delimiter(d).map_err(|reason| value_err(k("delimiter"), reason))?
                }
                (Some(_), _) => {
                    return Err(value_err(
                        k("delimiter"),
                        "only CSV sources have a delimiter".into(),
                    ));
                }
            };
            let region = s
                .default_region
                .as_deref()
                .map(str::parse::<Region>)
                .transpose()
                .map_err(|e| value_err(k("default_region"), e.to_string()))?;
            let timestamp = timestamp_format(&s.timestamp_format, s.timestamp_offset.as_deref())
                .map_err(|(key, reason)| value_err(k(key), reason))?;
            for kf in key.fields() {
                let mapped = match kf.as_str() {
                    "customer_id" => s.fields.customer_id.is_some(),
                    _ => s.fields.account_number.is_some(),
                };
                if !mapped {
                    return Err(value_err(
                        k(&format!("fields.{kf}")),
                        "a key field must be mapped in every source".into(),
                    ));
                }
            }
            if !s.do_not_call_values.is_empty() && s.fields.status.is_none() {
                return Err(value_err(
                    k("fields.status"),
                    "do_not_call_values needs a status field".into(),
                ));
            }
            let resolved = if s.path == "-" {
                None
            } else {
                Some(base.join(&s.path))
            };
            sources.push(Source {
                name: s.name,
                path: resolved,
                format: s.format,
                encoding,
                delimiter,
                region,
                timestamp,
                fields: s.fields,
                do_not_call_values: s
                    .do_not_call_values
                    .iter()
                    .map(|v| dedupd_core::row::do_not_call_value(v))
                    .collect(),
            });
        }
        if sources.iter().filter(|s| s.path.is_none()).count() > 1 {
            return Err(value_err(
                "source".into(),
                "only one source can read standard input (`-`)".into(),
            ));
        }
        Ok(Config {
            path: path.to_owned(),
            key,
            csv_columns: raw.output.csv_columns,
            sync: raw.sync,
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[key]
fields = ["customer_id"]

[[source]]
name = "crm"
path = "feeds/crm.csv"
format = "csv"
delimiter = ";"
encoding = "windows-1252"
default_region = "de"
timestamp_format = "%d.%m.%Y %H:%M"
timestamp_offset = "+01:00"
fields = { customer_id = "Kundennr", phone = "Telefon", updated_at = "Geändert" }
"#;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("/etc/dedupd/feeds.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_and_resolves_relative_paths() {
        let c = Config::parse(OK, Path::new("/etc/dedupd/feeds.toml")).unwrap();
        let s = &c.sources[0];
        assert_eq!(
            s.path.as_deref(),
            Some(Path::new("/etc/dedupd/feeds/crm.csv"))
        );
        assert_eq!(s.delimiter, b';');
        assert_eq!(s.encoding.name(), "windows-1252");
        assert_eq!(s.region.unwrap().code(), "DE");
    }

    #[test]
    fn sync_give_up_after_is_read_and_unknown_sync_keys_are_named() {
        let c = Config::parse(
            &format!("{OK}\n[sync]\ngive_up_after = 30\n"),
            Path::new("/etc/dedupd/feeds.toml"),
        )
        .unwrap();
        assert_eq!(c.sync.give_up_after, Some(30));
        let none = Config::parse(OK, Path::new("/etc/dedupd/feeds.toml")).unwrap();
        assert_eq!(none.sync.give_up_after, None);
        let e = err(&format!("{OK}\n[sync]\ngive_up_afer = 30\n"));
        assert!(e.contains("give_up_afer"), "{e}");
        let e = err(&format!("{OK}\n[sync]\ngive_up_after = \"2m\"\n"));
        assert!(e.contains("give_up_after"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        assert!(
            err(&OK.replace("delimiter", "delimitr")).contains("delimitr"),
            "unknown key"
        );
        let e = err(&OK.replace("windows-1252", "klingon"));
        assert!(
            e.contains("source[0].encoding") && e.contains("klingon"),
            "{e}"
        );
        assert!(err(&OK.replace("\"de\"", "\"XX\"")).contains("source[0].default_region"));
        assert!(
            err(&OK.replace("%d.%m.%Y %H:%M", "dd.mm.yyyy")).contains("source[0].timestamp_format")
        );
        assert!(err(&OK.replace("+01:00", "Berlin")).contains("source[0].timestamp_offset"));
        assert!(err(&OK.replace("[\"customer_id\"]", "[\"email\"]")).contains("key.fields"));
        assert!(
            err(&OK.replace("customer_id = \"Kundennr\", ", ""))
                .contains("source[0].fields.customer_id")
        );
        assert!(err(&OK.replace("\";\"", "\";;\"")).contains("source[0].delimiter"));
        let missing = err(&OK.replace("timestamp_format = \"%d.%m.%Y %H:%M\"\n", ""));
        assert!(missing.contains("timestamp_format"), "{missing}");
    }

    #[test]
    fn unusable_timestamp_format_and_delimiter_are_refused_when_read() {
        for pattern in ["%Q%Q", "%H:%M", "%", "%Y-%m-%d %"] {
            let e = err(&OK.replace("%d.%m.%Y %H:%M", pattern));
            assert!(e.contains("source[0].timestamp_format"), "{pattern}: {e}");
        }
        for d in ["\\\"", "\\n", "\\r"] {
            let e = err(&OK.replace("delimiter = \";\"", &format!("delimiter = \"{d}\"")));
            assert!(e.contains("source[0].delimiter"), "{d}: {e}");
        }
        // Patterns that do read a timestamp stay accepted.
        for pattern in [
            "%Y-%m-%d",
            "%d/%m/%y %I:%M %p",
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%s",
        ] {
            let text = OK.replace("%d.%m.%Y %H:%M", pattern);
            assert!(
                Config::parse(&text, Path::new("/x/feeds.toml")).is_ok(),
                "{pattern}"
            );
        }
    }
}
