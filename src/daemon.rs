//! The daemon, `jobctl serve`: reconciles the ledger with `jobs.d`, decides slots, runs jobs.
//!
//! Three loops on one tokio runtime, sharing one ledger connection:
//! - the *reconciler* applies valid changes in `jobs.d` (at start, on a debounced file change,
//!   on SIGHUP), keeping jobs whose files are broken at their last good revision;
//! - the *scheduler* sleeps until the next slot of any job (or until woken), records each due
//!   slot with [`slots::decide`] and moves the job's cursor, in one transaction;
//! - the *executor* claims pending runs (up to `max_concurrent_runs`) and runs each with
//!   [`executor::run_and_record`].
//!
//! SIGHUP also re-reads the API's TLS certificate and key when it serves HTTPS
//! ([`crate::tls::ServerCert::reload`]): a pair that cannot be used is logged and the current
//! one kept.
//!
//! The scheduler never starts a process and the executor never decides a slot: the ledger is
//! the hand-off, so a crash between the two loses nothing. Other processes (`jobctl trigger`,
//! `pause`, `run cancel`, `apply`) commit to the ledger and then write `<ledger>.wake`; the
//! daemon watches that file (inotify) and checks `PRAGMA data_version`, so it learns of their
//! commits within milliseconds without polling. A once-a-minute look covers lost events.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use anyhow::{Context as _, Result};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, watch};

use crate::catalog;
use crate::clock::Clock;
use crate::config::{DaemonConfig, ServerConfig};
use crate::executor::{self, Echo, Shared};
use crate::ledger::{JobSlots, Ledger, NewRun, Retention, RunRow, stamp};
use crate::run::{Ending, Trigger};
use crate::runner::{self, Stop};
use crate::slots::{self, JobClock};
use crate::spec::{self, Defaults, JobSpec};
use crate::{apply, diag, source};

/// How long the jobs folder must be quiet before a reconcile (an editor's save, a `git
/// checkout`: one reconcile).
const DEBOUNCE: StdDuration = StdDuration::from_millis(50);
/// The longest a reconcile waits for the folder to become quiet.
const DEBOUNCE_MAX: StdDuration = StdDuration::from_secs(1);
/// How often retention runs (and once at start).
const PRUNE_EVERY: StdDuration = StdDuration::from_secs(3600);
/// How often the daemon checks the ledger for other processes' writes without being told.
const BACKSTOP: StdDuration = StdDuration::from_secs(60);
/// The longest the scheduler sleeps without looking at the wall clock.
const CLOCK_LOOK: StdDuration = StdDuration::from_secs(60);
/// How often the daemon checks that the jobs folder is still the one it watches.
const IDENTITY_CHECK: StdDuration = StdDuration::from_secs(2);
/// How often the daemon looks for runs whose supervisor is gone.
const ORPHAN_CHECK: StdDuration = StdDuration::from_secs(2);
/// Runs deleted per retention transaction: small, so a fire never waits long behind it.
const PRUNE_BATCH: usize = 200;
/// How often shutdown says which runs it still waits for.
const SHUTDOWN_REPORT_EVERY: StdDuration = StdDuration::from_secs(5);
/// How long a stopping daemon or a foreground `jobctl run` waits for notifications in flight.
const NOTIFY_GRACE: StdDuration = StdDuration::from_secs(30);

/// Everything `jobctl serve` needs to start.
#[derive(Clone, Debug)]
pub struct Options {
    pub dir: PathBuf,
    pub ledger: PathBuf,
    pub defaults: Defaults,
    pub daemon: DaemonConfig,
    pub server: ServerConfig,
    /// The CA, mail server and public URL notifications use.
    pub notify: crate::config::NotifyConfig,
    pub tokens: crate::api::auth::Tokens,
    /// Serve the API with no tokens on a non-loopback address.
    pub insecure: bool,
    pub clock: Clock,
}

/// The daemon's state shared by its loops.
struct Daemon {
    shared: Arc<Shared>,
    options: Options,
    epoch: i64,
    me: (i64, i64),
    wake_scheduler: Notify,
    wake_executor: Notify,
    /// Set when the jobs or pauses in the ledger changed: the scheduler reloads them.
    reload: AtomicBool,
    stopping: AtomicBool,
    active: AtomicUsize,
    /// The ledger's `data_version` when last looked at.
    seen_version: std::sync::atomic::AtomicI64,
    idle: Notify,
    /// Stop switches of the runs this daemon is running.
    stops: Mutex<HashMap<i64, watch::Sender<Option<Stop>>>>,
    /// The last errors reported for jobs.d, so each is logged once, not at every reconcile.
    last_problems: Mutex<(usize, String)>,
    parse_cache: Mutex<HashMap<String, CachedParse>>,
    /// The jobs folder as last read, so a change re-reads only the files it names.
    last_scan: Mutex<Option<source::Scan>>,
    /// Asks the serve loop for a reconcile (a ledger change may settle a file's error: the
    /// API job whose name it took was deleted).
    dir_events: tokio::sync::mpsc::UnboundedSender<DirChange>,
}

/// A job file's last parse, reused while its bytes are unchanged.
struct CachedParse {
    bytes: Vec<u8>,
    parsed: spec::Parsed,
    hash: Option<String>,
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
///
/// When it cannot start: the ledger cannot be opened or is served by another daemon, or the
/// jobs folder cannot be watched.
pub fn serve(options: Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve_async(options))
}

async fn serve_async(options: Options) -> Result<()> {
    // First of all, so a signal that arrives while starting is handled, not fatal.
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // Before the lease: a certificate that cannot be used refuses the start, naming the file.
    let certificate = match (&options.server.tls_cert, &options.server.tls_key) {
        (Some(cert), Some(key)) => Some(
            crate::tls::ServerCert::load(cert, key)
                .context("loading the API's TLS certificate (--tls-cert, --tls-key)")?,
        ),
        _ => None,
    };
    let ledger = Ledger::open(&options.ledger)
        .with_context(|| format!("opening ledger {}", options.ledger.display()))?;
    ledger.set_durable()?;
    ledger
        .reclaim_space()
        .context("preparing the ledger for retention")?;
    let me = runner::this_process();
    let host = hostname();
    let mut ledger = ledger;
    let epoch = ledger.acquire_lease(&host, me, options.clock.now(), |lease| {
        lease.holder == host
            && match (lease.pid, lease.pid_start) {
                (Some(pid), Some(start)) => runner::is_alive(pid, start),
                _ => false,
            }
    })?;
    let listener =
        match crate::api::bind(&options.server.listen, &options.tokens, options.insecure).await {
            Ok(listener) => listener,
            Err(message) => {
                // Give the lease back: this daemon never started.
                let _ = ledger.release_lease(epoch, options.clock.now());
                anyhow::bail!(message);
            }
        };
    let listen = listener.local_addr().context("reading the API's address")?;
    let url = format!(
        "{}://{listen}",
        if certificate.is_some() {
            "https"
        } else {
            "http"
        }
    );
    tracing::info!(
        pid = me.0,
        epoch,
        listen = %listen,
        url = %url,
        tls_cert = certificate.as_ref().map(|(c, _)| c.cert_path().display().to_string()),
        tls_expires = certificate.as_ref().and_then(|(_, l)| l.not_after).map(|t| t.to_string()),
        ledger = %options.ledger.display(),
        dir = %options.dir.display(),
        max_connections = options.server.max_connections,
        max_connections_per_ip = options.server.max_connections_per_ip,
        "jobs serve started; the API listens on {url}"
    );
    let certificate = certificate.map(|(cert, _)| cert);
    let kill_grace = StdDuration::try_from(options.daemon.kill_grace.as_signed())
        .unwrap_or(StdDuration::from_secs(10));
    let notifier = match notifier(&options.notify, &host) {
        Ok(notifier) => notifier,
        Err(e) => {
            let _ = ledger.release_lease(epoch, options.clock.now());
            return Err(e);
        }
    };
    let shared = Arc::new(Shared::new(
        ledger,
        options.clock,
        Some(epoch),
        kill_grace,
        options.defaults.clone(),
        &options.dir,
    ));
    shared.set_notifier(notifier);
    let (dir_events, mut dir_changed) = tokio::sync::mpsc::unbounded_channel::<DirChange>();
    let daemon = Arc::new(Daemon {
        shared,
        options,
        epoch,
        me,
        wake_scheduler: Notify::new(),
        wake_executor: Notify::new(),
        reload: AtomicBool::new(true),
        stopping: AtomicBool::new(false),
        active: AtomicUsize::new(0),
        seen_version: std::sync::atomic::AtomicI64::new(-1),
        idle: Notify::new(),
        stops: Mutex::new(HashMap::new()),
        last_problems: Mutex::new((0, String::new())),
        parse_cache: Mutex::new(HashMap::new()),
        last_scan: Mutex::new(None),
        dir_events: dir_events.clone(),
    });

    {
        let (room, start) = (Arc::downgrade(&daemon), Arc::downgrade(&daemon));
        let limit = daemon.options.daemon.max_concurrent_runs.max(1);
        daemon.shared.set_claimer(executor::Claimer {
            epoch,
            supervisor: me,
            room: Box::new(move |ending| {
                room.upgrade().map_or(0, |d| {
                    if d.stopping.load(Ordering::SeqCst) {
                        0
                    } else {
                        (limit + ending).saturating_sub(d.active.load(Ordering::SeqCst))
                    }
                })
            }),
            start: Box::new(move |runs| {
                if let Some(d) = start.upgrade() {
                    for run in runs {
                        d.start(run);
                    }
                    // A fan-in with `concurrency: replace` asks its running run to stop;
                    // later, as this is called with the ledger held.
                    tokio::task::spawn_blocking(move || d.act_on_cancels());
                }
            }),
        });
    }
    if let Ok(version) = daemon.shared.ledger().data_version() {
        daemon.seen_version.store(version, Ordering::SeqCst);
    }
    // Watch before the first reconcile, so nothing written meanwhile goes unnoticed.
    let mut dir_watch = DirWatch::new(&daemon.options.dir, dir_events)?;
    // Replacing the folder (a mv-swap deploy, `rm -rf` and re-create, a `jobs.d` symlink
    // switched to a new release) is seen by the parent's watch, and by this look at the
    // folder's identity for what no watch sees (a symlink higher up switched).
    let mut identity_check = tokio::time::interval(IDENTITY_CHECK);
    identity_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let _ledger_watch = {
        let d = daemon.clone();
        watch_ledger(&daemon.options.ledger, true, move || d.ledger_changed())?
    };
    daemon.end_orphans();
    {
        let d = daemon.clone();
        tokio::task::spawn_blocking(move || d.reconcile("start"))
            .await
            .context("reconciling")?;
    }
    // A safety net for lost file-system events (an inotify queue overflow): look at the
    // ledger once a minute. One cheap query; the real wake-ups are event-driven.
    let backstop = {
        let d = daemon.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(BACKSTOP).await;
                let d = d.clone();
                let _ = tokio::task::spawn_blocking(move || d.ledger_changed()).await;
            }
        })
    };
    // Runs whose supervisor died while this daemon serves (a foreground `jobctl run` killed,
    // its session dropped, the OOM killer) are ended within seconds, not at the next start.
    let orphans = {
        let d = daemon.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ORPHAN_CHECK).await;
                let d = d.clone();
                let _ = tokio::task::spawn_blocking(move || d.end_orphans()).await;
            }
        })
    };

    if let Ok(successes) = daemon.shared.ledger().last_successes() {
        for (job, at) in successes {
            daemon
                .shared
                .metrics
                .last_success
                .get_or_create(&crate::metrics::JobLabel { job })
                .set(at);
        }
    }
    let server = {
        let (wake, wake_runs, problems) = (daemon.clone(), daemon.clone(), daemon.clone());
        let wake_executor = daemon.clone();
        let server = &daemon.options.server;
        let derived = crate::api::conns::Limits::for_descriptors(1024);
        let limits = crate::api::conns::Limits {
            max: server.max_connections.unwrap_or(derived.max),
            per_ip: server.max_connections_per_ip.unwrap_or(derived.per_ip),
        };
        let header_timeout = StdDuration::try_from(server.request_timeout.as_signed())
            .unwrap_or(StdDuration::from_secs(30))
            .min(StdDuration::from_secs(10));
        let router = crate::api::router(crate::api::Options {
            ledger: daemon.options.ledger.clone(),
            shared: daemon.shared.clone(),
            tokens: daemon.options.tokens.clone(),
            insecure: daemon.options.insecure,
            public_metrics: server.public_metrics,
            webhook_rate_limit: server.webhook_rate_limit,
            body_limit: server.body_limit,
            request_timeout: StdDuration::try_from(server.request_timeout.as_signed())
                .unwrap_or(StdDuration::from_secs(30)),
            wake: Box::new(move || wake.ledger_changed()),
            wake_runs: Box::new(move || wake_runs.runs_changed()),
            wake_executor: Box::new(move || wake_executor.wake_executor.notify_one()),
            problems: Box::new(move || problems.problems()),
        });
        let tls = certificate
            .as_ref()
            .map(crate::tls::ServerCert::server_config);
        tokio::spawn(async move {
            crate::api::serve(listener, router, header_timeout, limits, tls).await;
        })
    };
    let scheduler = tokio::spawn(daemon.clone().scheduler());
    let executor = tokio::spawn(daemon.clone().executor());
    let pruner = tokio::spawn(daemon.clone().pruner());
    // Under systemd (`Type=notify`): ready once the ledger is reconciled and the loops run;
    // the watchdog is fed only while the scheduler is alive and not stuck, so a daemon that
    // answers but no longer fires is restarted.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|timeout| {
        let d = daemon.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(timeout / 2);
            loop {
                tick.tick().await;
                if d.shared.health.problems().scheduler.is_none() {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        })
    });

    // Changes in the jobs folder are gathered until it has been quiet for DEBOUNCE (an
    // editor's save, a `git checkout` of many files: one reconcile), but never longer than
    // DEBOUNCE_MAX after the first. No timer runs while nothing changes.
    let mut first_change: Option<tokio::time::Instant> = None;
    let mut pending = DirChange::default();
    let why = loop {
        let quiet = async {
            match first_change {
                Some(first) => {
                    let cap = first + DEBOUNCE_MAX;
                    tokio::time::sleep_until(cap.min(tokio::time::Instant::now() + DEBOUNCE)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hup.recv() => {
                let d = daemon.clone();
                let certificate = certificate.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Some(certificate) = certificate {
                        reload_certificate(&certificate);
                    }
                    d.reconcile("SIGHUP");
                })
                .await;
            }
            Some(change) = dir_changed.recv() => {
                let mut change = Some(change);
                while let Some(c) = change {
                    pending.paths.extend(c.paths);
                    pending.rescan |= c.rescan;
                    change = dir_changed.try_recv().ok();
                }
                if dir_watch.follow() {
                    pending.rescan = true;
                }
                first_change.get_or_insert_with(tokio::time::Instant::now);
            }
            _ = identity_check.tick() => {
                if dir_watch.follow() {
                    pending.rescan = true;
                    first_change.get_or_insert_with(tokio::time::Instant::now);
                }
            }
            () = quiet => {
                first_change = None;
                let change = std::mem::take(&mut pending);
                let d = daemon.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let mut paths = change.paths;
                    paths.sort();
                    paths.dedup();
                    d.reconcile_changes("a change in the jobs folder", (!change.rescan).then_some(paths));
                }).await;
            }
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
        }
    };
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    // A second SIGTERM or SIGINT while shutting down stops the runs at once.
    let again = Box::pin(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    });
    daemon.shutdown(why, again).await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    server.abort();
    scheduler.abort();
    executor.abort();
    pruner.abort();
    backstop.abort();
    orphans.abort();
    Ok(())
}

/// Re-reads the API's certificate and key (a renewal, at SIGHUP). A pair that cannot be used
/// is reported and the current one kept: a failed reload never stops the server.
fn reload_certificate(certificate: &crate::tls::ServerCert) {
    match certificate.reload() {
        Ok(loaded) => tracing::info!(
            tls_cert = %certificate.cert_path().display(),
            tls_expires = loaded.not_after.map(|t| t.to_string()),
            "reloaded the API's TLS certificate; new connections present it"
        ),
        Err(e) => tracing::warn!(
            tls_cert = %certificate.cert_path().display(),
            "kept the API's current TLS certificate: {e}"
        ),
    }
}

impl Daemon {
    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Ends the runs left `running` by a supervisor that is gone (a previous daemon that died,
    /// a foreground `jobctl run` killed or hung up), and terminates their processes if they
    /// still exist (checked by pid and start time, not pid alone). At start, and every
    /// [`ORPHAN_CHECK`] while serving; this daemon's own runs are never touched.
    fn end_orphans(&self) {
        let runs = match self.shared.ledger().running_runs() {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!("reading running runs: {e}");
                return;
            }
        };
        for run in runs {
            if run.supervisor == Some(self.me) {
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
            if let (Some(pid), Some(start)) = (run.pid, run.pid_start)
                && runner::is_alive(pid, start)
                && runner::kill_group(pid as i32, libc::SIGKILL)
            {
                note = format!("its supervisor had stopped; killed its process group {pid}");
            }
            // Its processes carry a tag computed from the run and its supervisor: those that
            // left the group, or started before their pid was recorded, are found too.
            if let Some(supervisor) = run.supervisor {
                let tag = runner::run_tag(supervisor, run.id);
                let tagged = runner::tagged_processes(&tag);
                if !tagged.is_empty() {
                    runner::kill_all(0, &tag, libc::SIGKILL);
                    note = format!("{note}; killed its processes {tagged:?}");
                }
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

    /// Makes the ledger match the valid files of the jobs folder, reading them all.
    fn reconcile(&self, why: &str) {
        self.reconcile_changes(why, None);
    }

    /// Makes the ledger match the valid files of the jobs folder. With `changed` (paths
    /// relative to the folder), only those files are read again; the others come from the
    /// last scan.
    fn reconcile_changes(&self, why: &str, changed: Option<Vec<String>>) {
        let started = std::time::Instant::now();
        let now = self.now();
        let mut last = self
            .last_scan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let incremental = match (changed, last.as_ref()) {
            (Some(paths), Some(previous)) => source::rescan(&self.options.dir, previous, &paths),
            _ => None,
        };
        let scan = match incremental {
            Some(scan) => scan,
            None => match source::scan(&self.options.dir) {
                Ok(scan) => scan,
                Err(d) => {
                    *last = None;
                    drop(last);
                    self.report_problems(&[d], &[]);
                    return;
                }
            },
        };
        *last = Some(scan.clone());
        drop(last);
        let scanned = started.elapsed();
        let api_owned = match self.shared.ledger().api_owned() {
            Ok(names) => names,
            Err(e) => {
                tracing::error!("reading the ledger: {e}");
                return;
            }
        };
        let listed = started.elapsed();
        let inputs = scan.inputs();
        let context = spec::Context {
            defaults: &self.options.defaults,
            now,
        };
        let mut cache = std::mem::take(
            &mut *self
                .parse_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let fresh: Mutex<Vec<(String, CachedParse)>> = Mutex::new(Vec::new());
        let mut catalog = catalog::build_with(&inputs, &api_owned, |f| {
            if let Some(cached) = cache.get(f.display)
                && cached.bytes.as_slice() == f.bytes
            {
                return (cached.parsed.clone(), cached.hash.clone());
            }
            let parsed = spec::parse(f.display, f.bytes, context);
            let hash = parsed.spec.as_ref().map(spec::normal::content_hash);
            fresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((
                    f.display.to_string(),
                    CachedParse {
                        bytes: f.bytes.to_vec(),
                        parsed: parsed.clone(),
                        hash: hash.clone(),
                    },
                ));
            (parsed, hash)
        });
        let present: HashSet<&str> = inputs.iter().map(|f| f.display).collect();
        cache.retain(|k, _| present.contains(k.as_str()));
        for (display, cached) in fresh
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            cache.insert(display, cached);
        }
        *self
            .parse_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cache;
        catalog.diagnostics.extend(scan.problems);
        let built = started.elapsed();

        // Files with errors: their jobs stay as they are in the ledger.
        let broken_files: HashSet<&str> = catalog
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.file.as_str())
            .collect();
        let keep: HashSet<String> = broken_files.iter().map(|f| stem(f).to_string()).collect();
        catalog.entries.retain(|e| {
            !broken_files.contains(e.file.as_str()) && !keep.contains(e.spec.name.as_str())
        });
        let errors: Vec<diag::Diagnostic> = catalog
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        let sources = &scan.files;
        self.report_problems(&errors, sources);

        let git = crate::git::describe(&self.options.dir);
        let described = started.elapsed();
        let result = apply::apply(&mut self.shared.ledger(), &catalog, now, &git, &keep);
        tracing::debug!(
            scan_ms = scanned.as_millis() as u64,
            list_ms = (listed - scanned).as_millis() as u64,
            catalog_ms = (built - listed).as_millis() as u64,
            git_ms = (described - built).as_millis() as u64,
            apply_ms = (started.elapsed() - described).as_millis() as u64,
            "reconcile phases"
        );
        match result {
            Ok(outcome) => {
                if let Some(record) = outcome.record {
                    let message = format!(
                        "applied {} added, {} changed, {} removed ({why})",
                        record.added, record.changed, record.removed
                    );
                    tracing::info!(
                        added = record.added,
                        changed = record.changed,
                        removed = record.removed,
                        took_ms = started.elapsed().as_millis() as u64,
                        "reconciled: {message}"
                    );
                    let _ = self.shared.ledger().daemon_event(now, "applied", &message);
                    self.reload.store(true, Ordering::SeqCst);
                    self.wake_scheduler.notify_one();
                } else if why == "SIGHUP" {
                    // Asked for by an operator: say it happened.
                    tracing::info!(why, "reconciled: no changes");
                } else {
                    tracing::debug!(why, "reconciled: no changes");
                }
            }
            Err(apply::ApplyError::Plan(plan)) => {
                let text: Vec<String> = plan.errors.iter().map(ToString::to_string).collect();
                tracing::error!("the plan cannot be applied: {}", text.join("; "));
                let _ = self
                    .shared
                    .ledger()
                    .daemon_event(now, "plan_error", &text.join("\n"));
            }
            Err(apply::ApplyError::Ledger(e)) => tracing::error!("applying: {e}"),
        }
    }

    /// Logs and records the errors in the jobs folder, once per distinct set.
    fn report_problems(&self, errors: &[diag::Diagnostic], sources: &[source::SourceFile]) {
        let source_of = |file: &str| {
            sources
                .iter()
                .find(|s| s.display == file)
                .and_then(|s| std::str::from_utf8(&s.bytes).ok())
        };
        let rendered = diag::render(errors, source_of, false);
        let mut last = self
            .last_problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.1 == rendered {
            return;
        }
        *last = (errors.len(), rendered.clone());
        drop(last);
        let now = self.now();
        let ledger = self.shared.ledger();
        let status = serde_json::json!({
            "errors": errors.len(),
            "diagnostics": errors,
            "rendered": rendered,
            "at": stamp(now),
        });
        let _ = ledger.set_status("source", &status.to_string());
        if errors.is_empty() {
            tracing::info!("the jobs folder is valid again");
            let _ = ledger.daemon_event(now, "source_valid", "the jobs folder is valid again");
        } else {
            for e in errors {
                tracing::warn!("{e}; its job keeps its last applied revision");
            }
            let _ = ledger.daemon_event(now, "source_invalid", &rendered);
        }
    }

    /// Runs were queued or a cancel requested (by the API, in-process): start or stop runs,
    /// without reloading the jobs. The data version is left alone, so a change to jobs by
    /// another process meanwhile still reloads them at its own wake-up.
    fn runs_changed(&self) {
        self.resolve();
        self.wake_executor.notify_one();
        self.act_on_cancels();
    }

    /// The jobs folder's current errors: how many, and rendered; `None` when it is valid.
    fn problems(&self) -> Option<(usize, String)> {
        let last = self
            .last_problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (last.0 > 0).then(|| last.clone())
    }

    /// Another process committed to the ledger (or the daemon itself did: `data_version`
    /// tells them apart).
    fn ledger_changed(&self) {
        let version = match self.shared.ledger().data_version() {
            Ok(v) => v,
            Err(_) => return,
        };
        if self.seen_version.swap(version, Ordering::SeqCst) == version {
            return;
        }
        self.reload.store(true, Ordering::SeqCst);
        self.wake_scheduler.notify_one();
        self.wake_executor.notify_one();
        self.act_on_cancels();
        if self.problems().is_some() {
            let _ = self.dir_events.send(DirChange::default());
        }
    }

    /// Sends a stop to each running run whose cancellation was requested.
    fn act_on_cancels(&self) {
        let Ok(requests) = self.shared.ledger().cancel_requests(self.epoch) else {
            return;
        };
        let stops = self
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for run in requests {
            if let Some(stop) = stops.get(&run.id) {
                stop.send_if_modified(|s| {
                    if s.is_some() {
                        return false;
                    }
                    *s = Some(Stop::graceful("cancelled on request"));
                    true
                });
            }
        }
    }

    /// The scheduler loop: sleep until the next slot or a wake-up, then record due slots.
    async fn scheduler(self: Arc<Self>) {
        let health = &self.shared.health;
        let _stopped = crate::health::SchedulerGuard(health);
        health.scheduler_busy(false);
        let mut jobs: HashMap<String, SchedJob> = HashMap::new();
        let mut queue: BTreeSet<(Timestamp, String)> = BTreeSet::new();
        let mut first_load = true;
        let mut last_now: Option<Timestamp> = None;
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            if self.reload.swap(false, Ordering::SeqCst) {
                health.scheduler_busy(true);
                let loaded = self.load_jobs();
                health.scheduler_busy(false);
                health.scheduler_read(
                    loaded
                        .as_ref()
                        .err()
                        .map(|e| format!("loading jobs for the scheduler: {e}")),
                );
                match loaded {
                    Ok(loaded) => {
                        if first_load {
                            let next = loaded
                                .values()
                                .filter_map(|j| {
                                    let now = self.now();
                                    slots::decide(&j.clock(now, false), now).next
                                })
                                .min();
                            tracing::info!(
                                jobs = loaded.len(),
                                next = next.map(stamp).unwrap_or_default(),
                                "scheduler started"
                            );
                            first_load = false;
                        } else {
                            tracing::debug!(jobs = loaded.len(), "scheduler reloaded");
                        }
                        // A job whose revision and pause are unchanged keeps its place; the
                        // others are looked at now.
                        let mut loaded = loaded;
                        for (name, job) in &mut loaded {
                            if let Some(old) = jobs.get(name)
                                && old.revision_id == job.revision_id
                                && old.paused == job.paused
                                && old.cursor >= job.cursor
                                && old.cursor <= job.cursor.max(self.now())
                            {
                                job.cursor = old.cursor;
                                job.next = old.next;
                                job.due_check = old.next.unwrap_or(Timestamp::MAX);
                            }
                        }
                        jobs = loaded;
                        queue = jobs
                            .iter()
                            .filter(|(_, j)| j.due_check < Timestamp::MAX)
                            .map(|(name, j)| (j.due_check, name.clone()))
                            .collect();
                    }
                    Err(e) => {
                        tracing::error!("loading jobs for the scheduler: {e}");
                        // Try again soon: a ledger that cannot be read now may be later.
                        self.reload.store(true, Ordering::SeqCst);
                        tokio::select! {
                            () = tokio::time::sleep(StdDuration::from_secs(1)) => {}
                            () = self.wake_scheduler.notified() => {}
                        }
                        continue;
                    }
                }
            }
            let now = self.now();
            // The wall clock went back (NTP fixed a clock that was ahead): what was decided
            // in the future is brought back to now.
            if let Some(last) = last_now
                && now
                    < last
                        .saturating_sub(SignedDuration::from_secs(1))
                        .unwrap_or(last)
            {
                tracing::warn!(
                    from = %stamp(last),
                    to = %stamp(now),
                    "the clock went backwards; rescheduling from now"
                );
                last_now = Some(now);
                self.reload.store(true, Ordering::SeqCst);
                continue;
            }
            last_now = Some(now);
            let mut due: Vec<String> = Vec::new();
            while let Some((at, _)) = queue.first()
                && *at <= now
            {
                let (_, name) = queue.pop_first().expect("checked above");
                due.push(name);
            }
            if !due.is_empty() {
                health.scheduler_busy(true);
                self.fire_due(&mut jobs, &due, now);
                health.scheduler_busy(false);
                for name in &due {
                    if let Some(j) = jobs.get(name)
                        && let Some(next) = j.next
                    {
                        queue.insert((next, name.clone()));
                    }
                }
                continue;
            }
            // At most a minute: a wall clock moved back is noticed within it.
            let sleep = queue
                .first()
                .map(|(at, _)| self.shared.clock.until(*at))
                .unwrap_or(CLOCK_LOOK)
                .min(CLOCK_LOOK);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake_scheduler.notified() => {}
            }
        }
    }

    /// Loads the enabled jobs with their cursors and pauses.
    /// Also hands the dependency graph of the active jobs to the ledger and resolves what it
    /// allows now (fan-ins and blocked runs that another process's writes released).
    fn load_jobs(&self) -> crate::ledger::Result<HashMap<String, SchedJob>> {
        if let Err(e) = self.rewind_future() {
            tracing::error!("looking for stamps from the future: {e}");
        }
        let rows = self.shared.ledger().job_summaries()?;
        let mut jobs = HashMap::new();
        let mut specs = Vec::new();
        for row in rows.into_iter().filter(|r| r.active) {
            let spec = match self.shared.spec(row.revision_id) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::error!(job = %row.name, "cannot schedule: {e}");
                    continue;
                }
            };
            specs.push(spec.clone());
            // A completed job (`repeat`) fires no more until a new revision.
            if !row.enabled || row.completed_at.is_some() {
                continue;
            }
            let remaining = match spec.repeat {
                Some(crate::spec::Repeat::Times(n)) => {
                    Some(i64::from(n).saturating_sub(row.fires).max(0))
                }
                _ => None,
            };
            let parse = |t: &str| t.parse::<Timestamp>().ok();
            let anchor = parse(&row.schedule_anchor).unwrap_or_else(|| self.now());
            let cursor = parse(&row.slot_cursor).unwrap_or(anchor);
            jobs.insert(
                row.name.clone(),
                SchedJob {
                    revision_id: row.revision_id,
                    spec,
                    anchor,
                    cursor,
                    paused: row.paused.is_some(),
                    // Check every job once after a load; `decide` says when to look again.
                    due_check: Timestamp::UNIX_EPOCH,
                    next: None,
                    remaining,
                },
            );
        }
        self.shared
            .set_secret_vars(specs.iter().filter_map(|s| match &s.webhook {
                Some(spec::Webhook {
                    secret: spec::WebhookSecret::SecretEnv(name),
                    ..
                }) => Some(name.clone()),
                _ => None,
            }));
        let graph = crate::graph::Graph::new(specs.iter().map(|s| &**s));
        self.shared.ledger().set_graph(Some(Arc::new(graph)));
        self.resolve();
        Ok(jobs)
    }

    /// Brings back to now what the ledger holds from the future: a clock that was ahead and
    /// was corrected would otherwise silence every schedule until real time caught up.
    fn rewind_future(&self) -> crate::ledger::Result<()> {
        let now = self.now();
        let rewound = self.shared.ledger().rewind_future(now)?;
        if rewound.is_empty() {
            return Ok(());
        }
        if rewound.runs > 0 {
            self.wake_executor.notify_one();
        }
        let furthest = rewound.jobs.iter().map(|(_, t)| *t).max().unwrap_or(now);
        let message = format!(
            "the clock is behind what the ledger recorded (up to {}, {} ahead of now): \
             a clock that was ahead was corrected; {} jobs resume from now and {} runs' stamps \
             were brought back to now",
            stamp(furthest),
            crate::duration::Duration::from_secs(furthest.duration_since(now).as_secs()),
            rewound.jobs.len(),
            rewound.runs,
        );
        for (job, at) in &rewound.jobs {
            tracing::warn!(job = %job, was = %stamp(*at), "the job's schedule resumes from now");
        }
        let message = match rewound.early_until {
            Some(until) => format!(
                "{message}; {} slots up to {} were recorded early while the clock was ahead \
                 and are not fired again",
                rewound.early_slots,
                stamp(until)
            ),
            None => message,
        };
        tracing::warn!(jobs = rewound.jobs.len(), runs = rewound.runs, "{message}");
        let _ = self
            .shared
            .ledger()
            .daemon_event(now, "clock_backwards", &message);
        Ok(())
    }

    /// Fires the fan-ins and decides the blocked runs the ledger allows now.
    fn resolve(&self) {
        // The ledger's guard must be gone before the arms run: `act_on_cancels` locks it again.
        let resolved = self.shared.ledger().resolve_dependencies(self.now());
        match resolved {
            Ok(resolved) => {
                if resolved.pending > 0 {
                    self.wake_executor.notify_one();
                    // A fan-in with `concurrency: replace` asks its running run to stop.
                    self.act_on_cancels();
                }
                if resolved.pending + resolved.skipped > 0 {
                    tracing::info!(
                        pending = resolved.pending,
                        skipped = resolved.skipped,
                        "dependencies resolved"
                    );
                }
            }
            Err(e) => tracing::error!("resolving dependencies: {e}"),
        }
    }

    /// Decides and records the due slots of `names`, in one transaction.
    fn fire_due(&self, jobs: &mut HashMap<String, SchedJob>, names: &[String], now: Timestamp) {
        let active: HashSet<String> = match self.shared.ledger().active_jobs() {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!("reading active runs: {e}");
                return;
            }
        };
        let mut batch = Vec::new();
        let mut decisions = Vec::new();
        for name in names {
            let Some(job) = jobs.get(name) else { continue };
            let spec = &job.spec;
            if job.remaining == Some(0) {
                // `repeat: {times: N}` reached: the job has completed.
                decisions.push((
                    name.clone(),
                    slots::Decision {
                        rows: Vec::new(),
                        cursor: job.cursor,
                        next: None,
                    },
                ));
                continue;
            }
            let decision = slots::decide(&job.clock(job.cursor, active.contains(name)), now);
            if !decision.rows.is_empty() {
                let jitter = spec.jitter.as_signed();
                let rows = decision
                    .rows
                    .iter()
                    .map(|r| {
                        let delay = if jitter.is_zero() {
                            SignedDuration::ZERO
                        } else {
                            SignedDuration::from_millis(fastrand::i64(
                                0..=jitter.as_millis() as i64,
                            ))
                        };
                        (
                            r.clone(),
                            r.slot.max(now).saturating_add(delay).unwrap_or(now),
                        )
                    })
                    .collect();
                batch.push(JobSlots {
                    job: name.clone(),
                    revision_id: job.revision_id,
                    rows,
                    cursor: decision.cursor,
                });
            }
            decisions.push((name.clone(), decision));
        }
        let fired = if batch.is_empty() {
            Vec::new()
        } else {
            let recorded = self.shared.ledger().record_slots(self.epoch, &batch, now);
            match recorded {
                Ok(fired) => {
                    self.shared.health.write_succeeded();
                    fired
                }
                Err(e @ crate::ledger::LedgerError::LeaseLost { .. }) => {
                    tracing::error!("{e}");
                    std::process::exit(1);
                }
                Err(e) => {
                    self.shared
                        .health
                        .write_failed("recording slots", &e.to_string());
                    tracing::error!("recording slots: {e}; deciding them again in 1 s");
                    // Look again soon rather than lose the slots.
                    for name in names {
                        if let Some(job) = jobs.get_mut(name) {
                            job.next = Some(
                                now.saturating_add(SignedDuration::from_secs(1))
                                    .unwrap_or(now),
                            );
                        }
                    }
                    return;
                }
            }
        };
        for (name, decision) in decisions {
            if let Some(job) = jobs.get_mut(&name) {
                job.cursor = decision.cursor;
                job.next = decision.next;
            }
        }
        for b in &batch {
            let fires = b
                .rows
                .iter()
                .filter(|(r, _)| matches!(r.outcome, slots::Outcome::Fire { .. }))
                .count() as i64;
            if let Some(job) = jobs.get_mut(&b.job)
                && let Some(remaining) = job.remaining.as_mut()
            {
                *remaining = (*remaining - fires).max(0);
                if *remaining == 0 {
                    job.next = None;
                    tracing::info!(job = %b.job, "the job has completed (repeat)");
                }
            }
        }
        for b in &batch {
            for (row, _) in &b.rows {
                if let slots::Outcome::Skipped { reason } | slots::Outcome::Missed { reason } =
                    &row.outcome
                {
                    tracing::info!(job = %b.job, slot = %stamp(row.slot), slots = row.count, reason = %reason, "slot skipped");
                }
            }
        }
        if !fired.is_empty() {
            for (job, run) in &fired {
                tracing::debug!(job = %job, run, "fired");
            }
            self.wake_executor.notify_one();
        }
        if batch.iter().any(|b| {
            b.rows
                .iter()
                .any(|(r, _)| matches!(r.outcome, slots::Outcome::Fire { replace: true, .. }))
        }) {
            self.act_on_cancels();
        }
    }

    /// The executor loop: claim pending runs while there is room, then wait.
    async fn executor(self: Arc<Self>) {
        let limit = self.options.daemon.max_concurrent_runs.max(1);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            // A turn's ledger work (a claim is a disk sync; the reads wait for the ledger
            // while a run's end syncs) runs on a blocking thread: the runtime's two workers
            // keep spawning the runs of a burst meanwhile (issue 14).
            let d = self.clone();
            let turn = tokio::task::spawn_blocking(move || d.executor_turn(limit)).await;
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
    fn executor_turn(self: &Arc<Self>, limit: usize) -> crate::ledger::Result<Option<StdDuration>> {
        if self.active.load(Ordering::SeqCst) < limit {
            self.shared.claim(
                self.epoch,
                self.me,
                |ending| (limit + ending).saturating_sub(self.active.load(Ordering::SeqCst)),
                |runs| {
                    for run in runs {
                        self.start(run);
                    }
                },
            )?;
        }
        let next = if self.active.load(Ordering::SeqCst) < limit {
            self.shared.ledger().next_pending_at().ok().flatten()
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
        let deadline = self.shared.ledger().next_blocked_deadline().ok().flatten();
        if let Some(at) = deadline {
            if at <= self.now() {
                self.resolve();
                return Ok(None);
            }
            sleep = sleep.min(self.shared.clock.until(at).max(StdDuration::from_millis(1)));
        }
        Ok(Some(sleep))
    }

    fn start(self: &Arc<Self>, run: RunRow) {
        self.active.fetch_add(1, Ordering::SeqCst);
        let (stop_tx, stop_rx) = watch::channel(None);
        self.stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(run.id, stop_tx);
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
                .remove(&id);
            daemon.active.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(run = id, state = %conclusion.state, "run task done");
            // `repeat: {until: success}`: the ledger marked the job completed with this end;
            // the scheduler reloads to stop firing it.
            if conclusion.state == crate::run::RunState::Succeeded
                && revision_id
                    .and_then(|r| daemon.shared.spec(r).ok())
                    .is_some_and(|s| s.repeat == Some(crate::spec::Repeat::UntilSuccess))
            {
                tracing::info!(job = %job, "the job has completed (repeat until success)");
                daemon.reload.store(true, Ordering::SeqCst);
                daemon.wake_scheduler.notify_one();
            }
            // A slot freed (and perhaps a retry queued): look for pending runs.
            daemon.wake_executor.notify_one();
            daemon.idle.notify_waiters();
        });
    }

    /// Retention: at start and hourly, in small transactions.
    async fn pruner(self: Arc<Self>) {
        loop {
            let d = self.clone();
            let _ = tokio::task::spawn_blocking(move || d.prune()).await;
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    }

    fn prune(&self) {
        let now = self.now();
        let rows = match self.shared.ledger().job_summaries() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("retention: {e}");
                return;
            }
        };
        let defaults = &self.options.defaults;
        let rules: Vec<Retention> = rows
            .iter()
            .map(|row| {
                let history = self
                    .shared
                    .spec(row.revision_id)
                    .map(|s| s.history)
                    .unwrap_or_default();
                let keep = history.keep_runs.unwrap_or(defaults.keep_runs);
                let age = history.max_age.unwrap_or(defaults.max_age).as_signed();
                Retention {
                    job: row.name.clone(),
                    keep,
                    before: now.saturating_sub(age).unwrap_or(now),
                }
            })
            .collect();
        let mut total = 0;
        loop {
            let n = match self.shared.ledger().prune(&rules, PRUNE_BATCH) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("retention: {e}");
                    break;
                }
            };
            total += n;
            if n < PRUNE_BATCH {
                break;
            }
            // Between batches the ledger is free for fires.
            std::thread::yield_now();
        }
        if total > 0 {
            tracing::info!(deleted = total, "retention: deleted old runs");
            if let Err(e) = self.shared.ledger().reclaim_space() {
                tracing::error!("retention: reclaiming space: {e}");
            }
        }
    }

    /// SIGTERM/SIGINT: stop firing, let runs finish for `shutdown_grace`, then stop them;
    /// every few seconds, say which runs it waits for. A second signal (`again`) stops them at
    /// once (SIGKILL, recorded as the runs' end reason).
    async fn shutdown(
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
    fn stop_all(&self, why: &str, forced: Option<&str>) {
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
    fn report_waiting(&self, message: &str) {
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

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A job as the scheduler holds it.
struct SchedJob {
    revision_id: i64,
    spec: Arc<JobSpec>,
    anchor: Timestamp,
    cursor: Timestamp,
    paused: bool,
    /// When the scheduler should first look at this job after loading it.
    due_check: Timestamp,
    next: Option<Timestamp>,
    /// Fires left before the job completes (`repeat: {times: N}`).
    remaining: Option<i64>,
}

impl SchedJob {
    fn clock(&self, cursor: Timestamp, active: bool) -> JobClock<'_> {
        JobClock {
            schedule: &self.spec.schedule,
            tz: &self.spec.timezone.tz,
            anchor: self.anchor,
            cursor,
            missed: self.spec.missed,
            starting_deadline: self.spec.starting_deadline,
            concurrency: self.spec.concurrency,
            paused: self.paused,
            active,
        }
    }
}

fn stem(file: &str) -> &str {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// This machine's name, for the lease and for who paused a job.
/// What sends this process's notifications, from `jobs.toml`.
fn notifier(config: &crate::config::NotifyConfig, host: &str) -> Result<crate::notify::Notifier> {
    crate::notify::Notifier::new(config, host.to_string(), crate::notify::Policy::default())
        .map_err(|e| anyhow::anyhow!("setting up notifications: {e}"))
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Watches the jobs folder recursively; each change event sends one `()` (the serve loop
/// debounces them).
fn watch_dir(
    dir: &Path,
    events: tokio::sync::mpsc::UnboundedSender<DirChange>,
    lost: Arc<AtomicBool>,
) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let root = dir.to_path_buf();
    let base = root.clone();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        match result {
            // Reading the files (the reconcile itself) makes access events: only changes count.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
            Ok(event) => {
                let mut paths = Vec::new();
                let mut rescan = event.need_rescan();
                if matches!(event.kind, notify::EventKind::Remove(_))
                    && event.paths.iter().any(|p| p == &base)
                {
                    // The watched folder itself is gone: this watch sees nothing more.
                    lost.store(true, Ordering::SeqCst);
                    rescan = true;
                }
                for path in &event.paths {
                    match path.strip_prefix(&base) {
                        Ok(relative) => paths.push(
                            relative
                                .components()
                                .map(|c| c.as_os_str().to_string_lossy())
                                .collect::<Vec<_>>()
                                .join("/"),
                        ),
                        Err(_) => rescan = true,
                    }
                }
                let _ = events.send(DirChange { paths, rescan });
            }
            Err(e) => {
                tracing::warn!("watching the jobs folder: {e}");
                let _ = events.send(DirChange {
                    paths: Vec::new(),
                    rescan: true,
                });
            }
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    Ok(watcher)
}

/// The watches on the jobs folder: the folder as it resolves now (recursive), and its parent
/// (for the folder, or the link to it, being replaced). When the path resolves to another
/// folder than the one watched, the watch moves there and everything is read again.
struct DirWatch {
    dir: PathBuf,
    events: tokio::sync::mpsc::UnboundedSender<DirChange>,
    /// The folder watched: its canonical path and identity.
    watched: Option<(PathBuf, Identity)>,
    tree: Option<notify::RecommendedWatcher>,
    /// Set by the tree's watch when the watched folder itself is deleted: a folder re-created
    /// at once may get the same inode number back, so identity alone cannot tell.
    lost: Arc<AtomicBool>,
    _parent: Option<notify::RecommendedWatcher>,
}

impl DirWatch {
    fn new(dir: &Path, events: tokio::sync::mpsc::UnboundedSender<DirChange>) -> Result<DirWatch> {
        let parent = watch_parent(dir, events.clone())
            .map_err(|e| tracing::warn!("watching the jobs folder's parent: {e:#}"))
            .ok();
        let mut watch = DirWatch {
            dir: dir.to_path_buf(),
            events,
            watched: None,
            tree: None,
            lost: Arc::new(AtomicBool::new(false)),
            _parent: parent,
        };
        let identity =
            folder_identity(dir).with_context(|| format!("resolving {}", dir.display()))?;
        watch.tree = Some(watch_dir(
            &identity.0,
            watch.events.clone(),
            watch.lost.clone(),
        )?);
        watch.watched = Some(identity);
        Ok(watch)
    }

    /// Moves the watch when the path now names another folder (or none, or one again);
    /// returns whether it did, so the caller reads everything again.
    fn follow(&mut self) -> bool {
        let now = folder_identity(&self.dir).ok();
        if now == self.watched && !self.lost.swap(false, Ordering::SeqCst) {
            return false;
        }
        self.tree = None;
        self.lost.store(false, Ordering::SeqCst);
        match &now {
            Some((root, _)) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    now = %root.display(),
                    "the jobs folder was replaced; watching the new one and reading it all"
                );
                match watch_dir(root, self.events.clone(), self.lost.clone()) {
                    Ok(w) => self.tree = Some(w),
                    Err(e) => tracing::error!("watching the jobs folder: {e:#}"),
                }
            }
            None => tracing::warn!(
                dir = %self.dir.display(),
                "the jobs folder is gone; its jobs are kept until it is back"
            ),
        }
        self.watched = now;
        true
    }
}

/// A folder's device, inode and birth time (where the file system keeps one).
type Identity = (u64, u64, Option<std::time::SystemTime>);

/// A folder's canonical path and identity, through any symlinks.
fn folder_identity(dir: &Path) -> std::io::Result<(PathBuf, Identity)> {
    use std::os::unix::fs::MetadataExt as _;
    let root = std::fs::canonicalize(dir)?;
    let meta = std::fs::metadata(&root)?;
    Ok((root, (meta.dev(), meta.ino(), meta.created().ok())))
}

/// Watches the folder holding the jobs folder for changes to the jobs folder's own entry (a
/// rename over it, a deletion, a symlink switched): each sends a rescan.
fn watch_parent(
    dir: &Path,
    events: tokio::sync::mpsc::UnboundedSender<DirChange>,
) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = dir.file_name().map(std::ffi::OsStr::to_os_string);
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let ours = match &result {
            Ok(event) => {
                !matches!(event.kind, notify::EventKind::Access(_))
                    && event
                        .paths
                        .iter()
                        .any(|p| p.file_name().map(std::ffi::OsStr::to_os_string) == name)
            }
            Err(_) => true,
        };
        if ours {
            let _ = events.send(DirChange {
                paths: Vec::new(),
                rescan: true,
            });
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&parent, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", parent.display()))?;
    Ok(watcher)
}

/// Paths (relative to the jobs folder) a file event named; `rescan` when only a full walk can
/// tell what changed (the watcher's queue overflowed, a path outside the folder).
#[derive(Debug, Default)]
struct DirChange {
    paths: Vec<String>,
    rescan: bool,
}

/// Watches the ledger's folder for the wake file that other processes write after they commit
/// (see `Ledger::wake_daemon`).
///
/// With `only_wake` false, any change to the ledger's files counts (what `jobctl logs -f` wants:
/// the daemon's own writes).
pub fn watch_ledger(
    ledger: &Path,
    only_wake: bool,
    changed: impl Fn() + Send + 'static,
) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let folder = ledger
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    // For the daemon, only the wake file: the ledger's own files change with every write of
    // the daemon too.
    let ledger_name = ledger
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = format!("{ledger_name}.wake");
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result
            && !matches!(event.kind, notify::EventKind::Access(_))
            && event.paths.iter().any(|p| {
                p.file_name().is_some_and(|f| {
                    let f = f.to_string_lossy();
                    if only_wake {
                        f == name.as_str()
                    } else {
                        f.starts_with(ledger_name.as_str())
                    }
                })
            })
        {
            changed();
        }
    })
    .context("starting the ledger watcher")?;
    watcher
        .watch(&folder, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", folder.display()))?;
    Ok(watcher)
}

/// `jobctl run NAME`: runs a job now in the foreground, recorded as a manual run.
///
/// # Errors
///
/// When the job is unknown or the ledger cannot be written.
pub fn run_foreground(
    ledger_path: &Path,
    jobs_dir: &Path,
    job: &str,
    params: Option<serde_json::Value>,
    config: &crate::config::Config,
    clock: Clock,
    kill_grace: StdDuration,
) -> Result<(i64, crate::run::Conclusion)> {
    let notifier = notifier(&config.notify, &hostname())?;
    let defaults = config.defaults.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let mut ledger = Ledger::open(ledger_path)
            .with_context(|| format!("opening ledger {}", ledger_path.display()))?;
        ledger.set_durable()?;
        let row = ledger
            .job(job)?
            .filter(|r| r.active)
            .with_context(|| format!("no job `{job}` in the ledger (run `jobctl apply` first)"))?;
        let now = clock.now();
        let me = runner::this_process();
        let id = ledger.create_run(
            &NewRun {
                job: job.to_string(),
                revision_id: row.revision_id,
                trigger: Trigger::Manual,
                scheduled_at: now,
                not_before: None,
                params,
                attempt: 1,
                first_run_id: None,
                running_under: Some(me),
                by: None,
            },
            now,
        )?;
        let run = ledger.run(id)?.context("reading the new run")?;
        let shared = Arc::new(Shared::new(
            ledger, clock, None, kill_grace, defaults, jobs_dir,
        ));
        shared.set_notifier(notifier);
        let (stop_tx, stop_rx) = watch::channel(None);
        // Ctrl-C, a dropped session (SIGHUP) and SIGTERM cancel the run (and are recorded)
        // rather than orphaning it.
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
            let mut term =
                signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
            let mut int =
                signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
            // A second signal kills the run at once, without the kill grace.
            tokio::spawn(async move {
                for now in [false, true] {
                    let why = tokio::select! {
                        _ = int.recv() => "interrupted (Ctrl-C)",
                        _ = hup.recv() => "interrupted (SIGHUP: the session ended)",
                        _ = term.recv() => "interrupted (SIGTERM)",
                    };
                    let reason = if now {
                        format!("{why} again: killed at once")
                    } else {
                        why.to_string()
                    };
                    let _ = stop_tx.send(Some(Stop { reason, now }));
                }
            });
        }
        let conclusion =
            executor::run_and_record(shared.clone(), run, stop_rx, Echo::Terminal).await;
        shared.notified(NOTIFY_GRACE).await;
        Ok((id, conclusion))
    })
}
