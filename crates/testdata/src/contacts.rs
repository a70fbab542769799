//! A synthetic contact export in the shape of real contact-center data, with known duplicates
//! (the input of `dedupd-bench merge` and of the merge plan tests), and its truth.
//!
//! The generator is independent of the shared 20k sample: its own name pools, formats and noise
//! rates, so the matcher is measured on data of the same *kind*, not on the file it was built
//! with. People live in five countries; about one record in five is a duplicate of another
//! person's record, with the noise contact centers see: case and whitespace, typos, nicknames,
//! initials, swapped and married names, dropped diacritics, e-mail tags and typos, second
//! phones and e-mails, moves, abbreviated streets, IVR records with only a phone, chat records
//! with only an e-mail. Hard negatives: household members sharing a surname, address and
//! landline; namesakes; placeholder phones and e-mails shared by unrelated people.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;

mod channels;

const FIRST_EN: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Margaret",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Dorothy",
    "Paul",
    "Kimberly",
    "Andrew",
    "Emily",
    "Joshua",
    "Donna",
    "Kenneth",
    "Michelle",
    "Kevin",
    "Carol",
    "Brian",
    "Amanda",
    "George",
    "Melissa",
    "Edward",
    "Deborah",
    "Ronald",
    "Stephanie",
    "Timothy",
    "Rebecca",
    "Jason",
    "Laura",
    "Jeffrey",
    "Sharon",
    "Ryan",
    "Cynthia",
    "Jacob",
    "Kathleen",
    "Gary",
    "Amy",
    "Nicholas",
    "Shirley",
    "Eric",
    "Angela",
    "Jonathan",
    "Helen",
    "Stephen",
    "Anna",
    "Larry",
    "Brenda",
    "Justin",
    "Pamela",
    "Scott",
    "Nicole",
    "Brandon",
    "Samantha",
    "Frank",
    "Katherine",
    "Benjamin",
    "Emma",
    "Gregory",
    "Ruth",
    "Samuel",
    "Christine",
    "Raymond",
    "Catherine",
    "Patrick",
    "Debra",
    "Alexander",
    "Rachel",
    "Jack",
    "Carolyn",
    "Dennis",
    "Janet",
    "Jerry",
    "Virginia",
    "Tyler",
    "Maria",
    "Aaron",
    "Heather",
    "Jose",
    "Diane",
    "Henry",
    "Julie",
    "Adam",
    "Joyce",
    "Douglas",
    "Victoria",
    "Nathan",
    "Kelly",
    "Peter",
    "Christina",
    "Zachary",
    "Joan",
    "Kyle",
    "Evelyn",
    "Walter",
    "Lauren",
    "Harold",
    "Judith",
    "Jeremy",
    "Olivia",
    "Ethan",
    "Frances",
    "Carl",
    "Martha",
    "Keith",
    "Cheryl",
    "Roger",
    "Megan",
    "Gerald",
    "Andrea",
];
const FIRST_DE: &[&str] = &[
    "Hans",
    "Jürgen",
    "Klaus",
    "Wolfgang",
    "Günter",
    "Uwe",
    "Dieter",
    "Stefan",
    "Andreas",
    "Thomas",
    "Michael",
    "Frank",
    "Jörg",
    "Matthias",
    "Sabine",
    "Ursula",
    "Monika",
    "Petra",
    "Renate",
    "Brigitte",
    "Karin",
    "Helga",
    "Gisela",
    "Andrea",
    "Birgit",
    "Anja",
    "Jutta",
    "Katrin",
    "Claudia",
    "Susanne",
    "Heike",
    "Björn",
    "Lukas",
    "Felix",
    "Maximilian",
    "Leonie",
    "Lea",
    "Hannah",
    "Jörn",
    "Sören",
    "Mareike",
    "Friederike",
    "Gerd",
    "Horst",
    "Bärbel",
];
const FIRST_FR: &[&str] = &[
    "Jean",
    "Pierre",
    "Michel",
    "André",
    "Philippe",
    "René",
    "Louis",
    "Alain",
    "Jacques",
    "Bernard",
    "Marie",
    "Nathalie",
    "Isabelle",
    "Sylvie",
    "Catherine",
    "Françoise",
    "Valérie",
    "Céline",
    "Hélène",
    "Élodie",
    "Aurélie",
    "Stéphane",
    "Sébastien",
    "Jérôme",
    "Frédéric",
    "Thierry",
    "Noémie",
    "Inès",
    "Léa",
    "Chloé",
    "Benoît",
    "Gaëlle",
    "Josiane",
    "Raphaël",
];
const FIRST_ES: &[&str] = &[
    "José",
    "Antonio",
    "Manuel",
    "Francisco",
    "Juan",
    "David",
    "Javier",
    "Jesús",
    "Daniel",
    "Carlos",
    "Miguel",
    "Rafael",
    "Pedro",
    "Ángel",
    "Alejandro",
    "María",
    "Carmen",
    "Josefa",
    "Isabel",
    "Ana",
    "Dolores",
    "Pilar",
    "Teresa",
    "Rosa",
    "Lucía",
    "Cristina",
    "Marta",
    "Concepción",
    "Mercedes",
    "Begoña",
    "Íñigo",
    "Sofía",
    "Martín",
    "Raúl",
    "Nuria",
    "Álvaro",
];
const NICK: &[(&str, &str)] = &[
    ("William", "Bill"),
    ("Robert", "Bob"),
    ("Elizabeth", "Liz"),
    ("Margaret", "Peggy"),
    ("Richard", "Dick"),
    ("Katherine", "Kate"),
    ("Christopher", "Chris"),
    ("Michael", "Mike"),
    ("Jennifer", "Jenny"),
    ("Joseph", "Joe"),
    ("Thomas", "Tom"),
    ("Anthony", "Tony"),
    ("Samantha", "Sam"),
    ("Francisco", "Paco"),
    ("José", "Pepe"),
    ("Dolores", "Lola"),
    ("Andreas", "Andi"),
    ("Matthias", "Matze"),
    ("Nicholas", "Nick"),
    ("Alexander", "Alex"),
];
const LAST_A: &[&str] = &[
    "Har", "Wil", "John", "Ander", "Thom", "Rob", "Mar", "Whit", "Cart", "Bak", "Wright", "Hill",
    "Green", "Ad", "Nel", "Mitch", "Rob", "Turn", "Park", "Ed", "Coll", "Stew", "Morr", "Mur",
    "Cook", "Rog", "Bell", "Kell", "How", "Ward", "Fos", "Brook", "Bent", "Gray", "Jam", "Wat",
    "Sand", "Rich", "Ash", "Craw", "Hol", "Fitz", "Mac", "Dun", "Kirk", "Lang", "Lind", "Stock",
];
const LAST_B: &[&str] = &[
    "ris", "son", "ley", "ton", "ers", "field", "ford", "well", "man", "wood", "by", "worth",
    "ham", "stone", "more", "ridge", "land", "er", "ing", "ell", "ham", "ock", "bury", "ins",
];
const LAST_DE: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Schmitz",
    "Krause",
    "Meier",
    "Lehmann",
    "Schmid",
    "Köhler",
    "Günther",
    "Groß",
];
const LAST_FR: &[&str] = &[
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Lefebvre",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
];
const LAST_ES: &[&str] = &[
    "García",
    "Rodríguez",
    "González",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Alonso",
    "Gutiérrez",
    "Navarro",
    "Torres",
    "Domínguez",
    "Vázquez",
    "Ramos",
    "Gil",
    "Ramírez",
    "Serrano",
    "Blanco",
    "Molina",
    "Morales",
    "Suárez",
    "Ortega",
    "Delgado",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "aol.com",
    "web.de",
    "gmx.de",
    "t-online.de",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "telefonica.es",
    "yahoo.es",
    "btinternet.com",
    "sky.com",
    "yahoo.co.uk",
    "proton.me",
];
const STREET_A: &[&str] = &[
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Pine",
    "Lake",
    "Hill",
    "River",
    "Park",
    "Mill",
    "Church",
    "Station",
    "Victoria",
    "King",
    "Queen",
    "Bahnhof",
    "Linden",
    "Garten",
    "Schiller",
    "Goethe",
    "Liberté",
    "Victor Hugo",
    "Pasteur",
    "Jean Jaurès",
    "Mayor",
    "Real",
    "Sol",
    "Alcalá",
];
const STREET_B: &[(&str, &str)] = &[
    ("Street", "St."),
    ("Avenue", "Ave"),
    ("Road", "Rd"),
    ("Drive", "Dr."),
    ("Lane", "Ln"),
    ("Court", "Ct"),
    ("Boulevard", "Blvd"),
];
const CITY_A: &[&str] = &[
    "Spring", "Fair", "Green", "Clear", "Ash", "Red", "West", "North", "East", "South", "New",
    "Bad", "Neu", "Saint", "Villa", "San", "Port", "Lake", "Mount", "Glen",
];
const CITY_B: &[&str] = &[
    "field", "view", "ford", "ton", "ville", "burg", "dorf", "haven", "wood", "port", "mont",
    "bridge", "stadt", "heim", "mouth", "dale",
];
const COUNTRIES: &[(&str, u32)] = &[("US", 55), ("GB", 15), ("DE", 12), ("FR", 10), ("ES", 8)];

#[derive(Clone)]
struct Person {
    first: String,
    last: String,
    email: String,
    phone: String,
    street: String,
    city: String,
    postcode: String,
    country: &'static str,
}

fn pick<'a, T>(rng: &mut fastrand::Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.usize(..xs.len())]
}

fn digits(rng: &mut fastrand::Rng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.u8(..10))).collect()
}

fn fold_ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ä' | 'á' | 'à' | 'â' => 'a',
            'ö' | 'ó' | 'ô' => 'o',
            'ü' | 'ú' | 'û' => 'u',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ï' | 'î' => 'i',
            'ñ' => 'n',
            'ç' => 'c',
            'Á' => 'A',
            'É' => 'E',
            'Í' => 'I',
            'Ó' => 'O',
            'Ú' => 'U',
            'Ä' => 'A',
            'Ö' => 'O',
            'Ü' => 'U',
            'ß' => 's',
            _ => c,
        })
        .collect()
}

fn phone_for(rng: &mut fastrand::Rng, country: &str) -> String {
    match country {
        // NANP: area and exchange codes start 2–9.
        "US" => format!(
            "+1{}{}{}{}",
            rng.u8(2..10),
            digits(rng, 2),
            rng.u8(2..10),
            digits(rng, 6)
        ),
        "GB" => format!("+447{}", digits(rng, 9)),
        "DE" => format!("+4915{}", digits(rng, 9)),
        "FR" => format!("+336{}", digits(rng, 8)),
        _ => format!("+346{}", digits(rng, 8)),
    }
}

/// A phone as a channel writes it: E.164, national or spaced.
fn render_phone(rng: &mut fastrand::Rng, e164: &str, country: &str) -> String {
    let national = |cc: usize| format!("0{}", &e164[cc..]);
    match (country, rng.u8(..3)) {
        (_, 0) => e164.to_owned(),
        ("US", 1) => format!("({}) {}-{}", &e164[2..5], &e164[5..8], &e164[8..]),
        ("US", _) => format!("{}.{}.{}", &e164[2..5], &e164[5..8], &e164[8..]),
        ("GB", _) => national(3),
        ("DE", 1) => national(3),
        ("DE", _) => format!("0049 {}", &e164[3..]),
        ("FR", _) => national(3),
        _ => e164[3..].to_owned(),
    }
}

fn new_person(rng: &mut fastrand::Rng) -> Person {
    let roll = rng.u32(..100);
    let mut acc = 0;
    let country = COUNTRIES
        .iter()
        .find(|(_, w)| {
            acc += w;
            roll < acc
        })
        .map_or("US", |(c, _)| c);
    let (first, last) = match country {
        "DE" => (
            pick(rng, FIRST_DE).to_string(),
            pick(rng, LAST_DE).to_string(),
        ),
        "FR" => (
            pick(rng, FIRST_FR).to_string(),
            pick(rng, LAST_FR).to_string(),
        ),
        "ES" => (
            pick(rng, FIRST_ES).to_string(),
            format!("{} {}", pick(rng, LAST_ES), pick(rng, LAST_ES)),
        ),
        _ => (pick(rng, FIRST_EN).to_string(), last_name(rng)),
    };
    // A mailbox belongs to one person: real addresses of namesakes differ by a number, a
    // middle initial or a nickname, so every local part carries something of its own.
    let local = match rng.u8(..4) {
        0 => format!("{}.{}{}", first, last, rng.u16(1..1000)),
        1 => format!(
            "{}{}{}",
            first.chars().next().unwrap_or('x'),
            last,
            rng.u16(100..10000)
        ),
        2 => format!("{}{}", first, rng.u32(1000..1_000_000)),
        _ => format!("{}_{}.{}", first, last, char::from(b'a' + rng.u8(..26))),
    };
    let local = fold_ascii(&local).to_lowercase().replace(' ', "");
    let email = format!("{local}@{}", pick(rng, DOMAINS));
    let (street_name, (suffix, _)) = (pick(rng, STREET_A), pick(rng, STREET_B));
    let street = format!("{} {street_name} {suffix}", rng.u16(1..9999));
    let city = format!("{}{}", pick(rng, CITY_A), pick(rng, CITY_B));
    let postcode = match country {
        "GB" => format!(
            "{}{} {}{}",
            char::from(b'A' + rng.u8(..26)),
            rng.u8(1..99),
            rng.u8(1..10),
            char::from(b'A' + rng.u8(..26))
        ),
        _ => digits(rng, 5),
    };
    Person {
        first,
        last,
        email,
        phone: phone_for(rng, country),
        street,
        city,
        postcode,
        country,
    }
}

/// An English-looking surname from syllables: about nine thousand, common ones more often.
fn last_name(rng: &mut fastrand::Rng) -> String {
    const MID: &[&str] = &["a", "e", "i", "o", "en", "er", "ing", "el"];
    if rng.bool() {
        format!("{}{}", pick(rng, LAST_A), pick(rng, LAST_B))
    } else {
        format!(
            "{}{}{}",
            pick(rng, LAST_A),
            pick(rng, MID),
            pick(rng, LAST_B)
        )
    }
}

fn typo(rng: &mut fastrand::Rng, s: &str) -> String {
    let mut cs: Vec<char> = s.chars().collect();
    if cs.len() < 3 {
        return s.to_owned();
    }
    let i = rng.usize(1..cs.len() - 1);
    match rng.u8(..3) {
        0 => cs.swap(i, i + 1),
        1 => {
            cs.remove(i);
        }
        _ => cs[i] = char::from(b'a' + rng.u8(..26)),
    }
    cs.into_iter().collect()
}

/// One duplicate record of a person, as some channel captured it.
fn duplicate(rng: &mut fastrand::Rng, p: &Person) -> (Person, &'static str) {
    let mut d = p.clone();
    let source = *pick(rng, &["crm", "ivr", "chat", "email", "web", "import"]);
    match source {
        // Voice: a phone and sometimes a first name.
        "ivr" => {
            d.last.clear();
            d.email.clear();
            d.street.clear();
            d.city.clear();
            d.postcode.clear();
            if rng.bool() {
                d.first.clear();
            }
        }
        // Chat and e-mail: no phone, often no address.
        "chat" | "email" => {
            d.phone.clear();
            d.street.clear();
            d.city.clear();
            d.postcode.clear();
            if rng.u8(..3) == 0 {
                d.last.clear();
            }
        }
        _ => {}
    }
    let noise = rng.u8(..20);
    match noise {
        0 | 1 => d.first = typo(rng, &d.first),
        2 | 3 => d.last = typo(rng, &d.last),
        4 => {
            if let Some((_, n)) = NICK.iter().find(|(f, _)| *f == d.first) {
                d.first = (*n).to_owned();
            } else if !d.first.is_empty() {
                d.first = format!(
                    "{}.",
                    &d.first[..d.first.chars().next().map_or(1, char::len_utf8)]
                );
            }
        }
        5 => std::mem::swap(&mut d.first, &mut d.last),
        6 => {
            d.last = last_name(rng);
        }
        7 => {
            d.first = fold_ascii(&d.first);
            d.last = fold_ascii(&d.last);
        }
        8 if !d.email.is_empty() => {
            let (l, dom) = d.email.split_once('@').unwrap_or((&p.email, "x.com"));
            d.email = format!("{l}+{}@{dom}", pick(rng, &["shop", "news", "promo"]));
        }
        9 if !d.email.is_empty() => d.email = typo(rng, &d.email),
        10 if !d.phone.is_empty() => d.phone = phone_for(rng, d.country),
        11 if !d.email.is_empty() => {
            d.email = format!(
                "{}{}@{}",
                fold_ascii(&d.first).to_lowercase(),
                rng.u16(1..999),
                pick(rng, DOMAINS)
            )
        }
        12 if !d.street.is_empty() => {
            let moved = new_person(rng);
            d.street = moved.street;
            d.city = moved.city;
            d.postcode = moved.postcode;
        }
        13 if !d.street.is_empty() => {
            for (long, short) in STREET_B {
                d.street = d.street.replace(long, short);
            }
        }
        14 => {
            d.first = d.first.to_uppercase();
            d.last = d.last.to_lowercase();
        }
        15 if !d.phone.is_empty() => {
            // One mistyped digit.
            let mut cs: Vec<char> = d.phone.chars().collect();
            let i = rng.usize(4..cs.len());
            cs[i] = char::from(b'0' + rng.u8(..10));
            d.phone = cs.into_iter().collect();
        }
        16 => d.first = format!("  {} ", d.first),
        _ => {}
    }
    if rng.u8(..4) == 0 {
        d.email = d.email.to_uppercase();
    }
    (d, source)
}

fn write_row(
    w: &mut csv::Writer<BufWriter<File>>,
    id: &str,
    source: &str,
    p: &Person,
    rng: &mut fastrand::Rng,
) -> anyhow::Result<()> {
    let phone = if p.phone.is_empty() {
        String::new()
    } else {
        render_phone(rng, &p.phone, p.country)
    };
    let ts = format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        rng.u8(18..26),
        rng.u8(1..13),
        rng.u8(1..29),
        rng.u8(..24),
        rng.u8(..60),
        rng.u8(..60)
    );
    w.write_record([
        id,
        source,
        &p.first,
        &p.last,
        &p.email,
        &phone,
        &p.street,
        &p.city,
        "",
        &p.postcode,
        p.country,
        &ts,
    ])?;
    Ok(())
}

/// The kind of export [`generate_with`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Every person's first record is a complete CRM row; duplicates add one kind of noise each
    /// (the data of `dedupd-bench merge` since 2026-11; [`generate`] writes it).
    Classic,
    /// Every record, the first one too, is what one channel captured of a person (CRM and
    /// imports nearly complete, web forms without a phone or address half the time, IVR rows
    /// with a phone and perhaps a name, chat and e-mail rows with an address and a partial
    /// name), and duplicates carry several kinds of noise at once at the rates of the shared
    /// sample's tallies (`contacts_20k_meta.json`): married names that keep the phone and
    /// e-mail, e-mails differing in case, dots and tags, second phones and e-mails, moves,
    /// placeholders, junk names. Namesakes are as common as in real name distributions, and
    /// some mailboxes are built from names alone, so two namesakes can hold similar ones.
    Channels,
}

impl Profile {
    /// The profile's name on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Classic => "classic",
            Profile::Channels => "channels",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            "classic" => Ok(Profile::Classic),
            "channels" => Ok(Profile::Channels),
            other => Err(format!(
                "unknown profile {other:?} (expected classic or channels)"
            )),
        }
    }
}

/// Writes `records` synthetic contacts of the [`Profile::Classic`] kind to `path`; see
/// [`generate_with`].
pub fn generate(path: &Path, records: u64, seed: u64) -> anyhow::Result<Vec<(String, String)>> {
    generate_with(path, records, seed, Profile::Classic)
}

/// Writes `records` synthetic contacts of the `profile`'s kind to `path` (the sample's columns)
/// and returns the truth: each record id with its person's id.
pub fn generate_with(
    path: &Path,
    records: u64,
    seed: u64,
    profile: Profile,
) -> anyhow::Result<Vec<(String, String)>> {
    match profile {
        Profile::Classic => generate_classic(path, records, seed),
        Profile::Channels => channels::generate(path, records, seed),
    }
}

fn generate_classic(path: &Path, records: u64, seed: u64) -> anyhow::Result<Vec<(String, String)>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, f));
    // The matcher's own column names: the default layout of `merge plan --input`.
    let header = dedupd_core::matching::COLUMNS.iter().map(|c| c.name());
    w.write_record(header.chain(["updated_at"]))?;
    let mut truth = Vec::with_capacity(records as usize);
    let mut n = 0u64;
    let mut entity = 0u64;
    let placeholders_email = [
        "noemail@noemail.com",
        "none@none.com",
        "customer@example.com",
    ];
    let placeholder_phone = "+12345678900";
    while n < records {
        entity += 1;
        let eid = format!("E{entity:08}");
        let mut p = new_person(&mut rng);
        // Placeholders typed by agents for unrelated people.
        match rng.u16(..200) {
            0 => p.email = (*pick(&mut rng, &placeholders_email)).to_owned(),
            1 if p.country == "US" => p.phone = placeholder_phone.to_owned(),
            _ => {}
        }
        let mut emit =
            |p: &Person, source: &str, rng: &mut fastrand::Rng, eid: &str| -> anyhow::Result<()> {
                if n >= records {
                    return Ok(());
                }
                n += 1;
                let id = format!("R{n:09}");
                write_row(&mut w, &id, source, p, rng)?;
                truth.push((id, eid.to_owned()));
                Ok(())
            };
        emit(&p, "crm", &mut rng, &eid)?;
        // About 20 % of records are duplicates: 1 in 6 people has 1–4 more records.
        if rng.u8(..6) == 0 {
            let k = 1 + rng.u8(..4).min(rng.u8(..4));
            for _ in 0..k {
                let (d, source) = duplicate(&mut rng, &p);
                emit(&d, source, &mut rng, &eid)?;
            }
        }
        // Household member: same surname, address and landline, own first name and e-mail.
        if rng.u8(..25) == 0 {
            entity += 1;
            let hid = format!("E{entity:08}");
            let mut h = new_person(&mut rng);
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
            emit(&h, "crm", &mut rng, &hid)?;
        }
    }
    w.flush()?;
    truth.truncate(records as usize);
    Ok(truth)
}
