//! Backfills: what a window of a job's past slots needs from the ledger (its revisions with
//! when each was applied, the slots that already have a run) and the runs that replay it.
//!
//! A backfill's runs are created together, in slot order; at most `parallel` of them are
//! pending or running at a time (one at a time, beside the job's other runs, when the
//! backfill is `exclusive`: the job's `concurrency` is not `allow`), the others `blocked`
//! with a reason. [`top_up`] releases the next ones whenever a place frees: at a run's end, a
//! cancellation, a sweep. The unique index `runs_backfilled_slots` refuses a second backfill
//! run of a slot however it is asked for.

use jiff::Timestamp;

use super::columns::{instant, instant_opt};
use super::db::{Conn, params};
use super::write::{NewRun, add_event, insert_run};
use super::{Ledger, Result, stamp};
use crate::run::{Overrides, Trigger};

/// A revision of a job as a backfill reads it: its row, number, apply time and definition.
#[derive(Clone, Debug)]
pub struct RevisionAt {
    pub id: i64,
    pub number: i64,
    pub applied_at: Timestamp,
    pub definition: String,
}

/// A backfill to write: the job, the window asked for, its places, and its slots (oldest
/// first) with the revision each runs.
#[derive(Clone, Debug)]
pub struct NewBackfill {
    pub job: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub parallel: usize,
    pub exclusive: bool,
    pub by: Option<String>,
    pub slots: Vec<crate::backfill::Slot>,
}

impl Ledger {
    /// Every revision of `job`, oldest first.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn revisions_in_order(&self, job: &str) -> Result<Vec<RevisionAt>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT id, number, created_at, definition FROM revisions
                 WHERE job = ?1 ORDER BY number",
            )?
            .query_map(params![job], |r| {
                let number: i64 = r.get(1)?;
                Ok(RevisionAt {
                    id: r.get(0)?,
                    number,
                    applied_at: instant(r, 2, &|| format!("revision {number} of {job}"))?,
                    definition: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    /// The slots of `job` in `[from, to]` that already have a run: each run of the schedule
    /// that was not skipped (its range, when it folded several), and each backfill run. The
    /// end is included (a stamp has milliseconds; reading one slot too many is harmless).
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn slots_with_runs(
        &self,
        job: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(Timestamp, Timestamp)>> {
        self.read(|conn| {
            let what = || format!("the runs of {job}");
            let mut ranges: Vec<(Timestamp, Timestamp)> = conn
                .prepare_cached(
                    "SELECT coalesce(slot_first, slot), slot FROM runs
                     WHERE job = ?1 AND slot IS NOT NULL AND slot >= ?2
                       AND coalesce(slot_first, slot) <= ?3 AND state <> 'skipped'",
                )?
                .query_map(params![job, stamp(from), stamp(to)], |r| {
                    Ok((instant(r, 0, &what)?, instant(r, 1, &what)?))
                })?
                .collect::<super::db::Result<_>>()?;
            let backfilled: Vec<Option<Timestamp>> = conn
                .prepare_cached(
                    "SELECT scheduled_at FROM runs WHERE job = ?1 AND trigger = 'backfill'
                       AND scheduled_at >= ?2 AND scheduled_at <= ?3",
                )?
                .query_map(params![job, stamp(from), stamp(to)], |r| {
                    instant_opt(r, 0, &what)
                })?
                .collect::<super::db::Result<_>>()?;
            ranges.extend(backfilled.into_iter().flatten().map(|at| (at, at)));
            Ok(ranges)
        })
    }

    /// Writes a backfill and its runs (one per slot, in slot order), releasing as many as
    /// it has places; returns its id and the runs' ids. All or nothing: a slot another
    /// backfill took meanwhile fails the whole write.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn create_backfill(
        &mut self,
        new: &NewBackfill,
        now: Timestamp,
    ) -> Result<(i64, Vec<i64>)> {
        let path = self.path.clone();
        self.with_tx(|tx| {
            let at = stamp(now);
            // Inside the write lock: another backfill of one of these slots since they were
            // decided is a conflict to report, not a constraint to trip over.
            for slot in &new.slots {
                let taken: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM runs WHERE job = ?1 AND trigger = 'backfill'
                                          AND scheduled_at = ?2)",
                    )?
                    .query_row(params![new.job, stamp(slot.at)], |r| r.get(0))?;
                if taken {
                    return Err(super::LedgerError::Conflict {
                        path: path.clone(),
                        detail: format!(
                            "the slot {} of {} was backfilled meanwhile; look again (--dry-run)",
                            stamp(slot.at),
                            new.job
                        ),
                    }
                    .into());
                }
            }
            let id: i64 = tx
                .prepare_cached(
                    "INSERT INTO backfills (job, window_from, window_to, parallel, exclusive,
                                            created_at, created_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                )?
                .query_row(
                    params![
                        new.job,
                        stamp(new.from),
                        stamp(new.to),
                        new.parallel as i64,
                        new.exclusive,
                        at,
                        new.by,
                    ],
                    |r| r.get(0),
                )?;
            let mut runs = Vec::with_capacity(new.slots.len());
            for slot in &new.slots {
                let run = NewRun {
                    job: new.job.clone(),
                    revision_id: slot.revision_id,
                    trigger: Trigger::Backfill,
                    scheduled_at: slot.at,
                    not_before: None,
                    params: None,
                    attempt: 1,
                    first_run_id: None,
                    running_under: None,
                    by: new.by.clone(),
                    overrides: Overrides::default(),
                    backfill_id: Some(id),
                };
                let run_id = insert_run(tx, &run, now)?;
                tx.prepare_cached("UPDATE runs SET state = 'blocked', reason = ?2 WHERE id = ?1")?
                    .execute(params![
                        run_id,
                        waiting_reason(id, new.parallel, new.exclusive)
                    ])?;
                runs.push(run_id);
            }
            top_up(tx, &new.job, now)?;
            Ok((id, runs))
        })
    }
}

/// The reason a backfill's run waits.
fn waiting_reason(backfill: i64, parallel: usize, exclusive: bool) -> String {
    if exclusive {
        format!("backfill {backfill}: waiting for the job's other runs (one at a time)")
    } else {
        format!("backfill {backfill}: waiting for a place ({parallel} at a time)")
    }
}

/// Releases the next runs of `job`'s backfills to `pending` while they have places free: a
/// backfill has `parallel` places, counted over its own pending and running runs, or over
/// all the job's when it is `exclusive`. Returns the runs released, oldest slot first.
pub(super) fn top_up(tx: &Conn, job: &str, now: Timestamp) -> super::db::Result<Vec<i64>> {
    let open: Vec<(i64, i64, bool)> = tx
        .prepare_cached(
            "SELECT b.id, b.parallel, b.exclusive FROM backfills b
             WHERE b.job = ?1 AND EXISTS (
                 SELECT 1 FROM runs r WHERE r.backfill_id = b.id AND r.state = 'blocked')
             ORDER BY b.id",
        )?
        .query_map(params![job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<super::db::Result<_>>()?;
    let at = stamp(now);
    let mut released = Vec::new();
    for (id, parallel, exclusive) in open {
        let busy: i64 = if exclusive {
            tx.prepare_cached(
                "SELECT count(*) FROM runs WHERE job = ?1
                   AND (state IN ('pending', 'running') OR (state = 'blocked' AND backfill_id IS NULL))",
            )?
            .query_row(params![job], |r| r.get(0))?
        } else {
            tx.prepare_cached(
                "SELECT count(*) FROM runs WHERE backfill_id = ?1 AND state IN ('pending', 'running')",
            )?
            .query_row(params![id], |r| r.get(0))?
        };
        let free = parallel.max(1) - busy;
        if free <= 0 {
            continue;
        }
        let next: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM runs WHERE backfill_id = ?1 AND state = 'blocked'
                 ORDER BY scheduled_at, id LIMIT ?2",
            )?
            .query_map(params![id, free], |r| r.get(0))?
            .collect::<super::db::Result<_>>()?;
        for run in next {
            tx.prepare_cached("UPDATE runs SET state = 'pending', reason = NULL WHERE id = ?1")?
                .execute(params![run])?;
            add_event(
                tx,
                run,
                &at,
                "released",
                &format!("backfill {id}: its turn"),
            )?;
            released.push(run);
        }
    }
    Ok(released)
}

/// [`top_up`] for every job with a backfill waiting: at a sweep (a start, another process's
/// writes), so a place freed by any path is filled.
pub(super) fn top_up_all(tx: &Conn, now: Timestamp) -> super::db::Result<Vec<i64>> {
    let jobs: Vec<String> = tx
        .prepare_cached(
            "SELECT DISTINCT job FROM runs WHERE backfill_id IS NOT NULL AND state = 'blocked'",
        )?
        .query_map(params![], |r| r.get(0))?
        .collect::<super::db::Result<_>>()?;
    let mut released = Vec::new();
    for job in jobs {
        released.extend(top_up(tx, &job, now)?);
    }
    Ok(released)
}

impl Ledger {
    /// Releases the backfill runs that have places free (see [`top_up`]), for every job.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn top_up_backfills(&mut self, now: Timestamp) -> Result<Vec<i64>> {
        self.with_tx(|tx| Ok(top_up_all(tx, now)?))
    }
}
