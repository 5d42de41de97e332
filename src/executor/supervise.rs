//! One run supervised to its end: the process started, its output batched into the ledger,
//! its end recorded.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use super::record::record_end_queued;
use super::record::{flush, log_ledger_error, notify};
use super::revisions::RevisionError;
use super::{Echo, Persist, Shared, record_end, run_action, run_env};
use crate::ledger::RunRow;
use crate::run::{self, Conclusion, Ending};
use crate::runner::{self, Launch, Report, Stop};
use crate::spec::JobSpec;

const FLUSH_EVERY: StdDuration = StdDuration::from_millis(100);
const FLUSH_LINES: usize = 256;

/// Runs `run` (already `running` in the ledger) to its end and records it. Returns how it
/// concluded.
pub async fn run_and_record(
    shared: Arc<Shared>,
    run: RunRow,
    stop: watch::Receiver<Option<Stop>>,
    echo: Echo,
) -> Conclusion {
    let spec = match revision_of(&shared, &run) {
        Ok(spec) => spec,
        Err(error) => return end_unreadable(shared, run, error).await,
    };
    let launch = launch(&shared, &spec, &run);
    let keep = spec.success_when.is_some();
    let (mut finished, had_output, captured) =
        supervise(&shared, &run, launch, stop, echo, keep).await;
    // Success decided by the output too: an exit 0 whose output does not meet it fails.
    if let (run::Ending::Exited(0) | run::Ending::Completed, Some(rule)) =
        (&finished.ending, &spec.success_when)
        && let Some(why) = rule.unmet(&captured)
    {
        // A process keeps its exit status 0 on the run; a request has none.
        finished.ending = match finished.ending {
            run::Ending::Completed => run::Ending::RequestFailed {
                error: why,
                retry_after: None,
            },
            _ => run::Ending::Unmet(why),
        };
    }
    end_run(shared, spec, run, finished, had_output).await
}

/// The job's definition as the run's revision recorded it.
fn revision_of(shared: &Shared, run: &RunRow) -> Result<Arc<JobSpec>, RevisionError> {
    match run.revision_id {
        Some(id) => shared.spec(id),
        None => Err(RevisionError::NoRevision),
    }
}

/// Records the end of a run whose definition cannot be read: it never starts.
async fn end_unreadable(shared: Arc<Shared>, run: RunRow, error: RevisionError) -> Conclusion {
    let ending = Ending::SpawnFailed(format!("cannot read the job's definition: {error}"));
    // Off the runtime's threads: the end may wait for the ledger to be writable.
    let fallback = ending.clone();
    let (s, r) = (shared.clone(), run.clone());
    tokio::task::spawn_blocking(move || {
        record_end(&s, &r, None, &ending, None, Persist::UntilWritten)
    })
    .await
    .unwrap_or_else(|_| run::conclude(&fallback, None, run.attempt as u32, shared.clock.now()))
}

/// Starts the process and follows it to its end: its output batched into the ledger (every
/// [`FLUSH_EVERY`] or [`FLUSH_LINES`] lines), its other reports recorded as events. Returns how
/// it finished, whether it printed anything, and (`keep`) its output lines joined by newlines.
async fn supervise(
    shared: &Arc<Shared>,
    run: &RunRow,
    launch: Launch,
    stop: watch::Receiver<Option<Stop>>,
    echo: Echo,
    keep: bool,
) -> (runner::Finished, bool, String) {
    let (tx, mut rx) = mpsc::channel::<Report>(1024);
    let on_start = {
        let (shared, run_id, attempt) = (shared.clone(), run.id, run.attempt);
        move |started: &Report| record_started(&shared, run_id, attempt, started)
    };
    // The process is supervised on this task, not one of its own: its reports and its end
    // wake one task (issue 14).
    let process = runner::execute(launch, shared.clock, tx, stop, on_start);
    tokio::pin!(process);
    let mut finished = None;
    let mut output = Unflushed {
        kept: keep.then(String::new),
        ..Unflushed::default()
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Once the runner is done, its sender is gone: the reports left are taken, then
            // `recv` ends the loop.
            done = &mut process, if finished.is_none() => finished = Some(done),
            report = rx.recv() => match report {
                None => break,
                Some(report) => output.take(shared, run, report, echo),
            },
            _ = tick.tick() => {
                output.flush(shared, run.id);
                // The daemon's starts ride with the next end or claim; with none for a
                // while, they are written on their own: a running run's pid is in the ledger
                // within about FLUSH_EVERY of its start.
                if shared.starts_queued() {
                    let s = shared.clone();
                    tokio::task::spawn_blocking(move || log_ledger_error(s.flush_starts()));
                }
            }
        }
    }
    let finished = match finished {
        Some(finished) => finished,
        None => process.await,
    };
    output.truncated |= finished.truncated;
    output.flush(shared, run.id);
    let had_output = output.bytes > 0 || finished.output_bytes > 0;
    (finished, had_output, output.kept.unwrap_or_default())
}

/// A run's output lines not yet in the ledger, with what the ledger is told of the whole:
/// its size so far and whether it passed its limit.
#[derive(Default)]
struct Unflushed {
    lines: Vec<(Timestamp, &'static str, String)>,
    bytes: i64,
    truncated: bool,
    /// Every line so far, when the job's `success_when` reads them (bounded by
    /// `output_limit`: the runner drops the lines past it).
    kept: Option<String>,
}

impl Unflushed {
    /// Takes one report of the runner: a line is echoed and batched (flushed when the batch
    /// is full), anything else is recorded as the run's event (a start is already in the
    /// ledger: `record_started`).
    fn take(&mut self, shared: &Shared, run: &RunRow, report: Report, echo: Echo) {
        match report {
            Report::Line(line) => {
                self.bytes += line.text.len() as i64 + 1;
                if echo == Echo::Terminal {
                    echo_line(&line);
                }
                if let Some(kept) = &mut self.kept {
                    if !kept.is_empty() {
                        kept.push('\n');
                    }
                    kept.push_str(&line.text);
                }
                self.lines.push((line.at, line.stream, line.text));
                if self.lines.len() >= FLUSH_LINES {
                    self.flush(shared, run.id);
                }
            }
            report => {
                self.truncated |= matches!(report, Report::Truncated { .. });
                record_report(shared, run, report, echo);
            }
        }
    }

    fn flush(&mut self, shared: &Shared, run_id: i64) {
        flush(shared, run_id, &mut self.lines, self.bytes, self.truncated);
    }
}

/// Records the run's end (its output sealed first) off the runtime's threads, then sends its
/// notifications.
async fn end_run(
    shared: Arc<Shared>,
    spec: Arc<JobSpec>,
    run: RunRow,
    finished: runner::Finished,
    had_output: bool,
) -> Conclusion {
    // The run's last lines, still plain, become a compressed chunk (a run that printed
    // nothing has none: no transaction, and no thread hop).
    if had_output {
        let (s, id) = (shared.clone(), run.id);
        let _ =
            tokio::task::spawn_blocking(move || log_ledger_error(s.ledger().seal_output(id))).await;
    }
    // The end is a synchronous commit (a disk sync), written by the ledger's writer with the
    // other ends queued meanwhile.
    let reply = finished.reply.unwrap_or_default();
    let conclusion = record_end_queued(
        &shared,
        &run,
        Some(&spec),
        &finished.ending,
        finished.usage,
        reply,
    )
    .await;
    notify(&shared, spec, &run, &conclusion);
    conclusion
}

/// The process's start, and what the runner reports besides output lines, recorded as the
/// run's events.
fn record_report(shared: &Shared, run: &RunRow, report: Report, echo: Echo) {
    match report {
        Report::Started { at, what, pid, .. } => {
            // Recorded in the ledger by `record_started`, before this report was sent.
            match pid {
                Some(pid) => tracing::info!(run = run.id, job = %run.job, pid, "process started"),
                None => tracing::info!(run = run.id, job = %run.job, %what, "request started"),
            }
            shared.progressed();
            // A backfill's slot is in the past by design: not a late fire.
            if let Some(due) = run.scheduled_at.filter(|_| run.backfill_id.is_none()) {
                let late = at.duration_since(due).as_secs_f64().max(0.0);
                shared.metrics.fire_latency.observe(late);
            }
        }
        Report::Truncated { at_bytes } => {
            let message = format!(
                "output passed its limit of {}; later output is dropped",
                crate::size::ByteSize(at_bytes)
            );
            log_ledger_error(shared.ledger().add_event(
                run.id,
                shared.clock.now(),
                "output_truncated",
                &message,
            ));
            if echo == Echo::Terminal {
                eprintln!("jobctl: {message}");
            }
        }
        Report::OutputCut { why } => {
            tracing::warn!(run = run.id, job = %run.job, "{why}");
            log_ledger_error(shared.ledger().add_event(
                run.id,
                shared.clock.now(),
                "output_cut",
                &why,
            ));
        }
        Report::Signalled { signal, why } => {
            let message = format!(
                "sent {} to the process group: {why}",
                run::signal_name(signal)
            );
            log_ledger_error(shared.ledger().add_event(
                run.id,
                shared.clock.now(),
                "signal",
                &message,
            ));
        }
        Report::Line(_) => {}
    }
}

/// Records the process a run started (its pid and `started` event), with the other starts
/// queued meanwhile; on the runner's blocking thread, before the start is reported.
fn record_started(shared: &Shared, run_id: i64, attempt: i64, report: &Report) {
    if let Report::Started {
        pid,
        start_time,
        at,
        what,
    } = report
    {
        log_ledger_error(shared.record_started(crate::ledger::ProcessStarted {
            run_id,
            pid: *pid,
            pid_start: pid.map(|_| *start_time),
            message: format!("{what} started (attempt {attempt})"),
            at: *at,
        }));
    }
}

/// How the runner starts this run: its action and environment, where, and its limits.
fn launch(shared: &Shared, spec: &JobSpec, run: &RunRow) -> Launch {
    Launch {
        action: run_action(spec, run),
        env: run_env(spec, run),
        working_dir: Some(
            shared
                .base_dir
                .join(spec.working_dir.as_deref().unwrap_or("."))
                .to_string_lossy()
                .into_owned(),
        ),
        timeout: run
            .overrides
            .timeout
            .or(spec.timeout)
            .and_then(|t| StdDuration::try_from(t.as_signed()).ok()),
        kill_grace: shared.kill_grace,
        output_limit: spec.output_limit.0,
        tag: runner::run_tag(run.supervisor.unwrap_or_else(runner::this_process), run.id),
        inherit: shared.inherited_env(),
        client: (!spec.action.is_process())
            .then(|| shared.http_client())
            .flatten(),
        provider: match &spec.action {
            crate::spec::Action::Prompt(p) => {
                shared.defaults.llm.provider(p.provider.as_deref()).cloned()
            }
            _ => None,
        },
        // The daemon's `record_started` only queues the start (see `Shared::record_started`).
        start_inline: shared.queues_starts(),
    }
}

fn echo_line(line: &runner::Line) {
    use std::io::Write;
    if line.stream == "stderr" {
        let _ = writeln!(std::io::stderr(), "{}", line.text);
    } else {
        let _ = writeln!(std::io::stdout(), "{}", line.text);
    }
}
