//! `/v1/jobs`: list, get, trigger, pause, resume.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Admin, Reader};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::{Api, OptionalJson, Path, Query, accepted};
use crate::ledger::{JobRow, NewRun, RunRow};
use crate::run::Trigger;
use crate::views::{self, JobDetail, JobSummary, PauseView, Zones};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Only enabled (`true`) or disabled (`false`) jobs.
    pub enabled: Option<bool>,
    /// Only jobs with this kind of schedule: `cron`, `every`, `at`, `after`, `manual`.
    pub schedule_kind: Option<String>,
}

const KINDS: [&str; 5] = ["cron", "every", "at", "after", "manual"];

/// The active jobs, by name.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, body = Vec<JobSummary>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(api): State<Arc<Api>>,
    _: Reader,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<Vec<JobSummary>>> {
    if let Some(kind) = &q.schedule_kind
        && !KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "schedule_kind `{kind}` is not one of {}",
            KINDS.join(", ")
        )));
    }
    let now = api.now();
    let (rows, mut counts) = api
        .read(|l| Ok((l.job_summaries()?, l.run_counts(None)?)))
        .await?;
    let mut zones = Zones::default();
    let items = rows
        .iter()
        .filter(|r| r.active)
        .filter(|r| q.tag.as_ref().is_none_or(|t| r.tags.contains(t)))
        .filter(|r| q.enabled.is_none_or(|e| r.enabled == e))
        .filter_map(|r| {
            let next = zones
                .get(&r.timezone)
                .and_then(|tz| views::next_fires_in(r, tz, now, 1).into_iter().next());
            let summary =
                views::summary(r, next.as_ref(), counts.remove(&r.name).unwrap_or_default());
            q.schedule_kind
                .as_ref()
                .is_none_or(|k| *k == summary.schedule_kind)
                .then_some(summary)
        })
        .collect();
    Ok(Json(items))
}

async fn find(api: &Arc<Api>, name: String) -> ApiResult<(JobRow, BTreeMap<String, i64>, i64)> {
    let job = name.clone();
    let found = api
        .read(move |l| {
            let Some(row) = l.job(&job)? else {
                return Ok(None);
            };
            let counts = l.run_counts(Some(&job))?.remove(&job).unwrap_or_default();
            let revisions = l.revision_count(&job)?;
            Ok(Some((row, counts, revisions)))
        })
        .await?;
    found.ok_or_else(|| no_job(&name))
}

pub(crate) fn no_job(name: &str) -> ApiError {
    ApiError::not_found(format!("no job `{name}`; GET /v1/jobs lists them"))
}

/// One job, with its definition and next five fires.
#[utoipa::path(get, path = "/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    responses((status = 200, body = JobDetail),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(api): State<Arc<Api>>,
    _: Reader,
    Path(name): Path<String>,
) -> ApiResult<Json<JobDetail>> {
    let (row, counts, revisions) = find(&api, name).await?;
    let fires = match jiff::tz::db().get(&row.timezone) {
        Ok(tz) => views::next_fires_in(&row, &tz, api.now(), 5),
        Err(_) => Vec::new(),
    };
    Ok(Json(views::detail(&row, &fires, counts, revisions)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Values for the job's declared `params`; each reaches the run as `JOBS_PARAM_NAME`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
}

/// A parameter's value: a string, or a number or boolean (passed as its text).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
}

impl ParamValue {
    pub fn into_text(self) -> String {
        match self {
            ParamValue::Text(s) => s,
            ParamValue::Integer(n) => n.to_string(),
            ParamValue::Number(n) => n.to_string(),
            ParamValue::Bool(b) => b.to_string(),
        }
    }
}

/// Queues a run of the job now, with the given parameters: 202 with the pending run.
#[utoipa::path(post, path = "/v1/jobs/{name}/trigger", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = Option<TriggerBody>, content_type = "application/json"),
    responses((status = 202, body = RunRow),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn trigger(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<TriggerBody>,
) -> ApiResult<Response> {
    let params = body
        .params
        .into_iter()
        .map(|(k, v)| (k, v.into_text()))
        .collect();
    let run = queue_run(&api, &name, params, Trigger::Manual).await?;
    Ok(accepted(run))
}

/// Checks `params` against the job's current revision and queues a run.
pub(crate) async fn queue_run(
    api: &Arc<Api>,
    name: &str,
    params: BTreeMap<String, String>,
    trigger: Trigger,
) -> ApiResult<RunRow> {
    let job = name.to_string();
    let row = api
        .read(move |l| l.job(&job))
        .await?
        .filter(|r| r.active)
        .ok_or_else(|| no_job(name))?;
    let spec = api
        .shared
        .spec(row.revision_id)
        .map_err(|e| ApiError::internal("reading the job's definition", e))?;
    let params = crate::spec::bind_params(name, &spec.params, params)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = api.now();
    let new = NewRun {
        job: name.to_string(),
        revision_id: row.revision_id,
        trigger,
        scheduled_at: now,
        not_before: None,
        params,
        attempt: 1,
        first_run_id: None,
        running_under: None,
    };
    api.write(move |l| {
        let id = l.create_run(&new, now)?;
        l.run(id)?
            .ok_or_else(|| ApiError::internal("queueing the run", "the new run vanished"))
    })
    .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// Why, for whoever looks next.
    pub reason: Option<String>,
}

/// The outcome of a pause or resume.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PauseResult {
    pub job: String,
    /// Whether this request changed anything (`false`: it was already so).
    pub changed: bool,
    pub paused: Option<PauseView>,
}

/// Pauses the job: its scheduled fires are skipped (and recorded as skipped) until resumed.
#[utoipa::path(post, path = "/v1/jobs/{name}/pause", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = Option<PauseBody>, content_type = "application/json"),
    responses((status = 200, body = PauseResult),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<PauseBody>,
) -> ApiResult<Json<PauseResult>> {
    let now = api.now();
    let job = name.clone();
    let (changed, row) = api
        .write(move |l| {
            let changed = l.pause(&job, "api", body.reason.as_deref(), now)?;
            Ok((changed, l.job(&job)?))
        })
        .await?;
    Ok(Json(pause_result(name, changed, row)))
}

/// Resumes a paused job.
#[utoipa::path(post, path = "/v1/jobs/{name}/resume", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    responses((status = 200, body = PauseResult),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn resume(
    State(api): State<Arc<Api>>,
    _: Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<PauseResult>> {
    let job = name.clone();
    let (changed, row) = api
        .write(move |l| {
            let changed = l.resume(&job)?;
            Ok((changed, l.job(&job)?))
        })
        .await?;
    Ok(Json(pause_result(name, changed, row)))
}

fn pause_result(job: String, changed: bool, row: Option<JobRow>) -> PauseResult {
    let paused = row.and_then(|r| r.paused).map(|p| PauseView {
        by: p.by,
        at: p.at,
        reason: p.reason,
    });
    PauseResult {
        job,
        changed,
        paused,
    }
}
