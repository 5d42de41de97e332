//! Shutdown: runs finish within the grace, then are stopped; the lease is given back.

use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::{Daemon, SHUTDOWN_REPORT_EVERY};
use crate::executor::NOTIFY_GRACE;
use crate::runner::Stop;

impl Daemon {
    /// SIGTERM/SIGINT: stop firing, let runs finish for `shutdown_grace`, then stop them;
    /// every few seconds, say which runs it waits for. A second signal (`again`) stops them at
    /// once (SIGKILL, recorded as the runs' end reason).
    pub(super) async fn shutdown(
        &self,
        why: &str,
        again: std::pin::Pin<Box<dyn std::future::Future<Output = &'static str> + Send>>,
    ) {
        use futures_util::FutureExt as _;
        let mut again = again.fuse();
        self.stopping.store(true, Ordering::SeqCst);
        self.wake_scheduler.notify_one();
        self.wake_executor.notify_one();
        let active = self.active.load(Ordering::SeqCst);
        tracing::info!(signal = why, active, "shutting down");
        let grace = StdDuration::try_from(self.options.daemon.shutdown_grace.as_signed())
            .unwrap_or_default();
        let grace_ends = tokio::time::Instant::now() + grace;
        // Phase 1: runs finish on their own, until the grace ends or a second signal.
        let mut forced: Option<&'static str> = None;
        let mut report = tokio::time::Instant::now();
        let finished = loop {
            report += SHUTDOWN_REPORT_EVERY;
            tokio::select! {
                () = self.wait_idle() => break true,
                second = &mut again => {
                    forced = Some(second);
                    break false;
                }
                () = tokio::time::sleep_until(report.min(grace_ends)) => {
                    if tokio::time::Instant::now() >= grace_ends {
                        break false;
                    }
                    let left = grace_ends - tokio::time::Instant::now();
                    self.report_waiting(&format!(
                        "waiting up to {} more for runs to finish; send SIGTERM or SIGINT again to stop them now",
                        crate::duration::Duration::from_secs(left.as_secs_f64().ceil() as i64)
                    ));
                }
            }
        };
        if !finished {
            match forced {
                Some(second) => tracing::warn!(
                    signal = second,
                    runs = self.active.load(Ordering::SeqCst),
                    "second {second}: stopping the runs at once"
                ),
                None => tracing::warn!(
                    runs = self.active.load(Ordering::SeqCst),
                    "runs still active after the shutdown grace; terminating them"
                ),
            }
            self.stop_all(why, forced);
            // Phase 2: every run ends within its kill grace (and the drain after it); only an
            // end that cannot be written (a full disk) waits longer. Past this, give up on
            // those: the next daemon ends them as interrupted.
            let ends = tokio::time::Instant::now()
                + self.shared.kill_grace * 2
                + StdDuration::from_secs(10);
            let mut report = tokio::time::Instant::now();
            let ended = loop {
                report += SHUTDOWN_REPORT_EVERY;
                tokio::select! {
                    () = self.wait_idle() => break true,
                    second = &mut again, if forced.is_none() => {
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
        self.shared.notified(NOTIFY_GRACE).await;
        // Whatever still waits to write (an orphan check on a full disk) stops waiting.
        self.shared.give_up_writes();
        let _ = self.shared.ledger().release_lease(self.epoch, self.now());
        // The write-ahead log folded into the database file: a copy of `ledger.db` alone,
        // taken after a clean stop, holds everything.
        if let Err(e) = self.shared.ledger().checkpoint() {
            tracing::warn!("folding the write-ahead log into the ledger: {e}");
        }
        tracing::info!("jobs serve stopped");
    }

    /// Asks every run to stop: SIGTERM then SIGKILL after the kill grace, or SIGKILL at once
    /// after a second signal (`forced`).
    pub(super) fn stop_all(&self, why: &str, forced: Option<&str>) {
        let stops: Vec<watch::Sender<Option<Stop>>> = self
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let stop = match forced {
            Some(second) => Stop {
                reason: format!(
                    "the daemon shut down ({why}, then {second} again: killed at once)"
                ),
                now: true,
            },
            None => Stop::graceful(format!("the daemon shut down ({why})")),
        };
        for sender in stops {
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
                    active = self.active.load(Ordering::SeqCst),
                    "{message} (the ledger cannot say which: {e})"
                );
                return;
            }
        };
        let waiting: Vec<String> = runs
            .iter()
            .filter(|r| r.state == "running")
            .map(|r| {
                let running = r
                    .started_at
                    .as_deref()
                    .and_then(|s| s.parse::<Timestamp>().ok())
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
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}
