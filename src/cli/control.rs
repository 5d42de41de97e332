//! Commands on the daemon's work: pause, resume and status, on the local ledger.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use super::operator::operator;
use super::output::control::{render_pause, render_status};
use super::{Settings, clock, open_existing};
use crate::api::wire::{PauseResult, PauseView};
use crate::runner;

pub fn pause(settings: &Settings, job: &str, reason: Option<&str>) -> Result<ExitCode> {
    let ledger = open_existing(settings)?;
    let now = clock()?.now();
    let paused = ledger
        .pause(job, &operator(), reason, now)
        .with_context(|| format!("pausing job {job}"))?;
    ledger.wake_daemon();
    let row = ledger
        .job(job)
        .with_context(|| format!("reading job {job}"))?;
    let result = PauseResult {
        job: job.to_string(),
        changed: paused,
        paused: row.and_then(|r| r.paused.as_ref().map(PauseView::from)),
    };
    render_pause(settings.output, true, &result)
}

pub fn resume(settings: &Settings, job: &str) -> Result<ExitCode> {
    let ledger = open_existing(settings)?;
    let resumed = ledger
        .resume(job)
        .with_context(|| format!("resuming job {job}"))?;
    ledger.wake_daemon();
    let result = PauseResult {
        job: job.to_string(),
        changed: resumed,
        paused: None,
    };
    render_pause(settings.output, false, &result)
}

pub fn status(settings: &Settings) -> Result<ExitCode> {
    let now = super::now()?;
    let Some(ledger) = super::open_read_only(settings)? else {
        bail!(
            "there is no ledger at {} yet; run `jobctl apply` or `jobctl serve`",
            settings.ledger.display()
        );
    };
    let view = crate::views::status(&ledger, &settings.ledger, now, runner::is_alive, None)
        .context("reading the daemon's status")?;
    render_status(settings.output, &view)
}
