//! What one input row means: the rules that turn a feed row's raw values into the fields of a
//! [`crate::ContactRecord`].
//!
//! The reader (CSV, NDJSON, a JSON array) only hands out raw strings; which of them make the
//! person's name and whether the row says "do not call" is decided here, so every job reading
//! feeds agrees on it.
//!
//! - **Names**: the first and last name columns win. Only when both are absent or empty after
//!   normalization is the full-name column used, split by [`split_full_name`] (first word →
//!   first name, the rest → last name). The full name is read lazily: a row whose first or last
//!   name is present never looks at (or fails on) its full-name column.
//! - **Do-not-call**: a status value matches a configured do-not-call value when both are equal
//!   after trimming and upper-casing ([`do_not_call_value`]). Configured values are normalized
//!   once with the same function, so `" dnc "` in the config matches `Dnc` in a row.

use crate::normalize::{normalize_name, split_full_name};

/// A first and a last name, each normalized with [`normalize_name`] (either may be absent).
pub type Names = (Option<String>, Option<String>);

/// The person's names from a row: `first` and `last` normalized; when both end up absent,
/// `full()` is asked for the full-name value and split. An error of `full()` (the column's
/// value could not be read) is returned as is; `full()` is not called when a name is present.
pub fn person_names<S, E>(
    first: Option<&str>,
    last: Option<&str>,
    full: impl FnOnce() -> Result<Option<S>, E>,
) -> Result<Names, E>
where
    S: AsRef<str>,
{
    let first = first.and_then(normalize_name);
    let last = last.and_then(normalize_name);
    if first.is_some() || last.is_some() {
        return Ok((first, last));
    }
    Ok(match full()? {
        Some(full) => split_full_name(full.as_ref()),
        None => (None, None),
    })
}

/// The form in which a do-not-call value is compared: trimmed and upper-cased. Used both for
/// the configured values (once, at load) and for each row's status.
pub fn do_not_call_value(raw: &str) -> String {
    raw.trim().to_uppercase()
}

/// Whether a row's `status` marks the contact do-not-call, given the configured values already
/// passed through [`do_not_call_value`]. No configured value means no status ever matches.
pub fn is_do_not_call(status: &str, configured: &[String]) -> bool {
    !configured.is_empty() && configured.contains(&do_not_call_value(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no_full() -> Result<Option<&'static str>, ()> {
        panic!("the full name must not be read when a name is present")
    }

    #[test]
    fn first_and_last_name_win_over_the_full_name() {
        assert_eq!(
            person_names(Some("JOHN"), Some("mcdonald"), no_full),
            Ok((Some("John".into()), Some("McDonald".into())))
        );
        assert_eq!(
            person_names(Some("ana"), None, no_full),
            Ok((Some("Ana".into()), None))
        );
        assert_eq!(
            person_names(None, Some("Atzler"), no_full),
            Ok((None, Some("Atzler".into())))
        );
    }

    #[test]
    fn the_full_name_is_split_only_when_both_names_are_absent_or_blank() {
        let full = || Ok::<_, ()>(Some("ludwig van beethoven"));
        let expected = (Some("Ludwig".into()), Some("van Beethoven".into()));
        assert_eq!(person_names(None, None, full), Ok(expected.clone()));
        assert_eq!(person_names(Some("  "), Some(""), full), Ok(expected));
        assert_eq!(
            person_names(None, None, || Ok::<_, ()>(Some("Cher"))),
            Ok((Some("Cher".into()), None))
        );
        assert_eq!(
            person_names(None, None, || Ok::<Option<&str>, ()>(None)),
            Ok((None, None))
        );
    }

    #[test]
    fn an_unreadable_full_name_is_an_error() {
        assert_eq!(
            person_names(None, None, || Err::<Option<&str>, _>("bad cell")),
            Err("bad cell")
        );
    }

    #[test]
    fn do_not_call_matches_trimmed_and_upper_cased() {
        let configured: Vec<String> = [" dnc ", "Do Not Call"]
            .iter()
            .map(|v| do_not_call_value(v))
            .collect();
        assert_eq!(configured, ["DNC", "DO NOT CALL"]);
        assert!(is_do_not_call("dnc", &configured));
        assert!(is_do_not_call("  do not call\t", &configured));
        assert!(!is_do_not_call("active", &configured));
        assert!(!is_do_not_call("", &configured));
        assert!(!is_do_not_call("DNC", &[]));
    }

    proptest! {
        #[test]
        fn a_configured_value_matches_itself_in_any_case_and_padding(
            value in "[a-zA-Z ]{1,12}",
            pad in " {0,3}",
        ) {
            let configured = vec![do_not_call_value(&value)];
            let padded = format!("{pad}{}{pad}", value.to_lowercase());
            prop_assert!(is_do_not_call(&padded, &configured));
            prop_assert!(is_do_not_call(&value.to_uppercase(), &configured));
        }
    }
}
