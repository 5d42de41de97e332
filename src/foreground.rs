//! `jobctl run NAME`: a run in the foreground, supervised by this process rather than the
//! daemon, cancelled and recorded when the session ends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context as _, Result};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::executor::{self, Echo, NOTIFY_GRACE, Shared};
use crate::ledger::{Ledger, NewRun};
use crate::run::Trigger;
use crate::runner::{self, Stop};

/// `jobctl run NAME`: runs a job now in the foreground, recorded as a manual run.
///
/// # Errors
///
/// When the job is unknown or the ledger cannot be written.
pub fn run_foreground(
    mut ledger: Ledger,
    jobs_dir: &Path,
    job: &str,
    params: Option<serde_json::Value>,
    config: &crate::config::Config,
    clock: Clock,
    kill_grace: StdDuration,
) -> Result<(i64, crate::run::Conclusion)> {
    let notifier = crate::notify::Notifier::new(
        &config.notify,
        crate::host::hostname(),
        crate::notify::Policy::default(),
    )
    .map_err(|e| anyhow::anyhow!("setting up notifications: {e}"))?;
    let defaults = config.defaults.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
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
                overrides: crate::run::Overrides::default(),
                backfill_id: None,
            },
            now,
        )?;
        let run = ledger.run(id)?.context("reading the new run")?;
        let shared = Arc::new(Shared::new(
            ledger, clock, None, kill_grace, defaults, jobs_dir,
        ));
        shared.set_notifier(notifier);
        // The run's end releases what a daemon's would (fan-ins, blocked runs).
        shared.set_graph(Arc::new(shared.load_graph()?));
        let stop_rx = stop_on_signals()?;
        let conclusion =
            executor::run_and_record(shared.clone(), run, stop_rx, Echo::Terminal).await;
        shared.notified(NOTIFY_GRACE).await;
        Ok((id, conclusion))
    })
}

/// Ctrl-C, a dropped session (SIGHUP) and SIGTERM cancel the run (and are recorded) rather
/// than orphaning it; a second signal kills it at once, without the kill grace.
fn stop_on_signals() -> Result<watch::Receiver<Option<Stop>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (stop_tx, stop_rx) = watch::channel(None);
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
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
            let _ = stop_tx.send(Some(Stop {
                reason,
                now,
                lost: false,
            }));
        }
    });
    Ok(stop_rx)
}
