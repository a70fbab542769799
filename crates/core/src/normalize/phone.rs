//! Phone numbers to E.164, through one wrapper over `rlibphonenumber`.
//!
//! Why this crate: it parses full-width digits, is 2–3× faster than `phonenumber` on this
//! workload and carries newer metadata (see `CRATES.md`). Everything else in dedupd calls
//! [`normalize_phone`]; nothing else touches the library.

use std::str::FromStr;

use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumber, PhoneNumberFormat};
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
    if let Some(e164) = accept_international(s, validity) {
        return Ok(e164);
    }
    parse_valid_library(s, region, validity)
}

/// The library's whole answer: its generic parser (any notation), then its check.
fn parse_valid_library(
    s: &str,
    region: Option<Region>,
    validity: Validity,
) -> Result<String, PhoneError> {
    let number = PHONE_NUMBER_UTIL
        .parse(s, region.map(|r| r.0))
        .map_err(|_| PhoneError::NotANumber)?;
    if !passes(&number, validity) {
        return Err(PhoneError::Invalid);
    }
    Ok(number.format_as(PhoneNumberFormat::E164).to_string())
}

fn passes(number: &PhoneNumber, validity: Validity) -> bool {
    match validity {
        Validity::Valid => number.is_valid(),
        // A full national number's length; a local-only number (no area code) is ambiguous.
        Validity::Possible => matches!(
            number.is_possible_with_reason(),
            Ok(rlibphonenumber::NumberLengthType::IsPossible)
        ),
    }
}

/// The fast path for the commonest notation, `+` and digits with the usual separators
/// (`+1 201-555-0123`, `+44 7400 123456`, `+4915112345678`): the number the library's parser
/// would build is built directly (country code: the shortest prefix of one to three digits
/// that the library knows, as its parser takes it; the rest is the national number), and the
/// library's own check decides.
///
/// For such a string the parser's only other step is to strip a national prefix written after
/// the country code (`+44 0 20…`, `+375 8 0…`), and it can only do that when the country's
/// prefix pattern matches the start of the national number: so the path declines a national
/// number that starts with `0` or with a digit in [`PREFIX_FIRST_DIGITS`].
///
/// It only ever accepts: anything else — another notation, such a national number, a number
/// the check refuses — goes to the library's parser, which gives the answer and the reason.
/// The tests below hold this path to the library's answer over the example numbers of every
/// region and type, written with national prefixes, separators and changed digits.
/// For each calling code whose numbering plan has a national prefix (`national_prefix_for_parsing`
/// of the metadata the parser uses for that code), the digits other than `0` that a non-empty
/// match of it can start with. Every such prefix can start with `0`, and a national number
/// starting with `0` never takes the fast path. Derived from the metadata of the pinned
/// `rlibphonenumber` (2.2.15): the `US` entry is its prefix `1`, `GB`'s is `0|180020`, `AR`'s
/// the `0?(11|2…|3…)?15` of its mobile numbers, and so on.
const PREFIX_FIRST_DIGITS: &[(i32, &[u8])] = &[
    (1, b"1"),
    (7, b"8"),
    (44, b"1"),
    (54, b"123"),
    (55, b"9"),
    (61, b"1"),
    (86, b"1"),
    (261, b"2456789"),
    (298, b"1"),
    (352, b"1"),
    (370, b"8"),
    (375, b"8"),
    (378, b"89"),
    (423, b"1"),
    (506, b"1"),
    (672, b"1258"),
    (692, b"1"),
    (993, b"8"),
];

fn accept_international(s: &str, validity: Validity) -> Option<String> {
    let rest = s.strip_prefix('+')?;
    // Longest national number the library parses is 17 digits, plus a 3-digit country code.
    let mut digits = [0u8; 20];
    let mut n = 0;
    for b in rest.bytes() {
        match b {
            b'0'..=b'9' => {
                *digits.get_mut(n)? = b - b'0';
                n += 1;
            }
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return None,
        }
    }
    let digits = &digits[..n];
    if digits.len() < 4 || digits[0] == 0 {
        return None;
    }
    let (cc_len, country_code) = (1..=3).find_map(|len| {
        let cc = digits[..len]
            .iter()
            .fold(0i32, |a, &d| a * 10 + i32::from(d));
        PHONE_NUMBER_UTIL
            .get_region_for_country_code(cc)
            .map(|_| (len, cc))
    })?;
    let national = &digits[cc_len..];
    if !(2..=17).contains(&national.len()) || national[0] == 0 {
        return None;
    }
    let may_carry_prefix = PREFIX_FIRST_DIGITS
        .iter()
        .any(|(cc, first)| *cc == country_code && first.contains(&(b'0' + national[0])));
    if may_carry_prefix {
        return None;
    }
    let number = PhoneNumber {
        country_code,
        national_number: national.iter().fold(0u64, |a, &d| a * 10 + u64::from(d)),
        ..PhoneNumber::default()
    };
    passes(&number, validity).then(|| number.format_as(PhoneNumberFormat::E164).to_string())
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

    /// Every supported region's example numbers, each type, written with a `+` in several
    /// ways, some with a national prefix or a stray digit after the country code.
    fn example_numbers() -> Vec<String> {
        let mut out = Vec::new();
        let mut regions: Vec<_> = PHONE_NUMBER_UTIL.get_supported_regions().collect();
        regions.sort_by_key(|r| r.to_string());
        for region in regions {
            let mut types: Vec<_> = PHONE_NUMBER_UTIL
                .get_supported_types_for_region(region)
                .unwrap_or_default()
                .into_iter()
                .collect();
            types.sort_by_key(|t| format!("{t:?}"));
            for t in types {
                let Ok(n) = PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(region, t)
                else {
                    continue;
                };
                let cc = n.country_code.to_string();
                let nsn = n.get_national_significant_number();
                out.push(n.format_as(PhoneNumberFormat::E164).to_string());
                out.push(n.format_as(PhoneNumberFormat::International).to_string());
                for prefix in ["0", "1", "8", "9", "06", "15", "01", "7"] {
                    out.push(format!("+{cc} {prefix} {nsn}"));
                    out.push(format!("+{cc}{prefix}{nsn}"));
                }
                out.push(format!("+{cc}{}", &nsn[..nsn.len() - 1]));
                out.push(format!("+{cc}{nsn}5"));
            }
        }
        out
    }

    fn both_ways(input: &str, region: Option<Region>, validity: Validity) {
        assert_eq!(
            parse_valid(input, region, validity),
            parse_valid_library(input, region, validity),
            "input {input:?}, region {region:?}, {validity:?}"
        );
    }

    /// The example numbers of every region and type, in E.164.
    fn example_numbers_e164() -> Vec<String> {
        static CACHE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        CACHE
            .get_or_init(|| {
                example_numbers()
                    .into_iter()
                    .filter(|s| s.bytes().skip(1).all(|b| b.is_ascii_digit()))
                    .collect()
            })
            .clone()
    }

    #[test]
    fn fast_path_is_the_library_on_every_regions_examples() {
        let examples = example_numbers();
        assert!(examples.len() > 5_000, "{} examples", examples.len());
        for input in &examples {
            for validity in [Validity::Valid, Validity::Possible] {
                both_ways(input, us(), validity);
                both_ways(input, None, validity);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// An example number with some digits changed, added or removed, the country code kept
        /// or not, written with separators: the fast path answers as the library does.
        #[test]
        fn fast_path_is_the_library_on_changed_numbers(
            pick in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..10, 0u8..3), 0..4),
            seps in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![' ', '-', '.', '(', ')'])), 0..4),
            keep_cc in any::<bool>(),
        ) {
            let examples = example_numbers_e164();
            let e164 = &examples[pick.index(examples.len())];
            let mut digits: Vec<char> = e164[1..].chars().collect();
            for (at, d, op) in edits {
                let i = at.index(digits.len() + 1);
                let d = char::from(b'0' + d);
                match op {
                    0 if i < digits.len() => digits[i] = d,
                    1 => digits.insert(i, d),
                    _ if i < digits.len() && digits.len() > 1 => { digits.remove(i); }
                    _ => {}
                }
            }
            for (at, c) in seps {
                let i = at.index(digits.len() + 1);
                digits.insert(i, c);
            }
            let body: String = digits.into_iter().collect();
            let input = if keep_cc { format!("+{body}") } else { body };
            for validity in [Validity::Valid, Validity::Possible] {
                prop_assert_eq!(
                    parse_valid(&input, us(), validity),
                    parse_valid_library(&input, us(), validity),
                    "input {:?}, {:?}", input, validity
                );
            }
        }

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
