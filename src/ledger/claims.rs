//! Claims and ends: runs created outside the schedule, claimed by an executor, ended (with
//! their retries), and cancelled. Each operation is one IMMEDIATE transaction; an end also
//! writes what it releases when the caller gives the dependency graph.

use super::db::{Conn, Dialect, Optional, params};
use jiff::Timestamp;

use super::columns::parsed;
use super::runs::RunRow;
use super::write::{NewRun, add_event, insert_run};
use super::{Ledger, LedgerError, Result, deps, stamp};
use crate::graph::Graph;
use crate::rules;
use crate::run::{RunState, Trigger};

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
    /// What a request's answer said (`http`, `prompt`).
    pub reply: crate::spec::Reply,
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

/// What [`Ledger::finish_and_claim`] handed on: the runs it claimed, and whether a fan-in the
/// ends fired asked running runs to stop (`concurrency: replace`), so that the daemon reads
/// the cancel requests only then.
#[derive(Debug, Default)]
pub struct Handoff {
    pub claimed: Vec<RunRow>,
    pub stops_requested: bool,
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

/// A run's process, started: its pid and start time (which name it across pid reuse), and
/// the `started` event's message.
#[derive(Clone, Debug)]
pub struct ProcessStarted {
    pub run_id: i64,
    /// `None` for a request (`http`, `prompt`): no process.
    pub pid: Option<i64>,
    pub pid_start: Option<i64>,
    pub message: String,
    pub at: Timestamp,
}

/// What a cancel request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// A pending run, cancelled on the spot.
    Cancelled,
    /// A running run: its supervisor terminates it.
    Requested,
}

impl Ledger {
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
        self.with_tx(|tx| {
            let mut ids = Vec::with_capacity(runs.len());
            for run in runs {
                let id = insert_run(tx, run, now)?;
                if run.running_under.is_none() && run.trigger != Trigger::Retry {
                    deps::block_if_gated(tx, id, run.revision_id, now)?;
                }
                ids.push(id);
            }
            Ok(ids)
        })
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
            .finish_and_claim(
                &[],
                &Graph::default(),
                Claim::Oldest,
                epoch,
                supervisor,
                now,
                max,
            )?
            .1
            .claimed)
    }

    /// [`Ledger::finish_runs`] and a claim in one transaction, so both share one disk sync:
    /// `graph` is the dependency graph the ends release runs by, as for `finish_runs`;
    /// the executor writes the ends queued by finished runs with its claim of the oldest
    /// pending runs ([`Claim::Oldest`]); a run's end claims the runs it released
    /// ([`Claim::Released`], a dependency hand-off). At most `max` runs are claimed.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (nothing is written).
    #[allow(clippy::too_many_arguments)]
    pub fn finish_and_claim(
        &mut self,
        ends: &[RunEnd],
        graph: &Graph,
        claim: Claim,
        epoch: i64,
        supervisor: (i64, i64),
        now: Timestamp,
        max: usize,
    ) -> Result<(Vec<Option<i64>>, Handoff)> {
        let node = self.node.clone();
        let (retries, ids, replaced) = self.with_tx(|tx| {
            let (retries, resolved) = finish_all(tx, graph, ends, now)?;
            let taker = Taker {
                epoch,
                supervisor,
                max,
            };
            let ids = claim_in(tx, claim, &resolved.released, &taker, node.as_deref(), now)?;
            Ok((retries, ids, resolved.replaced))
        })?;
        let handoff = Handoff {
            claimed: self.claimed_rows(ids)?,
            stops_requested: replaced > 0,
        };
        Ok((retries, handoff))
    }

    /// Reads the rows of claimed runs, in id order: one statement for all of them (a burst's
    /// claim of 16 runs is one read, not 16, issue 14).
    pub(super) fn claimed_rows(&self, ids: Vec<i64>) -> Result<Vec<RunRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let among = self.conn.sql(
            "r.id IN (SELECT value FROM json_each(?1))",
            "r.id IN (SELECT CAST(jsonb_array_elements_text(CAST(?1 AS jsonb)) AS BIGINT))",
        );
        let ids = serde_json::to_string(&ids).expect("ids serialise");
        self.query_runs(among, params![ids], "r.id")
    }

    /// Ends runs and, for those to be retried, creates their next attempts, all in one
    /// transaction (one disk sync however many runs ended: group commit). Each end's `epoch`
    /// fences its write: `None` for a run supervised outside the daemon. Returns, per end, the
    /// retry's id or `None`; a run already ended (or fenced off) is left alone. What the
    /// ends release in `graph` (fan-ins they complete, blocked runs they decide) is written in
    /// the same transaction: every caller passes the graph, so a run ended by `jobctl run`
    /// releases the same runs as one ended by the daemon.
    ///
    /// # Errors
    ///
    /// On a SQLite failure, for the whole batch (nothing is written).
    pub fn finish_runs(&mut self, ends: &[RunEnd], graph: &Graph) -> Result<Vec<Option<i64>>> {
        let now = ends.iter().map(|end| end.at).max();
        self.with_tx(|tx| {
            let retries = match now {
                Some(now) => finish_all(tx, graph, ends, now)?.0,
                None => Vec::new(),
            };
            Ok(retries)
        })
    }

    /// Records the processes several runs started, with those carried (see
    /// [`Ledger::carry_starts`]), in one transaction (relaxed, like every write the daemon
    /// does not act on): a burst's starts share one commit.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (none is recorded, and those carried are still carried).
    pub fn set_processes(&mut self, started: &[ProcessStarted]) -> Result<()> {
        if started.is_empty() && self.carried.is_empty() {
            return Ok(());
        }
        let carried = std::mem::take(&mut self.carried);
        let written = self.relaxed(|conn| {
            let tx = conn.transaction(super::db::Begin::Deferred)?;
            write_starts(&tx, &carried)?;
            write_starts(&tx, started)?;
            tx.commit()
        });
        if written.is_err() {
            self.carried.splice(0..0, carried);
        }
        written
    }

    /// Has the next transaction record these processes' starts, before its own writes (and
    /// [`Ledger::set_processes`] if it comes first): the daemon's starts ride with the next
    /// run end or claim rather than cost a commit each (issue 14). Until then they are in
    /// no transaction, as a relaxed commit's are not on disk until the next sync.
    pub fn carry_starts(&mut self, started: impl IntoIterator<Item = ProcessStarted>) {
        self.carried.extend(started);
    }

    /// Records an event of a run.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn add_event(&self, run_id: i64, now: Timestamp, kind: &str, message: &str) -> Result<()> {
        self.relaxed(|conn| add_event(conn, run_id, &stamp(now), kind, message))
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
        self.with_tx(|tx| {
            let state: Option<RunState> = tx
                .query_row("SELECT state FROM runs WHERE id = ?1", params![run_id], |r| {
                    parsed(r, 0, &|| format!("run {run_id}"))
                })
                .optional()?;
            let at = stamp(now);
            let outcome = match state {
                None => {
                    return Err(LedgerError::NotFound {
                        path,
                        what: format!("run {run_id}"),
                    }
                    .into());
                }
                Some(RunState::Pending | RunState::Blocked) => {
                    let job: String = tx.query_row(
                        "UPDATE runs SET state = 'cancelled', finished_at = ?2, error = ?3 WHERE id = ?1
                         RETURNING job",
                        params![run_id, at, format!("cancelled by {by} before it started")],
                        |r| r.get(0),
                    )?;
                    add_event(tx, run_id, &at, "cancelled", &format!("cancelled by {by}"))?;
                    super::backfills::top_up(tx, &job, now)?;
                    CancelOutcome::Cancelled
                }
                Some(RunState::Running) => {
                    tx.execute(
                        "UPDATE runs SET cancel_requested = coalesce(cancel_requested, ?2) WHERE id = ?1",
                        params![run_id, at],
                    )?;
                    add_event(
                        tx,
                        run_id,
                        &at,
                        "cancel_requested",
                        &format!("cancellation requested by {by}"),
                    )?;
                    CancelOutcome::Requested
                }
                Some(other) => {
                    return Err(LedgerError::Conflict {
                        path,
                        detail: format!(
                            "run {run_id} has already ended ({other}); there is nothing to cancel"
                        ),
                    }
                    .into());
                }
            };
            Ok(outcome)
        })
    }
}

/// Writes `ends`, then what they release in `graph`.
fn finish_all(
    tx: &Conn,
    graph: &Graph,
    ends: &[RunEnd],
    now: Timestamp,
) -> super::db::Result<(Vec<Option<i64>>, deps::Resolved)> {
    let mut retries = Vec::with_capacity(ends.len());
    let mut ended = Vec::with_capacity(ends.len());
    let mut freed = Vec::new();
    for end in ends {
        let (retry, job) = finish_one(tx, end)?;
        retries.push(retry);
        if let Some((job, backfilled)) = job {
            // A backfill's run is no outcome for the jobs downstream (`deps::latest`).
            if !backfilled {
                ended.push((job.clone(), end.finish.state.unwrap_or(RunState::Failed)));
            }
            freed.push(job);
        }
    }
    let mut resolved = deps::Resolved::default();
    if !ended.is_empty() {
        resolved = deps::after_ends(tx, graph, &ended, now)?;
    }
    // A run's end frees a place of its job's backfills (its own, or the job's when one is
    // exclusive).
    freed.sort_unstable();
    freed.dedup();
    for job in &freed {
        let released = super::backfills::top_up(tx, job, now)?;
        resolved.pending += released.len();
        resolved.released.extend(released);
    }
    Ok((retries, resolved))
}

/// A run whose end was written: its job, and whether a backfill made it.
type Ended = (String, bool);

/// Ends one run; returns its retry's id and, when the end was written, the run's job and
/// whether a backfill made it.
fn finish_one(tx: &Conn, end: &RunEnd) -> super::db::Result<(Option<i64>, Option<Ended>)> {
    let RunEnd {
        run_id,
        epoch,
        finish,
        retry,
        at: now,
    } = end;
    let at = stamp(*now);
    let state = finish.state.unwrap_or(RunState::Failed);
    let ended: Option<(String, Option<i64>, Option<i64>)> = tx
        .prepare_cached(
            "UPDATE runs SET state = ?3, finished_at = ?4, exit_code = ?5, signal = ?6,
                    error = ?7, cpu_user_ms = ?8, cpu_sys_ms = ?9, max_rss_kb = ?10,
                    http_status = ?11, model = ?12, finish_reason = ?13, prompt_tokens = ?14,
                    completion_tokens = ?15, started_at = coalesce(started_at, ?4)
             WHERE id = ?1 AND state IN ('pending', 'running') AND epoch IS NOT DISTINCT FROM ?2
             RETURNING job, revision_id, backfill_id",
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
                finish.reply.http_status.map(i64::from),
                finish.reply.model,
                finish.reply.finish_reason,
                finish.reply.prompt_tokens,
                finish.reply.completion_tokens,
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((job, revision_id, backfill_id)) = ended else {
        return Ok((None, None));
    };
    let backfilled = backfill_id.is_some();
    // A backfill replays the past: the job's health (its failure streak, a `repeat` that
    // completes on success) is its live runs'.
    if !backfilled {
        record_health(tx, &job, revision_id, state, retry.is_some(), &at)?;
    }
    let message = match &finish.error {
        Some(error) => format!("{state}: {error}"),
        None => state.to_string(),
    };
    add_event(tx, *run_id, &at, "finished", &message)?;
    let Some(next) = retry else {
        return Ok((None, Some((job, backfilled))));
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
    Ok((Some(id), Some((job, backfilled))))
}

/// After a run of `job` (of revision `revision_id`) ended in `state`: the job's failure
/// streak (`rules::streak_after`; `retrying`: a retry is to come), when it last failed, and a
/// `repeat: {until: success}` completion (`rules::completes_on_end`, for a run of the
/// current revision).
fn record_health(
    tx: &Conn,
    job: &str,
    revision_id: Option<i64>,
    state: RunState,
    retrying: bool,
    at: &str,
) -> super::db::Result<()> {
    if !matches!(
        state,
        RunState::Succeeded | RunState::Failed | RunState::TimedOut
    ) {
        return Ok(());
    }
    let Some(facts) = deps::job_facts(tx, job)? else {
        return Ok(());
    };
    let streak = rules::streak_after(facts.failure_streak, state, retrying);
    let completes = facts.completed_at.is_none()
        && revision_id == Some(facts.revision_id)
        && rules::completes_on_end(facts.repeat, state);
    let failed = matches!(state, RunState::Failed | RunState::TimedOut);
    if streak != facts.failure_streak || completes || failed {
        let completed_at = if completes {
            Some(at.to_string())
        } else {
            facts.completed_at.map(stamp)
        };
        tx.prepare_cached(
            "UPDATE jobs SET failure_streak = ?2, completed_at = ?3,
                             last_failed_at = CASE WHEN CAST(?4 AS TEXT) IS NOT NULL
                                 AND (last_failed_at IS NULL OR ?4 > last_failed_at)
                                 THEN ?4 ELSE last_failed_at END
             WHERE name = ?1",
        )?
        .execute(params![job, streak, completed_at, failed.then_some(at)])?;
    }
    Ok(())
}

/// Who claims runs, and how many at most: a daemon's lease epoch, its `(pid, start time)`,
/// and the places its concurrency limit has free.
#[derive(Clone, Copy, Debug)]
pub struct Taker {
    pub epoch: i64,
    pub supervisor: (i64, i64),
    pub max: usize,
}

/// Claims, inside the caller's transaction, up to `taker.max` runs that may start at `now`
/// (`claim` says which; `released` are the runs ends in the same transaction released), and
/// returns their ids: one `UPDATE … RETURNING`, so two claimers never start a run twice.
pub(super) fn claim_in(
    tx: &Conn,
    claim: Claim,
    released: &[i64],
    taker: &Taker,
    node: Option<&super::nodes::Me>,
    now: Timestamp,
) -> super::db::Result<Vec<i64>> {
    if taker.max == 0 {
        return Ok(Vec::new());
    }
    // The pending part of `ReleasedFirst` is cut to as many as could be taken (the released
    // may be among them): a burst's hundreds of pending runs are not grouped and sorted at
    // every end that claims (issue 14).
    // Only runs this node's labels can run (`placeable!`, with the node's labels as `?8`): in
    // the candidates, so a run waiting for another node never holds a place, and in the
    // update.
    // On PostgreSQL the candidates are locked as they are chosen and rows another claimer
    // holds are skipped (`FOR UPDATE SKIP LOCKED`), so claimers on several nodes never wait on
    // each other's rows; the `state = 'pending'` of the update is the guarantee either way.
    // A node the leader declared lost claims nothing (its incarnation `?2` is fenced off).
    macro_rules! claim_sql {
        // PostgreSQL: the candidates in a CTE of their own, materialized, so that they are
        // chosen once (a `LIMIT … SKIP LOCKED` subquery inside `IN (…)` may be evaluated more
        // than once, and claim more than the limit).
        (pg, $candidates:expr) => {
            concat!(
                "WITH c AS MATERIALIZED (",
                $candidates,
                ") UPDATE runs SET state = 'running', started_at = ?1, epoch = ?2,
                    supervisor_pid = ?3, supervisor_start = ?4, node = ?6,
                    reason = CASE WHEN reason LIKE 'waiting for a node%' THEN NULL ELSE reason END
                 WHERE id IN (SELECT id FROM c) AND state = 'pending'
                   AND (not_before IS NULL OR not_before <= ?1)
                   AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.epoch = ?2 AND n.lost_at IS NOT NULL)
                   AND ",
                placeable!(pg, "runs", "?8"),
                " RETURNING id"
            )
        };
        ($d:tt, $candidates:expr) => {
            concat!(
                "UPDATE runs SET state = 'running', started_at = ?1, epoch = ?2,
                    supervisor_pid = ?3, supervisor_start = ?4, node = ?6,
                    reason = CASE WHEN reason LIKE 'waiting for a node%' THEN NULL ELSE reason END
                 WHERE id IN (",
                $candidates,
                ") AND state = 'pending'
                   AND (not_before IS NULL OR not_before <= ?1)
                   AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.epoch = ?2 AND n.lost_at IS NOT NULL)
                   AND ",
                placeable!($d, "runs", "?8"),
                " RETURNING id"
            )
        };
    }
    macro_rules! candidates {
        (sqlite, Oldest) => {
            concat!(
                "SELECT id FROM runs p WHERE state = 'pending'
                    AND (not_before IS NULL OR not_before <= ?1) AND ",
                placeable!(sqlite, "p", "?8"),
                " ORDER BY id LIMIT ?5"
            )
        };
        (pg, Oldest) => {
            concat!(
                "SELECT id FROM runs p WHERE state = 'pending'
                    AND (not_before IS NULL OR not_before <= ?1) AND ",
                placeable!(pg, "p", "?8"),
                " ORDER BY id LIMIT ?5 FOR UPDATE SKIP LOCKED"
            )
        };
        (sqlite, Released) => {
            concat!(
                "SELECT j.value FROM json_each(?7) j JOIN runs p ON p.id = j.value WHERE ",
                placeable!(sqlite, "p", "?8"),
                " LIMIT ?5"
            )
        };
        (pg, Released) => {
            concat!(
                "SELECT p.id FROM jsonb_array_elements_text(CAST(?7 AS jsonb)) j(value)
                    JOIN runs p ON p.id = CAST(j.value AS BIGINT) WHERE ",
                placeable!(pg, "p", "?8"),
                " LIMIT ?5 FOR UPDATE OF p SKIP LOCKED"
            )
        };
        (sqlite, ReleasedFirst) => {
            concat!(
                "SELECT id FROM (SELECT j.value AS id, 0 AS rank FROM json_each(?7) j
                                    JOIN runs p ON p.id = j.value WHERE ",
                placeable!(sqlite, "p", "?8"),
                "
                                 UNION ALL
                                 SELECT * FROM (SELECT id, 1 FROM runs p WHERE state = 'pending'
                                    AND (not_before IS NULL OR not_before <= ?1) AND ",
                placeable!(sqlite, "p", "?8"),
                " ORDER BY id LIMIT ?5 + json_array_length(?7)))
                  GROUP BY id ORDER BY min(rank), id LIMIT ?5"
            )
        };
        (pg, ReleasedFirst) => {
            concat!(
                "SELECT id FROM (SELECT CAST(j.value AS BIGINT) AS id, 0 AS rank
                                    FROM jsonb_array_elements_text(CAST(?7 AS jsonb)) j(value)
                                    JOIN runs p ON p.id = CAST(j.value AS BIGINT) WHERE ",
                placeable!(pg, "p", "?8"),
                "
                                 UNION ALL
                                 SELECT * FROM (SELECT id, 1 FROM runs p WHERE state = 'pending'
                                    AND (not_before IS NULL OR not_before <= ?1) AND ",
                placeable!(pg, "p", "?8"),
                " ORDER BY id LIMIT ?5 + jsonb_array_length(CAST(?7 AS jsonb))) pending) c
                  GROUP BY id ORDER BY min(rank), id LIMIT ?5"
            )
        };
    }
    let sql = match (claim, tx.dialect()) {
        (Claim::Oldest, Dialect::Sqlite) => claim_sql!(sqlite, candidates!(sqlite, Oldest)),
        (Claim::Oldest, Dialect::Postgres) => claim_sql!(pg, candidates!(pg, Oldest)),
        (Claim::Released, Dialect::Sqlite) => claim_sql!(sqlite, candidates!(sqlite, Released)),
        (Claim::Released, Dialect::Postgres) => claim_sql!(pg, candidates!(pg, Released)),
        (Claim::ReleasedFirst, Dialect::Sqlite) => {
            claim_sql!(sqlite, candidates!(sqlite, ReleasedFirst))
        }
        (Claim::ReleasedFirst, Dialect::Postgres) => {
            claim_sql!(pg, candidates!(pg, ReleasedFirst))
        }
    };
    let mut s = tx.prepare_cached(sql)?;
    let values: Vec<Box<dyn super::db::Param>> = vec![
        Box::new(stamp(now)),
        Box::new(taker.epoch),
        Box::new(taker.supervisor.0),
        Box::new(taker.supervisor.1),
        Box::new(taker.max as i64),
        Box::new(node.map(|n| n.name.clone())),
        Box::new(serde_json::to_string(released).expect("ids serialise")),
        Box::new(node.map_or_else(|| "[]".to_string(), |n| n.labels.clone())),
    ];
    s.query_map(
        &values
            .iter()
            .map(|v| v as &dyn super::db::Param)
            .collect::<Vec<_>>(),
        |r| r.get(0),
    )?
    .collect()
}

/// Writes the processes runs started: their pid, pid start time and `started` event.
pub(super) fn write_starts(conn: &Conn, started: &[ProcessStarted]) -> super::db::Result<()> {
    for s in started {
        conn.prepare_cached("UPDATE runs SET pid = ?2, pid_start = ?3 WHERE id = ?1")?
            .execute(params![s.run_id, s.pid, s.pid_start])?;
        add_event(conn, s.run_id, &stamp(s.at), "started", &s.message)?;
    }
    Ok(())
}
