//! What the CLI prints and the HTTP API answers about jobs: one shape for both, so `jobs list`
//! and `jobs list --server URL` say the same thing.

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::apply::stored_schedule;
use crate::ledger::JobRow;
use crate::schedule::Schedule;

/// An operator's pause of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PauseView {
    /// Who paused it (`user@host`, or `api:ROLE` through the API).
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

/// A job as listed: `GET /v1/jobs`, `jobs list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub name: String,
    pub description: String,
    /// `active`, `paused`, `disabled`, `completed` (an `at` job that fired) or `removed`.
    pub state: String,
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
    /// Runs by state, over the history the ledger keeps.
    pub runs: BTreeMap<String, i64>,
}

/// One job in full: `GET /v1/jobs/{name}`, `jobs get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The next five fires, RFC 3339 in the job's time zone.
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
}

/// RFC 3339 with the zone's offset, to the second.
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `active`, `paused`, `disabled`, `completed` or `removed`.
pub fn state_of(row: &JobRow) -> &'static str {
    let completed = || match stored_schedule(row) {
        Some(Schedule::At(at)) => row
            .slot_cursor
            .parse::<Timestamp>()
            .is_ok_and(|cursor| at.instant <= cursor),
        _ => false,
    };
    match (row.active, row.enabled) {
        (false, _) => "removed",
        (true, false) => "disabled",
        (true, true) if row.paused.is_some() => "paused",
        (true, true) if completed() => "completed",
        (true, true) => "active",
    }
}

/// The next `n` fires of a job's stored schedule after `now`, in `tz`.
pub fn next_fires_in(row: &JobRow, tz: &TimeZone, now: Timestamp, n: usize) -> Vec<Zoned> {
    if !row.active || !row.enabled {
        return Vec::new();
    }
    let Some(schedule) = stored_schedule(row) else {
        return Vec::new();
    };
    let anchor = row.schedule_anchor.parse().unwrap_or(now);
    schedule
        .next_fires(tz, anchor, now, n)
        .into_iter()
        .map(|t| t.to_zoned(tz.clone()))
        .collect()
}

/// Looks each zone up once: thousands of jobs share a handful of zones.
#[derive(Default)]
pub struct Zones(HashMap<String, Option<TimeZone>>);

impl Zones {
    pub fn get(&mut self, name: &str) -> Option<&TimeZone> {
        self.0
            .entry(name.to_string())
            .or_insert_with(|| jiff::tz::db().get(name).ok())
            .as_ref()
    }
}

fn schedule_kind(schedule: Option<&Schedule>) -> &'static str {
    match schedule {
        Some(Schedule::Cron(_)) => "cron",
        Some(Schedule::Every { .. }) => "every",
        Some(Schedule::At(_)) => "at",
        Some(Schedule::After(_)) => "after",
        Some(Schedule::Manual) | None => "manual",
    }
}

/// The list view of a job, given its next fire and run counts.
pub fn summary(row: &JobRow, next_fire: Option<&Zoned>, runs: BTreeMap<String, i64>) -> JobSummary {
    let schedule = stored_schedule(row);
    JobSummary {
        name: row.name.clone(),
        description: row.description.clone(),
        state: state_of(row).to_string(),
        enabled: row.enabled,
        paused: row.paused.as_ref().map(|p| PauseView {
            by: p.by.clone(),
            at: p.at.clone(),
            reason: p.reason.clone(),
        }),
        owner: row.owner.clone(),
        schedule: schedule
            .as_ref()
            .map_or_else(|| row.schedule.clone(), ToString::to_string),
        schedule_kind: schedule_kind(schedule.as_ref()).to_string(),
        schedule_description: schedule.as_ref().map(|s| match s {
            Schedule::Cron(c) => c.describe(),
            other => other.to_string(),
        }),
        timezone: row.timezone.clone(),
        next_fire: next_fire.map(rfc3339),
        file: row.source_path.clone(),
        revision: row.revision,
        git_commit: row.git_commit.clone(),
        tags: row.tags.clone(),
        last_run: row.last_run.as_ref().map(|l| LastRunView {
            state: l.state.clone(),
            at: l.at.clone(),
        }),
        runs,
    }
}

/// The full view of a job.
pub fn detail(
    row: &JobRow,
    fires: &[Zoned],
    runs: BTreeMap<String, i64>,
    revisions: i64,
) -> JobDetail {
    JobDetail {
        summary: summary(row, fires.first(), runs),
        next_fires: fires.iter().map(rfc3339).collect(),
        revisions,
        content_hash: row.content_hash.clone(),
        git_dirty: row.git_dirty,
        applied_at: row.updated_at.clone(),
        created_at: row.created_at.clone(),
        removed_at: row.removed_at.clone(),
        definition: row.definition.clone(),
    }
}
