//! Survivor choice and field resolution, following Genesys Cloud's merge rules (api-notes §3):
//! non-null values fill nulls; where several members have a value, the survivor keeps its own;
//! nothing is silently dropped (every other distinct value is listed, and the platform moves
//! extra e-mails and phones into free slots).

use std::collections::BTreeMap;

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
}

/// Resolves a cluster. The survivor is the most complete record (most filled data columns), then
/// the most recently updated, then the smallest id; fields the survivor lacks come from the most
/// recently updated member that has them.
pub fn resolve(members: &[&Record]) -> Resolution {
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
    for &col in DATA_COLUMNS {
        let chosen = std::iter::once(survivor)
            .chain(order.iter().copied())
            .find_map(|i| members[i].get(col));
        let Some(chosen) = chosen else { continue };
        resolved.insert(col, chosen.to_owned());
        let mut extras: Vec<String> = Vec::new();
        for &i in &order {
            if let Some(v) = members[i].get(col)
                && !same_value(col, v, chosen)
                && !extras.iter().any(|e| same_value(col, e, v))
            {
                extras.push(v.to_owned());
            }
        }
        if !extras.is_empty() {
            extra_values.insert(col, extras);
        }
    }
    Resolution {
        survivor,
        resolved,
        extra_values,
    }
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

    #[test]
    fn survivor_keeps_its_values_and_nulls_are_filled() {
        let a = rec("a", "Ann", "ann@x.com", "", 10);
        let b = rec("b", "Anne", "", "+14155552671", 20);
        let c = rec("c", "Ann", "ann.lee@y.com", "+14155552671", 5);
        let r = resolve(&[&a, &b, &c]);
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
        let r = resolve(&[&a, &b, &c]);
        assert_eq!(r.survivor, 0);
        assert_eq!(r.resolved[&Column::Email], "new@x.com");
        assert_eq!(r.extra_values[&Column::Email], vec!["old@x.com".to_owned()]);
    }
}
