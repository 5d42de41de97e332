//! `POST /v1/plan`: the plan of a set of job files against this server's ledger, so a pull
//! request's CI can show what merging it would change on the server.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Reader;
use super::error::{ApiError, ApiResult};
use super::wire::{ErrorBody, PlanRequest, PlanResponse};
use super::{Api, OptionalJson};
use crate::catalog::{self, FileInput};

/// The plan of the given job files against this server's ledger; nothing is written. Invalid
/// files answer 422 with every problem, rendered with file, line and column.
#[utoipa::path(post, path = "/v1/plan", tag = "jobs",
    request_body(content = PlanRequest, content_type = "application/json"),
    responses((status = 200, body = PlanResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn plan(
    State(api): State<Arc<Api>>,
    _: Reader,
    OptionalJson(request): OptionalJson<PlanRequest>,
) -> ApiResult<Json<PlanResponse>> {
    check_paths(&request)?;
    let rows = api.read_blocking(|l| l.jobs()).await?;
    let now = api.now();
    let defaults = api.shared.defaults.clone();
    // Parsing and planning thousands of files is CPU work: off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let shown: Vec<String> = request
            .files
            .keys()
            .map(
                |path| match request.dir.as_deref().filter(|d| !d.is_empty()) {
                    Some(dir) => format!("{}/{path}", dir.trim_end_matches('/')),
                    None => path.clone(),
                },
            )
            .collect();
        let inputs: Vec<FileInput<'_>> = request
            .files
            .iter()
            .zip(&shown)
            .map(|((path, text), display)| FileInput {
                display,
                relative: path,
                bytes: text.as_bytes(),
            })
            .collect();
        let api_owned = crate::apply::api_owned_names(&rows);
        let context = crate::spec::Context {
            defaults: &defaults,
            now,
        };
        let catalog = catalog::build(&inputs, context, &api_owned);
        let source_of = |file: &str| {
            shown
                .iter()
                .position(|s| s == file)
                .and_then(|i| request.files.values().nth(i))
                .map(String::as_str)
        };
        if !catalog.is_valid() {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                crate::diag::render(&catalog.diagnostics, source_of, false),
            ));
        }
        let plan = crate::plan::plan(&catalog, &crate::apply::applied(&rows), now);
        if !plan.errors.is_empty() {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                crate::diag::render(&plan.errors, source_of, false),
            ));
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
        Ok(Json(PlanResponse {
            plan: serde_json::to_value(&plan)
                .map_err(|e| ApiError::internal("encoding the plan", e))?,
            text,
            has_changes: plan.has_changes(),
        }))
    })
    .await
    .map_err(|e| ApiError::internal("planning", e))?
}

/// Every posted path is a job file's, relative to the jobs folder and inside it.
fn check_paths(request: &PlanRequest) -> ApiResult<()> {
    for path in request.files.keys() {
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
