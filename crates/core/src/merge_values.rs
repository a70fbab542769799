//! The values a merge should leave on the surviving customer record, whatever the platform:
//! per field, the resolved value first and then the other values the cluster holds, trimmed,
//! each once, and only values the platform could hold (a plausible e-mail address, an E.164
//! number). A value the plan lists as generic for the cluster (a placeholder, or a number shared
//! by many people) is never sent. Nothing is silently dropped: what is left out is listed in
//! [`MergeValues::unplaced`], and a platform's placement adds what found no slot.

use std::collections::BTreeMap;

use crate::normalize::phone::Validity;
use crate::normalize::{normalize_email, phone::normalize_phone_as};

/// Plan field holding e-mail addresses.
pub const EMAIL: &str = "email";
/// Plan field holding phone numbers.
pub const PHONE: &str = "phone";

/// Whether a platform can hold `s` as an e-mail address: it passes the e-mail normalizer
/// (`local@domain.tld`, no whitespace, sane lengths).
pub fn plausible_email(s: &str) -> bool {
    matches!(normalize_email(s), Ok(Some(_)))
}

/// Whether `s` is an E.164 number as the phone normalizer writes it (`+` and digits of a
/// possible length for the country it names).
pub fn plausible_e164(s: &str) -> bool {
    s.starts_with('+')
        && matches!(normalize_phone_as(s, None, Validity::Possible), Ok(Some(n)) if n == s)
}

/// One field's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldValues {
    /// The plan's resolved value, when it can be sent.
    pub resolved: Option<String>,
    /// The other values, in the plan's order.
    pub extra: Vec<String>,
}

impl FieldValues {
    /// Every value, the resolved one first.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.resolved
            .iter()
            .chain(self.extra.iter())
            .map(String::as_str)
    }
}

/// The values of one cluster's merge, per plan field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeValues {
    /// Values to place, per field.
    pub fields: BTreeMap<String, FieldValues>,
    /// Per field, values left out (implausible or generic), in the plan's order.
    pub unplaced: BTreeMap<String, Vec<String>>,
}

impl MergeValues {
    /// Builds the values from the plan's `resolved` values (field, value), its `extra_values`
    /// and its `generic_values`.
    pub fn build<'a>(
        resolved: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        extra: &BTreeMap<String, Vec<String>>,
        generic: &BTreeMap<String, Vec<String>>,
    ) -> MergeValues {
        let mut out = MergeValues::default();
        let mut resolved: BTreeMap<&str, Option<&str>> = resolved.into_iter().collect();
        for field in extra.keys() {
            resolved.entry(field.as_str()).or_insert(None);
        }
        for (field, value) in resolved {
            let is_generic = |v: &str| {
                generic
                    .get(field)
                    .is_some_and(|g| g.iter().any(|x| x.trim().eq_ignore_ascii_case(v)))
            };
            let same = |a: &str, b: &str| {
                if field == EMAIL {
                    a.eq_ignore_ascii_case(b)
                } else {
                    a == b
                }
            };
            let plausible = |v: &str| match field {
                EMAIL => plausible_email(v),
                PHONE => plausible_e164(v),
                _ => true,
            };
            let mut seen: Vec<String> = Vec::new();
            let mut values = FieldValues::default();
            let mut left_out = Vec::new();
            let candidates = value.map(|v| (true, v)).into_iter().chain(
                extra
                    .get(field)
                    .into_iter()
                    .flatten()
                    .map(|v| (false, v.as_str())),
            );
            for (is_resolved, v) in candidates {
                let v = v.trim();
                if v.is_empty() || seen.iter().any(|s| same(s, v)) {
                    continue;
                }
                seen.push(v.to_owned());
                if !plausible(v) || is_generic(v) {
                    left_out.push(v.to_owned());
                } else if is_resolved {
                    values.resolved = Some(v.to_owned());
                } else {
                    values.extra.push(v.to_owned());
                }
            }
            if values != FieldValues::default() {
                out.fields.insert(field.to_owned(), values);
            }
            if !left_out.is_empty() {
                out.unplaced.insert(field.to_owned(), left_out);
            }
        }
        out
    }

    /// A field's values (empty when it has none).
    pub fn field(&self, name: &str) -> FieldValues {
        self.fields.get(name).cloned().unwrap_or_default()
    }

    /// Records `values` of `field` as not placed (after those left out by [`MergeValues::build`]).
    pub fn left_out(
        unplaced: &mut BTreeMap<String, Vec<String>>,
        field: &str,
        values: impl IntoIterator<Item = String>,
    ) {
        let list = unplaced.entry(field.to_owned()).or_default();
        list.extend(values);
        if list.is_empty() {
            unplaced.remove(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn plausibility_uses_the_normalizers() {
        assert!(plausible_email("ann@example.com"));
        assert!(plausible_email("Ann.Lee+shop@acme.io"));
        assert!(!plausible_email("not-an-email"));
        assert!(!plausible_email("a b@x.org"));
        assert!(!plausible_email("a@localhost"));
        assert!(plausible_e164("+14155552671"));
        assert!(!plausible_e164("555"));
        assert!(!plausible_e164("14155552671"));
        assert!(!plausible_e164("+1 415 555 2671"));
    }

    #[test]
    fn resolved_first_each_once_implausible_and_generic_left_out() {
        let v = MergeValues::build(
            [
                ("email", Some(" a@x.org ")),
                ("phone", Some("+11234567890")),
                ("first_name", Some("Ann")),
                ("last_name", None),
            ],
            &map(&[
                ("email", &["b@x.org", "A@X.ORG", "not-an-email", ""]),
                ("phone", &["+14155552671", "+14155552671", "555"]),
            ]),
            &map(&[("phone", &["+11234567890"])]),
        );
        let email = v.field("email");
        assert_eq!(email.resolved.as_deref(), Some("a@x.org"));
        assert_eq!(email.extra, vec!["b@x.org"]);
        let phone = v.field("phone");
        assert_eq!(phone.resolved, None);
        assert_eq!(phone.all().collect::<Vec<_>>(), vec!["+14155552671"]);
        assert_eq!(v.unplaced["email"], vec!["not-an-email"]);
        assert_eq!(v.unplaced["phone"], vec!["+11234567890", "555"]);
        assert_eq!(v.field("first_name").resolved.as_deref(), Some("Ann"));
        assert!(!v.fields.contains_key("last_name"));
    }
}
