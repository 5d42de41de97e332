//! Shutdown: runs finish within the grace, then are stopped; the lease is given back.

use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use crate::run::RunState;

use super::{Daemon, SHUTDOWN_REPORT_EVERY};
use crate::executor::NOTIFY_GRACE;
use crate::runner::Stop;

/// A second SIGTERM or SIGINT while shutting down: which one.
pub(super) type Again = std::pin::Pin<Box<dyn std::future::Future<Output = &'static str> + Send>>;

impl Daemon {
    /// SIGTERM/SIGINT (or a lost lease, with no grace): stop firing, let runs finish for
    /// `grace`, then stop them; every few seconds, say which runs it waits for. A second
    /// signal (`again`) stops them at once (SIGKILL, recorded as the runs' end reason).
    /// Notifications in flight are waited for, and the lease given back.
    pub(super) async fn shutdown(&self, why: &str, grace: StdDuration, again: Again) {
        use futures_util::FutureExt as _;
        let mut again = again.fuse();
        self.stopping.store(true, Ordering::SeqCst);
        self.room.close();
        self.wake_scheduler.notify_one();
        self.wake_executor.notify_one();
        let active = self.room.active();
        tracing::info!(signal = why, active, "shutting down");
        // Phase 1: runs finish on their own, until the grace ends or a second signal.
        let (finished, forced) = self.wait_grace(grace, &mut again).await;
        if !finished {
            self.stop_and_wait(why, forced, &mut again).await;
        }
        self.shared.notified(NOTIFY_GRACE).await;
        // Starts no end carried (an end that could not be written) are written on their own.
        if let Err(e) = self.shared.flush_starts() {
            tracing::warn!("recording the processes runs started: {e}");
        }
        // Whatever still waits to write (an orphan check on a full disk) stops waiting.
        self.shared.give_up_writes();
        let now = self
            .shared
            .ledger()
            .db_now(self.now())
            .unwrap_or_else(|_| self.now());
        if let Err(e) = self
            .shared
            .ledger()
            .leave(&self.node_name(), self.epoch, now)
        {
            tracing::warn!("recording that this node stopped: {e}");
        }
        // The next leader need not wait for the lease to run out.
        if let Some(term) = self.term() {
            let _ = self.shared.ledger().release_lease(term, now);
        }
        // The write-ahead log folded into the database file: a copy of `ledger.db` alone,
        // taken after a clean stop, holds everything.
        if let Err(e) = self.shared.ledger().checkpoint() {
            tracing::warn!("folding the write-ahead log into the ledger: {e}");
        }
        tracing::info!("jobs serve stopped");
    }

    /// Waits up to `grace` for the runs to finish; whether they did, and the second signal
    /// that cut the wait short, if one did.
    async fn wait_grace(
        &self,
        grace: StdDuration,
        again: &mut futures_util::future::Fuse<Again>,
    ) -> (bool, Option<&'static str>) {
        let grace_ends = tokio::time::Instant::now() + grace;
        let mut report = tokio::time::Instant::now();
        loop {
            report += SHUTDOWN_REPORT_EVERY;
            tokio::select! {
                () = self.wait_idle() => return (true, None),
                second = &mut *again => return (false, Some(second)),
                () = tokio::time::sleep_until(report.min(grace_ends)) => {
                    if tokio::time::Instant::now() >= grace_ends {
                        return (false, None);
                    }
                    let left = grace_ends - tokio::time::Instant::now();
                    self.report_waiting(&format!(
                        "waiting up to {} more for runs to finish; send SIGTERM or SIGINT again to stop them now",
                        crate::duration::Duration::from_secs(left.as_secs_f64().ceil() as i64)
                    ));
                }
            }
        }
    }

    /// Phase 2: stops the runs and waits for them. Every run ends within its kill grace (and
    /// the drain after it); only an end that cannot be written (a full disk) waits longer.
    /// Past this, give up on those: the next daemon ends them as interrupted.
    async fn stop_and_wait(
        &self,
        why: &str,
        mut forced: Option<&'static str>,
        again: &mut futures_util::future::Fuse<Again>,
    ) {
        match forced {
            Some(second) => tracing::warn!(
                signal = second,
                runs = self.room.active(),
                "second {second}: stopping the runs at once"
            ),
            None => tracing::warn!(
                runs = self.room.active(),
                "runs still active after the shutdown grace; terminating them"
            ),
        }
        self.stop_all(why, forced);
        let ends =
            tokio::time::Instant::now() + self.shared.kill_grace * 2 + StdDuration::from_secs(10);
        let mut report = tokio::time::Instant::now();
        let ended = loop {
            report += SHUTDOWN_REPORT_EVERY;
            tokio::select! {
                () = self.wait_idle() => break true,
                second = &mut *again, if forced.is_none() => {
                    tracing::warn!(signal = second, "second {second}: stopping the runs at once");
                    forced = Some(second);
                    self.stop_all(why, forced);
                }
                () = tokio::time::sleep_until(report.min(ends)) => {
                    if tokio::time::Instant::now() >= ends {
                        break false;
                    }
                    self.report_waiting("waiting for stopped runs to end");
                }
            }
        };
        if !ended {
            tracing::error!(
                error = self.shared.health.write_error().unwrap_or_default(),
                "run ends could not be written; exiting without them"
            );
            self.shared.give_up_writes();
            self.wait_idle().await;
        }
    }

    /// Asks every run to stop: SIGTERM then SIGKILL after the kill grace, or SIGKILL at once
    /// after a second signal (`forced`).
    pub(super) fn stop_all(&self, why: &str, forced: Option<&str>) {
        let stop = match forced {
            Some(second) => Stop {
                reason: format!(
                    "the daemon shut down ({why}, then {second} again: killed at once)"
                ),
                now: true,
                lost: false,
            },
            None => Stop::graceful(format!("the daemon shut down ({why})")),
        };
        // Runs claimed but not yet started get it when they start.
        let mut stops = self
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stops.all = Some(stop.clone());
        for sender in stops.running.values() {
            let _ = sender.send(Some(stop.clone()));
        }
    }

    /// Logs which runs shutdown waits for: job, run id and how long each has run.
    pub(super) fn report_waiting(&self, message: &str) {
        let now = self.now();
        let runs = match self.shared.ledger().active_runs() {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(
                    active = self.room.active(),
                    "{message} (the ledger cannot say which: {e})"
                );
                return;
            }
        };
        let waiting: Vec<String> = runs
            .iter()
            .filter(|r| r.state == RunState::Running)
            .map(|r| {
                let running = r
                    .started_at
                    .map(|t| {
                        let secs = now.duration_since(t).as_secs().max(0);
                        format!(" (running {})", crate::duration::Duration::from_secs(secs))
                    })
                    .unwrap_or_default();
                format!("{} run {}{running}", r.job, r.id)
            })
            .collect();
        tracing::info!(
            runs = waiting.len(),
            waiting_for = waiting.join(", "),
            "{message}: {}",
            if waiting.is_empty() {
                "runs ending".to_string()
            } else {
                waiting.join(", ")
            }
        );
    }

    pub(super) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.room.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}
