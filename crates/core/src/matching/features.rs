//! What the matcher compares: per record, folded names, a canonical e-mail, the phone as a
//! number, a normalized street, and the phonetic and nickname tokens blocking uses. Computed once
//! per record from its normalized [`Record`], so every comparison is cheap.

use rayon::prelude::*;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::nicknames;
use super::record::{Column, Record};

/// Indexes into the packed string fields of [`Features`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Str {
    First = 0,
    Last = 1,
    Email = 2,
    Street = 3,
    City = 4,
    Postcode = 5,
}

/// The comparable form of one record.
#[derive(Debug, Clone)]
pub struct Features {
    buf: Box<str>,
    ends: [u32; 6],
    /// E.164 digits as a number (0 = none).
    pub(crate) phone: u64,
    /// Soundex code of the first name (0 = none).
    pub(crate) first_sx: u32,
    /// Country code letters packed (0 = none).
    pub(crate) country: u16,
    /// Set when the e-mail / phone value is a placeholder or shared by unrelated records.
    pub(crate) email_generic: bool,
    pub(crate) phone_generic: bool,
    /// Share of records (with a value) whose first / last name is this one's.
    pub(crate) first_tf: f32,
    pub(crate) last_tf: f32,
}

impl Features {
    pub(crate) fn str(&self, f: Str) -> &str {
        let i = f as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.buf.get(start..self.ends[i] as usize).unwrap_or("")
    }

    /// The e-mail if present and not generic.
    pub(crate) fn email(&self) -> Option<&str> {
        let e = self.str(Str::Email);
        (!e.is_empty() && !self.email_generic).then_some(e)
    }

    /// The phone if present and not generic.
    pub(crate) fn phone(&self) -> Option<u64> {
        (self.phone != 0 && !self.phone_generic).then_some(self.phone)
    }

    /// Whether the record's value of `column` is generic: a placeholder, or a phone or e-mail
    /// shared by many different people ([`super::blocking::mark_generic`]). Only phones and
    /// e-mails can be generic.
    pub fn is_generic(&self, column: Column) -> bool {
        match column {
            Column::Phone => self.phone != 0 && self.phone_generic,
            Column::Email => !self.str(Str::Email).is_empty() && self.email_generic,
            _ => false,
        }
    }

    /// Whether the record carries a generic phone or e-mail and no phone or e-mail that is
    /// evidence: besides its name and address, only values that say nothing about who it is.
    pub(crate) fn only_generic_identifiers(&self) -> bool {
        (self.is_generic(Column::Phone) || self.is_generic(Column::Email))
            && self.phone().is_none()
            && self.email().is_none()
    }

    /// Computes the features of a normalized record.
    pub fn of(r: &Record) -> Features {
        let first = fold_name(r.get(Column::FirstName).unwrap_or(""));
        let last = fold_name(r.get(Column::LastName).unwrap_or(""));
        let email = r
            .get(Column::Email)
            .map(canonical_email)
            .unwrap_or_default();
        let street = r
            .get(Column::Street)
            .map(normalize_street)
            .unwrap_or_default();
        let city = fold_name(r.get(Column::City).unwrap_or(""));
        let postcode: String = r
            .get(Column::Postcode)
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let phone = r
            .get(Column::Phone)
            .and_then(|p| p.trim_start_matches('+').parse::<u64>().ok())
            .unwrap_or(0);
        let country = r
            .get(Column::Country)
            .map(|c| {
                c.bytes()
                    .take(2)
                    .fold(0u16, |acc, b| acc << 8 | u16::from(b))
            })
            .unwrap_or(0);
        let first_sx = soundex(&first);
        let mut buf = String::with_capacity(
            first.len() + last.len() + email.len() + street.len() + city.len() + postcode.len(),
        );
        let mut ends = [0u32; 6];
        for (i, s) in [&first, &last, &email, &street, &city, &postcode]
            .into_iter()
            .enumerate()
        {
            buf.push_str(s);
            ends[i] = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        }
        Features {
            buf: buf.into_boxed_str(),
            ends,
            phone,
            first_sx,
            country,
            email_generic: is_placeholder_email(&email),
            phone_generic: is_placeholder_phone(phone),
            first_tf: 0.0,
            last_tf: 0.0,
        }
    }

    /// The nickname group of the first name, or the soundex of the name.
    pub(crate) fn first_token(&self) -> u64 {
        let first = self.str(Str::First);
        match first.split(' ').next().and_then(nicknames::canonical_group) {
            Some(g) => 1 << 40 | u64::from(g),
            None => u64::from(self.first_sx),
        }
    }
}

/// Sets each record's name frequencies (the share of records with that exact first / last name),
/// so agreement on a rare name can weigh more than agreement on a common one.
pub fn set_term_frequencies(features: &mut [Features]) {
    let count = |s: Str| {
        let mut map: rustc_hash::FxHashMap<&str, u32> = rustc_hash::FxHashMap::default();
        for f in features.iter() {
            let v = f.str(s);
            if !v.is_empty() {
                *map.entry(v).or_default() += 1;
            }
        }
        let total = map.values().map(|&n| u64::from(n)).sum::<u64>();
        let tf: Vec<f32> = features
            .par_iter()
            .map(|f| {
                map.get(f.str(s))
                    .map_or(0.0, |&n| term_frequency(u64::from(n), total))
            })
            .collect();
        tf
    };
    // The two names are counted at once, one on each core.
    let (first, last) = rayon::join(|| count(Str::First), || count(Str::Last));
    features
        .par_iter_mut()
        .zip(first)
        .zip(last)
        .for_each(|((f, a), b)| {
            f.first_tf = a;
            f.last_tf = b;
        });
}

/// The share of records holding a name: `count` of the `total` records that have a value of
/// that field (the batch run counts them all at once; the incremental resolver keeps the
/// counts).
pub(crate) fn term_frequency(count: u64, total: u64) -> f32 {
    (count as f64 / total.max(1) as f64) as f32
}

/// Folds a name for comparison: NFKD without combining marks (`Bègue` → `begue`), lowercase,
/// `ß` → `ss`, letters and digits kept, every other run of characters one space. Placeholder
/// names (`N/A`, `Test`, `x`, `Unknown`, …) fold to nothing.
pub fn fold_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            for l in c.to_lowercase() {
                out.push(l);
            }
        } else if c != '\'' && c != '’' && c != '.' {
            space = true;
        }
    };
    if s.is_ascii() {
        for c in s.chars() {
            push(c, &mut out);
        }
    } else {
        for c in s.nfkd() {
            if is_combining_mark(c) {
                continue;
            }
            match c {
                'ß' => {
                    push('s', &mut out);
                    push('s', &mut out);
                }
                'æ' | 'Æ' => {
                    push('a', &mut out);
                    push('e', &mut out);
                }
                'ø' | 'Ø' => push('o', &mut out),
                'œ' | 'Œ' => {
                    push('o', &mut out);
                    push('e', &mut out);
                }
                'ł' | 'Ł' => push('l', &mut out),
                'đ' | 'Đ' => push('d', &mut out),
                _ => push(c, &mut out),
            }
        }
    }
    if is_placeholder_name(&out) {
        out.clear();
    }
    out
}

fn is_placeholder_name(folded: &str) -> bool {
    matches!(
        folded,
        "n a"
            | "na"
            | "n"
            | "a"
            | "x"
            | "xx"
            | "xxx"
            | "test"
            | "testing"
            | "unknown"
            | "unbekannt"
            | "inconnu"
            | "desconocido"
            | "none"
            | "null"
            | "nil"
            | "customer"
            | "client"
            | "caller"
            | "guest"
            | "anonymous"
            | "anon"
            | "no name"
            | "noname"
            | "mr"
            | "mrs"
            | "ms"
            | "dr"
            | "asdf"
            | "sir"
            | "madam"
    )
}

/// The matcher's e-mail key: the normalized address with a `+tag` removed from the local part
/// (`holly.barnes+promo@x` → `holly.barnes@x`), and Gmail's dots and `googlemail.com` folded.
pub fn canonical_email(email: &str) -> String {
    let email = email.to_lowercase();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return email;
    };
    let local = local.split('+').next().unwrap_or(local);
    let (local, domain) = match domain {
        "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
        _ => (local.to_owned(), domain),
    };
    format!("{local}@{domain}")
}

pub(crate) fn is_placeholder_email(canonical: &str) -> bool {
    let Some((local, domain)) = canonical.rsplit_once('@') else {
        return false;
    };
    let domain_label = domain.split('.').next().unwrap_or("");
    matches!(
        local,
        "noemail"
            | "no.email"
            | "no-email"
            | "none"
            | "na"
            | "n.a"
            | "no"
            | "nomail"
            | "test"
            | "unknown"
            | "null"
            | "customer"
            | "noreply"
            | "no-reply"
            | "donotreply"
            | "dummy"
            | "fake"
            | "x"
            | "xxx"
            | "asdf"
    ) || matches!(
        domain_label,
        "example" | "noemail" | "none" | "na" | "test" | "invalid" | "nomail" | "fake" | "dummy"
    ) || domain.ends_with(".invalid")
        || domain.ends_with(".test")
        || domain.ends_with(".example")
}

/// Placeholder phone numbers: the national part all one digit or a run of consecutive digits
/// (`+1 234 567 890`, `+44 0000 000000`).
pub(crate) fn is_placeholder_phone(phone: u64) -> bool {
    if phone == 0 {
        return false;
    }
    let digits = phone.to_string();
    let b = digits.as_bytes();
    // Look at the last 7 digits (all national numbers in scope have at least that many).
    let tail = &b[b.len().saturating_sub(7)..];
    let same = tail.windows(2).all(|w| w[0] == w[1]);
    let up = tail
        .windows(2)
        .all(|w| (w[1] + 10 - w[0]) % 10 == 1 || w[1] == w[0] + 1);
    let down = tail.windows(2).all(|w| (w[0] + 10 - w[1]) % 10 == 1);
    same || up || down
}

/// Street lines in one spelling: folded, common abbreviations of five languages expanded
/// (`Dr.` → `drive`, `Str.` → `strasse`, `C/` → `calle`, `Av.` → `avenue`), punctuation dropped.
pub fn normalize_street(s: &str) -> String {
    let lowered = s.to_lowercase();
    // Glued German suffixes: `albersstr. 3` → `albersstrasse 3`.
    let lowered = lowered
        .replace("str.", "strasse ")
        .replace("straße", "strasse")
        .replace("c/", "calle ");
    let folded = fold_name(&lowered);
    let mut out = String::with_capacity(folded.len() + 8);
    for tok in folded.split(' ') {
        let t = match tok {
            "st" => "street",
            "dr" => "drive",
            "rd" => "road",
            "ave" | "av" | "avda" => "avenue",
            "ln" => "lane",
            "ct" => "court",
            "blvd" => "boulevard",
            "pl" => "place",
            "sq" => "square",
            "hwy" => "highway",
            "pkwy" => "parkway",
            "cir" => "circle",
            "ter" => "terrace",
            "mt" => "mount",
            "apt" => "apartment",
            "ste" => "suite",
            "n" => "north",
            "s" => "south",
            "e" => "east",
            "w" => "west",
            "bd" | "bld" => "boulevard",
            "ch" => "chemin",
            "pza" | "plza" => "plaza",
            "pje" => "pasaje",
            "cr" | "ctra" => "carretera",
            "" => continue,
            other => other,
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// American Soundex of a folded name (its first word), packed as the letter and three digits;
/// 0 for an empty name.
pub(crate) fn soundex(folded: &str) -> u32 {
    let word = folded.split(' ').next().unwrap_or("");
    let mut chars = word.chars().filter(char::is_ascii_alphabetic);
    let Some(first) = chars.next() else {
        return 0;
    };
    let code = |c: char| match c {
        'b' | 'f' | 'p' | 'v' => 1,
        'c' | 'g' | 'j' | 'k' | 'q' | 's' | 'x' | 'z' => 2,
        'd' | 't' => 3,
        'l' => 4,
        'm' | 'n' => 5,
        'r' => 6,
        'h' | 'w' => 7, // transparent
        _ => 0,         // vowels separate
    };
    let mut out = u32::from(first as u8) << 16;
    let mut last = code(first);
    let mut n = 0;
    for c in chars {
        let d = code(c);
        if d == 7 {
            continue;
        }
        if d != 0 && d != last {
            out |= d << (4 * (2 - n));
            n += 1;
            if n == 3 {
                break;
            }
        }
        last = d;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold_name("Klingelhöfer"), "klingelhofer");
        assert_eq!(fold_name("O'Brien"), "obrien");
        assert_eq!(fold_name("REEVES-ELLIOTT"), "reeves elliott");
        assert_eq!(fold_name("Straße"), "strasse");
        assert_eq!(fold_name("N/A"), "");
        assert_eq!(fold_name(" x "), "");
        assert_eq!(fold_name("Ibañez"), "ibanez");
    }

    #[test]
    fn emails() {
        assert_eq!(
            canonical_email("Holly.Barnes+PROMO@yahoo.co.uk"),
            "holly.barnes@yahoo.co.uk"
        );
        assert_eq!(canonical_email("j.o.e@googlemail.com"), "joe@gmail.com");
        assert!(is_placeholder_email("noemail@noemail.com"));
        assert!(is_placeholder_email("customer@example.com"));
        assert!(!is_placeholder_email("ann@web.de"));
    }

    #[test]
    fn placeholder_phones() {
        assert!(is_placeholder_phone(1_234_567_890));
        assert!(is_placeholder_phone(440_000_000_000));
        assert!(!is_placeholder_phone(14_155_552_671));
        assert!(!is_placeholder_phone(0));
    }

    #[test]
    fn streets() {
        assert_eq!(normalize_street("25 White Dr."), "25 white drive");
        assert_eq!(normalize_street("25 White Drive"), "25 white drive");
        assert_eq!(normalize_street("Albersstr. 3609"), "albersstrasse 3609");
        assert_eq!(
            normalize_street("C. Angelina Ibañez 59"),
            "c angelina ibanez 59"
        );
    }

    #[test]
    fn soundex_codes() {
        let s = |n: &str| {
            let v = soundex(n);
            format!(
                "{}{}{}{}",
                char::from((v >> 16) as u8),
                v >> 8 & 0xf,
                v >> 4 & 0xf,
                v & 0xf
            )
        };
        assert_eq!(s("robert"), "r163");
        assert_eq!(s("rupert"), "r163");
        assert_eq!(s("ashcraft"), "a261");
        assert_eq!(s("tymczak"), "t522");
        assert_eq!(s("pfister"), "p236");
        assert_eq!(soundex(""), 0);
    }
}
