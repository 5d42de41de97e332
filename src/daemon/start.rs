//! Starting `jobctl serve`: the lease, the API's listener, the loops, and the serve loop that
//! debounces file events and waits for a signal (or a lost lease).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use anyhow::{Context as _, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::{BACKSTOP, DEBOUNCE, DEBOUNCE_MAX, Daemon, IDENTITY_CHECK, ORPHAN_CHECK, Options};
use crate::executor::{self, Room, Shared};
use crate::handle::{Command, Handle};
use crate::ledger::{Handoff, Ledger};
use crate::runner;
use crate::tls::ServerCert;
use crate::watch::{DirChange, DirWatch, watch_wake};

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
///
/// When it cannot start: the ledger cannot be opened or is served by another daemon, or the
/// jobs folder cannot be watched. After an orderly shutdown, when it had to stop because
/// another daemon took its lease.
pub fn serve(options: Options) -> Result<()> {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Blocking threads (process starts, ledger commits) outlive the gap between two
        // bursts of a `* * * * *` minute: each burst reuses them rather than creating (and
        // then ending) as many threads again (issue 14). Tokio's default is 10 s.
        .thread_keep_alive(std::time::Duration::from_secs(90))
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve_async(options))
}

/// How many malloc arenas the daemon's threads share: the main thread's, one for each of the
/// runtime's two workers, and one for the blocking threads.
const MALLOC_ARENAS: libc::c_int = 4;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`], before any thread starts. glibc gives each
/// thread that allocates an arena of its own, up to 8 per core (16 here), and keeps each
/// arena's high-water mark resident. Issue 14 moved ledger work (the executor's turn, run
/// starts and ends) onto blocking threads, so the start's reconcile and the runs' bookkeeping
/// spread over more arenas: the API bench's daemon held 115 MiB anonymous after its load,
/// against 86 before, for the same live heap (57 MiB with one arena). Four arenas keep it
/// below the old figure without making the two workers share one arena's lock (two cost
/// `GET /v1/jobs/{name}` about 10% in a quick test). An operator's own `MALLOC_ARENA_MAX`
/// (or `GLIBC_TUNABLES`) wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var_os("MALLOC_ARENA_MAX").is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if !tuned {
            // SAFETY: mallopt takes glibc's own lock and only bounds arenas yet to be made.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
        }
    }
}

/// The signals the daemon answers.
struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }
}

/// Why the serve loop ended.
enum Stopped {
    Signal(&'static str),
    /// Another daemon took the lease: this one stops, and exits with an error.
    LeaseLost(String),
}

/// The daemon's lease and the ledger connection that holds it, ready to serve.
struct Started {
    shared: Arc<Shared>,
    /// This start's incarnation: the epoch its runs carry.
    epoch: i64,
    /// The leader's term, when this node leads from the start.
    term: Option<i64>,
    me: (i64, i64),
    listener: tokio::net::TcpListener,
    /// PostgreSQL: the connection that records liveness.
    liveness: Option<Ledger>,
}

async fn serve_async(mut options: Options) -> Result<()> {
    // The node's name: as given, or this host and process.
    options
        .daemon
        .node
        .get_or_insert_with(|| format!("{}-{}", crate::host::hostname(), std::process::id()));
    // First of all, so a signal that arrives while starting is handled, not fatal.
    let mut signals = Signals::install()?;
    // Before the lease: a certificate that cannot be used refuses the start, naming the file.
    let certificate = match (&options.server.tls_cert, &options.server.tls_key) {
        (Some(cert), Some(key)) => Some(
            ServerCert::load(cert, key)
                .context("loading the API's TLS certificate (--tls-cert, --tls-key)")?,
        ),
        _ => None,
    };
    let started = take_lease(&options, certificate.as_ref()).await?;
    let listener = started.listener;
    let certificate = certificate.map(|(cert, _)| cert);
    let (handle, inbox) = Handle::new();
    let (claimed, claimed_runs) = mpsc::unbounded_channel();
    let (dir_events, dir_changed) = mpsc::unbounded_channel::<DirChange>();
    let follower = match &options.git {
        Some(git) => Some(follower(git).await?),
        None => None,
    };
    if follower.is_none() {
        // A repository followed before is not shown any more.
        let _ = started.shared.ledger().set_status("git", "null");
    }
    let daemon = Arc::new(Daemon::new(
        options,
        follower,
        started.shared,
        (started.epoch, started.term, started.me),
        started.liveness,
        inbox.problems,
        dir_events.clone(),
    ));
    daemon.shared.set_claimer(executor::Claimer {
        epoch: daemon.epoch,
        supervisor: daemon.me,
        room: daemon.room.clone(),
        claimed,
    });
    if let Ok(version) = daemon.shared.ledger().data_version() {
        daemon.seen_version.store(version, Ordering::SeqCst);
    }
    // Watch before the first reconcile, so nothing written meanwhile goes unnoticed. A
    // followed repository is not watched: its commits arrive by fetch.
    let dir_watch = match daemon.git {
        Some(_) => None,
        None => Some(DirWatch::new(&daemon.options.dir, dir_events)?),
    };
    let _ledger_watch = {
        let d = daemon.clone();
        // A PostgreSQL ledger has no wake file: other nodes' writes are polled for.
        match daemon.options.ledger.file() {
            Some(file) => Some(watch_wake(file, move || d.ledger_changed())?),
            None => None,
        }
    };
    // On PostgreSQL, other nodes' and commands' commits arrive as notifications.
    let _listener = {
        let d = daemon.clone();
        Ledger::listen(&daemon.options.ledger, move |wake| match wake {
            crate::ledger::Wake::Work => d.wake_executor.notify_one(),
            crate::ledger::Wake::Change => d.on_ledger_change(),
            crate::ledger::Wake::Pushed => d.pushed(false),
        })
        .context("listening to the ledger")?
    };
    daemon.end_orphans();
    // Only the leader applies its jobs folder; a follower that takes the lease later applies
    // it then.
    if daemon.leading() {
        let d = daemon.clone();
        tokio::task::spawn_blocking(move || d.reconcile("start"))
            .await
            .context("reconciling")?;
    }
    daemon.load_last_successes();
    let mut tasks = spawn_loops(&daemon, claimed_runs, inbox.commands);
    tasks.push(spawn_api(&daemon, listener, certificate.as_ref(), handle));
    // Under systemd (`Type=notify`): ready once the ledger is reconciled and the loops run.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tasks.extend(spawn_watchdog(&daemon));
    let stopped = serve_loop(&daemon, &mut signals, dir_watch, dir_changed, certificate).await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let result = shut_down(&daemon, signals, stopped).await;
    for task in tasks {
        task.abort();
    }
    result
}

/// Shuts down after the serve loop ended: with the shutdown grace after a signal, at once
/// after a lost lease (then `serve` fails with the reason).
async fn shut_down(daemon: &Daemon, signals: Signals, stopped: Stopped) -> Result<()> {
    // A second SIGTERM or SIGINT while shutting down stops the runs at once.
    let Signals {
        mut term, mut int, ..
    } = signals;
    let again = Box::pin(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    });
    match stopped {
        Stopped::Signal(why) => {
            let grace = StdDuration::try_from(daemon.options.daemon.shutdown_grace.as_signed())
                .unwrap_or_default();
            daemon.shutdown(why, grace, again).await;
            Ok(())
        }
        Stopped::LeaseLost(message) => {
            // Another daemon serves the ledger now: this one's runs are stopped at once (their
            // ends are still recorded: they carry this daemon's epoch).
            daemon
                .shutdown("the lease was lost", StdDuration::ZERO, again)
                .await;
            Err(anyhow::anyhow!(message).context("jobs serve stopped: another daemon took over"))
        }
    }
}

/// Opens the ledger durably, takes the lease, binds the API's address and logs the start; the
/// lease is given back if the start fails after it.
async fn take_lease(
    options: &Options,
    certificate: Option<&(Arc<ServerCert>, crate::tls::Loaded)>,
) -> Result<Started> {
    let ledger = Ledger::open_at(&options.ledger, options.open)
        .with_context(|| format!("opening ledger {}", options.ledger.display()))?;
    ledger.set_durable()?;
    ledger
        .reclaim_space()
        .context("preparing the ledger for retention")?;
    let me = runner::this_process();
    let host = crate::host::hostname();
    let name = options.daemon.node.clone().unwrap_or_default();
    let mut ledger = ledger;
    let sqlite = options.ledger.file().is_some();
    // SQLite: one daemon per ledger; a second one is refused while the holder's process
    // lives. PostgreSQL: any number; the lease is asked for once this node has joined.
    let lease = if sqlite {
        Some(
            ledger.acquire_lease(&name, me, options.clock.now(), |lease| {
                match (lease.pid, lease.pid_start) {
                    (Some(pid), Some(start)) => runner::is_alive(pid, start),
                    _ => false,
                }
            })?,
        )
    } else {
        None
    };
    let give_back = |ledger: &Ledger| {
        if let Some(epoch) = lease {
            let _ = ledger.release_lease(epoch, options.clock.now());
        }
    };
    let listener = crate::api::bind(&options.server.listen, &options.tokens, options.insecure)
        .await
        .map_err(anyhow::Error::msg);
    let notifier = crate::notify::Notifier::new(
        &options.notify,
        host.clone(),
        crate::notify::Policy::default(),
    )
    .map_err(|e| anyhow::anyhow!("setting up notifications: {e}"));
    let (listener, notifier) = match (listener, notifier) {
        (Ok(listener), Ok(notifier)) => (listener, notifier),
        (Err(e), _) | (_, Err(e)) => {
            // Give the lease back: this daemon never started.
            give_back(&ledger);
            return Err(e);
        }
    };
    let listen = listener.local_addr().context("reading the API's address")?;
    let scheme = if certificate.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{listen}");
    // The node joins: its row, and the name the runs it claims record.
    let node = crate::ledger::NodeInfo {
        name: name.clone(),
        labels: options.daemon.labels.clone(),
        address: Some(url.clone()),
        host: host.clone(),
        pid: me.0,
    };
    let joined = ledger
        .db_now(options.clock.now())
        .and_then(|now| ledger.join(&node, now));
    let epoch = match joined {
        Ok(epoch) => epoch,
        Err(e) => {
            give_back(&ledger);
            return Err(anyhow::Error::new(e).context("recording this node"));
        }
    };
    ledger.set_node(&node.name, &node.labels);
    let (term, liveness) = match lease {
        Some(term) => (Some(term), None),
        None => {
            let liveness = Ledger::open_at(&options.ledger, options.open)
                .context("opening the ledger's liveness connection")?;
            let now = liveness.db_now(options.clock.now())?;
            let mut liveness = liveness;
            let term = match liveness.lead(&name, me, None, now)? {
                crate::ledger::Leadership::Leads { term, .. } => Some(term),
                crate::ledger::Leadership::Follows { holder, term } => {
                    tracing::info!(
                        leader = %holder,
                        term,
                        "node {holder} leads (term {term}); this node follows: it claims and runs work"
                    );
                    None
                }
            };
            (term, Some(liveness))
        }
    };
    tracing::info!(
        pid = me.0,
        epoch,
        term,
        leads = term.is_some(),
        node = %node.name,
        labels = %node.labels.join(","),
        listen = %listen,
        url = %url,
        tls_cert = certificate.map(|(c, _)| c.cert_path().display().to_string()),
        tls_expires = certificate.and_then(|(_, l)| l.not_after).map(|t| t.to_string()),
        ledger = %options.ledger.display(),
        dir = %options.dir.display(),
        max_connections = options.server.max_connections,
        max_connections_per_ip = options.server.max_connections_per_ip,
        "jobs serve started; the API listens on {url}"
    );
    let kill_grace = StdDuration::try_from(options.daemon.kill_grace.as_signed())
        .unwrap_or(StdDuration::from_secs(10));
    let shared = Arc::new(Shared::new(
        ledger,
        options.clock,
        Some(epoch),
        kill_grace,
        options.defaults.clone(),
        &options.dir,
    ));
    shared.set_notifier(notifier);
    Ok(Started {
        shared,
        epoch,
        term,
        me,
        listener,
        liveness,
    })
}

/// A look the daemon takes at a fixed period.
type Check = fn(&Daemon);

/// The daemon's loops: scheduler, executor (and the starter of the runs that ends claimed),
/// pruner, the API's commands, the backstop look at the ledger, and the orphan check.
fn spawn_loops(
    daemon: &Arc<Daemon>,
    claimed: mpsc::UnboundedReceiver<Handoff>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(daemon.clone().scheduler()),
        tokio::spawn(daemon.clone().executor()),
        tokio::spawn(daemon.clone().starter(claimed)),
        tokio::spawn(daemon.clone().pruner()),
        tokio::spawn(daemon.clone().commands(commands)),
        tokio::spawn(daemon.clone().follow_git()),
    ];
    // A safety net for lost file-system events (an inotify queue overflow): look at the
    // ledger once a minute. One cheap query; the real wake-ups are event-driven.
    // Runs whose supervisor died while this daemon serves (a foreground `jobctl run` killed,
    // its session dropped, the OOM killer) are ended within seconds, not at the next start.
    // The node's heartbeat: `jobctl status` and the other nodes tell it is alive by it.
    // On PostgreSQL, a notification lost behind a pooler is caught by a claim every few
    // seconds (`PG_POLL`).
    // On PostgreSQL, a node that cannot record its heartbeat stops its runs in time
    // (`check_fence`: no ledger call, so a hung connection cannot hold it up).
    let checks: [(StdDuration, Check); 5] = [
        (BACKSTOP, Daemon::ledger_changed),
        (super::PG_POLL, Daemon::poll_work),
        (ORPHAN_CHECK, Daemon::end_orphans),
        (crate::rules::NODE_HEARTBEAT, Daemon::heartbeat),
        (super::FENCE_CHECK, Daemon::check_fence),
    ];
    for (every, check) in checks {
        let d = daemon.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let d = d.clone();
                let _ = tokio::task::spawn_blocking(move || check(&d)).await;
            }
        }));
    }
    tasks
}

/// Serves the API on `listener`, telling the daemon through `handle`.
fn spawn_api(
    daemon: &Arc<Daemon>,
    listener: tokio::net::TcpListener,
    certificate: Option<&Arc<ServerCert>>,
    handle: Handle,
) -> JoinHandle<()> {
    let server = &daemon.options.server;
    let derived = crate::api::conns::Limits::keeping(
        1024,
        crate::api::conns::reserve_for(daemon.options.daemon.max_concurrent_runs),
    );
    let limits = crate::api::conns::Limits {
        max: server.max_connections.unwrap_or(derived.max),
        per_ip: server.max_connections_per_ip.unwrap_or(derived.per_ip),
    };
    let request_timeout = StdDuration::try_from(server.request_timeout.as_signed())
        .unwrap_or(StdDuration::from_secs(30));
    let header_timeout = request_timeout.min(StdDuration::from_secs(10));
    let router = crate::api::router(crate::api::Options {
        ledger: daemon.options.ledger.clone(),
        open: daemon.options.open,
        shared: daemon.shared.clone(),
        tokens: daemon.options.tokens.clone(),
        insecure: daemon.options.insecure,
        public_metrics: server.public_metrics,
        tls: certificate.is_some(),
        public_url: daemon.options.notify.public_url.clone(),
        webhook_rate_limit: server.webhook_rate_limit,
        body_limit: server.body_limit,
        request_timeout,
        daemon: handle,
        git: daemon.options.git.as_ref().map(|git| crate::api::GitHook {
            branch: git.branch.clone(),
            secret: git.secret.clone(),
        }),
    });
    let tls = certificate.map(ServerCert::server_config);
    tokio::spawn(async move {
        crate::api::serve(listener, router, header_timeout, limits, tls).await;
    })
}

/// Under systemd's watchdog: fed only while the scheduler is alive and not stuck, so a daemon
/// that answers but no longer fires is restarted.
fn spawn_watchdog(daemon: &Arc<Daemon>) -> Option<JoinHandle<()>> {
    sd_notify::watchdog_enabled().map(|timeout| {
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
    })
}

/// Reconciles on SIGHUP and on changes in the jobs folder until SIGTERM, SIGINT or a lost
/// lease. Changes are gathered until the folder has been quiet for DEBOUNCE (an editor's
/// save, a `git checkout` of many files: one reconcile), but never longer than DEBOUNCE_MAX
/// after the first. No timer runs while nothing changes.
async fn serve_loop(
    daemon: &Arc<Daemon>,
    signals: &mut Signals,
    mut dir_watch: Option<DirWatch>,
    mut dir_changed: mpsc::UnboundedReceiver<DirChange>,
    certificate: Option<Arc<ServerCert>>,
) -> Stopped {
    // Replacing the folder (a mv-swap deploy, `rm -rf` and re-create, a `jobs.d` symlink
    // switched to a new release) is seen by the parent's watch, and by this look at the
    // folder's identity for what no watch sees (a symlink higher up switched).
    let mut identity_check = tokio::time::interval(IDENTITY_CHECK);
    identity_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first_change: Option<tokio::time::Instant> = None;
    let mut pending = DirChange::default();
    loop {
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
            _ = signals.hup.recv() => {
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
                if dir_watch.as_mut().is_some_and(DirWatch::follow) {
                    pending.rescan = true;
                }
                first_change.get_or_insert_with(tokio::time::Instant::now);
            }
            _ = identity_check.tick() => {
                if dir_watch.as_mut().is_some_and(DirWatch::follow) {
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
            () = daemon.lease_lost_signal.notified() => {
                let message = daemon
                    .lease_lost
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
                    .unwrap_or_default();
                return Stopped::LeaseLost(message);
            }
            _ = signals.term.recv() => return Stopped::Signal("SIGTERM"),
            _ = signals.int.recv() => return Stopped::Signal("SIGINT"),
        }
    }
}

impl Daemon {
    /// The daemon's state, before any loop runs.
    fn new(
        options: Options,
        git: Option<super::follow::Follower>,
        shared: Arc<Shared>,
        (epoch, term, me): (i64, Option<i64>, (i64, i64)),
        liveness: Option<Ledger>,
        problems: tokio::sync::watch::Sender<Option<crate::handle::Problems>>,
        dir_events: mpsc::UnboundedSender<DirChange>,
    ) -> Daemon {
        Daemon {
            room: Arc::new(Room::new(options.daemon.max_concurrent_runs)),
            shared,
            options,
            git,
            epoch,
            term: std::sync::atomic::AtomicI64::new(term.unwrap_or(0)),
            liveness: liveness.map(Mutex::new),
            last_beat: Mutex::new(std::time::Instant::now()),
            fenced: AtomicBool::new(false),
            skewed: AtomicBool::new(false),
            leader: Mutex::new(None),
            me,
            wake_scheduler: Notify::new(),
            wake_executor: Notify::new(),
            executor_blind: AtomicBool::new(true),
            reload: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            seen_version: std::sync::atomic::AtomicI64::new(-1),
            idle: Notify::new(),
            stops: Mutex::new(super::Stops::default()),
            problems,
            parse_cache: Mutex::new(HashMap::new()),
            last_scan: Mutex::new(None),
            dir_events,
            lease_lost: Mutex::new(None),
            lease_lost_signal: Notify::new(),
            apply_failures: std::sync::atomic::AtomicU32::new(0),
            apply_retry: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The metric of each job's last success, from the ledger, so it survives a restart.
    fn load_last_successes(&self) {
        if let Ok(successes) = self.shared.ledger().last_successes() {
            for (job, at) in successes {
                self.shared
                    .metrics
                    .last_success
                    .get_or_create(&crate::metrics::JobLabel { job })
                    .set(at);
            }
        }
    }
}

/// The mirror of the followed repository, opened (created on first start) off the runtime.
async fn follower(git: &crate::config::GitConfig) -> Result<super::follow::Follower> {
    let remote = crate::git::remote::Remote {
        url: git.url.clone(),
        branch: git.branch.clone(),
        path: git.path.clone(),
        credentials: crate::git::remote::Credentials {
            ssh_key_file: git.ssh_key_file.clone(),
            known_hosts: git.known_hosts.clone(),
            token_file: git.token_file.clone(),
            token_user: git.token_user.clone(),
        },
    };
    let workdir = git.workdir.clone().unwrap_or_default();
    let interval =
        StdDuration::try_from(git.interval.as_signed()).unwrap_or(StdDuration::from_secs(60));
    let shown = workdir.display().to_string();
    tokio::task::spawn_blocking(move || {
        crate::git::remote::Mirror::open(remote, &workdir)
            .map(|mirror| super::follow::Follower::new(mirror, interval))
    })
    .await
    .context("opening the repository's mirror")?
    .with_context(|| format!("preparing the mirror of the jobs repository in {shown}"))
}

/// Re-reads the API's certificate and key (a renewal, at SIGHUP). A pair that cannot be used
/// is reported and the current one kept: a failed reload never stops the server.
fn reload_certificate(certificate: &ServerCert) {
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
