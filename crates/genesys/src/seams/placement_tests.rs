//! How Genesys Cloud places a plan's merge values on an External Contact (the slot mapping of
//! [`CustomerDirectory::place`]), from the plan's clusters.

use std::collections::BTreeMap;

use dedupd_core::plan::{Cluster, Fields, Member};
use dedupd_platform::directory::{CustomerDirectory, Placement};

use crate::{GenesysClient, PhoneNumber};

/// The plan's values as Genesys Cloud places them.
fn build(c: &Cluster) -> Placement<crate::ExternalContact> {
    <GenesysClient as CustomerDirectory>::place(&c.merge_values())
}

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
        doubtful: Vec::new(),
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
    let c = &o.values;
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
    let c = &o.values;
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
    assert_eq!(sent(&o.values.cell_phone).as_deref(), Some("+14155552671"));
    assert_eq!(o.values.home_phone, None);
    assert_eq!(o.values.work_email, None);
    assert_eq!(o.unplaced["phone"], vec!["+11234567890", "+10000000000"]);
    assert_eq!(o.unplaced["email"], vec!["noemail@noemail.com"]);
}
