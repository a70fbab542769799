//! Plain-text cleanup: Unicode NFKC, whitespace collapsed, ends trimmed.

use unicode_normalization::UnicodeNormalization;

/// NFKC-normalizes `s`, turns every run of Unicode whitespace (and control characters) into one
/// ASCII space and trims both ends.
///
/// NFKC folds full-width letters and digits (`Ｎａｔｈａｎ` → `Nathan`, `４１５` → `415`),
/// ligatures and no-break spaces, so later comparisons see one spelling of each character.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    // Fast path: ASCII needs no NFKC work.
    if s.is_ascii() {
        push_collapsed(s.chars(), &mut out, &mut pending_space);
    } else {
        push_collapsed(s.nfkc(), &mut out, &mut pending_space);
    }
    out
}

fn push_collapsed(chars: impl Iterator<Item = char>, out: &mut String, pending_space: &mut bool) {
    for c in chars {
        if c.is_whitespace() || c.is_control() {
            *pending_space = !out.is_empty();
        } else {
            if *pending_space {
                out.push(' ');
                *pending_space = false;
            }
            out.push(c);
        }
    }
}

/// [`clean`], then `None` when nothing is left.
pub fn clean_opt(s: &str) -> Option<String> {
    let c = clean(s);
    if c.is_empty() { None } else { Some(c) }
}

/// NFKC without whitespace handling, for values where inner spaces matter to a later parser.
pub fn nfkc(s: &str) -> String {
    if s.is_ascii() {
        s.to_owned()
    } else {
        s.nfkc().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_fullwidth_and_collapses_space() {
        assert_eq!(
            clean("  Nａthａniel \t Wａlters\u{a0} "),
            "Nathaniel Walters"
        );
        assert_eq!(clean("\u{3000}"), "");
        assert_eq!(clean_opt(" \t"), None);
    }

    proptest! {
        #[test]
        fn clean_is_idempotent(s in any::<String>()) {
            let once = clean(&s);
            prop_assert_eq!(clean(&once), once.clone());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' '));
        }
    }
}
