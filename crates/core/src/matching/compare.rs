//! Pairwise comparison: each field of two records is put on an agreement level, and the levels
//! of all fields form the pair's *pattern*, the unit the model weighs.

use strsim::{jaro_winkler, levenshtein, osa_distance};

use super::features::{Features, Str};
use super::nicknames;

/// The most characters of a value the string measures (Jaro–Winkler, edit distances, token
/// overlap) look at. Equality still looks at the whole value; the similar levels look at the
/// first `MAX_COMPARED_CHARS` characters of each side, so a pair costs at most
/// `MAX_COMPARED_CHARS²` steps per measure however long its values are. No name, street or
/// e-mail part of real contact data is this long, and the fast measures cover this length.
pub const MAX_COMPARED_CHARS: usize = 64;

/// A value as the string measures see it: its first [`MAX_COMPARED_CHARS`] characters.
fn head(s: &str) -> &str {
    match s.char_indices().nth(MAX_COMPARED_CHARS) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

#[cfg(test)]
thread_local! {
    /// The most character pairs one string measure has compared on this thread (tests only).
    static LARGEST_MEASURE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Records the size of a string measure's work, for the test that keeps it bounded.
#[inline]
fn measured(a: &str, b: &str) {
    #[cfg(test)]
    LARGEST_MEASURE.with(|w| w.set(w.get().max(a.chars().count() * b.chars().count())));
    #[cfg(not(test))]
    let _ = (a, b);
}

/// The compared fields, in pattern order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Comparison {
    /// Given name (nicknames, typos and initials count as partial agreement).
    FirstName,
    /// Family name (typos and double-barrelled names count as partial agreement).
    LastName,
    /// E-mail (tags and Gmail dots ignored; typos count as partial agreement).
    Email,
    /// Phone in E.164 (a one-digit typo counts as partial agreement).
    Phone,
    /// Street line (abbreviations expanded; typos count as partial agreement).
    Street,
    /// Postal code.
    Postcode,
    /// City.
    City,
}

/// Every comparison, in pattern order.
pub const COMPARISONS: [Comparison; 7] = [
    Comparison::FirstName,
    Comparison::LastName,
    Comparison::Email,
    Comparison::Phone,
    Comparison::Street,
    Comparison::Postcode,
    Comparison::City,
];

impl Comparison {
    /// The field's name in plans and reports.
    pub fn name(self) -> &'static str {
        match self {
            Comparison::FirstName => "first_name",
            Comparison::LastName => "last_name",
            Comparison::Email => "email",
            Comparison::Phone => "phone",
            Comparison::Street => "street",
            Comparison::Postcode => "postcode",
            Comparison::City => "city",
        }
    }

    /// The names of the levels (index = level; 0 is always `missing`).
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Comparison::FirstName => &[
                "missing",
                "exact",
                "nickname",
                "similar",
                "initial",
                "different",
            ],
            Comparison::LastName => &["missing", "exact", "similar", "partial", "different"],
            Comparison::Email | Comparison::Phone | Comparison::Street => {
                &["missing", "exact", "similar", "different"]
            }
            Comparison::Postcode | Comparison::City => &["missing", "exact", "different"],
        }
    }

    fn shift(self) -> u32 {
        3 * self as u32
    }
}

/// The agreement levels of one pair, three bits per comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern(pub u32);

impl Pattern {
    /// The level of one comparison (0 = missing on either side).
    pub fn level(self, c: Comparison) -> usize {
        ((self.0 >> c.shift()) & 7) as usize
    }

    fn set(&mut self, c: Comparison, level: u8) {
        self.0 |= u32::from(level) << c.shift();
    }

    /// Number of distinct patterns (the size of a weight table).
    pub const SPACE: usize = 1 << 21;
}

/// Compares two records.
pub fn compare(a: &Features, b: &Features) -> Pattern {
    let mut p = Pattern(0);
    let (fa, la, fb, lb) = (
        a.str(Str::First),
        a.str(Str::Last),
        b.str(Str::First),
        b.str(Str::Last),
    );
    let (mut first, mut last) = (first_level(fa, fb), last_level(la, lb));
    // Swapped first and last names: take the reading that agrees better.
    if !fa.is_empty() && !la.is_empty() && !fb.is_empty() && !lb.is_empty() && first + last > 2 {
        let (sf, sl) = (first_level(fa, lb), last_level(la, fb));
        if sf <= 3 && sl <= 2 && sf + sl < first + last {
            (first, last) = (sf, sl);
        }
    }
    // A record with one name, or names that only agree crossed over (`Anja Bauer` against a
    // channel's `Bauer`, `Anja`, or a lone `Bauer` in the given-name field): when the straight
    // reading agrees on nothing and disagrees somewhere, and the crossed one agrees (an initial
    // counts) and disagrees nowhere, the names were swapped.
    let agrees = |f: u8, l: u8| (1..=4).contains(&f) || (1..=3).contains(&l);
    let disagrees = |f: u8, l: u8| f == 5 || l == 4;
    if !agrees(first, last) && disagrees(first, last) {
        let (sf, sl) = (first_level(fa, lb), last_level(la, fb));
        if agrees(sf, sl) && !disagrees(sf, sl) {
            (first, last) = (sf, sl);
        }
    }
    p.set(Comparison::FirstName, first);
    p.set(Comparison::LastName, last);
    p.set(Comparison::Email, email_level(a.email(), b.email()));
    p.set(Comparison::Phone, phone_level(a.phone(), b.phone()));
    p.set(
        Comparison::Street,
        street_level(a.str(Str::Street), b.str(Str::Street)),
    );
    p.set(
        Comparison::Postcode,
        exact_level(a.str(Str::Postcode), b.str(Str::Postcode)),
    );
    p.set(
        Comparison::City,
        city_level(a.str(Str::City), b.str(Str::City)),
    );
    p
}

fn first_level(a: &str, b: &str) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    if a == b {
        return 1;
    }
    // Compare first given names; a second given name is often dropped.
    let (a1, b1) = (
        a.split(' ').next().unwrap_or(a),
        b.split(' ').next().unwrap_or(b),
    );
    if a1 == b1 {
        return 1;
    }
    if nicknames::equivalent(a1, b1) {
        return 2;
    }
    let (a1, b1) = (head(a1), head(b1));
    if a1.len() == 1 || b1.len() == 1 {
        return if a1.as_bytes()[0] == b1.as_bytes()[0] {
            4
        } else {
            5
        };
    }
    if similar(a1, b1, 0.9) || (a1.len().min(b1.len()) >= 3 && prefix_of(a1, b1)) {
        return 3;
    }
    5
}

fn last_level(a: &str, b: &str) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    if a == b {
        return 1;
    }
    let (a, b) = (head(a), head(b));
    if similar(a, b, 0.9) {
        return 2;
    }
    // Double-barrelled and compound names: `reeves elliott` ~ `elliott`.
    if a.contains(' ') || b.contains(' ') {
        let shares = a
            .split(' ')
            .filter(|t| t.len() >= 3)
            .any(|t| b.split(' ').any(|u| u == t));
        if shares {
            return 3;
        }
    }
    4
}

fn email_level(a: Option<&str>, b: Option<&str>) -> u8 {
    let (Some(a), Some(b)) = (a, b) else { return 0 };
    if a == b {
        return 1;
    }
    let (Some((la, da)), Some((lb, db))) = (a.rsplit_once('@'), b.rsplit_once('@')) else {
        return 3;
    };
    let close = |x: &str, y: &str| {
        let (x, y) = (head(x), head(y));
        let n = x.len().min(y.len());
        measured(x, y);
        n >= 4 && levenshtein(x, y) <= if n >= 8 { 2 } else { 1 }
    };
    if (la == lb && la.len() >= 4 && close(da, db)) || (da == db && close(la, lb)) {
        return 2;
    }
    3
}

fn phone_level(a: Option<u64>, b: Option<u64>) -> u8 {
    let (Some(a), Some(b)) = (a, b) else { return 0 };
    if a == b {
        return 1;
    }
    // Digits from the right; numbers of different lengths never count as a typo.
    let digits = |mut v: u64| {
        let mut d = [0u8; 20];
        let mut n = 0;
        while v > 0 {
            d[n] = (v % 10) as u8;
            v /= 10;
            n += 1;
        }
        (d, n)
    };
    let ((da, na), (db, nb)) = (digits(a), digits(b));
    if na != nb {
        return 3;
    }
    let diffs: Vec<usize> = (0..na).filter(|&i| da[i] != db[i]).take(3).collect();
    let one_digit = diffs.len() == 1;
    let transposed = diffs.len() == 2
        && diffs[1] == diffs[0] + 1
        && da[diffs[0]] == db[diffs[1]]
        && da[diffs[1]] == db[diffs[0]];
    if one_digit || transposed { 2 } else { 3 }
}

fn street_level(a: &str, b: &str) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    if a == b {
        return 1;
    }
    // The house number must agree; the rest may carry a typo.
    let same_number = a
        .bytes()
        .filter(u8::is_ascii_digit)
        .eq(b.bytes().filter(u8::is_ascii_digit));
    if same_number && similar(head(a), head(b), 0.88) {
        return 2;
    }
    3
}

fn city_level(a: &str, b: &str) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    if a == b || jaro_winkler_fast(head(a), head(b)) >= 0.92 {
        1
    } else {
        2
    }
}

fn exact_level(a: &str, b: &str) -> u8 {
    match (a.is_empty() || b.is_empty(), a == b) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    }
}

fn similar(a: &str, b: &str, jw: f64) -> bool {
    let n = a.len().min(b.len());
    let len_gap = a.len().abs_diff(b.len());
    jaro_winkler_fast(a, b) >= jw
        || (n >= 4 && len_gap <= 1 && osa_fast(a, b) <= 1)
        || (n >= 7 && len_gap <= 2 && osa_fast(a, b) <= 2)
}

/// Jaro–Winkler as `strsim` computes it, without allocating, for ASCII strings of up to 64
/// bytes (every folded name and street the matcher sees in practice); `strsim` otherwise.
/// Callers pass values cut by [`head`]. The
/// comparison loop runs millions of times, and `strsim` allocates on every call.
fn jaro_winkler_fast(a: &str, b: &str) -> f64 {
    measured(a, b);
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.len() > 64 || y.len() > 64 || !a.is_ascii() || !b.is_ascii() {
        return jaro_winkler(a, b);
    }
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    if x.is_empty() || y.is_empty() {
        return 0.0;
    }
    let range = (x.len().max(y.len()) / 2).saturating_sub(1);
    let (mut used_x, mut used_y) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &cx) in x.iter().enumerate() {
        let lo = i.saturating_sub(range);
        let hi = (i + range + 1).min(y.len());
        for (j, &cy) in y.iter().enumerate().take(hi).skip(lo) {
            if cx == cy && used_y & (1 << j) == 0 {
                used_x |= 1 << i;
                used_y |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0usize;
    for (i, &cx) in x.iter().enumerate() {
        if used_x & (1 << i) == 0 {
            continue;
        }
        while used_y & (1 << j) == 0 {
            j += 1;
        }
        if cx != y[j] {
            transpositions += 1;
        }
        j += 1;
    }
    let m = matches as f64;
    let t = (transpositions / 2) as f64;
    let jaro = (m / x.len() as f64 + m / y.len() as f64 + (m - t) / m) / 3.0;
    if jaro > 0.7 {
        let prefix = x.iter().zip(y).take(4).take_while(|(p, q)| p == q).count() as f64;
        jaro + 0.1 * prefix * (1.0 - jaro)
    } else {
        jaro
    }
}

/// Optimal string alignment distance (Damerau–Levenshtein without repeated edits of one
/// substring), as `strsim::osa_distance`, on the stack for ASCII strings of up to 64 bytes.
fn osa_fast(a: &str, b: &str) -> usize {
    measured(a, b);
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.len() > 64 || y.len() > 64 || !a.is_ascii() || !b.is_ascii() {
        return osa_distance(a, b);
    }
    let mut prev2 = [0usize; 65];
    let mut prev: [usize; 65] = std::array::from_fn(|j| j);
    let mut cur = [0usize; 65];
    for i in 1..=x.len() {
        cur[0] = i;
        for j in 1..=y.len() {
            let cost = usize::from(x[i - 1] != y[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        prev2 = prev;
        prev = cur;
    }
    prev[y.len()]
}

fn prefix_of(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::record::Record;

    fn f(first: &str, last: &str, email: &str, phone: &str) -> Features {
        let (r, _) = Record::from_raw(
            ["x", "", first, last, email, phone, "", "", "", "", "US"],
            None,
        );
        Features::of(&r)
    }

    #[test]
    fn levels() {
        let a = f(
            "William",
            "Smith",
            "w.smith+shop@gmail.com",
            "(415) 555-2671",
        );
        let b = f("Bill", "Smith", "wsmith@googlemail.com", "+1 415 555 2671");
        let p = compare(&a, &b);
        assert_eq!(p.level(Comparison::FirstName), 2);
        assert_eq!(p.level(Comparison::LastName), 1);
        assert_eq!(p.level(Comparison::Email), 1);
        assert_eq!(p.level(Comparison::Phone), 1);
        assert_eq!(p.level(Comparison::Street), 0);
    }

    #[test]
    fn swapped_names_and_typos() {
        let a = f("Smith", "John", "", "");
        let b = f("John", "Smith", "", "");
        let p = compare(&a, &b);
        assert_eq!(
            (
                p.level(Comparison::FirstName),
                p.level(Comparison::LastName)
            ),
            (1, 1)
        );
        let c = f("Jonh", "Smyth", "", "(415) 555-2617");
        let d = f("John", "Smith", "", "(415) 555-2671");
        let p = compare(&c, &d);
        assert_eq!(p.level(Comparison::FirstName), 3);
        assert_eq!(p.level(Comparison::LastName), 2);
        assert_eq!(p.level(Comparison::Phone), 2);
    }

    proptest::proptest! {
        #[test]
        fn fast_string_measures_agree_with_strsim(a in "[a-e ]{0,12}", b in "[a-e ]{0,12}") {
            proptest::prop_assert!((jaro_winkler_fast(&a, &b) - jaro_winkler(&a, &b)).abs() < 1e-12);
            proptest::prop_assert_eq!(osa_fast(&a, &b), osa_distance(&a, &b));
        }
    }

    #[test]
    fn long_names_are_compared_with_a_bounded_cost() {
        // Two 2,000-character names (ASCII, and Cyrillic, which takes `strsim`'s path) that
        // differ at the end: every string measure sees at most `MAX_COMPARED_CHARS` of them.
        for letters in ["abcdefghij", "абвгдежзий"] {
            let long: String = letters.repeat(200);
            let mut other: String = long.chars().take(1_999).collect();
            other.push('z');
            // Built as they are: the input's own length limit is not what bounds the work here.
            let raw = |name: &str| {
                Features::of(&Record::new(
                    ["x", "", name, name, "", "", "", "", "", "", "US"],
                    None,
                ))
            };
            let (a, b) = (raw(&long), raw(&other));
            assert!(a.str(Str::First).chars().count() >= 1_999);
            LARGEST_MEASURE.with(|w| w.set(0));
            let p = compare(&a, &b);
            let work = LARGEST_MEASURE.with(std::cell::Cell::get);
            assert!(work > 0, "no string measure ran");
            assert!(
                work <= MAX_COMPARED_CHARS * MAX_COMPARED_CHARS,
                "a string measure compared {work} character pairs"
            );
            // Values that agree on their compared part are still similar, not different.
            assert_eq!(p.level(Comparison::LastName), 2, "{letters}");
        }
    }

    #[test]
    fn names_crossed_over_on_a_sparse_record_agree() {
        let full = f("Anja", "Bauer", "", "");
        // A channel that put the family name in the given-name field and nothing else.
        let p = compare(&full, &f("Bauer", "", "", ""));
        assert_eq!(p.level(Comparison::LastName), 1);
        assert_eq!(p.level(Comparison::FirstName), 0);
        let p = compare(&full, &f("", "Anja", "", ""));
        assert_eq!(p.level(Comparison::FirstName), 1);
        // Swapped, with the given name cut to an initial.
        let p = compare(
            &f("Francisco", "Romero", "", ""),
            &f("Romero", "F.", "", ""),
        );
        assert_eq!(
            (
                p.level(Comparison::FirstName),
                p.level(Comparison::LastName)
            ),
            (4, 1)
        );
        // Names that disagree either way stay different.
        let p = compare(&full, &f("", "Schmidt", "", ""));
        assert_eq!(p.level(Comparison::LastName), 4);
    }

    #[test]
    fn generic_values_count_as_missing() {
        let a = f("Ann", "Lee", "noemail@noemail.com", "");
        let b = f("Bob", "Ray", "noemail@noemail.com", "");
        assert_eq!(compare(&a, &b).level(Comparison::Email), 0);
    }
}
