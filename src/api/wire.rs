//! The API's JSON, defined once: what the handlers send and take, what the OpenAPI document
//! describes, and what the CLI's client reads back (`jobctl … --server`).
//!
//! Every type here derives `Serialize`, `Deserialize` and `utoipa::ToSchema`; nothing else in
//! the crate is an API schema. Ledger rows (`ledger::RunRow`, …) and core types
//! (`graph::Edge`, …) are converted here, in `From` impls, so a change to a row's columns is
//! adapted in one place and never reaches a client. The field order is the JSON's order.
//!
//! This module holds shapes, not behaviour: it does no I/O and knows nothing of axum.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ledger;
use crate::run::RunState;

// Jobs: `GET /v1/jobs`, `GET /v1/jobs/{name}`, `jobctl list`, `jobctl get`, `jobctl status`,
// `jobctl graph`. Built from ledger rows by `views`.

/// An operator's pause of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PauseView {
    /// Who paused it: `user@host`, or through the API the token's name, `alice (api)` (`api`
    /// for a token without a name).
    pub by: String,
    pub at: String,
    pub reason: Option<String>,
}

/// The newest run of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LastRunView {
    pub state: String,
    pub at: String,
}

impl From<&crate::ledger::LastRun> for LastRunView {
    fn from(l: &crate::ledger::LastRun) -> LastRunView {
        LastRunView {
            state: l.state.to_string(),
            at: crate::ledger::stamp(l.at),
        }
    }
}

/// A job as listed: `GET /v1/jobs`, `jobctl list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub name: String,
    pub description: String,
    /// `active`, `paused` (by an operator), `disabled` (by its file), `blocked` (a run waits
    /// for its dependencies), `completed` (`repeat` done, or an `at` job that fired) or
    /// `removed` (no longer defined; history kept).
    pub state: String,
    /// A `repeat` job's count: `3 of 5` (fires of its current revision), `after 3 runs`
    /// (until success).
    pub progress: Option<String>,
    /// What the job's blocked runs wait for, while it has any.
    pub blocked: Option<String>,
    /// Final runs that failed or timed out in a row, up to now.
    pub failure_streak: i64,
    pub enabled: bool,
    pub paused: Option<PauseView>,
    /// `file` (from `jobs.d`) or `api` (created through the API).
    pub owner: String,
    /// The schedule as written: a cron expression, `every 5m`, `at …`, or `manual`.
    pub schedule: String,
    /// `cron`, `every`, `at`, `after` or `manual`.
    pub schedule_kind: String,
    /// The schedule in words.
    pub schedule_description: Option<String>,
    pub timezone: String,
    /// The next fire, RFC 3339 in the job's time zone.
    pub next_fire: Option<String>,
    /// The file that defines it, relative to the jobs folder.
    pub file: Option<String>,
    pub revision: i64,
    pub git_commit: Option<String>,
    pub tags: Vec<String>,
    pub last_run: Option<LastRunView>,
    /// When its last failed or timed-out run ended.
    #[serde(default)]
    pub last_failure_at: Option<String>,
    /// Runs by state, over the history the ledger keeps.
    pub runs: BTreeMap<String, i64>,
}

/// One job in full: `GET /v1/jobs/{name}`, `jobctl get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The next fires, RFC 3339 in the job's time zone: five, or `?fires=N` (at most 50).
    pub next_fires: Vec<String>,
    /// How many revisions the ledger holds.
    pub revisions: i64,
    pub content_hash: String,
    pub git_dirty: Option<bool>,
    pub applied_at: String,
    pub created_at: String,
    pub removed_at: Option<String>,
    /// The normalized definition, as recorded.
    pub definition: String,
    /// The parameters a trigger may give, as declared (the dashboard's trigger form).
    #[serde(default)]
    pub params: Vec<ParamView>,
    /// How daylight-saving changes over the next year move the schedule's fires, in words.
    #[serde(default)]
    pub dst_notes: Vec<String>,
}

/// A declared parameter of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParamView {
    pub name: String,
    pub required: bool,
    pub default: Option<String>,
    pub description: Option<String>,
}

/// The daemon serving a ledger, as `jobctl status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DaemonView {
    pub running: bool,
    pub pid: Option<i64>,
    /// The node that leads (or last led): the daemon that holds the lease.
    pub holder: Option<String>,
    /// When it started, while it runs.
    pub since: Option<String>,
    pub epoch: Option<i64>,
    /// When the last one stopped, if none runs.
    pub stopped_at: Option<String>,
}

/// A node serving the ledger (`jobctl serve --node NAME`): `GET /v1/status`, `jobctl status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub name: String,
    pub labels: Vec<String>,
    /// Its API's URL.
    pub address: Option<String>,
    pub host: String,
    pub pid: i64,
    pub started_at: String,
    /// Its last sign of life.
    pub heartbeat_at: String,
    /// When it stopped, if it did.
    pub stopped_at: Option<String>,
    /// When the leader declared it lost (no heartbeat for 10 seconds): its runs were ended
    /// and retried.
    pub lost_at: Option<String>,
    /// Whether it is alive: not stopped nor lost, with a heartbeat in the last 10 seconds.
    pub alive: bool,
    /// Whether it holds the lease: it decides the slots.
    pub leader: bool,
    /// The lease's term (`epoch`) while it leads.
    pub term: Option<i64>,
    /// Its runs now running.
    pub running: i64,
}

/// The jobs folder's errors, as the daemon last read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FilesView {
    pub errors: u64,
    /// The errors, rendered with file:line:col.
    pub rendered: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NextFire {
    pub job: String,
    pub at: String,
}

/// The git repository the daemon follows (`jobctl serve --git-url`, `[git]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GitView {
    /// The repository, without credentials.
    pub url: String,
    pub branch: String,
    /// The jobs folder inside it.
    pub path: String,
    /// The commit whose jobs are applied.
    pub applied_commit: Option<String>,
    pub applied_at: Option<String>,
    /// The branch's newest commit at the last fetch.
    pub remote_commit: Option<String>,
    /// Whether the branch has a commit that is not applied (held back, or not yet fetched).
    pub behind: bool,
    /// The last fetch tried, and the last that worked.
    pub last_fetch_at: Option<String>,
    pub last_fetch_ok_at: Option<String>,
    /// Why the last fetch failed; fetches are retried.
    pub fetch_error: Option<String>,
    /// The newest commit, held back because its folder does not validate.
    pub held: Option<HeldCommit>,
    /// The last time the branch's history was rewritten (a force-push): what was applied,
    /// and what replaced it.
    pub rewritten: Option<String>,
}

/// The answer to the followed repository's push webhook, `POST /v1/hooks/git`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GitPushResult {
    /// Whether the daemon fetches now.
    pub fetching: bool,
    pub message: String,
}

/// A commit not applied, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeldCommit {
    pub commit: String,
    /// Since when.
    pub at: String,
    pub errors: u64,
    /// The errors, rendered with file:line:col (paths inside the repository).
    pub rendered: String,
}

/// `jobctl status`, `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    pub daemon: DaemonView,
    /// The git repository followed, when the daemon follows one.
    #[serde(default)]
    pub git: Option<GitView>,
    /// The nodes alive in the last hour, or still running runs, by name.
    #[serde(default)]
    pub nodes: Vec<NodeView>,
    pub ledger: String,
    pub jobs: usize,
    pub files: FilesView,
    pub active_runs: Vec<Run>,
    /// The ten soonest fires.
    pub next_fires: Vec<NextFire>,
}

/// A tag and how many active jobs carry it: `GET /v1/tags`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagCount {
    pub tag: String,
    pub jobs: usize,
}

/// A job in the dependency graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GraphJob {
    pub name: String,
    /// The schedule in its short form.
    pub schedule: String,
    pub state: String,
    /// Its newest run, if it ran (the dashboard colours the job by it).
    #[serde(default)]
    pub last_run: Option<LastRunView>,
}

/// The dependency graph: `GET /v1/graph`, `jobctl graph`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GraphView {
    /// The active jobs, by name.
    pub jobs: Vec<GraphJob>,
    /// Each link from an upstream job to the job that waits for it.
    pub edges: Vec<Edge>,
}

impl GraphView {
    /// Keeps only the jobs on a link (the dashboard draws these; a lone job is no graph).
    pub fn keep_linked(&mut self) {
        let linked: std::collections::HashSet<&str> = self
            .edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .collect();
        let jobs = std::mem::take(&mut self.jobs);
        self.jobs = jobs
            .into_iter()
            .filter(|j| linked.contains(j.name.as_str()))
            .collect();
    }

    /// The graph to render.
    pub fn graph(&self) -> crate::graph::Graph {
        let jobs: Vec<(String, String)> = self
            .jobs
            .iter()
            .map(|j| (j.name.clone(), j.schedule.clone()))
            .collect();
        let edges: Vec<crate::graph::Edge> =
            self.edges.iter().map(crate::graph::Edge::from).collect();
        crate::graph::Graph::from_parts(&jobs, &edges)
    }
}

impl From<&ledger::Pause> for PauseView {
    fn from(p: &ledger::Pause) -> PauseView {
        PauseView {
            by: p.by.clone(),
            at: ledger::stamp(p.at),
            reason: p.reason.clone(),
        }
    }
}

/// A link from an upstream job to the job that waits for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// `schedule: {after: …}`: the upstream's success fires the job.
    After,
    /// `depends_on`: the upstream's latest run gates the job's runs.
    DependsOn,
}

impl From<&crate::graph::Edge> for Edge {
    fn from(e: &crate::graph::Edge) -> Edge {
        Edge {
            from: e.from.clone(),
            to: e.to.clone(),
            kind: match e.kind {
                crate::graph::EdgeKind::After => EdgeKind::After,
                crate::graph::EdgeKind::DependsOn => EdgeKind::DependsOn,
            },
        }
    }
}

impl From<&Edge> for crate::graph::Edge {
    fn from(e: &Edge) -> crate::graph::Edge {
        crate::graph::Edge {
            from: e.from.clone(),
            to: e.to.clone(),
            kind: match e.kind {
                EdgeKind::After => crate::graph::EdgeKind::After,
                EdgeKind::DependsOn => crate::graph::EdgeKind::DependsOn,
            },
        }
    }
}

// Runs: `/v1/runs`, `jobctl runs`, `jobctl run get|events`, `jobctl logs`.

/// A run as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = RunRow)]
pub struct Run {
    pub id: i64,
    pub job: String,
    /// The job's revision number the run executes.
    pub revision: Option<i64>,
    pub git_commit: Option<String>,
    pub trigger: String,
    pub attempt: i64,
    /// The first attempt's run, for a retry.
    pub first_run_id: Option<i64>,
    /// The instant the run was due.
    pub scheduled_at: Option<String>,
    /// For rows created by the schedule: the slot it accounts for, and the first and number of
    /// slots when several were folded into it.
    pub slot: Option<String>,
    pub slot_first: Option<String>,
    pub slot_count: i64,
    /// A pending run starts no earlier than this (retry backoff, jitter).
    pub not_before: Option<String>,
    pub state: String,
    pub reason: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub pid: Option<i64>,
    pub cpu_user_ms: Option<i64>,
    pub cpu_sys_ms: Option<i64>,
    pub max_rss_kb: Option<i64>,
    pub params: Option<serde_json::Value>,
    /// For a run a dependency released: the upstream runs, `[{"job": …, "run": …}]`.
    pub released_by: Option<serde_json::Value>,
    pub output_bytes: i64,
    pub output_truncated: bool,
    pub cancel_requested: Option<String>,
    /// The node (daemon, `jobctl serve --node`) that ran it, once started.
    #[serde(default)]
    pub node: Option<String>,
    /// What this run changes of its revision, for it only (`jobctl trigger --timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<RunOverrides>,
    /// The backfill that created it (`jobctl backfill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<i64>,
    /// The HTTP status of an `http` or `prompt` run's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The model that answered a `prompt` run (as the provider named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why the model stopped: `stop`, `length`, `content_filter`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Tokens of a `prompt` run's request, as the provider counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    /// Tokens of its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    /// The run's page in the dashboard, when the server knows its public address
    /// (`[server] public_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Run {
    /// The run with its dashboard page under `public_url`, if one is known.
    #[must_use]
    pub fn linked(mut self, public_url: Option<&str>) -> Run {
        self.url =
            public_url.map(|base| format!("{}/runs/{}", base.trim_end_matches('/'), self.id));
        self
    }

    /// The run's state, if this version of jobs knows it.
    pub fn state(&self) -> Option<RunState> {
        RunState::parse(&self.state).ok()
    }
}

impl From<ledger::RunRow> for Run {
    fn from(r: ledger::RunRow) -> Run {
        Run {
            id: r.id,
            job: r.job,
            revision: r.revision,
            git_commit: r.git_commit,
            trigger: r.trigger.as_str().to_string(),
            attempt: r.attempt,
            first_run_id: r.first_run_id,
            scheduled_at: r.scheduled_at.map(ledger::stamp),
            slot: r.slot.map(ledger::stamp),
            slot_first: r.slot_first.map(ledger::stamp),
            slot_count: r.slot_count,
            not_before: r.not_before.map(ledger::stamp),
            state: r.state.as_str().to_string(),
            reason: r.reason,
            created_at: ledger::stamp(r.created_at),
            started_at: r.started_at.map(ledger::stamp),
            finished_at: r.finished_at.map(ledger::stamp),
            duration_ms: r.duration_ms,
            exit_code: r.exit_code,
            signal: r.signal,
            error: r.error,
            pid: r.pid,
            cpu_user_ms: r.cpu_user_ms,
            cpu_sys_ms: r.cpu_sys_ms,
            max_rss_kb: r.max_rss_kb,
            params: r.params,
            released_by: r.released_by,
            output_bytes: r.output_bytes,
            output_truncated: r.output_truncated,
            cancel_requested: r.cancel_requested.map(ledger::stamp),
            node: r.node,
            overrides: (!r.overrides.is_empty()).then(|| RunOverrides {
                timeout: r.overrides.timeout.map(|t| t.to_string()),
            }),
            backfill_id: r.backfill_id,
            http_status: r.reply.http_status,
            model: r.reply.model,
            finish_reason: r.reply.finish_reason,
            prompt_tokens: r.reply.prompt_tokens,
            completion_tokens: r.reply.completion_tokens,
            url: None,
        }
    }
}

/// What a run changes of its revision's definition, for that run only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunOverrides {
    /// Its `timeout`, in place of the revision's (`2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

impl From<&ledger::RunRow> for Run {
    fn from(r: &ledger::RunRow) -> Run {
        Run::from(r.clone())
    }
}

/// Runs as the API sends them, in the same order.
pub fn runs(rows: Vec<ledger::RunRow>) -> Vec<Run> {
    rows.into_iter().map(Run::from).collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunEvent {
    pub id: i64,
    pub run_id: i64,
    pub at: String,
    pub kind: String,
    pub message: String,
}

impl From<ledger::RunEvent> for RunEvent {
    fn from(e: ledger::RunEvent) -> RunEvent {
        RunEvent {
            id: e.id,
            run_id: e.run_id,
            at: ledger::stamp(e.at),
            kind: e.kind,
            message: e.message,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputLine {
    pub id: i64,
    pub at: String,
    pub stream: String,
    pub line: String,
}

impl From<ledger::OutputLine> for OutputLine {
    fn from(l: ledger::OutputLine) -> OutputLine {
        OutputLine {
            id: l.id,
            at: ledger::stamp(l.at),
            stream: l.stream,
            line: l.line,
        }
    }
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// A page of a run's output lines, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    pub lines: Vec<OutputLine>,
    /// More lines follow: pass this as `after` for the next page. Null when this page ends
    /// with the last line written so far (a running run may write more).
    pub next_after: Option<i64>,
}

/// One output line of a job's run: `GET /v1/jobs/{name}/logs`, `jobctl logs --job`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobLogLine {
    pub run_id: i64,
    /// The line's number in its run (1, 2, 3…).
    pub id: i64,
    pub at: String,
    pub stream: String,
    pub line: String,
}

impl From<ledger::JobLine> for JobLogLine {
    fn from(l: ledger::JobLine) -> JobLogLine {
        JobLogLine {
            run_id: l.run_id,
            id: l.line.id,
            at: ledger::stamp(l.line.at),
            stream: l.line.stream,
            line: l.line.line,
        }
    }
}

/// A page of the output lines of a job's runs in a window, oldest run first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobLogPage {
    pub job: String,
    pub lines: Vec<JobLogLine>,
    /// More lines follow: pass this (`RUN:LINE`) as `after` for the next page; null at the end.
    pub next_after: Option<String>,
}

/// One run's value of a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricPoint {
    pub run_id: i64,
    /// When the run ended.
    pub at: String,
    pub value: f64,
    /// The run's final state.
    pub state: String,
}

/// A metric of a job's runs over time: one point per run that ended in the window and has a
/// value (a skipped run has no duration). A series that cannot be answered carries its
/// `error` and no points; the others still answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricSeries {
    pub name: String,
    /// `seconds` or `bytes`.
    pub unit: String,
    pub points: Vec<MetricPoint>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v1/jobs/{name}/metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobMetrics {
    pub job: String,
    pub since: String,
    pub until: String,
    pub series: Vec<MetricSeries>,
}

/// One server-sent event of a followed log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogEvent {
    /// `line` (data: an output line as JSON), `end` (data: the ended run as JSON) or `error`.
    pub event: String,
    /// The event's JSON, as text.
    pub data: String,
}

/// The outcome of a cancel request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelResult {
    pub run: i64,
    /// `cancelled` (it was pending) or `cancel_requested` (it is running; its supervisor stops
    /// it: SIGTERM to its process group, SIGKILL after the kill grace).
    pub result: String,
}

impl CancelResult {
    /// The result of a cancel as the ledger reports it.
    pub fn new(run: i64, outcome: ledger::CancelOutcome) -> CancelResult {
        CancelResult {
            run,
            result: match outcome {
                ledger::CancelOutcome::Cancelled => "cancelled",
                ledger::CancelOutcome::Requested => "cancel_requested",
            }
            .to_string(),
        }
    }

    /// Whether the run was cancelled on the spot (it had not started).
    pub fn cancelled(&self) -> bool {
        self.result == "cancelled"
    }
}

// Writes: triggers, pauses, API-owned jobs.

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Values for the job's declared `params`; each reaches the run as `JOBS_PARAM_NAME`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    /// This run's `timeout` in place of the revision's (`2h`), for this run (and its
    /// retries) only; recorded on the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A backfill to run (`POST /v1/jobs/{name}/backfill`): every slot of the job's schedule in
/// `[from, to)` that has no run yet, each with the revision in force at it.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillBody {
    /// The window's start: an instant (`2026-11-30T00:00:00Z`), a date, or how long ago (`7d`).
    pub from: String,
    /// The window's end (not included), the same way; at most now.
    pub to: String,
    /// List the slots and the revision each would run, and create nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// How many of its runs at a time (1 to 64; 1 whatever is asked when the job's
    /// `concurrency` is not `allow`).
    #[serde(default = "one")]
    pub parallel: usize,
}

fn one() -> usize {
    1
}

/// What a backfill found (and queued, unless it was a dry run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackfillView {
    pub job: String,
    pub from: String,
    pub to: String,
    /// Where the window ends in fact: `to`, or earlier when the scheduler has not accounted
    /// for the slots after it yet (they are the scheduler's, not the backfill's).
    pub until: String,
    pub dry_run: bool,
    /// How many of its runs at a time.
    pub parallel: usize,
    /// One at a time beside the job's other runs (its `concurrency` is not `allow`).
    pub exclusive: bool,
    /// The backfill written; none for a dry run or when no slot needed a run.
    pub backfill_id: Option<i64>,
    /// The slots without a run, oldest first.
    pub slots: Vec<BackfillSlot>,
}

/// A slot a backfill runs, with the revision in force at it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackfillSlot {
    pub at: String,
    /// The job's revision number in force at the slot: the one the run executes.
    pub revision: i64,
    /// The run created for it; none for a dry run.
    pub run_id: Option<i64>,
}

impl BackfillView {
    pub fn new(
        job: &str,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
        dry_run: bool,
        r: &crate::replay::Replay,
    ) -> BackfillView {
        let ids = r.written.as_ref().map(|(_, ids)| ids.as_slice());
        BackfillView {
            job: job.to_string(),
            from: ledger::stamp(from),
            to: ledger::stamp(to),
            until: ledger::stamp(r.until),
            dry_run,
            parallel: r.parallel,
            exclusive: r.exclusive,
            backfill_id: r.written.as_ref().map(|(id, _)| *id),
            slots: r
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| BackfillSlot {
                    at: ledger::stamp(s.at),
                    revision: s.revision,
                    run_id: ids.and_then(|ids| ids.get(i).copied()),
                })
                .collect(),
        }
    }
}

/// A parameter's value: a string, or a number or boolean (passed as its text).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
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

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
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

/// The outcome of a delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteResult {
    pub job: String,
    pub removed: bool,
    /// The runs cancelled with it (`cancel_active=true`).
    pub cancelled_runs: Vec<i64>,
}

// Plans: `POST /v1/plan`, `jobctl plan --server`.

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Job files by path relative to the jobs folder (`team/backup.yaml`), with their text.
    pub files: BTreeMap<String, String>,
    /// The jobs folder as the client names it (`jobs.d`), so messages show the paths the
    /// client's user knows.
    pub dir: Option<String>,
    /// Also answer the plan saved with what it was computed from (`saved`), for
    /// `POST /v1/apply` after review.
    #[serde(default)]
    pub save: bool,
    /// The git commit the files come from, recorded when a saved plan is applied.
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanResponse {
    /// The plan, exactly as `jobctl plan --output json` prints it.
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    /// The plan as `jobctl plan` prints it on a terminal (without colour).
    pub text: String,
    pub has_changes: bool,
    /// With `save`: the plan with the files and the ledger state it was computed from
    /// (what `jobctl plan --out FILE` writes), for `POST /v1/apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub saved: Option<crate::saved_plan::SavedPlan>,
}

/// What `POST /v1/apply` did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApplyResult {
    /// Whether anything was written (an empty plan writes nothing).
    pub applied: bool,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// The plan as `jobctl apply` prints it.
    pub text: String,
}

// System: health and readiness.

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok`, or why the ledger cannot be read or written.
    pub ledger: String,
    /// `ok`, or why the scheduler cannot do its work (stopped, stuck, cannot read its jobs).
    pub scheduler: String,
    /// `ok`, or the jobs folder's errors. Reported, but not part of readiness: a broken file
    /// keeps its job at its last good revision and everything else fires.
    pub jobs_dir: String,
}

// Errors: every error response.

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: `not_found`, `unauthorized`, `conflict`, ...
    pub code: String,
    /// What was wrong and what to do, for a person.
    pub message: String,
    /// For a definition that does not validate (422): each problem with its line and column
    /// in the body as sent, so a client can point at its own file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub diagnostics: Vec<crate::diag::Diagnostic>,
}

// Dashboard sessions: `POST /v1/session`, `GET /v1/session`.

/// The token a browser trades for a session cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginBody {
    pub token: String,
}

/// Who the caller is: its token's role (`read` or `admin`) and name, and how it was
/// recognised (`cookie`, `bearer`, or `none` on a server without tokens).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub role: String,
    pub name: Option<String>,
    pub via: String,
    /// When a cookie session ends (RFC 3339); none for a bearer token.
    pub expires_at: Option<String>,
    /// The folders of jobs.d the token is limited to (`team-a/,shared/`); none: every job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The server's clock as it answered (RFC 3339): the dashboard counts down to fires
    /// on it, not on the viewer's clock, which may be off.
    pub now: String,
}

// Coming fires: `GET /v1/fires` (the dashboard's timeline and load heat map).

/// One job's fires in a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobFires {
    pub job: String,
    pub timezone: String,
    /// The fires, RFC 3339 in the job's zone, oldest first; at most `per_job`.
    pub fires: Vec<String>,
    /// How many fires the window holds (more than listed when `truncated`).
    pub total: u64,
    pub truncated: bool,
}

/// The fires of every active, enabled job in `[from, to)`, and how many fall in each hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FiresView {
    pub from: String,
    pub to: String,
    /// Jobs with at least one fire in the window, by name.
    pub jobs: Vec<JobFires>,
    /// Fires of all jobs per hour, the first bucket starting at `from`.
    pub hourly: Vec<u64>,
}

/// A run in a job's strip of recent runs (the dashboard's jobs page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecentRun {
    pub id: i64,
    pub state: String,
    pub duration_ms: Option<i64>,
    /// When it was due (or created, for a run without a slot).
    pub at: String,
}

/// The newest runs of each job asked for, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecentRuns {
    pub jobs: BTreeMap<String, Vec<RecentRun>>,
}

// Revisions: `GET /v1/jobs/{name}/revisions`, `GET /v1/jobs/{name}/revisions/diff`.

/// One applied revision of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevisionView {
    pub number: i64,
    pub applied_at: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// The file it came from, relative to the jobs folder (none for an API-owned job).
    pub file: Option<String>,
    pub content_hash: String,
}

impl From<&ledger::Revision> for RevisionView {
    fn from(r: &ledger::Revision) -> RevisionView {
        RevisionView {
            number: r.number,
            applied_at: ledger::applied_stamp(r.applied_at),
            git_commit: r.git_commit.clone(),
            git_dirty: r.git_dirty,
            file: r.source_path.clone(),
            content_hash: r.content_hash.clone(),
        }
    }
}

/// The change between two revisions' definitions, as a unified diff of their normal forms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevisionDiff {
    pub job: String,
    pub from: RevisionView,
    pub to: RevisionView,
    /// Empty when the definitions are the same.
    pub diff: String,
}

/// One job's row of the timeline: its runs and its coming fires in the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineRow {
    pub job: String,
    pub timezone: String,
    /// Runs that touch the window, newest first (at most 200).
    pub runs: Vec<TimelineRun>,
    /// Fires in the window from now on, RFC 3339 in the job's zone (at most 500).
    pub fires: Vec<String>,
    /// How many fires the window holds (more than listed when over 500).
    pub fires_total: u64,
}

/// A run as the timeline draws it: a bar from start to end, linked to its other attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineRun {
    pub id: i64,
    pub state: String,
    pub attempt: i64,
    pub first_run_id: Option<i64>,
    pub scheduled_at: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
}

impl From<&ledger::RunRow> for TimelineRun {
    fn from(r: &ledger::RunRow) -> TimelineRun {
        TimelineRun {
            id: r.id,
            state: r.state.as_str().to_string(),
            attempt: r.attempt,
            first_run_id: r.first_run_id,
            scheduled_at: r.scheduled_at.map(ledger::stamp),
            created_at: ledger::stamp(r.created_at),
            started_at: r.started_at.map(ledger::stamp),
            finished_at: r.finished_at.map(ledger::stamp),
            duration_ms: r.duration_ms,
        }
    }
}

/// A page of the timeline's rows: `GET /v1/timeline`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelinePage {
    pub from: String,
    pub to: String,
    /// Active jobs in all (the rows there are to page through).
    pub total: usize,
    pub rows: Vec<TimelineRow>,
}
