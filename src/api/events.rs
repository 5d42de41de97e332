//! `GET /v1/events`: one stream of what changes, for pages that update live (the dashboard
//! opens one per page): each run as its events are written (created, started, ended, ...),
//! and a `jobs` event when an apply, a pause or a resume changes the jobs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Reader;
use super::error::{ApiError, ApiResult};
use super::wire::{self, ErrorBody};
use super::{Api, Query};

/// Events read per step: a burst of 200 runs is one step.
const STEP: usize = 1000;

/// The shortest time between two reads of one stream.
const GAP: Duration = Duration::from_millis(250);

/// How often the ledger is looked at when nothing in this process said it changed (writes
/// by another process, or the scheduler's new slots).
const BACKSTOP: Duration = Duration::from_secs(2);

/// Where a stream is: the last event sent, the jobs' mark, and when it last read.
struct Cursor {
    api: Arc<Api>,
    after: i64,
    mark: String,
    progress: tokio::sync::watch::Receiver<u64>,
    job: Option<String>,
    last_read: Option<tokio::time::Instant>,
    /// A scoped caller, and the jobs it sees and does not see as far as known: read again
    /// when the jobs change, and a job of neither set (one just created) is looked up.
    who: super::auth::Principal,
    visible: Option<Arc<std::collections::HashSet<String>>>,
    hidden: std::collections::HashSet<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Resume after this event id (what `Last-Event-ID` says on a reconnect); default: from
    /// now on.
    pub after: Option<i64>,
    /// Only this job's runs.
    pub job: Option<String>,
}

/// Changes as server-sent events: `run` (data: the run as `GET /v1/runs/{id}` shows it; id:
/// the event's, to resume from) for each run that changed, once per run per step, and `jobs`
/// (data: `{}`) when the jobs changed. A client that reconnects with `Last-Event-ID` misses
/// nothing.
#[utoipa::path(get, path = "/v1/events", tag = "runs", params(EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "A stream of `run` and `jobs` events",
            content_type = "text/event-stream", body = wire::Run),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn events(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID is not an event id"))?,
        ),
        None => q.after,
    };
    let (start, mark) = api
        .read(move |l| {
            // Never past the newest event: a client of a ledger since restored from a backup
            // would skip what comes next.
            let newest = l.last_event_id()?;
            let start = resume.map_or(newest, |after| after.min(newest));
            Ok((start, l.catalog_mark()?))
        })
        .await?;
    // A client coming back may have missed a change to the jobs while away: its first event
    // says to look again.
    let mark = if resume.is_some() {
        String::new()
    } else {
        mark
    };
    if let Some(job) = &q.job {
        api.check_job(&who, job).await?;
    }
    let visible = api.visible_jobs(&who).await?;
    let state = Cursor {
        visible,
        hidden: std::collections::HashSet::new(),
        who,
        api: api.clone(),
        after: start,
        mark,
        progress: api.shared.progress(),
        job: q.job,
        last_read: None,
    };
    let stream = futures_util::stream::unfold(state, |mut c| async move {
        loop {
            // At most one read per `GAP`: the executor's signal also moves with each batch of
            // output, many times a second while runs print.
            if let Some(at) = c.last_read {
                tokio::time::sleep_until(at + GAP).await;
            }
            c.last_read = Some(tokio::time::Instant::now());
            // Mark what has been seen before reading, so a write in between wakes us.
            c.progress.borrow_and_update();
            let after = c.after;
            let read = c
                .api
                .read_blocking(move |l| {
                    // Never past the newest event: when retention deleted the newest ones (a
                    // quiet ledger past `max_age`), their ids are given again.
                    let from = after.min(l.last_event_id()?);
                    Ok((from, l.run_changes(from, STEP)?, l.catalog_mark()?))
                })
                .await;
            let (
                from,
                crate::ledger::RunChanges {
                    runs: changes,
                    last,
                },
                mark,
            ) = match read {
                Ok(read) => read,
                // The stream ends; the client reconnects and resumes from its last id.
                Err(e) => {
                    tracing::warn!("the events stream stops: {}", e.message);
                    return None;
                }
            };
            let mut events = Vec::new();
            if mark != c.mark {
                c.mark = mark;
                events.push(Ok(Event::default().event("jobs").data("{}")));
                if c.who.scope.is_some() {
                    c.hidden.clear();
                    match c.api.visible_jobs(&c.who).await {
                        Ok(visible) => c.visible = visible,
                        Err(e) => {
                            tracing::warn!("the events stream stops: {}", e.message);
                            return None;
                        }
                    }
                }
            }
            // Past every event read, those of runs since deleted included.
            c.after = last.unwrap_or(from);
            for (id, run) in &changes {
                if c.job.as_ref().is_some_and(|j| *j != run.job) {
                    continue;
                }
                if let Some(visible) = &c.visible
                    && !visible.contains(&run.job)
                {
                    if c.hidden.contains(&run.job) {
                        continue;
                    }
                    match c.api.sees_job(&c.who, &run.job).await {
                        Ok(true) => {
                            let mut more = visible.as_ref().clone();
                            more.insert(run.job.clone());
                            c.visible = Some(Arc::new(more));
                        }
                        _ => {
                            c.hidden.insert(run.job.clone());
                            continue;
                        }
                    }
                }
                {
                    let event = Event::default()
                        .id(id.to_string())
                        .event("run")
                        .json_data(wire::Run::from(run))
                        .unwrap_or_default();
                    events.push(Ok(event));
                }
            }
            if !events.is_empty() {
                return Some((events, c));
            }
            if last.is_some() {
                // Read past other jobs' changes: look again from there.
                continue;
            }
            let _ = tokio::time::timeout(BACKSTOP, c.progress.changed()).await;
        }
    });
    use futures_util::StreamExt as _;
    Ok(Sse::new(stream.flat_map(futures_util::stream::iter)).keep_alive(KeepAlive::default()))
}
