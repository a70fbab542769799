//! Fellegi–Sunter scoring with weights estimated from the data itself, without labels.
//!
//! For every comparison level, `m` is the probability of the level among true matches and `u`
//! among non-matches; the level's weight is `log2(m / u)` and a pair's score is the sum of its
//! weights (a missing value weighs nothing). As in Splink:
//! - `u` comes from random record pairs, which are almost all non-matches;
//! - `m` and the share of matches among the candidates (`lambda`) come from expectation
//!   maximisation over the candidate pairs' patterns. The pairs are first aggregated into
//!   distinct patterns, so each EM round costs a few thousand operations, whatever the size of
//!   the data.
//!
//! On top of it, two rules that plain Fellegi–Sunter misses because it treats fields as
//! independent:
//! - two different valid e-mails *and* two different phones are strong evidence of two people
//!   (`conflict_weight`), whatever the names say;
//! - a record whose phone or e-mail is generic, and that has no other phone or e-mail, needs more
//!   than its name to link: names are all it has to go on, and a namesake with a real number is
//!   as likely as the same person ([`Model::names_only_beside_generic`]).

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::compare::{COMPARISONS, Comparison, Pattern, compare};
use super::features::Features;

const LEVELS: usize = 6;

/// The estimated parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// `m[c][level]`: probability of each level among matches (level 0 unused).
    pub m: [[f64; LEVELS]; 7],
    /// `u[c][level]`: probability of each level among non-matches (level 0 unused).
    pub u: [[f64; LEVELS]; 7],
    /// Share of matches among the candidate pairs.
    pub lambda: f64,
    /// Prior probability of a match for a pair scored with these weights.
    pub prior: f64,
    /// Bits added when both e-mails and both phones are present and different.
    pub conflict_weight: f64,
    /// EM rounds run.
    pub iterations: usize,
}

/// A deterministic pseudo-random sequence (SplitMix64), so estimates repeat run to run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn n_levels(c: Comparison) -> usize {
    c.levels().len()
}

impl Model {
    /// The weight in bits of one comparison level (0 for `missing`).
    pub fn weight(&self, c: Comparison, level: usize) -> f64 {
        if level == 0 || level >= LEVELS {
            return 0.0;
        }
        let i = c as usize;
        (self.m[i][level] / self.u[i][level]).log2()
    }

    /// Whether the pair has two different e-mails and two different phones.
    pub fn conflicting(p: Pattern) -> bool {
        p.level(Comparison::Email) == 3 && p.level(Comparison::Phone) == 3
    }

    /// The pair's match weight in bits (log2 of the Bayes factor), without the prior.
    pub fn score(&self, p: Pattern) -> f64 {
        let mut w: f64 = COMPARISONS
            .iter()
            .map(|&c| self.weight(c, p.level(c)))
            .sum();
        if Self::conflicting(p) {
            w += self.conflict_weight;
        }
        w
    }

    /// The term-frequency adjustment of a pair in bits: agreeing exactly on a name rarer than
    /// average is stronger evidence than the level's average weight says, on a common one weaker
    /// (Splink's term-frequency adjustment). Bounded to ±8 bits.
    pub fn tf_adjustment(&self, p: Pattern, a: &Features, b: &Features) -> f64 {
        let mut adj = 0.0;
        for (c, tf) in [
            (Comparison::FirstName, a.first_tf.max(b.first_tf)),
            (Comparison::LastName, a.last_tf.max(b.last_tf)),
        ] {
            if p.level(c) == 1 && tf > 0.0 {
                adj += (self.u[c as usize][1] / f64::from(tf))
                    .log2()
                    .clamp(-8.0, 8.0);
            }
        }
        adj
    }

    /// The evidence in bits from everything but the names: e-mail, phone and address, and the
    /// contact-conflict rule.
    pub fn beyond_names(&self, p: Pattern) -> f64 {
        let mut w: f64 = COMPARISONS
            .iter()
            .filter(|c| !matches!(c, Comparison::FirstName | Comparison::LastName))
            .map(|&c| self.weight(c, p.level(c)))
            .sum();
        if Self::conflicting(p) {
            w += self.conflict_weight;
        }
        w
    }

    /// Whether a pair would link on its names alone while one side's only phone or e-mail is
    /// generic ([`Features::is_generic`]): nothing but the names speaks for it (no evidence
    /// beyond the names above zero bits), so the pair is no link however well the names agree.
    pub fn names_only_beside_generic(&self, p: Pattern, a: &Features, b: &Features) -> bool {
        (a.only_generic_identifiers() || b.only_generic_identifiers())
            && self.beyond_names(p) <= 0.0
    }

    /// The match probability of a pair, with term-frequency adjustments; 0 for a pair that has
    /// only names beside a generic value ([`Model::names_only_beside_generic`]).
    pub fn pair_probability(&self, p: Pattern, a: &Features, b: &Features) -> f64 {
        if self.names_only_beside_generic(p, a, b) {
            return 0.0;
        }
        probability_of(self.score(p) + self.tf_adjustment(p, a, b) + self.prior_weight())
    }

    /// The weight of the prior odds, in bits.
    pub fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }

    /// The posterior match probability of a pattern.
    pub fn probability(&self, p: Pattern) -> f64 {
        probability_of(self.score(p) + self.prior_weight())
    }

    /// Estimates `u` from `samples` random pairs and `m`, `lambda` by EM over the candidate
    /// pairs' pattern counts.
    pub fn estimate(
        features: &[Features],
        patterns: &FxHashMap<Pattern, u64>,
        samples: usize,
        conflict_weight: f64,
    ) -> Model {
        // A fixed order makes the floating-point sums, and so the result, repeatable.
        let mut pats: Vec<(Pattern, u64)> = patterns.iter().map(|(p, n)| (*p, *n)).collect();
        pats.sort_unstable();
        let mut u = estimate_u(features, samples);
        for c in [Comparison::Email, Comparison::Phone] {
            let exact = identifier_u(features, c);
            // Keep the level probabilities summing to one.
            let k = n_levels(c);
            let rest: f64 = u[c as usize][2..k].iter().sum();
            u[c as usize][1] = exact;
            for v in &mut u[c as usize][2..k] {
                *v *= (1.0 - exact) / rest.max(f64::MIN_POSITIVE);
            }
        }
        let m = estimate_m(&pats);
        let mut model = Model {
            m,
            u,
            lambda: 0.0,
            prior: 0.0,
            conflict_weight,
            iterations: 0,
        };
        let n = features.len() as f64;
        let all_pairs = (n * (n - 1.0) / 2.0).max(1.0);
        let (prior, lambda, rounds) = estimate_prior(&pats, |p| model.score(p), all_pairs);
        model.prior = prior;
        model.lambda = lambda;
        model.iterations = rounds;
        model
    }
}

/// A log-odds weight in bits to a probability.
pub fn probability_of(bits: f64) -> f64 {
    1.0 / (1.0 + (-bits).exp2())
}

/// `u` from random pairs. Random pairs are almost all non-matches, but for identifiers (e-mail,
/// phone, address) the few random pairs that agree *are* mostly matches, which would make
/// agreement look common among non-matches and weaken the best evidence there is. So these
/// fields count only pairs whose names disagree (surely two people); names count all pairs.
/// Weight of the prior of `u`, in random pairs.
const U_PRIOR_PAIRS: f64 = 200.0;

/// The fewest pairs `identifier_u` divides by: below that, the data is too small to show how
/// often two people share an identifier, and agreement is taken as rare as it is in practice.
const IDENTIFIER_MIN_PAIRS: f64 = 1e7;

fn estimate_u(features: &[Features], samples: usize) -> [[f64; LEVELS]; 7] {
    let n = features.len() as u64;
    const CHUNK: usize = 1 << 16;
    let chunks = samples.div_ceil(CHUNK);
    let counts = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut counts = [[0u64; LEVELS]; 7];
            if n < 2 {
                return counts;
            }
            // One generator per chunk, seeded by its index: the same sample on any thread count.
            let mut rng = SplitMix(0x00DE_D0BD ^ (chunk as u64).wrapping_mul(0x9E37_79B9));
            for _ in 0..CHUNK.min(samples - chunk * CHUNK) {
                let a = (rng.next() % n) as usize;
                let b = (rng.next() % n) as usize;
                if a == b {
                    continue;
                }
                let p = compare(&features[a], &features[b]);
                let two_people =
                    p.level(Comparison::FirstName) == 5 || p.level(Comparison::LastName) == 4;
                for c in COMPARISONS {
                    let name = matches!(c, Comparison::FirstName | Comparison::LastName);
                    if name || two_people {
                        counts[c as usize][p.level(c)] += 1;
                    }
                }
            }
            counts
        })
        .reduce(
            || [[0u64; LEVELS]; 7],
            |mut a, b| {
                for (ra, rb) in a.iter_mut().zip(b) {
                    for (x, y) in ra.iter_mut().zip(rb) {
                        *x += y;
                    }
                }
                a
            },
        );
    let mut u = [[0.0; LEVELS]; 7];
    for c in COMPARISONS {
        let i = c as usize;
        let k = n_levels(c);
        // A prior worth `U_PRIOR_PAIRS` random pairs: agreement at any level is rare (1 %),
        // disagreement the rule. It decides on tiny inputs, where a handful of records cannot
        // tell what is common, and vanishes on real ones (hundreds of thousands of samples).
        let total: u64 = counts[i][1..k].iter().sum();
        for level in 1..k {
            let prior = if level == k - 1 {
                1.0 - 0.01 * (k - 2) as f64
            } else {
                0.01
            };
            u[i][level] =
                (counts[i][level] as f64 + U_PRIOR_PAIRS * prior) / (total as f64 + U_PRIOR_PAIRS);
        }
    }
    u
}

/// `u` of exact agreement on an identifier (e-mail, phone), measured on the whole data instead
/// of sampled: among all pairs of records that both have the identifier, the share that have
/// the same value *and* are plainly two people (different given names). Sampling cannot
/// estimate this: the few random pairs that share an e-mail are mostly the same person, and the
/// true rate (households, shared work numbers) is far below what any sample can see. Measured
/// this way the weight grows with the size of the data exactly as the prior shrinks, so a
/// shared identifier means the same on 20 thousand records as on a million.
fn identifier_u(features: &[Features], c: Comparison) -> f64 {
    let mut keyed = super::blocking::keyed_by(features, |f| match c {
        Comparison::Email => f.email().map(|e| {
            use std::hash::{Hash, Hasher};
            let mut h = rustc_hash::FxHasher::default();
            e.hash(&mut h);
            h.finish()
        }),
        _ => f.phone(),
    });
    keyed.par_sort_unstable();
    let present = keyed.len() as f64;
    let all = (present * (present - 1.0) / 2.0).max(IDENTIFIER_MIN_PAIRS);
    let two_people: u64 = keyed
        .par_chunk_by(|a, b| a.0 == b.0)
        .map(|group| {
            let mut n = 0u64;
            for (x, &(_, a)) in group.iter().enumerate() {
                for &(_, b) in &group[x + 1..] {
                    let p = compare(&features[a as usize], &features[b as usize]);
                    n += u64::from(p.level(Comparison::FirstName) == 5);
                }
            }
            n
        })
        .sum();
    (two_people as f64 + 0.5) / all
}

fn initial_m(c: Comparison) -> [f64; LEVELS] {
    let k = n_levels(c);
    let mut m = [0.0; LEVELS];
    // Exact agreement is by far the most common level among matches; disagreement is rare.
    m[1] = 0.8;
    m[k - 1] = 0.05;
    let partial = (1.0 - m[1] - m[k - 1]) / (k - 3).max(1) as f64;
    for v in m.iter_mut().take(k - 1).skip(2) {
        *v = partial;
    }
    if k == 3 {
        m[1] = 0.95;
    }
    m
}

/// Whether a pattern is an *anchor* for learning comparison `c`: the pair agrees on two
/// identifiers that do not involve `c`, so it is almost surely a match, and the level it shows
/// for `c` is a sample of `m` (Splink's "training blocking rules", without labels).
fn anchor(c: Comparison, p: Pattern) -> bool {
    use Comparison::*;
    let lv = |x: Comparison| p.level(x);
    let first_ok = matches!(lv(FirstName), 1..=3);
    let last_ok = matches!(lv(LastName), 1..=3);
    match c {
        FirstName | LastName => lv(Email) == 1 && lv(Phone) == 1,
        Email => lv(Phone) == 1 && first_ok && last_ok,
        Phone => lv(Email) == 1 && first_ok && last_ok,
        Street | Postcode | City => (lv(Email) == 1 || lv(Phone) == 1) && first_ok && last_ok,
    }
}

/// `m` per comparison from its anchor pairs; the defaults where a comparison has too few.
fn estimate_m(pats: &[(Pattern, u64)]) -> [[f64; LEVELS]; 7] {
    std::array::from_fn(|i| {
        let c = COMPARISONS[i];
        let k = n_levels(c);
        let mut counts = [0u64; LEVELS];
        for &(p, n) in pats {
            if anchor(c, p) {
                counts[p.level(c)] += n;
            }
        }
        let present: u64 = counts[1..k].iter().sum();
        if present < 30 {
            return initial_m(c);
        }
        let mut m = [0.0; LEVELS];
        for level in 1..k {
            // Add-one smoothing: a level unseen among anchors is rare, not impossible.
            m[level] = (counts[level] as f64 + 1.0) / (present as f64 + k as f64);
        }
        m
    })
}

/// The prior probability that a random pair matches, as the fixed point of
/// `prior = E[matches among candidates | prior] / all pairs` (pairs that are not candidates
/// count as non-matches). Returns the prior and the share of matches among the candidates.
fn estimate_prior(
    pats: &[(Pattern, u64)],
    bits: impl Fn(Pattern) -> f64,
    all_pairs: f64,
) -> (f64, f64, usize) {
    let total: f64 = pats.iter().map(|(_, n)| *n as f64).sum();
    if total == 0.0 {
        return (1.0 / all_pairs.max(2.0), 0.0, 0);
    }
    let scored: Vec<(f64, f64)> = pats.iter().map(|&(p, n)| (bits(p), n as f64)).collect();
    let mut prior = (total / all_pairs).clamp(1e-12, 0.5);
    let mut rounds = 0;
    for _ in 0..100 {
        rounds += 1;
        let prior_bits = (prior / (1.0 - prior)).log2();
        let expected: f64 = scored
            .iter()
            .map(|&(b, n)| n * probability_of(b + prior_bits))
            .sum();
        let next = (expected / all_pairs).clamp(1e-12, 0.5);
        let done = ((next - prior) / prior).abs() < 1e-6;
        prior = next;
        if done {
            break;
        }
    }
    let prior_bits = (prior / (1.0 - prior)).log2();
    let expected: f64 = scored
        .iter()
        .map(|&(b, n)| n * probability_of(b + prior_bits))
        .sum();
    (prior, expected / total, rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_is_a_logistic_of_bits() {
        assert!((probability_of(0.0) - 0.5).abs() < 1e-12);
        assert!(probability_of(10.0) > 0.999);
        assert!(probability_of(-10.0) < 0.001);
    }

    #[test]
    fn anchors_teach_m_and_the_prior_counts_the_matches() {
        // 100 pairs agreeing on everything (anchors for every field), 900 disagreeing on
        // everything, out of 10,000 possible pairs.
        let mut all_agree = Pattern(0);
        let mut all_differ = Pattern(0);
        for c in COMPARISONS {
            all_agree.0 |= 1 << (3 * c as u32);
            all_differ.0 |= ((n_levels(c) - 1) as u32) << (3 * c as u32);
        }
        let pats = vec![(all_agree, 100), (all_differ, 900)];
        let m = estimate_m(&pats);
        for c in COMPARISONS {
            assert!(m[c as usize][1] > 0.9, "{c:?}");
        }
        let mut u = [[0.0; LEVELS]; 7];
        for c in COMPARISONS {
            let k = n_levels(c);
            for (level, v) in u[c as usize].iter_mut().enumerate().take(k).skip(1) {
                *v = if level == k - 1 {
                    0.9
                } else {
                    0.1 / (k - 2) as f64
                };
            }
        }
        let model = Model {
            m,
            u,
            lambda: 0.0,
            prior: 0.0,
            conflict_weight: 0.0,
            iterations: 0,
        };
        let (prior, lambda, _) = estimate_prior(&pats, |p| model.score(p), 10_000.0);
        assert!((prior * 10_000.0 - 100.0).abs() < 1.0, "prior {prior}");
        assert!((lambda - 0.1).abs() < 0.01, "lambda {lambda}");
        let model = Model { prior, ..model };
        assert!(model.probability(all_agree) > 0.99);
        assert!(model.probability(all_differ) < 0.01);
    }
}
