//! The contact model and the field-level merge every job uses.
//!
//! Rules (DESIGN.md, "Ingest"):
//! - last write wins **per field**, by the UTC timestamp of the source record that carried it;
//! - an absent or null value never overwrites a value;
//! - `do_not_call` sticks once set: a closed customer is soft-deleted, never un-deleted by an
//!   older or newer record that lacks the flag;
//! - on equal timestamps the value merged later wins (input order), so a run is deterministic.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The mergeable text fields of a contact, in a fixed order (the order of the content hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The source system's customer id.
    CustomerId,
    /// An account number.
    AccountNumber,
    /// Given name, normalized.
    FirstName,
    /// Family name, normalized.
    LastName,
    /// Phone in E.164.
    PhoneE164,
    /// E-mail, lowercased.
    Email,
}

impl Field {
    /// Every field, in hash order.
    pub const ALL: [Field; 6] = [
        Field::CustomerId,
        Field::AccountNumber,
        Field::FirstName,
        Field::LastName,
        Field::PhoneE164,
        Field::Email,
    ];

    /// The field's name in outputs and configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Field::CustomerId => "customer_id",
            Field::AccountNumber => "account_number",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::PhoneE164 => "phone_e164",
            Field::Email => "email",
        }
    }

    /// The field named `name`, if any.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A value with the UTC time of the source record it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    /// The normalized value.
    pub value: String,
    /// Source timestamp, UTC.
    pub at: DateTime<Utc>,
}

/// One normalized source record, ready to merge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactRecord {
    /// Normalized values; `None` = absent or null in the source.
    pub values: [Option<String>; 6],
    /// The source said the customer is closed / must not be contacted.
    pub do_not_call: bool,
    /// The record's source timestamp, UTC.
    pub updated_at: DateTime<Utc>,
}

impl ContactRecord {
    /// A record with no values at `updated_at`.
    pub fn new(updated_at: DateTime<Utc>) -> Self {
        Self {
            values: Default::default(),
            do_not_call: false,
            updated_at,
        }
    }

    /// Sets one field.
    pub fn set(&mut self, field: Field, value: Option<String>) {
        self.values[field as usize] = value;
    }

    /// One field's value.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.values[field as usize].as_deref()
    }
}

/// A merged contact: the state of one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The stable key (see [`crate::keys`]).
    pub external_id: String,
    /// Field values with their source timestamps, indexed by [`Field`].
    pub fields: [Option<Stamped>; 6],
    /// When `do_not_call` was first set (source time); `None` = callable.
    pub do_not_call_since: Option<DateTime<Utc>>,
    /// The newest source timestamp merged into this contact.
    pub updated_at: DateTime<Utc>,
}

/// What a merge did, field by field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    changed: u8,
    stale: u8,
    do_not_call_set: bool,
    touched: bool,
}

impl MergeOutcome {
    /// Some value changed, or `do_not_call` was newly set.
    pub fn is_changed(&self) -> bool {
        self.changed != 0 || self.do_not_call_set
    }
    /// Some incoming value differed from the current one but was older, so it was skipped.
    pub fn has_stale(&self) -> bool {
        self.stale != 0
    }
    /// `do_not_call` went from unset to set.
    pub fn do_not_call_set(&self) -> bool {
        self.do_not_call_set
    }
    /// Anything at all moved, timestamps included (the stored state should be rewritten).
    pub fn is_touched(&self) -> bool {
        self.touched || self.is_changed()
    }
    /// Names of the fields whose value changed (`do_not_call` included).
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let mut v = names(self.changed);
        if self.do_not_call_set {
            v.push("do_not_call");
        }
        v
    }
    /// Names of the fields whose incoming value was older than the current one.
    pub fn stale_fields(&self) -> Vec<&'static str> {
        names(self.stale)
    }
}

/// How a contact compares with the state of the last completed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Not in the state before.
    New,
    /// Some value changed or do-not-call was set.
    Changed,
    /// Incoming values were older than the stored ones (skipped, listed for review).
    Stale,
}

/// What moved about one contact since the last *completed* run (a run that wrote its outputs).
///
/// The state keeps it with the contact, committed with the contact itself, until a run has
/// written its outputs: a run killed after some commits leaves its changes marked, and the next
/// run reports them together with its own ([`Change::then`]), so the change log misses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    kind: ChangeKind,
    changed: u8,
    stale: u8,
    do_not_call_set: bool,
}

impl Change {
    /// A contact seen for the first time.
    pub const NEW: Change = Change {
        kind: ChangeKind::New,
        changed: 0,
        stale: 0,
        do_not_call_set: false,
    };

    /// What a merge into the stored contact amounts to: changed, stale, or nothing to report
    /// (timestamps alone moving is not a change).
    pub fn of_merge(o: &MergeOutcome) -> Option<Change> {
        let kind = if o.is_changed() {
            ChangeKind::Changed
        } else if o.has_stale() {
            ChangeKind::Stale
        } else {
            return None;
        };
        Some(Change {
            kind,
            changed: o.changed,
            stale: o.stale,
            do_not_call_set: o.do_not_call_set,
        })
    }

    /// `earlier` (not yet reported), then `later`: one change since the last completed run.
    /// New stays new, changed fields and stale fields add up, and a stale observation after a
    /// change leaves the contact changed.
    pub fn then(earlier: Option<Change>, later: Option<Change>) -> Option<Change> {
        let (e, l) = match (earlier, later) {
            (None, x) | (x, None) => return x,
            (Some(e), Some(l)) => (e, l),
        };
        let kind = match (e.kind, l.kind) {
            (ChangeKind::New, _) | (_, ChangeKind::New) => ChangeKind::New,
            (ChangeKind::Changed, _) | (_, ChangeKind::Changed) => ChangeKind::Changed,
            (ChangeKind::Stale, ChangeKind::Stale) => ChangeKind::Stale,
        };
        Some(Change {
            kind,
            changed: e.changed | l.changed,
            stale: e.stale | l.stale,
            do_not_call_set: e.do_not_call_set || l.do_not_call_set,
        })
    }

    /// New, changed or stale.
    pub fn kind(&self) -> ChangeKind {
        self.kind
    }

    /// The fields to list for `contact` (its state now): for a new contact every field that has
    /// a value (and `do_not_call` when set); otherwise the fields whose value changed.
    pub fn fields(&self, contact: &Contact) -> Vec<&'static str> {
        match self.kind {
            ChangeKind::New => {
                let mask = Field::ALL
                    .into_iter()
                    .filter(|f| contact.get(*f).is_some())
                    .fold(0, |m, f| m | f.bit());
                let mut v = names(mask);
                if contact.do_not_call() {
                    v.push("do_not_call");
                }
                v
            }
            ChangeKind::Changed | ChangeKind::Stale => {
                let mut v = names(self.changed);
                if self.do_not_call_set {
                    v.push("do_not_call");
                }
                v
            }
        }
    }

    /// The fields whose incoming value was older than the stored one.
    pub fn stale_fields(&self) -> Vec<&'static str> {
        names(self.stale)
    }

    /// Whether the contact became do-not-call since the last completed run.
    pub fn do_not_call_new(&self, contact: &Contact) -> bool {
        match self.kind {
            ChangeKind::New => contact.do_not_call(),
            ChangeKind::Changed | ChangeKind::Stale => self.do_not_call_set,
        }
    }

    /// A compact form for storage: kind, changed-field bits, stale-field bits, do-not-call set.
    pub fn to_bytes(&self) -> [u8; 4] {
        let kind = match self.kind {
            ChangeKind::New => 0,
            ChangeKind::Changed => 1,
            ChangeKind::Stale => 2,
        };
        [
            kind,
            self.changed,
            self.stale,
            u8::from(self.do_not_call_set),
        ]
    }

    /// Reads what [`Change::to_bytes`] wrote; `None` when the bytes are not such a form.
    pub fn from_bytes(b: [u8; 4]) -> Option<Change> {
        let all = Field::ALL.into_iter().fold(0u8, |m, f| m | f.bit());
        let kind = match b[0] {
            0 => ChangeKind::New,
            1 => ChangeKind::Changed,
            2 => ChangeKind::Stale,
            _ => return None,
        };
        if b[1] & !all != 0 || b[2] & !all != 0 || b[3] > 1 {
            return None;
        }
        Some(Change {
            kind,
            changed: b[1],
            stale: b[2],
            do_not_call_set: b[3] == 1,
        })
    }
}

fn names(mask: u8) -> Vec<&'static str> {
    Field::ALL
        .into_iter()
        .filter(|f| mask & f.bit() != 0)
        .map(Field::name)
        .collect()
}

impl Contact {
    /// An empty contact (no values) under `external_id`.
    pub fn empty(external_id: String, at: DateTime<Utc>) -> Self {
        Self {
            external_id,
            fields: Default::default(),
            do_not_call_since: None,
            updated_at: at,
        }
    }

    /// A contact holding exactly one record.
    pub fn from_record(external_id: String, record: ContactRecord) -> Self {
        let at = record.updated_at;
        let fields = record.values.map(|v| v.map(|value| Stamped { value, at }));
        Self {
            external_id,
            fields,
            do_not_call_since: record.do_not_call.then_some(at),
            updated_at: at,
        }
    }

    /// A field's current value.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.fields[field as usize]
            .as_ref()
            .map(|s| s.value.as_str())
    }

    /// True once any source said the customer must not be contacted.
    pub fn do_not_call(&self) -> bool {
        self.do_not_call_since.is_some()
    }

    /// Merges `other` (newer, older or interleaved data about the same customer) into `self`,
    /// field by field, by the rules in the module docs.
    pub fn absorb(&mut self, other: &Contact) -> MergeOutcome {
        let mut out = MergeOutcome::default();
        for field in Field::ALL {
            let i = field as usize;
            let Some(incoming) = &other.fields[i] else {
                continue;
            };
            match &mut self.fields[i] {
                slot @ None => {
                    *slot = Some(incoming.clone());
                    out.changed |= field.bit();
                }
                Some(current) if incoming.at >= current.at => {
                    if current.value != incoming.value {
                        current.value.clone_from(&incoming.value);
                        out.changed |= field.bit();
                    }
                    if current.at != incoming.at {
                        current.at = incoming.at;
                        out.touched = true;
                    }
                }
                Some(current) => {
                    if current.value != incoming.value {
                        out.stale |= field.bit();
                    }
                }
            }
        }
        match (self.do_not_call_since, other.do_not_call_since) {
            (None, Some(at)) => {
                self.do_not_call_since = Some(at);
                out.do_not_call_set = true;
            }
            (Some(mine), Some(theirs)) if theirs < mine => {
                self.do_not_call_since = Some(theirs);
                out.touched = true;
            }
            _ => {}
        }
        if other.updated_at > self.updated_at {
            self.updated_at = other.updated_at;
            out.touched = true;
        }
        out
    }

    /// A hash of the content a platform sees (values and `do_not_call`, not timestamps): equal
    /// hashes mean there is nothing to send.
    pub fn content_hash(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        for field in Field::ALL {
            match self.get(field) {
                Some(v) => {
                    h.update([1]);
                    h.update((v.len() as u64).to_le_bytes());
                    h.update(v.as_bytes());
                }
                None => h.update([0]),
            }
        }
        h.update([u8::from(self.do_not_call())]);
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }

    /// The value of an output column (a [`Field`] name, `do_not_call` or `updated_at`) as text,
    /// the way import files and contact-list columns carry it; empty when absent or unknown.
    pub fn column(&self, name: &str) -> String {
        match name {
            "do_not_call" => self.do_not_call().to_string(),
            "updated_at" => self.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            other => Field::from_name(other)
                .and_then(|f| self.get(f))
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The public view written to `contacts.ndjson`.
    pub fn view(&self) -> ContactView<'_> {
        ContactView {
            external_id: &self.external_id,
            customer_id: self.get(Field::CustomerId),
            first_name: self.get(Field::FirstName),
            last_name: self.get(Field::LastName),
            phone_e164: self.get(Field::PhoneE164),
            email: self.get(Field::Email),
            do_not_call: self.do_not_call(),
            updated_at: self.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// The output shape of a contact (`contacts.ndjson`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ContactView<'a> {
    /// Stable key.
    pub external_id: &'a str,
    /// Source customer id.
    pub customer_id: Option<&'a str>,
    /// Given name.
    pub first_name: Option<&'a str>,
    /// Family name.
    pub last_name: Option<&'a str>,
    /// Phone, E.164.
    pub phone_e164: Option<&'a str>,
    /// E-mail, lowercased.
    pub email: Option<&'a str>,
    /// Must not be contacted.
    pub do_not_call: bool,
    /// Newest source timestamp, RFC 3339 UTC.
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn rec(t: i64, vals: &[(Field, &str)], dnc: bool) -> Contact {
        let mut r = ContactRecord::new(at(t));
        for (f, v) in vals {
            r.set(*f, Some((*v).to_owned()));
        }
        r.do_not_call = dnc;
        Contact::from_record("K".into(), r)
    }

    #[test]
    fn last_write_wins_per_field_and_null_never_overwrites() {
        let mut c = rec(
            10,
            &[(Field::FirstName, "Ann"), (Field::Email, "a@x.io")],
            false,
        );
        let o = c.absorb(&rec(20, &[(Field::FirstName, "Anne")], false));
        assert_eq!(o.changed_fields(), vec!["first_name"]);
        assert_eq!(
            c.get(Field::Email),
            Some("a@x.io"),
            "absent value must not erase"
        );
        let o = c.absorb(&rec(
            5,
            &[(Field::FirstName, "Annie"), (Field::LastName, "Lee")],
            false,
        ));
        assert_eq!(
            c.get(Field::FirstName),
            Some("Anne"),
            "older value must not win"
        );
        assert_eq!(o.stale_fields(), vec!["first_name"]);
        assert_eq!(
            o.changed_fields(),
            vec!["last_name"],
            "an older value still fills an empty field"
        );
        assert_eq!(c.updated_at, at(20));
    }

    #[test]
    fn do_not_call_sticks() {
        let mut c = rec(10, &[], true);
        let o = c.absorb(&rec(20, &[(Field::FirstName, "X")], false));
        assert!(c.do_not_call() && !o.do_not_call_set());
        let mut d = rec(10, &[], false);
        assert!(
            d.absorb(&rec(1, &[], true)).do_not_call_set(),
            "even an older CLOSED sticks"
        );
        assert!(d.do_not_call());
    }

    #[test]
    fn re_merging_the_same_data_changes_nothing() {
        let a = rec(
            10,
            &[
                (Field::FirstName, "Ann"),
                (Field::PhoneE164, "+14155552671"),
            ],
            true,
        );
        let mut c = a.clone();
        let o = c.absorb(&a);
        assert!(!o.is_changed() && !o.has_stale() && !o.is_touched());
        assert_eq!(c.content_hash(), a.content_hash());
    }

    #[test]
    fn changes_since_the_last_completed_run_add_up() {
        let stored = rec(
            10,
            &[(Field::FirstName, "Ann"), (Field::Email, "a@x.io")],
            false,
        );
        // A killed run changed the e-mail; the re-run sees the same data again, nothing new.
        let mut after = stored.clone();
        let first = Change::of_merge(&after.absorb(&rec(20, &[(Field::Email, "b@x.io")], false)));
        let again = Change::of_merge(&after.clone().absorb(&rec(
            20,
            &[(Field::Email, "b@x.io")],
            false,
        )));
        assert_eq!(again, None, "re-merging the same data is no change");
        let both = Change::then(first, again).unwrap();
        assert_eq!(both.kind(), ChangeKind::Changed);
        assert_eq!(both.fields(&after), vec!["email"]);

        // Then a newer name and an older phone: changed fields and stale fields add up.
        let mut later = after.clone();
        let more = Change::of_merge(&later.absorb(&rec(30, &[(Field::FirstName, "Anne")], true)));
        let stale = Change::of_merge(&later.absorb(&rec(1, &[(Field::Email, "old@x.io")], false)));
        assert_eq!(stale.unwrap().kind(), ChangeKind::Stale);
        let all = Change::then(Change::then(first, more), stale).unwrap();
        assert_eq!(
            all.kind(),
            ChangeKind::Changed,
            "stale after a change stays changed"
        );
        assert_eq!(
            all.fields(&later),
            vec!["first_name", "email", "do_not_call"]
        );
        assert_eq!(all.stale_fields(), vec!["email"]);
        assert!(all.do_not_call_new(&later));

        // New stays new; its fields are the contact's values now.
        let new = Change::then(Some(Change::NEW), more).unwrap();
        assert_eq!(new.kind(), ChangeKind::New);
        assert_eq!(
            new.fields(&later),
            vec!["first_name", "email", "do_not_call"]
        );
        assert_eq!(Change::then(None, None), None);

        // The stored form round-trips and refuses what it never writes.
        for c in [all, new, stale.unwrap(), Change::NEW] {
            assert_eq!(Change::from_bytes(c.to_bytes()), Some(c));
        }
        assert_eq!(Change::from_bytes([3, 0, 0, 0]), None);
        assert_eq!(Change::from_bytes([1, 0x80, 0, 0]), None);
        assert_eq!(Change::from_bytes([1, 0, 0, 2]), None);
    }

    fn arb_contact() -> impl Strategy<Value = Contact> {
        (
            0i64..50,
            proptest::collection::vec(proptest::option::of("[ab]{1,2}"), 6),
            any::<bool>(),
        )
            .prop_map(|(t, vals, dnc)| {
                let mut r = ContactRecord::new(at(t));
                for (f, v) in Field::ALL.into_iter().zip(vals) {
                    r.set(f, v);
                }
                r.do_not_call = dnc;
                Contact::from_record("K".into(), r)
            })
    }

    proptest! {
        /// Merging is order-independent for distinct timestamps, so a run and a re-run in any
        /// file order agree; absorbing twice is a no-op.
        #[test]
        fn merge_laws(a in arb_contact(), b in arb_contact()) {
            prop_assume!(a.updated_at != b.updated_at);
            let mut ab = a.clone(); ab.absorb(&b);
            let mut ba = b.clone(); ba.absorb(&a);
            prop_assert_eq!(ab.content_hash(), ba.content_hash());
            let mut again = ab.clone();
            prop_assert!(!again.absorb(&b).is_touched());
            prop_assert_eq!(again, ab);
        }
    }
}
