//! `GET /v1/fires`: the coming fires of every job in a window, for the dashboard's timeline
//! and its heat map of load.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Reader;
use super::error::{ApiError, ApiResult};
use super::wire::{self, ErrorBody, FiresView, TimelinePage, TimelineRow};
use super::{Api, Query};
use crate::views;

/// The longest window: a week and a day.
const MAX_WINDOW_HOURS: i64 = 8 * 24;

/// Fires listed per job unless asked for fewer or more.
const PER_JOB: usize = 200;

/// A query's instant, or 400 naming the parameter.
fn instant(name: &str, text: &str) -> ApiResult<Timestamp> {
    text.parse::<Timestamp>()
        .map_err(|e| ApiError::bad_request(format!("{name} is not an RFC 3339 instant: {e}")))
}

/// A window must run forward and last at most [`MAX_WINDOW_HOURS`].
fn check_window(from: Timestamp, to: Timestamp) -> ApiResult<()> {
    if to <= from {
        return Err(ApiError::bad_request("to must be after from"));
    }
    if to.duration_since(from) > SignedDuration::from_hours(MAX_WINDOW_HOURS) {
        return Err(ApiError::bad_request(format!(
            "the window is longer than {} days; ask for a shorter one",
            MAX_WINDOW_HOURS / 24
        )));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FiresQuery {
    /// The window's start, RFC 3339 (default: now).
    pub from: Option<String>,
    /// The window's end, RFC 3339 (default: 24 hours after `from`; at most 8 days after it).
    pub to: Option<String>,
    /// Only this job.
    pub job: Option<String>,
    /// Fires listed per job (default 200, at most 10000); all are counted in `hourly`.
    pub per_job: Option<usize>,
}

/// The fires every active, enabled job will make in a window, from its schedule as applied,
/// and how many fall in each hour.
#[utoipa::path(get, path = "/v1/fires", tag = "jobs", params(FiresQuery),
    responses((status = 200, body = FiresView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn fires(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Query(q): Query<FiresQuery>,
) -> ApiResult<Json<FiresView>> {
    let from = match &q.from {
        Some(text) => instant("from", text)?,
        None => api.now(),
    };
    let to = match &q.to {
        Some(text) => instant("to", text)?,
        None => from
            .checked_add(SignedDuration::from_hours(24))
            .map_err(|e| ApiError::bad_request(format!("from is too late: {e}")))?,
    };
    check_window(from, to)?;
    let per_job = q.per_job.unwrap_or(PER_JOB);
    if per_job > 10_000 {
        return Err(ApiError::bad_request("per_job must be at most 10000"));
    }
    let job = q.job;
    let scope = who.scope;
    let view = api
        .read_blocking(move |l| {
            let mut rows = l.jobs_listed()?;
            if let Some(job) = &job {
                rows.retain(|r| &r.name == job);
            }
            if let Some(scope) = &scope {
                rows.retain(|r| scope.covers_job(r));
            }
            Ok(views::fires_in(&rows, from, to, per_job))
        })
        .await?;
    Ok(Json(view))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// The window's start, RFC 3339.
    pub from: String,
    /// The window's end, RFC 3339 (at most 8 days after `from`).
    pub to: String,
    /// The first row (jobs by name), default 0.
    pub offset: Option<usize>,
    /// Rows in the page (default 50, at most 200).
    pub limit: Option<usize>,
    /// Only jobs whose name holds this text.
    pub q: Option<String>,
}

/// A page of the timeline: for each active job (by name), its runs that touch the window and
/// its coming fires in it. One request per page of rows, whatever the ledger's size.
#[utoipa::path(get, path = "/v1/timeline", tag = "runs", params(TimelineQuery),
    responses((status = 200, body = TimelinePage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn timeline(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Json<TimelinePage>> {
    let (from, to) = (instant("from", &q.from)?, instant("to", &q.to)?);
    check_window(from, to)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let offset = q.offset.unwrap_or(0);
    let now = api.now();
    let scope = who.scope;
    let page = api
        .read_blocking(move |l| {
            let mut rows = l.jobs_listed()?;
            rows.retain(|r| {
                r.active
                    && q.q.as_ref().is_none_or(|t| r.name.contains(t.as_str()))
                    && scope.as_ref().is_none_or(|s| s.covers_job(r))
            });
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            let total = rows.len();
            let page: Vec<_> = rows.into_iter().skip(offset).take(limit).collect();
            // Fires from now on (the past is the runs), within the window.
            let fires = if to > now {
                views::fires_in(&page, from.max(now), to, 500).jobs
            } else {
                Vec::new()
            };
            // Runs that may touch the window: due from a day before it (a long run) to its end.
            let since = from
                .checked_sub(SignedDuration::from_hours(24))
                .unwrap_or(from);
            let mut out = Vec::with_capacity(page.len());
            for row in &page {
                let filter = crate::ledger::RunFilter {
                    job: Some(row.name.clone()),
                    since: Some(since),
                    limit: Some(200),
                    ..Default::default()
                };
                let runs = l
                    .runs(&filter)?
                    .into_iter()
                    .filter(|r| {
                        let start = r.scheduled_at.unwrap_or(r.created_at);
                        start < to && r.finished_at.is_none_or(|end| end >= from)
                    })
                    .map(|r| wire::TimelineRun::from(&r))
                    .collect();
                let mine = fires.iter().find(|f| f.job == row.name);
                out.push(TimelineRow {
                    job: row.name.clone(),
                    timezone: views::zone_name(&row.timezone).to_string(),
                    runs,
                    fires: mine.map(|f| f.fires.clone()).unwrap_or_default(),
                    fires_total: mine.map_or(0, |f| f.total),
                });
            }
            Ok(TimelinePage {
                from: crate::ledger::stamp(from),
                to: crate::ledger::stamp(to),
                total,
                rows: out,
            })
        })
        .await?;
    Ok(Json(page))
}
