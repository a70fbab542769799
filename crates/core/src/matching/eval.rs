//! Scoring a clustering against the truth: precision, recall and F1 over pairs and over clusters.
//!
//! - *Pairs*: every pair of records in one predicted cluster is a predicted match; every pair in
//!   one true cluster is a true match.
//! - *Clusters*: a predicted cluster is right when it equals a true cluster exactly (same
//!   members, no more, no fewer). Two figures: over every cluster (singletons included) and over
//!   the true clusters with duplicates only (the harder figure: a lone record is easy to get
//!   right).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::Serialize;

/// Precision, recall and F1 of one measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    /// Right predictions / predictions.
    pub precision: f64,
    /// Right predictions / truths.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Right predictions.
    pub true_positives: u64,
    /// Predictions.
    pub predicted: u64,
    /// Truths.
    pub actual: u64,
}

impl Prf {
    fn of(tp: u64, predicted: u64, actual: u64) -> Prf {
        let precision = if predicted == 0 {
            1.0
        } else {
            tp as f64 / predicted as f64
        };
        let recall = if actual == 0 {
            1.0
        } else {
            tp as f64 / actual as f64
        };
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            precision,
            recall,
            f1,
            true_positives: tp,
            predicted,
            actual,
        }
    }
}

/// All figures of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Records scored (present in both the prediction and the truth).
    pub records: u64,
    /// Over record pairs.
    pub pairs: Prf,
    /// Over all clusters, singletons included.
    pub clusters: Prf,
    /// Over clusters of two or more records.
    pub multi_clusters: Prf,
}

/// Evaluates predicted cluster labels against true labels, both keyed by record id. Records
/// missing from either side are ignored.
pub fn evaluate<K: AsRef<str>, L1: AsRef<str>, L2: AsRef<str>>(
    predicted: &[(K, L1)],
    truth: &[(K, L2)],
) -> Evaluation {
    let truth_of: FxHashMap<&str, &str> = truth
        .iter()
        .map(|(k, l)| (k.as_ref(), l.as_ref()))
        .collect();
    // Clusters as sorted member lists, over the records both sides know.
    let mut pred: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut real: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut records = 0;
    for (k, l) in predicted {
        if let Some(t) = truth_of.get(k.as_ref()) {
            records += 1;
            pred.entry(l.as_ref()).or_default().push(k.as_ref());
            real.entry(t).or_default().push(k.as_ref());
        }
    }
    let pairs_in = |n: usize| (n * n.saturating_sub(1) / 2) as u64;
    let predicted_pairs: u64 = pred.values().map(|m| pairs_in(m.len())).sum();
    let actual_pairs: u64 = real.values().map(|m| pairs_in(m.len())).sum();
    // True positive pairs: for each predicted cluster, count pairs sharing a true label.
    let mut tp_pairs = 0;
    for members in pred.values() {
        let mut by_truth: FxHashMap<&str, usize> = FxHashMap::default();
        for m in members {
            *by_truth.entry(truth_of[m]).or_default() += 1;
        }
        tp_pairs += by_truth.values().map(|&n| pairs_in(n)).sum::<u64>();
    }
    let canon = |map: &BTreeMap<&str, Vec<&str>>| -> Vec<Vec<String>> {
        let mut v: Vec<Vec<String>> = map
            .values()
            .map(|m| {
                let mut m: Vec<String> = m.iter().map(|s| (*s).to_owned()).collect();
                m.sort_unstable();
                m
            })
            .collect();
        v.sort_unstable();
        v
    };
    let (pc, rc) = (canon(&pred), canon(&real));
    let real_set: rustc_hash::FxHashSet<&Vec<String>> = rc.iter().collect();
    let exact = pc.iter().filter(|c| real_set.contains(c)).count() as u64;
    let exact_multi = pc
        .iter()
        .filter(|c| c.len() > 1 && real_set.contains(c))
        .count() as u64;
    let pred_multi = pc.iter().filter(|c| c.len() > 1).count() as u64;
    let real_multi = rc.iter().filter(|c| c.len() > 1).count() as u64;
    Evaluation {
        records,
        pairs: Prf::of(tp_pairs, predicted_pairs, actual_pairs),
        clusters: Prf::of(exact, pc.len() as u64, rc.len() as u64),
        multi_clusters: Prf::of(exact_multi, pred_multi, real_multi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_imperfect() {
        let truth = [("a", "1"), ("b", "1"), ("c", "2"), ("d", "3")];
        let e = evaluate(&truth, &truth);
        assert_eq!(e.pairs.f1, 1.0);
        assert_eq!(e.clusters.f1, 1.0);
        assert_eq!(e.multi_clusters.f1, 1.0);
        // Everything in one cluster: 6 predicted pairs, 1 right.
        let all = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "x")];
        let e = evaluate(&all, &truth);
        assert_eq!(e.pairs.true_positives, 1);
        assert_eq!(e.pairs.predicted, 6);
        assert_eq!(e.pairs.recall, 1.0);
        assert_eq!(e.clusters.true_positives, 0);
        // Nothing merged: singletons c and d are right, a and b wrong.
        let none = [("a", "p"), ("b", "q"), ("c", "r"), ("d", "s")];
        let e = evaluate(&none, &truth);
        assert_eq!(e.pairs.recall, 0.0);
        assert_eq!(e.clusters.true_positives, 2);
        assert_eq!(e.multi_clusters.true_positives, 0);
    }
}
