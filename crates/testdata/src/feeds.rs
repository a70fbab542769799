//! Multi-source feeds for `dedupd ingest` (the input of `dedupd-bench ingest`): N records in the
//! shapes of the sample feeds (a CSV with national and international phones, an NDJSON web-form
//! export with full names and epoch times, a JSON array billing export with nested contacts,
//! offsets and CLOSED statuses) and the feeds config that reads them.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

/// SplitMix64: a tiny deterministic generator; the data only has to look like real feeds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[usize::try_from(self.below(xs.len() as u64)).unwrap_or(0)]
    }
}

/// First names (sync contacts reuse them).
pub const FIRST: &[&str] = &[
    "Katie", "Steven", "Lewis", "Tracey", "Derek", "Connie", "Brian", "Jennifer", "Ranveer",
    "Janna", "Leander", "Chaaya", "Ingbert", "Nicole", "Miguel", "Seán", "Zoë",
];
/// Last names (sync contacts reuse them).
pub const LAST: &[&str] = &[
    "Smith",
    "Hubbard",
    "Thorpe",
    "Wilson",
    "Hughes",
    "Kent",
    "Moore",
    "Sanchez",
    "Goyal",
    "Stumpf",
    "Bärer",
    "Venkatesh",
    "Austermühle",
    "Cruz",
    "O'Brien",
    "McDonald",
    "Dean",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "hotmail.de",
    "outlook.com",
    "gmx.de",
];

/// A customer's phone in one of the notations the sample feeds use; all are valid numbers.
fn phone(rng: &mut Rng, cust: u64) -> String {
    let n = cust % 10_000_000;
    let (a, b) = (200 + n / 10_000 % 800, n % 10_000);
    match rng.below(7) {
        0 => format!("+1 201-{a:03}-{b:04}"),
        1 => format!("(201) {a:03}-{b:04}"),
        2 => format!("201.{a:03}.{b:04}"),
        3 => format!("001201{a:03}{b:04}"),
        4 => format!("+44 7400 {:06}", n % 1_000_000),
        5 => format!("+4915{:09}", 100_000_000 + n % 900_000_000),
        _ => format!("+61412{:06}", n % 1_000_000),
    }
}

/// A buffered new file `name` in `dir`.
fn create(dir: &Path, name: &str) -> anyhow::Result<BufWriter<File>> {
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// Writes crm.csv, webform.ndjson, billing.json and feeds.toml; returns (customers drawn,
/// update rows). With `changed_pct > 0`, that share of customers gets one more, newer CRM row
/// with a new e-mail (appended; the other records are the same as with 0 %).
pub fn generate(
    dir: &Path,
    records: u64,
    seed: u64,
    changed_pct: f64,
) -> anyhow::Result<(u64, u64)> {
    let customers = (records / 2).max(1);
    let mut crm = create(dir, "crm.csv")?;
    let mut web = create(dir, "webform.ndjson")?;
    let mut bill = create(dir, "billing.json")?;
    writeln!(
        crm,
        "Customer ID,First Name,Last Name,Mobile,Email,Account No,Updated At"
    )?;
    writeln!(bill, "[")?;
    let mut first_bill = true;
    let mut rng = Rng(seed);
    let base = 1_709_251_200u64; // 2024-03-01T00:00:00Z
    let threshold = (changed_pct / 100.0 * 1_000_000.0) as u64;
    let mut line = String::with_capacity(256);
    for r in 0..records {
        let cust = rng.below(customers);
        let first = FIRST[(cust % FIRST.len() as u64) as usize];
        let last = LAST[(cust / 7 % LAST.len() as u64) as usize];
        let dom = rng.pick(DOMAINS);
        let ts = base + rng.below(60 * 86_400);
        let ph = phone(&mut rng, cust);
        line.clear();
        match r % 10 {
            0..=3 => {
                let email = format!(
                    "{}.{}{cust}@{dom}",
                    first.to_lowercase(),
                    last.to_lowercase()
                );
                let t = chrono::DateTime::from_timestamp(ts as i64, 0).unwrap_or_default();
                let first = if r % 3 == 0 {
                    first.to_uppercase()
                } else {
                    first.to_owned()
                };
                let quoted_last = if last.contains('\'') {
                    format!("\"{last}\"")
                } else {
                    last.to_owned()
                };
                writeln!(
                    line,
                    "  CUST-{cust} \t,{first},{quoted_last},{ph},{email},ACC{cust:08},{}",
                    t.format("%Y-%m-%d %H:%M:%S")
                )?;
                crm.write_all(line.as_bytes())?;
            }
            4..=6 => {
                let v = serde_json::json!({
                    "cust_id": format!("CUST-{cust}"), "name": format!("{first} {last}"), "phone": ph,
                    "submitted_at": ts, "email": format!("{}.{}{cust}@{dom}", first.to_uppercase(), last.to_lowercase()),
                });
                writeln!(line, "{v}")?;
                web.write_all(line.as_bytes())?;
            }
            _ => {
                let t = chrono::DateTime::from_timestamp(ts as i64, 0).unwrap_or_default();
                let mut v = serde_json::json!({
                    "customerId": format!("CUST-{cust}"), "accountNumber": format!("ACC{cust:08}"),
                    "contact": {"phone": ph, "email": null, "firstName": first, "lastName": last},
                    "updatedAt": t.with_timezone(&chrono::FixedOffset::west_opt(8 * 3600).unwrap_or_else(|| unreachable!())).to_rfc3339(),
                });
                if cust.is_multiple_of(97) {
                    v["status"] = "CLOSED".into();
                }
                if !first_bill {
                    bill.write_all(b",\n")?;
                }
                first_bill = false;
                write!(bill, "{v}")?;
            }
        }
    }
    // The changed share: a newer CRM row with a new e-mail for each chosen customer, decided by
    // a per-customer draw so that the same customers change whatever the record count.
    let mut updates = 0u64;
    if threshold > 0 {
        let at =
            chrono::DateTime::from_timestamp((base + 90 * 86_400) as i64, 0).unwrap_or_default();
        for cust in 0..customers {
            if Rng(cust ^ 0xC0FFEE).next() % 1_000_000 < threshold {
                updates += 1;
                writeln!(
                    crm,
                    "CUST-{cust},,,,moved.{cust}@example.org,,{}",
                    at.format("%Y-%m-%d %H:%M:%S")
                )?;
            }
        }
    }
    writeln!(bill, "\n]")?;
    crm.flush()?;
    web.flush()?;
    bill.flush()?;
    let config = dir.join("feeds.toml");
    std::fs::write(&config, FEEDS_CONFIG)
        .with_context(|| format!("writing {}", config.display()))?;
    Ok((customers, updates))
}

/// The feeds config written beside the feeds as `feeds.toml`.
pub const FEEDS_CONFIG: &str = r#"[key]
fields = ["customer_id"]

[[source]]
name = "crm"
path = "crm.csv"
format = "csv"
default_region = "US"
timestamp_format = "%Y-%m-%d %H:%M:%S"
fields = { customer_id = "Customer ID", first_name = "First Name", last_name = "Last Name", phone = "Mobile", email = "Email", account_number = "Account No", updated_at = "Updated At" }

[[source]]
name = "webform"
path = "webform.ndjson"
format = "ndjson"
default_region = "US"
timestamp_format = "epoch_seconds"
fields = { customer_id = "cust_id", full_name = "name", phone = "phone", email = "email", updated_at = "submitted_at" }

[[source]]
name = "billing"
path = "billing.json"
format = "json"
default_region = "US"
timestamp_format = "rfc3339"
do_not_call_values = ["CLOSED"]
fields = { customer_id = "customerId", account_number = "accountNumber", phone = "/contact/phone", email = "/contact/email", first_name = "/contact/firstName", last_name = "/contact/lastName", updated_at = "updatedAt", status = "status" }
"#;
