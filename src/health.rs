//! The daemon's own health: whether it can write the ledger and whether its scheduler is alive.
//!
//! Readiness (`/readyz`) means "this daemon can keep its promises": a ledger it cannot write
//! (a full disk, a read-only mount, corrupt pages) or a scheduler that stopped or is stuck
//! breaks them even though the process answers HTTP. The writers (run ends, claims, slots,
//! output) report each failure and each success here; the scheduler reports when it is busy
//! and when it stops. This module only keeps the facts; it decides nothing and writes nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the scheduler may spend on one round before the daemon is not ready.
pub const SCHEDULER_STUCK: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Health {
    /// The last failed ledger write, cleared by the next write that succeeds.
    write_error: Mutex<Option<String>>,
    /// The last error of the scheduler's reads (jobs it cannot load), cleared on success.
    scheduler_error: Mutex<Option<String>>,
    scheduler_started: AtomicBool,
    scheduler_stopped: AtomicBool,
    scheduler_busy_since: Mutex<Option<Instant>>,
}

/// What keeps the daemon from being ready; `None` when it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems {
    pub ledger: Option<String>,
    pub scheduler: Option<String>,
}

impl Health {
    /// A write failed (`what` says which: "recording a run's end").
    pub fn write_failed(&self, what: &str, error: &str) {
        *lock(&self.write_error) = Some(format!("{what}: {error}"));
    }

    /// A write committed: the ledger can be written.
    pub fn write_succeeded(&self) {
        let mut error = lock(&self.write_error);
        if error.is_some() {
            tracing::info!("the ledger can be written again");
            *error = None;
        }
    }

    /// The scheduler could not read what it needs (`None`: it could).
    pub fn scheduler_read(&self, error: Option<String>) {
        *lock(&self.scheduler_error) = error;
    }

    /// The scheduler starts a round (`true`) or finished it (`false`).
    pub fn scheduler_busy(&self, busy: bool) {
        self.scheduler_started.store(true, Ordering::SeqCst);
        *lock(&self.scheduler_busy_since) = busy.then(Instant::now);
    }

    /// The scheduler's loop has ended (it returned or panicked).
    pub fn scheduler_stopped(&self) {
        self.scheduler_stopped.store(true, Ordering::SeqCst);
    }

    /// The last write error, if the last write failed.
    pub fn write_error(&self) -> Option<String> {
        lock(&self.write_error).clone()
    }

    /// What keeps the daemon from being ready.
    pub fn problems(&self) -> Problems {
        let scheduler = if self.scheduler_stopped.load(Ordering::SeqCst) {
            Some("the scheduler has stopped".to_string())
        } else if let Some(since) = *lock(&self.scheduler_busy_since)
            && since.elapsed() > SCHEDULER_STUCK
        {
            Some(format!(
                "the scheduler has been busy for {} s",
                since.elapsed().as_secs()
            ))
        } else if !self.scheduler_started.load(Ordering::SeqCst) {
            Some("the scheduler has not started".to_string())
        } else {
            lock(&self.scheduler_error).clone()
        };
        Problems {
            ledger: self.write_error(),
            scheduler,
        }
    }
}

/// Marks the scheduler stopped when dropped: its loop ended, by a return or a panic.
pub struct SchedulerGuard<'a>(pub &'a Health);

impl Drop for SchedulerGuard<'_> {
    fn drop(&mut self) {
        self.0.scheduler_stopped();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_writes_and_the_scheduler() {
        let health = Health::default();
        assert_eq!(
            health.problems().scheduler.as_deref(),
            Some("the scheduler has not started")
        );
        health.scheduler_busy(false);
        assert_eq!(
            health.problems(),
            Problems {
                ledger: None,
                scheduler: None
            }
        );
        health.write_failed("recording a run's end", "database or disk is full");
        assert_eq!(
            health.problems().ledger.as_deref(),
            Some("recording a run's end: database or disk is full")
        );
        health.write_succeeded();
        assert_eq!(health.problems().ledger, None);
        health.scheduler_read(Some("loading jobs: corrupt".into()));
        assert_eq!(
            health.problems().scheduler.as_deref(),
            Some("loading jobs: corrupt")
        );
        health.scheduler_read(None);
        drop(SchedulerGuard(&health));
        assert_eq!(
            health.problems().scheduler.as_deref(),
            Some("the scheduler has stopped")
        );
    }
}
