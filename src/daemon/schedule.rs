//! The scheduler loop: due slots decided with [`slots::decide`] and recorded, with the job's
//! cursor, in one transaction. It never starts a process.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use jiff::{SignedDuration, Timestamp};

use super::{CLOCK_LOOK, Daemon};
use crate::ledger::{JobSlots, RunRow, stamp};
use crate::slots::{self, JobClock};
use crate::spec::{self, JobSpec};

/// How close to a slot the scheduler stops sleeping on the runtime's timer and sleeps on its
/// thread instead (see [`Daemon::scheduler`]).
const PRECISE_WAKE: StdDuration = StdDuration::from_millis(3);

/// How many due jobs the first transaction of a burst records and claims at most: their runs
/// start while the rest are recorded (issue 14: the first of a burst's 200 runs started 4 ms
/// sooner than when the first transaction took as many as there were places).
const FIRST_CHUNK: usize = 16;

impl Daemon {
    /// The scheduler loop: sleep until the next slot or a wake-up, then record due slots.
    pub(super) async fn scheduler(self: Arc<Self>) {
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
            if !self.leading() {
                // A follower decides no slot: it waits to lead, then starts afresh, as a
                // daemon does at start (slots due meanwhile by each job's `missed` policy).
                jobs.clear();
                queue.clear();
                first_load = true;
                last_now = None;
                self.reload.store(true, Ordering::SeqCst);
                self.wake_scheduler.notified().await;
                continue;
            }
            if self.reload.swap(false, Ordering::SeqCst) {
                match self.reload_jobs() {
                    Some(loaded) => {
                        (jobs, queue) = self.adopt(&jobs, loaded, first_load);
                        first_load = false;
                    }
                    None => {
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
            let went_back = went_backwards(last_now, now);
            last_now = Some(now);
            if went_back {
                self.reload.store(true, Ordering::SeqCst);
                continue;
            }
            let mut due: Vec<String> = Vec::new();
            while let Some((at, _)) = queue.first()
                && *at <= now
            {
                let (_, name) = queue.pop_first().expect("checked above");
                due.push(name);
            }
            if !due.is_empty() {
                health.scheduler_busy(true);
                // Claimed with the slots (one disk sync): started at once, not by the
                // executor's next turn. A burst of more than FIRST_CHUNK jobs is recorded in
                // two transactions: first the slots of FIRST_CHUNK jobs (fewer if fewer places
                // are free), whose runs start at once, then the rest while they start (issue
                // 14: the first of 200 runs waits for 16 rows to be written, not 200).
                let first = match self.room.free() {
                    0 => due.len(),
                    free => free.min(due.len()).min(FIRST_CHUNK),
                };
                let (start_now, rest) = due.split_at(first);
                let claimed = self.fire_due(&mut jobs, start_now, now);
                self.start_all(claimed);
                if !rest.is_empty() {
                    // Off this worker: the runs just started are spawned meanwhile.
                    let claimed =
                        tokio::task::block_in_place(|| self.fire_due(&mut jobs, rest, now));
                    self.start_all(claimed);
                }
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
            // The runtime's timer wakes on whole milliseconds, up to two late: the last few
            // are slept on this thread, which wakes within tens of microseconds of the slot
            // (issue 14: every run of a burst starts that much earlier).
            if sleep <= PRECISE_WAKE {
                tokio::task::block_in_place(|| std::thread::sleep(sleep));
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(sleep - PRECISE_WAKE) => {}
                () = self.wake_scheduler.notified() => {}
            }
        }
    }

    /// Loads the jobs for the scheduler, telling readiness whether it could; `None` (logged)
    /// when the ledger cannot be read.
    fn reload_jobs(&self) -> Option<HashMap<String, SchedJob>> {
        let health = &self.shared.health;
        health.scheduler_busy(true);
        let loaded = self.load_jobs();
        health.scheduler_busy(false);
        health.scheduler_read(
            loaded
                .as_ref()
                .err()
                .map(|e| format!("loading jobs for the scheduler: {e}")),
        );
        loaded
            .map_err(|e| tracing::error!("loading jobs for the scheduler: {e}"))
            .ok()
    }

    /// Takes freshly loaded jobs: a job whose revision and pause are unchanged keeps its
    /// place (its cursor and next slot); the others are looked at now. Returns the jobs and
    /// the queue of when to look at each.
    fn adopt(
        &self,
        old: &HashMap<String, SchedJob>,
        mut loaded: HashMap<String, SchedJob>,
        first_load: bool,
    ) -> (HashMap<String, SchedJob>, BTreeSet<(Timestamp, String)>) {
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
        } else {
            tracing::debug!(jobs = loaded.len(), "scheduler reloaded");
        }
        for (name, job) in &mut loaded {
            if let Some(old) = old.get(name)
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
        let queue = loaded
            .iter()
            .filter(|(_, j)| j.due_check < Timestamp::MAX)
            .map(|(name, j)| (j.due_check, name.clone()))
            .collect();
        (loaded, queue)
    }

    /// Loads the enabled jobs with their cursors and pauses.
    /// Also hands the dependency graph of the active jobs to the ledger and resolves what it
    /// allows now (fan-ins and blocked runs that another process's writes released).
    pub(super) fn load_jobs(&self) -> crate::ledger::Result<HashMap<String, SchedJob>> {
        if let Err(e) = self.rewind_future() {
            tracing::error!("looking for stamps from the future: {e}");
        }
        let rows = self.shared.ledger().jobs_listed()?;
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
            let remaining = crate::rules::fires_left(spec.repeat, row.fires);
            let (anchor, cursor) = (row.schedule_anchor, row.slot_cursor);
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
        // Runs do not inherit the variables that hold secrets: webhook secrets, `http`
        // headers' values, the `[llm]` providers' keys.
        let webhooks = specs.iter().filter_map(|s| match &s.webhook {
            Some(spec::Webhook {
                secret: spec::WebhookSecret::SecretEnv(name),
                ..
            }) => Some(name.clone()),
            _ => None,
        });
        let headers = specs.iter().flat_map(|s| match &s.action {
            spec::Action::Http(h) => h
                .headers
                .iter()
                .filter_map(|(_, v)| match v {
                    spec::HeaderValue::Env { var, .. } => Some(var.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        });
        let llm = &self.shared.defaults.llm;
        let keys = llm
            .default
            .iter()
            .chain(llm.providers.values())
            .filter_map(|p| match &p.api_key {
                Some(spec::KeySource::Env(var)) => Some(var.clone()),
                _ => None,
            })
            .collect::<Vec<_>>();
        self.shared
            .set_secret_vars(webhooks.chain(headers).chain(keys));
        let graph = crate::graph::Graph::new(specs.iter().map(|s| &**s));
        self.shared.set_graph(Arc::new(graph));
        self.resolve();
        Ok(jobs)
    }

    /// Brings back to now what the ledger holds from the future: a clock that was ahead and
    /// was corrected would otherwise silence every schedule until real time caught up.
    pub(super) fn rewind_future(&self) -> crate::ledger::Result<()> {
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
    pub(super) fn resolve(&self) {
        // The ledger's guard must be gone before the arms run: `act_on_cancels` locks it again.
        let graph = self.shared.graph();
        let resolved = self
            .shared
            .ledger()
            .resolve_dependencies(&graph, self.now());
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

    /// Decides and records the due slots of `names`, and claims the runs there is room for,
    /// in one transaction; returns the claimed runs, to start.
    pub(super) fn fire_due(
        &self,
        jobs: &mut HashMap<String, SchedJob>,
        names: &[String],
        now: Timestamp,
    ) -> Vec<RunRow> {
        let active: HashSet<String> = match self.shared.ledger().active_jobs() {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!("reading active runs: {e}; deciding the slots again in 1 s");
                // Look again soon, not at once: the slots stay due (their cursor did not
                // move), and a ledger out of reach must not turn this loop into a spin.
                retry_soon(jobs, names, now);
                return Vec::new();
            }
        };
        let (batch, decisions) = decide_due(jobs, names, &active, now);
        let crate::ledger::Recorded { fired, claimed } = if batch.is_empty() {
            crate::ledger::Recorded::default()
        } else {
            let Some(term) = self.term() else {
                return Vec::new();
            };
            let recorded = self.shared.record_slots(term, &batch, now);
            match recorded {
                Ok(recorded) => {
                    self.shared.health.write_succeeded();
                    recorded
                }
                Err(e @ crate::ledger::LedgerError::LeaseLost { .. }) => {
                    self.deposed(&e);
                    return Vec::new();
                }
                Err(e) => {
                    self.shared
                        .health
                        .write_failed("recording slots", &e.to_string());
                    tracing::error!("recording slots: {e}; deciding them again in 1 s");
                    // Look again soon rather than lose the slots.
                    retry_soon(jobs, names, now);
                    return Vec::new();
                }
            }
        };
        self.fired(jobs, &batch, decisions, &fired);
        claimed
    }

    /// Moves each job's cursor and next slot as decided once the slots are recorded, counts
    /// `repeat` fires down, logs skipped slots, and wakes the executor for what fired.
    fn fired(
        &self,
        jobs: &mut HashMap<String, SchedJob>,
        batch: &[JobSlots],
        decisions: Vec<(String, slots::Decision)>,
        fired: &[(String, i64)],
    ) {
        for (name, decision) in decisions {
            if let Some(job) = jobs.get_mut(&name) {
                job.cursor = decision.cursor;
                job.next = decision.next;
            }
        }
        for b in batch {
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
        for b in batch {
            for (row, _) in &b.rows {
                if let slots::Outcome::Skipped { reason } | slots::Outcome::Missed { reason } =
                    &row.outcome
                {
                    tracing::info!(job = %b.job, slot = %stamp(row.slot), slots = row.count, reason = %reason, "slot skipped");
                }
            }
        }
        if !fired.is_empty() {
            for (job, run) in fired {
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
}

/// Whether the wall clock went back more than a second since the scheduler last looked (NTP
/// fixed a clock that was ahead): what was decided in the future is then brought back to now.
fn went_backwards(last: Option<Timestamp>, now: Timestamp) -> bool {
    let Some(last) = last else { return false };
    let back = now
        < last
            .saturating_sub(SignedDuration::from_secs(1))
            .unwrap_or(last);
    if back {
        tracing::warn!(
            from = %stamp(last),
            to = %stamp(now),
            "the clock went backwards; rescheduling from now"
        );
    }
    back
}

/// The slots due of each job in `names` (`slots::decide`), with each fire's jitter applied:
/// the rows to record, and every job's decision (a completed `repeat` decides nothing).
fn decide_due(
    jobs: &HashMap<String, SchedJob>,
    names: &[String],
    active: &HashSet<String>,
    now: Timestamp,
) -> (Vec<JobSlots>, Vec<(String, slots::Decision)>) {
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
                        SignedDuration::from_millis(fastrand::i64(0..=jitter.as_millis() as i64))
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
    (batch, decisions)
}

/// A job as the scheduler holds it.
pub(super) struct SchedJob {
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

/// The jobs `names`, whose due slots could not be decided now, look again in a second.
fn retry_soon(jobs: &mut HashMap<String, SchedJob>, names: &[String], now: Timestamp) {
    let soon = now
        .saturating_add(SignedDuration::from_secs(1))
        .unwrap_or(now);
    for name in names {
        if let Some(job) = jobs.get_mut(name) {
            job.next = Some(soon);
        }
    }
}
