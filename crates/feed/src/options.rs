//! The reader options every config of a CSV or JSON input shares: delimiter, encoding,
//! timestamps. Each check names the key at fault and why.

use chrono::{FixedOffset, Offset, Utc};
use dedupd_core::time::{TimestampFormat, parse_offset};
use encoding_rs::Encoding;

/// Checks a CSV delimiter setting (`\\t` spelled out is a tab): one ASCII character that can
/// separate fields, so not the quote character nor a line break. Shared by every CSV reader's
/// config.
pub fn csv_delimiter(value: &str) -> Result<u8, String> {
    let d = if value == "\\t" { "\t" } else { value };
    match d.as_bytes() {
        [b'"'] => Err("the quote character `\"` cannot be the delimiter".into()),
        [b'\n' | b'\r'] => Err("a line break cannot be the delimiter".into()),
        [b] if b.is_ascii() => Ok(*b),
        _ => Err("must be one ASCII character".into()),
    }
}

/// Checks a text-encoding setting: a WHATWG label (`utf-8`, `windows-1252`, …). Shared by
/// every reader's config.
pub fn text_encoding(label: &str) -> Result<&'static Encoding, String> {
    Encoding::for_label(label.trim().as_bytes())
        .ok_or_else(|| format!("unknown encoding `{label}` (not a WHATWG encoding label)"))
}

/// Checks the timestamp settings of a reader's config: a format name (`rfc3339`,
/// `epoch_seconds`, `epoch_millis` or a strftime pattern) and the UTC offset of pattern
/// timestamps without one [default `+00:00`]. An error names the key at fault
/// (`timestamp_format` or `timestamp_offset`) and why. Shared by every reader's config.
pub fn timestamp_format(
    format: &str,
    offset: Option<&str>,
) -> Result<TimestampFormat, (&'static str, String)> {
    let offset: FixedOffset = match offset {
        None => Utc.fix(),
        Some(o) => parse_offset(o).ok_or_else(|| {
            (
                "timestamp_offset",
                format!("`{o}` is not an offset like +01:00"),
            )
        })?,
    };
    TimestampFormat::from_name(format.trim(), offset)
        .map_err(|e| ("timestamp_format", e.to_string()))
}
