//! Clustering that does not chain.
//!
//! Plain union-find over every pair above the threshold glues people together through one
//! ambiguous record: a household landline links Anna to a nameless IVR record and the IVR record
//! to Ben, and Anna and Ben become one "customer". Here links are taken strongest first, and two
//! clusters join only when no pair across them carries strong evidence *against* being one
//! person (a negative weight sum at or below `-guard_bits`: two different given names, or two
//! different e-mails and phones), and the result stays within `max_cluster` records. (Letting
//! strong positive evidence outweigh the conflict was measured: it merges more wrong clusters
//! than it rescues right ones.)
//!
//! Each cluster's confidence is the probability of its weakest link.

use std::borrow::Cow;

use rayon::prelude::*;

use super::compare::{Comparison, Pattern, compare};
use super::features::Features;
use super::model::Model;

/// Clustering settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterConfig {
    /// Pairs at or above this match probability are links.
    pub threshold: f64,
    /// Two clusters do not join when a pair across them has negative evidence of this many bits.
    pub guard_bits: f64,
    /// Largest cluster (Genesys Cloud merges at most 52 contacts into one merge set).
    pub max_cluster: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            threshold: 0.5,
            guard_bits: 5.0,
            max_cluster: 50,
        }
    }
}

/// A cluster of two or more records.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Member record indexes, ascending.
    pub members: Vec<u32>,
    /// The links that built the cluster: `(a, b, probability)`.
    pub links: Vec<(u32, u32, f64)>,
    /// Probability of the weakest link.
    pub confidence: f64,
}

/// The clusters found, and how many joins the guard refused.
#[derive(Debug, Clone, Default)]
pub struct Clustering {
    /// Clusters of two or more records, ordered by their smallest member.
    pub clusters: Vec<Cluster>,
    /// Links refused because a pair across the two clusters conflicted.
    pub guard_refusals: usize,
    /// Links refused because the cluster would grow past `max_cluster`.
    pub size_refusals: usize,
}

/// The evidence in bits (≤ 0) that a pair is two different people: disagreeing names, e-mails
/// and phones. The address is left out: people move, and a move is no evidence of two people.
/// So is a new family name beside the same given name and the same e-mail or phone: people
/// marry and keep their mailbox and mobile. (Only a value that is evidence counts as the same:
/// a generic one is missing in the pattern, and a household shares its landline under
/// different given names, which still count.)
pub fn negative_evidence(model: &Model, p: Pattern) -> f64 {
    let shares_identifier = p.level(Comparison::Email) == 1 || p.level(Comparison::Phone) == 1;
    let same_given_name = (1..=4).contains(&p.level(Comparison::FirstName));
    let renamed = shares_identifier && same_given_name;
    let mut neg: f64 = [
        Comparison::FirstName,
        Comparison::LastName,
        Comparison::Email,
        Comparison::Phone,
    ]
    .iter()
    .filter(|&&c| !(renamed && c == Comparison::LastName))
    .map(|&c| model.weight(c, p.level(c)).min(0.0))
    .sum();
    if Model::conflicting(p) {
        neg += model.conflict_weight.min(0.0);
    }
    neg
}

/// Why two groups of records may not become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Together they would pass `max_cluster`.
    Size,
    /// A pair across them carries `guard_bits` of evidence of two people.
    Guard,
}

/// Whether the groups `a` and `b` (record numbers, read through `features`) may join: the
/// chain guard and the size cap, the one rule for the batch clustering and the incremental
/// resolver.
pub(crate) fn join_refusal<'f>(
    a: &[u32],
    b: &[u32],
    features: impl Fn(u32) -> &'f Features,
    model: &Model,
    cfg: &ClusterConfig,
) -> Option<Refusal> {
    if a.len() + b.len() > cfg.max_cluster {
        return Some(Refusal::Size);
    }
    let conflict = a.iter().any(|&x| {
        b.iter().any(|&y| {
            let pat = compare(features(x), features(y));
            negative_evidence(model, pat) <= -cfg.guard_bits
        })
    });
    conflict.then_some(Refusal::Guard)
}

/// No group (in [`cluster`]'s side table).
const NONE: u32 = u32::MAX;

/// A group of [`cluster`]'s side table: its members and the links that built it.
type Group = (Vec<u32>, Vec<(u32, u32, f64)>);

/// Clusters `n` records from scored candidate pairs `(a, b, probability)` (pairs below the
/// threshold may be left out: they never link).
pub fn cluster(
    features: &[Features],
    scored: &[(u32, u32, f64)],
    model: &Model,
    cfg: &ClusterConfig,
) -> Clustering {
    let links: Vec<(u32, u32, f64)> = scored
        .par_iter()
        .copied()
        .filter(|&(_, _, p)| p >= cfg.threshold)
        .collect();
    cluster_links(features, links, model, cfg)
}

/// [`cluster`] from the links themselves (pairs at or above the threshold), taken by value
/// so they are never copied.
pub(crate) fn cluster_links(
    features: &[Features],
    mut links: Vec<(u32, u32, f64)>,
    model: &Model,
    cfg: &ClusterConfig,
) -> Clustering {
    let n = features.len();
    // Strongest first; ties in index order, so the result never depends on thread timing.
    links.par_sort_unstable_by(|x, y| y.2.total_cmp(&x.2).then(x.0.cmp(&y.0)).then(x.1.cmp(&y.1)));
    let mut parent: Vec<u32> = (0..n as u32).collect();
    // The groups of two or more records, by their root: members and the links that built
    // them. A side table, so a record alone costs four bytes (`group`), not two empty vectors.
    let mut group: Vec<u32> = vec![NONE; n];
    let mut groups: Vec<Group> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut out = Clustering::default();
    let find = |parent: &mut Vec<u32>, mut x: u32| {
        while parent[x as usize] != x {
            let up = parent[parent[x as usize] as usize];
            parent[x as usize] = up;
            x = up;
        }
        x
    };
    for (a, b, p) in links {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra == rb {
            continue;
        }
        let set_of = |r: u32| -> Cow<'_, [u32]> {
            match group[r as usize] {
                NONE => Cow::Owned(vec![r]),
                g => Cow::Borrowed(&groups[g as usize].0),
            }
        };
        let (sa, sb) = (set_of(ra), set_of(rb));
        match join_refusal(&sa, &sb, |i| &features[i as usize], model, cfg) {
            Some(Refusal::Size) => {
                out.size_refusals += 1;
                continue;
            }
            Some(Refusal::Guard) => {
                out.guard_refusals += 1;
                continue;
            }
            None => {}
        }
        // Union by size: the larger set's root stays.
        let (big, small) = if sa.len() >= sb.len() {
            (ra, rb)
        } else {
            (rb, ra)
        };
        parent[small as usize] = big;
        let taken = match std::mem::replace(&mut group[small as usize], NONE) {
            NONE => (vec![small], Vec::new()),
            g => {
                free.push(g);
                std::mem::take(&mut groups[g as usize])
            }
        };
        let g = match group[big as usize] {
            NONE => {
                let g = match free.pop() {
                    Some(g) => g,
                    None => {
                        groups.push((Vec::new(), Vec::new()));
                        (groups.len() - 1) as u32
                    }
                };
                groups[g as usize].0.push(big);
                group[big as usize] = g;
                g
            }
            g => g,
        };
        let (members, edges) = &mut groups[g as usize];
        members.extend(taken.0);
        let mut es = taken.1;
        es.append(edges);
        es.push((a.min(b), a.max(b), p));
        *edges = es;
    }
    drop(parent);
    for g in group.into_iter().filter(|&g| g != NONE) {
        let (mut ms, links) = std::mem::take(&mut groups[g as usize]);
        if ms.len() < 2 {
            continue;
        }
        ms.sort_unstable();
        let confidence = links.iter().map(|e| e.2).fold(1.0, f64::min);
        out.clusters.push(Cluster {
            members: ms,
            links,
            confidence,
        });
    }
    out.clusters.sort_unstable_by_key(|c| c.members[0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::compare::COMPARISONS;
    use crate::matching::record::Record;

    fn rec(first: &str, last: &str, phone: &str) -> Features {
        let (r, _) = Record::from_raw(
            ["x", "", first, last, "", phone, "", "", "", "", "US"],
            None,
        );
        Features::of(&r)
    }

    /// A model where agreement weighs +10 bits and disagreement -10 bits per field.
    fn model() -> Model {
        let mut m = [[0.0; 6]; 7];
        let mut u = [[0.0; 6]; 7];
        for c in COMPARISONS {
            let k = c.levels().len();
            for level in 1..k {
                let agree = level < k - 1;
                m[c as usize][level] = if agree { 0.99 } else { 0.001 };
                u[c as usize][level] = if agree { 0.00099 } else { 1.0 };
            }
        }
        Model {
            m,
            u,
            lambda: 0.5,
            prior: 0.5,
            conflict_weight: -6.0,
            iterations: 0,
        }
    }

    #[test]
    fn a_shared_landline_does_not_glue_two_people() {
        // Anna and Ben share a landline with a nameless IVR record: both link to it, but Anna
        // and Ben have different given names, so only one of them may join it.
        let fs = vec![
            rec("Anna", "Lee", "(415) 555-2671"),
            rec("", "", "(415) 555-2671"),
            rec("Ben", "Lee", "(415) 555-2671"),
        ];
        let m = model();
        let scored = vec![(0, 1, 0.99), (1, 2, 0.98), (0, 2, 0.2)];
        let out = cluster(&fs, &scored, &m, &ClusterConfig::default());
        assert_eq!(out.clusters.len(), 1);
        assert_eq!(out.clusters[0].members, vec![0, 1]);
        assert_eq!(out.guard_refusals, 1);
        assert!((out.clusters[0].confidence - 0.99).abs() < 1e-12);
    }

    #[test]
    fn a_new_family_name_with_the_same_mobile_is_one_person_a_new_given_name_is_not() {
        // Married: the same given name and mobile under a new family name. An IVR record of the
        // mobile links to both spellings, and the guard lets them join.
        let fs = vec![
            rec("Anna", "Lee", "(415) 555-2671"),
            rec("", "", "(415) 555-2671"),
            rec("Anna", "Moreau", "(415) 555-2671"),
            rec("Ben", "Lee", "(415) 555-2671"),
        ];
        let m = model();
        let scored = vec![(0, 1, 0.99), (1, 2, 0.98), (1, 3, 0.97)];
        let out = cluster(&fs, &scored, &m, &ClusterConfig::default());
        assert_eq!(out.clusters.len(), 1);
        assert_eq!(out.clusters[0].members, vec![0, 1, 2]);
        // Ben shares the landline but is someone else: his given name still counts.
        assert_eq!(out.guard_refusals, 1);
        // Without the shared number the family names are evidence again.
        let p = compare(&rec("Anna", "Lee", ""), &rec("Anna", "Moreau", ""));
        assert!(negative_evidence(&m, p) <= -ClusterConfig::default().guard_bits);
    }

    #[test]
    fn clusters_respect_the_size_cap_and_are_deterministic() {
        let fs: Vec<Features> = (0..6)
            .map(|_| rec("Ann", "Lee", "(415) 555-2671"))
            .collect();
        let scored: Vec<(u32, u32, f64)> = (0..6u32)
            .flat_map(|a| (a + 1..6).map(move |b| (a, b, 0.9)))
            .collect();
        let cfg = ClusterConfig {
            max_cluster: 4,
            ..ClusterConfig::default()
        };
        let one = cluster(&fs, &scored, &model(), &cfg);
        let mut reversed = scored.clone();
        reversed.reverse();
        let two = cluster(&fs, &reversed, &model(), &cfg);
        assert_eq!(one.clusters, two.clusters);
        assert!(one.clusters.iter().all(|c| c.members.len() <= 4));
        assert!(one.size_refusals > 0);
    }
}
