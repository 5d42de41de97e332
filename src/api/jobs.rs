//! `/v1/jobs`: list, get, trigger, pause, resume.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{Admin, Principal, Reader};
use super::definition::{Definition, Format, definition_text, definition_value, merge_patch};
use super::error::{ApiError, ApiResult};
use super::wire::{
    self, DeleteResult, ErrorBody, GraphView, JobDetail, JobSummary, PauseBody, PauseResult,
    PauseView, TriggerBody,
};
use super::{Api, OptionalJson, Path, Query, accepted};
use crate::apply::{ApiWrite, ApiWriteError, write_api_job};
use crate::catalog;
use crate::ledger::{JobRow, NewRun};
use crate::run::Trigger;
use crate::views::{self, listing};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Only enabled (`true`) or disabled (`false`) jobs.
    pub enabled: Option<bool>,
    /// Only jobs with this kind of schedule: `cron`, `every`, `at`, `after`, `manual`.
    pub schedule_kind: Option<String>,
    /// Only jobs in this state: `active`, `paused`, `disabled`, `blocked`, `completed`,
    /// `failing` (active, with a failure streak) or `removed` (listed only when asked for).
    pub state: Option<String>,
    /// Only jobs with this text (any case) in their name, a tag, their description,
    /// schedule or command; listed best match first (name hits, then tags, description,
    /// schedule, command) unless `sort` says otherwise.
    pub q: Option<String>,
    /// The order: `name` (the default without `q`), `relevance` (the default with `q`),
    /// `next` (soonest next fire first), `failure` (longest failure streak first) or
    /// `last_failure` (the most recent failure first); ties by name.
    pub sort: Option<String>,
    /// At most this many jobs (1 to 1000; default: all). `X-Total-Count` says how many match.
    pub limit: Option<usize>,
    /// Skip this many matching jobs first (default 0).
    pub offset: Option<usize>,
}

const KINDS: [&str; 5] = ["cron", "every", "at", "after", "manual"];

/// The most jobs one page of `GET /v1/jobs` holds.
const MAX_PAGE: usize = 1000;

/// A query's filter and order, or 400 naming what is wrong.
fn listing_of(q: &JobsQuery) -> ApiResult<(listing::Filter, listing::Sort)> {
    if let Some(kind) = &q.schedule_kind
        && !KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "schedule_kind `{kind}` is not one of {}",
            KINDS.join(", ")
        )));
    }
    if let Some(state) = &q.state
        && !listing::STATES.contains(&state.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "state `{state}` is not one of {}",
            listing::STATES.join(", ")
        )));
    }
    if let Some(limit) = q.limit
        && !(1..=MAX_PAGE).contains(&limit)
    {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let text = q.q.clone().filter(|t| !t.is_empty());
    let sort = match &q.sort {
        Some(sort) => sort.parse().map_err(ApiError::bad_request)?,
        // A search lists its best matches first.
        None if text.is_some() => listing::Sort::Relevance,
        None => listing::Sort::Name,
    };
    let filter = listing::Filter {
        tag: q.tag.clone(),
        enabled: q.enabled,
        kind: q.schedule_kind.clone(),
        state: q.state.clone(),
        text,
        commands: Default::default(),
    };
    Ok((filter, sort))
}

/// The jobs (active ones, unless `state=removed`), by name or as `sort` says, filtered, a page
/// at a time when `limit` is given. The rows are filtered and sorted first; only the page's
/// runs are then read, so a page of 10,000 jobs costs about what a page of 100 does.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, body = Vec<JobSummary>,
            headers(("X-Total-Count" = usize, description = "How many jobs match, over all pages"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Response> {
    let scope = who.scope;
    let (mut filter, sort) = listing_of(&q)?;
    let (offset, limit) = (q.offset.unwrap_or(0), q.limit.unwrap_or(usize::MAX));
    let now = api.now();
    // Built on the long-read pool, next to the read: 10,000 jobs are tens of ms of CPU a
    // runtime worker should not spend. One job after another, not `views::summaries`
    // (rayon), which `jobctl list` uses in a process of its own: inside the daemon, fanning
    // out made this answer slower (issue 14; measured side by side, p50 186 ms against 124).
    let (total, items) = api
        .read_blocking(move |l| {
            let mut rows = l.jobs_listed()?;
            if let Some(scope) = &scope {
                rows.retain(|r| scope.covers_job(r));
            }
            if filter.text.is_some() {
                filter.commands = listing::command_texts(l)?;
            }
            let mut next = listing::NextFires::new(now);
            let kept = listing::select(&rows, &filter, sort, &mut next);
            let total = kept.len();
            let page: Vec<usize> = kept.into_iter().skip(offset).take(limit).collect();
            let mut facts = {
                let names: Vec<&str> = page.iter().map(|&i| rows[i].name.as_str()).collect();
                l.run_facts(&names)?
            };
            let items: Vec<JobSummary> = page
                .into_iter()
                .map(|i| {
                    let facts = facts.remove(&rows[i].name).unwrap_or_default();
                    rows[i].last_run = facts.last;
                    let row = &rows[i];
                    views::summary(row, next.of(row).as_ref(), facts.counts)
                })
                .collect();
            Ok((total, items))
        })
        .await?;
    Ok((
        [(HeaderName::from_static("x-total-count"), total.to_string())],
        Json(items),
    )
        .into_response())
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
    params(("name" = String, Path, description = "The job's name"), DetailQuery),
    responses((status = 200, body = JobDetail), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Path(name): Path<String>,
    Query(q): Query<DetailQuery>,
) -> ApiResult<Json<JobDetail>> {
    let n = q.fires.unwrap_or(5);
    if n > 50 {
        return Err(ApiError::bad_request("fires must be at most 50"));
    }
    api.check_job(&who, &name).await?;
    let (row, counts, revisions) = find(&api, name).await?;
    let now = api.now();
    let fires = views::next_fires_in(&row, now, n);
    Ok(Json(views::detail(&row, &fires, counts, revisions, now)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// How many next fires to list (default 5, at most 50).
    pub fires: Option<usize>,
}

/// Queues a run of the job now, with the given parameters: 202 with the pending run.
#[utoipa::path(post, path = "/v1/jobs/{name}/trigger", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = Option<TriggerBody>, content_type = "application/json"),
    responses((status = 202, body = wire::Run),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn trigger(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<TriggerBody>,
) -> ApiResult<Response> {
    api.check_job(&who, &name).await?;
    let overrides = crate::run::Overrides::with_timeout(body.timeout.as_deref())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let params = body
        .params
        .into_iter()
        .map(|(k, v)| (k, v.into_text()))
        .collect();
    let job = active_job(&api, &name).await?;
    let run = queue_run_with(
        &api,
        job,
        params,
        Trigger::Manual,
        Some(who.actor()),
        overrides,
    )
    .await?;
    who.audit("triggered", &format!("job {name} (run {})", run.id));
    Ok(accepted(run))
}

/// An active job's row and its current revision's spec (parsed once, cached by revision).
pub(crate) async fn active_job(
    api: &Arc<Api>,
    name: &str,
) -> ApiResult<(JobRow, Arc<crate::spec::JobSpec>)> {
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
    Ok((row, spec))
}

/// Checks `params` against the job's current revision (as [`active_job`] found it) and
/// queues a run, recorded as asked for `by` an API caller (none for a webhook).
pub(crate) async fn queue_run(
    api: &Arc<Api>,
    job: (JobRow, Arc<crate::spec::JobSpec>),
    params: BTreeMap<String, String>,
    trigger: Trigger,
    by: Option<String>,
) -> ApiResult<wire::Run> {
    queue_run_with(
        api,
        job,
        params,
        trigger,
        by,
        crate::run::Overrides::default(),
    )
    .await
}

/// [`queue_run`], with what this run changes of its revision.
async fn queue_run_with(
    api: &Arc<Api>,
    (row, spec): (JobRow, Arc<crate::spec::JobSpec>),
    params: BTreeMap<String, String>,
    trigger: Trigger,
    by: Option<String>,
    overrides: crate::run::Overrides,
) -> ApiResult<wire::Run> {
    let name = row.name.as_str();
    let params = crate::spec::bind_params(name, &spec.params, params)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = api.now();
    let mut new = NewRun::now(name, row.revision_id, trigger, params, now);
    new.by = by;
    new.overrides = overrides;
    // Through the daemon's own connection, group-committed with other triggers: a second
    // writing connection would contend with the daemon for SQLite's write lock.
    let shared = api.shared.clone();
    let run = tokio::task::spawn_blocking(move || shared.create_run(new, now))
        .await
        .map_err(|e| ApiError::internal("queueing the run", e))?
        .map_err(|e| {
            if e.transient {
                tracing::error!("queueing the run: {e}");
                ApiError::unavailable("the ledger cannot be written now (see /readyz); retry later")
            } else {
                ApiError::internal("queueing the run", e)
            }
        })?;
    api.daemon.send(crate::handle::Command::RunQueued);
    Ok(wire::Run::from(run).linked(api.public_url.as_deref()))
}

/// Pauses the job: its scheduled fires are skipped (and recorded as skipped) until resumed.
#[utoipa::path(post, path = "/v1/jobs/{name}/pause", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = Option<PauseBody>, content_type = "application/json"),
    responses((status = 200, body = PauseResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn pause(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<PauseBody>,
) -> ApiResult<Json<PauseResult>> {
    api.check_job(&who, &name).await?;
    let now = api.now();
    let job = name.clone();
    let actor = who.actor();
    let (changed, row) = api
        .write(move |l| {
            let changed = l.pause(&job, &actor, body.reason.as_deref(), now)?;
            Ok((changed, l.job(&job)?))
        })
        .await?;
    if changed {
        who.audit("paused", &format!("job {name}"));
    }
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
    Admin(who): Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<PauseResult>> {
    api.check_job(&who, &name).await?;
    let job = name.clone();
    let now = api.now();
    let audit = format!("job {name} resumed by {}", who.actor());
    let (changed, row) = api
        .write(move |l| {
            let changed = l.resume(&job)?;
            if changed {
                // A resume deletes the pause: this event is what remains of who did it.
                record_audit(l, now, &audit);
            }
            Ok((changed, l.job(&job)?))
        })
        .await?;
    if changed {
        who.audit("resumed", &format!("job {name}"));
    }
    Ok(Json(pause_result(name, changed, row)))
}

/// Records an API write that leaves no actor of its own in the ledger as a daemon event of
/// kind `audit`. The write has landed: failing to record it is logged, not answered.
fn record_audit(ledger: &crate::ledger::Ledger, now: jiff::Timestamp, message: &str) {
    if let Err(e) = ledger.daemon_event(now, "audit", message) {
        tracing::warn!("recording `{message}`: {e}");
    }
}

fn pause_result(job: String, changed: bool, row: Option<JobRow>) -> PauseResult {
    let paused = row.and_then(|r| r.paused.as_ref().map(PauseView::from));
    PauseResult {
        job,
        changed,
        paused,
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// The job's name, when the definition has no `name:`.
    pub name: Option<String>,
}

/// Parses `text` as the definition of job `name` and writes it (or removes the job).
async fn write_job(
    api: &Arc<Api>,
    who: &Principal,
    name: &str,
    text: Option<Definition>,
    mode: ApiWrite,
) -> ApiResult<()> {
    if let Err(e) = crate::name::JobName::parse(name) {
        return Err(match mode {
            ApiWrite::Create => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{name}` is not a valid job name: {e}"),
            ),
            // No job can have that name.
            ApiWrite::Update | ApiWrite::Delete => no_job(name),
        });
    }
    // A scoped token changes only the jobs it sees; a job it does not see is not there for
    // it, except that its name is taken (names are one namespace for every team).
    if who.scope.is_some() && !api.sees_job(who, name).await? {
        // A removed job keeps its name and history: taken too.
        let exists = {
            let job = name.to_string();
            api.read(move |l| l.job(&job)).await?.is_some()
        };
        match (mode, exists) {
            (ApiWrite::Create, false) => {}
            (ApiWrite::Create, true) => {
                return Err(ApiError::conflict(format!(
                    "the name `{name}` is taken by another team's job; choose another"
                )));
            }
            _ => return Err(no_job(name)),
        }
    }
    // What its `after` and `depends_on` may name: for a scoped caller, the jobs it sees (the
    // others are not there for it).
    let scope = who.scope.clone();
    let others: Vec<String> = api
        .read_blocking(|l| l.jobs_listed())
        .await?
        .into_iter()
        .filter(|r| r.active && r.name != name && scope.as_ref().is_none_or(|s| s.covers_job(r)))
        .map(|r| r.name)
        .collect();
    let now = api.now();
    let defaults = api.shared.defaults.clone();
    let name = name.to_string();
    let (text, format, positions) = match text {
        Some(d) => (Some(d.text), d.format, d.positions),
        None => (None, Format::Yaml, true),
    };
    let action = match mode {
        ApiWrite::Create => "created",
        ApiWrite::Update => "changed",
        ApiWrite::Delete => "removed",
    };
    let target = format!("job {name}");
    let audit = format!("{target} {action} by {}", who.actor());
    let scope = who.scope.as_ref().map(super::auth::Scope::text);
    api.write(move |ledger| {
        let display = format!("{name}.{}", format.extension());
        let catalog = text.as_ref().map(|text| {
            let inputs = [catalog::FileInput {
                display: &display,
                relative: &display,
                bytes: text.as_bytes(),
            }];
            let context = crate::spec::Context {
                defaults: &defaults,
                now,
            };
            catalog::build(&inputs, context, &others)
        });
        // A created job belongs to its creator's folders (none: every team's admins).
        let scope = scope.as_deref().filter(|_| mode == ApiWrite::Create);
        match write_api_job(ledger, &name, catalog.as_ref(), (mode, scope), now) {
            Ok(_) => {
                // The revision has no author column: the event records who wrote it.
                record_audit(ledger, now, &audit);
                Ok(())
            }
            Err(e) => Err(write_error(e, text.as_deref(), positions)),
        }
    })
    .await?;
    who.audit(action, &target);
    Ok(())
}

/// The answer to an API write that wrote nothing. An invalid definition answers 422 with its
/// diagnostics, against `text` as sent (`positions`: false for a merged document, whose lines
/// the client never saw and would be misled by).
fn write_error(e: ApiWriteError, text: Option<&str>, positions: bool) -> ApiError {
    match e {
        ApiWriteError::NotFound(m) => ApiError::not_found(m),
        ApiWriteError::Conflict(m) => ApiError::conflict(m),
        ApiWriteError::Invalid(mut diagnostics) => {
            if !positions {
                for d in &mut diagnostics {
                    d.position = None;
                }
            }
            ApiError {
                diagnostics: diagnostics.clone(),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    crate::diag::render(&diagnostics, |_| text, false),
                )
            }
        }
        ApiWriteError::Ledger(e) => e.into(),
    }
}

async fn detail_of(api: &Arc<Api>, name: String) -> ApiResult<JobDetail> {
    let (row, counts, revisions) = find(api, name).await?;
    let now = api.now();
    let fires = views::next_fires_in(&row, now, 5);
    Ok(views::detail(&row, &fires, counts, revisions, now))
}

/// Creates an API-owned job from a definition in the job file format, as JSON or YAML. Its
/// name is the definition's `name:` (or `?name=`). It is validated like a file, recorded as
/// revision 1, and listed by `jobctl plan` apart from the files' jobs. 201 with the job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", params(CreateQuery),
    request_body(content = String, description = "A job definition (JSON or YAML)",
        content_type = "application/yaml"),
    responses((status = 201, body = JobDetail),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let definition = definition_text(&headers, &body)?;
    let written = definition_value(&definition.text, definition.format)?
        .get("name")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let name = match (q.name, written) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("?name={a} and the definition's `name: {b}` differ"),
            ));
        }
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the definition needs `name: NAME` (or ?name=NAME): through the API there is no file name to take it from",
            ));
        }
    };
    write_job(&api, &who, &name, Some(definition), ApiWrite::Create).await?;
    let job = detail_of(&api, name).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

/// Changes an API-owned job: the fields given replace the stored ones (a JSON merge patch;
/// `null` removes a field), the rest are kept. A job defined by a file answers 409, naming it.
#[utoipa::path(patch, path = "/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = String, description = "The fields to change (JSON or YAML)",
        content_type = "application/json"),
    responses((status = 200, body = JobDetail),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<JobDetail>> {
    let sent = definition_text(&headers, &body)?;
    let patch = definition_value(&sent.text, sent.format)?;
    if !patch.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a map of the fields to change",
        ));
    }
    let job = name.clone();
    let stored = api.read(move |l| l.job(&job)).await?.filter(|r| r.active);
    let mut merged = match stored {
        Some(row) if row.owner == crate::ledger::Owner::Api => {
            definition_value(&row.definition, Format::Yaml)?
        }
        // Let the write report a file's job or a missing one.
        _ => serde_json::Value::Object(serde_json::Map::new()),
    };
    merge_patch(&mut merged, patch);
    let text = serde_json::to_string_pretty(&merged)
        .map_err(|e| ApiError::internal("merging the definition", e))?;
    let merged = Definition {
        text,
        format: Format::Yaml,
        positions: false,
    };
    write_job(&api, &who, &name, Some(merged), ApiWrite::Update).await?;
    detail_of(&api, name).await.map(Json)
}

/// Replaces an API-owned job's definition with the one sent (`jobctl update NAME FILE`):
/// fields the definition leaves out take their defaults, as in a file. Errors point at lines
/// of the body as sent. A job defined by a file answers 409, naming it; no job, 404.
#[utoipa::path(put, path = "/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = String, description = "The whole definition (JSON, YAML or TOML)",
        content_type = "application/yaml"),
    responses((status = 200, body = JobDetail),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<JobDetail>> {
    let definition = definition_text(&headers, &body)?;
    let value = definition_value(&definition.text, definition.format)?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a job definition (a map of fields)",
        ));
    }
    if let Some(written) = value.get("name").and_then(serde_json::Value::as_str)
        && written != name
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the path names `{name}` and the definition's `name: {written}` differ"),
        ));
    }
    write_job(&api, &who, &name, Some(definition), ApiWrite::Update).await?;
    detail_of(&api, name).await.map(Json)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also cancel the job's pending and running runs (otherwise they finish).
    pub cancel_active: Option<bool>,
}

/// Removes an API-owned job; its history stays. A job defined by a file answers 409.
#[utoipa::path(delete, path = "/v1/jobs/{name}", tag = "jobs",
    params(("name" = String, Path, description = "The job's name"), DeleteQuery),
    responses((status = 200, body = DeleteResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(api): State<Arc<Api>>,
    Admin(who): Admin,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<DeleteResult>> {
    write_job(&api, &who, &name, None, ApiWrite::Delete).await?;
    let mut cancelled_runs = Vec::new();
    if q.cancel_active.unwrap_or(false) {
        let now = api.now();
        let job = name.clone();
        let by = format!("{} with job {name}'s removal", who.actor());
        cancelled_runs = api
            .write_runs(move |l| {
                let active: Vec<i64> = l
                    .active_runs()?
                    .into_iter()
                    .filter(|r| r.job == job)
                    .map(|r| r.id)
                    .collect();
                for id in &active {
                    l.request_cancel(*id, &by, now)?;
                }
                Ok(active)
            })
            .await?;
    }
    Ok(Json(DeleteResult {
        job: name,
        removed: true,
        cancelled_runs,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphQuery {
    /// Only the jobs on a link (default `false`: every active job).
    pub linked: Option<bool>,
}

/// The dependency graph of the active jobs: each `after` and `depends_on` link, upstream
/// first (`jobctl graph`), each job with its last run.
#[utoipa::path(get, path = "/v1/graph", tag = "jobs", params(GraphQuery),
    responses((status = 200, body = GraphView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn graph(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
    Query(q): Query<GraphQuery>,
) -> ApiResult<Json<GraphView>> {
    let scope = who.scope;
    api.read_blocking(move |l| {
        let mut rows = l.jobs_listed()?;
        if let Some(scope) = &scope {
            // The links to jobs it does not see go with them.
            rows.retain(|r| scope.covers_job(r));
        }
        let mut view = views::graph(&rows);
        if scope.is_some() {
            let seen: std::collections::HashSet<&str> =
                rows.iter().map(|r| r.name.as_str()).collect();
            view.edges
                .retain(|e| seen.contains(e.from.as_str()) && seen.contains(e.to.as_str()));
        }
        if q.linked == Some(true) {
            view.keep_linked();
        }
        let mut last = {
            let names: Vec<&str> = view.jobs.iter().map(|j| j.name.as_str()).collect();
            l.last_runs(&names)?
        };
        for job in &mut view.jobs {
            job.last_run = last.remove(&job.name).as_ref().map(wire::LastRunView::from);
        }
        Ok(view)
    })
    .await
    .map(Json)
}

/// Each tag of the active jobs, with how many carry it (the dashboard's tag filter).
#[utoipa::path(get, path = "/v1/tags", tag = "jobs",
    responses((status = 200, body = Vec<wire::TagCount>), (status = 401, body = ErrorBody)))]
pub async fn tags(
    State(api): State<Arc<Api>>,
    Reader(who): Reader,
) -> ApiResult<Json<Vec<wire::TagCount>>> {
    let tags = match who.scope {
        None => api.read(|l| l.tag_counts()).await?,
        Some(scope) => {
            let rows = api.read_blocking(|l| l.jobs_listed()).await?;
            let mut counts = std::collections::BTreeMap::<String, usize>::new();
            for r in rows.iter().filter(|r| r.active && scope.covers_job(r)) {
                for tag in &r.tags {
                    *counts.entry(tag.clone()).or_default() += 1;
                }
            }
            counts.into_iter().collect()
        }
    };
    Ok(Json(
        tags.into_iter()
            .map(|(tag, jobs)| wire::TagCount { tag, jobs })
            .collect(),
    ))
}
