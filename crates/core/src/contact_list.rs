//! What a contact list must hold for a contact, on every platform: the configured columns with
//! the contact's values, its key, and whether it may be called. A do-not-call contact is not
//! deleted from a list but made not callable (a soft delete), so a later change of mind, or a
//! list that feeds reports, keeps the record.
//!
//! [`payload_hash`] fingerprints a [`ListRow`]: a contact is pending for a list when the hash
//! of the row it would get now differs from the hash the list last accepted.

use sha2::{Digest, Sha256};

use crate::Contact;

/// The feed column holding the contact's phone number in E.164 (a list's dialable column).
pub const PHONE_COLUMN: &str = "phone_e164";
/// The feed column holding the contact's e-mail address (a list's e-mail column).
pub const EMAIL_COLUMN: &str = "email";

/// The shape of a contact list: its data columns in order and which of them hold a phone
/// number and an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLayout {
    /// The data columns, in the configured order.
    pub columns: Vec<String>,
    /// The column a dialer calls, when the layout has one.
    pub phone_column: Option<String>,
    /// The column a mailer writes to, when the layout has one.
    pub email_column: Option<String>,
}

impl ListLayout {
    /// The layout of a list with these columns (the feeds config's `[output] csv_columns`).
    pub fn for_columns(columns: &[String]) -> ListLayout {
        let has = |name: &str| columns.iter().any(|c| c == name).then(|| name.to_owned());
        ListLayout {
            columns: columns.to_vec(),
            phone_column: has(PHONE_COLUMN),
            email_column: has(EMAIL_COLUMN),
        }
    }
}

/// One contact as a contact list must hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    /// The contact's key on the list: its externalId.
    pub key: String,
    /// `(column, value)` for every column of the layout, in its order; empty when absent.
    pub values: Vec<(String, String)>,
    /// False for a do-not-call contact: kept on the list, never called, texted or mailed.
    pub callable: bool,
}

impl ListRow {
    /// The row `contact` must have on a list of `layout`.
    pub fn for_contact(contact: &Contact, layout: &ListLayout) -> ListRow {
        ListRow {
            key: contact.external_id.clone(),
            values: layout
                .columns
                .iter()
                .map(|col| (col.clone(), contact.column(col)))
                .collect(),
            callable: !contact.do_not_call(),
        }
    }

    /// Whether this row is a do-not-call soft delete.
    pub fn is_do_not_call(&self) -> bool {
        !self.callable
    }
}

/// The fingerprint of what a list holds for a contact: its key, every column and its value,
/// and whether it is callable. Length-prefixed, so no two different rows encode alike.
pub fn payload_hash(row: &ListRow) -> [u8; 16] {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(row.key.as_bytes());
    field(&(row.values.len() as u64).to_le_bytes());
    for (col, val) in &row.values {
        field(col.as_bytes());
        field(val.as_bytes());
    }
    field(&[u8::from(row.callable)]);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, values: &[(&str, &str)], callable: bool) -> ListRow {
        ListRow {
            key: key.into(),
            values: values
                .iter()
                .map(|(c, v)| ((*c).to_owned(), (*v).to_owned()))
                .collect(),
            callable,
        }
    }

    #[test]
    fn the_layout_names_the_phone_and_email_columns_it_has() {
        let cols: Vec<String> = ["customer_id", "phone_e164"].map(String::from).to_vec();
        let l = ListLayout::for_columns(&cols);
        assert_eq!(l.phone_column.as_deref(), Some("phone_e164"));
        assert_eq!(l.email_column, None);
    }

    #[test]
    fn every_part_of_the_row_changes_the_hash() {
        let base = row("k1", &[("a", "x"), ("b", "")], true);
        let h = payload_hash(&base);
        assert_eq!(h, payload_hash(&base.clone()));
        for other in [
            row("k2", &[("a", "x"), ("b", "")], true),
            row("k1", &[("a", "y"), ("b", "")], true),
            row("k1", &[("a", "x"), ("b", "")], false),
            row("k1", &[("a", "x")], true),
            // Moving bytes between a column and its value is another row.
            row("k1", &[("ax", ""), ("b", "")], true),
        ] {
            assert_ne!(payload_hash(&other), h, "{other:?}");
        }
    }

    #[test]
    fn do_not_call_is_a_soft_delete() {
        assert!(row("k", &[], false).is_do_not_call());
        assert!(!row("k", &[], true).is_do_not_call());
    }
}
