//! Phone numbers to E.164, through one wrapper over `rlibphonenumber`.
//!
//! Why this crate: it parses full-width digits, is 2–3× faster than `phonenumber` on this
//! workload and carries newer metadata (see `CRATES.md`). Everything else in dedupd calls
//! [`normalize_phone`]; nothing else touches the library.

use std::str::FromStr;

use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat};
use thiserror::Error;

use super::text;

/// A default region for numbers written in national format (ISO 3166-1 alpha-2, e.g. `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(rlibphonenumber::Region);

impl Region {
    /// The two-letter code, uppercase.
    pub fn code(&self) -> String {
        self.0.to_string()
    }
}

impl FromStr for Region {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        match rlibphonenumber::Region::from_str(&up) {
            // Any two letters parse; only regions with numbering-plan metadata are usable.
            Ok(r) if PHONE_NUMBER_UTIL.get_country_code_for_region(r).is_some() => Ok(Region(r)),
            _ => Err(PhoneError::UnknownRegion(up)),
        }
    }
}

/// Why a phone value was refused. Messages never repeat the number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// The text is not a phone number at all.
    #[error("not a phone number")]
    NotANumber,
    /// It parses, but no numbering plan has such a number (too short, unassigned range, …).
    #[error("not a valid number for its country")]
    Invalid,
    /// The configured default region is not an ISO 3166-1 alpha-2 code the library knows.
    #[error("unknown region code {0:?}")]
    UnknownRegion(String),
}

/// Normalizes a phone number to E.164 (`+14155552671`).
///
/// - NFKC first, so full-width digits and punctuation (`（４１５）`) parse.
/// - `tel:` URIs and extensions are accepted; the extension is dropped (E.164 has none).
/// - National numbers take `default_region`'s country code; without a default region only
///   international numbers (`+…`, `00…`) are accepted.
/// - `00` is the international prefix of most of the world; when the default region's own
///   prefix differs (the US uses `011`) and the number does not parse validly as is,
///   `00…` is read as `+…`.
/// - The result must pass `is_valid` (a too-short number still parses): otherwise
///   [`PhoneError::Invalid`].
///
/// Returns `Ok(None)` for an empty value.
pub fn normalize_phone(
    raw: &str,
    default_region: Option<Region>,
) -> Result<Option<String>, PhoneError> {
    normalize_phone_as(raw, default_region, Validity::Valid)
}

/// How strict [`normalize_phone_as`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// The number must be valid for its country (a dialable, assigned range). For contact lists
    /// and anything that will be called or texted.
    Valid,
    /// The number only needs a possible length for a full number of its country (a local
    /// number without its area code is not enough). For matching records against
    /// each other: an unassigned or mistyped range is still the same string of digits in both
    /// records, and throwing it away would lose the evidence.
    Possible,
}

/// [`normalize_phone`] with a choice of strictness.
pub fn normalize_phone_as(
    raw: &str,
    default_region: Option<Region>,
    validity: Validity,
) -> Result<Option<String>, PhoneError> {
    let cleaned = text::clean(raw);
    if cleaned.is_empty() {
        return Ok(None);
    }
    match parse_valid(&cleaned, default_region, validity) {
        Ok(e164) => Ok(Some(e164)),
        Err(first) => {
            let digits_start =
                cleaned.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '+');
            if let Some(rest) = digits_start.strip_prefix("00") {
                parse_valid(&format!("+{rest}"), default_region, validity).map(Some)
            } else {
                Err(first)
            }
        }
    }
}

fn parse_valid(s: &str, region: Option<Region>, validity: Validity) -> Result<String, PhoneError> {
    let number = PHONE_NUMBER_UTIL
        .parse(s, region.map(|r| r.0))
        .map_err(|_| PhoneError::NotANumber)?;
    let ok = match validity {
        Validity::Valid => number.is_valid(),
        // A full national number's length; a local-only number (no area code) is ambiguous.
        Validity::Possible => matches!(
            number.is_possible_with_reason(),
            Ok(rlibphonenumber::NumberLengthType::IsPossible)
        ),
    };
    if !ok {
        return Err(PhoneError::Invalid);
    }
    Ok(number.format_as(PhoneNumberFormat::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us() -> Option<Region> {
        Some("US".parse().unwrap())
    }

    #[test]
    fn formats_seen_in_feeds() {
        let cases = [
            ("(415) 555-2671", "US", "+14155552671"),
            ("415.555.2671 ext. 12", "US", "+14155552671"),
            ("tel:+1-415-555-2671", "US", "+14155552671"),
            ("  +1 201-258-2439 \t", "US", "+12012582439"),
            ("0012012360139", "US", "+12012360139"),
            ("00447404325122", "US", "+447404325122"),
            ("0061412787686", "US", "+61412787686"),
            ("+44 (0) 20 7946 0958", "GB", "+442079460958"),
            ("020 7946 0958", "GB", "+442079460958"),
            ("00 33 6 12 34 56 78", "GB", "+33612345678"),
            ("06 12 34 56 78", "FR", "+33612345678"),
            ("（４１５） ５５５-２６７１", "US", "+14155552671"),
            ("1-800-FLOWERS", "US", "+18003569377"),
        ];
        for (input, region, want) in cases {
            let got = normalize_phone(input, Some(region.parse().unwrap()));
            assert_eq!(got, Ok(Some(want.to_owned())), "input {input:?}");
        }
    }

    #[test]
    fn possible_numbers_for_matching() {
        // 286 is not an assigned US area code: invalid for dialing, fine for matching.
        assert_eq!(
            normalize_phone("(286) 668-6790", us()),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            normalize_phone_as("(286) 668-6790", us(), Validity::Possible),
            Ok(Some("+12866686790".to_owned()))
        );
        assert_eq!(
            normalize_phone_as("12345", us(), Validity::Possible),
            Err(PhoneError::Invalid),
            "too short is not possible"
        );
    }

    #[test]
    fn refuses_invalid_numbers() {
        assert_eq!(normalize_phone("12345", us()), Err(PhoneError::Invalid));
        assert_eq!(normalize_phone("555-0100", us()), Err(PhoneError::Invalid));
        assert!(normalize_phone("not a number", us()).is_err());
        assert_eq!(normalize_phone("  ", us()), Ok(None));
        assert!(
            normalize_phone("(415) 555-2671", None).is_err(),
            "national form needs a region"
        );
        assert_eq!(
            normalize_phone("0044 20 7946 0958", None),
            Ok(Some("+442079460958".into()))
        );
    }

    #[test]
    fn unknown_region_is_an_error() {
        assert!(matches!(
            "XX".parse::<Region>(),
            Err(PhoneError::UnknownRegion(_))
        ));
        assert_eq!("gb".parse::<Region>().unwrap().code(), "GB");
    }

    proptest! {
        #[test]
        fn total_and_idempotent(s in any::<String>()) {
            if let Ok(Some(e164)) = normalize_phone(&s, us()) {
                prop_assert_eq!(normalize_phone(&e164, us()), Ok(Some(e164.clone())));
            }
        }

        #[test]
        fn digit_soup_never_panics(s in "[0-9+()\\-. ]{0,30}") {
            let _ = normalize_phone(&s, us());
        }
    }
}
