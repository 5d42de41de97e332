//! `POST /v1/jobs/{name}/backfill`: the slots of a window that have no run yet, each run with
//! the revision in force at it (see `replay`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::wire::{BackfillBody, BackfillView, ErrorBody};
use super::{Api, OptionalJson, Path};
use crate::replay::{self, ReplayError, Request};

/// Backfills a window of the job's schedule: one run (trigger `backfill`) for every slot in
/// `[from, to)` without a run, in slot order, at most `parallel` at a time; `dry_run` lists
/// the slots and the revision each would run. 202 with the runs queued, 200 for a dry run or
/// when every slot already has a run.
#[utoipa::path(post, path = "/v1/jobs/{name}/backfill", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = BackfillBody, content_type = "application/json"),
    responses((status = 200, body = BackfillView), (status = 202, body = BackfillView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn backfill(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<serde_json::Value>,
) -> ApiResult<Response> {
    if body.is_null() {
        return Err(ApiError::bad_request(
            "a JSON body is required: {\"from\": \"7d\", \"to\": \"2026-12-01T00:00:00Z\"}",
        ));
    }
    api.check_job(&who, &name).await?;
    let body: BackfillBody =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = api.now();
    let at = |field: &str, text: &str| {
        crate::duration::instant_or_ago(text, now)
            .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
    };
    let request = Request {
        job: name.clone(),
        from: at("from", &body.from)?,
        to: at("to", &body.to)?,
        parallel: body.parallel,
        dry_run: body.dry_run,
        by: Some(who.actor()),
    };
    let defaults = api.shared.defaults.clone();
    let (req, replay) = api
        .write_runs(move |ledger| {
            let replay =
                replay::backfill(ledger, &defaults, &request, now).map_err(|e| match e {
                    ReplayError::NoJob(job) => super::jobs::no_job(&job),
                    ReplayError::Ledger(e) => e.into(),
                    e @ ReplayError::Revision { .. } => {
                        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                    }
                    e => ApiError::bad_request(e.to_string()),
                })?;
            Ok((request, replay))
        })
        .await?;
    let view = BackfillView::new(&name, req.from, req.to, req.dry_run, &replay);
    if let Some((id, runs)) = &replay.written {
        who.audit(
            "backfilled",
            &format!("job {name} (backfill {id}, {} runs)", runs.len()),
        );
        api.daemon.send(crate::handle::Command::RunQueued);
        return Ok(super::accepted(view));
    }
    Ok((StatusCode::OK, axum::Json(view)).into_response())
}
