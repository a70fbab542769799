//! Plain-text cleanup: Unicode NFKC, whitespace collapsed, ends trimmed.

use unicode_normalization::UnicodeNormalization;

/// NFKC-normalizes `s`, turns every run of Unicode whitespace (and control characters) into one
/// ASCII space and trims both ends.
///
/// NFKC folds full-width letters and digits (`Ｎａｔｈａｎ` → `Nathan`, `４１５` → `415`),
/// ligatures and no-break spaces, so later comparisons see one spelling of each character.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    clean_into(s, &mut out);
    out
}

/// [`clean`], appended to `out` (for building one buffer of several values without a string
/// each).
pub(crate) fn clean_into(s: &str, out: &mut String) {
    let start = out.len();
    // Fast path: ASCII needs no NFKC work, and its whitespace and control characters are the
    // bytes up to the space and DEL, so the words are copied whole.
    if s.is_ascii() {
        for word in s
            .split(|c: char| c <= ' ' || c == '\x7f')
            .filter(|w| !w.is_empty())
        {
            if out.len() > start {
                out.push(' ');
            }
            out.push_str(word);
        }
        return;
    }
    push_collapsed(s.nfkc(), out);
}

/// Appends `chars` to `out` with every run of whitespace and control characters as one ASCII
/// space, and none at either end of what it appends.
pub(crate) fn push_collapsed(chars: impl Iterator<Item = char>, out: &mut String) {
    let start = out.len();
    let mut pending_space = false;
    for c in chars {
        if c.is_whitespace() || c.is_control() {
            pending_space = out.len() > start;
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
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
        assert_eq!(clean(" "), "");
        assert_eq!(clean("\x7f a\x00\tb "), "a b");
        assert_eq!(clean_opt(" \t"), None);
    }

    proptest! {
        /// The ASCII fast path is the general rule (every whitespace or control character
        /// separates words) on ASCII text.
        #[test]
        fn the_ascii_path_is_the_general_rule(s in "[\\x00-\\x7f]{0,40}") {
            let mut general = String::new();
            push_collapsed(s.chars(), &mut general);
            prop_assert_eq!(clean(&s), general);
        }

        /// Appending is cleaning on its own, whatever the buffer held before.
        #[test]
        fn clean_into_appends_clean(before in ".{0,8}", s in any::<String>()) {
            let mut out = before.clone();
            clean_into(&s, &mut out);
            prop_assert_eq!(out, format!("{before}{}", clean(&s)));
        }

        #[test]
        fn clean_is_idempotent(s in any::<String>()) {
            let once = clean(&s);
            prop_assert_eq!(clean(&once), once.clone());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' '));
        }
    }
}
