//! The `valueOverride` of a cluster's merge: the plan's `resolved` values in ExternalContact
//! fields, and the `extra_values` in the free e-mail and phone slots.
//!
//! Mapping: `first_name` → `firstName`, `last_name` → `lastName`; e-mails fill `workEmail`,
//! `personalEmail`, `otherEmail` in that order (the resolved one first); phones fill `cellPhone`,
//! `homePhone`, `workPhone`, `otherPhone` (as E.164 `display`); `street`, `city`, `region`,
//! `postcode`, `country` → `address{address1, city, state, postalCode, countryCode}`.
//!
//! Nothing is silently dropped: a value with no free slot, or one the platform would refuse (an
//! e-mail that is not `local@domain.tld`, a phone not in E.164), is listed in
//! [`Override::unplaced`] and reported with the cluster; the platform keeps every source record
//! (`GET …/contacts/{id}/unresolved`), so such a value stays readable there.
//!
//! A value the plan lists in the cluster's `generic_values` (a placeholder, or a number shared by
//! many people) is never sent, even when a hand-edited plan puts it in `resolved` or
//! `extra_values`; it is listed in [`Override::unplaced`] instead.

use std::collections::BTreeMap;

use dedupd_genesys::{ContactAddress, ExternalContact, PhoneNumber};

use crate::shared::plan_file::Cluster;

/// The merge body's `valueOverride` and what could not be placed in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Override {
    /// The fields to send.
    pub contact: ExternalContact,
    /// Per plan field, values that found no slot (or were not valid for the platform).
    pub unplaced: BTreeMap<String, Vec<String>>,
}

/// Whether the platform accepts `s` as an e-mail address (`local@domain.tld`, no spaces, at
/// most 256 characters).
fn plausible_email(s: &str) -> bool {
    s.chars().count() <= 256
        && !s.contains(char::is_whitespace)
        && s.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

/// Whether `s` is an E.164 number (`+` and 8–15 digits).
fn plausible_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn non_empty(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Builds the override of `cluster`.
pub fn build(cluster: &Cluster) -> Override {
    let r = &cluster.resolved;
    let mut out = Override::default();
    let c = &mut out.contact;
    c.first_name = non_empty(r.first_name.as_ref());
    c.last_name = non_empty(r.last_name.as_ref());

    let extras = |field: &str| -> Vec<String> {
        cluster
            .extra_values
            .get(field)
            .into_iter()
            .flatten()
            .filter_map(|v| non_empty(Some(v)))
            .collect()
    };
    let generic = |field: &str, v: &str| {
        cluster
            .generic_values
            .get(field)
            .is_some_and(|g| g.iter().any(|x| x.trim().eq_ignore_ascii_case(v)))
    };
    let mut unplaced: BTreeMap<String, Vec<String>> = BTreeMap::new();

    // E-mails: the resolved one first, then the extras, each once (case-insensitively).
    let mut emails: Vec<String> = Vec::new();
    for e in non_empty(r.email.as_ref())
        .into_iter()
        .chain(extras("email"))
    {
        if emails.iter().any(|x| x.eq_ignore_ascii_case(&e)) {
            continue;
        }
        if plausible_email(&e) && !generic("email", &e) {
            emails.push(e);
        } else {
            unplaced.entry("email".into()).or_default().push(e);
        }
    }
    let mut emails = emails.into_iter();
    c.work_email = emails.next();
    c.personal_email = emails.next();
    c.other_email = emails.next();
    unplaced.entry("email".into()).or_default().extend(emails);

    let mut phones: Vec<String> = Vec::new();
    for p in non_empty(r.phone.as_ref())
        .into_iter()
        .chain(extras("phone"))
    {
        if phones.contains(&p) {
            continue;
        }
        if plausible_e164(&p) && !generic("phone", &p) {
            phones.push(p);
        } else {
            unplaced.entry("phone".into()).or_default().push(p);
        }
    }
    let mut phones = phones.into_iter().map(PhoneNumber::e164);
    c.cell_phone = phones.next();
    c.home_phone = phones.next();
    c.work_phone = phones.next();
    c.other_phone = phones.next();
    unplaced
        .entry("phone".into())
        .or_default()
        .extend(phones.filter_map(|p| p.display));

    let address = ContactAddress {
        address1: non_empty(r.street.as_ref()),
        address2: None,
        city: non_empty(r.city.as_ref()),
        state: non_empty(r.region.as_ref()),
        postal_code: non_empty(r.postcode.as_ref()),
        country_code: non_empty(r.country.as_ref()),
    };
    if address != ContactAddress::default() {
        c.address = Some(address);
    }

    // Other fields have one slot, taken by the resolved value.
    for (field, values) in &cluster.extra_values {
        if field == "email" || field == "phone" {
            continue;
        }
        let values: Vec<String> = values.iter().filter_map(|v| non_empty(Some(v))).collect();
        if !values.is_empty() {
            unplaced.entry(field.clone()).or_default().extend(values);
        }
    }
    unplaced.retain(|_, v| !v.is_empty());
    out.unplaced = unplaced;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::plan_file::{Fields, Member};

    fn cluster(resolved: Fields, extra: &[(&str, &[&str])]) -> Cluster {
        let member = |id: &str| Member {
            record_id: id.into(),
            source: None,
            updated_at: None,
            fields: Fields::default(),
        };
        Cluster {
            cluster_id: "k1".into(),
            confidence: 0.9,
            survivor: "a".into(),
            members: vec![member("a"), member("b")],
            resolved,
            extra_values: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
            generic_values: BTreeMap::new(),
            pairs: vec![],
        }
    }

    #[test]
    fn resolved_values_map_to_external_contact_fields() {
        let o = build(&cluster(
            Fields {
                first_name: Some("Ann".into()),
                last_name: Some("Lee".into()),
                email: Some("ann@example.com".into()),
                phone: Some("+14155552671".into()),
                street: Some("1 Main St".into()),
                city: Some("Springfield".into()),
                region: Some("IL".into()),
                postcode: Some("62701".into()),
                country: Some("US".into()),
            },
            &[],
        ));
        let c = &o.contact;
        assert_eq!(c.first_name.as_deref(), Some("Ann"));
        assert_eq!(c.work_email.as_deref(), Some("ann@example.com"));
        assert_eq!(
            c.cell_phone.as_ref().and_then(|p| p.display.as_deref()),
            Some("+14155552671")
        );
        let a = c.address.as_ref().unwrap();
        assert_eq!(a.address1.as_deref(), Some("1 Main St"));
        assert_eq!(a.state.as_deref(), Some("IL"));
        assert_eq!(a.postal_code.as_deref(), Some("62701"));
        assert_eq!(a.country_code.as_deref(), Some("US"));
        assert!(o.unplaced.is_empty());
    }

    #[test]
    fn extras_fill_free_slots_and_the_rest_is_reported_not_dropped() {
        let o = build(&cluster(
            Fields {
                email: Some("a@x.org".into()),
                phone: Some("+15550000001".into()),
                ..Fields::default()
            },
            &[
                (
                    "email",
                    &["b@x.org", "A@X.ORG", "not-an-email", "c@x.org", "d@x.org"],
                ),
                (
                    "phone",
                    &[
                        "+15550000002",
                        "+15550000003",
                        "+15550000004",
                        "+15550000005",
                        "555",
                    ],
                ),
                ("first_name", &["Annie"]),
            ],
        ));
        let c = &o.contact;
        assert_eq!(c.work_email.as_deref(), Some("a@x.org"));
        assert_eq!(c.personal_email.as_deref(), Some("b@x.org"));
        assert_eq!(c.other_email.as_deref(), Some("c@x.org"));
        assert_eq!(
            c.other_phone.as_ref().and_then(|p| p.display.as_deref()),
            Some("+15550000004")
        );
        assert_eq!(o.unplaced["email"], vec!["not-an-email", "d@x.org"]);
        assert_eq!(o.unplaced["phone"], vec!["555", "+15550000005"]);
        assert_eq!(o.unplaced["first_name"], vec!["Annie"]);
        assert!(c.address.is_none());
    }

    #[test]
    fn values_the_plan_lists_as_generic_are_never_sent() {
        // A hand-edited plan put the placeholders back in `resolved` and `extra_values`.
        let mut c = cluster(
            Fields {
                email: Some("noemail@noemail.com".into()),
                phone: Some("+11234567890".into()),
                ..Fields::default()
            },
            &[("phone", &["+14155552671", "+10000000000"])],
        );
        c.generic_values = [
            (
                "phone".to_owned(),
                vec!["+11234567890".to_owned(), "+10000000000".to_owned()],
            ),
            ("email".to_owned(), vec!["NoEmail@NoEmail.com".to_owned()]),
        ]
        .into();
        let o = build(&c);
        let sent = |p: &Option<PhoneNumber>| p.as_ref().and_then(|p| p.display.clone());
        assert_eq!(sent(&o.contact.cell_phone).as_deref(), Some("+14155552671"));
        assert_eq!(o.contact.home_phone, None);
        assert_eq!(o.contact.work_email, None);
        assert_eq!(o.unplaced["phone"], vec!["+11234567890", "+10000000000"]);
        assert_eq!(o.unplaced["email"], vec!["noemail@noemail.com"]);
    }
}
