//! Starting `jobctl serve`: the lease, the API's listener, the loops, and the serve loop that
//! debounces file events and waits for a signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use anyhow::{Context as _, Result};
use tokio::sync::Notify;

use super::{BACKSTOP, DEBOUNCE, DEBOUNCE_MAX, Daemon, IDENTITY_CHECK, ORPHAN_CHECK, Options};
use crate::executor::{self, Shared};
use crate::ledger::Ledger;
use crate::runner;
use crate::watch::{DirChange, DirWatch, watch_ledger};

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
    let host = crate::host::hostname();
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
            room: Box::new(move || {
                room.upgrade().map_or(0, |d| {
                    if d.stopping.load(Ordering::SeqCst) {
                        0
                    } else {
                        limit.saturating_sub(d.active.load(Ordering::SeqCst))
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

/// What sends this process's notifications, from `jobs.toml`.
fn notifier(config: &crate::config::NotifyConfig, host: &str) -> Result<crate::notify::Notifier> {
    crate::notify::Notifier::new(config, host.to_string(), crate::notify::Policy::default())
        .map_err(|e| anyhow::anyhow!("setting up notifications: {e}"))
}
