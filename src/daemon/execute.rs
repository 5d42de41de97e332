//! The executor loop: pending runs claimed while there is room, each run a task; cancels
//! acted on; runs whose supervisor is gone ended.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use tokio::sync::{mpsc, watch};

use super::reconcile::CANCELLED;
use super::{CLOCK_LOOK, Daemon};
use crate::executor::{self, Echo};
use crate::handle::Command;
use crate::ledger::{Handoff, RunRow};
use crate::run::Ending;
use crate::runner::{self, Stop};

impl Daemon {
    /// Ends the runs left `running` by a supervisor that is gone (a previous daemon that died,
    /// a foreground `jobctl run` killed or hung up), and terminates their processes if they
    /// still exist (checked by pid and start time, not pid alone). At start, and every
    /// [`ORPHAN_CHECK`] while serving; this daemon's own runs are never touched.
    /// On a PostgreSQL ledger, has the executor look for runs to claim: the safety net for
    /// notifications lost on the way.
    pub(super) fn poll_work(&self) {
        if self.options.ledger.file().is_none() {
            self.wake_executor.notify_one();
        }
    }

    pub(super) fn end_orphans(&self) {
        let runs = match self.shared.ledger().running_runs() {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!("reading running runs: {e}");
                return;
            }
        };
        // Only a supervisor on this machine can be looked for by pid: a `jobctl run`'s runs
        // are found by the host it recorded (none before it did: SQLite, this machine), a
        // daemon's by its node: on SQLite the one daemon, on PostgreSQL this node before a
        // restart. Other nodes' runs are the leader's to end when it declares them lost.
        let here = crate::host::hostname();
        let sqlite = self.options.ledger.file().is_some();
        let me = self.node_name();
        for run in runs {
            if run.supervisor == Some(self.me) {
                continue;
            }
            let local = match (&run.node, run.epoch) {
                (None, _) => true,
                (Some(host), None) => *host == here,
                (Some(node), Some(_)) => sqlite || *node == me,
            };
            if !local {
                continue;
            }
            let supervised = run
                .supervisor
                .is_some_and(|(pid, start)| runner::is_alive(pid, start));
            if supervised {
                // A foreground `jobctl run` still watching over it.
                continue;
            }
            let mut note = "its supervisor had stopped".to_string();
            if let Some(killed) = super::cluster::kill_leftovers(&run) {
                note = format!("{note}; {killed}");
            }
            let _ = self
                .shared
                .ledger()
                .add_event(run.id, self.now(), "interrupted", &note);
            // Its supervisor is gone and will write no more lines: compress the open tail.
            let _ = self.shared.ledger().seal_output(run.id);
            let spec = run.revision_id.and_then(|id| self.shared.spec(id).ok());
            // Written once: if the ledger cannot take it now, the next check tries again.
            executor::record_end(
                &self.shared,
                &run,
                spec.as_deref(),
                &Ending::Interrupted,
                None,
                executor::Persist::Once,
            );
            tracing::warn!(run = run.id, job = %run.job, "{note}; recorded as failed (interrupted)");
        }
    }

    /// The executor loop: claim pending runs while there is room, then wait.
    pub(super) async fn executor(self: Arc<Self>) {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            // A turn's ledger work (a claim is a disk sync; the reads wait for the ledger
            // while a run's end syncs) runs on a blocking thread: the runtime's two workers
            // keep spawning the runs of a burst meanwhile (issue 14).
            let d = self.clone();
            let turn = tokio::task::spawn_blocking(move || d.executor_turn()).await;
            let sleep = match turn {
                Ok(Ok(Some(sleep))) => sleep,
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => {
                    self.shared
                        .health
                        .write_failed("claiming runs", &e.to_string());
                    tracing::error!("claiming runs: {e}; trying again in 1 s");
                    StdDuration::from_secs(1)
                }
                // The turn panicked: look again after a pause rather than spin.
                Err(_) => StdDuration::from_secs(1),
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake_executor.notified() => {}
            }
        }
    }

    /// One turn of the executor: claims pending runs while there is room and says how long
    /// to sleep before the next turn (`None`: at once). Blocks on the ledger.
    fn executor_turn(self: &Arc<Self>) -> crate::ledger::Result<Option<StdDuration>> {
        // A node that lost the ledger claims nothing until its heartbeat is recorded again.
        if self.room.free() > 0 && !self.fenced.load(Ordering::SeqCst) {
            let handoff = self.shared.claim()?;
            self.start_all(handoff.claimed);
            if handoff.stops_requested {
                self.act_on_cancels();
            }
        }
        // Blind until it has looked: an end that frees a place meanwhile sees the flag and
        // wakes it (see `Daemon::executor_blind`).
        self.executor_blind.store(true, Ordering::SeqCst);
        let next = if self.room.free() > 0 {
            match self.shared.ledger().next_pending_at() {
                Ok(next) => {
                    self.executor_blind.store(false, Ordering::SeqCst);
                    next
                }
                Err(_) => None,
            }
        } else {
            None
        };
        // At most a minute, like the scheduler: a wall clock moved back is noticed.
        let mut sleep = match next {
            Some(Some(at)) => self.shared.clock.until(at).max(StdDuration::from_millis(1)),
            Some(None) => StdDuration::from_millis(1),
            None => CLOCK_LOOK,
        }
        .min(CLOCK_LOOK);
        // A blocked run whose starting deadline passes ends skipped.
        let graph = self.shared.graph();
        let deadline = self
            .shared
            .ledger()
            .next_blocked_deadline(&graph)
            .ok()
            .flatten();
        if let Some(at) = deadline {
            if at <= self.now() {
                self.resolve();
                return Ok(None);
            }
            sleep = sleep.min(self.shared.clock.until(at).max(StdDuration::from_millis(1)));
        }
        Ok(Some(sleep))
    }

    /// Starts the runs that run ends claimed (a dependency hand-off, see
    /// [`executor::Claimer`]): the executor sends them here rather than calling into the
    /// daemon while it holds the ledger.
    pub(super) async fn starter(self: Arc<Self>, mut claimed: mpsc::UnboundedReceiver<Handoff>) {
        while let Some(handoff) = claimed.recv().await {
            self.start_all(handoff.claimed);
            // A fan-in with `concurrency: replace` asked its running run to stop (only then:
            // a burst's hand-offs read no cancel requests, issue 14).
            if handoff.stops_requested {
                let d = self.clone();
                let _ = tokio::task::spawn_blocking(move || d.act_on_cancels()).await;
            }
        }
    }

    /// Acts on what the API sent through its [`crate::handle::Handle`], in order.
    pub(super) async fn commands(self: Arc<Self>, mut commands: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            let d = self.clone();
            match command {
                Command::RunQueued => self.wake_executor.notify_one(),
                Command::GitPushed => {
                    let _ = tokio::task::spawn_blocking(move || d.pushed(true)).await;
                }
                Command::JobsChanged => {
                    let _ = tokio::task::spawn_blocking(move || d.ledger_changed()).await;
                }
                Command::RunsChanged => {
                    let _ = tokio::task::spawn_blocking(move || d.runs_changed()).await;
                }
            }
        }
    }

    /// Starts claimed runs, each in its own task; their places in the [`executor::Room`] were
    /// taken by the claim.
    pub(super) fn start_all(self: &Arc<Self>, runs: Vec<RunRow>) {
        for run in runs {
            self.start(run);
        }
    }

    fn start(self: &Arc<Self>, run: RunRow) {
        let (stop_tx, stop_rx) = watch::channel(None);
        {
            let mut stops = self
                .stops
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(stop) = &stops.all {
                stop_tx.send_replace(Some(stop.clone()));
            } else if stops.early.remove(&run.id) {
                stop_tx.send_replace(Some(Stop::graceful(CANCELLED)));
            }
            stops.running.insert(run.id, stop_tx);
        }
        tracing::info!(run = run.id, job = %run.job, trigger = %run.trigger, attempt = run.attempt, "run starting");
        let daemon = self.clone();
        tokio::spawn(async move {
            let id = run.id;
            let (revision_id, job) = (run.revision_id, run.job.clone());
            let conclusion =
                executor::run_and_record(daemon.shared.clone(), run, stop_rx, Echo::None).await;
            daemon
                .stops
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .running
                .remove(&id);
            daemon.room.release();
            tracing::debug!(run = id, state = %conclusion.state, "run task done");
            // `repeat: {until: success}`: the ledger marked the job completed with this end;
            // the scheduler reloads to stop firing it.
            if revision_id
                .and_then(|r| daemon.shared.spec(r).ok())
                .is_some_and(|s| crate::rules::completes_on_end(s.repeat, conclusion.state))
            {
                tracing::info!(job = %job, "the job has completed (repeat until success)");
                daemon.reload.store(true, Ordering::SeqCst);
                daemon.wake_scheduler.notify_one();
            }
            // A place freed: the end's own transaction already claimed every pending run
            // that could start (`Claim::ReleasedFirst`), so the executor looks again only
            // for what that claim could not see: a retry queued for later, or a pending run
            // due later whose time the executor did not learn because its last turn found
            // no place (issue 14: at a burst's tail, one thread hop and three ledger reads
            // less per run).
            if daemon.room.free() > 0
                && (conclusion.retry_at.is_some() || daemon.executor_blind.load(Ordering::SeqCst))
            {
                daemon.wake_executor.notify_one();
            }
            daemon.idle.notify_waiters();
        });
    }
}
