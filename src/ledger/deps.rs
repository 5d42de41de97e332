//! Dependencies in the ledger: the `depends_on` gate of new runs, and what a run's end
//! releases (`after` fan-ins, blocked runs). The transaction that writes a run's end also
//! writes what that end releases, so a hand-off costs neither a poll nor a second commit.
//!
//! Every caller passes the graph explicitly (`Ledger::finish_runs`, `finish_and_claim`,
//! `resolve_dependencies`): there is no connection that releases runs and one that does not.
//!
//! The rules are in `rules` (`gate`, `fan_in`, `recheck` and the failure `cascade` built on it,
//! `admit`, `completes_on_fire`); this
//! module only gathers their facts (indexed point reads) and writes their outcomes. A gate is read from the run's revision
//! (`revisions.depends_on`), so a run created by any process is gated the same way.

use std::collections::BTreeMap;

use super::db::{Conn, Optional, params};
use jiff::Timestamp;

use super::columns::{self, instant, instant_opt, parsed};
use super::write::{NewRun, add_event, insert_run, replace_active};
use super::{Ledger, Result, stamp};
use crate::graph::{Graph, Node};
use crate::rules::{self, Admission, BlockedRun, Gate, GatedJob, Latest, Recheck};
use crate::run::{RunState, Trigger};
use crate::spec::{Concurrency, Repeat};

/// The latest run of `job` that was not skipped by its schedule (a slot skipped for overlap
/// or a pause is not an outcome; a run skipped at its own gate is, with `error` set, so a
/// failure cascades down a chain of gates). A backfill's runs replay the past: never an
/// outcome the jobs downstream wait for.
fn latest(conn: &Conn, job: &str) -> super::db::Result<Option<Latest>> {
    conn.prepare_cached(
        "SELECT id, state, finished_at FROM runs
         WHERE job = ?1 AND (state <> 'skipped' OR error IS NOT NULL) AND backfill_id IS NULL
         ORDER BY id DESC LIMIT 1",
    )?
    .query_row(params![job], |r| {
        let run_id: i64 = r.get(0)?;
        let what = || format!("run {run_id}");
        Ok(Latest {
            run_id,
            state: parsed(r, 1, &what)?,
            finished_at: instant_opt(r, 2, &what)?,
        })
    })
    .optional()
}

/// The latest succeeded run of `job` and when it finished (`runs_by_job_state_finish`).
fn latest_success(conn: &Conn, job: &str) -> super::db::Result<Option<(i64, Timestamp)>> {
    conn.prepare_cached(
        "SELECT id, finished_at FROM runs
         WHERE job = ?1 AND state = 'succeeded' AND finished_at IS NOT NULL
           AND backfill_id IS NULL
         ORDER BY finished_at DESC LIMIT 1",
    )?
    .query_row(params![job], |r| {
        let id: i64 = r.get(0)?;
        Ok((id, instant(r, 1, &|| format!("run {id}"))?))
    })
    .optional()
}

/// The `depends_on` list of a revision.
fn depends_on(conn: &Conn, revision_id: i64) -> super::db::Result<Vec<String>> {
    let deps: Option<String> = conn
        .prepare_cached("SELECT depends_on FROM revisions WHERE id = ?1")?
        .query_row(params![revision_id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(deps
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_default())
}

/// The gate over `deps` of a run that came due at `created`; `None` without dependencies.
fn gate_for(conn: &Conn, deps: &[String], created: Timestamp) -> super::db::Result<Option<Gate>> {
    if deps.is_empty() {
        return Ok(None);
    }
    let mut facts = Vec::with_capacity(deps.len());
    for dep in deps {
        facts.push((dep.as_str(), latest(conn, dep)?));
    }
    Ok(Some(rules::gate(created, &facts)))
}

/// Blocks a run just inserted as pending when its gate is closed (`rules::blocks_new_run`).
pub(super) fn block_if_gated(
    conn: &Conn,
    run_id: i64,
    revision_id: i64,
    now: Timestamp,
) -> super::db::Result<bool> {
    let deps = depends_on(conn, revision_id)?;
    let gate = gate_for(conn, &deps, now)?;
    let Some(waiting_for) = rules::blocks_new_run(gate, &deps) else {
        return Ok(false);
    };
    let reason = rules::waiting_reason(&waiting_for);
    conn.prepare_cached("UPDATE runs SET state = 'blocked', reason = ?2 WHERE id = ?1")?
        .execute(params![run_id, reason])?;
    add_event(
        conn,
        run_id,
        &stamp(now),
        "blocked",
        &format!("{reason} to succeed (depends_on)"),
    )?;
    Ok(true)
}

/// What a resolution changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Runs that became pending (fired by a fan-in, or released from `blocked`).
    pub pending: usize,
    /// Runs that ended skipped (a failed dependency, a passed deadline, a paused job).
    pub skipped: usize,
    /// The ids of the runs that became pending.
    pub released: Vec<i64>,
    /// Jobs with a run skipped at its gate: the jobs gated on them look again.
    pub skipped_jobs: Vec<String>,
    /// Runs fired with `concurrency: replace`, which asked their job's running runs to stop.
    pub replaced: usize,
}

impl std::ops::AddAssign for Resolved {
    fn add_assign(&mut self, other: Resolved) {
        self.pending += other.pending;
        self.skipped += other.skipped;
        self.released.extend(other.released);
        self.replaced += other.replaced;
        self.skipped_jobs.extend(other.skipped_jobs);
    }
}

/// After runs of `ended` (job, final state) were written: fires the fan-ins their successes
/// complete and re-decides the runs blocked on them.
pub(super) fn after_ends(
    conn: &Conn,
    graph: &Graph,
    ended: &[(String, RunState)],
    now: Timestamp,
) -> super::db::Result<Resolved> {
    let mut fan_ins = std::collections::BTreeSet::new();
    let mut gated = std::collections::BTreeSet::new();
    for (job, state) in ended {
        let Some(node) = graph.node(job) else {
            continue;
        };
        if *state == RunState::Succeeded {
            fan_ins.extend(node.downstream.iter().map(String::as_str));
        }
        gated.extend(node.gated.iter().map(String::as_str));
    }
    let mut resolved = Resolved::default();
    for job in fan_ins {
        if let Some(node) = graph.node(job) {
            resolved += fan_in(conn, job, node, now)?;
        }
    }
    let gated: Vec<String> = gated.into_iter().map(str::to_string).collect();
    recheck_cascading(conn, graph, &gated, now, &mut resolved)?;
    Ok(resolved)
}

/// Re-decides the blocked runs of `jobs`, and down the chain of gates what a skip there
/// cascades to (`rules::cascade`): reads the facts of every job the walk can reach, lets the
/// rule decide, and writes what it decided.
fn recheck_cascading(
    conn: &Conn,
    graph: &Graph,
    jobs: &[String],
    now: Timestamp,
    resolved: &mut Resolved,
) -> super::db::Result<()> {
    let (facts, latest) = cascade_facts(conn, graph, jobs)?;
    if facts.is_empty() {
        return Ok(());
    }
    let at = stamp(now);
    for decided in rules::cascade(jobs, &facts, latest, now) {
        let id = decided.run_id;
        match decided.outcome {
            Recheck::Release { released_by } => {
                release(conn, id, &released_by, &at)?;
                resolved.pending += 1;
                resolved.released.push(id);
            }
            Recheck::Skip { reason } => {
                skip(conn, id, &reason, &at, true)?;
                resolved.skipped += 1;
                resolved.skipped_jobs.push(decided.job);
            }
            Recheck::Wait { reason } => {
                conn.prepare_cached("UPDATE runs SET reason = ?2 WHERE id = ?1")?
                    .execute(params![id, reason])?;
            }
        }
    }
    Ok(())
}

/// The jobs a cascade can reach, by name, and their dependencies' latest runs.
type CascadeFacts = (BTreeMap<String, GatedJob>, BTreeMap<String, Option<Latest>>);

/// What [`rules::cascade`] needs: every job reachable from `start` through the jobs gated on
/// a job with blocked runs (only those can skip), with its blocked runs, and the latest run
/// of each of their dependencies.
fn cascade_facts(conn: &Conn, graph: &Graph, start: &[String]) -> super::db::Result<CascadeFacts> {
    let mut facts = BTreeMap::new();
    let mut visited = std::collections::BTreeSet::new();
    let mut queue: Vec<String> = start.to_vec();
    while let Some(job) = queue.pop() {
        if !visited.insert(job.clone()) {
            continue;
        }
        let Some(gated) = gated_job(conn, graph, &job)? else {
            continue;
        };
        queue.extend(gated.gated.iter().cloned());
        facts.insert(job, gated);
    }
    let mut latest = BTreeMap::new();
    for job in facts.values() {
        for dep in &job.depends_on {
            if !latest.contains_key(dep) {
                latest.insert(dep.clone(), self::latest(conn, dep)?);
            }
        }
    }
    Ok((facts, latest))
}

/// The blocked runs of `job` and its current gate, `None` when it has no blocked run.
fn gated_job(conn: &Conn, graph: &Graph, job: &str) -> super::db::Result<Option<GatedJob>> {
    let blocked: Vec<BlockedRun> = conn
        .prepare_cached(
            "SELECT r.id, r.scheduled_at, r.created_at, r.reason FROM runs r
             WHERE r.job = ?1 AND r.state = 'blocked' AND r.backfill_id IS NULL ORDER BY r.id",
        )?
        .query_map(params![job], |r| {
            let id: i64 = r.get(0)?;
            let what = || format!("run {id}");
            Ok(BlockedRun {
                id,
                scheduled_at: instant_opt(r, 1, &what)?,
                created: instant(r, 2, &what)?,
                reason: r.get(3)?,
            })
        })?
        .collect::<super::db::Result<_>>()?;
    if blocked.is_empty() {
        return Ok(None);
    }
    // The job's current revision decides: an edit that drops a dependency releases the runs
    // waiting for it.
    let current: Option<(bool, i64)> = conn
        .prepare_cached("SELECT active, revision_id FROM jobs WHERE name = ?1")?
        .query_row(params![job], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (active, depends_on) = match current {
        Some((true, revision_id)) => (true, depends_on(conn, revision_id)?),
        _ => (false, Vec::new()),
    };
    let node = graph.node(job);
    Ok(Some(GatedJob {
        active,
        deadline: node.and_then(|n| n.starting_deadline),
        depends_on,
        gated: node.map(|n| n.gated.clone()).unwrap_or_default(),
        blocked,
    }))
}

/// Looks at every fan-in and every blocked run: at start, after another process wrote runs,
/// and when a blocked run's deadline comes.
pub(super) fn sweep(conn: &Conn, graph: &Graph, now: Timestamp) -> super::db::Result<Resolved> {
    let mut resolved = Resolved::default();
    for (job, node) in graph.fan_ins() {
        resolved += fan_in(conn, job, node, now)?;
    }
    let blocked: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT job FROM runs WHERE state = 'blocked' AND backfill_id IS NULL",
        )?
        .query_map(params![], |r| r.get(0))?
        .collect::<super::db::Result<_>>()?;
    recheck_cascading(conn, graph, &blocked, now, &mut resolved)?;
    // And the backfills' places freed by any path (a lost node's runs, a cancellation).
    let released = super::backfills::top_up_all(conn, now)?;
    resolved.pending += released.len();
    resolved.released.extend(released);
    Ok(resolved)
}

/// The earliest instant a blocked run's starting deadline passes.
pub(super) fn next_deadline(conn: &Conn, graph: &Graph) -> super::db::Result<Option<Timestamp>> {
    let mut next: Option<Timestamp> = None;
    for (job, node) in graph.gated_jobs() {
        let Some(deadline) = node.starting_deadline else {
            continue;
        };
        let due: Option<Timestamp> = conn
            .prepare_cached(
                "SELECT min(scheduled_at) FROM runs WHERE job = ?1 AND state = 'blocked'
                   AND backfill_id IS NULL",
            )?
            .query_row(params![job], |r| {
                instant_opt(r, 0, &|| format!("the blocked runs of job {job}"))
            })?;
        if let Some(at) = due.and_then(|d| d.checked_add(deadline.as_signed()).ok()) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok(next)
}

/// Ends a run `skipped`. `gated`: skipped at its gate, an outcome the jobs gated on this one
/// see (as a failure) rather than a slot that never counted.
fn skip(conn: &Conn, run_id: i64, reason: &str, at: &str, gated: bool) -> super::db::Result<()> {
    conn.prepare_cached(
        "UPDATE runs SET state = 'skipped', finished_at = ?2, reason = ?3,
                error = CASE WHEN ?4 THEN ?3 END
         WHERE id = ?1",
    )?
    .execute(params![run_id, at, reason, gated])?;
    add_event(conn, run_id, at, "skipped", reason)
}

fn release(
    conn: &Conn,
    run_id: i64,
    released_by: &[(String, i64)],
    at: &str,
) -> super::db::Result<()> {
    conn.prepare_cached(
        "UPDATE runs SET state = 'pending', reason = NULL, released_by = ?2 WHERE id = ?1",
    )?
    .execute(params![run_id, releases_json(released_by)])?;
    add_event(
        conn,
        run_id,
        at,
        "released",
        &rules::release_message(released_by),
    )
}

fn releases_json(released_by: &[(String, i64)]) -> Option<String> {
    (!released_by.is_empty()).then(|| {
        serde_json::Value::Array(
            released_by
                .iter()
                .map(|(job, run)| serde_json::json!({ "job": job, "run": run }))
                .collect(),
        )
        .to_string()
    })
}

/// Fires the fan-in `job` if every upstream job has succeeded since its last fire.
fn fan_in(conn: &Conn, job: &str, node: &Node, now: Timestamp) -> super::db::Result<Resolved> {
    let Some(waiting) = waiting_job(conn, job)? else {
        return Ok(Resolved::default());
    };
    // Most upstream jobs of a wide fan-in have not finished yet: stop at the first.
    let mut successes = Vec::with_capacity(node.after.len());
    for up in &node.after {
        let success = latest_success(conn, up)?;
        if success.is_none_or(|(_, at)| at <= waiting.cursor) {
            return Ok(Resolved::default());
        }
        successes.push((up.as_str(), success));
    }
    let Some(released_by) = rules::fan_in(waiting.cursor, &successes) else {
        return Ok(Resolved::default());
    };
    let resolved = fire_released(conn, job, node, &waiting, &released_by, now)?;
    // The cursor covers every success this round used, even one stamped after `now` (an end
    // queued while the transaction waited for the ledger), so none is counted twice.
    let cursor = successes
        .iter()
        .filter_map(|(_, s)| s.map(|(_, at)| at))
        .fold(now, Timestamp::max);
    conn.prepare_cached(
        "UPDATE jobs SET slot_cursor = CASE WHEN coalesce(slot_cursor, '') >= ?2
             THEN coalesce(slot_cursor, '') ELSE ?2 END WHERE name = ?1",
    )?
    .execute(params![job, stamp(cursor)])?;
    Ok(resolved)
}

/// A downstream job that can be released: active, enabled, not completed, with a cursor.
struct WaitingJob {
    revision_id: i64,
    /// The upstream successes after this instant are new.
    cursor: Timestamp,
    paused: bool,
}

/// The job `fan_in` looks at, if it can be released at all.
fn waiting_job(conn: &Conn, job: &str) -> super::db::Result<Option<WaitingJob>> {
    let row: Option<(i64, Timestamp, bool, bool, Option<String>, bool)> = conn
        .prepare_cached(
            "SELECT j.revision_id, coalesce(j.slot_cursor, j.schedule_anchor), j.active, r.enabled,
                    j.completed_at, EXISTS (SELECT 1 FROM pauses p WHERE p.job = j.name)
             FROM jobs j JOIN revisions r ON r.id = j.revision_id WHERE j.name = ?1",
        )?
        .query_row(params![job], |r| {
            Ok((
                r.get(0)?,
                instant(r, 1, &|| format!("job {job}"))?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    let Some((revision_id, cursor, active, enabled, completed, paused)) = row else {
        return Ok(None);
    };
    if !active || !enabled || completed.is_some() {
        return Ok(None);
    }
    Ok(Some(WaitingJob {
        revision_id,
        cursor,
        paused,
    }))
}

/// Creates the dependency run that `released_by` released and records what the gate rule
/// (`rules::admit`) decided for it: skipped, or pending (or blocked by its own gates).
fn fire_released(
    conn: &Conn,
    job: &str,
    node: &Node,
    waiting: &WaitingJob,
    released_by: &[(String, i64)],
    now: Timestamp,
) -> super::db::Result<Resolved> {
    let at = stamp(now);
    let busy = node.concurrency != Concurrency::Allow
        && conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE job = ?1
                    AND (state IN ('pending', 'running') OR (state = 'blocked' AND backfill_id IS NULL)))",
            )?
            .query_row(params![job], |r| r.get::<bool>(0))?;
    let run = NewRun::now(job, waiting.revision_id, Trigger::Dependency, None, now);
    let id = insert_run(conn, &run, now)?;
    conn.prepare_cached("UPDATE runs SET released_by = ?2 WHERE id = ?1")?
        .execute(params![id, releases_json(released_by)])?;
    add_event(conn, id, &at, "fired", &rules::release_message(released_by))?;
    let mut resolved = Resolved::default();
    match rules::admit(waiting.paused, node.concurrency, busy) {
        Admission::Skip(reason) => {
            skip(conn, id, &reason.to_string(), &at, false)?;
            resolved.skipped += 1;
        }
        Admission::Run { replace } => {
            if replace {
                replace_active(conn, job, id, &at)?;
                resolved.replaced += 1;
            }
            if !block_if_gated(conn, id, waiting.revision_id, now)? {
                resolved.pending += 1;
                resolved.released.push(id);
            }
            count_fire(conn, job, &at)?;
        }
    }
    Ok(resolved)
}

/// Counts a fire of the job's current revision; a `repeat: {times: N}` job completes at the
/// Nth (`rules::completes_on_fire`).
pub(super) fn count_fire(conn: &Conn, job: &str, at: &str) -> super::db::Result<()> {
    // Counted, and what `repeat` needs read back, in one statement (issue 14: one less per
    // slot of a burst); the completion, rarely, in a second.
    let counted = conn
        .prepare_cached(
            "UPDATE jobs SET fires = fires + 1 WHERE name = ?1
             RETURNING fires, completed_at,
                       (SELECT r.repeat FROM revisions r WHERE r.id = jobs.revision_id)",
        )?
        .query_row(params![job], |r| {
            Ok((
                r.get::<i64>(0)?,
                instant_opt(r, 1, &|| format!("job {job}"))?,
                columns::repeat(r, 2, &|| format!("job {job}"))?,
            ))
        })
        .optional()?;
    let Some((fires, completed_at, repeat)) = counted else {
        return Ok(());
    };
    if completed_at.is_none() && rules::completes_on_fire(repeat, fires) {
        conn.prepare_cached("UPDATE jobs SET completed_at = ?2 WHERE name = ?1")?
            .execute(params![job, at])?;
    }
    Ok(())
}

/// What the `repeat` and failure-streak rules need to know of a job at a run's end.
pub(super) struct JobFacts {
    pub revision_id: i64,
    pub completed_at: Option<Timestamp>,
    pub failure_streak: i64,
    pub repeat: Option<Repeat>,
}

/// The job's counters and its current revision's `repeat` (one point read).
pub(super) fn job_facts(conn: &Conn, job: &str) -> super::db::Result<Option<JobFacts>> {
    conn.prepare_cached(
        "SELECT j.revision_id, j.completed_at, j.failure_streak, r.repeat
         FROM jobs j LEFT JOIN revisions r ON r.id = j.revision_id WHERE j.name = ?1",
    )?
    .query_row(params![job], |r| {
        Ok(JobFacts {
            revision_id: r.get(0)?,
            completed_at: instant_opt(r, 1, &|| format!("job {job}"))?,
            failure_streak: r.get(2)?,
            repeat: columns::repeat(r, 3, &|| format!("job {job}"))?,
        })
    })
    .optional()
}

impl Ledger {
    /// Fires the fan-ins and re-decides the blocked runs that the ledger's runs allow, in one
    /// transaction: at the daemon's start, after another process wrote runs, when a blocked
    /// run's deadline passes.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (nothing is written).
    pub fn resolve_dependencies(&mut self, graph: &Graph, now: Timestamp) -> Result<Resolved> {
        self.with_tx(|tx| {
            let resolved = sweep(tx, graph, now)?;
            Ok(resolved)
        })
    }

    /// When the earliest blocked run's starting deadline passes.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn next_blocked_deadline(&self, graph: &Graph) -> Result<Option<Timestamp>> {
        self.read(|conn| next_deadline(conn, graph))
    }
}
