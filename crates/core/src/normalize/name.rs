//! Personal names: NFKC, whitespace collapsed, and a case rule that keeps names readable.

use unicode_normalization::UnicodeNormalization;

use super::text;

/// Name particles that stay lowercase inside a name (not as its first word) when dedupd has to
/// re-case a name itself.
const PARTICLES: &[&str] = &[
    "van", "von", "der", "den", "de", "del", "della", "da", "di", "du", "la", "le", "dos", "das",
    "y", "bin", "al",
];

/// Normalizes a first or last name.
///
/// 1. NFKC, whitespace collapsed and trimmed ([`text::clean`]).
/// 2. The case rule. A name written in mixed case is kept as written: the writer chose
///    `McDonald`, `O'Brien`, `DeVries` or `Mcbride`, and dedupd cannot know better. A name in
///    one case only (`TRACEY`, `hubbard`) is re-cased: each word, and each part after `-` or
///    `'`, starts with a capital (`o'brien` → `O'Brien`, `jens-peter` → `Jens-Peter`), `Mc`
///    is followed by a capital (`MCDONALD` → `McDonald`), and particles other than the first
///    word stay lowercase (`LUDWIG VAN BEETHOVEN` → `Ludwig van Beethoven`).
///
/// Returns `None` when nothing is left.
pub fn normalize_name(raw: &str) -> Option<String> {
    let cleaned = text::clean(raw);
    if cleaned.is_empty() {
        return None;
    }
    if !is_single_case(&cleaned) {
        return Some(cleaned);
    }
    let recased = recase(&cleaned);
    // Case mapping can leave a string that NFKC composes differently (`i̇` → `İ`); keep the
    // result in NFKC so that normalizing it again changes nothing.
    let recased: String = if recased.is_ascii() {
        recased
    } else {
        recased.nfkc().collect()
    };
    // A re-cased name must itself be stable; if some script's case mapping is not (a cased
    // letter whose title form is two letters), fall back to the cleaned input.
    if is_single_case(&recased) && recase(&recased) != recased {
        return Some(cleaned);
    }
    Some(recased)
}

/// True when the text has cased letters all in one case (or none at all). A lowercase letter
/// with no single-letter capital (`ß` in `STRAßE`) does not count as lowercase.
fn is_single_case(s: &str) -> bool {
    let has_upper = s.chars().any(char::is_uppercase);
    let has_lower = s
        .chars()
        .any(|c| c.is_lowercase() && c.to_uppercase().nth(1).is_none());
    !(has_upper && has_lower)
}

fn recase(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for (i, word) in lower.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if i > 0 && PARTICLES.contains(&word) {
            out.push_str(word);
            continue;
        }
        recase_word(word, &mut out);
    }
    out
}

fn recase_word(word: &str, out: &mut String) {
    let mut start_of_part = true;
    let mut chars = word.chars().peekable();
    let mut part = String::new();
    while let Some(c) = chars.next() {
        if start_of_part && c.is_alphabetic() {
            push_upper(c, out);
            start_of_part = false;
            part.clear();
            part.push(c);
            continue;
        }
        if c == '-' || c == '\'' || c == '’' {
            out.push(c);
            start_of_part = true;
            continue;
        }
        // `Mc` + letter: `mcdonald` → `McDonald`. (`Mac` is left alone: Mack, Macy, Mace.)
        if part == "m" && c == 'c' && chars.peek().is_some_and(|n| n.is_alphabetic()) {
            out.push('c');
            part.push('c');
            if let Some(n) = chars.next() {
                push_upper(n, out);
                part.push(n);
            }
            continue;
        }
        out.push(c);
        part.push(c);
    }
}

/// Pushes the uppercase form of `c` when it is a single character; otherwise keeps `c` (for
/// example `ß`, whose uppercase `SS` would change the name's length and break idempotence).
fn push_upper(c: char, out: &mut String) {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => out.push(u),
        _ => out.push(c),
    }
}

/// Splits a full name into (first, last): the first word is the first name, the rest the last
/// name (`Jens-Peter Atzler` → (`Jens-Peter`, `Atzler`); `Ludwig van Beethoven` → (`Ludwig`,
/// `van Beethoven`)). One word gives a first name only. Both parts are normalized with
/// [`normalize_name`]; the case rule sees the whole name, so `JOHN MCDONALD` gives `McDonald`.
pub fn split_full_name(raw: &str) -> (Option<String>, Option<String>) {
    let Some(full) = normalize_name(raw) else {
        return (None, None);
    };
    match full.split_once(' ') {
        Some((first, last)) => (Some(first.to_owned()), Some(last.to_owned())),
        None => (Some(full), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn case_rule() {
        let cases = [
            ("TRACEY", "Tracey"),
            ("hubbard", "Hubbard"),
            ("  ERIKA \t", "Erika"),
            ("Mcbride", "Mcbride"),
            ("McDonald", "McDonald"),
            ("MCDONALD", "McDonald"),
            ("o'brien", "O'Brien"),
            ("O'BRIEN", "O'Brien"),
            ("jens-peter", "Jens-Peter"),
            ("Bärer", "Bärer"),
            ("AUSTERMÜHLE", "Austermühle"),
            ("Nａthａniel", "Nathaniel"),
            ("LUDWIG VAN BEETHOVEN", "Ludwig van Beethoven"),
            ("STRAßE", "Straße"),
            ("MAC", "Mac"),
            ("MC", "Mc"),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_name(input).as_deref(),
                Some(want),
                "input {input:?}"
            );
        }
        assert_eq!(normalize_name(" \t "), None);
    }

    #[test]
    fn splits_full_names() {
        assert_eq!(
            split_full_name("Nａthａniel Wａlters"),
            (Some("Nathaniel".into()), Some("Walters".into()))
        );
        assert_eq!(split_full_name("Cher"), (Some("Cher".into()), None));
        assert_eq!(
            split_full_name("JOHN MCDONALD"),
            (Some("John".into()), Some("McDonald".into()))
        );
        assert_eq!(split_full_name(""), (None, None));
    }

    proptest! {
        #[test]
        fn idempotent(s in any::<String>()) {
            if let Some(once) = normalize_name(&s) {
                prop_assert_eq!(normalize_name(&once), Some(once.clone()));
            }
        }

        #[test]
        fn idempotent_on_letters(s in "[a-zA-Zß'\\- ıİçÇğĞöÖüÜéÉŉǅǆ]{0,24}") {
            if let Some(once) = normalize_name(&s) {
                prop_assert_eq!(normalize_name(&once), Some(once.clone()));
            }
        }

        #[test]
        fn split_is_total_and_trimmed(s in any::<String>()) {
            let (f, l) = split_full_name(&s);
            for part in [f, l].into_iter().flatten() {
                prop_assert!(!part.is_empty() && part.trim() == part);
            }
        }
    }
}
