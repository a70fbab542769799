//! The contact record the matcher reads, stored compactly.
//!
//! A million records must fit well under a gigabyte with everything the plan needs, so a record
//! keeps all its columns in one string with offsets instead of eleven `String`s (one allocation
//! instead of eleven, 16 + 44 bytes of overhead instead of 264).

use chrono::{DateTime, Utc};

use crate::normalize::phone::{self, Validity};
use crate::normalize::{email::normalize_email, name::normalize_name, text};

/// The columns of a contact record, in the order of the sample export
/// (`record_id,source,first_name,last_name,email,phone,street,city,region,postcode,country`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// The record's id: the External Contact id when the data came from Genesys Cloud.
    RecordId,
    /// Where the record came from (`crm`, `ivr`, …). Informational only.
    Source,
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// E-mail address.
    Email,
    /// Phone number (any format; E.164 after normalization).
    Phone,
    /// Street line.
    Street,
    /// City.
    City,
    /// State, county or province.
    Region,
    /// Postal code.
    Postcode,
    /// ISO 3166-1 alpha-2 country; also the default region of national phone numbers.
    Country,
}

/// Every column, in storage order.
pub const COLUMNS: [Column; 11] = [
    Column::RecordId,
    Column::Source,
    Column::FirstName,
    Column::LastName,
    Column::Email,
    Column::Phone,
    Column::Street,
    Column::City,
    Column::Region,
    Column::Postcode,
    Column::Country,
];

/// The columns that carry a contact's data (everything but the id and the source).
pub const DATA_COLUMNS: &[Column] = COLUMNS.split_at(2).1;

impl Column {
    /// The column's name in files, plans and reports (`first_name`, …).
    pub fn name(self) -> &'static str {
        match self {
            Column::RecordId => "record_id",
            Column::Source => "source",
            Column::FirstName => "first_name",
            Column::LastName => "last_name",
            Column::Email => "email",
            Column::Phone => "phone",
            Column::Street => "street",
            Column::City => "city",
            Column::Region => "region",
            Column::Postcode => "postcode",
            Column::Country => "country",
        }
    }

    /// The column with this name, if any.
    pub fn from_name(name: &str) -> Option<Column> {
        COLUMNS.into_iter().find(|c| c.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The longest value a data column may hold, in characters. Longer values are no contact data
/// (names, e-mails and streets are far shorter; the platform keeps e-mails to 256 characters) and
/// would only make comparisons slow: they are dropped and reported, and the record is kept.
pub const MAX_VALUE_CHARS: usize = 256;

/// One contact record with normalized display values.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    buf: Box<str>,
    ends: [u32; 11],
    /// When the record was last modified (UTC epoch seconds), if known.
    pub updated_at: Option<i64>,
}

impl std::fmt::Debug for Record {
    // Only the id: the rest is personal data that has no place in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("record_id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Why a value did not survive normalization. The record is kept; the value is dropped from
/// matching and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The column whose value was dropped.
    pub column: Column,
    /// A short reason, free of personal data.
    pub reason: &'static str,
}

/// Why a row gave no record or lost a value: the field and the reason, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    /// Our field name (`record_id`, `updated_at`, `email`, …).
    pub field: &'static str,
    /// A short reason, free of personal data.
    pub reason: String,
}

impl Record {
    /// The record of one input row (a file's row or a platform's customer record): `raw` in
    /// [`COLUMNS`] order, `default_country` standing in for an empty country, `updated_at` as
    /// the caller parsed it (a parse error is an issue; the record is kept without it). No
    /// record when the row has no id; every value left out is an issue.
    pub fn from_row<'a>(
        mut raw: [&'a str; 11],
        default_country: &'a str,
        updated_at: Result<Option<DateTime<Utc>>, String>,
    ) -> (Option<Record>, Vec<RowIssue>) {
        if raw[Column::Country.index()].trim().is_empty() {
            raw[Column::Country.index()] = default_country;
        }
        let mut issues = Vec::new();
        if raw[Column::RecordId.index()].trim().is_empty() {
            issues.push(RowIssue {
                field: "record_id",
                reason: "missing: every record needs an id".into(),
            });
            return (None, issues);
        }
        let updated_at = updated_at.unwrap_or_else(|e| {
            issues.push(RowIssue {
                field: "updated_at",
                reason: format!("{e}; value ignored, record kept"),
            });
            None
        });
        let (record, dropped) = Record::from_raw(raw, updated_at);
        issues.extend(dropped.into_iter().map(|d| RowIssue {
            field: d.column.name(),
            reason: format!("{}; value ignored, record kept", d.reason),
        }));
        (Some(record), issues)
    }

    /// Builds a record from raw column values (in [`COLUMNS`] order), normalizing each value with
    /// the same `core` functions every job uses: names by [`normalize_name`], e-mails by
    /// [`normalize_email`], phones to E.164 by [`phone::normalize_phone_as`] with the record's
    /// country as the default region (a *possible* number is enough to match on), and the rest by [`text::clean`]. Values that do not
    /// normalize (an invalid phone, an e-mail without `@`) or that are longer than
    /// [`MAX_VALUE_CHARS`] are dropped and listed in the second
    /// element, so the caller can report them; the record itself is always kept.
    pub fn from_raw(raw: [&str; 11], updated_at: Option<DateTime<Utc>>) -> (Record, Vec<Dropped>) {
        let mut dropped = Vec::new();
        let country = text::clean(raw[Column::Country.index()]).to_ascii_uppercase();
        let region = country.parse::<phone::Region>().ok();
        // The values go straight into the record's one buffer, each normalized in place where
        // its rule allows (no string per value).
        let mut buf = String::with_capacity(raw.iter().map(|v| v.len()).sum::<usize>() + 4);
        let mut ends = [0u32; 11];
        for col in COLUMNS {
            let v = raw[col.index()];
            // Bytes first: only a long value needs its characters counted.
            if DATA_COLUMNS.contains(&col)
                && v.len() > MAX_VALUE_CHARS
                && v.trim().chars().count() > MAX_VALUE_CHARS
            {
                dropped.push(Dropped {
                    column: col,
                    reason: "longer than 256 characters",
                });
            } else {
                match col {
                    Column::FirstName | Column::LastName => {
                        if let Some(name) = normalize_name(v) {
                            buf.push_str(&name);
                        }
                    }
                    Column::Email => match normalize_email(v) {
                        Ok(e) => buf.push_str(e.as_deref().unwrap_or_default()),
                        Err(_) => dropped.push(Dropped {
                            column: col,
                            reason: "not an e-mail address",
                        }),
                    },
                    Column::Phone => {
                        match phone::normalize_phone_as(v, region, Validity::Possible) {
                            Ok(p) => buf.push_str(p.as_deref().unwrap_or_default()),
                            Err(_) => dropped.push(Dropped {
                                column: col,
                                reason: "not a valid phone number",
                            }),
                        }
                    }
                    Column::Country => buf.push_str(&country),
                    Column::Postcode if v.is_ascii() => {
                        let start = buf.len();
                        text::clean_into(v, &mut buf);
                        buf[start..].make_ascii_uppercase();
                    }
                    Column::Postcode => buf.push_str(&text::clean(v).to_uppercase()),
                    _ => text::clean_into(v, &mut buf),
                }
            }
            ends[col.index()] = end_of(&buf);
        }
        (Record::from_parts(buf, ends, updated_at), dropped)
    }

    /// Builds a record from values taken as they are (already normalized).
    pub fn new(values: [&str; 11], updated_at: Option<DateTime<Utc>>) -> Record {
        let mut buf = String::with_capacity(values.iter().map(|v| v.len()).sum());
        let mut ends = [0u32; 11];
        for (i, v) in values.iter().enumerate() {
            buf.push_str(v);
            ends[i] = end_of(&buf);
        }
        Record::from_parts(buf, ends, updated_at)
    }

    /// A record from its values written one after another into `buf`, each ending at `ends`.
    fn from_parts(buf: String, ends: [u32; 11], updated_at: Option<DateTime<Utc>>) -> Record {
        Record {
            buf: buf.into_boxed_str(),
            ends,
            updated_at: updated_at.map(|t| t.timestamp()),
        }
    }

    /// The value of a column; `None` when empty.
    pub fn get(&self, c: Column) -> Option<&str> {
        let i = c.index();
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        self.buf.get(start..end).filter(|s| !s.is_empty())
    }

    /// The record id (empty string when missing).
    pub fn id(&self) -> &str {
        self.get(Column::RecordId).unwrap_or("")
    }

    /// How many data columns have a value.
    pub fn filled(&self) -> usize {
        DATA_COLUMNS
            .iter()
            .filter(|&&c| self.get(c).is_some())
            .count()
    }

    /// The modification time as a UTC date-time.
    pub fn updated_at_utc(&self) -> Option<DateTime<Utc>> {
        self.updated_at
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
    }
}

/// Where the value just written to a record's buffer ends (values are capped far below 4 GiB).
fn end_of(buf: &str) -> u32 {
    u32::try_from(buf.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_in_buffer_order() {
        // `from_raw` writes the values in `COLUMNS` order into one buffer cut by `ends`.
        for (i, c) in COLUMNS.iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
    }

    #[test]
    fn from_raw_is_each_value_normalized_on_its_own() {
        let raw = [
            " R1 ",
            "crm",
            "  ａnn ",
            "O'BRIEN",
            " Ann.OBrien@Example.COM ",
            "(415) 555-2671",
            "12\tMain   St",
            "Springfield",
            "",
            " sw1a 1aa ",
            " gb ",
        ];
        let (r, dropped) = Record::from_raw(raw, None);
        assert!(dropped.is_empty());
        let region = "GB".parse::<phone::Region>().ok();
        let want = [
            text::clean(raw[0]),
            text::clean(raw[1]),
            normalize_name(raw[2]).unwrap_or_default(),
            normalize_name(raw[3]).unwrap_or_default(),
            normalize_email(raw[4]).unwrap().unwrap_or_default(),
            phone::normalize_phone_as(raw[5], region, Validity::Possible)
                .map(Option::unwrap_or_default)
                .unwrap_or_default(),
            text::clean(raw[6]),
            text::clean(raw[7]),
            String::new(),
            "SW1A 1AA".to_owned(),
            "GB".to_owned(),
        ];
        for c in COLUMNS {
            assert_eq!(r.get(c).unwrap_or(""), want[c.index()], "{c:?}");
        }
        // A value that does not normalize is empty and listed; the others stay in place.
        let mut bad = raw;
        bad[4] = "no at sign";
        let (r, dropped) = Record::from_raw(bad, None);
        assert_eq!(dropped.len(), 1);
        assert_eq!(r.get(Column::Email), None);
        assert_eq!(r.get(Column::Phone), Some(want[5].as_str()));
        assert_eq!(r.get(Column::Postcode), Some("SW1A 1AA"));
    }

    fn row<'a>(id: &'a str, email: &'a str, country: &'a str) -> [&'a str; 11] {
        [id, "crm", "Ann", "Lee", email, "", "", "", "", "", country]
    }

    #[test]
    fn a_row_without_an_id_gives_no_record() {
        let (r, issues) = Record::from_row(row("  ", "a@b.co", ""), "", Ok(None));
        assert!(r.is_none());
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field, "record_id");
    }

    #[test]
    fn refused_values_and_timestamps_are_issues_and_the_record_is_kept() {
        let (r, issues) = Record::from_row(
            row("C1", "not-an-address", ""),
            "IE",
            Err("not RFC 3339".into()),
        );
        let r = r.unwrap();
        assert_eq!(r.get(Column::Email), None);
        assert_eq!(r.get(Column::Country), Some("IE"), "the default stands in");
        let fields: Vec<&str> = issues.iter().map(|i| i.field).collect();
        assert_eq!(fields, ["updated_at", "email"]);
        assert!(issues.iter().all(|i| !i.reason.contains("not-an-address")));
        assert!(issues[0].reason.ends_with("value ignored, record kept"));
    }

    #[test]
    fn a_row_country_wins_over_the_default() {
        let (r, issues) = Record::from_row(row("C2", "a@b.co", "fr"), "IE", Ok(None));
        assert!(issues.is_empty());
        assert_eq!(r.unwrap().get(Column::Country), Some("FR"));
    }

    #[test]
    fn normalizes_with_the_shared_functions() {
        let (r, dropped) = Record::from_raw(
            [
                "C1",
                "crm",
                "  TRACEY ",
                "o'brien",
                "Tracey.OBrien@Example.COM",
                "(415) 555-2671",
                "1 Main St.",
                "Springfield",
                "IL",
                "62701",
                "us",
            ],
            None,
        );
        assert!(dropped.is_empty());
        assert_eq!(r.id(), "C1");
        assert_eq!(r.get(Column::FirstName), Some("Tracey"));
        assert_eq!(r.get(Column::LastName), Some("O'Brien"));
        assert_eq!(r.get(Column::Email), Some("tracey.obrien@example.com"));
        assert_eq!(r.get(Column::Phone), Some("+14155552671"));
        assert_eq!(r.get(Column::Country), Some("US"));
        assert_eq!(r.filled(), 9);
    }

    #[test]
    fn bad_values_are_dropped_and_reported_not_fatal() {
        let (r, dropped) = Record::from_raw(
            [
                "C2",
                "",
                "Ann",
                "",
                "not-an-email",
                "555-0100",
                "",
                "",
                "",
                "",
                "US",
            ],
            None,
        );
        assert_eq!(r.get(Column::Email), None);
        assert_eq!(r.get(Column::Phone), None);
        assert_eq!(dropped.len(), 2);
        assert_eq!(format!("{r:?}"), "Record { record_id: \"C2\", .. }");
    }

    #[test]
    fn absurdly_long_values_are_dropped_and_reported() {
        let name = "Bartholomew".repeat(200);
        let street = format!("1 {} Street", "Long".repeat(100));
        let fine = "A".repeat(MAX_VALUE_CHARS);
        let (r, dropped) = Record::from_raw(
            ["C3", "", &name, &fine, "", "", &street, "", "", "", "US"],
            None,
        );
        assert_eq!(r.get(Column::FirstName), None);
        assert_eq!(r.get(Column::Street), None);
        assert_eq!(r.get(Column::LastName).map(str::len), Some(MAX_VALUE_CHARS));
        let got: Vec<(Column, &str)> = dropped.iter().map(|d| (d.column, d.reason)).collect();
        assert_eq!(
            got,
            vec![
                (Column::FirstName, "longer than 256 characters"),
                (Column::Street, "longer than 256 characters"),
            ]
        );
    }
}
