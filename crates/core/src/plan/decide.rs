//! Review decisions (`decisions.json` beside `plan.json`) and what `merge apply` merges from a
//! plan: only what a person approved (or, without a review, what the run's approval says), with
//! splits, survivor choices and value overrides applied and the merged values recomputed from
//! the decided members by the one resolution rule ([`crate::matching::resolve`]), never taken
//! from the stale plan.
//!
//! A decision is keyed by its cluster's member set (the cluster id is a hash of the sorted
//! member ids, and the decision carries the ids too): a re-planned plan keeps the decisions
//! whose clusters did not change, and a cluster whose members changed is undecided again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Cluster, FIELD_NAMES, Fields, Member, Plan, cluster_id};
use crate::matching::Column;
use crate::matching::resolve::{self, Candidate};

/// Format version of `decisions.json`.
pub const DECISIONS_VERSION: u32 = 1;

/// File name of the decisions inside the plan directory.
pub const DECISIONS_FILE: &str = "decisions.json";

/// Every decision a reviewer made on a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    /// Format version ([`DECISIONS_VERSION`]).
    pub version: u32,
    /// Per cluster id, the decision.
    #[serde(default)]
    pub decisions: BTreeMap<String, Decision>,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions {
            version: DECISIONS_VERSION,
            decisions: BTreeMap::new(),
        }
    }
}

/// One cluster's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The member ids of the cluster it was made on, sorted.
    pub members: Vec<String>,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
    /// When it was made (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// What to do with a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Merge every member, with an optional survivor and value overrides.
    Approve {
        /// The survivor a person chose (default: the plan's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        survivor: Option<String>,
        /// Per field, the member value a person chose as the merged value.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        overrides: BTreeMap<String, String>,
    },
    /// Merge nothing.
    Reject,
    /// Merge each group of two or more members on its own; members in no group (or alone in
    /// one) are left as they are.
    Split {
        /// The groups to merge.
        groups: Vec<Group>,
    },
}

/// One group of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Its member ids.
    pub members: Vec<String>,
    /// The survivor a person chose (default: the rule's pick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivor: Option<String>,
    /// Per field, the member value a person chose as the merged value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
}

/// Which clusters a run of `merge apply` merges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Approval<'a> {
    /// The reviewed decisions: approved clusters and split groups only.
    Reviewed(&'a Decisions),
    /// Every cluster as planned (`--approve-all`), without review.
    All,
    /// Every cluster at or above this confidence, as planned (`--min-confidence`).
    MinConfidence(f64),
}

/// Why a cluster of the plan was merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum Basis {
    /// A reviewer approved it (`decided_at` from the decision).
    Approved {
        /// When the decision was made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decided_at: Option<DateTime<Utc>>,
    },
    /// A group of a cluster a reviewer split.
    Split {
        /// The planned cluster it was split from.
        from: String,
        /// When the decision was made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decided_at: Option<DateTime<Utc>>,
    },
    /// `--approve-all`.
    ApproveAll,
    /// `--min-confidence`.
    MinConfidence {
        /// The threshold.
        threshold: f64,
    },
}

/// A cluster to merge and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DecidedCluster {
    /// The cluster as decided: its members, survivor and recomputed values.
    pub cluster: Cluster,
    /// The decision it carries out.
    pub basis: Basis,
}

/// A planned cluster that is not merged, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotMerged {
    /// A reviewer rejected it.
    Rejected,
    /// No decision matches its member set.
    Undecided,
    /// Below `--min-confidence`.
    BelowConfidence,
}

/// What a run merges from a plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decided {
    /// The clusters to merge, in plan order (a split's groups in their order).
    pub merge: Vec<DecidedCluster>,
    /// Planned clusters not merged, by cluster id.
    pub not_merged: Vec<(Cluster, NotMerged)>,
    /// Members a split left out of every group (they stay as they are).
    pub split_off: Vec<String>,
    /// Decisions whose cluster is not in the plan (the plan changed since the review).
    pub stale_decisions: Vec<String>,
}

/// A decision that cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("decision for cluster {cluster_id}: {field}: {reason}")]
pub struct DecisionError {
    /// The cluster the decision is for.
    pub cluster_id: String,
    /// The offending key (`survivor`, `overrides.phone`, `groups[1].members`, …).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Decisions {
    /// Checks the format version.
    pub fn check_version(&self) -> Result<(), DecisionError> {
        if self.version == DECISIONS_VERSION {
            return Ok(());
        }
        Err(DecisionError {
            cluster_id: "-".into(),
            field: "version".into(),
            reason: format!(
                "{} is not supported (this build reads version {DECISIONS_VERSION})",
                self.version
            ),
        })
    }

    /// The decision made on exactly this cluster's member set, if any.
    pub fn for_cluster(&self, cluster: &Cluster) -> Option<&Decision> {
        self.decisions
            .get(&cluster.cluster_id)
            .filter(|d| sorted(&d.members) == cluster.sorted_ids())
    }
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

impl Plan {
    /// What `approval` merges from this plan. A decision that names a record outside its
    /// cluster, puts one in two groups, chooses a survivor outside its group or overrides a
    /// value with one no member holds is an error naming the cluster and the key.
    pub fn decide(&self, approval: Approval<'_>) -> Result<Decided, DecisionError> {
        let mut out = Decided::default();
        for cluster in &self.clusters {
            match approval {
                Approval::All => out.merge.push(DecidedCluster {
                    cluster: cluster.clone(),
                    basis: Basis::ApproveAll,
                }),
                Approval::MinConfidence(threshold) => {
                    if cluster.confidence >= threshold {
                        out.merge.push(DecidedCluster {
                            cluster: cluster.clone(),
                            basis: Basis::MinConfidence { threshold },
                        });
                    } else {
                        out.not_merged
                            .push((cluster.clone(), NotMerged::BelowConfidence));
                    }
                }
                Approval::Reviewed(decisions) => {
                    let Some(decision) = decisions.for_cluster(cluster) else {
                        out.not_merged.push((cluster.clone(), NotMerged::Undecided));
                        continue;
                    };
                    decide_one(cluster, decision, &mut out)?;
                }
            }
        }
        if let Approval::Reviewed(decisions) = approval {
            let planned: BTreeSet<&str> = self
                .clusters
                .iter()
                .map(|c| c.cluster_id.as_str())
                .collect();
            out.stale_decisions = decisions
                .decisions
                .keys()
                .filter(|k| !planned.contains(k.as_str()))
                .cloned()
                .collect();
        }
        Ok(out)
    }
}

/// What one decision merges of one cluster (the check `merge review` runs before it saves a
/// decision, with the merged values as `merge apply` will send them).
pub fn decide_cluster(cluster: &Cluster, decision: &Decision) -> Result<Decided, DecisionError> {
    let mut out = Decided::default();
    decide_one(cluster, decision, &mut out)?;
    Ok(out)
}

fn decide_one(
    cluster: &Cluster,
    decision: &Decision,
    out: &mut Decided,
) -> Result<(), DecisionError> {
    let fail = |field: String, reason: String| DecisionError {
        cluster_id: cluster.cluster_id.clone(),
        field,
        reason,
    };
    match &decision.action {
        Action::Reject => out.not_merged.push((cluster.clone(), NotMerged::Rejected)),
        Action::Approve {
            survivor,
            overrides,
        } => {
            let all = cluster.sorted_ids();
            let decided = cluster
                .decided(&all, survivor.as_deref(), overrides)
                .map_err(|(field, reason)| fail(field, reason))?;
            out.merge.push(DecidedCluster {
                cluster: decided,
                basis: Basis::Approved {
                    decided_at: decision.decided_at,
                },
            });
        }
        Action::Split { groups } => {
            let members: BTreeSet<&str> = cluster
                .members
                .iter()
                .map(|m| m.record_id.as_str())
                .collect();
            let mut placed: BTreeSet<&str> = BTreeSet::new();
            for (g, group) in groups.iter().enumerate() {
                for id in &group.members {
                    if !members.contains(id.as_str()) {
                        return Err(fail(
                            format!("groups[{g}].members"),
                            format!("{id} is not a member of the cluster"),
                        ));
                    }
                    if !placed.insert(id.as_str()) {
                        return Err(fail(
                            format!("groups[{g}].members"),
                            format!("{id} is in two groups"),
                        ));
                    }
                }
                if group.members.len() < 2 {
                    continue;
                }
                let decided = cluster
                    .decided(&group.members, group.survivor.as_deref(), &group.overrides)
                    .map_err(|(field, reason)| fail(format!("groups[{g}].{field}"), reason))?;
                out.merge.push(DecidedCluster {
                    cluster: decided,
                    basis: Basis::Split {
                        from: cluster.cluster_id.clone(),
                        decided_at: decision.decided_at,
                    },
                });
            }
            let in_groups: BTreeSet<&str> = groups
                .iter()
                .filter(|g| g.members.len() >= 2)
                .flat_map(|g| g.members.iter().map(String::as_str))
                .collect();
            out.split_off.extend(
                cluster
                    .members
                    .iter()
                    .filter(|m| !in_groups.contains(m.record_id.as_str()))
                    .map(|m| m.record_id.clone()),
            );
        }
    }
    Ok(())
}

/// A plan member as the resolver sees it: its values, and which of them the plan lists as
/// generic for the cluster.
struct PlanMember<'a> {
    member: &'a Member,
    generic: &'a BTreeMap<String, Vec<String>>,
}

impl Candidate for PlanMember<'_> {
    fn id(&self) -> &str {
        &self.member.record_id
    }
    fn updated_at(&self) -> Option<i64> {
        self.member.updated_at.map(|t| t.timestamp())
    }
    fn value(&self, col: Column) -> Option<&str> {
        self.member.fields.get(col.name())
    }
    fn is_generic(&self, col: Column) -> bool {
        let Some(v) = self.value(col) else {
            return false;
        };
        self.generic
            .get(col.name())
            .is_some_and(|g| g.iter().any(|x| x.eq_ignore_ascii_case(v)))
    }
}

impl Cluster {
    /// The cluster of `ids` (two or more of its members) as decided: `survivor` or the rule's
    /// pick, `overrides` (field → a value one of those members holds) winning in their fields,
    /// the resolved, extra and generic values recomputed from those members only, the
    /// explanations of the pairs among them, and its confidence their weakest link's (the
    /// planned confidence when no planned link joins them). `Err((field, reason))` names what
    /// is wrong with the decision.
    pub fn decided(
        &self,
        ids: &[String],
        survivor: Option<&str>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Cluster, (String, String)> {
        let chosen: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let members: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| chosen.contains(m.record_id.as_str()))
            .collect();
        if let Some(stranger) = chosen
            .iter()
            .find(|id| !members.iter().any(|m| m.record_id == **id))
        {
            return Err((
                "members".into(),
                format!("{stranger} is not a member of the cluster"),
            ));
        }
        if members.len() < 2 {
            return Err(("members".into(), "a merge needs two or more members".into()));
        }
        let survivor =
            match survivor {
                None => None,
                Some(s) => Some(members.iter().position(|m| m.record_id == s).ok_or_else(
                    || {
                        (
                            "survivor".to_owned(),
                            format!("{s} is not one of the members merged"),
                        )
                    },
                )?),
            };
        let generic: BTreeMap<String, Vec<String>> = self
            .generic_values
            .iter()
            .filter_map(|(field, values)| {
                let held: Vec<String> = values
                    .iter()
                    .filter(|v| {
                        members.iter().any(|m| {
                            m.fields
                                .get(field)
                                .is_some_and(|x| x.eq_ignore_ascii_case(v))
                        })
                    })
                    .cloned()
                    .collect();
                (!held.is_empty()).then(|| (field.clone(), held))
            })
            .collect();
        let mut by_column = BTreeMap::new();
        for (field, value) in overrides {
            let col = Column::from_name(field)
                .filter(|_| FIELD_NAMES.contains(&field.as_str()))
                .ok_or_else(|| (format!("overrides.{field}"), "unknown field".to_owned()))?;
            if !members
                .iter()
                .any(|m| m.fields.get(field) == Some(value.as_str()))
            {
                return Err((
                    format!("overrides.{field}"),
                    "no member merged holds that value".into(),
                ));
            }
            by_column.insert(col, value.clone());
        }
        let candidates: Vec<PlanMember<'_>> = members
            .iter()
            .map(|m| PlanMember {
                member: m,
                generic: &generic,
            })
            .collect();
        let res = resolve::resolve_with(&candidates, survivor, &by_column);
        let mut resolved = Fields::default();
        for (col, v) in &res.resolved {
            resolved.set(col.name(), Some(v.clone()));
        }
        let extra_values = res
            .extra_values
            .iter()
            .map(|(col, vs)| (col.name().to_owned(), vs.clone()))
            .collect();
        let pairs: Vec<_> = self
            .pairs
            .iter()
            .filter(|p| chosen.contains(p.a.as_str()) && chosen.contains(p.b.as_str()))
            .cloned()
            .collect();
        let confidence = if members.len() == self.members.len() || pairs.is_empty() {
            self.confidence
        } else {
            pairs.iter().map(|p| p.probability).fold(1.0, f64::min)
        };
        Ok(Cluster {
            cluster_id: cluster_id(members.iter().map(|m| m.record_id.as_str())),
            confidence,
            survivor: members[res.survivor].record_id.clone(),
            members: members.into_iter().cloned().collect(),
            resolved,
            extra_values,
            generic_values: generic,
            doubtful: res.doubtful.iter().map(|c| c.name().to_owned()).collect(),
            pairs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PLAN_VERSION, PairExplanation};
    use chrono::TimeZone;

    fn member(id: &str, first: &str, phone: &str, t: i64) -> Member {
        Member {
            record_id: id.into(),
            source: None,
            updated_at: Utc.timestamp_opt(t, 0).single(),
            fields: Fields {
                first_name: Some(first.into()),
                last_name: Some("Lee".into()),
                phone: Some(phone.into()),
                ..Fields::default()
            },
        }
    }

    fn pair(a: &str, b: &str, p: f64) -> PairExplanation {
        PairExplanation {
            a: a.into(),
            b: b.into(),
            probability: p,
            weight: 1.0,
            fields: Vec::new(),
        }
    }

    /// Four members: a, b and c share a real phone, d has another; `+10000000000` is generic.
    fn cluster() -> Cluster {
        let members = vec![
            member("a", "Ann", "+14155552671", 10),
            member("b", "Ann", "+14155552671", 20),
            member("c", "Anne", "+10000000000", 30),
            member("d", "Bob", "+14155550000", 40),
        ];
        Cluster {
            cluster_id: cluster_id(["a", "b", "c", "d"]),
            confidence: 0.7,
            survivor: "a".into(),
            members,
            resolved: Fields::default(),
            extra_values: BTreeMap::new(),
            generic_values: BTreeMap::from([("phone".into(), vec!["+10000000000".into()])]),
            doubtful: Vec::new(),
            pairs: vec![
                pair("a", "b", 0.99),
                pair("b", "c", 0.9),
                pair("c", "d", 0.7),
            ],
        }
    }

    fn plan() -> Plan {
        Plan {
            version: PLAN_VERSION,
            generated_at: Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
            input: "test".into(),
            clusters: vec![cluster()],
        }
    }

    fn decisions(action: Action) -> Decisions {
        let c = cluster();
        Decisions {
            version: DECISIONS_VERSION,
            decisions: BTreeMap::from([(
                c.cluster_id.clone(),
                Decision {
                    members: c.sorted_ids(),
                    action,
                    decided_at: None,
                },
            )]),
        }
    }

    #[test]
    fn approve_all_and_min_confidence_need_no_decisions() {
        let p = plan();
        assert_eq!(p.decide(Approval::All).map(|d| d.merge.len()), Ok(1));
        let d = p.decide(Approval::MinConfidence(0.8)).unwrap_or_default();
        assert!(d.merge.is_empty());
        assert_eq!(d.not_merged[0].1, NotMerged::BelowConfidence);
    }

    #[test]
    fn only_approved_clusters_merge_and_values_are_recomputed() {
        let p = plan();
        let undecided = p.decide(Approval::Reviewed(&Decisions::default()));
        assert_eq!(
            undecided.map(|d| d.not_merged[0].1),
            Ok(NotMerged::Undecided)
        );
        let rejected = p.decide(Approval::Reviewed(&decisions(Action::Reject)));
        assert_eq!(
            rejected.map(|d| (d.merge.len(), d.not_merged[0].1)),
            Ok((0, NotMerged::Rejected))
        );

        let approve = decisions(Action::Approve {
            survivor: Some("d".into()),
            overrides: BTreeMap::from([("phone".into(), "+14155550000".into())]),
        });
        let d = p.decide(Approval::Reviewed(&approve)).unwrap_or_default();
        let c = &d.merge[0].cluster;
        assert_eq!(c.survivor, "d");
        assert_eq!(c.resolved.phone.as_deref(), Some("+14155550000"));
        assert_eq!(c.extra_values["phone"], vec!["+14155552671".to_owned()]);
        assert_eq!(c.resolved.first_name.as_deref(), Some("Ann"));
        assert!(matches!(d.merge[0].basis, Basis::Approved { .. }));
    }

    #[test]
    fn a_split_merges_its_groups_and_leaves_the_rest() {
        let p = plan();
        let split = decisions(Action::Split {
            groups: vec![Group {
                members: vec!["a".into(), "c".into()],
                survivor: None,
                overrides: BTreeMap::new(),
            }],
        });
        let d = p.decide(Approval::Reviewed(&split)).unwrap_or_default();
        assert_eq!(d.merge.len(), 1);
        let c = &d.merge[0].cluster;
        assert_eq!(c.sorted_ids(), vec!["a", "c"]);
        assert_eq!(c.cluster_id, cluster_id(["a", "c"]));
        // d's phone left with d; c's placeholder stays generic; a's real number wins.
        assert_eq!(c.resolved.phone.as_deref(), Some("+14155552671"));
        assert!(!c.extra_values.contains_key("phone"));
        assert_eq!(c.generic_values["phone"], vec!["+10000000000".to_owned()]);
        // No planned link joins a and c: the planned confidence stays.
        assert!((c.confidence - 0.7).abs() < 1e-12);
        assert_eq!(d.split_off, vec!["b".to_owned(), "d".to_owned()]);
        assert!(
            matches!(&d.merge[0].basis, Basis::Split { from, .. } if *from == cluster().cluster_id)
        );
    }

    #[test]
    fn a_decision_on_another_member_set_is_stale_and_the_cluster_undecided() {
        let mut p = plan();
        let approve = decisions(Action::Approve {
            survivor: None,
            overrides: BTreeMap::new(),
        });
        p.clusters[0] = p.clusters[0]
            .decided(
                &["a".into(), "b".into(), "c".into()],
                None,
                &BTreeMap::new(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        let d = p.decide(Approval::Reviewed(&approve)).unwrap_or_default();
        assert!(d.merge.is_empty());
        assert_eq!(d.not_merged[0].1, NotMerged::Undecided);
        assert_eq!(d.stale_decisions, vec![cluster().cluster_id]);
    }

    #[test]
    fn bad_decisions_name_the_key() {
        let p = plan();
        let stranger = decisions(Action::Approve {
            survivor: Some("z".into()),
            overrides: BTreeMap::new(),
        });
        let e = p.decide(Approval::Reviewed(&stranger)).err();
        assert_eq!(e.map(|e| e.field), Some("survivor".to_owned()));
        let unheld = decisions(Action::Approve {
            survivor: None,
            overrides: BTreeMap::from([("phone".into(), "+19999999999".into())]),
        });
        let e = p.decide(Approval::Reviewed(&unheld)).err();
        assert_eq!(e.map(|e| e.field), Some("overrides.phone".to_owned()));
        let twice = decisions(Action::Split {
            groups: vec![
                Group {
                    members: vec!["a".into(), "b".into()],
                    survivor: None,
                    overrides: BTreeMap::new(),
                },
                Group {
                    members: vec!["b".into(), "c".into()],
                    survivor: None,
                    overrides: BTreeMap::new(),
                },
            ],
        });
        let e = p.decide(Approval::Reviewed(&twice)).err();
        assert_eq!(e.map(|e| e.field), Some("groups[1].members".to_owned()));
    }

    #[test]
    fn decisions_round_trip_in_their_wire_form() {
        let d = decisions(Action::Split {
            groups: vec![Group {
                members: vec!["a".into(), "b".into()],
                survivor: Some("b".into()),
                overrides: BTreeMap::new(),
            }],
        });
        let json = serde_json::to_value(&d).unwrap_or_default();
        let one = &json["decisions"][cluster().cluster_id.as_str()];
        assert_eq!(one["action"], "split");
        assert_eq!(one["groups"][0]["survivor"], "b");
        let back: Decisions = serde_json::from_value(json).unwrap_or_default();
        assert_eq!(back, d);
    }
}
