//! `/v1/jobs/{name}/revisions`: a job's applied revisions, and the diff between any two (GitOps
//! is history: every revision keeps its definition and the git commit it came from).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Reader;
use super::error::{ApiError, ApiResult};
use super::jobs::no_job;
use super::wire::{ErrorBody, RevisionDiff, RevisionView};
use super::{Api, Path, Query};

/// The job's revisions, newest first.
#[utoipa::path(get, path = "/v1/jobs/{name}/revisions", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    responses((status = 200, body = Vec<RevisionView>),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<RevisionView>>> {
    api.check_job(&who, &name).await?;
    let job = name.clone();
    let revisions = api.read(move |l| l.revisions(&job)).await?;
    if revisions.is_empty() {
        return Err(no_job(&name));
    }
    Ok(Json(revisions.iter().map(RevisionView::from).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The older revision's number.
    pub from: i64,
    /// The newer revision's number.
    pub to: i64,
}

/// The unified diff from revision `from` to revision `to` of the job's definition (any two,
/// in either order).
#[utoipa::path(get, path = "/v1/jobs/{name}/revisions/diff", tag = "jobs",
    params(("name" = String, Path, description = "The job's name"), DiffQuery),
    responses((status = 200, body = RevisionDiff),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn diff(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(name): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<RevisionDiff>> {
    api.check_job(&who, &name).await?;
    let job = name.clone();
    let revisions = api.read(move |l| l.revisions(&job)).await?;
    if revisions.is_empty() {
        return Err(no_job(&name));
    }
    let find = |n: i64| {
        revisions.iter().find(|r| r.number == n).ok_or_else(|| {
            ApiError::not_found(format!(
                "job `{name}` has no revision {n}; it has 1 to {}",
                revisions.len()
            ))
        })
    };
    let (from, to) = (find(q.from)?, find(q.to)?);
    let diff = similar::TextDiff::from_lines(&from.definition, &to.definition)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("revision {}", from.number),
            &format!("revision {}", to.number),
        )
        .to_string();
    Ok(Json(RevisionDiff {
        job: name.clone(),
        from: from.into(),
        to: to.into(),
        diff,
    }))
}
