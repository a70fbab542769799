//! The merge plan on disk: `DIR/plan.json`, written by `dedupd merge plan`, reviewed by a
//! person, consumed by `dedupd merge apply`. Both sides use these structs, so the format has one
//! definition.
//!
//! Forward compatibility: unknown keys are ignored when reading (a newer planner may add some),
//! and optional values are left out when writing. [`Plan::load`] checks what `merge apply` relies
//! on and names the cluster and the field when something is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The plan format version this build reads and writes.
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
    dedupd_core::keys::ids_key('k', member_ids)
}

/// A plan that cannot be read or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The plan file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a plan (JSON syntax or a missing/mistyped key).
    #[error("{path}: not a valid merge plan: {source}")]
    Parse {
        /// The plan file.
        path: PathBuf,
        /// Where and what (line and column included).
        source: serde_json::Error,
    },
    /// A version this build does not know.
    #[error(
        "{path}: plan version {found} is not supported (this build reads version {PLAN_VERSION})"
    )]
    Version {
        /// The plan file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
    },
    /// A cluster breaks a rule `merge apply` relies on.
    #[error("{path}: cluster {cluster_id} (#{index}): {field}: {reason}")]
    Cluster {
        /// The plan file.
        path: PathBuf,
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
    /// Path of the plan file inside a plan directory.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(PLAN_FILE)
    }

    /// Reads and checks `DIR/plan.json`.
    pub fn load(dir: &Path) -> Result<Plan, PlanError> {
        let path = Self::path_in(dir);
        let bytes = std::fs::read(&path).map_err(|source| PlanError::Io {
            path: path.clone(),
            source,
        })?;
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|source| PlanError::Parse {
            path: path.clone(),
            source,
        })?;
        plan.validate(&path)?;
        Ok(plan)
    }

    /// Writes `DIR/plan.json` (pretty-printed, through [`crate::shared::fs::write_json`]:
    /// a synced temporary file renamed into place).
    pub fn save(&self, dir: &Path) -> Result<PathBuf, PlanError> {
        let path = Self::path_in(dir);
        crate::shared::fs::write_json(&path, self).map_err(|e| PlanError::Io {
            path: path.clone(),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
        Ok(path)
    }

    /// Checks the rules `merge apply` relies on: a known version; per cluster a non-empty id,
    /// a confidence in 0..=1, two or more members with distinct non-empty ids, a survivor that
    /// is one of them; no record in two clusters; no cluster id twice.
    pub fn validate(&self, path: &Path) -> Result<(), PlanError> {
        if self.version != PLAN_VERSION {
            return Err(PlanError::Version {
                path: path.to_owned(),
                found: self.version,
            });
        }
        let mut seen_records: BTreeMap<&str, &str> = BTreeMap::new();
        let mut seen_clusters: BTreeSet<&str> = BTreeSet::new();
        for (index, cluster) in self.clusters.iter().enumerate() {
            let fail = |field: &'static str, reason: String| PlanError::Cluster {
                path: path.to_owned(),
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
    /// The member ids, sorted.
    pub fn sorted_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.members.iter().map(|m| m.record_id.clone()).collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "version": 1,
      "generated_at": "2026-11-24T22:40:00Z",
      "input": "contacts.csv",
      "future_key": {"ignored": true},
      "clusters": [
        {
          "cluster_id": "k3f9a0c1e2d4b5a6",
          "confidence": 0.97,
          "survivor": "C00000012",
          "members": [
            {"record_id": "C00000012", "source": "crm", "updated_at": "2024-01-29T11:27:14Z",
             "fields": {"first_name": "Michelle", "last_name": "Rice", "email": "m@example.com",
                        "phone": "+15556676000", "country": "US"}},
            {"record_id": "C00000013", "source": "ivr", "fields": {"phone": "+15556676001"}}
          ],
          "resolved": {"first_name": "Michelle", "last_name": "Rice", "email": "m@example.com",
                       "phone": "+15556676000", "country": "US"},
          "extra_values": {"phone": ["+15556676001"]},
          "pairs": [{"a": "C00000012", "b": "C00000013", "probability": 0.99, "weight": 12.3,
                     "fields": [{"field": "email", "level": "exact", "weight": 8.1}]}]
        }
      ]
    }"#;

    fn write_plan(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PLAN_FILE), text).unwrap();
        dir
    }

    #[test]
    fn reads_the_documented_shape_and_ignores_unknown_keys() {
        let dir = write_plan(SAMPLE);
        let plan = Plan::load(dir.path()).unwrap();
        let cluster = &plan.clusters[0];
        assert_eq!(cluster.members.len(), 2);
        assert_eq!(cluster.members[1].updated_at, None);
        assert_eq!(cluster.resolved.get("city"), None);
        assert_eq!(
            cluster.extra_values["phone"],
            vec!["+15556676001".to_owned()]
        );
        assert_eq!(cluster.pairs[0].fields[0].level, "exact");
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = write_plan(SAMPLE);
        let plan = Plan::load(dir.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        plan.save(out.path()).unwrap();
        assert_eq!(Plan::load(out.path()).unwrap(), plan);
    }

    #[test]
    fn a_broken_cluster_is_named_with_its_field() {
        let bad = SAMPLE.replace(r#""survivor": "C00000012""#, r#""survivor": "C99""#);
        let err = Plan::load(write_plan(&bad).path()).unwrap_err().to_string();
        assert!(
            err.contains("cluster k3f9a0c1e2d4b5a6 (#0): survivor"),
            "{err}"
        );

        let single = SAMPLE.replace(
            r#",
            {"record_id": "C00000013", "source": "ivr", "fields": {"phone": "+15556676001"}}"#,
            "",
        );
        let err = Plan::load(write_plan(&single).path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("members: has 1 member(s)"), "{err}");

        let typed = SAMPLE.replace(r#""confidence": 0.97"#, r#""confidence": "high""#);
        let err = Plan::load(write_plan(&typed).path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a valid merge plan") && err.contains("line"),
            "{err}"
        );

        let version = SAMPLE.replace(r#""version": 1"#, r#""version": 7"#);
        let err = Plan::load(write_plan(&version).path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("plan version 7"), "{err}");
    }

    #[test]
    fn cluster_id_depends_only_on_the_set_of_ids() {
        let a = cluster_id(["C2", "C1", "C3"]);
        assert_eq!(a, cluster_id(["C3", "C1", "C2", "C1"]));
        assert_ne!(a, cluster_id(["C1", "C2"]));
        assert_eq!(a.len(), 17);
        assert!(a.starts_with('k'));
    }
}
