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
use super::wire::{ErrorBody, FiresView};
use super::{Api, Query};
use crate::views;

/// The longest window: a week and a day.
const MAX_WINDOW_HOURS: i64 = 8 * 24;

/// Fires listed per job unless asked for fewer or more.
const PER_JOB: usize = 200;

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
    _: Reader,
    Query(q): Query<FiresQuery>,
) -> ApiResult<Json<FiresView>> {
    let instant = |name: &str, text: &Option<String>| -> ApiResult<Option<Timestamp>> {
        text.as_deref()
            .map(|t| {
                t.parse::<Timestamp>().map_err(|e| {
                    ApiError::bad_request(format!("{name} is not an RFC 3339 instant: {e}"))
                })
            })
            .transpose()
    };
    let from = instant("from", &q.from)?.unwrap_or_else(|| api.now());
    let to = match instant("to", &q.to)? {
        Some(to) => to,
        None => from
            .checked_add(SignedDuration::from_hours(24))
            .map_err(|e| ApiError::bad_request(format!("from is too late: {e}")))?,
    };
    if to <= from {
        return Err(ApiError::bad_request("to must be after from"));
    }
    if to.duration_since(from) > SignedDuration::from_hours(MAX_WINDOW_HOURS) {
        return Err(ApiError::bad_request(format!(
            "the window is longer than {} days; ask for a shorter one",
            MAX_WINDOW_HOURS / 24
        )));
    }
    let per_job = q.per_job.unwrap_or(PER_JOB);
    if per_job > 10_000 {
        return Err(ApiError::bad_request("per_job must be at most 10000"));
    }
    let job = q.job;
    let view = api
        .read_blocking(move |l| {
            let mut rows = l.job_summaries()?;
            if let Some(job) = &job {
                rows.retain(|r| &r.name == job);
            }
            Ok(views::fires_in(&rows, from, to, per_job))
        })
        .await?;
    Ok(Json(view))
}
