//! A job's history across its runs: `GET /v1/jobs/{name}/logs` (the output lines of every run
//! in a window, filtered, paged) and `GET /v1/jobs/{name}/metrics` (a series per metric, one
//! point per run), the questions hosted job services answer on one page.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Reader;
use super::error::{ApiError, ApiResult};
use super::jobs::no_job;
use super::wire::{self, ErrorBody, JobLogPage, JobMetrics, MetricPoint, MetricSeries};
use super::{Api, Path, Query};
use crate::ledger::{JobLogQuery, RunRow, stamp};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// From this instant (RFC 3339, or a date), or this long ago (`24h`, `7d`); default 24h.
    pub since: Option<String>,
    /// Up to this instant, or this long ago; default now.
    pub until: Option<String>,
    /// Only lines containing this text.
    pub filter: Option<String>,
    /// At most this many lines (default 1000, at most 10000).
    pub limit: Option<usize>,
    /// The cursor of the previous page, `RUN:LINE`.
    pub after: Option<String>,
}

/// The window a query names: `since` (default 24 h ago) to `until` (default now).
fn window(
    api: &Api,
    since: Option<&str>,
    until: Option<&str>,
) -> ApiResult<(jiff::Timestamp, Option<jiff::Timestamp>)> {
    let now = api.now();
    let at = |name: &str, text: &str| {
        crate::duration::instant_or_ago(text, now)
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    };
    let since = match since {
        Some(text) => at("since", text)?,
        None => now
            .checked_sub(jiff::SignedDuration::from_hours(24))
            .unwrap_or(now),
    };
    let until = until.map(|text| at("until", text)).transpose()?;
    if until.is_some_and(|u| u <= since) {
        return Err(ApiError::bad_request("until must be after since"));
    }
    Ok((since, until))
}

fn cursor(text: &str) -> ApiResult<(i64, i64)> {
    text.split_once(':')
        .and_then(|(run, line)| Some((run.parse().ok()?, line.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "after `{text}` is not a cursor; pass the `next_after` of the previous page (RUN:LINE)"
            ))
        })
}

/// The output lines of every run of the job in the window, oldest run first and each run's
/// lines in order, with the run each came from; paged like a run's log.
#[utoipa::path(get, path = "/v1/jobs/{name}/logs", tag = "jobs",
    params(("name" = String, Path, description = "The job's name"), LogsQuery),
    responses((status = 200, body = JobLogPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<JobLogPage>> {
    api.check_job(&who, &name).await?;
    let (since, until) = window(&api, q.since.as_deref(), q.until.as_deref())?;
    let after = q.after.as_deref().map(cursor).transpose()?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let job = name.clone();
    let filter = q.filter.filter(|f| !f.is_empty());
    let page = api
        .read_blocking(move |l| {
            if l.job(&job)?.is_none() {
                return Ok(None);
            }
            l.job_output(&JobLogQuery {
                job: &job,
                since,
                until,
                contains: filter.as_deref(),
                after,
                max_lines: limit,
                max_bytes: 512 * 1024,
            })
            .map(Some)
        })
        .await?
        .ok_or_else(|| no_job(&name))?;
    Ok(Json(JobLogPage {
        job: name,
        lines: page.lines.into_iter().map(wire::JobLogLine::from).collect(),
        next_after: page.next.map(|(run, line)| format!("{run}:{line}")),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    /// The series, comma-separated: `duration`, `cpu`, `cpu_user`, `cpu_system` (seconds),
    /// `memory` (peak resident bytes), `output` (bytes written), `prompt_tokens`,
    /// `completion_tokens` (a `prompt` run's, as its provider counted them); default
    /// `duration,cpu,memory`.
    pub names: Option<String>,
    /// From this instant, or this long ago; default 24h.
    pub since: Option<String>,
    /// Up to this instant, or this long ago; default now.
    pub until: Option<String>,
    /// At most this many runs (default 1000, at most 10000), oldest first.
    pub limit: Option<usize>,
}

/// How a run gives a metric's value (`None`: it has none, as a run that never started).
type Value = fn(&RunRow) -> Option<f64>;

/// The metrics the runs record, each a name, a unit and how a run gives its value.
const METRICS: &[(&str, &str, Value)] = &[
    ("duration", "seconds", |r| {
        r.duration_ms.map(|ms| ms as f64 / 1000.0)
    }),
    ("cpu", "seconds", |r| match (r.cpu_user_ms, r.cpu_sys_ms) {
        (None, None) => None,
        (u, s) => Some((u.unwrap_or(0) + s.unwrap_or(0)) as f64 / 1000.0),
    }),
    ("cpu_user", "seconds", |r| {
        r.cpu_user_ms.map(|ms| ms as f64 / 1000.0)
    }),
    ("cpu_system", "seconds", |r| {
        r.cpu_sys_ms.map(|ms| ms as f64 / 1000.0)
    }),
    ("memory", "bytes", |r| {
        r.max_rss_kb.map(|kb| kb as f64 * 1024.0)
    }),
    ("output", "bytes", |r| {
        r.started_at.map(|_| r.output_bytes as f64)
    }),
    ("prompt_tokens", "tokens", |r| {
        r.reply.prompt_tokens.map(|t| t as f64)
    }),
    ("completion_tokens", "tokens", |r| {
        r.reply.completion_tokens.map(|t| t as f64)
    }),
];

/// A series per metric named, one point per run of the job that ended in the window and has
/// a value. An unknown name's series carries its error; the others answer as usual.
#[utoipa::path(get, path = "/v1/jobs/{name}/metrics", tag = "jobs",
    params(("name" = String, Path, description = "The job's name"), MetricsQuery),
    responses((status = 200, body = JobMetrics),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn metrics(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(name): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Json<JobMetrics>> {
    api.check_job(&who, &name).await?;
    let (since, until) = window(&api, q.since.as_deref(), q.until.as_deref())?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let job = name.clone();
    let runs = api
        .read_blocking(move |l| {
            if l.job(&job)?.is_none() {
                return Ok(None);
            }
            l.ended_runs(&job, since, until, limit).map(Some)
        })
        .await?
        .ok_or_else(|| no_job(&name))?;
    let names = q.names.as_deref().unwrap_or("duration,cpu,memory");
    let series = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(
            |wanted| match METRICS.iter().find(|(n, _, _)| *n == wanted) {
                Some((name, unit, value)) => MetricSeries {
                    name: (*name).to_string(),
                    unit: (*unit).to_string(),
                    points: runs
                        .iter()
                        .filter_map(|r| {
                            Some(MetricPoint {
                                run_id: r.id,
                                at: stamp(r.finished_at?),
                                value: value(r)?,
                                state: r.state.to_string(),
                            })
                        })
                        .collect(),
                    error: None,
                },
                None => MetricSeries {
                    name: wanted.to_string(),
                    unit: String::new(),
                    points: Vec::new(),
                    error: Some(format!(
                        "no metric `{wanted}`; the runs record {}",
                        METRICS
                            .iter()
                            .map(|(n, _, _)| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                },
            },
        )
        .collect();
    Ok(Json(JobMetrics {
        job: name,
        since: stamp(since),
        until: stamp(until.unwrap_or_else(|| api.now())),
        series,
    }))
}
