//! A run's end recorded (with its retry, its metrics) and its notifications sent; output
//! batches written.

use crate::spec::Reply;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use jiff::Timestamp;

use super::{Shared, WriteFailed};
use crate::ledger::{Finish, NewRun, RunEnd, RunRow, stamp};
use crate::metrics::{JobLabel, JobState};
use crate::run::{self, Conclusion, Ending, Trigger};
use crate::runner;
use crate::spec::JobSpec;

/// The first wait before a failed run end is written again; it doubles up to the maximum.
const REWRITE_FIRST: StdDuration = StdDuration::from_millis(100);
const REWRITE_MAX: StdDuration = StdDuration::from_secs(5);

/// Sends the run's notifications (`on_failure`, `on_success`) in the background, each
/// outcome recorded as an event of the run. Only a run's final end notifies: a failure that
/// will be retried does not. [`Shared::notified`] waits for those in flight. A notification
/// not delivered is loud: a WARN line, `jobs_notifications_failed_total`, a `notify_failed`
/// event.
pub(super) fn notify(
    shared: &Arc<Shared>,
    spec: Arc<JobSpec>,
    run: &RunRow,
    conclusion: &Conclusion,
) {
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
    let started_at = run.started_at;
    let mut outcome = crate::notify::Outcome {
        job: run.job.clone(),
        run_id: run.id,
        state: conclusion.state.to_string(),
        trigger: run.trigger.to_string(),
        attempt: run.attempt,
        exit_code: conclusion.exit_code,
        error: conclusion.error.clone(),
        duration_ms: started_at.map(|s| now.duration_since(s).as_millis() as i64),
        started_at: started_at.map(stamp),
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
        send_all(&s, &notifier, &due, &outcome).await;
    });
}

/// Sends each due notification in turn, each outcome recorded as an event of the run.
async fn send_all(
    s: &Arc<Shared>,
    notifier: &crate::notify::Notifier,
    due: &[crate::spec::Notification],
    outcome: &crate::notify::Outcome,
) {
    let run_id = outcome.run_id;
    for notification in due {
        let kind = crate::notify::kind(&notification.action);
        let label = crate::metrics::NotifyKind { kind: kind.into() };
        let (event_kind, message) = match notifier.send(notification, outcome).await {
            Ok(message) => {
                s.metrics.notifications_sent.get_or_create(&label).inc();
                tracing::info!(run = run_id, job = %outcome.job, kind, "{message}");
                ("notified", message)
            }
            Err(error) => {
                let message = error.to_string();
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

/// Writes a run's end. One that cannot be written (a full disk, a read-only ledger) is kept
/// and, with [`Persist::UntilWritten`], written again until it lands: given up, the run would
/// stay `running`, its job's slots would be skipped as overlapping, and the next daemon would
/// run it a second time.
fn write_end(
    shared: &Shared,
    run: &RunRow,
    end: &RunEnd,
    persist: Persist,
) -> Result<Option<i64>, WriteFailed> {
    let mut wait = REWRITE_FIRST;
    loop {
        match written(shared, run, shared.finish(end.clone()), persist, wait) {
            Ok(result) => return result,
            Err(next) => {
                std::thread::sleep(wait);
                wait = next;
            }
        }
    }
}

/// [`write_end`] with [`Persist::UntilWritten`], awaiting the ledger's writer
/// ([`Shared::finish_queued`]) rather than blocking a thread.
async fn write_end_queued(
    shared: &Arc<Shared>,
    run: &RunRow,
    end: &RunEnd,
) -> Result<Option<i64>, WriteFailed> {
    let mut wait = REWRITE_FIRST;
    loop {
        let result = shared.finish_queued(end.clone()).await;
        match written(shared, run, result, Persist::UntilWritten, wait) {
            Ok(result) => return result,
            Err(next) => {
                tokio::time::sleep(wait).await;
                wait = next;
            }
        }
    }
}

/// One attempt of [`write_end`]: `Ok` with what to return, or `Err` with the wait after the
/// coming one when the end must be written again after `wait`.
fn written(
    shared: &Shared,
    run: &RunRow,
    result: Result<Option<i64>, WriteFailed>,
    persist: Persist,
    wait: StdDuration,
) -> Result<Result<Option<i64>, WriteFailed>, StdDuration> {
    match result {
        Ok(retry) => {
            shared.health.write_succeeded();
            Ok(Ok(retry))
        }
        Err(e) => {
            shared
                .health
                .write_failed("recording a run's end", &e.message);
            if persist == Persist::Once
                || shared.giving_up.load(std::sync::atomic::Ordering::SeqCst)
            {
                return Ok(Err(e));
            }
            tracing::error!(
                run = run.id,
                job = %run.job,
                "recording the run's end: {e}; writing it again in {} ms",
                wait.as_millis()
            );
            Err((wait * 2).min(REWRITE_MAX))
        }
    }
}

/// The metrics of a run's end that was written: runs finished, duration, last success.
fn count_end(shared: &Shared, run: &RunRow, conclusion: &Conclusion, now: Timestamp) {
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
    if let Some(started) = run.started_at {
        m.run_duration
            .get_or_create(&label)
            .observe(now.duration_since(started).as_secs_f64().max(0.0));
    }
    if conclusion.state == crate::run::RunState::Succeeded {
        m.last_success.get_or_create(&label).set(now.as_second());
    }
}

/// A prompt run's tokens, by kind.
fn count_tokens(shared: &Shared, run: &RunRow, reply: &Reply) {
    for (kind, n) in [
        ("prompt", reply.prompt_tokens),
        ("completion", reply.completion_tokens),
    ] {
        if let Some(n) = n.and_then(|n| u64::try_from(n).ok()) {
            shared
                .metrics
                .llm_tokens
                .get_or_create(&crate::metrics::JobTokens {
                    job: run.job.clone(),
                    kind: kind.to_string(),
                })
                .inc_by(n);
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
    let (conclusion, end) = end_of(shared, run, spec, ending, usage, Reply::default());
    let result = write_end(shared, run, &end, persist);
    ended(shared, run, &conclusion, result, &end);
    conclusion
}

/// [`record_end`] with [`Persist::UntilWritten`] for a task: it waits for the ledger's writer
/// without holding a thread.
pub(super) async fn record_end_queued(
    shared: &Arc<Shared>,
    run: &RunRow,
    spec: Option<&JobSpec>,
    ending: &Ending,
    usage: Option<runner::Usage>,
    reply: Reply,
) -> Conclusion {
    let (conclusion, end) = end_of(shared, run, spec, ending, usage, reply);
    let result = write_end_queued(shared, run, &end).await;
    ended(shared, run, &conclusion, result, &end);
    conclusion
}

/// How a run concluded now, and the end (and retry) to write.
fn end_of(
    shared: &Shared,
    run: &RunRow,
    spec: Option<&JobSpec>,
    ending: &Ending,
    usage: Option<runner::Usage>,
    reply: Reply,
) -> (Conclusion, RunEnd) {
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
        overrides: run.overrides,
        backfill_id: run.backfill_id,
    });
    let finish = Finish {
        state: Some(conclusion.state),
        exit_code: conclusion.exit_code,
        signal: conclusion.signal,
        error: conclusion.error.clone(),
        cpu_user_ms: usage.map(|u| u.user_ms),
        cpu_sys_ms: usage.map(|u| u.sys_ms),
        max_rss_kb: usage.map(|u| u.max_rss_kb),
        reply,
    };
    let end = RunEnd {
        run_id: run.id,
        epoch: run.epoch,
        finish,
        retry,
        at: now,
    };
    (conclusion, end)
}

/// After a run's end was written (or given up): its metrics and its log line.
fn ended(
    shared: &Shared,
    run: &RunRow,
    conclusion: &Conclusion,
    result: Result<Option<i64>, WriteFailed>,
    end: &RunEnd,
) {
    let now = end.at;
    if result.is_ok() {
        count_end(shared, run, conclusion, now);
        count_tokens(shared, run, &end.finish.reply);
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
}

pub(super) fn flush(
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

pub(super) fn log_ledger_error<T>(result: crate::ledger::Result<T>) {
    if let Err(e) = result {
        tracing::error!("writing to the ledger: {e}");
    }
}
