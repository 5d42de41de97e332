//! Backfill as `jobctl backfill` and `POST /v1/jobs/{name}/backfill` run it: read the job's
//! revisions and the slots that already have runs from the ledger, let the core
//! ([`crate::backfill::slots`]) decide the slots and the revision in force at each, and write
//! the runs (unless it is a dry run).
//!
//! Only the past the scheduler has accounted for is backfilled: a window ends at the job's
//! slot cursor (every slot up to it is recorded), so a backfill and the scheduler never
//! decide the same slot.

use jiff::{SignedDuration, Timestamp};

use crate::backfill::{self, BackfillError, Slot, Span, Taken};
use crate::ledger::{Ledger, LedgerError, NewBackfill};
use crate::spec::{Concurrency, Defaults, JobSpec};

/// The most slots one backfill creates: a longer window is backfilled a part at a time.
pub const MAX_SLOTS: usize = 10_000;

/// The most runs of one backfill at a time.
pub const MAX_PARALLEL: usize = 64;

/// What to backfill.
#[derive(Clone, Debug)]
pub struct Request {
    pub job: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub parallel: usize,
    pub dry_run: bool,
    /// Who asked (`alice (api)`, `user@host`), recorded on the backfill and its runs.
    pub by: Option<String>,
}

/// What a backfill found, and wrote unless it was a dry run.
#[derive(Clone, Debug)]
pub struct Replay {
    /// Where the window ends in fact: `to`, or earlier when the scheduler has not accounted
    /// for the slots after (they are not past yet, or the daemon has not started since).
    pub until: Timestamp,
    /// How many of its runs at a time: `parallel`, or 1 when the job's `concurrency` is not
    /// `allow` (then also one at a time beside the job's other runs).
    pub parallel: usize,
    pub exclusive: bool,
    pub slots: Vec<Slot>,
    /// The backfill written and its runs (one per slot, in order); none for a dry run.
    pub written: Option<(i64, Vec<i64>)>,
}

/// Why a backfill cannot be done; each message says what is expected.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no job `{0}`; `jobctl list` shows the jobs (and `jobctl apply` records new files)")]
    NoJob(String),
    #[error("job `{0}` has no schedule (it runs when triggered): there are no slots to backfill")]
    NoSchedule(String),
    #[error("--parallel must be between 1 and {MAX_PARALLEL}")]
    Parallel,
    #[error(transparent)]
    Window(#[from] BackfillError),
    #[error("revision {number} of `{job}` cannot be read: {error}")]
    Revision {
        job: String,
        number: i64,
        error: String,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Decides the slots of `request`'s window and, unless it is a dry run, writes the backfill.
///
/// # Errors
///
/// [`ReplayError`]: no such job, no schedule, a bad window or `parallel`, a revision that does
/// not parse, a ledger failure.
pub fn backfill(
    ledger: &mut Ledger,
    defaults: &Defaults,
    request: &Request,
    now: Timestamp,
) -> Result<Replay, ReplayError> {
    if request.parallel == 0 || request.parallel > MAX_PARALLEL {
        return Err(ReplayError::Parallel);
    }
    if request.from >= request.to {
        return Err(BackfillError::EmptyWindow.into());
    }
    let job = request.job.as_str();
    let row = ledger
        .job(job)?
        .filter(|r| r.active)
        .ok_or_else(|| ReplayError::NoJob(job.to_string()))?;
    let current = parse(job, row.revision, &row.definition, defaults, now)?;
    if matches!(current.schedule, crate::schedule::Schedule::Manual) {
        return Err(ReplayError::NoSchedule(job.to_string()));
    }
    let revisions = ledger.revisions_in_order(job)?;
    let mut specs = Vec::with_capacity(revisions.len());
    for r in &revisions {
        specs.push(parse(job, r.number, &r.definition, defaults, now)?);
    }
    // An `every` schedule counts from its apply, and again from each apply that changed it or
    // enabled it again (as `plan` resets the anchor).
    let mut anchors = Vec::with_capacity(specs.len());
    for (i, (r, spec)) in revisions.iter().zip(&specs).enumerate() {
        let changed = i == 0
            || specs[i - 1].schedule != spec.schedule
            || (!specs[i - 1].enabled && spec.enabled);
        anchors.push(if changed {
            r.applied_at
        } else {
            anchors[i - 1]
        });
    }
    let spans: Vec<Span<'_>> = revisions
        .iter()
        .zip(&specs)
        .zip(&anchors)
        .map(|((r, spec), anchor)| Span {
            revision_id: r.id,
            number: r.number,
            from: r.applied_at,
            schedule: &spec.schedule,
            timezone: &spec.timezone.tz,
            enabled: spec.enabled,
            anchor: *anchor,
        })
        .collect();
    // Slots up to and including the cursor are accounted for; later ones are the scheduler's.
    let after_cursor = row
        .slot_cursor
        .checked_add(SignedDuration::from_nanos(1))
        .unwrap_or(row.slot_cursor);
    let until = request.to.min(now).min(after_cursor);
    let slots = if request.from < until {
        let taken = Taken::new(ledger.slots_with_runs(job, request.from, until)?);
        backfill::slots(&spans, request.from, until, &taken, MAX_SLOTS)?
    } else {
        Vec::new()
    };
    let exclusive = current.concurrency != Concurrency::Allow;
    let parallel = if exclusive { 1 } else { request.parallel };
    let written = if request.dry_run || slots.is_empty() {
        None
    } else {
        Some(ledger.create_backfill(
            &NewBackfill {
                job: job.to_string(),
                from: request.from,
                to: until,
                parallel,
                exclusive,
                by: request.by.clone(),
                slots: slots.clone(),
            },
            now,
        )?)
    };
    Ok(Replay {
        until,
        parallel,
        exclusive,
        slots,
        written,
    })
}

fn parse(
    job: &str,
    number: i64,
    definition: &str,
    defaults: &Defaults,
    now: Timestamp,
) -> Result<JobSpec, ReplayError> {
    crate::executor::parse_definition(job, definition, defaults, now).map_err(|e| {
        ReplayError::Revision {
            job: job.to_string(),
            number,
            error: e.to_string(),
        }
    })
}
