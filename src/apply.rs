//! Apply: turning a plan into ledger writes, for `jobctl apply` and the daemon's reconcile.
//!
//! The plan is recomputed inside the ledger's write transaction, against the jobs as they are
//! there, so a concurrent writer cannot slip in between planning and writing. `keep` names jobs
//! whose files are broken right now: the daemon keeps them at their last good revision instead
//! of removing them (`jobctl apply` refuses a broken folder outright and passes none).

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;

use crate::catalog::Catalog;
use crate::ledger::{ApplyBatch, ApplyRecord, GitInfo, JobRow, Ledger, LedgerError, NewRevision};
use crate::plan::{self, Applied, Plan};
use crate::saved_plan::{SavedPlan, SeenJob};

/// The outcome of an apply: what was written (nothing for an empty plan) and the plan itself.
#[derive(Debug)]
pub struct Outcome {
    pub record: Option<ApplyRecord>,
    pub plan: Plan,
}

/// Why an apply wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan has errors (shown to the user); nothing was written.
    #[error("the plan has errors, nothing was applied: {}", errors_text(.0))]
    Plan(Plan),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A saved plan no longer fits the ledger: what moved since it was made.
    #[error("the ledger changed since the plan was made: {}", .0.join("; "))]
    Moved(Vec<String>),
}

/// Plans `catalog` against the ledger and writes the changes in one transaction.
///
/// # Errors
///
/// [`ApplyError::Plan`] when the plan has errors, or the ledger's error.
pub fn apply(
    ledger: &mut Ledger,
    catalog: &Catalog,
    now: Timestamp,
    git: &GitInfo,
    keep: &HashSet<String>,
) -> Result<Outcome, ApplyError> {
    apply_checked(ledger, catalog, now, git, keep, None)
}

/// Applies a saved plan's files (`catalog`, built from them) only if the ledger is as the
/// plan saw it and the plan computed now makes the same changes; checked inside the apply's
/// write transaction, so nothing slips in between.
///
/// # Errors
///
/// [`ApplyError::Moved`] naming what moved, or as [`apply`].
pub fn apply_saved(
    ledger: &mut Ledger,
    catalog: &Catalog,
    now: Timestamp,
    git: &GitInfo,
    saved: &SavedPlan,
) -> Result<Outcome, ApplyError> {
    apply_checked(ledger, catalog, now, git, &HashSet::new(), Some(saved))
}

/// The ledger's jobs as a saved plan records them.
pub fn seen_jobs(rows: &[JobRow]) -> BTreeMap<String, SeenJob> {
    rows.iter()
        .map(|r| {
            (
                r.name.clone(),
                SeenJob {
                    revision: r.revision,
                    active: r.active,
                    api_owned: r.owner == crate::ledger::Owner::Api,
                },
            )
        })
        .collect()
}

fn apply_checked(
    ledger: &mut Ledger,
    catalog: &Catalog,
    now: Timestamp,
    git: &GitInfo,
    keep: &HashSet<String>,
    saved: Option<&SavedPlan>,
) -> Result<Outcome, ApplyError> {
    let stamp = apply_stamp(now);
    let mut decided: Option<Plan> = None;
    let mut moved: Option<Vec<String>> = None;
    let result = ledger.apply(stamp, git, |current, fetch| {
        if let Some(saved) = saved {
            let changed = saved.moved_jobs(&seen_jobs(current));
            if !changed.is_empty() {
                let message = changed.join("; ");
                moved = Some(changed);
                return Err(message);
            }
        }
        // Only changed and removed jobs need their stored definition (for the diff) and their
        // stored schedule (for the next fires before and after).
        let mut plan = plan::plan(catalog, &applied_for_plan(current, catalog, fetch), now);
        if !keep.is_empty() {
            plan.changes
                .retain(|c| !(c.action == plan::Action::Remove && keep.contains(&c.name)));
        }
        if !plan.errors.is_empty() {
            let message = errors_text(&plan);
            decided = Some(plan);
            return Err(message);
        }
        if let Some(saved) = saved {
            let now_changes =
                crate::saved_plan::changes_of(&serde_json::to_value(&plan).unwrap_or_default());
            if now_changes != saved.changes() {
                let message = "the plan computed now differs from the saved one".to_string();
                moved = Some(vec![message.clone()]);
                return Err(message);
            }
        }
        let batch = ApplyBatch {
            upserts: revisions(&plan, catalog, crate::ledger::Owner::File),
            removals: plan
                .changes
                .iter()
                .filter(|c| c.action == plan::Action::Remove)
                .map(|c| c.name.clone())
                .collect(),
            owner: crate::ledger::Owner::File,
            scope: None,
        };
        decided = Some(plan);
        Ok(batch)
    });
    match result {
        Ok(record) => Ok(Outcome {
            record,
            plan: decided.expect("a successful apply decided its plan"),
        }),
        // The transaction can fail before it decides anything (the ledger locked by another
        // writer), so there may be no plan to show.
        Err(e) => match (decided, moved) {
            (_, Some(moved)) => Err(ApplyError::Moved(moved)),
            (Some(plan), None) if !plan.errors.is_empty() => Err(ApplyError::Plan(plan)),
            _ => Err(ApplyError::Ledger(e)),
        },
    }
}

/// A plan's errors on one line, for the ledger's refusal.
fn errors_text(plan: &Plan) -> String {
    plan.errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The new revisions a plan records. A file's job remembers its file; an API-owned job has none.
fn revisions(plan: &Plan, catalog: &Catalog, owner: crate::ledger::Owner) -> Vec<NewRevision> {
    plan::upserts(plan, catalog)
        .into_iter()
        .map(|(change, entry)| NewRevision {
            name: entry.spec.name.to_string(),
            content_hash: entry.hash.clone(),
            definition: change.after.clone().unwrap_or_default(),
            source_path: (owner == crate::ledger::Owner::File).then(|| entry.relative.clone()),
            enabled: entry.spec.enabled,
            schedule: entry.spec.schedule.clone(),
            timezone: entry.spec.timezone.tz.clone(),
            description: entry.spec.description.clone(),
            tags: entry.spec.tags.clone(),
            reset_anchor: change.reset_anchor,
            repeat: entry.spec.repeat,
            depends_on: entry
                .spec
                .depends_on
                .iter()
                .map(ToString::to_string)
                .collect(),
            runs_on: entry.spec.runs_on.clone(),
        })
        .collect()
}

/// An apply's stamp: `now` to the second, truncated, never rounded up: a stamp ahead of the
/// clock would put a new job's cursor in the future, and an `after` job would ignore upstream
/// successes in that half second.
fn apply_stamp(now: Timestamp) -> Timestamp {
    let second = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    now.round(second).unwrap_or(now)
}

/// [`applied`] for a plan or an apply, from rows without definitions (`Ledger::jobs_bare`):
/// only a job whose definition differs needs its stored definition and run count (`fetch`),
/// and its stored schedule and zone (a parse each), for the diff and the fires before and
/// after. Of 10,000 jobs a commit touches a few; the rest cost a hash comparison.
pub fn applied_for_plan(
    rows: &[JobRow],
    catalog: &Catalog,
    fetch: &dyn Fn(&str) -> Option<(String, i64)>,
) -> Vec<Applied> {
    rows.iter()
        .map(|row| {
            let same = catalog
                .get(&row.name)
                .is_some_and(|entry| entry.hash == row.content_hash);
            if !same && row.owner == crate::ledger::Owner::File && row.active {
                let mut row = row.clone();
                if let Some((definition, n_runs)) = fetch(&row.name) {
                    row.definition = definition;
                    row.n_runs = n_runs;
                }
                return applied(std::slice::from_ref(&row)).remove(0);
            }
            if same && row.active && row.owner == crate::ledger::Owner::File {
                Applied {
                    name: row.name.clone(),
                    api_owned: false,
                    active: true,
                    revision: row.revision,
                    hash: row.content_hash.clone(),
                    definition: String::new(),
                    source_path: row.source_path.clone(),
                    schedule: None,
                    timezone: None,
                    enabled: row.enabled,
                    anchor: Timestamp::UNIX_EPOCH,
                    n_runs: row.n_runs,
                }
            } else {
                applied(std::slice::from_ref(row)).remove(0)
            }
        })
        .collect()
}

/// The active API-owned jobs' names: jobs.d files may depend on them.
pub fn api_owned_names(rows: &[JobRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.owner == crate::ledger::Owner::Api && r.active)
        .map(|r| r.name.clone())
        .collect()
}

/// The ledger's jobs as the plan sees them.
pub fn applied(rows: &[JobRow]) -> Vec<Applied> {
    rows.iter()
        .map(|row| Applied {
            name: row.name.clone(),
            api_owned: row.owner == crate::ledger::Owner::Api,
            active: row.active,
            revision: row.revision,
            hash: row.content_hash.clone(),
            definition: row.definition.clone(),
            source_path: row.source_path.clone(),
            schedule: Some(row.schedule.clone()),
            timezone: Some(row.timezone.clone()),
            enabled: row.enabled,
            anchor: row.schedule_anchor,
            n_runs: row.n_runs,
        })
        .collect()
}

/// What the API does to one of its jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiWrite {
    Create,
    Update,
    Delete,
}

/// Why an API write of a job wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApiWriteError {
    /// No such API-owned job (update, delete).
    #[error("{0}")]
    NotFound(String),
    /// The name belongs to a file, or (create) already exists.
    #[error("{0}")]
    Conflict(String),
    /// The definition does not validate: the diagnostics, against the text as given.
    #[error("the definition is invalid: {}", diagnostics_text(.0))]
    Invalid(Vec<crate::diag::Diagnostic>),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

fn diagnostics_text(diagnostics: &[crate::diag::Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Creates, changes or removes an API-owned job, in one transaction, with the same
/// validation, normal form and revision history as a file's job. `catalog` holds the job's
/// parsed definition (for create and update). Jobs defined by files are refused, naming the
/// file: git stays the source of truth for what it owns. `scope`: the writing token's
/// folders, recorded on a job it creates.
///
/// # Errors
///
/// See [`ApiWriteError`].
pub fn write_api_job(
    ledger: &mut Ledger,
    name: &str,
    catalog: Option<&Catalog>,
    (mode, scope): (ApiWrite, Option<&str>),
    now: Timestamp,
) -> Result<Option<ApplyRecord>, ApiWriteError> {
    let stamp = apply_stamp(now);
    let mut refused: Option<ApiWriteError> = None;
    let result = ledger.apply(stamp, &GitInfo::default(), |current, fetch| {
        let existing = current.iter().find(|r| r.name == name && r.active);
        let refusal = match (mode, existing) {
            (_, Some(r)) if r.owner == crate::ledger::Owner::File => Some(ApiWriteError::Conflict(format!(
                "job `{name}` is defined by the file {}; change it there (git is the source of truth for the jobs it owns)",
                r.source_path.as_deref().unwrap_or("in the jobs folder")
            ))),
            (ApiWrite::Create, Some(_)) => Some(ApiWriteError::Conflict(format!(
                "job `{name}` already exists; PATCH /v1/jobs/{name} changes it"
            ))),
            (ApiWrite::Update | ApiWrite::Delete, None) => Some(ApiWriteError::NotFound(format!(
                "no API-owned job `{name}`; POST /v1/jobs creates one"
            ))),
            _ => None,
        };
        if let Some(r) = refusal {
            let message = match &r {
                ApiWriteError::Conflict(m) | ApiWriteError::NotFound(m) => m.clone(),
                _ => String::new(),
            };
            refused = Some(r);
            return Err(message);
        }
        if mode == ApiWrite::Delete {
            return Ok(ApplyBatch {
                upserts: Vec::new(),
                removals: vec![name.to_string()],
                owner: crate::ledger::Owner::Api,
                scope: None,
            });
        }
        let catalog = catalog.expect("create and update carry a definition");
        if !catalog.is_valid() {
            refused = Some(ApiWriteError::Invalid(catalog.diagnostics.clone()));
            return Err("the definition is not valid".to_string());
        }
        // The plan sees the stored job as if it were a file's, to diff and decide the anchor.
        let before: Vec<Applied> = existing
            .map(|row| {
                let mut row = row.clone();
                if let Some((definition, n_runs)) = fetch(&row.name) {
                    row.definition = definition;
                    row.n_runs = n_runs;
                }
                let mut a = applied(std::slice::from_ref(&row)).remove(0);
                a.api_owned = false;
                a
            })
            .into_iter()
            .collect();
        let plan = plan::plan(catalog, &before, now);
        if !plan.errors.is_empty() {
            refused = Some(ApiWriteError::Invalid(plan.errors.clone()));
            return Err(errors_text(&plan));
        }
        Ok(ApplyBatch {
            upserts: revisions(&plan, catalog, crate::ledger::Owner::Api),
            removals: Vec::new(),
            owner: crate::ledger::Owner::Api,
            scope: scope.map(str::to_string),
        })
    });
    match result {
        Ok(record) => Ok(record),
        Err(e) => Err(refused.unwrap_or(ApiWriteError::Ledger(e))),
    }
}
