//! Rules: what becomes of a run or a job, decided from plain facts.
//!
//! Every decision the scheduler and the ledger act on, other than which slots are due
//! (`slots::decide`), lives here as a pure function over core types that returns an enum
//! whose variants carry their data: admission of a new run (a pause, `concurrency`), the
//! `depends_on` gate, the `after` fan-in, the re-decision of a blocked run and the failure
//! cascade down a chain of gates, `repeat`
//! completion and the failure streak. Each reason has ONE wording, here, so the ledger, the
//! daemon and the CLI say the same thing for the same cause.
//!
//! Pure: no clock (`now` is an argument), no I/O. The ledger reads the facts, calls a rule
//! and writes what it decided in the same transaction; it decides nothing itself. This module
//! deliberately does not know where the facts come from (SQLite, another backend, a test).

use std::fmt;

use jiff::Timestamp;

use crate::duration::Duration;
use crate::run::RunState;
use crate::spec::{Concurrency, Repeat};

/// Why a slot or a run that would have started does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The operator paused the job (`jobctl pause`).
    Paused,
    /// `concurrency: forbid` and a run of the job is still blocked, pending or running.
    Busy,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Paused => "the job is paused",
            SkipReason::Busy => "the previous run is still active (concurrency: forbid)",
        })
    }
}

/// Whether a new run of a job (a fired slot, a fan-in) starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The run is created. `replace`: the job's active runs are cancelled first
    /// (`concurrency: replace`).
    Run { replace: bool },
    /// The run is recorded skipped, for this reason.
    Skip(SkipReason),
}

/// The pause and overlap rule. `active`: a run of the job is blocked, pending or running.
pub fn admit(paused: bool, concurrency: Concurrency, active: bool) -> Admission {
    if paused {
        return Admission::Skip(SkipReason::Paused);
    }
    match (active, concurrency) {
        (true, Concurrency::Forbid) => Admission::Skip(SkipReason::Busy),
        (active, concurrency) => Admission::Run {
            replace: active && concurrency == Concurrency::Replace,
        },
    }
}

/// The reason recorded on a run that `concurrency: replace` cancelled (or asked to stop).
pub fn replaced_reason(new_run: i64) -> String {
    format!("replaced by run {new_run} (concurrency: replace)")
}

/// A dependency's latest run that was not skipped by its schedule, as the gate sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latest {
    pub run_id: i64,
    pub state: RunState,
    pub finished_at: Option<Timestamp>,
}

/// What a `depends_on` gate says about a run created at `created`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Every dependency's latest run has succeeded: the run may start. The runs that let it.
    Open { released_by: Vec<(String, i64)> },
    /// Some dependencies have not succeeded (yet): the run waits for them.
    Wait { waiting_for: Vec<String> },
    /// A dependency's run failed after the run came due: it will not start.
    Fail { reason: String },
}

/// The `depends_on` rule. `deps` pairs each dependency with its latest run that was not
/// skipped (`None`: it never ran). A failure that ended before the run came due is old news:
/// the run waits for a new run of that dependency; one that ended after it came due ends the
/// wait with [`Gate::Fail`].
pub fn gate(created: Timestamp, deps: &[(&str, Option<Latest>)]) -> Gate {
    let mut waiting_for = Vec::new();
    let mut released_by = Vec::new();
    for (job, latest) in deps {
        match latest {
            Some(l) if l.state == RunState::Succeeded => {
                released_by.push((job.to_string(), l.run_id))
            }
            Some(l) if l.state.is_terminal() && l.finished_at.is_some_and(|f| f >= created) => {
                return Gate::Fail {
                    reason: format!("dependency {job} ended {} (run {})", l.state, l.run_id),
                };
            }
            _ => waiting_for.push(job.to_string()),
        }
    }
    if waiting_for.is_empty() {
        Gate::Open { released_by }
    } else {
        Gate::Wait { waiting_for }
    }
}

/// Whether a run just created waits `blocked`, and for which dependencies. A gate found
/// failed at creation (a dependency failed in this very millisecond) waits too, for every
/// dependency: only a failure after the run came due ends it.
pub fn blocks_new_run(gate: Option<Gate>, depends_on: &[String]) -> Option<Vec<String>> {
    match gate? {
        Gate::Open { .. } => None,
        Gate::Wait { waiting_for } => Some(waiting_for),
        Gate::Fail { .. } => Some(depends_on.to_vec()),
    }
}

/// The reason a blocked run shows: `waiting for a, b`.
pub fn waiting_reason(waiting_for: &[String]) -> String {
    format!("waiting for {}", waiting_for.join(", "))
}

/// The `after` rule: the job fires when every upstream job has a succeeded run that finished
/// after `cursor` (the job's last fire, or when its schedule was applied). `successes` pairs
/// each upstream job with its latest succeeded run `(id, finished_at)`. Returns the runs that
/// release it, or `None` while one is missing.
pub fn fan_in(
    cursor: Timestamp,
    successes: &[(&str, Option<(i64, Timestamp)>)],
) -> Option<Vec<(String, i64)>> {
    successes
        .iter()
        .map(|(job, latest)| match latest {
            Some((id, finished)) if *finished > cursor => Some((job.to_string(), *id)),
            _ => None,
        })
        .collect()
}

/// `a (run 12), b (run 13)`: the runs that released a run, for its event and the CLI.
pub fn describe_releases(released_by: &[(String, i64)]) -> String {
    released_by
        .iter()
        .map(|(job, id)| format!("{job} (run {id})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The event of a run released from `blocked` (or fired by a fan-in).
pub fn release_message(released_by: &[(String, i64)]) -> String {
    if released_by.is_empty() {
        "released: the job no longer depends on other jobs".to_string()
    } else {
        format!("released by {}", describe_releases(released_by))
    }
}

/// A blocked run, as the recheck sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked<'a> {
    /// When the run was due (its starting deadline counts from here).
    pub scheduled_at: Option<Timestamp>,
    /// The reason it shows now (`waiting for …`).
    pub reason: Option<&'a str>,
}

/// What becomes of a blocked run when its facts change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// It becomes pending; the upstream runs that released it (none: no dependency is left).
    Release { released_by: Vec<(String, i64)> },
    /// It ends skipped at its gate, an outcome the jobs gated on it see as a failure.
    Skip { reason: String },
    /// It keeps waiting; `reason` is what it waits for, to record when it changed.
    Wait { reason: String },
}

/// Re-decides a blocked run. `job_active`: the job is still in the ledger (a removed job's
/// runs end); `deadline`: the job's `starting_deadline`; `gate`: the gate of the job's
/// *current* revision for this run (`None`: no `depends_on` any more).
pub fn recheck(
    run: Blocked<'_>,
    job_active: bool,
    deadline: Option<Duration>,
    gate: Option<Gate>,
    now: Timestamp,
) -> Recheck {
    if !job_active {
        return Recheck::Skip {
            reason: "the job was removed while the run waited".to_string(),
        };
    }
    let expired = deadline.filter(|d| {
        run.scheduled_at
            .and_then(|due| due.checked_add(d.as_signed()).ok())
            .is_some_and(|end| end <= now)
    });
    if let Some(d) = expired {
        let waiting = run.reason.unwrap_or("waiting");
        return Recheck::Skip {
            reason: format!("its starting deadline ({d}) passed while {waiting}"),
        };
    }
    match gate {
        None => Recheck::Release {
            released_by: Vec::new(),
        },
        Some(Gate::Open { released_by }) => Recheck::Release { released_by },
        Some(Gate::Fail { reason }) => Recheck::Skip { reason },
        Some(Gate::Wait { waiting_for }) => Recheck::Wait {
            reason: waiting_reason(&waiting_for),
        },
    }
}

/// A blocked run as the cascade sees it: its id, when it was created (its gate counts
/// failures from then) and what [`recheck`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedRun {
    pub id: i64,
    pub created: Timestamp,
    pub scheduled_at: Option<Timestamp>,
    /// The reason it shows now (`waiting for …`).
    pub reason: Option<String>,
}

/// A job with blocked runs, as the cascade sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatedJob {
    /// Still in the ledger (a removed job's blocked runs end).
    pub active: bool,
    /// `starting_deadline`.
    pub deadline: Option<Duration>,
    /// The current revision's `depends_on`: the gate of every blocked run.
    pub depends_on: Vec<String>,
    /// The jobs gated on this one: they look again when a run of this one is skipped here.
    pub gated: Vec<String>,
    /// Its blocked runs, oldest first.
    pub blocked: Vec<BlockedRun>,
}

/// What the cascade decided for one blocked run: only what changes (a run that keeps
/// waiting for the same reason is left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub job: String,
    pub run_id: i64,
    pub outcome: Recheck,
}

/// The failure cascade: re-decides the blocked runs of `start` (the jobs gated on the jobs
/// whose runs ended, or every job with a blocked run) with [`recheck`], and when one is
/// skipped at its gate, that skip is a failure the jobs gated on its job see at `now`: their
/// blocked runs are re-decided too, down a chain of gates, each link followed once (so a
/// diamond or a cycle ends).
///
/// `jobs` holds every job the walk can reach that has blocked runs (a job missing from it
/// has none); `latest` each of their dependencies' latest run that was not skipped by its
/// schedule (see [`gate`]), as read before the walk. Returns the decisions in the order the
/// walk made them; the ledger writes them as they come, in one transaction.
pub fn cascade(
    start: &[String],
    jobs: &std::collections::BTreeMap<String, GatedJob>,
    mut latest: std::collections::BTreeMap<String, Option<Latest>>,
    now: Timestamp,
) -> Vec<Decided> {
    let mut decided: Vec<Decided> = Vec::new();
    // Runs that ended or were released in this walk, and the reasons waits now show.
    let mut settled = std::collections::BTreeSet::new();
    let mut reasons: std::collections::BTreeMap<i64, String> = std::collections::BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut queue: Vec<String> = start.to_vec();
    while let Some(name) = queue.pop() {
        let Some(job) = jobs.get(&name) else {
            continue;
        };
        let mut skipped_here = false;
        for run in &job.blocked {
            if settled.contains(&run.id) {
                continue;
            }
            let gate = (job.active && !job.depends_on.is_empty()).then(|| {
                let facts: Vec<(&str, Option<Latest>)> = job
                    .depends_on
                    .iter()
                    .map(|d| (d.as_str(), latest.get(d).copied().flatten()))
                    .collect();
                gate(run.created, &facts)
            });
            let shown = reasons
                .get(&run.id)
                .map(String::as_str)
                .or(run.reason.as_deref());
            let blocked = Blocked {
                scheduled_at: run.scheduled_at,
                reason: shown,
            };
            let outcome = recheck(blocked, job.active, job.deadline, gate, now);
            match &outcome {
                Recheck::Wait { reason } if Some(reason.as_str()) == shown => continue,
                Recheck::Wait { reason } => {
                    reasons.insert(run.id, reason.clone());
                }
                Recheck::Release { .. } => {
                    settled.insert(run.id);
                }
                Recheck::Skip { .. } => {
                    settled.insert(run.id);
                    skipped_here = true;
                    // Still the job's latest eligible run unless a newer one exists.
                    if let Some(Some(l)) = latest.get_mut(&name)
                        && l.run_id == run.id
                    {
                        l.state = RunState::Skipped;
                        l.finished_at = Some(now);
                    }
                }
            }
            decided.push(Decided {
                job: name.clone(),
                run_id: run.id,
                outcome,
            });
        }
        if skipped_here {
            for next in &job.gated {
                if seen.insert((name.clone(), next.clone())) {
                    queue.push(next.clone());
                }
            }
        }
    }
    decided
}

/// `repeat: {times: N}`: whether the job completes with the fire that brings its count under
/// the current revision to `fires`.
pub fn completes_on_fire(repeat: Option<Repeat>, fires: i64) -> bool {
    matches!(repeat, Some(Repeat::Times(n)) if fires >= i64::from(n))
}

/// `repeat: {until: success}`: whether a run of the job's current revision that ended in
/// `state` completes the job.
pub fn completes_on_end(repeat: Option<Repeat>, state: RunState) -> bool {
    repeat == Some(Repeat::UntilSuccess) && state == RunState::Succeeded
}

/// Fires left before the job completes (`repeat: {times: N}`), `None` for a job that does not
/// count its fires.
pub fn fires_left(repeat: Option<Repeat>, fires: i64) -> Option<i64> {
    match repeat {
        Some(Repeat::Times(n)) => Some(i64::from(n).saturating_sub(fires).max(0)),
        _ => None,
    }
}

/// The job's failure streak after a run ended in `state`: a success ends it, a final failure
/// (`retrying`: no retry is to come) lengthens it, anything else leaves it.
pub fn streak_after(streak: i64, state: RunState, retrying: bool) -> i64 {
    match state {
        RunState::Succeeded => 0,
        RunState::Failed | RunState::TimedOut if !retrying => streak + 1,
        _ => streak,
    }
}

/// How long a node may go without a heartbeat before it counts as lost (a daemon beats
/// every [`NODE_HEARTBEAT`]): the leader then ends its runs `failed` ("node lost") and
/// retries them. With the leader's own failover ([`LEADER_LEASE`]) and a check every
/// heartbeat, a dead node's runs are retried within 15 s of its last heartbeat.
pub const NODE_LOST_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);

/// How often a daemon records that its node is alive (and the leader renews its lease).
pub const NODE_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the leader's lease lasts without a renewal: then another node takes it (and the
/// next term) and decides the slots due meanwhile by each job's `missed` policy.
pub const LEADER_LEASE: jiff::SignedDuration = jiff::SignedDuration::from_secs(8);

/// How long a node that cannot record its heartbeat (the database is out of its reach) keeps
/// its runs: then it kills their process groups, well before [`NODE_LOST_AFTER`] lets
/// another node take them over, so that one run never executes on two nodes.
pub const SELF_FENCE: std::time::Duration = std::time::Duration::from_secs(6);

/// Whether a node is alive at `now`: it has not stopped, and beat within
/// [`NODE_LOST_AFTER`].
pub fn node_alive(stopped_at: Option<Timestamp>, heartbeat_at: Timestamp, now: Timestamp) -> bool {
    stopped_at.is_none() && now.duration_since(heartbeat_at) <= NODE_LOST_AFTER
}

/// How a pending run's reason begins while it waits for a node with its job's labels.
pub const NODE_WAIT: &str = "waiting for a node with labels";

/// Why a pending run waits for a node: its job's `runs_on` (`needs`) that no alive node
/// (`alive`: each one's labels) carries in full. `None` when one does, or nothing is needed.
pub fn node_wait(needs: &[String], alive: &[Vec<String>]) -> Option<String> {
    let placeable = alive
        .iter()
        .any(|labels| needs.iter().all(|n| labels.contains(n)));
    (!needs.is_empty() && !placeable).then(|| format!("{NODE_WAIT} {}", needs.join(", ")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_new_run_is_admitted_unless_paused_or_forbidden() {
        use Concurrency::*;
        let busy = Admission::Skip(SkipReason::Busy);
        let cases = [
            (false, Allow, false, Admission::Run { replace: false }),
            (false, Allow, true, Admission::Run { replace: false }),
            (false, Forbid, false, Admission::Run { replace: false }),
            (false, Forbid, true, busy),
            (false, Replace, false, Admission::Run { replace: false }),
            (false, Replace, true, Admission::Run { replace: true }),
            (true, Allow, false, Admission::Skip(SkipReason::Paused)),
            (true, Forbid, true, Admission::Skip(SkipReason::Paused)),
            (true, Replace, true, Admission::Skip(SkipReason::Paused)),
        ];
        for (paused, concurrency, active, expected) in cases {
            assert_eq!(
                admit(paused, concurrency, active),
                expected,
                "paused {paused}, {concurrency:?}, active {active}"
            );
        }
    }

    #[test]
    fn each_skip_reason_has_one_wording() {
        assert_eq!(SkipReason::Paused.to_string(), "the job is paused");
        assert_eq!(
            SkipReason::Busy.to_string(),
            "the previous run is still active (concurrency: forbid)"
        );
        assert_eq!(
            replaced_reason(7),
            "replaced by run 7 (concurrency: replace)"
        );
    }

    fn latest(run_id: i64, state: RunState, finished_at: Option<&str>) -> Option<Latest> {
        Some(Latest {
            run_id,
            state,
            finished_at: finished_at.map(ts),
        })
    }

    #[test]
    fn the_gate_opens_waits_or_fails() {
        use RunState::*;
        let created = ts("2026-10-31T12:00:00Z");
        type Case<'a> = (&'a str, Vec<(&'a str, Option<Latest>)>, Gate);
        let cases: Vec<Case> = vec![
            (
                "all succeeded",
                vec![
                    ("a", latest(1, Succeeded, Some("2026-10-31T11:00:00Z"))),
                    ("b", latest(2, Succeeded, Some("2026-10-31T12:30:00Z"))),
                ],
                Gate::Open {
                    released_by: vec![("a".into(), 1), ("b".into(), 2)],
                },
            ),
            (
                "one never ran",
                vec![
                    ("a", latest(1, Succeeded, Some("2026-10-31T11:00:00Z"))),
                    ("b", None),
                ],
                Gate::Wait {
                    waiting_for: vec!["b".into()],
                },
            ),
            (
                "one still running",
                vec![("a", latest(1, Running, None))],
                Gate::Wait {
                    waiting_for: vec!["a".into()],
                },
            ),
            (
                "an old failure waits for a new run",
                vec![("a", latest(1, Failed, Some("2026-10-31T11:59:59Z")))],
                Gate::Wait {
                    waiting_for: vec!["a".into()],
                },
            ),
            (
                "a failure after the run came due fails it",
                vec![("a", latest(7, TimedOut, Some("2026-10-31T12:00:01Z")))],
                Gate::Fail {
                    reason: "dependency a ended timed_out (run 7)".into(),
                },
            ),
            (
                "a blocked dependency is waited for",
                vec![("a", latest(3, Blocked, None))],
                Gate::Wait {
                    waiting_for: vec!["a".into()],
                },
            ),
        ];
        for (what, deps, expected) in cases {
            assert_eq!(gate(created, &deps), expected, "{what}");
        }
    }

    #[test]
    fn a_new_run_blocks_while_its_gate_is_closed() {
        let deps = vec!["a".to_string(), "b".to_string()];
        let cases = [
            ("no gate", None, None),
            (
                "open",
                Some(Gate::Open {
                    released_by: vec![("a".into(), 1)],
                }),
                None,
            ),
            (
                "waiting",
                Some(Gate::Wait {
                    waiting_for: vec!["b".into()],
                }),
                Some(vec!["b".to_string()]),
            ),
            (
                "failed in the same instant: waits for all",
                Some(Gate::Fail { reason: "x".into() }),
                Some(deps.clone()),
            ),
        ];
        for (what, gate, expected) in cases {
            assert_eq!(blocks_new_run(gate, &deps), expected, "{what}");
        }
        assert_eq!(waiting_reason(&deps), "waiting for a, b");
    }

    #[test]
    fn the_fan_in_needs_every_upstream_after_the_cursor() {
        let cursor = ts("2026-10-31T12:00:00Z");
        let before = ts("2026-10-31T11:00:00Z");
        let after = ts("2026-10-31T12:00:00.001Z");
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, Option<(i64, Timestamp)>)>,
            Option<Vec<(String, i64)>>,
        );
        let cases: Vec<Case> = vec![
            (
                "both after",
                vec![("a", Some((1, after))), ("b", Some((2, after)))],
                Some(vec![("a".into(), 1), ("b".into(), 2)]),
            ),
            (
                "one before",
                vec![("a", Some((1, after))), ("b", Some((2, before)))],
                None,
            ),
            ("one at the cursor", vec![("a", Some((1, cursor)))], None),
            (
                "one never",
                vec![("a", Some((1, after))), ("b", None)],
                None,
            ),
        ];
        for (what, successes, expected) in cases {
            assert_eq!(fan_in(cursor, &successes), expected, "{what}");
        }
    }

    #[test]
    fn a_release_names_the_runs_behind_it() {
        assert_eq!(
            release_message(&[("a".into(), 1), ("b".into(), 2)]),
            "released by a (run 1), b (run 2)"
        );
        assert_eq!(
            release_message(&[]),
            "released: the job no longer depends on other jobs"
        );
    }

    #[test]
    fn a_blocked_run_is_released_skipped_or_kept_waiting() {
        let now = ts("2026-10-31T12:10:00Z");
        let due = Some(ts("2026-10-31T12:00:00Z"));
        let waiting = Blocked {
            scheduled_at: due,
            reason: Some("waiting for a"),
        };
        let ten_min = Some(Duration::from_secs(600));
        let hour = Some(Duration::from_secs(3600));
        let open = || {
            Some(Gate::Open {
                released_by: vec![("a".into(), 4)],
            })
        };
        let wait = || {
            Some(Gate::Wait {
                waiting_for: vec!["a".into(), "b".into()],
            })
        };
        type Case<'a> = (&'a str, bool, Option<Duration>, Option<Gate>, Recheck);
        let cases: Vec<Case> = vec![
            (
                "the job was removed",
                false,
                None,
                open(),
                Recheck::Skip {
                    reason: "the job was removed while the run waited".into(),
                },
            ),
            (
                "the deadline passed (at its very instant)",
                true,
                ten_min,
                open(),
                Recheck::Skip {
                    reason: "its starting deadline (10m) passed while waiting for a".into(),
                },
            ),
            (
                "the deadline is ahead and the gate opened",
                true,
                hour,
                open(),
                Recheck::Release {
                    released_by: vec![("a".into(), 4)],
                },
            ),
            (
                "no dependency any more",
                true,
                None,
                None,
                Recheck::Release {
                    released_by: vec![],
                },
            ),
            (
                "a dependency failed",
                true,
                None,
                Some(Gate::Fail {
                    reason: "dependency a ended failed (run 3)".into(),
                }),
                Recheck::Skip {
                    reason: "dependency a ended failed (run 3)".into(),
                },
            ),
            (
                "still waiting",
                true,
                hour,
                wait(),
                Recheck::Wait {
                    reason: "waiting for a, b".into(),
                },
            ),
        ];
        for (what, active, deadline, gate, expected) in cases {
            assert_eq!(
                recheck(waiting, active, deadline, gate, now),
                expected,
                "{what}"
            );
        }
        let unknown = Blocked {
            scheduled_at: due,
            reason: None,
        };
        assert_eq!(
            recheck(unknown, true, ten_min, None, now),
            Recheck::Skip {
                reason: "its starting deadline (10m) passed while waiting".into()
            }
        );
    }

    #[test]
    fn a_skip_at_a_gate_cascades_down_the_chain_of_gates() {
        use RunState::*;
        let (created, now) = (ts("2026-10-31T12:00:00Z"), ts("2026-10-31T12:10:00Z"));
        let job = |active: bool, deps: &[&str], gated: &[&str], runs: &[(i64, &str)]| GatedJob {
            active,
            deadline: None,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            gated: gated.iter().map(|d| d.to_string()).collect(),
            blocked: runs
                .iter()
                .map(|(id, reason)| BlockedRun {
                    id: *id,
                    created,
                    scheduled_at: Some(created),
                    reason: Some(reason.to_string()),
                })
                .collect(),
        };
        let chain = |b_active: bool| {
            BTreeMap::from([
                (
                    "b".to_string(),
                    job(b_active, &["a"], &["c"], &[(10, "waiting for a")]),
                ),
                (
                    "c".to_string(),
                    job(true, &["b"], &["b"], &[(11, "waiting for b")]),
                ),
            ])
        };
        let a_failed = latest(1, Failed, Some("2026-10-31T12:05:00Z"));
        let b_blocked = latest(10, Blocked, None);
        let skip = |job: &str, run_id, reason: &str| Decided {
            job: job.into(),
            run_id,
            outcome: Recheck::Skip {
                reason: reason.into(),
            },
        };
        type Case = (
            &'static str,
            BTreeMap<String, GatedJob>,
            Vec<(&'static str, Option<Latest>)>,
            Vec<Decided>,
        );
        let cases: Vec<Case> = vec![
            (
                "a failure skips b, and b's skip skips c (the link back to b ends the walk)",
                chain(true),
                vec![("a", a_failed), ("b", b_blocked)],
                vec![
                    skip("b", 10, "dependency a ended failed (run 1)"),
                    skip("c", 11, "dependency b ended skipped (run 10)"),
                ],
            ),
            (
                "a newer run of b keeps c waiting, unchanged",
                chain(true),
                vec![("a", a_failed), ("b", latest(12, Pending, None))],
                vec![skip("b", 10, "dependency a ended failed (run 1)")],
            ),
            (
                "a success releases b and nothing cascades",
                chain(true),
                vec![
                    ("a", latest(1, Succeeded, Some("2026-10-31T12:05:00Z"))),
                    ("b", b_blocked),
                ],
                vec![Decided {
                    job: "b".into(),
                    run_id: 10,
                    outcome: Recheck::Release {
                        released_by: vec![("a".into(), 1)],
                    },
                }],
            ),
            (
                "a removed job's run ends, and its dependents see a failure",
                chain(false),
                vec![("a", None), ("b", b_blocked)],
                vec![
                    skip("b", 10, "the job was removed while the run waited"),
                    skip("c", 11, "dependency b ended skipped (run 10)"),
                ],
            ),
            (
                "a failure from before the run came due only changes what it waits for",
                BTreeMap::from([(
                    "b".to_string(),
                    job(true, &["a", "x"], &["c"], &[(10, "waiting for x")]),
                )]),
                vec![
                    ("a", latest(1, Failed, Some("2026-10-31T11:00:00Z"))),
                    ("x", None),
                ],
                vec![Decided {
                    job: "b".into(),
                    run_id: 10,
                    outcome: Recheck::Wait {
                        reason: "waiting for a, x".into(),
                    },
                }],
            ),
        ];
        for (name, jobs, latest, expected) in cases {
            let latest = latest
                .into_iter()
                .map(|(job, l)| (job.to_string(), l))
                .collect();
            assert_eq!(
                cascade(&["b".to_string()], &jobs, latest, now),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn repeat_completes_at_the_nth_fire_or_the_first_success() {
        use RunState::*;
        let times = Some(Repeat::Times(3));
        let until = Some(Repeat::UntilSuccess);
        let fire_cases = [
            (None, 100, false),
            (times, 2, false),
            (times, 3, true),
            (times, 4, true),
            (until, 100, false),
        ];
        for (repeat, fires, expected) in fire_cases {
            assert_eq!(
                completes_on_fire(repeat, fires),
                expected,
                "{repeat:?} {fires}"
            );
        }
        let end_cases = [
            (None, Succeeded, false),
            (times, Succeeded, false),
            (until, Succeeded, true),
            (until, Failed, false),
            (until, Cancelled, false),
        ];
        for (repeat, state, expected) in end_cases {
            assert_eq!(
                completes_on_end(repeat, state),
                expected,
                "{repeat:?} {state}"
            );
        }
        let left_cases = [
            (None, 3, None),
            (until, 3, None),
            (times, 0, Some(3)),
            (times, 2, Some(1)),
            (times, 5, Some(0)),
        ];
        for (repeat, fires, expected) in left_cases {
            assert_eq!(fires_left(repeat, fires), expected, "{repeat:?} {fires}");
        }
    }

    #[test]
    fn a_final_failure_lengthens_the_streak_and_a_success_ends_it() {
        use RunState::*;
        let cases = [
            (3, Succeeded, false, 0),
            (3, Failed, false, 4),
            (3, TimedOut, false, 4),
            (3, Failed, true, 3),
            (3, TimedOut, true, 3),
            (3, Cancelled, false, 3),
            (3, Skipped, false, 3),
        ];
        for (streak, state, retrying, expected) in cases {
            assert_eq!(
                streak_after(streak, state, retrying),
                expected,
                "{streak} {state} retrying {retrying}"
            );
        }
    }

    #[test]
    fn a_node_is_alive_until_it_stops_or_misses_its_heartbeats() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let beat = t("2026-12-03T10:00:00Z");
        let cases = [
            ("just beat", None, "2026-12-03T10:00:01Z", true),
            ("10 s on, the limit", None, "2026-12-03T10:00:10Z", true),
            ("11 s on: lost", None, "2026-12-03T10:00:11Z", false),
            ("stopped", Some(beat), "2026-12-03T10:00:01Z", false),
        ];
        for (what, stopped, now, alive) in cases {
            assert_eq!(node_alive(stopped, beat, t(now)), alive, "{what}");
        }
    }

    #[test]
    fn a_run_waits_for_a_node_only_while_none_alive_has_all_its_labels() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            ("nothing needed", v(&[]), vec![], None),
            (
                "no node alive",
                v(&["gpu"]),
                vec![],
                Some("waiting for a node with labels gpu"),
            ),
            (
                "a node has it",
                v(&["gpu"]),
                vec![v(&["eu"]), v(&["gpu", "eu"])],
                None,
            ),
            (
                "each has one, none both",
                v(&["gpu", "eu"]),
                vec![v(&["gpu"]), v(&["eu"])],
                Some("waiting for a node with labels gpu, eu"),
            ),
        ];
        for (what, needs, alive, want) in cases {
            assert_eq!(node_wait(&needs, &alive).as_deref(), want, "{what}");
        }
    }
}
