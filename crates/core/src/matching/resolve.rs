//! Survivor choice and field resolution, following Genesys Cloud's merge rules (api-notes §3):
//! non-null values fill nulls; where several members have a value, the survivor keeps its own;
//! nothing is silently dropped (every other distinct value is listed, and the platform moves
//! extra e-mails and phones into free slots).
//!
//! Generic values (placeholders, or a phone or e-mail shared by many people, as blocking marks
//! them on the [`Features`]) are no contact data: they are never the resolved value and never an
//! extra value, so a merge never carries one into another record. They are listed apart, in
//! [`Resolution::generic_values`].

use std::collections::BTreeMap;

use super::features::Features;
use super::record::{Column, DATA_COLUMNS, Record};

/// The resolved contact of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Index (into the members given) of the survivor.
    pub survivor: usize,
    /// The resolved value per column.
    pub resolved: BTreeMap<Column, String>,
    /// Distinct values of other members that lost to the resolved value, per column.
    pub extra_values: BTreeMap<Column, Vec<String>>,
    /// Distinct generic values of the members, per column: neither resolved nor extra.
    pub generic_values: BTreeMap<Column, Vec<String>>,
}

/// Resolves a cluster. The survivor is the most complete record (most filled data columns), then
/// the most recently updated, then the smallest id; fields the survivor lacks come from the most
/// recently updated member that has them. `features` are the members' features, in the same
/// order, after blocking marked the generic values; a value they mark generic is passed over.
pub fn resolve(members: &[&Record], features: &[&Features]) -> Resolution {
    let generic = |i: usize, col: Column| features.get(i).is_some_and(|f| f.is_generic(col));
    let survivor = (0..members.len())
        .max_by(|&x, &y| {
            let (a, b) = (members[x], members[y]);
            a.filled()
                .cmp(&b.filled())
                .then(a.updated_at.cmp(&b.updated_at))
                .then(b.id().cmp(a.id()))
        })
        .unwrap_or(0);
    // Donors for missing fields: newest first, ties by id.
    let mut order: Vec<usize> = (0..members.len()).filter(|&i| i != survivor).collect();
    order.sort_by(|&x, &y| {
        members[y]
            .updated_at
            .cmp(&members[x].updated_at)
            .then(members[x].id().cmp(members[y].id()))
    });
    let mut resolved = BTreeMap::new();
    let mut extra_values: BTreeMap<Column, Vec<String>> = BTreeMap::new();
    let mut generic_values: BTreeMap<Column, Vec<String>> = BTreeMap::new();
    let everyone = || std::iter::once(survivor).chain(order.iter().copied());
    for &col in DATA_COLUMNS {
        let held: Vec<String> = distinct(
            col,
            everyone()
                .filter(|&i| generic(i, col))
                .filter_map(|i| members[i].get(col)),
        );
        if !held.is_empty() {
            generic_values.insert(col, held);
        }
        let mut usable = everyone()
            .filter(|&i| !generic(i, col))
            .filter_map(|i| members[i].get(col));
        let Some(chosen) = usable.next() else {
            continue;
        };
        resolved.insert(col, chosen.to_owned());
        let extras = distinct(col, usable.filter(|v| !same_value(col, v, chosen)));
        if !extras.is_empty() {
            extra_values.insert(col, extras);
        }
    }
    Resolution {
        survivor,
        resolved,
        extra_values,
        generic_values,
    }
}

/// The distinct values, in order of first appearance.
fn distinct<'a>(col: Column, values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.iter().any(|e| same_value(col, e, v)) {
            out.push(v.to_owned());
        }
    }
    out
}

/// Values that differ only in case are the same value (e-mails are already lowercase).
fn same_value(col: Column, a: &str, b: &str) -> bool {
    match col {
        Column::Phone | Column::Email => a == b,
        _ => a.to_lowercase() == b.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn rec(id: &str, first: &str, email: &str, phone: &str, t: i64) -> Record {
        Record::new(
            [id, "", first, "Lee", email, phone, "", "", "", "", "US"],
            Utc.timestamp_opt(t, 0).single(),
        )
    }

    /// Resolves with each member's own features (placeholders found generic; no data-wide
    /// counts).
    fn resolve_alone(members: &[&Record]) -> Resolution {
        let features: Vec<Features> = members.iter().map(|r| Features::of(r)).collect();
        let refs: Vec<&Features> = features.iter().collect();
        resolve(members, &refs)
    }

    #[test]
    fn a_generic_value_is_never_resolved_nor_extra() {
        // The survivor (most complete, newest) carries placeholders; the other member has real
        // values, which win; the placeholders are listed apart.
        let a = Record::new(
            [
                "a",
                "",
                "Ann",
                "Lee",
                "noemail@noemail.com",
                "+11234567890",
                "1 Main St",
                "Springfield",
                "IL",
                "62701",
                "US",
            ],
            Utc.timestamp_opt(20, 0).single(),
        );
        let b = rec("b", "Ann", "ann@x.com", "+14155552671", 10);
        let c = rec("c", "Ann", "", "+10000000000", 5);
        let r = resolve_alone(&[&a, &b, &c]);
        assert_eq!(r.survivor, 0);
        assert_eq!(r.resolved[&Column::Phone], "+14155552671");
        assert_eq!(r.resolved[&Column::Email], "ann@x.com");
        assert!(!r.extra_values.contains_key(&Column::Phone));
        assert!(!r.extra_values.contains_key(&Column::Email));
        assert_eq!(
            r.generic_values[&Column::Phone],
            vec!["+11234567890".to_owned(), "+10000000000".to_owned()]
        );
        assert_eq!(
            r.generic_values[&Column::Email],
            vec!["noemail@noemail.com".to_owned()]
        );
        // With nothing but placeholders, the field stays unresolved.
        let d = rec("d", "Ann", "", "+10000000000", 1);
        let r = resolve_alone(&[&c, &d]);
        assert!(!r.resolved.contains_key(&Column::Phone));
        assert_eq!(
            r.generic_values[&Column::Phone],
            vec!["+10000000000".to_owned()]
        );
    }

    #[test]
    fn survivor_keeps_its_values_and_nulls_are_filled() {
        let a = rec("a", "Ann", "ann@x.com", "", 10);
        let b = rec("b", "Anne", "", "+14155552671", 20);
        let c = rec("c", "Ann", "ann.lee@y.com", "+14155552671", 5);
        let r = resolve_alone(&[&a, &b, &c]);
        // `c` is the most complete record.
        assert_eq!(r.survivor, 2);
        assert_eq!(r.resolved[&Column::Email], "ann.lee@y.com");
        assert_eq!(r.resolved[&Column::FirstName], "Ann");
        assert_eq!(r.extra_values[&Column::Email], vec!["ann@x.com".to_owned()]);
        assert_eq!(r.extra_values[&Column::FirstName], vec!["Anne".to_owned()]);
        assert!(!r.extra_values.contains_key(&Column::Phone));
    }

    #[test]
    fn missing_survivor_fields_come_from_the_newest_donor() {
        let a = rec("a", "Ann", "", "+14155552671", 10);
        let b = rec("b", "", "old@x.com", "", 1);
        let c = rec("c", "", "new@x.com", "", 30);
        let r = resolve_alone(&[&a, &b, &c]);
        assert_eq!(r.survivor, 0);
        assert_eq!(r.resolved[&Column::Email], "new@x.com");
        assert_eq!(r.extra_values[&Column::Email], vec!["old@x.com".to_owned()]);
    }
}
