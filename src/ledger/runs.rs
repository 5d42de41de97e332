//! Runs as rows: what a run, its events and its output lines look like, and the queries that
//! list and count them. Writes live elsewhere (`claims`, `slots`, `deps`); this file reads.

use super::db::{Optional, params};
use jiff::Timestamp;

use super::columns::{instant, instant_opt, parsed};
use super::{ForLedger, Ledger, Result};
use crate::run::{RunState, Trigger};

/// A run as the ledger records it, in core types (read by `run_from_row`, the one place its
/// columns are parsed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub job: String,
    /// The job's revision number the run executes.
    pub revision: Option<i64>,
    pub revision_id: Option<i64>,
    pub git_commit: Option<String>,
    pub trigger: Trigger,
    pub attempt: i64,
    /// The first attempt's run, for a retry.
    pub first_run_id: Option<i64>,
    /// The instant the run was due.
    pub scheduled_at: Option<Timestamp>,
    /// For rows created by the schedule: the slot it accounts for, and the first and number of
    /// slots when several were folded into it.
    pub slot: Option<Timestamp>,
    pub slot_first: Option<Timestamp>,
    pub slot_count: i64,
    /// A pending run starts no earlier than this (retry backoff, jitter).
    pub not_before: Option<Timestamp>,
    pub state: RunState,
    pub reason: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
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
    /// When a cancellation was first asked for, while the run has not acted on it.
    pub cancel_requested: Option<Timestamp>,
    pub epoch: Option<i64>,
    pub supervisor: Option<(i64, i64)>,
    pub pid_start: Option<i64>,
    /// The node (daemon) that ran it, once claimed.
    pub node: Option<String>,
    /// What this run changes of its revision (a trigger's `--timeout`).
    pub overrides: crate::run::Overrides,
    /// The backfill it belongs to.
    pub backfill_id: Option<i64>,
    /// What a request's answer said (`http`, `prompt`): status, model, tokens.
    pub reply: crate::spec::Reply,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEvent {
    pub id: i64,
    pub run_id: i64,
    pub at: Timestamp,
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputLine {
    pub id: i64,
    pub at: Timestamp,
    pub stream: String,
    pub line: String,
}

/// Which runs a listing shows.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub job: Option<String>,
    /// Only runs of these jobs (a scoped token's).
    pub jobs: Option<Vec<String>>,
    pub state: Option<RunState>,
    pub trigger: Option<Trigger>,
    /// Runs scheduled (or created) at or after this instant.
    pub since: Option<Timestamp>,
    /// Runs with an id below this one: the cursor of the next page.
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

const RUN_COLUMNS: &str =
    "r.id, r.job, v.number, r.revision_id, v.git_commit, r.trigger, r.attempt,
    r.first_run_id, r.scheduled_at, r.slot, r.slot_first, r.slot_count, r.not_before, r.state,
    r.reason, r.created_at, r.started_at, r.finished_at, r.exit_code, r.signal, r.error, r.pid,
    r.cpu_user_ms, r.cpu_sys_ms, r.max_rss_kb, r.params, r.output_bytes, r.output_truncated,
    r.cancel_requested, r.epoch, r.supervisor_pid, r.supervisor_start, r.pid_start, r.released_by,
    r.node, r.overrides, r.backfill_id, r.http_status, r.model, r.finish_reason, r.prompt_tokens,
    r.completion_tokens";

/// What [`Ledger::run_changes`] read: each run that changed with the id of its latest event
/// read, and the last event id read.
#[derive(Clone, Debug)]
pub struct RunChanges {
    pub runs: Vec<(i64, RunRow)>,
    pub last: Option<i64>,
}

/// A row of [`RUN_COLUMNS`] as a [`RunRow`]: every column converted here, once.
fn run_from_row(row: &super::db::Row<'_>) -> super::db::Result<RunRow> {
    let id: i64 = row.get(0)?;
    let what = || format!("run {id}");
    let started = instant_opt(row, 16, &what)?;
    let finished = instant_opt(row, 17, &what)?;
    let duration_ms = match (started, finished) {
        (Some(s), Some(f)) => Some(f.duration_since(s).as_millis() as i64),
        _ => None,
    };
    let params: Option<String> = row.get(25)?;
    let supervisor_pid: Option<i64> = row.get(30)?;
    let supervisor_start: Option<i64> = row.get(31)?;
    Ok(RunRow {
        id,
        job: row.get(1)?,
        revision: row.get(2)?,
        revision_id: row.get(3)?,
        git_commit: row.get(4)?,
        trigger: parsed(row, 5, &what)?,
        attempt: row.get(6)?,
        first_run_id: row.get(7)?,
        scheduled_at: instant_opt(row, 8, &what)?,
        slot: instant_opt(row, 9, &what)?,
        slot_first: instant_opt(row, 10, &what)?,
        slot_count: row.get(11)?,
        not_before: instant_opt(row, 12, &what)?,
        state: parsed(row, 13, &what)?,
        reason: row.get(14)?,
        created_at: instant(row, 15, &what)?,
        started_at: started,
        finished_at: finished,
        duration_ms,
        exit_code: row.get(18)?,
        signal: row.get(19)?,
        error: row.get(20)?,
        pid: row.get(21)?,
        cpu_user_ms: row.get(22)?,
        cpu_sys_ms: row.get(23)?,
        max_rss_kb: row.get(24)?,
        params: params.and_then(|p| serde_json::from_str(&p).ok()),
        output_bytes: row.get(26)?,
        output_truncated: row.get(27)?,
        cancel_requested: instant_opt(row, 28, &what)?,
        epoch: row.get(29)?,
        supervisor: supervisor_pid.zip(supervisor_start),
        pid_start: row.get(32)?,
        released_by: row
            .get::<Option<String>>(33)?
            .and_then(|p| serde_json::from_str(&p).ok()),
        node: row.get(34)?,
        overrides: row
            .get::<Option<String>>(35)?
            .map(|o| super::columns::overrides_from_json(&o))
            .unwrap_or_default(),
        backfill_id: row.get(36)?,
        reply: crate::spec::Reply {
            http_status: row
                .get::<Option<i64>>(37)?
                .and_then(|s| u16::try_from(s).ok()),
            model: row.get(38)?,
            finish_reason: row.get(39)?,
            prompt_tokens: row.get(40)?,
            completion_tokens: row.get(41)?,
        },
    })
}

impl Ledger {
    /// One run by id.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn run(&self, id: i64) -> Result<Option<RunRow>> {
        self.query_runs("r.id = ?1", params![id], "r.id")
            .map(|mut v| v.pop())
    }

    /// Runs, newest first.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        // Only the conditions given, so SQLite can walk the index that fits (`runs_by_job`
        // for a job's runs, newest first): `(?1 IS NULL OR r.job = ?1)` would scan every run.
        let mut conditions: Vec<&str> = Vec::new();
        let mut values: Vec<super::db::Owned> = Vec::new();
        let mut add = |condition: &'static str, value: Option<super::db::Owned>| {
            if let Some(value) = value {
                conditions.push(condition);
                values.push(value);
            }
        };
        add("r.job = ?", filter.job.clone().map(Into::into));
        let among = self.conn.sql(
            "r.job IN (SELECT value FROM json_each(?))",
            "r.job IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))",
        );
        add(
            among,
            filter
                .jobs
                .as_ref()
                .map(|jobs| serde_json::to_string(jobs).expect("names serialise").into()),
        );
        add(
            "r.state = ?",
            filter.state.map(|s| s.as_str().to_string().into()),
        );
        add(
            "r.trigger = ?",
            filter.trigger.map(|t| t.as_str().to_string().into()),
        );
        add("r.id < ?", filter.before.map(Into::into));
        add(
            "coalesce(r.scheduled_at, r.created_at) >= ?",
            filter.since.map(|t| super::stamp(t).into()),
        );
        let limit = filter.limit.map_or(-1, |l| l as i64);
        values.push(limit.into());
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r LEFT JOIN revisions v ON v.id = r.revision_id
             {}{} ORDER BY r.id DESC LIMIT ?",
            if conditions.is_empty() { "" } else { "WHERE " },
            conditions.join(" AND ")
        );
        let mut stmt = self.conn.prepare_cached(&sql).for_ledger(self)?;
        stmt.query_map(
            &values
                .iter()
                .map(|v| v as &dyn super::db::Param)
                .collect::<Vec<_>>(),
            run_from_row,
        )
        .and_then(Iterator::collect)
        .for_ledger(self)
    }

    /// Runs in state `running`: at start, the daemon looks for those whose supervisor died.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn running_runs(&self) -> Result<Vec<RunRow>> {
        self.query_runs("r.state = 'running'", params![], "r.id")
    }

    /// Running runs of `epoch` whose cancellation was requested and not yet acted on.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn cancel_requests(&self, epoch: i64) -> Result<Vec<RunRow>> {
        self.query_runs(
            "r.state = 'running' AND r.cancel_requested IS NOT NULL AND r.epoch = ?1",
            params![epoch],
            "r.id",
        )
    }

    /// How many runs are in `state` (from the `(state, id)` index).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn count_runs_in(&self, state: RunState) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM runs WHERE state = ?1",
                params![state.as_str()],
                |r| r.get(0),
            )
            .for_ledger(self)
    }

    /// How many jobs are active.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn count_active_jobs(&self) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM jobs WHERE active = 1",
                params![],
                |r| r.get(0),
            )
            .for_ledger(self)
    }

    /// Each job's newest successful end, in seconds since 1970 (read once, at start; the
    /// executor keeps the metric up to date after that).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn last_successes(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT job, max(finished_at) FROM runs WHERE state = 'succeeded' GROUP BY job",
            )
            .for_ledger(self)?;
        let rows = stmt
            .query_map(params![], |r| {
                let job: String = r.get(0)?;
                let at = instant_opt(r, 1, &|| format!("the runs of job {job}"))?;
                Ok((job, at))
            })
            .for_ledger(self)?;
        let mut out = Vec::new();
        for row in rows {
            if let (job, Some(at)) = row.for_ledger(self)? {
                out.push((job, at.as_second()));
            }
        }
        Ok(out)
    }

    /// Runs by job and state, for one job or all.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn run_counts(
        &self,
        job: Option<&str>,
    ) -> Result<std::collections::HashMap<String, std::collections::BTreeMap<String, i64>>> {
        // Two statements, so one job's count uses the (job, slot) index.
        let sql = match job {
            Some(_) => "SELECT job, state, count(*) FROM runs WHERE job = ?1 GROUP BY job, state",
            None => {
                "SELECT job, state, count(*) FROM runs WHERE CAST(?1 AS TEXT) IS NULL GROUP BY job, state"
            }
        };
        let mut stmt = self.conn.prepare_cached(sql).for_ledger(self)?;
        let mut out: std::collections::HashMap<String, std::collections::BTreeMap<String, i64>> =
            std::collections::HashMap::new();
        let rows = stmt
            .query_map(params![job], |r| {
                Ok((r.get::<String>(0)?, r.get(1)?, r.get(2)?))
            })
            .for_ledger(self)?;
        for row in rows {
            let (job, state, n) = row.for_ledger(self)?;
            out.entry(job).or_default().insert(state, n);
        }
        Ok(out)
    }

    pub(super) fn query_runs(
        &self,
        filter: &str,
        params: &[&dyn super::db::Param],
        order: &str,
    ) -> Result<Vec<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r LEFT JOIN revisions v ON v.id = r.revision_id
             WHERE {filter} ORDER BY {order}"
        );
        let mut stmt = self.conn.prepare_cached(&sql).for_ledger(self)?;
        stmt.query_map(params, run_from_row)
            .and_then(Iterator::collect)
            .for_ledger(self)
    }

    /// The newest run event's id (0 when there is none): where a stream of changes starts.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn last_event_id(&self) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT coalesce(max(id), 0) FROM run_events",
                params![],
                |r| r.get(0),
            )
            .for_ledger(self)
    }

    /// The runs that changed after event `after` (created, started, ended, cancelled, ...):
    /// each run once, as it is now, with the id of its latest event among the first `limit`
    /// events read, in the order of those ids; and the last event id read (where the next
    /// read starts, past events of runs that are gone). `None` when there was nothing.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn run_changes(&self, after: i64, limit: usize) -> Result<RunChanges> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, run_id FROM run_events WHERE id > ?1 ORDER BY id LIMIT ?2")
            .for_ledger(self)?;
        let events: Vec<(i64, i64)> = stmt
            .query_map(params![after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .for_ledger(self)?;
        let last = events.last().map(|e| e.0);
        // Each run at its latest event.
        let mut latest: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        for &(event, run) in &events {
            latest.insert(run, event);
        }
        let mut changed: Vec<(i64, i64)> = latest.into_iter().map(|(run, e)| (e, run)).collect();
        changed.sort_unstable();
        let mut out = Vec::with_capacity(changed.len());
        for (event, run) in changed {
            if let Some(row) = self.run(run)? {
                out.push((event, row));
            }
        }
        Ok(RunChanges { runs: out, last })
    }

    /// A run's events, oldest first.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn run_events(&self, run_id: i64) -> Result<Vec<RunEvent>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, run_id, at, kind, message FROM run_events WHERE run_id = ?1 ORDER BY id",
            )
            .for_ledger(self)?;
        stmt.query_map(params![run_id], |r| {
            let id: i64 = r.get(0)?;
            Ok(RunEvent {
                id,
                run_id: r.get(1)?,
                at: instant(r, 2, &|| format!("event {id} of run {run_id}"))?,
                kind: r.get(3)?,
                message: r.get(4)?,
            })
        })
        .and_then(Iterator::collect)
        .for_ledger(self)
    }

    /// The jobs that have a pending or running run.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn active_jobs(&self) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                // A backfill's waiting runs do not make the job busy: its slots keep firing.
                "SELECT DISTINCT job FROM runs
                 WHERE state IN ('pending', 'running') OR (state = 'blocked' AND backfill_id IS NULL)",
            )
            .for_ledger(self)?;
        stmt.query_map(params![], |r| r.get(0))
            .and_then(Iterator::collect)
            .for_ledger(self)
    }

    /// Runs that are pending or running.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn active_runs(&self) -> Result<Vec<RunRow>> {
        self.query_runs(
            "r.state IN ('blocked', 'pending', 'running')",
            params![],
            "r.id",
        )
    }

    /// The earliest instant a pending run this connection's node may run (see
    /// [`Ledger::set_node`]) may start, if there is one: a run waiting for another node's
    /// labels is not this node's to wait for.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn next_pending_at(&self) -> Result<Option<Option<Timestamp>>> {
        let labels = self.node.as_ref().map_or("[]", |n| n.labels.as_str());
        self.conn
            .query_row(
                self.conn.sql(
                    concat!(
                        "SELECT not_before, id FROM runs p WHERE state = 'pending' AND ",
                        placeable!(sqlite, "p", "?1"),
                        " ORDER BY coalesce(not_before, '') LIMIT 1"
                    ),
                    concat!(
                        "SELECT not_before, id FROM runs p WHERE state = 'pending' AND ",
                        placeable!(pg, "p", "?1"),
                        " ORDER BY coalesce(not_before, '') LIMIT 1"
                    ),
                ),
                params![labels],
                |r| {
                    let id: i64 = r.get(1)?;
                    instant_opt(r, 0, &|| format!("run {id}"))
                },
            )
            .optional()
            .for_ledger(self)
    }

    /// A job's current failure streak: its final runs that failed or timed out since its last
    /// success.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn failure_streak(&self, job: &str) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT failure_streak FROM jobs WHERE name = ?1",
                params![job],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .for_ledger(self)
    }
}
