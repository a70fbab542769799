//! The merge plan on disk: `DIR/plan.json`, written by `dedupd merge plan`, reviewed by a
//! person, consumed by `dedupd merge apply`. The format and its rules are
//! `dedupd_core::plan`; this module reads and writes the file.
//!
//! Forward compatibility: unknown keys are ignored when reading (a newer planner may add some),
//! and optional values are left out when writing. [`Plan::load`] checks what `merge apply` relies
//! on and names the cluster and the field when something is wrong.

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use dedupd_core::plan::*;

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
    /// The decisions file is not valid JSON of its format.
    #[error("{path}: not a valid decisions file: {source}")]
    ParseDecisions {
        /// The decisions file.
        path: PathBuf,
        /// Where and what (line and column included).
        source: serde_json::Error,
    },
    /// A review decision cannot be carried out on the plan.
    #[error("{path}: {source}")]
    Decision {
        /// The decisions file.
        path: PathBuf,
        /// Which decision and key, and why.
        source: DecisionError,
    },
    /// The plan breaks a rule `merge apply` relies on.
    #[error("{path}: {source}")]
    Invalid {
        /// The plan file.
        path: PathBuf,
        /// Which rule, naming the cluster and the field.
        source: PlanRuleError,
    },
}

/// `plan.json` in a plan directory: where it is, reading it (with [`Plan::validate`]) and
/// writing it through the atomic writer.
pub trait PlanFile: Sized {
    /// Path of the plan file inside a plan directory.
    fn path_in(dir: &Path) -> PathBuf;
    /// Reads and checks `DIR/plan.json`.
    fn load(dir: &Path) -> Result<Self, PlanError>;
    /// Writes `DIR/plan.json` (pretty-printed, synced, renamed into place).
    fn save(&self, dir: &Path) -> Result<PathBuf, PlanError>;
}

impl PlanFile for Plan {
    fn path_in(dir: &Path) -> PathBuf {
        dir.join(PLAN_FILE)
    }

    fn load(dir: &Path) -> Result<Plan, PlanError> {
        let path = Self::path_in(dir);
        let bytes = std::fs::read(&path).map_err(|source| PlanError::Io {
            path: path.clone(),
            source,
        })?;
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|source| PlanError::Parse {
            path: path.clone(),
            source,
        })?;
        plan.validate()
            .map_err(|source| PlanError::Invalid { path, source })?;
        Ok(plan)
    }

    fn save(&self, dir: &Path) -> Result<PathBuf, PlanError> {
        let path = Self::path_in(dir);
        crate::shared::fs::write_json(&path, self).map_err(|e| PlanError::Io {
            path: path.clone(),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
        Ok(path)
    }
}

/// `decisions.json` in a plan directory: the review's decisions (`dedupd merge review` writes
/// it, `dedupd merge apply` honours it).
pub trait DecisionsFile: Sized {
    /// Path of the decisions file inside a plan directory.
    fn path_in(dir: &Path) -> PathBuf;
    /// Reads `DIR/decisions.json`; `None` when there is none.
    fn load(dir: &Path) -> Result<Option<Self>, PlanError>;
    /// Writes `DIR/decisions.json` (synced, renamed into place).
    fn save(&self, dir: &Path) -> Result<PathBuf, PlanError>;
}

impl DecisionsFile for Decisions {
    fn path_in(dir: &Path) -> PathBuf {
        dir.join(DECISIONS_FILE)
    }

    fn load(dir: &Path) -> Result<Option<Decisions>, PlanError> {
        let path = <Self as DecisionsFile>::path_in(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PlanError::Io { path, source }),
        };
        let decisions: Decisions =
            serde_json::from_slice(&bytes).map_err(|source| PlanError::ParseDecisions {
                path: path.clone(),
                source,
            })?;
        decisions
            .check_version()
            .map_err(|source| PlanError::Decision { path, source })?;
        Ok(Some(decisions))
    }

    fn save(&self, dir: &Path) -> Result<PathBuf, PlanError> {
        let path = <Self as DecisionsFile>::path_in(dir);
        crate::shared::fs::write_json(&path, self).map_err(|e| PlanError::Io {
            path: path.clone(),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
        Ok(path)
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
