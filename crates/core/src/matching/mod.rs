//! Entity resolution for contacts: which records are the same person.
//!
//! The pipeline, one stage per module, each pure, deterministic and parallel where it pays:
//! 1. [`record`]: records normalized with the shared normalizers (names, E.164 phones, e-mails);
//! 2. [`features`]: the comparable form of each record (folded names, canonical e-mail, …);
//! 3. [`blocking`]: candidate pairs from several keys, with generic values suppressed and block
//!    sizes capped;
//! 4. [`compare`]: an agreement level per field, the pair's pattern;
//! 5. [`model`]: Fellegi–Sunter weights estimated without labels, plus a hard-negative rule;
//! 6. [`cluster`]: strongest links first, with a guard against chains;
//! 7. [`resolve`]: survivor and field values per the platform's merge rules;
//! 8. [`eval`]: precision, recall and F1 against a truth file.
//!
//! [`Matcher::run`] runs stages 2–6; callers that report time per stage call the stages
//! themselves in the same order.

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod eval;
pub mod features;
pub mod incremental;
pub mod model;
pub mod nicknames;
pub mod record;
pub mod resolve;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

pub use blocking::{BlockingConfig, Candidates};
pub use cluster::{Cluster, ClusterConfig, Clustering};
pub use compare::{COMPARISONS, Comparison, Pattern, compare};
pub use features::Features;
pub use incremental::Resolver;
pub use model::Model;
pub use record::{COLUMNS, Column, DATA_COLUMNS, Record};

/// Every setting of the matcher. The defaults are meant to work on any contact data of this
/// kind without tuning.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MatchConfig {
    /// Candidate generation.
    pub blocking: BlockingConfig,
    /// Linking and the chain guard.
    pub cluster: ClusterConfig,
    /// Bits added when two records have different e-mails and different phones.
    pub conflict_weight: f64,
    /// Random pairs used to estimate the non-match (`u`) probabilities.
    pub u_samples: usize,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            blocking: BlockingConfig::default(),
            cluster: ClusterConfig::default(),
            conflict_weight: -6.0,
            u_samples: 300_000,
        }
    }
}

/// One field's part in a pair's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The field (`email`, …).
    pub field: &'static str,
    /// Its agreement level (`exact`, `similar`, …, `missing`).
    pub level: &'static str,
    /// Its weight in bits (positive: for a match).
    pub weight: f64,
}

/// Explains a pair: each field's level and weight, plus the contact-conflict rule if it fired.
pub fn explain(model: &Model, p: Pattern) -> Vec<Evidence> {
    let mut out: Vec<Evidence> = COMPARISONS
        .iter()
        .map(|&c| {
            let level = p.level(c);
            Evidence {
                field: c.name(),
                level: c.levels().get(level).copied().unwrap_or("?"),
                weight: model.weight(c, level),
            }
        })
        .collect();
    if Model::conflicting(p) {
        out.push(Evidence {
            field: "contact_points",
            level: "conflicting",
            weight: model.conflict_weight,
        });
    }
    out
}

/// Why one pair matched or not, for a person: each field's level and weight
/// ([`explain`]), the name-frequency adjustment when it applies, the total weight and the
/// match probability. The plan's pair explanations and the resolver's answers are both this.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairEvidence {
    /// Per field, and the contact-conflict rule when it fired.
    pub fields: Vec<Evidence>,
    /// The name-frequency adjustment in bits (0 when no name agreed exactly).
    pub name_frequency: f64,
    /// The total weight in bits, without the prior.
    pub weight: f64,
    /// The match probability.
    pub probability: f64,
}

/// Explains the pair `a`, `b` under `model`.
pub fn explain_pair(model: &Model, a: &Features, b: &Features) -> PairEvidence {
    let p = compare(a, b);
    let name_frequency = model.tf_adjustment(p, a, b);
    PairEvidence {
        fields: explain(model, p),
        name_frequency,
        weight: model.score(p) + name_frequency,
        probability: model.pair_probability(p, a, b),
    }
}

/// The matcher's stages.
pub struct Matcher {
    cfg: MatchConfig,
}

/// Everything one run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per-record features (with generic values marked).
    pub features: Vec<Features>,
    /// Blocking output.
    pub candidates: Candidates,
    /// Each candidate pair's pattern, in `candidates.pairs` order.
    pub patterns: Vec<Pattern>,
    /// The estimated model.
    pub model: Model,
    /// The clusters.
    pub clustering: Clustering,
}

impl Matcher {
    /// A matcher with these settings.
    pub fn new(cfg: MatchConfig) -> Matcher {
        Matcher { cfg }
    }

    /// Stage 2: features of every record.
    pub fn features(&self, records: &[Record]) -> Vec<Features> {
        let mut features: Vec<Features> = records.par_iter().map(Features::of).collect();
        features::set_term_frequencies(&mut features);
        features
    }

    /// Stage 3: candidate pairs.
    pub fn block(&self, features: &mut [Features]) -> Candidates {
        blocking::candidates(features, &self.cfg.blocking)
    }

    /// Stage 4: each candidate pair's pattern.
    pub fn compare(&self, features: &[Features], candidates: &Candidates) -> Vec<Pattern> {
        candidates
            .pairs
            .par_iter()
            .map(|&(a, b)| compare(&features[a as usize], &features[b as usize]))
            .collect()
    }

    /// Stage 5: the model, estimated from the data.
    pub fn estimate(&self, features: &[Features], patterns: &[Pattern]) -> Model {
        let counts = patterns
            .par_iter()
            .fold(FxHashMap::default, |mut m: FxHashMap<Pattern, u64>, p| {
                *m.entry(*p).or_default() += 1;
                m
            })
            .reduce(FxHashMap::default, |mut a, b| {
                for (p, n) in b {
                    *a.entry(p).or_default() += n;
                }
                a
            });
        Model::estimate(
            features,
            &counts,
            self.cfg.u_samples,
            self.cfg.conflict_weight,
        )
    }

    /// Stage 6: scored pairs and clusters (only the pairs at or above the threshold are kept
    /// once scored: the others never link).
    pub fn cluster(
        &self,
        features: &[Features],
        candidates: &Candidates,
        patterns: &[Pattern],
        model: &Model,
    ) -> Clustering {
        let threshold = self.cfg.cluster.threshold;
        let links: Vec<(u32, u32, f64)> = candidates
            .pairs
            .par_iter()
            .zip(patterns.par_iter())
            .filter_map(|(&(a, b), &p)| {
                let (fa, fb) = (&features[a as usize], &features[b as usize]);
                let prob = model.pair_probability(p, fa, fb);
                (prob >= threshold).then_some((a, b, prob))
            })
            .collect();
        cluster::cluster_links(features, links, model, &self.cfg.cluster)
    }

    /// Stages 2–6 in order.
    pub fn run(&self, records: &[Record]) -> Outcome {
        let mut features = self.features(records);
        let candidates = self.block(&mut features);
        let patterns = self.compare(&features, &candidates);
        let model = self.estimate(&features, &patterns);
        let clustering = self.cluster(&features, &candidates, &patterns, &model);
        Outcome {
            features,
            candidates,
            patterns,
            model,
            clustering,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: [&str; 20] = [
        "Aaron",
        "Beatrix",
        "Cedric",
        "Delphine",
        "Emeric",
        "Flavia",
        "Gideon",
        "Hortense",
        "Ignatius",
        "Jocasta",
        "Kasimir",
        "Leocadia",
        "Mortimer",
        "Noemi",
        "Octavian",
        "Perpetua",
        "Quentin",
        "Rosalind",
        "Silvester",
        "Theodora",
    ];
    const LAST: [&str; 20] = [
        "Abernathy",
        "Blackwood",
        "Castellano",
        "Dunmore",
        "Eastwick",
        "Fairbanks",
        "Galloway",
        "Hargreaves",
        "Ingleby",
        "Jablonski",
        "Kettering",
        "Lindqvist",
        "Montague",
        "Northcott",
        "Ormerod",
        "Pemberton",
        "Quarles",
        "Rutherford",
        "Stanhope",
        "Thistlewood",
    ];

    fn rec(id: String, first: &str, last: &str, email: &str, phone: &str, street: &str) -> Record {
        let postcode = if street.is_empty() { "" } else { "10001" };
        let raw = [
            id.as_str(),
            "",
            first,
            last,
            email,
            phone,
            street,
            "",
            "",
            postcode,
            "US",
        ];
        Record::from_raw(raw, None).0
    }

    /// 400 people with their own phone and e-mail, one in four with a second record, and 200
    /// more people whose phone field holds one shared value (an agent's default): the value is
    /// generic, so it is no evidence.
    fn population() -> Vec<Record> {
        let mut out = Vec::new();
        let mut n = 0;
        let mut id = || {
            n += 1;
            format!("r{n}")
        };
        for (i, (f, l)) in FIRST
            .iter()
            .flat_map(|f| LAST.iter().map(move |l| (f, l)))
            .enumerate()
        {
            let email = format!(
                "{}.{}{i}@mail.example.org",
                f.to_lowercase(),
                l.to_lowercase()
            );
            let phone = format!("+1 212 {:03} {:04}", 200 + i % 700, 1000 + i * 7);
            out.push(rec(id(), f, l, &email, &phone, ""));
            if i % 4 == 0 {
                out.push(rec(id(), f, l, &email, &phone, ""));
            }
        }
        for (i, (f, l)) in LAST
            .iter()
            .flat_map(|f| FIRST.iter().map(move |l| (f, l)))
            .take(200)
            .enumerate()
        {
            // Given and family names swapped, so these are other people than the above.
            let first = format!("{f}{}", i % 3);
            out.push(rec(id(), &first, l, "", "+1 646 555 0142", ""));
        }
        out
    }

    fn cluster_of(outcome: &Outcome, record: usize) -> Option<&Vec<u32>> {
        outcome
            .clustering
            .clusters
            .iter()
            .map(|c| &c.members)
            .find(|m| m.contains(&(record as u32)))
    }

    #[test]
    fn a_name_with_a_generic_phone_does_not_join_a_real_customer() {
        let mut records = population();
        let customer = records.len();
        records.push(rec(
            "customer".into(),
            "Zenobia",
            "Quackenbush",
            "zenobia.q@mail.example.org",
            "+1 212 555 0187",
            "12 Harbor Lane",
        ));
        let placeholder = records.len();
        records.push(rec(
            "placeholder".into(),
            "Zenobia",
            "Quackenbush",
            "",
            "+1 646 555 0142",
            "",
        ));
        // The same name with the same address is more than the name: that one may join.
        let with_address = records.len();
        records.push(rec(
            "with-address".into(),
            "Zenobia",
            "Quackenbush",
            "",
            "+1 646 555 0142",
            "12 Harbor Lane",
        ));
        let out = Matcher::new(MatchConfig::default()).run(&records);
        assert!(
            out.features[placeholder].phone_generic,
            "the shared phone is generic"
        );
        let joined = cluster_of(&out, customer).is_some_and(|m| m.contains(&(placeholder as u32)));
        assert!(
            !joined,
            "a name plus a generic phone joined a real customer"
        );
        assert!(
            cluster_of(&out, customer).is_some_and(|m| m.contains(&(with_address as u32))),
            "name and address are evidence enough"
        );
        // Between the placeholder record and anyone else, only the names agree: no link.
        assert!(cluster_of(&out, placeholder).is_none());
    }
}
