//! Survivor choice and field resolution: one rule for every place that resolves a cluster
//! (`merge plan` from the matcher's records, `merge apply` from the decided members of a
//! plan, the review page's preview of a decision).
//!
//! The platforms' merge keeps the survivor's own values unless the request overrides them
//! (Genesys Cloud's `valueOverride`, api-notes §3), and dedupd always sends the override, so the
//! merged value of each field is chosen by this rule, in order:
//! 1. a value a person chose in review (an override) wins;
//! 2. never a generic value (a placeholder such as `+10000000000`, or a phone or e-mail shared
//!    by many people, as blocking marks them) while any member has a real one: generic values
//!    are no contact data, they are never the resolved value and never an extra value, and are
//!    listed apart in [`Resolution::generic_values`];
//! 3. the value most members agree on;
//! 4. then the value of the most recently updated member holding it;
//! 5. then the survivor's own value, then the value seen first.
//!
//! Nothing is silently dropped: every other distinct value is listed as an extra value (the
//! platform moves extra e-mails and phones into free slots). A field whose winner was chosen by
//! recency between values equally many members hold is *doubtful* when it names or reaches the
//! customer (name, e-mail, phone; [`Resolution::doubtful`]): the review page says so.

use std::collections::BTreeMap;

use super::features::Features;
use super::record::{Column, DATA_COLUMNS, Record};

/// The columns whose doubtful winner a person should see: who the customer is and how to
/// reach them. (Conflicting address parts are shown in the review too, not flagged.)
const IDENTIFYING: [Column; 4] = [
    Column::FirstName,
    Column::LastName,
    Column::Email,
    Column::Phone,
];

/// One member of a cluster, as the resolver sees it.
pub trait Candidate {
    /// The record id.
    fn id(&self) -> &str;
    /// When it was last updated (UTC epoch seconds), if known.
    fn updated_at(&self) -> Option<i64>;
    /// Its value of a data column.
    fn value(&self, col: Column) -> Option<&str>;
    /// Whether its value of `col` is generic (no contact data).
    fn is_generic(&self, col: Column) -> bool;
    /// How many data columns have a value.
    fn filled(&self) -> usize {
        DATA_COLUMNS
            .iter()
            .filter(|&&c| self.value(c).is_some())
            .count()
    }
}

/// A matcher record with its features (after blocking marked the generic values).
impl Candidate for (&Record, &Features) {
    fn id(&self) -> &str {
        self.0.id()
    }
    fn updated_at(&self) -> Option<i64> {
        self.0.updated_at
    }
    fn value(&self, col: Column) -> Option<&str> {
        self.0.get(col)
    }
    fn is_generic(&self, col: Column) -> bool {
        self.1.is_generic(col)
    }
}

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
    /// Columns whose winner was decided by recency between values equally many members hold.
    pub doubtful: Vec<Column>,
}

/// The survivor the rule picks: the most complete record (most filled data columns), then the
/// most recently updated, then the smallest id.
pub fn pick_survivor<C: Candidate>(members: &[C]) -> usize {
    (0..members.len())
        .max_by(|&x, &y| {
            let (a, b) = (&members[x], &members[y]);
            a.filled()
                .cmp(&b.filled())
                .then(a.updated_at().cmp(&b.updated_at()))
                .then(b.id().cmp(a.id()))
        })
        .unwrap_or(0)
}

/// Resolves a cluster by the rule above, with the survivor [`pick_survivor`] picks.
pub fn resolve<C: Candidate>(members: &[C]) -> Resolution {
    resolve_with(members, None, &BTreeMap::new())
}

/// Resolves a cluster by the rule above, with a survivor and values a person chose: `survivor`
/// (an index into `members`) replaces the rule's pick, and `overrides` win in their columns.
pub fn resolve_with<C: Candidate>(
    members: &[C],
    survivor: Option<usize>,
    overrides: &BTreeMap<Column, String>,
) -> Resolution {
    let survivor = survivor
        .filter(|&s| s < members.len())
        .unwrap_or_else(|| pick_survivor(members));
    // The survivor first, then the others newest first, ties by id.
    let mut order: Vec<usize> = (0..members.len()).filter(|&i| i != survivor).collect();
    order.sort_by(|&x, &y| {
        members[y]
            .updated_at()
            .cmp(&members[x].updated_at())
            .then(members[x].id().cmp(members[y].id()))
    });
    order.insert(0, survivor);
    let mut resolved = BTreeMap::new();
    let mut extra_values: BTreeMap<Column, Vec<String>> = BTreeMap::new();
    let mut generic_values: BTreeMap<Column, Vec<String>> = BTreeMap::new();
    let mut doubtful = Vec::new();
    for &col in DATA_COLUMNS {
        let held = distinct(
            col,
            order
                .iter()
                .filter(|&&i| members[i].is_generic(col))
                .filter_map(|&i| members[i].value(col)),
        );
        if !held.is_empty() {
            generic_values.insert(col, held);
        }
        // Each distinct real value: how many members hold it, the newest holder, whether the
        // survivor holds it; in order of first appearance.
        let mut tally: Vec<(String, usize, Option<i64>, bool)> = Vec::new();
        for &i in &order {
            let m = &members[i];
            let Some(v) = m.value(col).filter(|_| !m.is_generic(col)) else {
                continue;
            };
            match tally.iter_mut().find(|t| same_value(col, &t.0, v)) {
                Some(t) => {
                    t.1 += 1;
                    t.2 = t.2.max(m.updated_at());
                    t.3 |= i == survivor;
                }
                None => tally.push((v.to_owned(), 1, m.updated_at(), i == survivor)),
            }
        }
        let chosen = match overrides.get(&col) {
            Some(v) => v.clone(),
            None => {
                let Some(best) = (0..tally.len()).max_by(|&x, &y| {
                    let (a, b) = (&tally[x], &tally[y]);
                    a.1.cmp(&b.1)
                        .then(a.2.cmp(&b.2))
                        .then(a.3.cmp(&b.3))
                        .then(y.cmp(&x))
                }) else {
                    continue;
                };
                if IDENTIFYING.contains(&col)
                    && tally.iter().filter(|t| t.1 == tally[best].1).count() > 1
                {
                    doubtful.push(col);
                }
                tally[best].0.clone()
            }
        };
        let extras: Vec<String> = tally
            .into_iter()
            .map(|t| t.0)
            .filter(|v| !same_value(col, v, &chosen))
            .collect();
        resolved.insert(col, chosen);
        if !extras.is_empty() {
            extra_values.insert(col, extras);
        }
    }
    Resolution {
        survivor,
        resolved,
        extra_values,
        generic_values,
        doubtful,
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
        let pairs: Vec<(&Record, &Features)> = members.iter().copied().zip(&features).collect();
        resolve(&pairs)
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
    fn the_value_most_members_hold_wins_then_the_newest() {
        let a = rec("a", "Ann", "ann@x.com", "", 10);
        let b = rec("b", "Anne", "", "+14155552671", 20);
        let c = rec("c", "Ann", "ann.lee@y.com", "+14155552671", 5);
        let r = resolve_alone(&[&a, &b, &c]);
        // `c` is the most complete record.
        assert_eq!(r.survivor, 2);
        // Two members say Ann, one (the newest) says Anne: the majority wins.
        assert_eq!(r.resolved[&Column::FirstName], "Ann");
        assert_eq!(r.extra_values[&Column::FirstName], vec!["Anne".to_owned()]);
        // One member each: the newer holder's e-mail wins over the survivor's, and the field
        // is doubtful.
        assert_eq!(r.resolved[&Column::Email], "ann@x.com");
        assert_eq!(
            r.extra_values[&Column::Email],
            vec!["ann.lee@y.com".to_owned()]
        );
        assert!(r.doubtful.contains(&Column::Email));
        assert!(!r.doubtful.contains(&Column::FirstName));
        assert!(!r.extra_values.contains_key(&Column::Phone));
    }

    #[test]
    fn a_chosen_survivor_and_an_override_win() {
        let a = rec("a", "Ann", "ann@x.com", "+14155552671", 10);
        let b = rec("b", "Ann", "ann@x.com", "+14155550000", 20);
        let c = rec("c", "Ann", "ann.lee@y.com", "+14155550000", 5);
        let features: Vec<Features> = [&a, &b, &c].iter().map(|r| Features::of(r)).collect();
        let pairs: Vec<(&Record, &Features)> = [&a, &b, &c].into_iter().zip(&features).collect();
        let overrides = BTreeMap::from([(Column::Phone, "+14155552671".to_owned())]);
        let r = resolve_with(&pairs, Some(2), &overrides);
        assert_eq!(r.survivor, 2);
        assert_eq!(r.resolved[&Column::Phone], "+14155552671");
        assert_eq!(
            r.extra_values[&Column::Phone],
            vec!["+14155550000".to_owned()]
        );
        // Not overridden: the majority still wins over the chosen survivor's own value.
        assert_eq!(r.resolved[&Column::Email], "ann@x.com");
        assert!(r.doubtful.is_empty());
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
