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

/// How often the ledger is looked at when nothing in this process said it changed (writes
/// by another process, or the scheduler's new slots).
const BACKSTOP: Duration = Duration::from_secs(2);

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
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn events(
    State(api): State<Arc<Api>>,
    _: Reader,
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
            let start = match resume {
                Some(after) => after,
                None => l.last_event_id()?,
            };
            Ok((start, l.catalog_mark()?))
        })
        .await?;
    let job = q.job;
    let progress = api.shared.progress();
    let state = (api, start, mark, progress, job);
    let stream = futures_util::stream::unfold(
        state,
        |(api, mut after, mut mark, mut progress, job)| async move {
            loop {
                // Mark what has been seen before reading, so a write in between wakes us.
                progress.borrow_and_update();
                let read = api
                    .read_blocking(move |l| Ok((l.run_changes(after, STEP)?, l.catalog_mark()?)))
                    .await;
                let (changes, now_mark) = match read {
                    Ok(read) => read,
                    // The stream ends; the client reconnects and resumes from its last id.
                    Err(e) => {
                        tracing::warn!("the events stream stops: {}", e.message);
                        return None;
                    }
                };
                let mut events = Vec::new();
                if now_mark != mark {
                    mark = now_mark;
                    events.push(Ok(Event::default().event("jobs").data("{}")));
                }
                for (id, run) in &changes {
                    after = after.max(*id);
                    if job.as_ref().is_none_or(|j| *j == run.job) {
                        let event = Event::default()
                            .id(id.to_string())
                            .event("run")
                            .json_data(wire::Run::from(run))
                            .unwrap_or_default();
                        events.push(Ok(event));
                    }
                }
                if !events.is_empty() {
                    return Some((events, (api, after, mark, progress, job)));
                }
                if !changes.is_empty() {
                    // Read past other jobs' changes: look again from there at once.
                    continue;
                }
                let _ = tokio::time::timeout(BACKSTOP, progress.changed()).await;
            }
        },
    );
    use futures_util::StreamExt as _;
    Ok(Sse::new(stream.flat_map(futures_util::stream::iter)).keep_alive(KeepAlive::default()))
}
