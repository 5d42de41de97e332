//! The row writes every run-creating operation shares: a new run, an event, and what
//! `concurrency: replace` does to the runs it replaces. The bottom of the ledger's write
//! path: `claims`, `slots` and `deps` call these and nothing here calls them back.

use super::db::{Conn, params};
use jiff::Timestamp;

use super::columns::parsed;
use super::stamp;
use crate::rules;
use crate::run::{RunState, Trigger};

/// A run to create outside the schedule: `jobctl run`, `jobctl trigger`, a retry.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub job: String,
    pub revision_id: i64,
    pub trigger: Trigger,
    pub scheduled_at: Timestamp,
    pub not_before: Option<Timestamp>,
    pub params: Option<serde_json::Value>,
    pub attempt: i64,
    pub first_run_id: Option<i64>,
    /// `Some((pid, start))` creates the run already running, supervised by that process (a
    /// foreground `jobctl run`), so no daemon claims it.
    pub running_under: Option<(i64, i64)>,
    /// Who asked for it (`alice (api)`, `user@host`), recorded in its `created` event.
    pub by: Option<String>,
    /// What this run changes of its revision (a trigger's `--timeout`).
    pub overrides: crate::run::Overrides,
    /// The backfill it replays a slot for (its `slot` is `scheduled_at`).
    pub backfill_id: Option<i64>,
}

impl NewRun {
    /// A first attempt due now: what a trigger (manual or webhook) queues.
    pub fn now(
        job: &str,
        revision_id: i64,
        trigger: Trigger,
        params: Option<serde_json::Value>,
        now: Timestamp,
    ) -> NewRun {
        NewRun {
            job: job.to_string(),
            revision_id,
            trigger,
            scheduled_at: now,
            not_before: None,
            params,
            attempt: 1,
            first_run_id: None,
            running_under: None,
            by: None,
            overrides: crate::run::Overrides::default(),
            backfill_id: None,
        }
    }

    /// The same run, recorded as asked for by `actor`.
    #[must_use]
    pub fn by(self, actor: impl Into<String>) -> NewRun {
        NewRun {
            by: Some(actor.into()),
            ..self
        }
    }
}

pub(super) fn add_event(
    conn: &Conn,
    run_id: i64,
    at: &str,
    kind: &str,
    message: &str,
) -> super::db::Result<()> {
    conn.prepare_cached(
        "INSERT INTO run_events (run_id, at, kind, message) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![run_id, at, kind, message])?;
    Ok(())
}

pub(super) fn insert_run(conn: &Conn, run: &NewRun, now: Timestamp) -> super::db::Result<i64> {
    let at = stamp(now);
    let (state, started, supervisor) = match run.running_under {
        Some(s) => (RunState::Running, Some(at.as_str()), Some(s)),
        None => (RunState::Pending, None, None),
    };
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at, started_at,
                               not_before, params, attempt, first_run_id, supervisor_pid, supervisor_start,
                               node, overrides, backfill_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             RETURNING id",
        )?
        .query_row(
            params![
                run.job,
                run.revision_id,
                run.trigger.as_str(),
                stamp(run.scheduled_at),
                state.as_str(),
                at,
                started,
                run.not_before.map(stamp),
                run.params.as_ref().map(ToString::to_string),
                run.attempt,
                run.first_run_id,
                supervisor.map(|s| s.0),
                supervisor.map(|s| s.1),
                // A run supervised outside the daemon (`jobctl run`) records its host: a
                // daemon there can tell whether its supervisor still lives.
                supervisor.map(|_| crate::host::hostname()),
                super::columns::overrides_json(&run.overrides),
                run.backfill_id,
            ],
            |r| r.get(0),
        )?;
    let message = match run.trigger {
        Trigger::Retry => format!(
            "attempt {} of run {}",
            run.attempt,
            run.first_run_id.unwrap_or_default()
        ),
        t => match &run.by {
            Some(by) => format!("created ({t}) by {by}"),
            None => format!("created ({t})"),
        },
    };
    let message = match run.overrides.is_empty() {
        true => message,
        false => format!("{message}; for this run only: {}", run.overrides),
    };
    add_event(conn, id, &at, "created", &message)?;
    Ok(id)
}

/// `concurrency: replace`: cancel the job's pending runs and ask its running ones to stop.
pub(super) fn replace_active(
    conn: &Conn,
    job: &str,
    new_id: i64,
    at: &str,
) -> super::db::Result<()> {
    let reason = rules::replaced_reason(new_id);
    let ids: Vec<(i64, RunState)> = conn
        .prepare_cached(
            // A backfill's runs are not replaced: the slots they replay would be lost.
            "SELECT id, state FROM runs WHERE job = ?1 AND id <> ?2 AND backfill_id IS NULL
               AND state IN ('blocked', 'pending', 'running')",
        )?
        .query_map(params![job, new_id], |r| {
            let id: i64 = r.get(0)?;
            Ok((id, parsed(r, 1, &|| format!("run {id}"))?))
        })?
        .collect::<super::db::Result<_>>()?;
    for (id, state) in ids {
        if state != RunState::Running {
            conn.execute(
                "UPDATE runs SET state = 'cancelled', finished_at = ?2, error = ?3 WHERE id = ?1",
                params![id, at, reason],
            )?;
            add_event(conn, id, at, "cancelled", &reason)?;
        } else {
            conn.execute(
                "UPDATE runs SET cancel_requested = coalesce(cancel_requested, ?2) WHERE id = ?1",
                params![id, at],
            )?;
            add_event(conn, id, at, "cancel_requested", &reason)?;
        }
    }
    Ok(())
}
