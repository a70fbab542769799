//! The merge plan: what `merge plan` proposes, a person reviews and `merge apply` carries out
//! (`plan.json` on disk). The clusters, their members and resolved values, why the pairs
//! matched, and the rules a plan must keep for `merge apply` to act on it ([`Plan::validate`]).
//! Reading and writing the file is the jobs' business; this is the format and its rules.
//!
//! Forward compatibility: unknown keys are ignored when reading (a newer planner may add some),
//! and optional values are left out when writing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::merge_values::MergeValues;

mod build;
mod decide;
pub use build::{MatchContext, keep_most_doubtful};
pub use decide::{
    Action, Approval, Basis, DECISIONS_FILE, DECISIONS_VERSION, Decided, DecidedCluster, Decision,
    DecisionError, Decisions, Group, NotMerged, decide_cluster,
};

pub const PLAN_VERSION: u32 = 1;

/// File name of the plan inside the plan directory.
pub const PLAN_FILE: &str = "plan.json";

/// Our field names, in display order (the keys of `fields`, `resolved` and `extra_values`).
pub const FIELD_NAMES: [&str; 9] = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "street",
    "city",
    "region",
    "postcode",
    "country",
];

/// A whole plan: every cluster of two or more records the planner wants merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version ([`PLAN_VERSION`]).
    pub version: u32,
    /// When the plan was made (UTC).
    pub generated_at: DateTime<Utc>,
    /// What it was made from (an input file, or the API).
    pub input: String,
    /// Clusters with at least two members.
    pub clusters: Vec<Cluster>,
}

/// One group of records believed to be the same person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Stable id derived from the sorted member ids ([`cluster_id`]).
    pub cluster_id: String,
    /// How sure the planner is that all members are one person (0..=1).
    pub confidence: f64,
    /// The record whose own values win where it has them.
    pub survivor: String,
    /// The records to merge (two or more).
    pub members: Vec<Member>,
    /// The merged record's values; a field is absent when no member has a value.
    #[serde(default)]
    pub resolved: Fields,
    /// Per field, the values that lost to the survivor's own (nothing is dropped).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_values: BTreeMap<String, Vec<String>>,
    /// Per field, the members' generic values (placeholders such as `noemail@…`, or a phone or
    /// e-mail shared by many different people): no evidence and no contact data, so they are
    /// never resolved, never extra values, and `merge apply` never sends them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generic_values: BTreeMap<String, Vec<String>>,
    /// Fields whose merged value won only by recency, between values equally many members
    /// hold: a person should look ([`crate::matching::resolve`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doubtful: Vec<String>,
    /// Why the members matched, pair by pair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PairExplanation>,
}

/// One record of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The record id: the External Contact id when the plan was made from the API or an
    /// export of it.
    pub record_id: String,
    /// The channel or system the record came from (`crm`, `ivr`, `chat`, `email`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When the record was last changed (UTC), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// The record's own values.
    #[serde(default)]
    pub fields: Fields,
}

/// The contact fields a plan carries; each may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number (E.164 when normalized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Street line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Region, state or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Fields {
    /// The value of a field by its plan name ([`FIELD_NAMES`]); `None` for unknown names.
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "first_name" => self.first_name.as_deref(),
            "last_name" => self.last_name.as_deref(),
            "email" => self.email.as_deref(),
            "phone" => self.phone.as_deref(),
            "street" => self.street.as_deref(),
            "city" => self.city.as_deref(),
            "region" => self.region.as_deref(),
            "postcode" => self.postcode.as_deref(),
            "country" => self.country.as_deref(),
            _ => None,
        }
    }

    /// Sets a field by its plan name; returns false for unknown names.
    pub fn set(&mut self, name: &str, value: Option<String>) -> bool {
        let slot = match name {
            "first_name" => &mut self.first_name,
            "last_name" => &mut self.last_name,
            "email" => &mut self.email,
            "phone" => &mut self.phone,
            "street" => &mut self.street,
            "city" => &mut self.city,
            "region" => &mut self.region,
            "postcode" => &mut self.postcode,
            "country" => &mut self.country,
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// Why two members matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairExplanation {
    /// One record id.
    pub a: String,
    /// The other record id.
    pub b: String,
    /// Match probability (0..=1).
    pub probability: f64,
    /// Total match weight (sum of the field weights, log2 scale).
    pub weight: f64,
    /// Per compared field: how well it agreed and what that weighed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldComparison>,
}

/// One field's comparison inside a pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldComparison {
    /// Field name ([`FIELD_NAMES`] or a derived one such as `name`).
    pub field: String,
    /// Agreement level (`exact`, `fuzzy`, `different`, `missing`, …).
    pub level: String,
    /// The weight this level contributed.
    pub weight: f64,
}

/// The stable id of a cluster: `k` + 16 hex digits of SHA-256 over the sorted, de-duplicated
/// member ids (each followed by a newline). The same members always give the same id.
pub fn cluster_id<'a>(member_ids: impl IntoIterator<Item = &'a str>) -> String {
    crate::keys::ids_key('k', member_ids)
}

/// A plan that breaks a rule `merge apply` relies on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PlanRuleError {
    /// A version this build does not know.
    #[error("plan version {found} is not supported (this build reads version {PLAN_VERSION})")]
    Version {
        /// The version in the plan.
        found: u32,
    },
    /// A cluster breaks a rule.
    #[error("cluster {cluster_id} (#{index}): {field}: {reason}")]
    Cluster {
        /// Position of the cluster in `clusters` (0-based).
        index: usize,
        /// The cluster's id as written.
        cluster_id: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Plan {
    /// Checks the rules `merge apply` relies on: a known version; per cluster a non-empty id,
    /// a confidence in 0..=1, two or more members with distinct non-empty ids, a survivor that
    /// is one of them; no record in two clusters; no cluster id twice.
    pub fn validate(&self) -> Result<(), PlanRuleError> {
        if self.version != PLAN_VERSION {
            return Err(PlanRuleError::Version {
                found: self.version,
            });
        }
        let mut seen_records: BTreeMap<&str, &str> = BTreeMap::new();
        let mut seen_clusters: BTreeSet<&str> = BTreeSet::new();
        for (index, cluster) in self.clusters.iter().enumerate() {
            let fail = |field: &'static str, reason: String| PlanRuleError::Cluster {
                index,
                cluster_id: cluster.cluster_id.clone(),
                field,
                reason,
            };
            if cluster.cluster_id.trim().is_empty() {
                return Err(fail("cluster_id", "is empty".into()));
            }
            if !seen_clusters.insert(&cluster.cluster_id) {
                return Err(fail("cluster_id", "appears twice in the plan".into()));
            }
            if !(0.0..=1.0).contains(&cluster.confidence) {
                return Err(fail(
                    "confidence",
                    format!("{} is outside 0..=1", cluster.confidence),
                ));
            }
            if cluster.members.len() < 2 {
                return Err(fail(
                    "members",
                    format!(
                        "has {} member(s); a cluster needs two or more",
                        cluster.members.len()
                    ),
                ));
            }
            let mut ids = BTreeSet::new();
            for member in &cluster.members {
                if member.record_id.trim().is_empty() {
                    return Err(fail("members.record_id", "is empty".into()));
                }
                if !ids.insert(member.record_id.as_str()) {
                    return Err(fail(
                        "members.record_id",
                        format!("{} appears twice", member.record_id),
                    ));
                }
                if let Some(other) = seen_records.insert(&member.record_id, &cluster.cluster_id) {
                    return Err(fail(
                        "members.record_id",
                        format!("{} is also in cluster {other}", member.record_id),
                    ));
                }
            }
            if !ids.contains(cluster.survivor.as_str()) {
                return Err(fail(
                    "survivor",
                    format!("{} is not one of the members", cluster.survivor),
                ));
            }
            for key in cluster.extra_values.keys() {
                if !FIELD_NAMES.contains(&key.as_str()) {
                    return Err(fail("extra_values", format!("unknown field {key:?}")));
                }
            }
            for key in cluster.generic_values.keys() {
                if !FIELD_NAMES.contains(&key.as_str()) {
                    return Err(fail("generic_values", format!("unknown field {key:?}")));
                }
            }
        }
        Ok(())
    }
}

impl Cluster {
    /// The values its merge should leave on the surviving record: the `resolved` values first,
    /// then the `extra_values`, never the `generic_values` ([`MergeValues::build`]).
    pub fn merge_values(&self) -> MergeValues {
        let r = &self.resolved;
        MergeValues::build(
            [
                ("first_name", r.first_name.as_deref()),
                ("last_name", r.last_name.as_deref()),
                ("email", r.email.as_deref()),
                ("phone", r.phone.as_deref()),
                ("street", r.street.as_deref()),
                ("city", r.city.as_deref()),
                ("region", r.region.as_deref()),
                ("postcode", r.postcode.as_deref()),
                ("country", r.country.as_deref()),
            ],
            &self.extra_values,
            &self.generic_values,
        )
    }

    /// The member ids, sorted.
    pub fn sorted_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.members.iter().map(|m| m.record_id.clone()).collect();
        ids.sort();
        ids
    }
}
