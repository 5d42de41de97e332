//! The executor: runs one claimed run and records everything about it in the ledger.
//!
//! Shared by the daemon (which claims pending runs) and by `jobctl run` (which creates its run
//! already running, in the foreground). It executes the run's *revision*, as recorded in the
//! ledger, not whatever the job file says now. Output lines are written in batches (every
//! 100 ms or 256 lines); the run's end, and the retry it may cause, are one transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration as StdDuration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::ledger::{Finish, Ledger, NewRun, RunEnd, RunRow, stamp};
use crate::metrics::{JobLabel, JobState, Metrics};
use crate::run::{self, Conclusion, Ending, Trigger};
use crate::runner::{self, Launch, Report, Stop};
use crate::spec::{self, Defaults, JobSpec};

const FLUSH_EVERY: StdDuration = StdDuration::from_millis(100);
const FLUSH_LINES: usize = 256;
/// The first wait before a failed run end is written again; it doubles up to the maximum.
const REWRITE_FIRST: StdDuration = StdDuration::from_millis(100);
const REWRITE_MAX: StdDuration = StdDuration::from_secs(5);

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
    ends: Mutex<Vec<(RunEnd, Arc<EndResult>)>>,
    /// Bumped after each write about a run (its start, output, end): what `logs?follow`
    /// waits on.
    progress: tokio::sync::watch::Sender<u64>,
    pub metrics: Arc<Metrics>,
    /// Runs to create (API triggers), written together like the ends.
    new_runs: Mutex<Vec<(NewRun, Arc<NewRunResult>)>>,
    /// Notifications being sent; finished ones are reaped at each new one.
    notifying: Mutex<tokio::task::JoinSet<()>>,
    /// What sends them (its HTTP agent and mail transport built once); set by the process
    /// from `jobs.toml`, else one with the system's trust and no mail server.
    notifier: OnceLock<Arc<crate::notify::Notifier>>,
    /// The daemon's executor, when it runs one: a run's end then claims the runs it released
    /// in the same transaction.
    claimer: OnceLock<Claimer>,
    /// Whether the ledger can be written and the scheduler lives: what readiness reports.
    pub health: crate::health::Health,
    /// The variables holding webhook secrets, which runs do not inherit.
    secret_vars: Mutex<std::collections::HashSet<String>>,
    /// Set when the process must exit although run ends could not be written: they stop
    /// being retried (the next daemon ends those runs as interrupted).
    giving_up: std::sync::atomic::AtomicBool,
}

/// How a run's end claims the runs its end released (a dependency hand-off) in its own
/// transaction, one disk sync instead of two: the daemon's lease, its room for more runs, and
/// how it starts them.
pub struct Claimer {
    pub epoch: i64,
    pub supervisor: (i64, i64),
    /// How many more runs may start, given how many of the daemon's runs end in the same
    /// transaction (their processes are gone; their tasks still count until they return).
    pub room: Box<dyn Fn(usize) -> usize + Send + Sync>,
    pub start: Box<dyn Fn(Vec<RunRow>) + Send + Sync>,
}

type EndResult = OnceLock<Result<Option<i64>, String>>;
type NewRunResult = OnceLock<Result<RunRow, WriteFailed>>;

/// What the service manager gives the daemon, never meant for its runs: a run that wrote to
/// `NOTIFY_SOCKET` would speak for the daemon.
const SUPERVISOR_VARS: &[&str] = &["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

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
            progress: tokio::sync::watch::Sender::new(0),
            metrics: Arc::new(Metrics::new()),
            new_runs: Mutex::new(Vec::new()),
            notifying: Mutex::new(tokio::task::JoinSet::new()),
            notifier: OnceLock::new(),
            claimer: OnceLock::new(),
            health: crate::health::Health::default(),
            secret_vars: Mutex::new(std::collections::HashSet::new()),
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
    }

    /// What a run must not inherit from this process's environment: every `JOBS_*` variable
    /// (the daemon's settings, its admin token above all; a run's own `JOBS_*` are set anew)
    /// and the variables holding webhook secrets and the SMTP password.
    pub fn scrubbed_env(&self) -> Vec<String> {
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
    }

    fn notifier(&self) -> Arc<crate::notify::Notifier> {
        self.notifier
            .get_or_init(|| {
                let plain = crate::notify::Notifier::new(
                    &crate::config::NotifyConfig::default(),
                    crate::daemon::hostname(),
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

    /// Lets run ends claim the runs they release (see [`Claimer`]); set once by the daemon.
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
                //
                // The places the ends free go to the next pending runs in this transaction
                // too (issue 14): a burst of runs through the concurrency limit then costs one
                // disk sync per turn, not one for the ends and another for the executor's
                // claim.
                Some(c) if ledger.has_graph() => {
                    let now = self.clock.now();
                    if let Ok(runs) = self.write_queued(&mut ledger, |ledger, ends| {
                        let room = (c.room)(ending_here(ends, c.epoch));
                        ledger.finish_and_claim(
                            ends,
                            crate::ledger::Claim::ReleasedFirst,
                            c.epoch,
                            c.supervisor,
                            now,
                            room,
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

    /// Claims pending runs for the daemon of `epoch`, as many as `room(ending)` says once the
    /// ledger is held (`ending`: how many of this daemon's runs end in the same transaction),
    /// writing the queued run ends in the same transaction, and hands them to `start`
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
        room: impl FnOnce(usize) -> usize,
        start: impl FnOnce(Vec<RunRow>),
    ) -> crate::ledger::Result<()> {
        let mut ledger = self.ledger();
        let now = self.clock.now();
        let runs = self.write_queued(&mut ledger, |ledger, ends| {
            let max = room(ending_here(ends, epoch));
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
    fn write_queued<T>(
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

    fn queued_ends(&self) -> std::sync::MutexGuard<'_, Vec<(RunEnd, Arc<EndResult>)>> {
        self.ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The job spec of a revision, parsed from its recorded definition once and cached.
    ///
    /// # Errors
    ///
    /// A message when the revision is missing or its definition does not parse.
    pub fn spec(&self, revision_id: i64) -> Result<Arc<JobSpec>, String> {
        if let Some(spec) = self
            .specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(revision_id)
        {
            return Ok(spec);
        }
        let (job, definition) = self
            .ledger()
            .revision_definition(revision_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("revision {revision_id} is not in the ledger"))?;
        let spec = parse_definition(&job, &definition, &self.defaults, self.clock.now())?;
        let spec = Arc::new(spec);
        self.specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(revision_id, &job, spec.clone());
        Ok(spec)
    }
}

/// How many of `ends` are runs of the daemon of `epoch` (claimed under it): their places are
/// free once the ends are written.
fn ending_here(ends: &[RunEnd], epoch: i64) -> usize {
    ends.iter().filter(|end| end.epoch == Some(epoch)).count()
}

/// The folder holding `jobs_dir`, absolute (symlinks kept: a `jobs.d` link switched between
/// releases still runs jobs in the folder that holds the link).
pub fn base_dir(jobs_dir: &std::path::Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(jobs_dir).unwrap_or_else(|_| jobs_dir.to_path_buf());
    match absolute.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => absolute,
    }
}

/// Parses a revision's recorded definition back into its spec.
///
/// # Errors
///
/// The first error, when the definition does not parse (a ledger edited by hand).
pub fn parse_definition(
    job: &str,
    definition: &str,
    defaults: &Defaults,
    now: Timestamp,
) -> Result<JobSpec, String> {
    let path = format!("{job}.yaml");
    let parsed = spec::parse_recorded(
        &path,
        definition.as_bytes(),
        spec::Context { defaults, now },
    );
    parsed.spec.ok_or_else(|| {
        parsed
            .diagnostics
            .first()
            .map_or_else(|| "invalid definition".to_string(), ToString::to_string)
    })
}

/// The environment of a run: the job's `env`, its parameters as `JOBS_PARAM_NAME`, and the
/// run's identity.
pub fn run_env(spec: &JobSpec, run: &RunRow) -> BTreeMap<String, String> {
    let values = param_values(spec, run);
    let mut env: BTreeMap<String, String> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), crate::template::render(v, &values)))
        .collect();
    for (name, value) in &values {
        env.insert(crate::template::param_env_var(name), value.clone());
    }
    env.insert("JOBS_JOB".into(), run.job.clone());
    env.insert("JOBS_RUN_ID".into(), run.id.to_string());
    env.insert(
        "JOBS_SCHEDULED_AT".into(),
        run.scheduled_at.clone().unwrap_or_default(),
    );
    env.insert("JOBS_ATTEMPT".into(), run.attempt.to_string());
    env
}

/// A run's parameter values: those given, else the declared defaults.
fn param_values(spec: &JobSpec, run: &RunRow) -> BTreeMap<String, String> {
    spec.params
        .iter()
        .filter_map(|(name, param)| {
            let given = run
                .params
                .as_ref()
                .and_then(|p| p.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            given
                .or_else(|| param.default.clone())
                .map(|value| (name.clone(), value))
        })
        .collect()
}

/// The job's action for this run: `{{ params.NAME }}` substituted in each `command` element
/// (which stays one argv element); a `run` script as written.
pub fn run_action(spec: &JobSpec, run: &RunRow) -> spec::Action {
    match &spec.action {
        spec::Action::Command(argv) => {
            let values = param_values(spec, run);
            spec::Action::Command(
                argv.iter()
                    .map(|a| crate::template::render(a, &values))
                    .collect(),
            )
        }
        script => script.clone(),
    }
}

/// Runs `run` (already `running` in the ledger) to its end and records it. Returns how it
/// concluded.
pub async fn run_and_record(
    shared: Arc<Shared>,
    run: RunRow,
    stop: watch::Receiver<Option<Stop>>,
    echo: Echo,
) -> Conclusion {
    let spec = match run
        .revision_id
        .ok_or_else(|| "the run has no revision".to_string())
    {
        Ok(id) => shared.spec(id),
        Err(e) => Err(e),
    };
    let spec = match spec {
        Ok(spec) => spec,
        Err(message) => {
            let ending =
                Ending::SpawnFailed(format!("cannot read the job's definition: {message}"));
            // Off the runtime's threads: the end may wait for the ledger to be writable.
            let fallback = ending.clone();
            let (s, r) = (shared.clone(), run.clone());
            return tokio::task::spawn_blocking(move || {
                record_end(&s, &r, None, &ending, None, Persist::UntilWritten)
            })
            .await
            .unwrap_or_else(|_| {
                run::conclude(&fallback, None, run.attempt as u32, shared.clock.now())
            });
        }
    };
    let launch = Launch {
        action: run_action(&spec, &run),
        env: run_env(&spec, &run),
        working_dir: Some(
            shared
                .base_dir
                .join(spec.working_dir.as_deref().unwrap_or("."))
                .to_string_lossy()
                .into_owned(),
        ),
        timeout: spec
            .timeout
            .and_then(|t| StdDuration::try_from(t.as_signed()).ok()),
        kill_grace: shared.kill_grace,
        output_limit: spec.output_limit.0,
        tag: runner::run_tag(run.supervisor.unwrap_or_else(runner::this_process), run.id),
        scrub: shared.scrubbed_env(),
    };
    let (tx, mut rx) = mpsc::channel::<Report>(1024);
    let process = tokio::spawn(runner::execute(launch, shared.clock, tx, stop));
    let mut batch: Vec<(Timestamp, &'static str, String)> = Vec::new();
    let mut bytes: i64 = 0;
    let mut truncated = false;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            report = rx.recv() => match report {
                None => break,
                Some(Report::Line(line)) => {
                    bytes += line.text.len() as i64 + 1;
                    if echo == Echo::Terminal {
                        echo_line(&line);
                    }
                    batch.push((line.at, line.stream, line.text));
                    if batch.len() >= FLUSH_LINES {
                        flush(&shared, run.id, &mut batch, bytes, truncated);
                    }
                }
                Some(Report::Started { pid, start_time, at }) => {
                    tracing::info!(run = run.id, job = %run.job, pid, "process started");
                    let message = format!("process {pid} started (attempt {})", run.attempt);
                    // The ledger may be held for a disk sync (another run's end, a claim):
                    // wait for it on a blocking thread, not on one of the runtime's two
                    // workers, which spawn the other runs of a burst meanwhile (issue 14).
                    let (s, id) = (shared.clone(), run.id);
                    let _ = tokio::task::spawn_blocking(move || {
                        log_ledger_error(s.ledger().set_process(id, pid, start_time, &message, at));
                    })
                    .await;
                    shared.progressed();
                    if let Some(due) = run.scheduled_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok()) {
                        let late = at.duration_since(due).as_secs_f64().max(0.0);
                        shared.metrics.fire_latency.observe(late);
                    }
                }
                Some(Report::Truncated { at_bytes }) => {
                    truncated = true;
                    let message = format!("output passed its limit of {}; later output is dropped", crate::size::ByteSize(at_bytes));
                    log_ledger_error(shared.ledger().add_event(run.id, shared.clock.now(), "output_truncated", &message));
                    if echo == Echo::Terminal {
                        eprintln!("jobctl: {message}");
                    }
                }
                Some(Report::OutputCut { why }) => {
                    tracing::warn!(run = run.id, job = %run.job, "{why}");
                    log_ledger_error(shared.ledger().add_event(run.id, shared.clock.now(), "output_cut", &why));
                }
                Some(Report::Signalled { signal, why }) => {
                    let message = format!("sent {} to the process group: {why}", run::signal_name(signal));
                    log_ledger_error(shared.ledger().add_event(run.id, shared.clock.now(), "signal", &message));
                }
            },
            _ = tick.tick() => flush(&shared, run.id, &mut batch, bytes, truncated),
        }
    }
    let finished = match process.await {
        Ok(finished) => finished,
        Err(e) => runner::Finished {
            ending: Ending::SpawnFailed(format!("the run's supervisor failed: {e}")),
            usage: None,
            output_bytes: 0,
            truncated: false,
        },
    };
    flush(
        &shared,
        run.id,
        &mut batch,
        bytes,
        truncated || finished.truncated,
    );
    let had_output = bytes > 0 || finished.output_bytes > 0;
    // The end is a synchronous commit (a disk sync): off the runtime's worker threads.
    let ending = finished.ending;
    let usage = finished.usage;
    let fallback = ending.clone();
    let (s, r, sp) = (shared.clone(), run.clone(), spec.clone());
    let conclusion = tokio::task::spawn_blocking(move || {
        // The run's last lines, still plain, become a compressed chunk (a run that printed
        // nothing has none: no transaction).
        if had_output {
            log_ledger_error(s.ledger().seal_output(r.id));
        }
        record_end(&s, &r, Some(&sp), &ending, usage, Persist::UntilWritten)
    })
    .await
    .unwrap_or_else(|_| run::conclude(&fallback, None, run.attempt as u32, shared.clock.now()));
    notify(&shared, spec, &run, &conclusion);
    conclusion
}

/// Sends the run's notifications (`on_failure`, `on_success`) in the background, each
/// outcome recorded as an event of the run. Only a run's final end notifies: a failure that
/// will be retried does not. [`Shared::notified`] waits for those in flight. A notification
/// not delivered is loud: a WARN line, `jobs_notifications_failed_total`, a `notify_failed`
/// event.
fn notify(shared: &Arc<Shared>, spec: Arc<JobSpec>, run: &RunRow, conclusion: &Conclusion) {
    if conclusion.retry_at.is_some() || (spec.on_failure.is_empty() && spec.on_success.is_empty()) {
        return;
    }
    let Some(event) = crate::notify::event_for(conclusion.state.as_str()) else {
        return;
    };
    let listed = match event {
        "on_success" => &spec.on_success,
        _ => &spec.on_failure,
    };
    // Most jobs notify nothing: no ledger read for them.
    if listed.is_empty() {
        return;
    }
    let notifier = shared.notifier();
    let now = shared.clock.now();
    let started_at = run.started_at.clone();
    let mut outcome = crate::notify::Outcome {
        job: run.job.clone(),
        run_id: run.id,
        state: conclusion.state.to_string(),
        trigger: run.trigger.clone(),
        attempt: run.attempt,
        exit_code: conclusion.exit_code,
        error: conclusion.error.clone(),
        duration_ms: started_at
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .map(|s| now.duration_since(s).as_millis() as i64),
        started_at,
        finished_at: stamp(now),
        failure_streak: shared.ledger().failure_streak(&run.job).unwrap_or_default(),
        params: run.params.clone(),
        event,
        host: notifier.host().to_string(),
        output_tail: String::new(),
        url: notifier.run_url(run.id),
    };
    let due: Vec<crate::spec::Notification> = crate::notify::due(&spec, &outcome)
        .into_iter()
        .cloned()
        .collect();
    if due.is_empty() {
        return;
    }
    let s = shared.clone();
    let mut notifying = shared
        .notifying
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Reap the ones that have finished: a handle kept until shutdown cost ~6 KB each.
    while notifying.try_join_next().is_some() {}
    notifying.spawn(async move {
        let (reader, run_id) = (s.clone(), outcome.run_id);
        outcome.output_tail = tokio::task::spawn_blocking(move || output_tail(&reader, run_id))
            .await
            .unwrap_or_default();
        for notification in &due {
            let kind = crate::notify::kind(&notification.action);
            let label = crate::metrics::NotifyKind { kind: kind.into() };
            let (event_kind, message) = match notifier.send(notification, &outcome).await {
                Ok(message) => {
                    s.metrics.notifications_sent.get_or_create(&label).inc();
                    tracing::info!(run = run_id, job = %outcome.job, kind, "{message}");
                    ("notified", message)
                }
                Err(message) => {
                    s.metrics.notifications_failed.get_or_create(&label).inc();
                    tracing::warn!(
                        run = run_id,
                        job = %outcome.job,
                        kind,
                        to = %crate::notify::target(&notification.action),
                        "notification not delivered: {message}"
                    );
                    ("notify_failed", message)
                }
            };
            let s = s.clone();
            let _ = tokio::task::spawn_blocking(move || {
                log_ledger_error(
                    s.ledger()
                        .add_event(run_id, s.clock.now(), event_kind, &message),
                );
            })
            .await;
        }
    });
}

/// The last lines of a run's output for its notifications: only the chunks that hold them
/// are read.
fn output_tail(shared: &Shared, run_id: i64) -> String {
    match shared
        .ledger()
        .run_output_tail(run_id, crate::notify::TAIL_LINES)
    {
        Ok(lines) => crate::notify::tail(lines.iter().map(|l| l.line.as_str())),
        Err(e) => {
            tracing::warn!(run = run_id, "reading the output for notifications: {e}");
            String::new()
        }
    }
}

/// Whether [`record_end`] writes an end again until the ledger takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// With backoff, its end time kept, until it lands or the process gives up at shutdown:
    /// the end of a run this process supervised, which nothing else would write.
    UntilWritten,
    /// One attempt: an end another attempt writes anyway (a run whose supervisor is gone is
    /// looked at again in 2 s).
    Once,
}

/// Records a run's end and its retry, if any. With [`Persist::UntilWritten`] it blocks until
/// the ledger takes the end: call it off the runtime's worker threads.
pub fn record_end(
    shared: &Shared,
    run: &RunRow,
    spec: Option<&JobSpec>,
    ending: &Ending,
    usage: Option<runner::Usage>,
    persist: Persist,
) -> Conclusion {
    let now = shared.clock.now();
    let retry_policy = spec.and_then(|s| s.retry);
    let conclusion = run::conclude(ending, retry_policy, run.attempt as u32, now);
    let retry = conclusion.retry_at.map(|at| NewRun {
        job: run.job.clone(),
        revision_id: run.revision_id.unwrap_or_default(),
        trigger: Trigger::Retry,
        scheduled_at: at,
        not_before: Some(at),
        params: run.params.clone(),
        attempt: run.attempt + 1,
        first_run_id: Some(run.first_run_id.unwrap_or(run.id)),
        running_under: None,
        by: None,
    });
    let finish = Finish {
        state: Some(conclusion.state),
        exit_code: conclusion.exit_code,
        signal: conclusion.signal,
        error: conclusion.error.clone(),
        cpu_user_ms: usage.map(|u| u.user_ms),
        cpu_sys_ms: usage.map(|u| u.sys_ms),
        max_rss_kb: usage.map(|u| u.max_rss_kb),
    };
    let end = RunEnd {
        run_id: run.id,
        epoch: run.epoch,
        finish,
        retry,
        at: now,
    };
    // An end that cannot be written (a full disk, a read-only ledger) is kept and written
    // again until it lands: given up, the run would stay `running`, its job's slots would be
    // skipped as overlapping, and the next daemon would run it a second time.
    let mut wait = REWRITE_FIRST;
    let result = loop {
        match shared.finish(end.clone()) {
            Ok(retry) => {
                shared.health.write_succeeded();
                break Ok(retry);
            }
            Err(e) => {
                shared.health.write_failed("recording a run's end", &e);
                if persist == Persist::Once
                    || shared.giving_up.load(std::sync::atomic::Ordering::SeqCst)
                {
                    break Err(e);
                }
                tracing::error!(
                    run = run.id,
                    job = %run.job,
                    "recording the run's end: {e}; writing it again in {} ms",
                    wait.as_millis()
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(REWRITE_MAX);
            }
        }
    };
    if result.is_ok() {
        let m = &shared.metrics;
        m.runs_finished
            .get_or_create(&JobState {
                job: run.job.clone(),
                state: conclusion.state.to_string(),
            })
            .inc();
        let label = JobLabel {
            job: run.job.clone(),
        };
        if let Some(started) = run
            .started_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
        {
            m.run_duration
                .get_or_create(&label)
                .observe(now.duration_since(started).as_secs_f64().max(0.0));
        }
        if conclusion.state == crate::run::RunState::Succeeded {
            m.last_success.get_or_create(&label).set(now.as_second());
        }
    }
    match result {
        Ok(Some(retry_id)) => tracing::info!(
            run = run.id,
            job = %run.job,
            state = %conclusion.state,
            retry = retry_id,
            due = %stamp(conclusion.retry_at.unwrap_or(now)),
            "run ended; retrying"
        ),
        Ok(None) => tracing::info!(
            run = run.id,
            job = %run.job,
            state = %conclusion.state,
            error = conclusion.error.as_deref().unwrap_or(""),
            "run ended"
        ),
        Err(e) => tracing::error!(run = run.id, job = %run.job, "recording the run's end: {e}"),
    }
    conclusion
}

fn flush(
    shared: &Shared,
    run_id: i64,
    batch: &mut Vec<(Timestamp, &'static str, String)>,
    bytes: i64,
    truncated: bool,
) {
    if batch.is_empty() && !truncated {
        return;
    }
    match shared
        .ledger()
        .append_output(run_id, batch, bytes, truncated)
    {
        Ok(()) => shared.health.write_succeeded(),
        Err(e) => {
            shared
                .health
                .write_failed("recording output", &e.to_string());
            tracing::error!(
                run = run_id,
                "recording output: {e}; {} lines lost",
                batch.len()
            );
        }
    }
    batch.clear();
    shared.progressed();
}

fn echo_line(line: &runner::Line) {
    use std::io::Write;
    if line.stream == "stderr" {
        let _ = writeln!(std::io::stderr(), "{}", line.text);
    } else {
        let _ = writeln!(std::io::stdout(), "{}", line.text);
    }
}

fn log_ledger_error<T>(result: crate::ledger::Result<T>) {
    if let Err(e) = result {
        tracing::error!("writing to the ledger: {e}");
    }
}

/// Parsed revisions by id, bounded: every applied revision was kept until exit before (issue
/// 12: +1.6 KB each, 19 → 58 MB after 24,000 applies). A sweep keeps the newest revision of
/// each job and those still held outside the cache (runs in flight), and drops the superseded
/// rest; it runs when the cache has doubled since the last one, so it costs O(1) per insert.
/// The cache is thus bounded by the jobs the ledger knows plus the runs in flight, and a
/// daemon's current revisions are never re-parsed because of it.
struct RevisionCache<V> {
    entries: HashMap<i64, CachedRevision<V>>,
    sweep_at: usize,
}

struct CachedRevision<V> {
    job: String,
    value: Arc<V>,
}

impl<V> RevisionCache<V> {
    /// Below this many entries there is no sweep.
    const FLOOR: usize = 256;

    fn new() -> Self {
        RevisionCache {
            entries: HashMap::new(),
            sweep_at: Self::FLOOR,
        }
    }

    fn get(&self, id: i64) -> Option<Arc<V>> {
        self.entries.get(&id).map(|e| e.value.clone())
    }

    fn insert(&mut self, id: i64, job: &str, value: Arc<V>) {
        let job = job.to_string();
        self.entries.insert(id, CachedRevision { job, value });
        if self.entries.len() > self.sweep_at {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        // Revision ids grow with each apply: the largest id of a job is its newest revision.
        let mut newest: HashMap<&str, i64> = HashMap::new();
        for (id, entry) in &self.entries {
            let n = newest.entry(entry.job.as_str()).or_insert(*id);
            *n = (*n).max(*id);
        }
        let newest: std::collections::HashSet<i64> = newest.into_values().collect();
        self.entries
            .retain(|id, e| newest.contains(id) || Arc::strong_count(&e.value) > 1);
        self.sweep_at = (2 * self.entries.len()).max(Self::FLOOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_memory_the_revision_cache_stays_bounded() {
        // 24,000 applies of three jobs, each revision parsed once, as the daemon does.
        let mut cache = RevisionCache::new();
        let mut largest = 0;
        for id in 0..24_000 {
            let job = ["a", "b", "c"][id as usize % 3];
            cache.insert(id, job, Arc::new(id));
            largest = largest.max(cache.entries.len());
        }
        assert!(
            largest <= RevisionCache::<i64>::FLOOR + 1,
            "{largest} entries"
        );
        assert_eq!(
            cache.get(23_999).as_deref(),
            Some(&23_999),
            "the newest stays"
        );
    }

    #[test]
    fn unbounded_memory_the_revision_cache_keeps_what_is_in_use() {
        let mut cache = RevisionCache::new();
        // Revision 0 of `a` is superseded while a run still holds it.
        let in_flight = Arc::new(0);
        cache.insert(0, "a", in_flight.clone());
        // 1,000 current revisions, used at each reload, and many applies of `a`.
        for id in 1..=1_000 {
            cache.insert(id, &format!("job{id}"), Arc::new(id));
        }
        for id in 1_001..5_000 {
            cache.insert(id, "a", Arc::new(id));
            if id % 500 == 0 {
                for current in 1..=1_000 {
                    assert_eq!(cache.get(current).as_deref(), Some(&current));
                }
            }
        }
        assert_eq!(
            cache.get(0).as_deref(),
            Some(&0),
            "the run's revision stays"
        );
        assert!(
            cache.entries.len() <= 2 * 1_002,
            "{} entries",
            cache.entries.len()
        );
        drop(in_flight);
    }
}
