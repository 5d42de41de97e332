//! A clock that went backwards: stamps the ledger holds from the future.
//!
//! A daemon that ran with its clock ahead (a wrong boot clock later fixed by NTP) wrote slot
//! cursors, `every` anchors, retry times and run stamps in what is now the future: every
//! schedule would stay silent until real time caught up, and an `after` job would count the
//! upstream successes it already fired for as new ones. [`Ledger::rewind_future`] brings them
//! back to `now`, in one transaction, and says what it moved; the daemon logs and records it.

use super::db::params;
use jiff::{SignedDuration, Timestamp};

use super::columns::{instant, instant_opt, parsed};
use super::{Ledger, Result, stamp};
use crate::run::RunState;

/// What [`Ledger::rewind_future`] moved back to `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewound {
    /// Jobs whose cursor or anchor was ahead, with the furthest of the two.
    pub jobs: Vec<(String, Timestamp)>,
    /// Runs with a stamp from the future (created, started, finished): brought to `now`; a
    /// waiting retry keeps its backoff from `now`.
    pub runs: usize,
    /// Slots from the future that were already recorded (they fired, or were skipped, early,
    /// while the clock was ahead), and the last of them: the slot key is unique, so they do
    /// not fire again when real time reaches them.
    pub early_slots: usize,
    pub early_until: Option<Timestamp>,
}

impl Rewound {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.runs == 0
    }
}

/// Stamps less than this far ahead are the clock's ordinary jitter, not a correction.
const TOLERANCE: SignedDuration = SignedDuration::from_secs(1);
/// How many of the newest runs are looked at: the runs of a period with the clock ahead are
/// the newest ones when the correction is first seen (at start, or when the scheduler sees the
/// clock go back), and a bounded look keeps every reload cheap on a large ledger.
const RECENT_RUNS: i64 = 10_000;

/// One job or run to bring back, as read.
struct JobAhead {
    name: String,
    anchor: bool,
    cursor: bool,
    furthest: Timestamp,
}

struct RunAhead {
    id: i64,
    /// The new `not_before` of a waiting run created in the future.
    not_before: Option<Option<String>>,
}

impl Ledger {
    /// Moves every job cursor and anchor that is ahead of `now` back to `now`, brings run
    /// stamps from the future (of the newest runs) to `now`, and shifts the wait of waiting
    /// runs created ahead of `now` so it starts at `now` (a retry keeps its backoff). Reads
    /// first; writes (one transaction) only when something is ahead.
    ///
    /// Run stamps move too because an `after` job's cursor is an upstream end time: with its
    /// cursor at `now` and the ends it fired for still in the future, it would fire again.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (nothing is written).
    pub fn rewind_future(&mut self, now: Timestamp) -> Result<Rewound> {
        let limit = now.saturating_add(TOLERANCE).unwrap_or(now);
        let jobs = self.jobs_ahead(limit)?;
        let (runs, early) = self.runs_ahead(now, limit)?;
        if jobs.is_empty() && runs.is_empty() {
            return Ok(Rewound::default());
        }
        self.write_rewind(now, limit, jobs, runs, early)
    }

    /// The active jobs whose anchor or cursor is past `limit`.
    fn jobs_ahead(&self, limit: Timestamp) -> Result<Vec<JobAhead>> {
        let e = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, schedule_anchor, coalesce(slot_cursor, schedule_anchor)
                 FROM jobs WHERE active = 1",
            )
            .map_err(e)?;
        let rows: Vec<(String, Timestamp, Timestamp)> = stmt
            .query_map(params![], |r| {
                let name: String = r.get(0)?;
                let what = || format!("job {name}");
                let (anchor, cursor) = (instant(r, 1, &what)?, instant(r, 2, &what)?);
                Ok((name, anchor, cursor))
            })
            .and_then(Iterator::collect)
            .map_err(e)?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, anchor, cursor)| {
                let (anchor, cursor) = (ahead(anchor, limit), ahead(cursor, limit));
                Some(JobAhead {
                    name,
                    anchor: anchor.is_some(),
                    cursor: cursor.is_some(),
                    furthest: anchor.max(cursor)?,
                })
            })
            .collect())
    }

    /// Of the newest runs, those with a stamp past `limit`, and the slots past it that were
    /// already recorded.
    fn runs_ahead(
        &self,
        now: Timestamp,
        limit: Timestamp,
    ) -> Result<(Vec<RunAhead>, Vec<Timestamp>)> {
        let e = |e| self.err(e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, state, created_at, started_at, finished_at, not_before, slot
                 FROM runs WHERE id > (SELECT coalesce(max(id), 0) FROM runs) - ?1",
            )
            .map_err(e)?;
        let rows: Vec<RunStamps> = stmt
            .query_map(params![RECENT_RUNS], |r| {
                let id: i64 = r.get(0)?;
                let what = || format!("run {id}");
                Ok(RunStamps {
                    id,
                    state: parsed(r, 1, &what)?,
                    created: instant(r, 2, &what)?,
                    started: instant_opt(r, 3, &what)?,
                    finished: instant_opt(r, 4, &what)?,
                    not_before: instant_opt(r, 5, &what)?,
                    slot: instant_opt(r, 6, &what)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(e)?;
        let early = rows
            .iter()
            .filter_map(|row| row.slot.and_then(|t| ahead(t, limit)))
            .collect();
        let runs = rows
            .into_iter()
            .filter_map(|row| row.rewound(now, limit))
            .collect();
        Ok((runs, early))
    }

    /// Writes what [`Ledger::rewind_future`] found, in one transaction.
    fn write_rewind(
        &mut self,
        now: Timestamp,
        limit: Timestamp,
        jobs: Vec<JobAhead>,
        runs: Vec<RunAhead>,
        early: Vec<Timestamp>,
    ) -> Result<Rewound> {
        let (at, bound) = (stamp(now), stamp(limit));
        self.with_tx(|tx| {
            for job in &jobs {
                tx.execute(
                    "UPDATE jobs SET
                     schedule_anchor = CASE WHEN ?2 THEN ?4 ELSE schedule_anchor END,
                     slot_cursor = CASE WHEN ?3 THEN ?4 ELSE slot_cursor END
                 WHERE name = ?1",
                    params![job.name, job.anchor, job.cursor, at],
                )?;
            }
            for run in &runs {
                if let Some(not_before) = &run.not_before {
                    tx.execute(
                        "UPDATE runs SET not_before = ?2 WHERE id = ?1",
                        params![run.id, not_before],
                    )?;
                }
                tx.execute(
                    "UPDATE runs SET
                     created_at = CASE WHEN created_at > ?3 THEN ?2 ELSE created_at END,
                     started_at = CASE WHEN started_at > ?3 THEN ?2 ELSE started_at END,
                     finished_at = CASE WHEN finished_at > ?3 THEN ?2 ELSE finished_at END
                 WHERE id = ?1",
                    params![run.id, at, bound],
                )?;
            }
            Ok(Rewound {
                jobs: jobs.into_iter().map(|j| (j.name, j.furthest)).collect(),
                runs: runs.len(),
                early_slots: early.len(),
                early_until: early.into_iter().max(),
            })
        })
    }
}

/// An instant past `limit`.
fn ahead(t: Timestamp, limit: Timestamp) -> Option<Timestamp> {
    (t > limit).then_some(t)
}

/// A run's stamps, as read.
struct RunStamps {
    id: i64,
    state: RunState,
    created: Timestamp,
    started: Option<Timestamp>,
    finished: Option<Timestamp>,
    not_before: Option<Timestamp>,
    slot: Option<Timestamp>,
}

impl RunStamps {
    /// What to bring back of this run, if any stamp is past `limit`: a waiting run created
    /// ahead keeps its wait, shifted to start at `now`.
    fn rewound(self, now: Timestamp, limit: Timestamp) -> Option<RunAhead> {
        let created_ahead = ahead(self.created, limit);
        let any = created_ahead.is_some()
            || self.started.and_then(|t| ahead(t, limit)).is_some()
            || self.finished.and_then(|t| ahead(t, limit)).is_some();
        if !any {
            return None;
        }
        let waiting = self.state.is_waiting();
        let not_before = match created_ahead {
            Some(created) if waiting => {
                let shift = created.duration_since(now);
                Some(
                    self.not_before
                        .map(|t| stamp(t.saturating_sub(shift).unwrap_or(now).max(now))),
                )
            }
            _ => None,
        };
        Some(RunAhead {
            id: self.id,
            not_before,
        })
    }
}
