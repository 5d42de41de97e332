//! The executor: runs one claimed run and records everything about it in the ledger.
//!
//! Shared by the daemon (which claims pending runs) and by `jobctl run` (which creates its run
//! already running, in the foreground). It executes the run's *revision*, as recorded in the
//! ledger, not whatever the job file says now. Output lines are written in batches (every
//! 100 ms or 256 lines); the run's end, and the retry it may cause, are one transaction.

mod launch;
mod record;
mod revisions;
mod supervise;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration as StdDuration;

use crate::clock::Clock;
use crate::ledger::{Ledger, NewRun, RunEnd};
use crate::metrics::Metrics;
use crate::runner::Inherited;
use crate::spec::{Defaults, JobSpec};
use revisions::RevisionCache;
use writer::{EndWaiter, NewRunResult};

/// How long a stopping daemon or a foreground `jobctl run` waits for notifications in flight.
pub const NOTIFY_GRACE: StdDuration = StdDuration::from_secs(30);

/// What every run of a process shares: the ledger connection, the clock, and parsed revisions.
pub struct Shared {
    pub ledger: Mutex<Ledger>,
    pub clock: Clock,
    /// The daemon's lease epoch; `None` for a foreground `jobctl run`.
    pub epoch: Option<i64>,
    pub kill_grace: StdDuration,
    pub defaults: Defaults,
    /// The folder holding the jobs folder (absolute): where runs start, and what a relative
    /// `working_dir` is relative to, whatever the daemon's own current directory.
    pub base_dir: std::path::PathBuf,
    specs: Mutex<RevisionCache<JobSpec>>,
    /// Run ends waiting to be written. Whoever next holds the ledger writes all of them in one
    /// transaction, so runs ending together share one disk sync (group commit).
    ends: Mutex<Vec<(RunEnd, EndWaiter)>>,
    /// Whether a writer of queued ends runs ([`Shared::finish_queued`]).
    writing_ends: std::sync::atomic::AtomicBool,
    /// Bumped after each write about a run (its start, output, end): what `logs?follow`
    /// waits on.
    progress: tokio::sync::watch::Sender<u64>,
    pub metrics: Arc<Metrics>,
    /// Runs to create (API triggers), written together like the ends.
    new_runs: Mutex<Vec<(NewRun, Arc<NewRunResult>)>>,
    /// Processes started, to record (pid and `started` event), written together like the
    /// ends: a burst's starts share a commit.
    starts: Mutex<Vec<crate::ledger::ProcessStarted>>,
    /// Notifications being sent; finished ones are reaped at each new one.
    notifying: Mutex<tokio::task::JoinSet<()>>,
    /// What sends them (its HTTP agent and mail transport built once); set by the process
    /// from `jobs.toml`, else one with the system's trust and no mail server.
    notifier: OnceLock<Arc<crate::notify::Notifier>>,
    /// The client of `http` and `prompt` runs, built at the first (its connections are kept
    /// between runs); `None` if it could not be set up.
    requests: OnceLock<Option<reqwest::Client>>,
    /// The daemon's executor, when it runs one: a run's end then claims the runs it released
    /// in the same transaction.
    claimer: OnceLock<Claimer>,
    /// The dependency graph that run ends release runs by (see `Ledger::finish_runs`).
    graph: std::sync::RwLock<Arc<crate::graph::Graph>>,
    /// Whether the ledger can be written and the scheduler lives: what readiness reports.
    pub health: crate::health::Health,
    /// The variables holding webhook secrets, which runs do not inherit.
    secret_vars: Mutex<std::collections::HashSet<String>>,
    /// [`Shared::inherited_env`] as of the first run after what is scrubbed last changed.
    inherited: Mutex<Option<Arc<Inherited>>>,
    /// Set when the process must exit although run ends could not be written: they stop
    /// being retried (the next daemon ends those runs as interrupted).
    giving_up: std::sync::atomic::AtomicBool,
}

/// What the service manager gives the daemon, never meant for its runs: a run that wrote to
/// `NOTIFY_SOCKET` would speak for the daemon.
const SUPERVISOR_VARS: &[&str] = &["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Where a foreground run's output also goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    None,
    Terminal,
}

impl Shared {
    pub fn new(
        ledger: Ledger,
        clock: Clock,
        epoch: Option<i64>,
        kill_grace: StdDuration,
        defaults: Defaults,
        jobs_dir: &std::path::Path,
    ) -> Shared {
        Shared {
            ledger: Mutex::new(ledger),
            clock,
            epoch,
            kill_grace,
            defaults,
            base_dir: base_dir(jobs_dir),
            specs: Mutex::new(RevisionCache::new()),
            ends: Mutex::new(Vec::new()),
            writing_ends: std::sync::atomic::AtomicBool::new(false),
            progress: tokio::sync::watch::Sender::new(0),
            metrics: Arc::new(Metrics::new()),
            new_runs: Mutex::new(Vec::new()),
            starts: Mutex::new(Vec::new()),
            notifying: Mutex::new(tokio::task::JoinSet::new()),
            notifier: OnceLock::new(),
            requests: OnceLock::new(),
            claimer: OnceLock::new(),
            graph: std::sync::RwLock::default(),
            health: crate::health::Health::default(),
            secret_vars: Mutex::new(std::collections::HashSet::new()),
            inherited: Mutex::new(None),
            giving_up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Names the variables that hold webhook secrets (`secret_env` of every job): runs do not
    /// inherit them.
    pub fn set_secret_vars(&self, names: impl IntoIterator<Item = String>) {
        *self
            .secret_vars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = names.into_iter().collect();
        self.forget_inherited_env();
    }

    /// What runs inherit of the daemon's environment, less [`Shared::scrubbed_env`]: built
    /// once, ready for the spawn (`runner::spawn`), and kept until what is scrubbed changes rather than read
    /// from the whole environment for every run (the daemon never changes its own
    /// environment): issue 14's burst.
    pub fn inherited_env(&self) -> Arc<Inherited> {
        let mut cached = self
            .inherited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cached
            .get_or_insert_with(|| Arc::new(Inherited::new(self.scrubbed_env())))
            .clone()
    }

    fn forget_inherited_env(&self) {
        *self
            .inherited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// What a run must not inherit from this process's environment: every `JOBS_*` variable
    /// (the daemon's settings, its admin token above all; a run's own `JOBS_*` are set anew)
    /// and the variables holding webhook secrets and the SMTP password.
    fn scrubbed_env(&self) -> Vec<String> {
        let smtp_password = self
            .notifier
            .get()
            .and_then(|n| n.secret_var().map(str::to_string));
        let secrets = self
            .secret_vars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| {
                k.starts_with("JOBS_")
                    || SUPERVISOR_VARS.contains(&k.as_str())
                    || secrets.contains(k)
                    || smtp_password.as_deref() == Some(k.as_str())
            })
            .collect()
    }

    /// Sets what sends notifications; once, before the first run ends.
    pub fn set_notifier(&self, notifier: crate::notify::Notifier) {
        let _ = self.notifier.set(Arc::new(notifier));
        self.forget_inherited_env();
    }

    /// The client of `http` and `prompt` runs, trusting what notifications trust.
    pub fn http_client(&self) -> Option<reqwest::Client> {
        self.requests
            .get_or_init(|| {
                crate::runner::client(self.notifier().extra_roots())
                    .inspect_err(|e| tracing::error!("setting up the HTTP client: {e}"))
                    .ok()
            })
            .clone()
    }

    fn notifier(&self) -> Arc<crate::notify::Notifier> {
        self.notifier
            .get_or_init(|| {
                let plain = crate::notify::Notifier::new(
                    &crate::config::NotifyConfig::default(),
                    crate::host::hostname(),
                    crate::notify::Policy::default(),
                );
                Arc::new(plain.expect("a notifier without a CA file or a mail server builds"))
            })
            .clone()
    }

    /// Stops retrying run ends that cannot be written: the process is about to exit.
    pub fn give_up_writes(&self) {
        self.giving_up
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets the daemon claim runs, and run ends claim the runs they release (see [`Claimer`]);
    /// set once by the daemon.
    /// Sets the dependency graph run ends release runs by: the daemon's, at each load.
    pub fn set_graph(&self, graph: Arc<crate::graph::Graph>) {
        *self
            .graph
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = graph;
    }

    /// The dependency graph run ends release runs by.
    pub fn graph(&self) -> Arc<crate::graph::Graph> {
        self.graph
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Builds the dependency graph from the ledger's active jobs (for a run outside the
    /// daemon, so its end releases what a daemon's would): only the jobs on a link are
    /// parsed.
    ///
    /// # Errors
    ///
    /// On a ledger failure.
    pub fn load_graph(&self) -> crate::ledger::Result<crate::graph::Graph> {
        let rows = self.ledger().jobs_listed()?;
        let view = crate::views::graph(&rows);
        let linked: std::collections::BTreeSet<&str> = view
            .edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .collect();
        let specs: Vec<Arc<JobSpec>> = rows
            .iter()
            .filter(|r| r.active && linked.contains(r.name.as_str()))
            .filter_map(|r| self.spec(r.revision_id).ok())
            .collect();
        Ok(crate::graph::Graph::new(specs.iter().map(|s| &**s)))
    }

    pub fn set_claimer(&self, claimer: Claimer) {
        let _ = self.claimer.set(claimer);
    }

    /// Waits for the notifications in flight (at most `limit`): before a foreground `jobctl run`
    /// exits, and when the daemon shuts down.
    pub async fn notified(&self, limit: StdDuration) {
        let mut tasks = std::mem::take(
            &mut *self
                .notifying
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("notifications still being sent were abandoned");
            tasks.detach_all();
        }
    }

    /// Locks the ledger. A panic while it was held cannot leave a transaction open (rusqlite
    /// rolls back on drop), so a poisoned lock is still usable.
    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver that changes after each write about a run.
    pub fn progress(&self) -> tokio::sync::watch::Receiver<u64> {
        self.progress.subscribe()
    }

    fn progressed(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }
}

pub use launch::{base_dir, run_action, run_env};
pub use record::{Persist, record_end};
pub use revisions::{RevisionError, parse_definition};
pub use supervise::run_and_record;
pub use writer::{Claimer, Room, WriteFailed};
