//! Source timestamps to UTC.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use thiserror::Error;

/// How one source writes its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    /// RFC 3339 / ISO 8601 with an offset or `Z` (`2024-03-04T06:10:00-08:00`).
    Rfc3339,
    /// Seconds since the Unix epoch, integer or fractional (`1712764500`).
    EpochSeconds,
    /// Milliseconds since the Unix epoch (`1712764500000`).
    EpochMillis,
    /// A `strftime` pattern (`%Y-%m-%d %H:%M:%S`, `%d.%m.%Y %H:%M`). A pattern without an offset
    /// is read in the source's fixed `offset` (UTC unless configured); one with `%z` carries its
    /// own. A pattern with only a date means midnight.
    Pattern {
        pattern: String,
        offset: FixedOffset,
    },
}

impl TimestampFormat {
    /// Parses a format name: `rfc3339`, `epoch_seconds`, `epoch_millis`, or a strftime pattern
    /// (anything containing `%`). A pattern is refused when it is not valid strftime (`%Q`) or
    /// cannot read back a timestamp it wrote (`%H:%M` has no date): either would reject every
    /// row of a source, so it is a configuration error instead.
    pub fn from_name(name: &str, offset: FixedOffset) -> Result<Self, FormatNameError> {
        match name {
            "rfc3339" | "iso8601" => Ok(Self::Rfc3339),
            "epoch_seconds" | "epoch" | "unix" => Ok(Self::EpochSeconds),
            "epoch_millis" | "unix_ms" => Ok(Self::EpochMillis),
            p if p.contains('%') => {
                check_pattern(p, offset)?;
                Ok(Self::Pattern {
                    pattern: p.to_owned(),
                    offset,
                })
            }
            _ => Err(FormatNameError::Unknown),
        }
    }
}

/// Why a timestamp format name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FormatNameError {
    /// Neither a known name nor a pattern.
    #[error("use rfc3339, epoch_seconds, epoch_millis or a strftime pattern with %")]
    Unknown,
    /// A `%` directive strftime does not know, or a lone `%`.
    #[error("`{0}` is not a valid strftime pattern")]
    InvalidPattern(String),
    /// Valid strftime, but what it writes cannot be read back as a point in time.
    #[error("the pattern `{0}` cannot read a timestamp (it needs at least a year, month and day)")]
    Incomplete(String),
}

/// Writes a sample time with `pattern` and reads it back: a pattern that fails this would fail
/// on every row.
fn check_pattern(pattern: &str, offset: FixedOffset) -> Result<(), FormatNameError> {
    use chrono::format::{Item, StrftimeItems};
    use std::fmt::Write;
    if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
        return Err(FormatNameError::InvalidPattern(pattern.to_owned()));
    }
    let incomplete = || FormatNameError::Incomplete(pattern.to_owned());
    let sample = NaiveDate::from_ymd_opt(2024, 3, 7)
        .and_then(|d| d.and_hms_opt(22, 59, 58))
        .and_then(|n| offset.from_local_datetime(&n).single())
        .ok_or_else(incomplete)?;
    let mut text = String::new();
    write!(text, "{}", sample.format(pattern))
        .map_err(|_| FormatNameError::InvalidPattern(pattern.to_owned()))?;
    parse_pattern(&text, pattern, offset)
        .map(|_| ())
        .map_err(|_| incomplete())
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Nothing to parse.
    #[error("missing timestamp")]
    Missing,
    /// The text does not match the source's declared format.
    #[error("does not match the format {0}")]
    Format(String),
    /// The value is outside the range dedupd accepts (years 1970–9999).
    #[error("out of range")]
    OutOfRange,
}

/// Parses `raw` with `format` and returns it in UTC.
pub fn parse_timestamp(
    raw: &str,
    format: &TimestampFormat,
) -> Result<DateTime<Utc>, TimestampError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(TimestampError::Missing);
    }
    let dt = match format {
        TimestampFormat::Rfc3339 => DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| TimestampError::Format("rfc3339".into()))?,
        TimestampFormat::EpochSeconds => {
            let secs: f64 = s
                .parse()
                .map_err(|_| TimestampError::Format("epoch_seconds".into()))?;
            from_epoch_millis((secs * 1000.0).round())?
        }
        TimestampFormat::EpochMillis => {
            let ms: f64 = s
                .parse()
                .map_err(|_| TimestampError::Format("epoch_millis".into()))?;
            from_epoch_millis(ms.round())?
        }
        TimestampFormat::Pattern { pattern, offset } => parse_pattern(s, pattern, *offset)?,
    };
    if dt.timestamp() < 0 || dt.timestamp() > 253_402_300_799 {
        return Err(TimestampError::OutOfRange);
    }
    Ok(dt)
}

fn from_epoch_millis(ms: f64) -> Result<DateTime<Utc>, TimestampError> {
    if !ms.is_finite() || !(0.0..=253_402_300_799_000.0).contains(&ms) {
        return Err(TimestampError::OutOfRange);
    }
    // The range check above makes the cast exact.
    #[allow(clippy::cast_possible_truncation)]
    let ms = ms as i64;
    DateTime::from_timestamp_millis(ms).ok_or(TimestampError::OutOfRange)
}

fn parse_pattern(
    s: &str,
    pattern: &str,
    offset: FixedOffset,
) -> Result<DateTime<Utc>, TimestampError> {
    let err = || TimestampError::Format(pattern.to_owned());
    if pattern.contains("%z") || pattern.contains("%:z") {
        return DateTime::parse_from_str(s, pattern)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| err());
    }
    let naive = match NaiveDateTime::parse_from_str(s, pattern) {
        Ok(n) => n,
        Err(_) => NaiveDate::parse_from_str(s, pattern)
            .map_err(|_| err())?
            .and_hms_opt(0, 0, 0)
            .ok_or_else(err)?,
    };
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(err)
}

/// Parses a fixed UTC offset such as `+01:00`, `-0800`, `Z` or `UTC`.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    #[test]
    fn parses_every_declared_format() {
        let pat = |p: &str| TimestampFormat::from_name(p, utc()).unwrap();
        assert_eq!(
            parse_timestamp("2024-03-04T06:10:00-08:00", &TimestampFormat::Rfc3339)
                .unwrap()
                .to_rfc3339(),
            "2024-03-04T14:10:00+00:00"
        );
        assert_eq!(
            parse_timestamp("1712764500", &TimestampFormat::EpochSeconds)
                .unwrap()
                .to_rfc3339(),
            "2024-04-10T15:55:00+00:00"
        );
        assert_eq!(
            parse_timestamp("1712764500000", &TimestampFormat::EpochMillis)
                .unwrap()
                .to_rfc3339(),
            "2024-04-10T15:55:00+00:00"
        );
        assert_eq!(
            parse_timestamp("2024-04-23 10:25:00", &pat("%Y-%m-%d %H:%M:%S"))
                .unwrap()
                .to_rfc3339(),
            "2024-04-23T10:25:00+00:00"
        );
        let berlin_winter =
            TimestampFormat::from_name("%d.%m.%Y %H:%M", parse_offset("+01:00").unwrap()).unwrap();
        assert_eq!(
            parse_timestamp("05.03.2024 14:30", &berlin_winter)
                .unwrap()
                .to_rfc3339(),
            "2024-03-05T13:30:00+00:00"
        );
        assert_eq!(
            parse_timestamp("2024-03-05", &pat("%Y-%m-%d"))
                .unwrap()
                .to_rfc3339(),
            "2024-03-05T00:00:00+00:00"
        );
    }

    #[test]
    fn refuses_bad_values() {
        assert_eq!(
            parse_timestamp(" ", &TimestampFormat::Rfc3339),
            Err(TimestampError::Missing)
        );
        assert!(parse_timestamp("yesterday", &TimestampFormat::Rfc3339).is_err());
        assert!(parse_timestamp("1e300", &TimestampFormat::EpochSeconds).is_err());
        assert!(parse_timestamp("NaN", &TimestampFormat::EpochSeconds).is_err());
        assert!(parse_timestamp("-5", &TimestampFormat::EpochSeconds).is_err());
        assert!(
            parse_timestamp(
                "31.02.2024 10:00",
                &TimestampFormat::from_name("%d.%m.%Y %H:%M", utc()).unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn patterns_that_cannot_read_a_timestamp_are_refused() {
        for p in ["%Q%Q", "%", "%Y-%m-%d %", "%H:%M", "%A", "%Y-%m"] {
            assert!(TimestampFormat::from_name(p, utc()).is_err(), "{p}");
        }
        assert_eq!(
            TimestampFormat::from_name("dd.mm.yyyy", utc()),
            Err(FormatNameError::Unknown)
        );
        for p in [
            "%Y-%m-%d",
            "%d/%m/%y %I:%M %p",
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%d.%m.%Y %H:%M",
        ] {
            assert!(TimestampFormat::from_name(p, utc()).is_ok(), "{p}");
        }
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+01:00").unwrap().local_minus_utc(), 3600);
        assert_eq!(parse_offset("-0530").unwrap().local_minus_utc(), -19800);
        assert_eq!(parse_offset("Z").unwrap().local_minus_utc(), 0);
        assert!(parse_offset("+25:00").is_none());
        assert!(parse_offset("Europe/Berlin").is_none());
    }
}
