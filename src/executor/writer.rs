//! The writer: run ends and new runs queued and written together by whoever holds the ledger
//! next (group commit), and the claims of pending runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use tokio::sync::mpsc;

use super::Shared;
use crate::ledger::{Handoff, Ledger, NewRun, RunEnd, RunRow};

/// How a run's end claims the runs its end released (a dependency hand-off) in its own
/// transaction, one disk sync instead of two: the daemon's lease, its [`Room`], and where the
/// claimed runs go. Plain data: nothing of the daemon's runs while the ledger is held; the
/// daemon receives the runs on `claimed` and starts them.
pub struct Claimer {
    pub epoch: i64,
    pub supervisor: (i64, i64),
    pub room: Arc<Room>,
    pub claimed: mpsc::UnboundedSender<Handoff>,
}

/// The daemon's places for runs (`max_concurrent_runs`): how many are taken, and whether it
/// still takes runs at all. A claim takes its places while it holds the ledger, so together
/// claims never pass the limit, whoever starts the runs afterwards.
#[derive(Debug)]
pub struct Room {
    limit: usize,
    active: AtomicUsize,
    closed: AtomicBool,
}

impl Room {
    /// Room for `limit` runs at once (at least one).
    #[must_use]
    pub fn new(limit: usize) -> Room {
        Room {
            limit: limit.max(1),
            active: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Places free now; none once closed.
    pub fn free(&self) -> usize {
        if self.closed.load(Ordering::SeqCst) {
            0
        } else {
            self.limit.saturating_sub(self.active())
        }
    }

    /// Places free for a claim written in the same transaction as the ends of `ending` of
    /// this daemon's runs: their processes are gone, and their tasks, which still hold their
    /// places until they return, release them just after. None once closed.
    pub fn free_with(&self, ending: usize) -> usize {
        if self.closed.load(Ordering::SeqCst) {
            0
        } else {
            (self.limit + ending).saturating_sub(self.active())
        }
    }

    /// Runs holding a place.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// A run ended: its place is free.
    pub fn release(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// The daemon is stopping: no more claims.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn take(&self, n: usize) {
        self.active.fetch_add(n, Ordering::SeqCst);
    }
}

pub(super) type EndResult = OnceLock<Result<Option<i64>, WriteFailed>>;

/// Who waits for a queued run end: a blocked thread ([`Shared::finish`]) or a task
/// ([`Shared::finish_queued`]).
pub(super) enum EndWaiter {
    Blocking(Arc<EndResult>),
    Queued(tokio::sync::oneshot::Sender<Result<Option<i64>, WriteFailed>>),
}

impl EndWaiter {
    fn tell(self, result: Result<Option<i64>, WriteFailed>) {
        match self {
            EndWaiter::Blocking(slot) => {
                let _ = slot.set(result);
            }
            EndWaiter::Queued(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

fn not_written() -> WriteFailed {
    WriteFailed {
        message: "the run's end was not written".to_string(),
        transient: true,
    }
}
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
    /// With the daemon's [`Claimer`], the runs the ends released are claimed in the same
    /// transaction and sent to the daemon, their places taken before the ledger is released.
    ///
    /// # Errors
    ///
    /// [`WriteFailed`] when the batch could not be written.
    pub fn finish(&self, end: RunEnd) -> Result<Option<i64>, WriteFailed> {
        let mine = Arc::new(EndResult::new());
        self.queued_ends()
            .push((end, EndWaiter::Blocking(mine.clone())));
        let mut ledger = self.ledger();
        // An earlier holder may have written this end along with its own.
        if mine.get().is_none() {
            self.write_ends(&mut ledger);
        }
        drop(ledger);
        self.progressed();
        mine.get().cloned().unwrap_or_else(|| Err(not_written()))
    }

    /// [`Shared::finish`] without a blocking thread per end: the end is queued, and one
    /// writer on a blocking thread (started by the first end queued while none runs) writes
    /// whatever is queued, batch after batch, until the queue is empty. A burst's ends then
    /// cost one thread hop per batch rather than one per end, and no convoy of threads waiting
    /// for the ledger's lock to learn that their end was written (issue 14).
    ///
    /// # Errors
    ///
    /// [`WriteFailed`] when the batch holding this end could not be written.
    pub async fn finish_queued(self: &Arc<Self>, end: RunEnd) -> Result<Option<i64>, WriteFailed> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queued_ends().push((end, EndWaiter::Queued(tx)));
        if !self.writing_ends.swap(true, Ordering::SeqCst) {
            let s = self.clone();
            tokio::task::spawn_blocking(move || s.write_ends_until_empty());
        }
        rx.await.unwrap_or_else(|_| Err(not_written()))
    }

    /// The writer of [`Shared::finish_queued`]: writes batches until the queue is empty, then
    /// stops; an end queued just as it stops finds it stopped and starts the next writer.
    fn write_ends_until_empty(&self) {
        loop {
            self.gather_ends();
            {
                let mut ledger = self.ledger();
                if !self.queued_ends().is_empty() {
                    self.write_ends(&mut ledger);
                }
            }
            self.progressed();
            self.writing_ends.store(false, Ordering::SeqCst);
            if self.queued_ends().is_empty() || self.writing_ends.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Before a commit of the daemon's ends: with [`GATHER_WHEN_RUNNING`] or more of its runs
    /// still going besides those queued, waits [`GATHER`] for more to end, so that they share
    /// the commit (a group commit delay, as PostgreSQL's `commit_delay`). A burst's 200 ends
    /// took about 116 commits without it, each rewriting the same dozen-odd pages of the
    /// WAL and syncing it; a lone run's end (a dependency hand-off) is written at once.
    fn gather_ends(&self) {
        let Some(c) = self.claimer.get() else {
            return;
        };
        let queued = self.queued_ends().len();
        if c.room.active().saturating_sub(queued) >= GATHER_WHEN_RUNNING {
            std::thread::sleep(GATHER);
        }
    }

    /// Writes the queued run ends (and the starts carried) in one transaction, with the
    /// ledger held. With the daemon's [`Claimer`], the runs they released are claimed in the
    /// same transaction and sent to the daemon, their places taken before the ledger is
    /// released.
    fn write_ends(&self, ledger: &mut Ledger) {
        self.carry_starts(ledger);
        match self.claimer.get() {
            // With the daemon's executor: claim what the ends released in the same
            // transaction (a dependency hand-off costs one disk sync, not two).
            //
            // The places the ends free go to the next pending runs in this transaction
            // too (issue 14): a burst of runs through the concurrency limit then costs one
            // disk sync per turn, not one for the ends and another for the executor's
            // claim.
            Some(c) => {
                if let Ok(handoff) =
                    self.write_and_claim(ledger, c, crate::ledger::Claim::ReleasedFirst)
                    && (!handoff.claimed.is_empty() || handoff.stops_requested)
                {
                    let _ = c.claimed.send(handoff);
                }
            }
            None => {
                let graph = self.graph();
                self.write_queued(ledger, |ledger, ends| {
                    ledger.finish_runs(ends, &graph).map(|ids| (ids, ()))
                })
                .ok();
            }
        }
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
            self.carry_starts(&mut ledger);
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

    /// Claims pending runs for the daemon's [`Claimer`], as many as its [`Room`] has free
    /// places once the ledger is held, writing the queued run ends in the same transaction,
    /// and takes their places before releasing the ledger: whoever claims next counts them,
    /// so together claims never pass the daemon's limit. The caller starts the runs returned
    /// (none without a claimer). Reads the clock once it holds the ledger, so no end queued
    /// meanwhile is stamped after the claim.
    ///
    /// # Errors
    ///
    /// On a ledger failure; the queued ends then report it too.
    pub fn claim(&self) -> crate::ledger::Result<Handoff> {
        let Some(c) = self.claimer.get() else {
            return Ok(Handoff::default());
        };
        let mut ledger = self.ledger();
        self.carry_starts(&mut ledger);
        self.write_and_claim(&mut ledger, c, crate::ledger::Claim::Oldest)
    }

    /// Writes the queued ends and claims pending runs (`claim` says which) in one
    /// transaction, as many as the [`Room`] has places once the ends' places are free, and
    /// takes their places while the ledger is still held: whoever claims next counts them.
    /// Reads the clock with the ledger held, so no end queued meanwhile is stamped after the
    /// claim.
    fn write_and_claim(
        &self,
        ledger: &mut Ledger,
        c: &Claimer,
        claim: crate::ledger::Claim,
    ) -> crate::ledger::Result<Handoff> {
        let now = self.clock.now();
        let graph = self.graph();
        let handoff = self.write_queued(ledger, |ledger, ends| {
            let max = c.room.free_with(ending_here(ends, c.epoch));
            ledger.finish_and_claim(ends, &graph, claim, c.epoch, c.supervisor, now, max)
        })?;
        c.room.take(handoff.claimed.len());
        Ok(handoff)
    }

    /// Records the process a run started. For the daemon (with a [`Claimer`]) the start is
    /// queued: the next run end, claim or trigger the daemon writes carries it in its own
    /// transaction, or [`Shared::flush_starts`] writes it, so a burst's starts cost no commit
    /// of their own (issue 14). Otherwise it is written now, sharing the (relaxed) transaction
    /// with every other start queued meanwhile; that blocks on the ledger: call it off the
    /// runtime's worker threads.
    ///
    /// # Errors
    ///
    /// The ledger's, when the batch holding this start could not be written.
    pub fn record_started(
        &self,
        started: crate::ledger::ProcessStarted,
    ) -> crate::ledger::Result<()> {
        self.queued_starts().push(started);
        if self.queues_starts() {
            return Ok(());
        }
        self.flush_starts()
    }

    /// Whether [`Shared::record_started`] only queues a start (the daemon's executor, with a
    /// [`Claimer`]) rather than write it: then it never blocks.
    pub fn queues_starts(&self) -> bool {
        self.claimer.get().is_some()
    }

    /// Writes the starts queued (see [`Shared::record_started`]) in a relaxed transaction of
    /// their own. Blocks on the ledger.
    ///
    /// # Errors
    ///
    /// The ledger's; the starts are then carried by the next transaction.
    pub fn flush_starts(&self) -> crate::ledger::Result<()> {
        let mut ledger = self.ledger();
        // An earlier holder may have written this start along with its own.
        let starts = std::mem::take(&mut *self.queued_starts());
        ledger.set_processes(&starts).inspect_err(|_| {
            ledger.carry_starts(starts);
        })
    }

    /// Whether starts wait in the queue for a transaction.
    pub fn starts_queued(&self) -> bool {
        !self.queued_starts().is_empty()
    }

    /// Moves the queued starts into `ledger`'s next transaction, which records them before
    /// its own writes: a run's start always precedes its end.
    fn carry_starts(&self, ledger: &mut Ledger) {
        let starts = std::mem::take(&mut *self.queued_starts());
        ledger.carry_starts(starts);
    }

    fn queued_starts(&self) -> std::sync::MutexGuard<'_, Vec<crate::ledger::ProcessStarted>> {
        self.starts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the scheduler's due slots (see [`Ledger::record_slots`]) and, for the daemon's
    /// [`Claimer`], claims the oldest pending runs its [`Room`] has places for in the same
    /// transaction, taking their places before the ledger is released (as [`Shared::claim`]
    /// does). Returns the fired `(job, run id)`s and the claimed runs, which the caller starts.
    /// Blocks on a disk sync.
    ///
    /// # Errors
    ///
    /// As [`Ledger::record_slots`]: nothing is written or claimed then.
    pub fn record_slots(
        &self,
        epoch: i64,
        batch: &[crate::ledger::JobSlots],
        now: Timestamp,
    ) -> crate::ledger::Result<crate::ledger::Recorded> {
        let mut ledger = self.ledger();
        self.carry_starts(&mut ledger);
        let taker = self.claimer.get().map(|c| crate::ledger::Taker {
            epoch: c.epoch,
            supervisor: c.supervisor,
            max: c.room.free(),
        });
        let recorded = ledger.record_slots_and_claim(epoch, batch, now, taker)?;
        if let Some(c) = self.claimer.get() {
            c.room.take(recorded.claimed.len());
        }
        Ok(recorded)
    }

    /// Takes the queued run ends and writes them with `write`, then hands each waiter its
    /// result. Results are set while the ledger is still held, so a waiter that gets it next
    /// sees its end as written rather than finding an empty queue.
    pub(super) fn write_queued<T>(
        &self,
        ledger: &mut Ledger,
        write: impl FnOnce(&mut Ledger, &[RunEnd]) -> crate::ledger::Result<(Vec<Option<i64>>, T)>,
    ) -> crate::ledger::Result<T> {
        let (ends, waiters): (Vec<RunEnd>, Vec<EndWaiter>) =
            std::mem::take(&mut *self.queued_ends()).into_iter().unzip();
        let written = write(ledger, &ends);
        for (i, waiter) in waiters.into_iter().enumerate() {
            waiter.tell(match &written {
                Ok((ids, _)) => Ok(ids[i]),
                Err(e) => Err(WriteFailed::from(e)),
            });
        }
        written.map(|(_, t)| t)
    }

    pub(super) fn queued_ends(&self) -> std::sync::MutexGuard<'_, Vec<(RunEnd, EndWaiter)>> {
        self.ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long the ends' writer waits for more ends before a commit ([`Shared::gather_ends`]).
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// How many of the daemon's runs must still be going for the ends' writer to wait.
const GATHER_WHEN_RUNNING: usize = 4;

/// How many of `ends` are runs of the daemon of `epoch` (claimed under it): their places are
/// free once the ends are written.
fn ending_here(ends: &[RunEnd], epoch: i64) -> usize {
    ends.iter().filter(|end| end.epoch == Some(epoch)).count()
}
