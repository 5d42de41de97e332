//! `POST /v1/plan`: the plan of a set of job files against this server's ledger, so a pull
//! request's CI can show what merging it would change on the server.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::{Admin, Reader};
use super::error::{ApiError, ApiResult};
use super::wire::{ApplyResult, ErrorBody, PlanRequest, PlanResponse};
use super::{Api, OptionalJson};
use crate::catalog::{self, FileInput};
use crate::saved_plan::SavedPlan;

/// The plan of the given job files against this server's ledger; nothing is written. Invalid
/// files answer 422 with every problem, rendered with file, line and column.
#[utoipa::path(post, path = "/v1/plan", tag = "jobs",
    request_body(content = PlanRequest, content_type = "application/json"),
    responses((status = 200, body = PlanResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn plan(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    OptionalJson(request): OptionalJson<PlanRequest>,
) -> ApiResult<Json<PlanResponse>> {
    check_paths(request.files.keys())?;
    let mut rows = api.read_blocking(|l| l.jobs()).await?;
    // A scoped token plans its folders: the files it sends must be in them, and the jobs
    // elsewhere are not part of its plan (neither kept nor removed by it).
    if let Some(scope) = &who.scope {
        if request.save {
            return Err(super::scope::unscoped_only("a saved plan"));
        }
        if let Some(outside) = request
            .files
            .keys()
            .find(|path| !scope.covers(Some(path.as_str()), None))
        {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                format!(
                    "the file {outside} is outside this token's folders ({}); send only the files in them",
                    scope.text()
                ),
            ));
        }
        rows.retain(|r| scope.covers_job(r));
    }
    let now = api.now();
    let defaults = api.shared.defaults.clone();
    // Parsing and planning thousands of files is CPU work: off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let dir = request.dir.clone().unwrap_or_default();
        let posted = Posted::new(&request.files, &dir);
        let api_owned = crate::apply::api_owned_names(&rows);
        let catalog = posted.catalog(&defaults, now, &api_owned)?;
        let plan = crate::plan::plan(&catalog, &crate::apply::applied(&rows), now);
        if !plan.errors.is_empty() {
            return Err(posted.invalid(&plan.errors));
        }
        let mut text = crate::plan::render(&plan, false);
        for row in rows.iter().filter(|r| r.active) {
            if let Some(p) = &row.paused {
                text.push_str(&format!(
                    "Note: {} is paused ({p}); applying keeps it paused.\n",
                    row.name
                ));
            }
        }
        let plan_json =
            serde_json::to_value(&plan).map_err(|e| ApiError::internal("encoding the plan", e))?;
        let saved = request.save.then(|| SavedPlan {
            format: crate::saved_plan::FORMAT.to_string(),
            created_at: crate::ledger::stamp(now),
            dir: dir.clone(),
            commit: request.commit.clone(),
            dirty: request.dirty,
            files: crate::saved_plan::files(
                request
                    .files
                    .iter()
                    .map(|(path, text)| (path.as_str(), text.as_bytes())),
            ),
            ledger: crate::apply::seen_jobs(&rows),
            plan: plan_json.clone(),
            text: text.clone(),
            has_changes: plan.has_changes(),
        });
        Ok(Json(PlanResponse {
            plan: plan_json,
            text,
            has_changes: plan.has_changes(),
            saved,
        }))
    })
    .await
    .map_err(|e| ApiError::internal("planning", e))?
}

/// Applies a saved plan (what `POST /v1/plan` with `save` answered, or `jobctl plan --out`
/// wrote): its files, only if this server's ledger is as the plan saw it and the plan
/// computed now makes the same changes, checked in the apply's own transaction. Otherwise
/// 409, naming what moved, and nothing is written.
#[utoipa::path(post, path = "/v1/apply", tag = "jobs",
    request_body(content = Object, content_type = "application/json", description = "A saved plan"),
    responses((status = 200, body = ApplyResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn apply(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    OptionalJson(body): OptionalJson<serde_json::Value>,
) -> ApiResult<Json<ApplyResult>> {
    if who.scope.is_some() {
        return Err(super::scope::unscoped_only("applying a saved plan"));
    }
    let saved =
        SavedPlan::parse(&body.to_string()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    check_paths(saved.files.keys())?;
    let now = api.now();
    let defaults = api.shared.defaults.clone();
    let rows = api.read_blocking(|l| l.jobs_bare()).await?;
    let (catalog, saved) = tokio::task::spawn_blocking(move || {
        let files: std::collections::BTreeMap<String, String> = saved
            .files
            .iter()
            .map(|(path, file)| (path.clone(), file.text.clone()))
            .collect();
        let posted = Posted::new(&files, &saved.dir);
        let catalog = posted.catalog(&defaults, now, &crate::apply::api_owned_names(&rows))?;
        Ok::<_, ApiError>((catalog, saved))
    })
    .await
    .map_err(|e| ApiError::internal("reading the plan", e))??;
    let outcome = api
        .write(move |ledger| {
            let git = crate::ledger::GitInfo {
                commit: saved.commit.clone(),
                dirty: saved.dirty,
            };
            crate::apply::apply_saved(ledger, &catalog, now, &git, &saved).map_err(|e| match e {
                crate::apply::ApplyError::Moved(moved) => ApiError::conflict(format!(
                    "the ledger changed since the plan was made, so it was not applied: {}; plan again and review the new plan",
                    moved.join("; ")
                )),
                crate::apply::ApplyError::Plan(plan) => ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    crate::diag::render(&plan.errors, |_| None, false),
                ),
                crate::apply::ApplyError::Ledger(e) => ApiError::from(e),
            })
        })
        .await?;
    let record = outcome.record;
    if let Some(r) = &record {
        tracing::info!(
            actor = %who.actor(),
            added = r.added,
            changed = r.changed,
            removed = r.removed,
            "a saved plan was applied by {}",
            who.actor()
        );
    }
    Ok(Json(ApplyResult {
        applied: record.is_some(),
        added: record.as_ref().map_or(0, |r| r.added),
        changed: record.as_ref().map_or(0, |r| r.changed),
        removed: record.as_ref().map_or(0, |r| r.removed),
        text: crate::plan::render(&outcome.plan, false),
    }))
}

/// Posted files, with the paths shown in messages (`jobs.d/backup.yaml`).
struct Posted<'a> {
    files: &'a std::collections::BTreeMap<String, String>,
    shown: Vec<String>,
}

impl<'a> Posted<'a> {
    fn new(files: &'a std::collections::BTreeMap<String, String>, dir: &str) -> Posted<'a> {
        let shown = files
            .keys()
            .map(|path| match Some(dir).filter(|d| !d.is_empty()) {
                Some(dir) => format!("{}/{path}", dir.trim_end_matches('/')),
                None => path.clone(),
            })
            .collect();
        Posted { files, shown }
    }

    /// The catalog of the files, or 422 with every problem.
    fn catalog(
        &self,
        defaults: &crate::spec::Defaults,
        now: jiff::Timestamp,
        api_owned: &[String],
    ) -> ApiResult<crate::catalog::Catalog> {
        let inputs: Vec<FileInput<'_>> = self
            .files
            .iter()
            .zip(&self.shown)
            .map(|((path, text), display)| FileInput {
                display,
                relative: path,
                bytes: text.as_bytes(),
            })
            .collect();
        let context = crate::spec::Context { defaults, now };
        let catalog = catalog::build(&inputs, context, api_owned);
        if !catalog.is_valid() {
            return Err(self.invalid(&catalog.diagnostics));
        }
        Ok(catalog)
    }

    /// 422 with the problems rendered against the files.
    fn invalid(&self, problems: &[crate::diag::Diagnostic]) -> ApiError {
        let source_of = |file: &str| {
            self.shown
                .iter()
                .position(|s| s == file)
                .and_then(|i| self.files.values().nth(i))
                .map(String::as_str)
        };
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            crate::diag::render(problems, source_of, false),
        )
    }
}

/// Every posted path is a job file's, relative to the jobs folder and inside it.
fn check_paths<'a>(paths: impl IntoIterator<Item = &'a String>) -> ApiResult<()> {
    for path in paths {
        let name = path.rsplit('/').next().unwrap_or(path);
        let unsafe_path =
            path.starts_with('/') || path.split('/').any(|part| part.is_empty() || part == "..");
        if unsafe_path || !crate::source::is_job_file_name(name) {
            return Err(ApiError::bad_request(format!(
                "`{path}` is not a job file path: give paths relative to the jobs folder, ending in .yaml, .yml or .toml"
            )));
        }
    }
    Ok(())
}
