//! The writer: run ends and new runs queued and written together by whoever holds the ledger
//! next (group commit), and the claims of pending runs.

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;

use super::Shared;
use crate::ledger::{Ledger, NewRun, RunEnd, RunRow};

/// How a run's end claims the runs its end released (a dependency hand-off) in its own
/// transaction, one disk sync instead of two: the daemon's lease, its room for more runs, and
/// how it starts them.
pub struct Claimer {
    pub epoch: i64,
    pub supervisor: (i64, i64),
    pub room: Box<dyn Fn() -> usize + Send + Sync>,
    pub start: Box<dyn Fn(Vec<RunRow>) + Send + Sync>,
}

pub(super) type EndResult = OnceLock<Result<Option<i64>, String>>;
pub(super) type NewRunResult = OnceLock<Result<RunRow, WriteFailed>>;

/// Why a queued write failed: the ledger's message, and whether trying later may succeed (a
/// busy ledger, a full disk) or not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteFailed {
    pub message: String,
    pub transient: bool,
}

impl From<&crate::ledger::LedgerError> for WriteFailed {
    fn from(e: &crate::ledger::LedgerError) -> WriteFailed {
        WriteFailed {
            message: e.to_string(),
            transient: e.is_transient(),
        }
    }
}

impl Shared {
    /// Records a run's end (and its retry), durably, sharing the transaction with every other
    /// end queued meanwhile. Returns the retry's id, if one was created. Blocks on a disk sync:
    /// call it off the runtime's worker threads.
    ///
    /// # Errors
    ///
    /// The ledger's message when the batch could not be written.
    pub fn finish(&self, end: RunEnd) -> Result<Option<i64>, String> {
        let mine = Arc::new(EndResult::new());
        self.queued_ends().push((end, mine.clone()));
        let mut ledger = self.ledger();
        let mut claimed = Vec::new();
        // An earlier holder may have written this end along with its own.
        if mine.get().is_none() {
            match self.claimer.get() {
                // With the daemon's executor: claim what the ends released in the same
                // transaction (a dependency hand-off costs one disk sync, not two).
                Some(c) if ledger.has_graph() && (c.room)() > 0 => {
                    let now = self.clock.now();
                    if let Ok(runs) = self.write_queued(&mut ledger, |ledger, ends| {
                        ledger.finish_and_claim(
                            ends,
                            crate::ledger::Claim::Released,
                            c.epoch,
                            c.supervisor,
                            now,
                            (c.room)(),
                        )
                    }) {
                        claimed = runs;
                    }
                }
                _ => {
                    self.write_queued(&mut ledger, |ledger, ends| {
                        ledger.finish_runs(ends).map(|ids| (ids, ()))
                    })
                    .ok();
                }
            }
        }
        // Started while the ledger is held, so the next claim counts them (see `claim`).
        if !claimed.is_empty()
            && let Some(c) = self.claimer.get()
        {
            (c.start)(claimed);
        }
        drop(ledger);
        self.progressed();
        mine.get()
            .cloned()
            .unwrap_or_else(|| Err("the run's end was not written".to_string()))
    }

    /// Creates a pending run (a trigger) durably, sharing the transaction with every other run
    /// queued meanwhile: one disk sync for a burst of triggers. Returns the run as written
    /// (read back before the ledger is released, so no claim can come between). Blocks on a
    /// disk sync: call it off the runtime's worker threads.
    ///
    /// # Errors
    ///
    /// The ledger's message when the batch could not be written.
    pub fn create_run(&self, run: NewRun, now: Timestamp) -> Result<RunRow, WriteFailed> {
        let mine = Arc::new(NewRunResult::new());
        self.new_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((run, mine.clone()));
        let mut ledger = self.ledger();
        if mine.get().is_none() {
            let (runs, results): (Vec<NewRun>, Vec<Arc<NewRunResult>>) = std::mem::take(
                &mut *self
                    .new_runs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
            .into_iter()
            .unzip();
            let written = ledger.create_runs(&runs, now);
            for (i, result) in results.iter().enumerate() {
                let row = match &written {
                    Ok(ids) => ledger
                        .run(ids[i])
                        .map_err(|e| WriteFailed::from(&e))
                        .and_then(|r| {
                            r.ok_or_else(|| WriteFailed {
                                message: "the new run vanished".to_string(),
                                transient: false,
                            })
                        }),
                    Err(e) => Err(WriteFailed::from(e)),
                };
                let _ = result.set(row);
            }
        }
        drop(ledger);
        mine.get().cloned().unwrap_or_else(|| {
            Err(WriteFailed {
                message: "the run was not written".to_string(),
                transient: true,
            })
        })
    }

    /// Claims pending runs for the daemon of `epoch`, as many as `room()` says once the ledger
    /// is held, writing the queued run ends in the same transaction, and hands them to `start`
    /// before releasing the ledger: whoever claims next counts them as active, so together
    /// claims never pass the daemon's limit. Reads the clock once it holds the ledger, so no
    /// end queued meanwhile is stamped after the claim.
    ///
    /// # Errors
    ///
    /// On a ledger failure; the queued ends then report it too.
    pub fn claim(
        &self,
        epoch: i64,
        supervisor: (i64, i64),
        room: impl FnOnce() -> usize,
        start: impl FnOnce(Vec<RunRow>),
    ) -> crate::ledger::Result<()> {
        let mut ledger = self.ledger();
        let (max, now) = (room(), self.clock.now());
        let runs = self.write_queued(&mut ledger, |ledger, ends| {
            ledger.finish_and_claim(
                ends,
                crate::ledger::Claim::Oldest,
                epoch,
                supervisor,
                now,
                max,
            )
        })?;
        start(runs);
        Ok(())
    }

    /// Takes the queued run ends and writes them with `write`, then hands each waiter its
    /// result. Results are set while the ledger is still held, so a waiter that gets it next
    /// sees its end as written rather than finding an empty queue.
    pub(super) fn write_queued<T>(
        &self,
        ledger: &mut Ledger,
        write: impl FnOnce(&mut Ledger, &[RunEnd]) -> crate::ledger::Result<(Vec<Option<i64>>, T)>,
    ) -> crate::ledger::Result<T> {
        let (ends, results): (Vec<RunEnd>, Vec<Arc<EndResult>>) =
            std::mem::take(&mut *self.queued_ends()).into_iter().unzip();
        let written = write(ledger, &ends);
        for (i, result) in results.iter().enumerate() {
            let r = match &written {
                Ok((ids, _)) => Ok(ids[i]),
                Err(e) => Err(e.to_string()),
            };
            let _ = result.set(r);
        }
        written.map(|(_, t)| t)
    }

    pub(super) fn queued_ends(&self) -> std::sync::MutexGuard<'_, Vec<(RunEnd, Arc<EndResult>)>> {
        self.ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
