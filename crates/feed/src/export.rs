//! Reading a contact export (CSV or NDJSON, any column layout through a mapping) into the
//! matcher's records, for `merge plan`: the readers of [`crate::read`] (line ends, quoting,
//! field counts, encodings), the `[input]` options of the merge config, and the row rules of
//! the core ([`Record::from_row`]). Rows are normalized in parallel batches; every refused row
//! or value is a [`Reject`] with its line, never with its data.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};

use chrono::{DateTime, Utc};
use dedupd_core::matching::{COLUMNS, Column, Record};
use dedupd_core::time::{TimestampFormat, parse_timestamp};
use hashbrown::HashTable;
use rayon::prelude::*;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::options::{csv_delimiter, text_encoding, timestamp_format};
use crate::read::{self, Row, RowSink, describe_header};

/// An export that cannot be read (rows that cannot be used are rejects, not errors).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An `[input]` option is not usable.
    #[error("`input.{key}`: {reason}")]
    Option {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The file could not be opened.
    #[error("opening {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read to the end.
    #[error("reading {name}")]
    Read {
        /// The input's name.
        name: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV file without even a header row.
    #[error("{name} is empty: it has no header row")]
    Empty {
        /// The input's name.
        name: String,
    },
    /// The columns do not fit the mapping (names columns, never values).
    #[error("{0}")]
    Layout(String),
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Comma-separated (or another delimiter) with a header line.
    #[default]
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// `[input]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// The export file (relative to the config file); `--input` overrides it.
    pub path: Option<PathBuf>,
    /// `csv` or `ndjson` [default: from the file extension, else csv].
    pub format: Option<InputFormat>,
    /// CSV delimiter [default: `,`].
    pub delimiter: Option<char>,
    /// The file's character encoding, a WHATWG label (`windows-1252`, `iso-8859-1`, …)
    /// [default: UTF-8].
    pub encoding: Option<String>,
    /// Country for records without one (national phone numbers need it).
    pub default_country: Option<String>,
    /// How `updated_at` is written: `rfc3339` [default], `epoch_seconds`, `epoch_millis` or a
    /// strftime pattern such as `%d.%m.%Y %H:%M`.
    pub timestamp_format: Option<String>,
    /// UTC offset of pattern timestamps without one [default: `+00:00`].
    pub timestamp_offset: Option<String>,
    /// Our column name → the input's column name, for layouts other than the defaults.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

/// A record that could not be used, with where and why. Never carries the record's data.
#[derive(Debug, Clone, Serialize)]
pub struct Reject {
    /// 1-based line of the input.
    pub line: u64,
    /// The record id, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The field at fault.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// Records read from an export, plus what was refused.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records, in input order.
    pub records: Vec<Record>,
    /// Refused records (the record is left out) and dropped values (the record is kept).
    pub rejects: Vec<Reject>,
    /// The ids taken so far (the first record of an id wins), as positions in `records`:
    /// no copy of any id is kept.
    seen: HashTable<u32>,
}

/// `[input]` options once checked: what the reader and the normalizer use.
struct InputSettings {
    delimiter: u8,
    encoding: &'static encoding_rs::Encoding,
    timestamp: TimestampFormat,
}

impl InputConfig {
    /// Checks every option that needs parsing, before any row is read; an error names the key
    /// at fault.
    pub fn check(&self) -> Result<(), ExportError> {
        self.settings().map(drop)
    }

    /// Checks the options that need parsing; an error names the key at fault.
    fn settings(&self) -> Result<InputSettings, ExportError> {
        let option = |key: &'static str| move |reason: String| ExportError::Option { key, reason };
        let delimiter = csv_delimiter(&self.delimiter.unwrap_or(',').to_string())
            .map_err(option("delimiter"))?;
        let encoding = match &self.encoding {
            Some(label) => text_encoding(label).map_err(option("encoding"))?,
            None => encoding_rs::UTF_8,
        };
        let timestamp = timestamp_format(
            self.timestamp_format.as_deref().unwrap_or("rfc3339"),
            self.timestamp_offset.as_deref(),
        )
        .map_err(|(key, reason)| ExportError::Option { key, reason })?;
        Ok(InputSettings {
            delimiter,
            encoding,
            timestamp,
        })
    }
}

/// Our columns in `COLUMNS` order, then `updated_at`.
const SLOTS: usize = COLUMNS.len() + 1;
const UPDATED_AT: usize = COLUMNS.len();

fn slot_name(i: usize) -> &'static str {
    COLUMNS.get(i).map_or("updated_at", |c| c.name())
}

struct Layout {
    /// The input's name of each slot's column, when the input has it.
    names: [Option<String>; SLOTS],
    ts_format: TimestampFormat,
    default_country: String,
}

impl Layout {
    /// `header`: a CSV file's column names; `None` for NDJSON, where any key may be present.
    fn new(
        header: Option<&[String]>,
        cfg: &InputConfig,
        ts_format: TimestampFormat,
    ) -> Result<Layout, String> {
        let theirs = |ours: &str| {
            cfg.columns
                .get(ours)
                .map_or(ours, String::as_str)
                .to_owned()
        };
        let names: [Option<String>; SLOTS] = std::array::from_fn(|i| {
            let name = theirs(slot_name(i));
            header.is_none_or(|h| h.contains(&name)).then_some(name)
        });
        if names[Column::RecordId as usize].is_none() {
            return Err(format!(
                "the input has no record id column `{}` (map another column with [input.columns] record_id = \"…\"; {})",
                theirs("record_id"),
                describe_header(header.unwrap_or_default())
            ));
        }
        Ok(Layout {
            names,
            ts_format,
            default_country: cfg.default_country.clone().unwrap_or_default(),
        })
    }

    /// Normalizes one row given each slot's value: the record (unless it has no id) and what
    /// was refused in it. Pure, so rows are normalized in parallel.
    fn parse<'a>(&self, line: u64, get: impl Fn(usize) -> &'a str) -> Parsed {
        let raw_ts = get(UPDATED_AT).trim();
        let ts = if raw_ts.is_empty() {
            Ok(None)
        } else {
            parse_timestamp(raw_ts, &self.ts_format)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        Parsed::row(line, std::array::from_fn(&get), &self.default_country, ts)
    }
}

/// One row's values, copied out of the reader's buffer: one string, cut at `ends` per slot.
struct RawRow {
    line: u64,
    text: String,
    ends: [usize; SLOTS],
}

impl RawRow {
    fn get(&self, slot: usize) -> &str {
        let start = if slot == 0 { 0 } else { self.ends[slot - 1] };
        &self.text[start..self.ends[slot]]
    }
}

/// Rows cut out of the input by the reader thread, to be normalized in parallel: the layout
/// they follow and the rows.
struct Batch {
    layout: Arc<Layout>,
    rows: Vec<RawRow>,
    /// Bytes of input the rows took.
    bytes: u64,
}

/// The reader thread's side of [`load`]: takes rows from ingest's readers (one CSV and one
/// JSON reader for every job), copies each row's values out of the reader's buffer and sends
/// them on in batches, so the rows are normalized while the next ones are read.
struct Collect<'a> {
    cfg: &'a InputConfig,
    ts_format: &'a TimestampFormat,
    layout: Option<Arc<Layout>>,
    batch: Vec<RawRow>,
    /// Bytes of input read since the last batch was sent (counted by the reader).
    bytes: &'a Cell<u64>,
    /// The reader's rejects (rows it could not cut into values).
    rejects: Vec<Reject>,
    to_normalize: SyncSender<Batch>,
}

impl Collect<'_> {
    fn flush(&mut self) {
        if let Some(layout) = &self.layout
            && !self.batch.is_empty()
        {
            let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            // The normalizing side ends only once this side is done: the send cannot fail.
            let _ = self.to_normalize.send(Batch {
                layout: Arc::clone(layout),
                rows,
                bytes: self.bytes.take(),
            });
        }
    }
}

impl RowSink for Collect<'_> {
    fn header(&mut self, names: &[String]) -> Result<(), String> {
        self.layout = Some(Arc::new(Layout::new(
            Some(names),
            self.cfg,
            self.ts_format.clone(),
        )?));
        Ok(())
    }

    fn row(&mut self, line: u64, row: &dyn Row) {
        let Some(layout) = &self.layout else {
            return;
        };
        let mut text = String::new();
        let mut ends = [0; SLOTS];
        for (i, name) in layout.names.iter().enumerate() {
            if let Some(name) = name {
                match row.get(name) {
                    Ok(Some(v)) => text.push_str(&v),
                    Ok(None) => {}
                    Err((_, reason)) => {
                        self.rejects.push(Reject {
                            line,
                            record_id: None,
                            field: slot_name(i).into(),
                            reason,
                        });
                        return;
                    }
                }
            }
            ends[i] = text.len();
        }
        self.batch.push(RawRow { line, text, ends });
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    fn reject(&mut self, reject: read::Reject) {
        self.rejects.push(Reject {
            line: reject.line,
            record_id: None,
            field: reject.field.unwrap_or_else(|| "(row)".into()),
            reason: reject.message,
        });
    }
}

struct Parsed {
    line: u64,
    record: Option<Record>,
    rejects: Vec<Reject>,
}

impl Parsed {
    /// One row through the core's row rules ([`Record::from_row`]), its issues as rejects.
    fn row<'a>(
        line: u64,
        raw: [&'a str; 11],
        default_country: &'a str,
        updated_at: Result<Option<DateTime<Utc>>, String>,
    ) -> Parsed {
        let id = raw[Column::RecordId as usize];
        let (record, issues) = Record::from_row(raw, default_country, updated_at);
        Parsed {
            line,
            rejects: issues
                .into_iter()
                .map(|i| Reject {
                    line,
                    record_id: record.as_ref().map(|_| id.trim().to_owned()),
                    field: i.field.into(),
                    reason: i.reason,
                })
                .collect(),
            record,
        }
    }
}

impl Loaded {
    /// Takes one row of values (in [`COLUMNS`] order) through the row rules
    /// ([`Record::from_row`]): for records that come from elsewhere than a file, such as a
    /// platform's directory. `line` numbers it in rejects.
    pub fn push_row<'a>(
        &mut self,
        line: u64,
        raw: [&'a str; 11],
        default_country: &'a str,
        updated_at: Result<Option<DateTime<Utc>>, String>,
    ) {
        self.extend(vec![Parsed::row(line, raw, default_country, updated_at)]);
    }

    /// Takes parsed rows in input order; the first record of an id wins.
    fn extend(&mut self, parsed: Vec<Parsed>) {
        let Self {
            records,
            rejects,
            seen,
        } = self;
        let hash = |id: &str| FxBuildHasher.hash_one(id);
        for p in parsed {
            rejects.extend(p.rejects);
            let Some(r) = p.record else { continue };
            let h = hash(r.id());
            let taken = seen
                .find(h, |&i| records[i as usize].id() == r.id())
                .is_some();
            let Ok(at) = u32::try_from(records.len()) else {
                rejects.push(Reject {
                    line: p.line,
                    record_id: Some(r.id().to_owned()),
                    field: "(row)".into(),
                    reason: format!("more than {} records in one input", u32::MAX),
                });
                continue;
            };
            if taken {
                rejects.push(Reject {
                    line: p.line,
                    record_id: Some(r.id().to_owned()),
                    field: "record_id".into(),
                    reason: "duplicate id: only the first record with this id is used".into(),
                });
            } else {
                seen.insert_unique(h, at, |&i| hash(records[i as usize].id()));
                records.push(r);
            }
        }
    }

    /// Makes room for `more` records, so that a large input is not copied as it grows.
    fn reserve(&mut self, more: usize) {
        self.records.reserve(more);
        let records = &self.records;
        self.seen
            .reserve(more, |&i| FxBuildHasher.hash_one(records[i as usize].id()));
    }
}

/// Rows normalized per parallel batch.
const BATCH: usize = 1 << 15;

/// Reads an export with ingest's readers: the same line ends (LF, CRLF, bare CR), quoting,
/// field-count check and decoding, and rejects with their line.
pub fn load(path: &Path, cfg: &InputConfig) -> Result<Loaded, ExportError> {
    let format = cfg
        .format
        .unwrap_or_else(|| match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl") => InputFormat::Ndjson,
            _ => InputFormat::Csv,
        });
    let settings = cfg.settings()?;
    // UTF-8 passes through (bad bytes are found per row), any declared encoding is decoded on
    // the fly.
    let file = read::open((path.as_os_str() != "-").then_some(path), settings.encoding).map_err(
        |source| ExportError::Open {
            path: path.to_owned(),
            source,
        },
    )?;
    let name = path.display().to_string();
    let ndjson_layout = match format {
        InputFormat::Csv => None,
        InputFormat::Ndjson => Some(Arc::new(
            Layout::new(None, cfg, settings.timestamp.clone()).map_err(ExportError::Layout)?,
        )),
    };
    let size = (path.as_os_str() != "-")
        .then(|| std::fs::metadata(path).ok())
        .flatten()
        .map(|m| m.len());
    // One thread reads and cuts rows; this one normalizes them in parallel batches (two
    // batches may wait between them) and keeps the records in input order.
    let (to_normalize, batches) = sync_channel::<Batch>(2);
    let (read, mut out) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let bytes = Cell::new(0u64);
            let count = |n: u64| bytes.set(bytes.get() + n);
            let mut sink = Collect {
                cfg,
                ts_format: &settings.timestamp,
                layout: ndjson_layout,
                batch: Vec::with_capacity(BATCH),
                bytes: &bytes,
                rejects: Vec::new(),
                to_normalize,
            };
            let read = match format {
                InputFormat::Csv => {
                    read::read_csv(&name, file, settings.delimiter, &mut sink, count)
                }
                InputFormat::Ndjson => read::read_ndjson(&name, file, &mut sink, count),
            };
            sink.flush();
            (read, sink.layout.is_some(), sink.rejects)
        });
        let mut out = Loaded::default();
        let mut first = true;
        for batch in batches {
            // Room for the whole input at the first batch's bytes per row (a file's size is
            // known; a pipe's is not): the records are not copied as they grow.
            if std::mem::take(&mut first)
                && let Some(size) = size
                && batch.bytes > 0
            {
                let rows = size as f64 * batch.rows.len() as f64 / batch.bytes as f64;
                out.reserve((rows * 1.05) as usize + BATCH);
            }
            let parsed: Vec<Parsed> = batch
                .rows
                .par_iter()
                .map(|r| batch.layout.parse(r.line, |i| r.get(i)))
                .collect();
            out.extend(parsed);
        }
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, out)
    });
    let (read, had_layout, rejects) = read;
    read.map_err(|source| ExportError::Read {
        name: name.clone(),
        source,
    })?;
    if !had_layout {
        return Err(ExportError::Empty { name });
    }
    out.rejects.extend(rejects);
    // Reader rejects come as they are met, normalizer rejects per batch: report in line order.
    out.rejects.sort_by_key(|r| r.line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(name: &str, text: &str) -> Result<Loaded, ExportError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        load(&path, &InputConfig::default())
    }

    /// A CSV of `n` rows (more than one batch); every `dup_every`th row repeats the id of the
    /// row before it, and row 5 has a field too many.
    fn csv(n: usize, dup_every: usize) -> String {
        let mut text = String::from("record_id,first_name,last_name,email,phone\n");
        for i in 0..n {
            let id = if i > 0 && i % dup_every == 0 {
                i - 1
            } else {
                i
            };
            if i == 5 {
                text.push_str(&format!("R{id},Ann,Lee,a{i}@example.com,,extra\n"));
            } else {
                text.push_str(&format!("R{id},Ann,Lee{i},a{i}@example.com,\n"));
            }
        }
        text
    }

    #[test]
    fn records_keep_input_order_across_batches_and_the_first_of_an_id_wins() {
        let n = 2 * BATCH + 1234;
        let loaded = load_text("contacts.csv", &csv(n, 1000)).unwrap();
        let dups = (1..n).filter(|i| i % 1000 == 0).count();
        assert_eq!(
            loaded.records.len(),
            n - dups - 1,
            "less the repeats and row 5"
        );
        // In input order, and each repeated id kept with its first row's values.
        let ids: Vec<&str> = loaded.records.iter().map(Record::id).collect();
        assert_eq!(&ids[..5], ["R0", "R1", "R2", "R3", "R4"]);
        assert_eq!(ids[5], "R6", "row 5 was refused by the reader");
        let r999 = loaded.records.iter().find(|r| r.id() == "R999").unwrap();
        assert_eq!(r999.get(Column::LastName), Some("Lee999"));
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "no id twice");
        // Rejects: the reader's (row 5, line 7) and the repeats, in line order.
        let lines: Vec<u64> = loaded.rejects.iter().map(|r| r.line).collect();
        assert!(lines.is_sorted(), "rejects in line order");
        assert_eq!(loaded.rejects.len(), dups + 1);
        assert_eq!(loaded.rejects[0].line, 7);
        assert_eq!(loaded.rejects[0].record_id, None);
        let dup = &loaded.rejects[1];
        assert_eq!(dup.line, 1002, "row 1000 is line 1002");
        assert_eq!(dup.record_id.as_deref(), Some("R999"));
        assert_eq!(dup.field, "record_id");
        assert!(dup.reason.starts_with("duplicate id"), "{}", dup.reason);
    }

    #[test]
    fn ndjson_reads_the_same_way() {
        let mut text = String::new();
        for i in 0..BATCH + 10 {
            let id = if i == BATCH + 5 { 3 } else { i };
            text.push_str(&format!(
                "{{\"record_id\":\"R{id}\",\"first_name\":\"Ann\",\"email\":\"a{i}@example.com\"}}\n"
            ));
        }
        text.push_str("{not json\n");
        let loaded = load_text("contacts.ndjson", &text).unwrap();
        assert_eq!(loaded.records.len(), BATCH + 9);
        assert_eq!(loaded.records[3].get(Column::Email), Some("a3@example.com"));
        let lines: Vec<(u64, &str)> = loaded
            .rejects
            .iter()
            .map(|r| (r.line, r.field.as_str()))
            .collect();
        assert_eq!(lines[0], (BATCH as u64 + 6, "record_id"));
        assert_eq!(lines[1].0, BATCH as u64 + 11, "the broken line");
    }

    #[test]
    fn an_empty_file_and_a_header_without_ids_are_errors() {
        assert!(matches!(
            load_text("empty.csv", ""),
            Err(ExportError::Empty { .. })
        ));
        let err = load_text("noid.csv", "name,email\nAnn,a@example.com\n").unwrap_err();
        let why = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            why.as_deref().is_some_and(|w| w.contains("record_id")),
            "{err}: {why:?}"
        );
    }
}
