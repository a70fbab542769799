//! Clean contacts for a contact list (the state `dedupd-bench sync` seeds before it syncs): N
//! customers `CUST-0` … with names, a phone, an e-mail, and every 97th one do-not-call.

use dedupd_core::{Contact, ContactRecord, ExternalIdBuilder, Field};

use crate::feeds::{FIRST, LAST};

/// The feeds config of a state made of [`contacts`]: keyed by `customer_id`, one source that is
/// never read (the state is written directly).
pub const LIST_CONFIG: &str = r#"[key]
fields = ["customer_id"]
[[source]]
name = "bench"
path = "unused.csv"
format = "csv"
timestamp_format = "rfc3339"
fields = { customer_id = "id", updated_at = "ts" }
"#;

/// The `count` contacts, in order, all stamped 2024-03-01T00:00:00Z.
pub fn contacts(count: u64) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Contact>>> {
    let keys = ExternalIdBuilder::new(["customer_id"])?;
    let at = chrono::DateTime::from_timestamp(1_709_251_200, 0).unwrap_or_default();
    Ok((0..count).map(move |i| {
        let cid = format!("CUST-{i}");
        let id = keys.build(|_| Some(cid.as_str()))?;
        let mut r = ContactRecord::new(at);
        r.set(Field::CustomerId, Some(cid.clone()));
        r.set(
            Field::FirstName,
            Some(FIRST[(i % FIRST.len() as u64) as usize].to_owned()),
        );
        r.set(
            Field::LastName,
            Some(LAST[(i / 7 % LAST.len() as u64) as usize].to_owned()),
        );
        r.set(
            Field::PhoneE164,
            Some(format!("+1201{:07}", i % 10_000_000)),
        );
        r.set(Field::Email, Some(format!("c{i}@example.org")));
        r.do_not_call = i % 97 == 0;
        Ok(Contact::from_record(id, r))
    }))
}
