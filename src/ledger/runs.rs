//! Runs, their events and output, pauses, the daemon's lease and its status: the ledger's side
//! of `jobctl serve`.
//!
//! Every state change of a run is one short transaction. The daemon's connection commits with
//! `synchronous=FULL` (see [`Ledger::set_durable`]), so a state it acts on survives a power
//! cut. Writers are fenced by the lease's epoch: a run started under one epoch is only
//! finished by the daemon holding that epoch, so a daemon that lost the lease cannot write over
//! its successor.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::{Ledger, LedgerError, Result, deps, stamp};
use crate::run::{RunState, Trigger};
use crate::slots::{Outcome, SlotRow};

/// The lease every daemon takes on its ledger.
const LEASE: &str = "daemon";

/// A run as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRow {
    pub id: i64,
    pub job: String,
    /// The job's revision number the run executes.
    pub revision: Option<i64>,
    #[serde(skip)]
    pub revision_id: Option<i64>,
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
    #[serde(skip)]
    pub epoch: Option<i64>,
    #[serde(skip)]
    pub supervisor: Option<(i64, i64)>,
    #[serde(skip)]
    pub pid_start: Option<i64>,
}

impl RunRow {
    pub fn state(&self) -> Option<RunState> {
        RunState::parse(&self.state).ok()
    }
}

/// A run to create outside the schedule: `jobctl run`, `jobctl trigger`, a retry.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub job: String,
    pub revision_id: i64,
    pub trigger: Trigger,
    pub scheduled_at: Timestamp,
    pub not_before: Option<Timestamp>,
    pub params: Option<serde_json::Value>,
    pub attempt: i64,
    pub first_run_id: Option<i64>,
    /// `Some((pid, start))` creates the run already running, supervised by that process (a
    /// foreground `jobctl run`), so no daemon claims it.
    pub running_under: Option<(i64, i64)>,
    /// Who asked for it (`alice (api)`, `user@host`), recorded in its `created` event.
    pub by: Option<String>,
}

impl NewRun {
    /// A first attempt due now: what a trigger (manual or webhook) queues.
    pub fn now(
        job: &str,
        revision_id: i64,
        trigger: Trigger,
        params: Option<serde_json::Value>,
        now: Timestamp,
    ) -> NewRun {
        NewRun {
            job: job.to_string(),
            revision_id,
            trigger,
            scheduled_at: now,
            not_before: None,
            params,
            attempt: 1,
            first_run_id: None,
            running_under: None,
            by: None,
        }
    }

    /// The same run, recorded as asked for by `actor`.
    #[must_use]
    pub fn by(self, actor: impl Into<String>) -> NewRun {
        NewRun {
            by: Some(actor.into()),
            ..self
        }
    }
}

/// The slots one job's decision writes.
#[derive(Clone, Debug)]
pub struct JobSlots {
    pub job: String,
    pub revision_id: i64,
    /// Each row with the instant a fired run may start (its slot plus jitter).
    pub rows: Vec<(SlotRow, Timestamp)>,
    pub cursor: Timestamp,
}

/// What a run records when it ends.
#[derive(Clone, Debug, Default)]
pub struct Finish {
    pub state: Option<RunState>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub cpu_user_ms: Option<i64>,
    pub cpu_sys_ms: Option<i64>,
    pub max_rss_kb: Option<i64>,
}

/// A run's end, as [`Ledger::finish_runs`] records it.
#[derive(Clone, Debug)]
pub struct RunEnd {
    pub run_id: i64,
    /// The supervising daemon's epoch, which fences the write; `None` outside the daemon.
    pub epoch: Option<i64>,
    pub finish: Finish,
    /// The next attempt, when the run is to be retried.
    pub retry: Option<NewRun>,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunEvent {
    pub id: i64,
    pub run_id: i64,
    pub at: String,
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputLine {
    pub id: i64,
    pub at: String,
    pub stream: String,
    pub line: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseRow {
    pub holder: String,
    pub pid: Option<i64>,
    #[serde(skip)]
    pub pid_start: Option<i64>,
    pub epoch: i64,
    pub acquired_at: String,
    pub released_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DaemonEvent {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub message: String,
}

/// Which runs a listing shows.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub job: Option<String>,
    pub state: Option<RunState>,
    pub trigger: Option<Trigger>,
    /// Runs scheduled (or created) at or after this RFC 3339 instant.
    pub since: Option<String>,
    /// Runs with an id below this one: the cursor of the next page.
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

/// Which pending runs [`Ledger::finish_and_claim`] claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The oldest that may start now: the executor's claim.
    Oldest,
    /// Those the ends written in the same transaction released (dependency hand-offs).
    Released,
    /// Those the ends released, then the oldest that may start now: a run's end hands its
    /// place to the next pending run in its own transaction, so a burst of runs costs one
    /// disk sync per turn of the concurrency limit, not two (issue 14).
    ReleasedFirst,
}

/// What a cancel request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// A pending run, cancelled on the spot.
    Cancelled,
    /// A running run: its supervisor terminates it.
    Requested,
}

/// Retention for one job: at most `keep` terminal runs, none finished before `before`.
#[derive(Clone, Debug)]
pub struct Retention {
    pub job: String,
    pub keep: u32,
    pub before: Timestamp,
}

const RUN_COLUMNS: &str =
    "r.id, r.job, v.number, r.revision_id, v.git_commit, r.trigger, r.attempt,
    r.first_run_id, r.scheduled_at, r.slot, r.slot_first, r.slot_count, r.not_before, r.state,
    r.reason, r.created_at, r.started_at, r.finished_at, r.exit_code, r.signal, r.error, r.pid,
    r.cpu_user_ms, r.cpu_sys_ms, r.max_rss_kb, r.params, r.output_bytes, r.output_truncated,
    r.cancel_requested, r.epoch, r.supervisor_pid, r.supervisor_start, r.pid_start, r.released_by";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let started: Option<String> = row.get(16)?;
    let finished: Option<String> = row.get(17)?;
    let duration_ms = match (&started, &finished) {
        (Some(s), Some(f)) => match (s.parse::<Timestamp>(), f.parse::<Timestamp>()) {
            (Ok(s), Ok(f)) => Some(f.duration_since(s).as_millis() as i64),
            _ => None,
        },
        _ => None,
    };
    let params: Option<String> = row.get(25)?;
    let supervisor_pid: Option<i64> = row.get(30)?;
    let supervisor_start: Option<i64> = row.get(31)?;
    Ok(RunRow {
        id: row.get(0)?,
        job: row.get(1)?,
        revision: row.get(2)?,
        revision_id: row.get(3)?,
        git_commit: row.get(4)?,
        trigger: row.get(5)?,
        attempt: row.get(6)?,
        first_run_id: row.get(7)?,
        scheduled_at: row.get(8)?,
        slot: row.get(9)?,
        slot_first: row.get(10)?,
        slot_count: row.get(11)?,
        not_before: row.get(12)?,
        state: row.get(13)?,
        reason: row.get(14)?,
        created_at: row.get(15)?,
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
        cancel_requested: row.get(28)?,
        epoch: row.get(29)?,
        supervisor: supervisor_pid.zip(supervisor_start),
        pid_start: row.get(32)?,
        released_by: row
            .get::<_, Option<String>>(33)?
            .and_then(|p| serde_json::from_str(&p).ok()),
    })
}

pub(super) fn add_event(
    conn: &rusqlite::Connection,
    run_id: i64,
    at: &str,
    kind: &str,
    message: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO run_events (run_id, at, kind, message) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![run_id, at, kind, message])?;
    Ok(())
}

fn check_epoch(conn: &rusqlite::Connection, path: &std::path::Path, epoch: i64) -> Result<()> {
    let current: Option<i64> = conn
        .query_row(
            "SELECT epoch FROM leases WHERE name = ?1 AND released_at IS NULL",
            [LEASE],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| LedgerError::from_sqlite(path, e))?;
    if current == Some(epoch) {
        Ok(())
    } else {
        Err(LedgerError::LeaseLost {
            path: path.to_path_buf(),
            epoch,
        })
    }
}

impl Ledger {
    /// Commits from now on reach the disk before returning (`synchronous=FULL`): what the daemon
    /// uses, because it acts on each state it records (spawns a process, fires a slot).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn set_durable(&self) -> Result<()> {
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        self.durable.set(true);
        Ok(())
    }

    /// Runs `f` with `synchronous=NORMAL` on a durable connection: for writes the daemon does
    /// not act on (a run's pid, output lines, events). They reach the disk with the next
    /// state change's sync, and a power cut that loses them also kills the process they
    /// describe.
    fn relaxed<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.relaxed_result(|conn| f(conn).map_err(|e| self.err(e)))
    }

    /// As [`Ledger::relaxed`], for writes that fail with a [`LedgerError`] of their own.
    pub(super) fn relaxed_result<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let durable = self.durable.get();
        if durable {
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| self.err(e))?;
        }
        let result = f(&self.conn);
        if durable {
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(|e| self.err(e))?;
        }
        result
    }

    /// A number that changes whenever another connection commits: how the daemon tells a
    /// `jobctl trigger` from its own writes.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |row| row.get(0))
            .map_err(|e| self.err(e))
    }

    /// Takes the daemon lease, with the next epoch. `alive` says whether a recorded holder is
    /// still running; a live holder keeps the lease and this returns [`LedgerError::LeaseHeld`].
    ///
    /// # Errors
    ///
    /// [`LedgerError::LeaseHeld`] naming the holder, or a SQLite failure.
    pub fn acquire_lease(
        &mut self,
        holder: &str,
        process: (i64, i64),
        now: Timestamp,
        alive: impl Fn(&LeaseRow) -> bool,
    ) -> Result<i64> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let current = lease_row(&tx).map_err(e)?;
        if let Some(lease) = &current
            && lease.released_at.is_none()
            && alive(lease)
        {
            return Err(LedgerError::LeaseHeld {
                path: path.clone(),
                holder: lease.holder.clone(),
                pid: lease.pid.unwrap_or(0),
                since: lease.acquired_at.clone(),
            });
        }
        let epoch = current.map_or(1, |l| l.epoch + 1);
        tx.execute(
            "INSERT INTO leases (name, holder, pid, pid_start, epoch, acquired_at, released_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid,
                 pid_start = excluded.pid_start, epoch = excluded.epoch,
                 acquired_at = excluded.acquired_at, released_at = NULL",
            params![LEASE, holder, process.0, process.1, epoch, stamp(now)],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(epoch)
    }

    /// Gives the lease back (at a clean shutdown), if this epoch still holds it.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn release_lease(&self, epoch: i64, now: Timestamp) -> Result<()> {
        self.conn
            .execute(
                "UPDATE leases SET released_at = ?3 WHERE name = ?1 AND epoch = ?2",
                params![LEASE, epoch, stamp(now)],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The daemon lease as last recorded.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn lease(&self) -> Result<Option<LeaseRow>> {
        lease_row(&self.conn).map_err(|e| self.err(e))
    }

    /// Writes the slot rows of several jobs in one transaction and moves their cursors: the
    /// scheduler's only write. A slot already in the ledger is left alone (never fired twice).
    /// Returns the runs to start, as `(job, run id)`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::LeaseLost`] when another daemon holds the lease now, or a SQLite failure.
    pub fn record_slots(
        &mut self,
        epoch: i64,
        batch: &[JobSlots],
        now: Timestamp,
    ) -> Result<Vec<(String, i64)>> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        check_epoch(&tx, &path, epoch)?;
        let at = stamp(now);
        let mut fired = Vec::new();
        for job in batch {
            for (row, not_before) in &job.rows {
                let (state, trigger, reason) = match &row.outcome {
                    Outcome::Fire { trigger, .. } => (RunState::Pending, *trigger, None),
                    Outcome::Skipped { reason } => {
                        (RunState::Skipped, Trigger::Schedule, Some(reason.as_str()))
                    }
                    Outcome::Missed { reason } => {
                        (RunState::Skipped, Trigger::Missed, Some(reason.as_str()))
                    }
                };
                let finished = state.is_terminal().then_some(at.as_str());
                let id: Option<i64> = tx
                    .prepare_cached(
                        "INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at, finished_at,
                                           slot, slot_first, slot_count, not_before, reason)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?4, ?8, ?9, ?10, ?11)
                         ON CONFLICT (job, slot) WHERE slot IS NOT NULL DO NOTHING
                         RETURNING id",
                    )
                    .map_err(e)?
                    .query_row(
                        params![
                            job.job,
                            job.revision_id,
                            trigger.as_str(),
                            stamp(row.slot),
                            state.as_str(),
                            at,
                            finished,
                            stamp(row.first),
                            row.count as i64,
                            stamp(*not_before),
                            reason,
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(e)?;
                let Some(id) = id else { continue };
                let message = match (&row.outcome, row.count) {
                    (Outcome::Fire { .. }, 1) => format!("fired for the slot {}", stamp(row.slot)),
                    (Outcome::Fire { .. }, n) => format!(
                        "fired once for {n} slots from {} to {}",
                        stamp(row.first),
                        stamp(row.slot)
                    ),
                    (Outcome::Skipped { reason } | Outcome::Missed { reason }, 1) => {
                        format!("skipped the slot {}: {reason}", stamp(row.slot))
                    }
                    (Outcome::Skipped { reason } | Outcome::Missed { reason }, n) => format!(
                        "skipped {n} slots from {} to {}: {reason}",
                        stamp(row.first),
                        stamp(row.slot)
                    ),
                };
                let kind = if state == RunState::Pending {
                    "fired"
                } else {
                    "skipped"
                };
                add_event(&tx, id, &at, kind, &message).map_err(e)?;
                if let Outcome::Fire { replace: true, .. } = row.outcome {
                    replace_active(&tx, &job.job, id, &at).map_err(e)?;
                }
                if state == RunState::Pending {
                    deps::count_fire(&tx, &job.job, &at).map_err(e)?;
                    if !deps::block_if_gated(&tx, id, job.revision_id, now).map_err(e)? {
                        fired.push((job.job.clone(), id));
                    }
                }
            }
            tx.prepare_cached("UPDATE jobs SET slot_cursor = ?2 WHERE name = ?1")
                .map_err(e)?
                .execute(params![job.job, stamp(job.cursor)])
                .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(fired)
    }

    /// Creates a run outside the schedule; returns its id.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn create_run(&mut self, run: &NewRun, now: Timestamp) -> Result<i64> {
        Ok(self.create_runs(std::slice::from_ref(run), now)?[0])
    }

    /// Creates runs in one transaction (one disk sync for all); returns their ids in order.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (none is created).
    pub fn create_runs(&mut self, runs: &[NewRun], now: Timestamp) -> Result<Vec<i64>> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let mut ids = Vec::with_capacity(runs.len());
        for run in runs {
            let id = insert_run(&tx, run, now).map_err(e)?;
            if run.running_under.is_none() && run.trigger != Trigger::Retry {
                deps::block_if_gated(&tx, id, run.revision_id, now).map_err(e)?;
            }
            ids.push(id);
        }
        tx.commit().map_err(e)?;
        Ok(ids)
    }

    /// Claims up to `max` of the oldest pending runs that may start at `now`, oldest first: one
    /// `UPDATE … RETURNING` (one commit for the lot), so several executors could share a
    /// ledger without starting a run twice.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn claim(
        &mut self,
        epoch: i64,
        supervisor: (i64, i64),
        now: Timestamp,
        max: usize,
    ) -> Result<Vec<RunRow>> {
        Ok(self
            .finish_and_claim(&[], Claim::Oldest, epoch, supervisor, now, max)?
            .1)
    }

    /// [`Ledger::finish_runs`] and a claim in one transaction, so both share one disk sync:
    /// the executor writes the ends queued by finished runs with its claim of the oldest
    /// pending runs ([`Claim::Oldest`]); a run's end claims the runs it released
    /// ([`Claim::Released`], a dependency hand-off). At most `max` runs are claimed.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (nothing is written).
    pub fn finish_and_claim(
        &mut self,
        ends: &[RunEnd],
        claim: Claim,
        epoch: i64,
        supervisor: (i64, i64),
        now: Timestamp,
        max: usize,
    ) -> Result<(Vec<Option<i64>>, Vec<RunRow>)> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let at = stamp(now);
        let graph = self.graph.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let (retries, released) = finish_all(&tx, graph.as_deref(), ends, now).map_err(e)?;
        let candidates = match claim {
            Claim::Oldest => {
                "SELECT id FROM runs WHERE state = 'pending'
                                AND (not_before IS NULL OR not_before <= ?1)
                              ORDER BY id LIMIT ?5"
            }
            Claim::Released => "SELECT value FROM json_each(?6) LIMIT ?5",
            Claim::ReleasedFirst => {
                "SELECT id FROM (SELECT value AS id, 0 AS rank FROM json_each(?6)
                                 UNION ALL
                                 SELECT id, 1 FROM runs WHERE state = 'pending'
                                    AND (not_before IS NULL OR not_before <= ?1))
                              GROUP BY id ORDER BY min(rank), id LIMIT ?5"
            }
        };
        let mut ids: Vec<i64> = tx
            .prepare_cached(&format!(
                "UPDATE runs SET state = 'running', started_at = ?1, epoch = ?2,
                        supervisor_pid = ?3, supervisor_start = ?4
                 WHERE id IN ({candidates}) AND state = 'pending'
                   AND (not_before IS NULL OR not_before <= ?1)
                 RETURNING id"
            ))
            .and_then(|mut s| {
                let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
                    Box::new(at.clone()),
                    Box::new(epoch),
                    Box::new(supervisor.0),
                    Box::new(supervisor.1),
                    Box::new(max as i64),
                ];
                if matches!(claim, Claim::Released | Claim::ReleasedFirst) {
                    let ids = serde_json::to_string(&released).expect("ids serialise");
                    values.push(Box::new(ids));
                }
                s.query_map(rusqlite::params_from_iter(values), |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })
            .map_err(e)?;
        tx.commit().map_err(e)?;
        ids.sort_unstable();
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            runs.extend(self.run(id)?);
        }
        Ok((retries, runs))
    }

    /// The earliest instant a pending run may start, if there is a pending run.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn next_pending_at(&self) -> Result<Option<Option<Timestamp>>> {
        let row: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT not_before FROM runs WHERE state = 'pending' ORDER BY coalesce(not_before, '') LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.map(|nb| nb.and_then(|t| t.parse().ok())))
    }

    /// Records the process a run started.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn set_process(
        &self,
        run_id: i64,
        pid: i64,
        pid_start: i64,
        message: &str,
        now: Timestamp,
    ) -> Result<()> {
        let at = stamp(now);
        self.relaxed(|conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "UPDATE runs SET pid = ?2, pid_start = ?3 WHERE id = ?1",
                params![run_id, pid, pid_start],
            )?;
            add_event(&tx, run_id, &at, "started", message)?;
            tx.commit()
        })
    }

    /// Records an event of a run.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn add_event(&self, run_id: i64, now: Timestamp, kind: &str, message: &str) -> Result<()> {
        self.relaxed(|conn| add_event(conn, run_id, &stamp(now), kind, message))
    }

    /// Ends runs and, for those to be retried, creates their next attempts, all in one
    /// transaction (one disk sync however many runs ended: group commit). Each end's `epoch`
    /// fences its write: `None` for a run supervised outside the daemon. Returns, per end, the
    /// retry's id or `None`; a run already ended (or fenced off) is left alone.
    ///
    /// # Errors
    ///
    /// On a SQLite failure, for the whole batch (nothing is written).
    pub fn finish_runs(&mut self, ends: &[RunEnd]) -> Result<Vec<Option<i64>>> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let graph = self.graph.clone();
        let now = ends.iter().map(|end| end.at).max();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let retries = match now {
            Some(now) => finish_all(&tx, graph.as_deref(), ends, now).map_err(e)?.0,
            None => Vec::new(),
        };
        tx.commit().map_err(e)?;
        Ok(retries)
    }

    /// Whether this connection resolves dependencies as runs end (see `set_graph`).
    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// Sets the dependency graph that this connection's run ends resolve (the daemon's; see
    /// `deps`). Without one, ends release nothing and the daemon's next sweep does it.
    pub fn set_graph(&mut self, graph: Option<std::sync::Arc<crate::graph::Graph>>) {
        self.graph = graph;
    }

    /// Fires the fan-ins and re-decides the blocked runs that the ledger's runs allow, in one
    /// transaction: at the daemon's start, after another process wrote runs, when a blocked
    /// run's deadline passes.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (nothing is written).
    pub fn resolve_dependencies(&mut self, now: Timestamp) -> Result<deps::Resolved> {
        let Some(graph) = self.graph.clone() else {
            return Ok(deps::Resolved::default());
        };
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let resolved = deps::sweep(&tx, &graph, now).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(resolved)
    }

    /// When the earliest blocked run's starting deadline passes.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn next_blocked_deadline(&self) -> Result<Option<Timestamp>> {
        match &self.graph {
            Some(graph) => deps::next_deadline(&self.conn, graph).map_err(|e| self.err(e)),
            None => Ok(None),
        }
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
                [job],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// Runs in state `running`: at start, the daemon looks for those whose supervisor died.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn running_runs(&self) -> Result<Vec<RunRow>> {
        self.query_runs("r.state = 'running'", [], "r.id")
    }

    /// Running runs of `epoch` whose cancellation was requested and not yet acted on.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn cancel_requests(&self, epoch: i64) -> Result<Vec<RunRow>> {
        self.query_runs(
            "r.state = 'running' AND r.cancel_requested IS NOT NULL AND r.epoch = ?1",
            [epoch],
            "r.id",
        )
    }

    /// Cancels a pending run on the spot, or asks the supervisor of a running one to stop it.
    ///
    /// # Errors
    ///
    /// [`LedgerError::NotFound`] or [`LedgerError::Conflict`] (the run has already ended), or
    /// a SQLite failure.
    pub fn request_cancel(
        &mut self,
        run_id: i64,
        by: &str,
        now: Timestamp,
    ) -> Result<CancelOutcome> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let state: Option<String> = tx
            .query_row("SELECT state FROM runs WHERE id = ?1", [run_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(e)?;
        let at = stamp(now);
        let outcome = match state.as_deref() {
            None => {
                return Err(LedgerError::NotFound {
                    path,
                    what: format!("run {run_id}"),
                });
            }
            Some("pending" | "blocked") => {
                tx.execute(
                    "UPDATE runs SET state = 'cancelled', finished_at = ?2, error = ?3 WHERE id = ?1",
                    params![run_id, at, format!("cancelled by {by} before it started")],
                )
                .map_err(e)?;
                add_event(&tx, run_id, &at, "cancelled", &format!("cancelled by {by}"))
                    .map_err(e)?;
                CancelOutcome::Cancelled
            }
            Some("running") => {
                tx.execute(
                    "UPDATE runs SET cancel_requested = coalesce(cancel_requested, ?2) WHERE id = ?1",
                    params![run_id, at],
                )
                .map_err(e)?;
                add_event(
                    &tx,
                    run_id,
                    &at,
                    "cancel_requested",
                    &format!("cancellation requested by {by}"),
                )
                .map_err(e)?;
                CancelOutcome::Requested
            }
            Some(other) => {
                return Err(LedgerError::Conflict {
                    path,
                    detail: format!(
                        "run {run_id} has already ended ({other}); there is nothing to cancel"
                    ),
                });
            }
        };
        tx.commit().map_err(e)?;
        Ok(outcome)
    }

    /// One run by id.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn run(&self, id: i64) -> Result<Option<RunRow>> {
        self.query_runs("r.id = ?1", [id], "r.id")
            .map(|mut v| v.pop())
    }

    /// Runs, newest first.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let limit = filter.limit.map_or(-1, |l| l as i64);
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r LEFT JOIN revisions v ON v.id = r.revision_id
             WHERE (?1 IS NULL OR r.job = ?1) AND (?2 IS NULL OR r.state = ?2)
               AND (?3 IS NULL OR r.trigger = ?3) AND (?5 IS NULL OR r.id < ?5)
               AND (?6 IS NULL OR coalesce(r.scheduled_at, r.created_at) >= ?6)
             ORDER BY r.id DESC LIMIT ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        stmt.query_map(
            params![
                filter.job,
                filter.state.map(RunState::as_str),
                filter.trigger.map(Trigger::as_str),
                limit,
                filter.before,
                filter.since,
            ],
            run_from_row,
        )
        .and_then(Iterator::collect)
        .map_err(|e| self.err(e))
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
                [state.as_str()],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// How many jobs are active.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn count_active_jobs(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT count(*) FROM jobs WHERE active = 1", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
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
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (job, at) = row.map_err(|e| self.err(e))?;
            if let Some(at) = at.and_then(|t| t.parse::<Timestamp>().ok()) {
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
            Some(_) => "SELECT job, state, count(*) FROM runs WHERE job = ?1 GROUP BY state",
            None => "SELECT job, state, count(*) FROM runs WHERE ?1 IS NULL GROUP BY job, state",
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut out: std::collections::HashMap<String, std::collections::BTreeMap<String, i64>> =
            std::collections::HashMap::new();
        let rows = stmt
            .query_map([job], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (job, state, n) = row.map_err(|e| self.err(e))?;
            out.entry(job).or_default().insert(state, n);
        }
        Ok(out)
    }

    fn query_runs<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
        order: &str,
    ) -> Result<Vec<RunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r LEFT JOIN revisions v ON v.id = r.revision_id
             WHERE {filter} ORDER BY {order}"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        stmt.query_map(params, run_from_row)
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))
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
            .map_err(|e| self.err(e))?;
        stmt.query_map([run_id], |r| {
            Ok(RunEvent {
                id: r.get(0)?,
                run_id: r.get(1)?,
                at: r.get(2)?,
                kind: r.get(3)?,
                message: r.get(4)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.err(e))
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
                "SELECT DISTINCT job FROM runs WHERE state IN ('blocked', 'pending', 'running')",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))
    }

    /// Runs that are pending or running.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn active_runs(&self) -> Result<Vec<RunRow>> {
        self.query_runs("r.state IN ('blocked', 'pending', 'running')", [], "r.id")
    }

    /// Pauses a job (an operator's override that outlives applies).
    ///
    /// # Errors
    ///
    /// [`LedgerError::NotFound`] for a job the ledger does not have, or a SQLite failure.
    pub fn pause(&self, job: &str, by: &str, reason: Option<&str>, now: Timestamp) -> Result<bool> {
        self.require_job(job)?;
        let n = self
            .conn
            .execute(
                "INSERT INTO pauses (job, paused_by, paused_at, reason) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (job) DO NOTHING",
                params![job, by, stamp(now), reason],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Resumes a paused job; `false` when it was not paused.
    ///
    /// # Errors
    ///
    /// [`LedgerError::NotFound`] for a job the ledger does not have, or a SQLite failure.
    pub fn resume(&self, job: &str) -> Result<bool> {
        self.require_job(job)?;
        let n = self
            .conn
            .execute("DELETE FROM pauses WHERE job = ?1", [job])
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn require_job(&self, job: &str) -> Result<()> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM jobs WHERE name = ?1 AND active = 1",
                [job],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match found {
            Some(_) => Ok(()),
            None => Err(LedgerError::NotFound {
                path: self.path.clone(),
                what: format!("job `{job}`"),
            }),
        }
    }

    /// Records something the daemon did or saw (a reconcile, an invalid file).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn daemon_event(&self, now: Timestamp, kind: &str, message: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO daemon_events (at, kind, message) VALUES (?1, ?2, ?3)",
                params![stamp(now), kind, message],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The latest daemon events, newest first.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn daemon_events(&self, limit: usize) -> Result<Vec<DaemonEvent>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at, kind, message FROM daemon_events ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([limit as i64], |r| {
            Ok(DaemonEvent {
                id: r.get(0)?,
                at: r.get(1)?,
                kind: r.get(2)?,
                message: r.get(3)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.err(e))
    }

    /// Sets a value of the daemon's status (e.g. the current errors in jobs.d).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn set_status(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO daemon_status (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn status(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM daemon_status WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Deletes up to `batch` terminal runs that retention no longer keeps, with their events
    /// and output, in one short transaction; returns how many. Call until it returns 0.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn prune(&mut self, rules: &[Retention], batch: usize) -> Result<usize> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let mut doomed: Vec<i64> = Vec::new();
        for rule in rules {
            if doomed.len() >= batch {
                break;
            }
            let room = (batch - doomed.len()) as i64;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id FROM runs WHERE job = ?1
                       AND state NOT IN ('blocked', 'pending', 'running')
                       AND (finished_at < ?2 OR id IN (
                            SELECT id FROM runs WHERE job = ?1 AND state NOT IN ('blocked', 'pending', 'running')
                            ORDER BY id DESC LIMIT -1 OFFSET ?3))
                     ORDER BY id LIMIT ?4",
                )
                .map_err(e)?;
            let ids = stmt
                .query_map(
                    params![rule.job, stamp(rule.before), rule.keep as i64, room],
                    |r| r.get::<_, i64>(0),
                )
                .and_then(Iterator::collect::<rusqlite::Result<Vec<i64>>>)
                .map_err(e)?;
            doomed.extend(ids);
        }
        for id in &doomed {
            for sql in [
                "DELETE FROM run_output_chunks WHERE run_id = ?1",
                "DELETE FROM run_events WHERE run_id = ?1",
                "DELETE FROM runs WHERE id = ?1",
            ] {
                tx.prepare_cached(sql)
                    .map_err(e)?
                    .execute([id])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        Ok(doomed.len())
    }

    /// Gives free pages back to the file system (the ledger uses incremental auto-vacuum), and
    /// turns that mode on for a ledger created before it (a one-time `VACUUM`).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn reclaim_space(&self) -> Result<()> {
        let mode: i64 = self
            .conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if mode != 2 {
            self.conn
                .pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .and_then(|()| self.conn.execute_batch("VACUUM"))
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute_batch("PRAGMA incremental_vacuum")
            .map_err(|e| self.err(e))
    }
}

fn lease_row(conn: &rusqlite::Connection) -> rusqlite::Result<Option<LeaseRow>> {
    conn.query_row(
        "SELECT holder, pid, pid_start, epoch, acquired_at, released_at FROM leases WHERE name = ?1",
        [LEASE],
        |r| {
            Ok(LeaseRow {
                holder: r.get(0)?,
                pid: r.get(1)?,
                pid_start: r.get(2)?,
                epoch: r.get(3)?,
                acquired_at: r.get(4)?,
                released_at: r.get(5)?,
            })
        },
    )
    .optional()
}

pub(super) fn insert_run(
    conn: &rusqlite::Connection,
    run: &NewRun,
    now: Timestamp,
) -> rusqlite::Result<i64> {
    let at = stamp(now);
    let (state, started, supervisor) = match run.running_under {
        Some(s) => (RunState::Running, Some(at.as_str()), Some(s)),
        None => (RunState::Pending, None, None),
    };
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at, started_at,
                               not_before, params, attempt, first_run_id, supervisor_pid, supervisor_start)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             RETURNING id",
        )?
        .query_row(
            params![
                run.job,
                run.revision_id,
                run.trigger.as_str(),
                stamp(run.scheduled_at),
                state.as_str(),
                at,
                started,
                run.not_before.map(stamp),
                run.params.as_ref().map(ToString::to_string),
                run.attempt,
                run.first_run_id,
                supervisor.map(|s| s.0),
                supervisor.map(|s| s.1),
            ],
            |r| r.get(0),
        )?;
    let message = match run.trigger {
        Trigger::Retry => format!(
            "attempt {} of run {}",
            run.attempt,
            run.first_run_id.unwrap_or_default()
        ),
        t => match &run.by {
            Some(by) => format!("created ({t}) by {by}"),
            None => format!("created ({t})"),
        },
    };
    add_event(conn, id, &at, "created", &message)?;
    Ok(id)
}

/// `concurrency: replace`: cancel the job's pending runs and ask its running ones to stop.
pub(super) fn replace_active(
    conn: &rusqlite::Connection,
    job: &str,
    new_id: i64,
    at: &str,
) -> rusqlite::Result<()> {
    let reason = format!("replaced by run {new_id} (concurrency: replace)");
    let ids: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, state FROM runs WHERE job = ?1 AND id <> ?2 AND state IN ('blocked', 'pending', 'running')",
        )?
        .query_map(params![job, new_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, state) in ids {
        if state != "running" {
            conn.execute(
                "UPDATE runs SET state = 'cancelled', finished_at = ?2, error = ?3 WHERE id = ?1",
                params![id, at, reason],
            )?;
            add_event(conn, id, at, "cancelled", &reason)?;
        } else {
            conn.execute(
                "UPDATE runs SET cancel_requested = coalesce(cancel_requested, ?2) WHERE id = ?1",
                params![id, at],
            )?;
            add_event(conn, id, at, "cancel_requested", &reason)?;
        }
    }
    Ok(())
}

impl Ledger {
    /// A revision's job name and definition (its normal YAML form).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn revision_definition(&self, revision_id: i64) -> Result<Option<(String, String)>> {
        self.conn
            .query_row(
                "SELECT job, definition FROM revisions WHERE id = ?1",
                [revision_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

impl Ledger {
    /// Tells a daemon watching this ledger that another process committed something it should
    /// act on (a queued run, a pause, a cancel request, an apply): writes `<ledger>.wake`, whose
    /// change the daemon watches. Written after the commit, so the daemon never looks too early.
    pub fn wake_daemon(&self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut path = self.path.clone().into_os_string();
        path.push(".wake");
        // Non-blocking: a FIFO left at this path (no reader) fails at once instead of
        // hanging the command; on a regular file the flag changes nothing.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .and_then(|mut f| f.write_all(jiff::Timestamp::now().to_string().as_bytes()));
    }
}

/// Writes `ends`, then what they release when a dependency graph is given.
fn finish_all(
    tx: &rusqlite::Connection,
    graph: Option<&crate::graph::Graph>,
    ends: &[RunEnd],
    now: Timestamp,
) -> rusqlite::Result<(Vec<Option<i64>>, Vec<i64>)> {
    let mut retries = Vec::with_capacity(ends.len());
    let mut ended = Vec::with_capacity(ends.len());
    for end in ends {
        let (retry, job) = finish_one(tx, end)?;
        retries.push(retry);
        if let Some(job) = job {
            ended.push((job, end.finish.state.unwrap_or(RunState::Failed)));
        }
    }
    let mut released = Vec::new();
    if let Some(graph) = graph
        && !ended.is_empty()
    {
        released = deps::after_ends(tx, graph, &ended, now)?.released;
    }
    Ok((retries, released))
}

/// Ends one run; returns its retry's id and, when the end was written, the run's job.
fn finish_one(
    tx: &rusqlite::Connection,
    end: &RunEnd,
) -> rusqlite::Result<(Option<i64>, Option<String>)> {
    let RunEnd {
        run_id,
        epoch,
        finish,
        retry,
        at: now,
    } = end;
    let at = stamp(*now);
    let state = finish.state.unwrap_or(RunState::Failed);
    let ended: Option<(String, Option<i64>)> = tx
        .prepare_cached(
            "UPDATE runs SET state = ?3, finished_at = ?4, exit_code = ?5, signal = ?6,
                    error = ?7, cpu_user_ms = ?8, cpu_sys_ms = ?9, max_rss_kb = ?10,
                    started_at = coalesce(started_at, ?4)
             WHERE id = ?1 AND state IN ('pending', 'running') AND epoch IS ?2
             RETURNING job, revision_id",
        )?
        .query_row(
            params![
                run_id,
                epoch,
                state.as_str(),
                at,
                finish.exit_code,
                finish.signal,
                finish.error,
                finish.cpu_user_ms,
                finish.cpu_sys_ms,
                finish.max_rss_kb,
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((job, revision_id)) = ended else {
        return Ok((None, None));
    };
    // The job's health: a success ends a failure streak (and a `repeat: {until: success}`
    // job); a final failure (no retry to come) lengthens it.
    match state {
        RunState::Succeeded => {
            tx.prepare_cached(
                "UPDATE jobs SET failure_streak = 0,
                    completed_at = CASE
                        WHEN completed_at IS NULL AND revision_id = ?3 AND
                             (SELECT json_extract(r.repeat, '$.until') FROM revisions r WHERE r.id = ?3) = 'success'
                        THEN ?2 ELSE completed_at END
                 WHERE name = ?1",
            )?
            .execute(params![job, at, revision_id])?;
        }
        RunState::Failed | RunState::TimedOut if retry.is_none() => {
            tx.prepare_cached(
                "UPDATE jobs SET failure_streak = failure_streak + 1 WHERE name = ?1",
            )?
            .execute([&job])?;
        }
        _ => {}
    }
    let message = match &finish.error {
        Some(error) => format!("{state}: {error}"),
        None => state.to_string(),
    };
    add_event(tx, *run_id, &at, "finished", &message)?;
    let Some(next) = retry else {
        return Ok((None, Some(job)));
    };
    let id = insert_run(tx, next, *now)?;
    let when = next.not_before.map(stamp).unwrap_or_else(|| at.clone());
    add_event(
        tx,
        *run_id,
        &at,
        "retry",
        &format!("attempt {} is run {id}, due at {when}", next.attempt),
    )?;
    Ok((Some(id), Some(job)))
}
