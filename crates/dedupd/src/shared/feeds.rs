//! The ingest configuration file (TOML).
//!
//! The structs here *are* the reference: every field's doc comment is what the README's config
//! reference says. Unknown keys are errors, and every error names the key.

use std::path::{Path, PathBuf};

use dedupd_core::ExternalIdBuilder;
use serde::Deserialize;
use thiserror::Error;

pub use dedupd_feed::source::{FieldMap, Format, Source, SourceConfig};

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
    /// `[events]` (broker sources, read by `serve`; accepted here so one file can hold all).
    #[serde(default)]
    pub events: Option<dedupd_broker::EventsConfig>,
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
            if sources.iter().any(|o: &Source| o.name == s.name) {
                return Err(value_err(
                    k("name"),
                    format!("duplicate source name `{}`", s.name),
                ));
            }
            let source = s
                .validate(base, &key)
                .map_err(|(name, reason)| value_err(k(&name), reason))?;
            sources.push(source);
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
