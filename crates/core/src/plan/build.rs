//! From the matcher's clusters to the plan's: members with their fields, the survivor and the
//! resolved values, and why each linked pair matched, rounded for a person to read.

use std::collections::BTreeMap;

use crate::matching::cluster::Cluster as Matched;
use crate::matching::{self, Column, Features, Model, Pattern, Record, resolve};

use super::{Cluster, FieldComparison, Fields, Member, PairExplanation, cluster_id};

/// What the matcher knew when it clustered: the records, their features, the model, and the
/// candidate pairs (sorted) with their comparison patterns.
#[derive(Debug, Clone, Copy)]
pub struct MatchContext<'a> {
    /// Every record, indexed as the matcher indexed them.
    pub records: &'a [Record],
    /// Their features, in the same order.
    pub features: &'a [Features],
    /// The fitted model.
    pub model: &'a Model,
    /// Candidate pairs, sorted.
    pub pairs: &'a [(u32, u32)],
    /// The comparison pattern of each candidate pair.
    pub patterns: &'a [Pattern],
}

impl MatchContext<'_> {
    /// The comparison pattern of `a` and `b`: the candidate's, or compared now when the pair
    /// was linked only through the cluster.
    fn pattern(&self, a: u32, b: u32) -> Pattern {
        match self.pairs.binary_search(&(a, b)) {
            Ok(i) => self.patterns[i],
            Err(_) => matching::compare(&self.features[a as usize], &self.features[b as usize]),
        }
    }
}

/// Rounds to `places` decimals (what a reviewer reads; the plan keeps no more).
fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// A record's data fields by our field names.
fn fields_of(r: &Record) -> Fields {
    let mut f = Fields::default();
    for &c in matching::DATA_COLUMNS {
        f.set(c.name(), r.get(c).map(str::to_owned));
    }
    f
}

impl Cluster {
    /// The plan's cluster for one matched cluster: its members, the survivor and resolved
    /// values ([`resolve::resolve`]), the values that did not fit, and each link explained.
    pub fn from_matched(c: &Matched, ev: &MatchContext<'_>) -> Cluster {
        let (records, features, model) = (ev.records, ev.features, ev.model);
        let members: Vec<&Record> = c.members.iter().map(|&i| &records[i as usize]).collect();
        let candidates: Vec<(&Record, &Features)> = c
            .members
            .iter()
            .map(|&i| (&records[i as usize], &features[i as usize]))
            .collect();
        let res = resolve::resolve(&candidates);
        let mut resolved = Fields::default();
        for (col, v) in &res.resolved {
            resolved.set(col.name(), Some(v.clone()));
        }
        let by_name = |m: &BTreeMap<Column, Vec<String>>| {
            m.iter()
                .map(|(col, vs)| (col.name().to_owned(), vs.clone()))
                .collect()
        };
        let (extra_values, generic_values) =
            (by_name(&res.extra_values), by_name(&res.generic_values));
        let pairs = c
            .links
            .iter()
            .map(|&(a, b, p)| {
                let pat = ev.pattern(a, b);
                let (fa, fb) = (&features[a as usize], &features[b as usize]);
                let mut fields: Vec<FieldComparison> = matching::explain(model, pat)
                    .into_iter()
                    .map(|e| FieldComparison {
                        field: e.field.to_owned(),
                        level: e.level.to_owned(),
                        weight: round(e.weight, 2),
                    })
                    .collect();
                let tf = model.tf_adjustment(pat, fa, fb);
                if tf != 0.0 {
                    fields.push(FieldComparison {
                        field: "name_frequency".into(),
                        level: if tf > 0.0 { "rare" } else { "common" }.into(),
                        weight: round(tf, 2),
                    });
                }
                PairExplanation {
                    a: records[a as usize].id().to_owned(),
                    b: records[b as usize].id().to_owned(),
                    probability: round(p, 4),
                    weight: round(model.score(pat) + tf, 2),
                    fields,
                }
            })
            .collect();
        Cluster {
            cluster_id: cluster_id(members.iter().map(|r| r.id())),
            confidence: round(c.confidence, 4),
            survivor: members[res.survivor].id().to_owned(),
            members: members
                .iter()
                .map(|r| Member {
                    record_id: r.id().to_owned(),
                    source: r.get(Column::Source).map(str::to_owned),
                    updated_at: r.updated_at_utc(),
                    fields: fields_of(r),
                })
                .collect(),
            resolved,
            extra_values,
            generic_values,
            doubtful: res.doubtful.iter().map(|c| c.name().to_owned()).collect(),
            pairs,
        }
    }
}

/// Keeps the `n` least confident clusters (ties by cluster id): what a reviewer looks at first.
pub fn keep_most_doubtful(clusters: &mut Vec<Cluster>, n: usize) {
    clusters.sort_by(|a, b| {
        a.confidence
            .total_cmp(&b.confidence)
            .then_with(|| a.cluster_id.cmp(&b.cluster_id))
    });
    clusters.truncate(n);
}
