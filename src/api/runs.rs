//! `/v1/runs`: list, get, events, logs (with live following), cancel.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{Admin, Principal, Reader};
use super::error::{ApiError, ApiResult};
use super::wire::{self, CancelResult, ErrorBody, LogEvent, LogPage, RunPage};
use super::{Api, Path, Query};
use crate::ledger::{CancelOutcome, RunFilter, RunRow};
use crate::run::{RunState, Trigger};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this job.
    pub job: Option<String>,
    /// Only runs in this state: pending, running, succeeded, failed, timed_out, cancelled,
    /// skipped, missed.
    pub state: Option<String>,
    /// Only runs started this way: schedule, manual, retry, webhook, dependency, catchup.
    pub trigger: Option<String>,
    /// Only runs scheduled at or after this RFC 3339 instant.
    pub since: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, body = RunPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<RunPage>> {
    let state = q
        .state
        .as_deref()
        .map(RunState::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let trigger = q
        .trigger
        .as_deref()
        .map(Trigger::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let since = q
        .since
        .as_deref()
        .map(|s| {
            s.parse::<jiff::Timestamp>().map_err(|e| {
                ApiError::bad_request(format!("since `{s}` is not an RFC 3339 instant: {e}"))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    if let Some(job) = &q.job {
        api.check_job(&who, job).await?;
    }
    let jobs = match (&q.job, api.visible_jobs(&who).await?) {
        (None, Some(visible)) => Some(visible.iter().cloned().collect()),
        _ => None,
    };
    let filter = RunFilter {
        job: q.job,
        jobs,
        state,
        trigger,
        since,
        before: q.cursor,
        // One more than asked, to know whether there is a next page.
        limit: Some(limit + 1),
    };
    let mut runs = api.read(move |l| l.runs(&filter)).await?;
    let next_cursor = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(RunPage {
        runs: wire::runs(runs),
        next_cursor,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// Job names, comma-separated (at most 500).
    pub jobs: String,
    /// Runs per job (default 20, at most 100).
    pub per_job: Option<usize>,
}

/// The newest runs of each of the jobs named, newest first: the strips of the dashboard's
/// jobs page, one request for a page of jobs. A name with no runs (or no job) maps to `[]`.
#[utoipa::path(get, path = "/v1/runs/recent", tag = "runs", params(RecentQuery),
    responses((status = 200, body = wire::RecentRuns),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn recent(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Query(q): Query<RecentQuery>,
) -> ApiResult<Json<wire::RecentRuns>> {
    let per_job = q.per_job.unwrap_or(20);
    if !(1..=100).contains(&per_job) {
        return Err(ApiError::bad_request("per_job must be between 1 and 100"));
    }
    let names: Vec<String> = q
        .jobs
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() > 500 {
        return Err(ApiError::bad_request("at most 500 jobs at a time"));
    }
    // A job the caller does not see has no runs, as one that does not exist.
    let visible = api.visible_jobs(&who).await?;
    let seen = move |name: &String| visible.as_ref().is_none_or(|v| v.contains(name));
    let jobs = api
        .read_blocking(move |l| {
            let mut out = BTreeMap::new();
            for name in names {
                if !seen(&name) {
                    out.insert(name, Vec::new());
                    continue;
                }
                let filter = RunFilter {
                    job: Some(name.clone()),
                    limit: Some(per_job),
                    ..RunFilter::default()
                };
                let runs = l
                    .runs(&filter)?
                    .into_iter()
                    .map(|r| wire::RecentRun {
                        id: r.id,
                        state: r.state.as_str().to_string(),
                        duration_ms: r.duration_ms,
                        at: crate::ledger::stamp(r.scheduled_at.unwrap_or(r.created_at)),
                    })
                    .collect();
                out.insert(name, runs);
            }
            Ok(out)
        })
        .await?;
    Ok(Json(wire::RecentRuns { jobs }))
}

/// Run `id`, if `who` sees it (404 as for no such run otherwise).
async fn find(api: &Arc<Api>, who: &Principal, id: i64) -> ApiResult<RunRow> {
    let run = api
        .read(move |l| l.run(id))
        .await?
        .ok_or_else(|| super::scope::no_run(id))?;
    if who.scope.is_some() && !api.sees_job(who, &run.job).await? {
        return Err(super::scope::no_run(id));
    }
    Ok(run)
}

/// One run.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, body = wire::Run),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(id): Path<i64>,
) -> ApiResult<Json<wire::Run>> {
    let run = find(&api, &who, id).await?;
    Ok(Json(wire::Run::from(run).linked(api.public_url.as_deref())))
}

/// A run's events, oldest first: created, started, signals, retries, its end.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, body = Vec<wire::RunEvent>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn events(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<wire::RunEvent>>> {
    find(&api, &who, id).await?;
    let events = api.read(move |l| l.run_events(id)).await?;
    Ok(Json(events.into_iter().map(wire::RunEvent::from).collect()))
}

/// Lines in a page of output, unless asked for fewer.
const LOG_PAGE_LINES: usize = 1000;
/// The most lines a page may be asked for.
const LOG_PAGE_MAX_LINES: usize = 10_000;
/// A page ends once its lines hold this much text, so one request never builds more than
/// about this much, however long the lines.
const LOG_PAGE_BYTES: usize = 512 * 1024;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Stream the output as server-sent events until the run ends.
    pub follow: Option<bool>,
    /// Only lines after this line id (a line's id is its number in the run: 1, 2, 3…): the
    /// previous page's `next_after`.
    pub after: Option<i64>,
    /// Only the last N lines written so far (then, with `follow=true`, every line after them):
    /// `tail -n N`. A non-negative integer; not with `after`, which later pages use.
    pub tail: Option<u64>,
    /// At most this many lines (default 1000, at most 10000); a page also ends after 512 KiB
    /// of text. Not used with `follow=true`.
    pub limit: Option<usize>,
}

/// A run's output lines, a page at a time: read pages while `next_after` is set, passing it as
/// `after`. A line's `id` is its number in the run (1, 2, 3…). `tail=N` starts at the last N
/// lines. With `follow=true`, a `text/event-stream`: a `line` event per line (data: the line
/// as JSON), then one `end` event (data: the run) when the run has ended.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs",
    params(("id" = i64, Path, description = "The run's id"), LogsQuery),
    responses((status = 200, description = "A page of lines; with follow=true, server-sent events",
            content((LogPage = "application/json"), (LogEvent = "text/event-stream"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(id): Path<i64>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    find(&api, &who, id).await?;
    let after = match (q.after, q.tail) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "tail and after cannot be combined: tail starts the log, after continues it",
            ));
        }
        (_, Some(tail)) => {
            let last = api.read(move |l| l.output_lines(id)).await?;
            last.saturating_sub(i64::try_from(tail).unwrap_or(i64::MAX))
                .max(0)
        }
        (after, None) => after.unwrap_or(0),
    };
    if q.follow.unwrap_or(false) {
        return Ok(follow(api, id, after).into_response());
    }
    let limit = q.limit.unwrap_or(LOG_PAGE_LINES);
    if !(1..=LOG_PAGE_MAX_LINES).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {LOG_PAGE_MAX_LINES}"
        )));
    }
    // Read and encoded off the runtime's threads: a page is up to half a megabyte, and the
    // scheduler and the executor share those threads.
    let body = api
        .read_blocking(move |l| {
            let (lines, more) = l.run_output_page(id, after, limit, LOG_PAGE_BYTES)?;
            let next_after = if more {
                lines.last().map(|l| l.id)
            } else {
                None
            };
            let page = LogPage {
                lines: lines.into_iter().map(wire::OutputLine::from).collect(),
                next_after,
            };
            Ok(serde_json::to_vec(&page).expect("a page of lines is JSON"))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The live output of a run: whatever the ledger has, then more as the executor writes it.
fn follow(
    api: Arc<Api>,
    id: i64,
    after: i64,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    enum Step {
        Lines(i64),
        Done,
    }
    let progress = api.shared.progress();
    let stream = futures_util::stream::unfold(
        (Step::Lines(after), progress),
        move |(step, mut progress)| {
            let api = api.clone();
            async move {
                let Step::Lines(after) = step else {
                    return None;
                };
                loop {
                    // Mark what has been seen before reading, so a write in between wakes us.
                    progress.borrow_and_update();
                    // A page at a time, read and encoded off the runtime's threads.
                    let read = api
                        .read_blocking(move |l| {
                            let (lines, _) =
                                l.run_output_page(id, after, LOG_PAGE_LINES, LOG_PAGE_BYTES)?;
                            let last = lines.last().map(|l| l.id);
                            let events: Vec<Result<Event, Infallible>> = lines
                                .into_iter()
                                .map(|line| {
                                    Ok(Event::default()
                                        .event("line")
                                        .json_data(wire::OutputLine::from(line))
                                        .unwrap_or_default())
                                })
                                .collect();
                            Ok((events, last, l.run(id)?))
                        })
                        .await;
                    let (events, last, run) = match read {
                        Ok(x) => x,
                        Err(e) => {
                            let event = Event::default().event("error").data(e.message);
                            return Some((vec![Ok(event)], (Step::Done, progress)));
                        }
                    };
                    let ended = run.as_ref().is_none_or(|r| r.state.is_terminal());
                    if let Some(last) = last {
                        return Some((events, (Step::Lines(last), progress)));
                    }
                    if ended {
                        let event = Event::default()
                            .event("end")
                            .json_data(run.as_ref().map(wire::Run::from))
                            .unwrap_or_default();
                        return Some((vec![Ok(event)], (Step::Done, progress)));
                    }
                    // Wait for the executor's next write (a backstop every few seconds). On
                    // PostgreSQL the run may be another node's, whose writes this one does
                    // not see: look every 250 ms, as `jobctl logs -f` does.
                    let backstop = if api.ledger.file().is_some() {
                        StdDuration::from_secs(5)
                    } else {
                        StdDuration::from_millis(250)
                    };
                    let _ = tokio::time::timeout(backstop, progress.changed()).await;
                }
            }
        },
    );
    use futures_util::StreamExt as _;
    Sse::new(stream.flat_map(futures_util::stream::iter)).keep_alive(KeepAlive::default())
}

/// Cancels a pending run, or stops a running one. 409 for a run that has already ended.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, body = CancelResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<CancelResult>> {
    api.check_run(&who, id).await?;
    let now = api.now();
    let actor = who.actor();
    let outcome = api
        .write_runs(move |l| Ok(l.request_cancel(id, &actor, now)?))
        .await?;
    who.audit(
        match outcome {
            CancelOutcome::Cancelled => "cancelled",
            CancelOutcome::Requested => "asked to stop",
        },
        &format!("run {id}"),
    );
    Ok(Json(CancelResult::new(id, outcome)))
}
