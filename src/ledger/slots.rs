//! The scheduler's write: the slot rows `slots::decide` returned, in one transaction, keyed
//! by (job, slot) so that no slot is written, or fired, twice.

use super::db::{Conn, Optional, params};
use jiff::Timestamp;

use super::claims::{Claim, Taker, claim_in};
use super::lease::check_epoch;
use super::runs::RunRow;
use super::write::{add_event, replace_active};
use super::{Ledger, Result, deps, stamp};
use crate::run::{RunState, Trigger};
use crate::slots::{Outcome, SlotRow};

/// The slots one job's decision writes.
#[derive(Clone, Debug)]
pub struct JobSlots {
    pub job: String,
    pub revision_id: i64,
    /// Each row with the instant a fired run may start (its slot plus jitter).
    pub rows: Vec<(SlotRow, Timestamp)>,
    pub cursor: Timestamp,
}

/// What [`Ledger::record_slots_and_claim`] wrote: the fired runs, as `(job, run id)`, and the
/// runs it claimed, to start.
#[derive(Debug, Default)]
pub struct Recorded {
    pub fired: Vec<(String, i64)>,
    pub claimed: Vec<RunRow>,
}

impl Ledger {
    /// Writes the slot rows of several jobs in one transaction and moves their cursors: the
    /// scheduler's only write. A slot already in the ledger is left alone (never fired twice).
    /// Returns the runs to start, as `(job, run id)`.
    ///
    /// # Errors
    ///
    /// [`LedgerError::LeaseLost`](super::LedgerError::LeaseLost) when another daemon holds the lease now, or a SQLite failure.
    pub fn record_slots(
        &mut self,
        epoch: i64,
        batch: &[JobSlots],
        now: Timestamp,
    ) -> Result<Vec<(String, i64)>> {
        Ok(self.record_slots_and_claim(epoch, batch, now, None)?.fired)
    }

    /// [`Ledger::record_slots`], then a claim by `taker` of the oldest runs that may start
    /// now ([`Claim::Oldest`]), in the same transaction: at a burst's boundary the fired runs
    /// start after one disk sync, not two (issue 14). Returns the fired `(job, run id)`s and
    /// the claimed runs.
    ///
    /// # Errors
    ///
    /// As [`Ledger::record_slots`]; nothing is written or claimed then.
    pub fn record_slots_and_claim(
        &mut self,
        epoch: i64,
        batch: &[JobSlots],
        now: Timestamp,
        taker: Option<Taker>,
    ) -> Result<Recorded> {
        let path = self.path.clone();
        let node = self.node.clone();
        let (fired, claimed) = self.with_tx(|tx| {
            check_epoch(tx, &path, epoch)?;
            let mut fired = Vec::new();
            for job in batch {
                for (row, not_before) in &job.rows {
                    if let Some(id) = record_slot(tx, job, row, *not_before, now)? {
                        fired.push((job.job.clone(), id));
                    }
                }
                tx.prepare_cached("UPDATE jobs SET slot_cursor = ?2 WHERE name = ?1")?
                    .execute(params![job.job, stamp(job.cursor)])?;
            }
            let claimed = match &taker {
                Some(taker) => claim_in(tx, Claim::Oldest, &[], taker, node.as_deref(), now)?,
                None => Vec::new(),
            };
            Ok((fired, claimed))
        })?;
        Ok(Recorded {
            fired,
            claimed: self.claimed_rows(claimed)?,
        })
    }
}

/// Writes one slot row of `job` and what its outcome entails (an event, the runs a
/// `replace` cancels, the fire count, a `depends_on` block); returns the run to start. A slot
/// already in the ledger writes nothing.
fn record_slot(
    tx: &Conn,
    job: &JobSlots,
    row: &SlotRow,
    not_before: Timestamp,
    now: Timestamp,
) -> super::db::Result<Option<i64>> {
    let at = stamp(now);
    let (state, trigger, reason) = match &row.outcome {
        Outcome::Fire { trigger, .. } => (RunState::Pending, *trigger, None),
        Outcome::Skipped { reason } => {
            (RunState::Skipped, Trigger::Schedule, Some(reason.as_str()))
        }
        Outcome::Missed { reason } => (RunState::Skipped, Trigger::Missed, Some(reason.as_str())),
    };
    let finished = state.is_terminal().then_some(at.as_str());
    let id: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at, finished_at,
                               slot, slot_first, slot_count, not_before, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?4, ?8, ?9, ?10, ?11)
             ON CONFLICT (job, slot) WHERE slot IS NOT NULL DO NOTHING
             RETURNING id",
        )?
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
                stamp(not_before),
                reason,
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let kind = if state == RunState::Pending {
        "fired"
    } else {
        "skipped"
    };
    add_event(tx, id, &at, kind, &slot_message(row))?;
    if let Outcome::Fire { replace: true, .. } = row.outcome {
        replace_active(tx, &job.job, id, &at)?;
    }
    if state != RunState::Pending {
        return Ok(None);
    }
    deps::count_fire(tx, &job.job, &at)?;
    let blocked = deps::block_if_gated(tx, id, job.revision_id, now)?;
    Ok((!blocked).then_some(id))
}

/// The event of a slot row: `fired for the slot …`, `skipped 3 slots from … to …: reason`.
fn slot_message(row: &SlotRow) -> String {
    match (&row.outcome, row.count) {
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
    }
}
