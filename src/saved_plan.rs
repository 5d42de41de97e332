//! Saved plans (`jobctl plan --out FILE`, `POST /v1/plan` with `save`): a plan together with
//! everything it was computed from, so that `jobctl apply FILE` applies exactly that plan or
//! refuses, naming what moved, as terraform's saved plans and Nomad's `-check-index` do.
//!
//! A saved plan holds the job files it read (each file's text and SHA-256: it is
//! self-contained, like a terraform plan file) and the ledger as the plan saw it (each job's
//! revision number, owner and whether it is active). Applying it compares both with what is
//! there now: the files in the jobs folder (when it is at hand) before anything is opened, and
//! the ledger inside the apply's own write transaction, so nothing can slip in between the
//! check and the write. Pure: the callers read the files and the ledger.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The format of this file; a newer one is refused with a message.
pub const FORMAT: &str = "jobctl-saved-plan/1";

/// A plan and what it was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    /// When the plan was made.
    pub created_at: String,
    /// The jobs folder as it was named.
    pub dir: String,
    /// The git commit of the folder, if it was in a work tree, and whether it was dirty.
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: Option<bool>,
    /// Each job file by its path in the folder.
    pub files: BTreeMap<String, SavedFile>,
    /// The ledger's jobs as the plan saw them.
    pub ledger: BTreeMap<String, SeenJob>,
    /// The plan, as `jobctl plan --output json` prints it.
    pub plan: serde_json::Value,
    /// The plan as `jobctl plan` prints it.
    pub text: String,
    pub has_changes: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    pub sha256: String,
    pub text: String,
}

/// A job of the ledger as a plan saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenJob {
    pub revision: i64,
    pub active: bool,
    /// Created through the API (`apply` leaves it alone, but a plan names it).
    #[serde(default)]
    pub api_owned: bool,
}

/// Why a text is not a saved plan this version can apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedPlanError {
    #[error("not a saved plan (`jobctl plan --out FILE` writes one): {0}")]
    NotAPlan(String),
    #[error(
        "a saved plan of format `{0}`; this jobctl reads `{FORMAT}` (plan again with this version)"
    )]
    Format(String),
    #[error("a damaged saved plan: {0}")]
    Damaged(String),
}

/// A file's SHA-256, hex.
#[must_use]
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files of a folder as a saved plan keeps them.
#[must_use]
pub fn files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> BTreeMap<String, SavedFile> {
    files
        .into_iter()
        .map(|(path, bytes)| {
            (
                path.to_string(),
                SavedFile {
                    sha256: sha256(bytes),
                    text: String::from_utf8_lossy(bytes).into_owned(),
                },
            )
        })
        .collect()
}

impl SavedPlan {
    /// Reads a saved plan from its JSON.
    ///
    /// # Errors
    ///
    /// When the text is not a saved plan, or one of another format.
    pub fn parse(text: &str) -> Result<SavedPlan, SavedPlanError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SavedPlanError::NotAPlan(e.to_string()))?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(FORMAT) => {}
            Some(other) => return Err(SavedPlanError::Format(other.to_string())),
            None => return Err(SavedPlanError::NotAPlan("it has no `format`".to_string())),
        }
        serde_json::from_value(value).map_err(|e| SavedPlanError::Damaged(e.to_string()))
    }

    /// What moved in the files since the plan: each file changed, added or gone, by its
    /// path in the folder. Empty when they are the same.
    #[must_use]
    pub fn moved_files(&self, now: &BTreeMap<String, String>) -> Vec<String> {
        let shown = |path: &str| {
            if self.dir.is_empty() {
                path.to_string()
            } else {
                format!("{}/{path}", self.dir.trim_end_matches('/'))
            }
        };
        let mut moved = Vec::new();
        for (path, file) in &self.files {
            match now.get(path) {
                None => moved.push(format!("{} is gone", shown(path))),
                Some(hash) if *hash != file.sha256 => {
                    moved.push(format!("{} changed", shown(path)));
                }
                Some(_) => {}
            }
        }
        for path in now.keys().filter(|p| !self.files.contains_key(*p)) {
            moved.push(format!("{} is new", shown(path)));
        }
        moved
    }

    /// What moved in the ledger since the plan: each job applied, changed or removed
    /// meanwhile. Empty when it is as the plan saw it.
    #[must_use]
    pub fn moved_jobs(&self, now: &BTreeMap<String, SeenJob>) -> Vec<String> {
        let mut moved = Vec::new();
        for (name, seen) in &self.ledger {
            match now.get(name) {
                None => moved.push(format!("job `{name}` is no longer in the ledger")),
                Some(job) if job.revision != seen.revision => moved.push(format!(
                    "job `{name}` is at revision {}; the plan saw revision {}",
                    job.revision, seen.revision
                )),
                Some(job) if job.active != seen.active => moved.push(if job.active {
                    format!("job `{name}` was applied again")
                } else {
                    format!("job `{name}` was removed")
                }),
                Some(_) => {}
            }
        }
        for name in now.keys().filter(|n| !self.ledger.contains_key(*n)) {
            moved.push(format!("job `{name}` was added"));
        }
        moved
    }

    /// The changes the plan makes, as `(job, action)`: what an apply of it must make.
    #[must_use]
    pub fn changes(&self) -> Vec<(String, String)> {
        changes_of(&self.plan)
    }
}

/// The changes of a plan's JSON, as `(job, action)`, without the unchanged jobs.
#[must_use]
pub fn changes_of(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan.get("changes")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("name")?.as_str()?;
            let action = c.get("action")?.as_str()?;
            (action != "unchanged").then(|| (name.to_string(), action.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> SavedPlan {
        SavedPlan {
            format: FORMAT.to_string(),
            created_at: "2026-10-31T12:00:00Z".to_string(),
            dir: "jobs.d".to_string(),
            commit: None,
            dirty: None,
            files: files([("a.yaml", &b"run: a\n"[..]), ("b.yaml", &b"run: b\n"[..])]),
            ledger: [("a", 2, true), ("gone", 1, false), ("c", 1, true)]
                .into_iter()
                .map(|(n, revision, active)| {
                    (
                        n.to_string(),
                        SeenJob {
                            revision,
                            active,
                            api_owned: false,
                        },
                    )
                })
                .collect(),
            plan: serde_json::json!({"changes": [
                {"name": "a", "action": "change"},
                {"name": "b", "action": "add"},
                {"name": "c", "action": "remove"},
                {"name": "d", "action": "unchanged"},
            ]}),
            text: String::new(),
            has_changes: true,
        }
    }

    #[test]
    fn moved_files_are_named_as_changed_new_or_gone() {
        let plan = saved();
        let hashes = |pairs: &[(&str, &[u8])]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(p, b)| (p.to_string(), sha256(b)))
                .collect()
        };
        for (now, moved) in [
            (
                hashes(&[("a.yaml", b"run: a\n"), ("b.yaml", b"run: b\n")]),
                vec![],
            ),
            (
                hashes(&[("a.yaml", b"run: A\n"), ("c.yaml", b"run: c\n")]),
                vec![
                    "jobs.d/a.yaml changed",
                    "jobs.d/b.yaml is gone",
                    "jobs.d/c.yaml is new",
                ],
            ),
        ] {
            assert_eq!(plan.moved_files(&now), moved);
        }
    }

    #[test]
    fn moved_jobs_are_named_with_their_revisions() {
        let plan = saved();
        let seen = |n: &str, revision: i64, active: bool| {
            (
                n.to_string(),
                SeenJob {
                    revision,
                    active,
                    api_owned: false,
                },
            )
        };
        let same: BTreeMap<_, _> = [
            seen("a", 2, true),
            seen("gone", 1, false),
            seen("c", 1, true),
        ]
        .into_iter()
        .collect();
        assert!(plan.moved_jobs(&same).is_empty());
        let now: BTreeMap<_, _> = [
            seen("a", 3, true),
            seen("gone", 1, true),
            seen("x", 1, true),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            plan.moved_jobs(&now),
            [
                "job `a` is at revision 3; the plan saw revision 2",
                "job `c` is no longer in the ledger",
                "job `gone` was applied again",
                "job `x` was added",
            ]
        );
    }

    #[test]
    fn a_plan_round_trips_and_other_formats_are_refused() {
        let plan = saved();
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(SavedPlan::parse(&text).unwrap(), plan);
        assert_eq!(
            plan.changes(),
            [
                ("a".to_string(), "change".to_string()),
                ("b".to_string(), "add".to_string()),
                ("c".to_string(), "remove".to_string()),
            ]
        );
        let newer = text.replace(FORMAT, "jobctl-saved-plan/9");
        assert!(
            SavedPlan::parse(&newer)
                .unwrap_err()
                .to_string()
                .contains("format `jobctl-saved-plan/9`")
        );
        assert!(
            SavedPlan::parse("{}")
                .unwrap_err()
                .to_string()
                .contains("no `format`")
        );
        assert!(
            SavedPlan::parse("plan")
                .unwrap_err()
                .to_string()
                .starts_with("not a saved plan")
        );
    }
}
