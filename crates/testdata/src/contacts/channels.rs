//! [`Profile::Channels`](super::Profile::Channels): every record is one channel's view of a
//! person, and duplicates carry noise at the rates of the shared sample's tallies.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;

use super::{
    DOMAINS, NICK, Person, STREET_B, fold_ascii, last_name, new_person, phone_for, pick, typo,
    write_row,
};

/// Records per person (1–9), weights per ten thousand people: the sample's cluster sizes.
const SIZES: [(u8, u32); 9] = [
    (1, 8362),
    (2, 1070),
    (3, 372),
    (4, 124),
    (5, 56),
    (6, 10),
    (7, 4),
    (8, 1),
    (9, 1),
];

/// Channels and their shares of records, in percent.
const SOURCES: [(&str, u32); 6] = [
    ("crm", 30),
    ("web", 20),
    ("ivr", 15),
    ("chat", 15),
    ("import", 10),
    ("email", 10),
];

/// Placeholders agents type for people who gave none, shared by unrelated records.
const PLACEHOLDER_EMAILS: [&str; 5] = [
    "noemail@noemail.com",
    "none@none.com",
    "na@na.com",
    "customer@example.com",
    "no@email.com",
];

fn weighted<T: Copy>(rng: &mut fastrand::Rng, xs: &[(T, u32)]) -> T {
    let total: u32 = xs.iter().map(|x| x.1).sum();
    let mut roll = rng.u32(..total);
    for &(v, w) in xs {
        if roll < w {
            return v;
        }
        roll -= w;
    }
    xs[0].0
}

fn chance(rng: &mut fastrand::Rng, per_thousand: u32) -> bool {
    rng.u32(..1000) < per_thousand
}

/// A person whose surname follows a skewed distribution (a few very common ones, as real
/// surnames do) and whose mailbox is, one time in three, built from the name alone
/// (`pierre.renaud@…`, `prenaud@…`), which namesakes can share.
fn person(rng: &mut fastrand::Rng) -> Person {
    let mut p = new_person(rng);
    if p.country == "US" || p.country == "GB" {
        // Squared uniform: low indexes are common.
        if rng.u8(..4) == 0 {
            let i = (rng.f64() * rng.f64() * 40.0) as usize;
            p.last = super::LAST_A[i % super::LAST_A.len()].to_owned() + super::LAST_B[i % 7];
        }
    }
    if rng.u8(..3) == 0 {
        let (f, l) = (
            fold_ascii(&p.first).to_lowercase().replace(' ', ""),
            fold_ascii(&p.last).to_lowercase().replace(' ', ""),
        );
        let initial = f.chars().next().unwrap_or('x');
        let local = match rng.u8(..4) {
            0 => format!("{f}.{l}"),
            1 => format!("{initial}{l}"),
            2 => format!("{l}.{f}"),
            _ => format!("{f}{l}"),
        };
        p.email = format!("{local}@{}", pick(rng, DOMAINS));
    }
    p
}

/// What one channel keeps of a person: each channel drops fields at its own rates.
fn view(rng: &mut fastrand::Rng, p: &Person, source: &str) -> Person {
    let mut d = p.clone();
    // Per mille kept: first, last, e-mail, phone, address.
    let keep: [u32; 5] = match source {
        "crm" => [990, 990, 800, 950, 850],
        "import" => [990, 990, 700, 900, 900],
        "web" => [990, 980, 950, 500, 500],
        "ivr" => [500, 450, 100, 1000, 80],
        "chat" => [950, 650, 850, 350, 50],
        _ => [750, 750, 920, 120, 50],
    };
    if !chance(rng, keep[0]) {
        d.first.clear();
    }
    if !chance(rng, keep[1]) {
        d.last.clear();
    }
    if !chance(rng, keep[2]) {
        d.email.clear();
    }
    if !chance(rng, keep[3]) {
        d.phone.clear();
    }
    if !chance(rng, keep[4]) {
        d.street.clear();
        d.city.clear();
        d.postcode.clear();
    }
    d
}

/// The noise of one duplicate record, each kind at its own rate (per mille, from the sample's
/// tallies over its duplicates), several kinds at once.
fn noise(rng: &mut fastrand::Rng, d: &mut Person) {
    if chance(rng, 17) && !d.last.is_empty() {
        // Married: a new family name, or the new one joined to the old; the phone and the
        // personal e-mail stay, a work e-mail sometimes comes with the new name.
        let new = last_name(rng);
        d.last = if rng.bool() {
            new
        } else {
            format!("{new}-{}", d.last)
        };
        if rng.u8(..4) == 0 && !d.email.is_empty() {
            let f = fold_ascii(&d.first).to_lowercase().replace(' ', "");
            let l = fold_ascii(&d.last).to_lowercase().replace([' ', '-'], "");
            d.email = format!("{f}.{l}@{}", pick(rng, DOMAINS));
        }
    }
    if chance(rng, 70) {
        d.first = typo(rng, &d.first);
    }
    if chance(rng, 68) {
        d.last = typo(rng, &d.last);
    }
    if chance(rng, 15)
        && let Some((_, n)) = NICK.iter().find(|(f, _)| *f == d.first)
    {
        d.first = (*n).to_owned();
    }
    if chance(rng, 30)
        && let Some(c) = d.first.chars().next()
    {
        d.first = if rng.bool() {
            format!("{c}.")
        } else {
            c.to_string()
        };
    }
    if chance(rng, 21) {
        std::mem::swap(&mut d.first, &mut d.last);
    }
    if chance(rng, 18) {
        d.first = fold_ascii(&d.first);
        d.last = fold_ascii(&d.last);
    }
    if chance(rng, 3) {
        d.first = (*pick(rng, &["Test", "N/A", "xxx", "Unknown", "Customer"])).to_owned();
    }
    if !d.email.is_empty() {
        if chance(rng, 42) {
            // Another mailbox of the same person: a work address or a new one.
            let f = fold_ascii(&d.first).to_lowercase().replace(' ', "");
            d.email = format!("{f}{}@{}", rng.u16(1..999), pick(rng, DOMAINS));
        } else if chance(rng, 30) {
            // The same mailbox written another way: a tag, or dots where the provider
            // ignores them.
            let (local, domain) = d.email.split_once('@').unwrap_or(("x", "x.com"));
            d.email = match (domain, rng.u8(..3)) {
                ("gmail.com", 0) => format!("{}@googlemail.com", local),
                ("gmail.com", 1) => {
                    let mut l: String = local.replace('.', "");
                    if l.len() > 2 {
                        l.insert(rng.usize(1..l.len()), '.');
                    }
                    format!("{l}@gmail.com")
                }
                _ => format!(
                    "{local}+{}@{domain}",
                    pick(rng, &["shop", "news", "promo", "crm"])
                ),
            };
        } else if chance(rng, 57) {
            let (local, domain) = d.email.split_once('@').unwrap_or(("x", "x.com"));
            d.email = format!("{}@{domain}", typo(rng, local));
        }
        if chance(rng, 200) {
            d.email = if rng.bool() {
                d.email.to_uppercase()
            } else {
                let (local, domain) = d.email.split_once('@').unwrap_or(("x", "x.com"));
                let mut cs = local.chars();
                let head: String = cs
                    .next()
                    .map(|c| c.to_uppercase().collect())
                    .unwrap_or_default();
                format!("{head}{}@{}", cs.as_str(), domain.to_uppercase())
            };
        }
    }
    if chance(rng, 21) {
        d.email = (*pick(rng, &PLACEHOLDER_EMAILS)).to_owned();
    }
    if !d.phone.is_empty() {
        if chance(rng, 96) {
            d.phone = phone_for(rng, d.country);
        } else if chance(rng, 20) {
            let mut cs: Vec<char> = d.phone.chars().collect();
            let i = rng.usize(cs.len() - 7..cs.len());
            cs[i] = char::from(b'0' + rng.u8(..10));
            d.phone = cs.into_iter().collect();
        }
    }
    if chance(rng, 11) {
        d.phone = match d.country {
            "US" => (*pick(rng, &["+12345678900", "+10000000000", "+19999999999"])).to_owned(),
            "GB" => "+447000000000".to_owned(),
            "DE" => "+4915000000000".to_owned(),
            "FR" => "+33600000000".to_owned(),
            _ => "+34600000000".to_owned(),
        };
    }
    if !d.street.is_empty() {
        if chance(rng, 44) {
            let moved = new_person(rng);
            d.street = moved.street;
            d.city = moved.city;
            d.postcode = moved.postcode;
        }
        if chance(rng, 59) {
            for (long, short) in STREET_B {
                d.street = d.street.replace(long, short);
            }
        }
        if chance(rng, 54) {
            d.street = typo(rng, &d.street);
        }
        if chance(rng, 128) {
            d.street = d.street.to_lowercase();
            d.city = d.city.to_uppercase();
        }
        if chance(rng, 29) {
            d.postcode.clear();
        }
    }
    if chance(rng, 242) {
        match rng.u8(..3) {
            0 => d.first = d.first.to_uppercase(),
            1 => d.last = d.last.to_lowercase(),
            _ => {
                d.first = d.first.to_lowercase();
                d.last = d.last.to_uppercase();
            }
        }
    }
    if chance(rng, 249) {
        d.first = format!("{}  ", d.first);
        d.last = format!(" {}", d.last);
    }
}

/// The file being written and the truth so far.
struct Out {
    w: csv::Writer<BufWriter<File>>,
    truth: Vec<(String, String)>,
    records: u64,
    entity: u64,
}

impl Out {
    /// Writes the records of one person (one to nine of them, as the sample's cluster sizes).
    fn person(&mut self, rng: &mut fastrand::Rng, p: &Person) -> anyhow::Result<()> {
        self.entity += 1;
        let eid = format!("E{:08}", self.entity);
        let k = weighted(rng, &SIZES);
        for i in 0..k {
            let n = self.truth.len() as u64;
            if n >= self.records {
                break;
            }
            let source = weighted(rng, &SOURCES);
            let mut d = view(rng, p, source);
            if i > 0 {
                noise(rng, &mut d);
            }
            let id = format!("R{:09}", n + 1);
            write_row(&mut self.w, &id, source, &d, rng)?;
            self.truth.push((id, eid.clone()));
        }
        Ok(())
    }
}

/// Writes the export and returns the truth (see [`super::generate_with`]).
pub(super) fn generate(
    path: &Path,
    records: u64,
    seed: u64,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, f));
    let header = dedupd_core::matching::COLUMNS.iter().map(|c| c.name());
    w.write_record(header.chain(["updated_at"]))?;
    let mut out = Out {
        w,
        truth: Vec::with_capacity(records as usize),
        records,
        entity: 0,
    };
    while (out.truth.len() as u64) < records {
        let p = person(&mut rng);
        out.person(&mut rng, &p)?;
        // A household member: the same surname and address, often the same landline, a
        // given name and mailbox of their own.
        if rng.u8(..25) == 0 {
            // Someone of the same country (a given name of its own language).
            let mut h = person(&mut rng);
            for _ in 0..20 {
                if h.country == p.country {
                    break;
                }
                h = person(&mut rng);
            }
            h.last = p.last.clone();
            h.street = p.street.clone();
            h.city = p.city.clone();
            h.postcode = p.postcode.clone();
            h.country = p.country;
            if rng.bool() {
                h.phone = p.phone.clone();
            } else {
                h.phone = phone_for(&mut rng, h.country);
            }
            out.person(&mut rng, &h)?;
        }
    }
    out.w.flush()?;
    Ok(out.truth)
}
