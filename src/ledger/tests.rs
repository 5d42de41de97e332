//! The ledger's operations on a temporary SQLite file: what each writes and what it refuses.

use jiff::Timestamp;

use super::*;
use crate::graph::Graph;
use crate::run::{RunState, Trigger};
use crate::slots::{Outcome, SlotRow};
use crate::spec::Repeat;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn revision(name: &str, repeat: Option<Repeat>, depends_on: &[&str]) -> NewRevision {
    NewRevision {
        name: name.to_string(),
        content_hash: format!("hash-{name}"),
        definition: format!("command: [echo, {name}]\n"),
        source_path: None,
        enabled: true,
        schedule: crate::schedule::Schedule::Every {
            interval: crate::duration::Duration::parse("1m").unwrap(),
            start_at: None,
        },
        timezone: jiff::tz::TimeZone::UTC,
        description: String::new(),
        tags: Vec::new(),
        reset_anchor: true,
        repeat,
        depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        runs_on: Vec::new(),
    }
}

/// A ledger with jobs applied, and the job's revision id by name.
fn ledger_with(jobs: Vec<NewRevision>) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    ledger
        .apply(ts("2026-10-31T12:00:00Z"), &GitInfo::default(), |_, _| {
            Ok(ApplyBatch {
                upserts: jobs,
                removals: Vec::new(),
                owner: Owner::File,
                scope: None,
            })
        })
        .unwrap();
    (dir, ledger)
}

fn revision_id(ledger: &Ledger, job: &str) -> i64 {
    ledger.job(job).unwrap().unwrap().revision_id
}

fn manual(ledger: &mut Ledger, job: &str, now: Timestamp) -> i64 {
    let rev = revision_id(ledger, job);
    ledger
        .create_run(&NewRun::now(job, rev, Trigger::Manual, None, now), now)
        .unwrap()
}

fn end(run_id: i64, epoch: i64, state: RunState, at: Timestamp) -> RunEnd {
    RunEnd {
        run_id,
        epoch: Some(epoch),
        finish: Finish {
            state: Some(state),
            ..Finish::default()
        },
        retry: None,
        at,
    }
}

fn state(ledger: &Ledger, id: i64) -> String {
    ledger.run(id).unwrap().unwrap().state.to_string()
}

/// Writes `value` into `column` of run `id` behind the ledger's back (a stored value as an
/// older build or a hand edit left it).
fn set_run_column(ledger: &Ledger, id: i64, column: &str, value: &str) {
    ledger
        .conn
        .execute(
            &format!("UPDATE runs SET {column} = ?2 WHERE id = ?1"),
            db::params![id, value],
        )
        .unwrap();
}

/// One fired slot of `job` at `at`, as the scheduler records it.
fn fired_slot(job: &str, revision_id: i64, at: Timestamp) -> JobSlots {
    JobSlots {
        job: job.into(),
        revision_id,
        rows: vec![(
            SlotRow {
                slot: at,
                first: at,
                count: 1,
                outcome: Outcome::Fire {
                    trigger: Trigger::Schedule,
                    replace: false,
                },
            },
            at,
        )],
        cursor: at,
    }
}

#[test]
fn the_lease_goes_to_one_daemon_and_fences_the_one_that_lost_it() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[])]);
    let now = ts("2026-10-31T12:00:00Z");
    let first = ledger.acquire_lease("host", (1, 1), now, |_| true).unwrap();
    assert_eq!(first, 1);
    let held = ledger.acquire_lease("host", (2, 2), now, |_| true);
    assert!(
        matches!(held, Err(LedgerError::LeaseHeld { pid: 1, .. })),
        "{held:?}"
    );
    // The holder died: the next daemon takes over with the next epoch.
    let second = ledger
        .acquire_lease("host", (2, 2), now, |_| false)
        .unwrap();
    assert_eq!(second, 2);
    let lost = ledger.record_slots(first, &[], now);
    assert!(
        matches!(lost, Err(LedgerError::LeaseLost { epoch: 1, .. })),
        "{lost:?}"
    );
    ledger.release_lease(second, now).unwrap();
    assert!(ledger.lease().unwrap().unwrap().released_at.is_some());
}

#[test]
fn a_slot_is_recorded_once_and_counts_toward_repeat() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", Some(Repeat::Times(2)), &[])]);
    let now = ts("2026-10-31T12:01:00Z");
    let epoch = ledger
        .acquire_lease("host", (1, 1), now, |_| false)
        .unwrap();
    let slots = |slot: &str| fired_slot("a", 1, ts(slot));
    let fired = ledger
        .record_slots(epoch, &[slots("2026-10-31T12:01:00Z")], now)
        .unwrap();
    assert_eq!(fired.len(), 1);
    // The same slot again (a second daemon, a replay): nothing is written.
    let again = ledger
        .record_slots(epoch, &[slots("2026-10-31T12:01:00Z")], now)
        .unwrap();
    assert!(again.is_empty());
    assert!(ledger.job("a").unwrap().unwrap().completed_at.is_none());
    ledger
        .record_slots(epoch, &[slots("2026-10-31T12:02:00Z")], now)
        .unwrap();
    let job = ledger.job("a").unwrap().unwrap();
    assert_eq!(job.fires, 2);
    assert!(job.completed_at.is_some(), "repeat: times 2 completes");
}

#[test]
fn a_claim_starts_each_pending_run_once_and_an_end_writes_the_streak() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[])]);
    let now = ts("2026-10-31T12:00:00Z");
    let epoch = ledger
        .acquire_lease("host", (1, 1), now, |_| false)
        .unwrap();
    let ids: Vec<i64> = (0..3).map(|_| manual(&mut ledger, "a", now)).collect();
    let claimed = ledger.claim(epoch, (1, 1), now, 2).unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    let rest = ledger.claim(epoch, (1, 1), now, 10).unwrap();
    assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[2]]);
    assert!(ledger.claim(epoch, (1, 1), now, 10).unwrap().is_empty());

    let graph = Graph::default();
    let at = ts("2026-10-31T12:00:05Z");
    ledger
        .finish_runs(
            &[
                end(ids[0], epoch, RunState::Failed, at),
                end(ids[1], epoch, RunState::TimedOut, at),
            ],
            &graph,
        )
        .unwrap();
    assert_eq!(ledger.failure_streak("a").unwrap(), 2);
    // An end fenced by another epoch is not written.
    ledger
        .finish_runs(&[end(ids[2], epoch + 1, RunState::Succeeded, at)], &graph)
        .unwrap();
    assert_eq!(state(&ledger, ids[2]), "running");
    ledger
        .finish_runs(&[end(ids[2], epoch, RunState::Succeeded, at)], &graph)
        .unwrap();
    assert_eq!(state(&ledger, ids[2]), "succeeded");
    assert_eq!(ledger.failure_streak("a").unwrap(), 0);
}

/// The graph of manual `jobs` where "down" `depends_on` "up".
fn down_depends_on_up(jobs: &[&str]) -> Graph {
    let nodes: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j.to_string(), "manual".to_string()))
        .collect();
    Graph::from_parts(
        &nodes,
        &[crate::graph::Edge {
            from: "up".to_string(),
            to: "down".to_string(),
            kind: crate::graph::EdgeKind::DependsOn,
        }],
    )
}

#[test]
fn an_end_releases_the_runs_gated_on_it_for_every_caller() {
    let (_dir, mut ledger) = ledger_with(vec![
        revision("up", None, &[]),
        revision("down", None, &["up"]),
    ]);
    let now = ts("2026-10-31T12:00:00Z");
    let epoch = ledger
        .acquire_lease("host", (1, 1), now, |_| false)
        .unwrap();
    let blocked = manual(&mut ledger, "down", now);
    assert_eq!(state(&ledger, blocked), "blocked");
    let up = manual(&mut ledger, "up", now);
    ledger.claim(epoch, (1, 1), now, 10).unwrap();
    let graph = down_depends_on_up(&["up", "down"]);
    let at = ts("2026-10-31T12:00:05Z");
    ledger
        .finish_runs(&[end(up, epoch, RunState::Succeeded, at)], &graph)
        .unwrap();
    assert_eq!(state(&ledger, blocked), "pending");
    let released = ledger.run(blocked).unwrap().unwrap();
    assert_eq!(
        released.released_by,
        Some(serde_json::json!([{ "job": "up", "run": up }]))
    );
}

#[test]
fn an_end_claims_the_runs_it_released_before_older_pending_ones() {
    // (max places, the runs claimed: "down" is the run the end released, "a0".. the pending
    // runs created before it, oldest first; `Claim::Oldest` would take "a0" first)
    let cases: &[(usize, &[&str])] = &[
        (1, &["down"]),
        (2, &["down", "a0"]),
        (4, &["down", "a0", "a1", "a2"]),
        (10, &["down", "a0", "a1", "a2", "a3", "a4"]),
    ];
    for (max, expected) in cases {
        let (_dir, mut ledger) = ledger_with(vec![
            revision("a", None, &[]),
            revision("up", None, &[]),
            revision("down", None, &["up"]),
        ]);
        let now = ts("2026-10-31T12:00:00Z");
        let epoch = ledger
            .acquire_lease("host", (1, 1), now, |_| false)
            .unwrap();
        let up = manual(&mut ledger, "up", now);
        ledger.claim(epoch, (1, 1), now, 1).unwrap();
        let mut names = std::collections::HashMap::new();
        for i in 0..5 {
            names.insert(manual(&mut ledger, "a", now), format!("a{i}"));
        }
        // Blocked on "up", and younger than every "a".
        names.insert(manual(&mut ledger, "down", now), "down".to_string());
        let graph = down_depends_on_up(&["a", "up", "down"]);
        let at = ts("2026-10-31T12:00:05Z");
        let (_, handoff) = ledger
            .finish_and_claim(
                &[end(up, epoch, RunState::Succeeded, at)],
                &graph,
                Claim::ReleasedFirst,
                epoch,
                (1, 1),
                at,
                *max,
            )
            .unwrap();
        let mut claimed: Vec<&str> = handoff
            .claimed
            .iter()
            .map(|r| names[&r.id].as_str())
            .collect();
        claimed.sort_by_key(|n| (*n != "down", n.to_string()));
        assert_eq!(claimed, *expected, "max {max}");
    }
}

#[test]
fn retention_deletes_old_terminal_runs_in_batches_and_keeps_active_ones() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[])]);
    let now = ts("2026-10-31T12:00:00Z");
    let epoch = ledger
        .acquire_lease("host", (1, 1), now, |_| false)
        .unwrap();
    let ids: Vec<i64> = (0..5).map(|_| manual(&mut ledger, "a", now)).collect();
    ledger.claim(epoch, (1, 1), now, 4).unwrap();
    let ends: Vec<RunEnd> = ids[..4]
        .iter()
        .map(|id| end(*id, epoch, RunState::Succeeded, now))
        .collect();
    ledger.finish_runs(&ends, &Graph::default()).unwrap();
    let keep_one = [Retention {
        job: "a".into(),
        keep: 1,
        before: ts("2026-01-01T00:00:00Z"),
    }];
    assert_eq!(ledger.prune(&keep_one, 2).unwrap(), 2);
    assert_eq!(ledger.prune(&keep_one, 2).unwrap(), 1);
    assert_eq!(ledger.prune(&keep_one, 2).unwrap(), 0);
    let left: Vec<i64> = ledger
        .runs(&RunFilter::default())
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    // The newest terminal run is kept, and the pending one is never pruned.
    assert_eq!(left, vec![ids[4], ids[3]]);
    ledger.reclaim_space().unwrap();
}

#[test]
fn a_stored_value_that_does_not_parse_names_its_run_and_column() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[])]);
    let id = manual(&mut ledger, "a", ts("2026-10-31T12:00:00Z"));
    let set = |column: &str, value: &str| set_run_column(&ledger, id, column, value);
    let bad = |column: &str, value: &str| {
        set(column, value);
        ledger.run(id).unwrap_err().to_string()
    };
    let message = bad("state", "done");
    assert!(
        message.contains(&format!(
            "run {id}, column `state`: `done` is not a run state"
        )),
        "{message}"
    );
    set("state", "pending");
    let message = bad("scheduled_at", "yesterday");
    assert!(
        message.contains(&format!("run {id}, column `scheduled_at`: `yesterday`")),
        "{message}"
    );
}

#[test]
fn a_job_with_a_stored_schedule_or_zone_that_does_not_read_names_its_job_and_column() {
    let (_dir, ledger) = ledger_with(vec![revision("a", None, &[])]);
    let job = ledger.job("a").unwrap().unwrap();
    assert_eq!(job.schedule.to_string(), "every 1m");
    assert_eq!(job.timezone, jiff::tz::TimeZone::UTC);
    let set = |column: &str, value: &str| {
        ledger
            .conn
            .execute(
                &format!("UPDATE revisions SET {column} = ?1 WHERE job = 'a'"),
                db::params![value],
            )
            .unwrap();
    };
    set("schedule", r#"{"every":"soon"}"#);
    let message = ledger.jobs().unwrap_err().to_string();
    assert!(
        message.contains(r#"job a, column `schedule`: `{"every":"soon"}`"#),
        "{message}"
    );
    set("schedule", r#"{"every":"1m"}"#);
    set("timezone", "Mars/Olympus");
    let message = ledger.job("a").unwrap_err().to_string();
    assert!(
        message.contains("job a, column `timezone`: `Mars/Olympus`"),
        "{message}"
    );
}

/// Issue 14: rows are typed, and the wire prints their instants back exactly as the ledger
/// stored them, so the JSON of a run and of a job is the same as when rows were text.
#[test]
fn the_json_of_a_run_and_a_job_shows_every_stamp_as_stored() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[]), revision("b", None, &[])]);
    let id = manual(&mut ledger, "a", ts("2026-10-31T12:00:00.123Z"));
    let columns = [
        ("scheduled_at", "2026-10-31T12:00:01.001Z"),
        ("slot", "2026-10-31T12:00:02.000Z"),
        ("slot_first", "2026-10-31T11:59:00.000Z"),
        ("not_before", "2026-10-31T12:00:03.030Z"),
        ("started_at", "2026-10-31T12:00:04.400Z"),
        ("finished_at", "2026-10-31T12:00:05.999Z"),
        ("cancel_requested", "2026-10-31T12:00:04.500Z"),
    ];
    for (column, value) in columns {
        set_run_column(&ledger, id, column, value);
    }
    let run = serde_json::to_value(crate::api::wire::Run::from(
        ledger.run(id).unwrap().unwrap(),
    ))
    .unwrap();
    for (column, value) in columns {
        assert_eq!(run[column], value, "{column}");
    }
    assert_eq!(run["created_at"], "2026-10-31T12:00:00.123Z");
    assert_eq!(run["state"], "pending");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["duration_ms"], 1599);
    let events = ledger.run_events(id).unwrap();
    let event = serde_json::to_value(crate::api::wire::RunEvent::from(events[0].clone())).unwrap();
    assert_eq!(event["at"], "2026-10-31T12:00:00.123Z");

    ledger
        .pause("a", "alice@host", Some("why"), ts("2026-10-31T12:01:00.5Z"))
        .unwrap();
    ledger
        .apply(ts("2026-10-31T13:00:00Z"), &GitInfo::default(), |_, _| {
            Ok(ApplyBatch {
                upserts: Vec::new(),
                removals: vec!["b".to_string()],
                owner: Owner::File,
                scope: None,
            })
        })
        .unwrap();
    let detail = |name: &str| {
        let row = ledger.job(name).unwrap().unwrap();
        serde_json::to_value(crate::views::detail(
            &row,
            &[],
            Default::default(),
            1,
            row.updated_at,
        ))
        .unwrap()
    };
    let (a, b) = (detail("a"), detail("b"));
    assert_eq!(a["created_at"], "2026-10-31T12:00:00Z");
    assert_eq!(a["applied_at"], "2026-10-31T12:00:00Z");
    assert_eq!(a["removed_at"], serde_json::Value::Null);
    assert_eq!(a["paused"]["at"], "2026-10-31T12:01:00.500Z");
    assert_eq!(a["last_run"]["state"], "pending");
    assert_eq!(a["last_run"]["at"], "2026-10-31T12:00:05.999Z");
    assert_eq!(a["timezone"], "UTC");
    assert_eq!(a["schedule"], "every 1m");
    assert_eq!(b["applied_at"], "2026-10-31T13:00:00Z");
    assert_eq!(b["removed_at"], "2026-10-31T13:00:00Z");
    let stored: (String, String) = ledger
        .conn
        .query_row(
            "SELECT created_at, removed_at FROM jobs WHERE name = 'b'",
            db::params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(b["created_at"], stored.0);
    assert_eq!(b["removed_at"], stored.1);
}

#[test]
fn a_burst_is_claimed_in_its_slots_transaction_up_to_the_free_places_oldest_first() {
    let jobs = ["a", "b", "c"].map(|n| revision(n, None, &[])).to_vec();
    let (_dir, mut ledger) = ledger_with(jobs);
    let now = ts("2026-10-31T12:01:00Z");
    let epoch = ledger
        .acquire_lease("host", (7, 70), now, |_| false)
        .unwrap();
    // A run already waiting is older than the burst: it is claimed first.
    let waiting = manual(&mut ledger, "c", ts("2026-10-31T12:00:30Z"));
    let revisions: std::collections::HashMap<&str, i64> = ["a", "b"]
        .into_iter()
        .map(|job| (job, revision_id(&ledger, job)))
        .collect();
    let batch = ["a", "b"].map(|job| fired_slot(job, revisions[job], now));
    let taker = Taker {
        epoch,
        supervisor: (7, 70),
        max: 2,
    };
    let recorded = ledger
        .record_slots_and_claim(epoch, &batch, now, Some(taker))
        .unwrap();
    assert_eq!(recorded.fired.len(), 2);
    let claimed: Vec<i64> = recorded.claimed.iter().map(|r| r.id).collect();
    let (first_fired, second_fired) = (recorded.fired[0].1, recorded.fired[1].1);
    assert_eq!(
        claimed,
        vec![waiting, first_fired],
        "oldest first, at most 2"
    );
    for run in &recorded.claimed {
        assert_eq!(run.state, RunState::Running);
        assert_eq!(run.supervisor, Some((7, 70)));
    }
    assert_eq!(state(&ledger, second_fired), "pending");
    // No places: the slots are still recorded, nothing is claimed.
    let later = ts("2026-10-31T12:02:00Z");
    let none = Taker { max: 0, ..taker };
    let batch = [fired_slot("a", revisions["a"], later)];
    let recorded = ledger
        .record_slots_and_claim(epoch, &batch, later, Some(none))
        .unwrap();
    assert_eq!((recorded.fired.len(), recorded.claimed.len()), (1, 0));
}

#[test]
fn the_starts_of_several_runs_are_recorded_in_one_write() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[])]);
    let now = ts("2026-10-31T12:00:00Z");
    let runs = [manual(&mut ledger, "a", now), manual(&mut ledger, "a", now)];
    let started: Vec<ProcessStarted> = runs
        .iter()
        .enumerate()
        .map(|(i, id)| ProcessStarted {
            run_id: *id,
            pid: Some(100 + i as i64),
            pid_start: Some(5),
            message: format!("process {} started (attempt 1)", 100 + i),
            at: now,
        })
        .collect();
    ledger.set_processes(&started).unwrap();
    for (i, id) in runs.iter().enumerate() {
        let run = ledger.run(*id).unwrap().unwrap();
        assert_eq!((run.pid, run.pid_start), (Some(100 + i as i64), Some(5)));
        let events = ledger.run_events(*id).unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == "started" && e.message == started[i].message),
            "{events:?}"
        );
    }
}

#[test]
fn carried_starts_ride_with_the_next_transaction_before_its_writes_and_survive_its_failure() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[])]);
    let now = ts("2026-10-31T12:00:00Z");
    let epoch = ledger
        .acquire_lease("host", (1, 1), now, |_| false)
        .unwrap();
    let ids: Vec<i64> = (0..2).map(|_| manual(&mut ledger, "a", now)).collect();
    ledger.claim(epoch, (1, 1), now, 2).unwrap();
    let start = |id: i64| ProcessStarted {
        run_id: id,
        pid: Some(100 + id),
        pid_start: Some(5),
        message: format!("process {} started (attempt 1)", 100 + id),
        at: now,
    };
    let pid = |ledger: &Ledger, id: i64| ledger.run(id).unwrap().unwrap().pid;

    // Carried, not yet written.
    ledger.carry_starts([start(ids[0])]);
    assert_eq!(pid(&ledger, ids[0]), None);
    // A run's end carries its start: `started` comes before `ended`.
    let at = ts("2026-10-31T12:00:05Z");
    ledger
        .finish_runs(
            &[end(ids[0], epoch, RunState::Succeeded, at)],
            &Graph::default(),
        )
        .unwrap();
    assert_eq!(pid(&ledger, ids[0]), Some(100 + ids[0]));
    let kinds: Vec<String> = ledger
        .run_events(ids[0])
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "started", "finished"]);

    // A transaction that fails (a lost lease) writes nothing, and its carried starts wait for
    // the next.
    ledger.carry_starts([start(ids[1])]);
    let batch = [fired_slot("a", revision_id(&ledger, "a"), at)];
    assert!(
        ledger
            .record_slots_and_claim(epoch + 1, &batch, at, None)
            .is_err()
    );
    assert_eq!(pid(&ledger, ids[1]), None);
    ledger.set_processes(&[]).unwrap();
    assert_eq!(pid(&ledger, ids[1]), Some(100 + ids[1]));
}

#[test]
fn a_node_claims_and_waits_only_for_runs_its_labels_cover() {
    let mut gpu = revision("train", None, &[]);
    gpu.runs_on = vec!["gpu".to_string()];
    let (_dir, mut ledger) = ledger_with(vec![gpu, revision("plain", None, &[])]);
    let now = ts("2026-10-31T12:01:00Z");
    let epoch = ledger
        .acquire_lease("host", (7, 70), now, |_| false)
        .unwrap();
    let train = manual(&mut ledger, "train", now);
    let plain = manual(&mut ledger, "plain", now);
    // A node labelled `eu`: it claims the plain run only, and has nothing left to wait for
    // (the run that needs `gpu` is not its to wait for: no busy wake-ups).
    ledger.set_node("cpu-1", &["eu".to_string()]);
    let claimed: Vec<i64> = ledger
        .claim(epoch, (7, 70), now, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(claimed, [plain]);
    assert_eq!(ledger.next_pending_at().unwrap(), None);
    assert_eq!(state(&ledger, train), "pending");
    // A node with `gpu` sees it due at once, claims it, and records its name on it.
    ledger.set_node("gpu-1", &["gpu".to_string(), "eu".to_string()]);
    assert_eq!(ledger.next_pending_at().unwrap(), Some(None));
    let claimed = ledger.claim(epoch, (7, 70), now, 10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].id, claimed[0].node.as_deref()),
        (train, Some("gpu-1"))
    );
}

#[test]
fn a_backfill_keeps_its_places_and_no_slot_is_backfilled_twice() {
    let (_dir, mut ledger) = ledger_with(vec![revision("a", None, &[])]);
    let now = ts("2026-10-31T12:00:00Z");
    let epoch = ledger
        .acquire_lease("host", (1, 1), now, |_| false)
        .unwrap();
    let rev = revision_id(&ledger, "a");
    let slot = |minute: i64| crate::backfill::Slot {
        at: ts("2026-10-31T11:00:00Z")
            .checked_add(jiff::SignedDuration::from_mins(minute))
            .unwrap(),
        revision_id: rev,
        revision: 1,
    };
    let backfill = |slots: Vec<crate::backfill::Slot>, parallel, exclusive| NewBackfill {
        job: "a".into(),
        from: ts("2026-10-31T11:00:00Z"),
        to: ts("2026-10-31T12:00:00Z"),
        parallel,
        exclusive,
        by: None,
        slots,
    };
    // Two places: two pending, two blocked, in slot order.
    let (_, ids) = ledger
        .create_backfill(&backfill((0..4).map(slot).collect(), 2, false), now)
        .unwrap();
    let states = |l: &Ledger| ids.iter().map(|id| state(l, *id)).collect::<Vec<_>>();
    assert_eq!(
        states(&ledger),
        ["pending", "pending", "blocked", "blocked"]
    );
    let claimed = ledger.claim(epoch, (1, 1), now, 10).unwrap();
    assert_eq!(claimed.len(), 2, "only the released are claimable");
    // An end frees a place (released in the end's transaction); a cancellation does too.
    ledger
        .finish_runs(
            &[end(ids[0], epoch, RunState::Succeeded, now)],
            &Graph::default(),
        )
        .unwrap();
    assert_eq!(
        states(&ledger),
        ["succeeded", "running", "pending", "blocked"]
    );
    ledger.request_cancel(ids[2], "alice", now).unwrap();
    assert_eq!(
        states(&ledger),
        ["succeeded", "running", "cancelled", "pending"]
    );
    // A slot that has a backfill run is refused, whole.
    assert!(
        ledger
            .create_backfill(&backfill(vec![slot(10), slot(1)], 1, false), now)
            .is_err()
    );
    assert_eq!(
        ledger
            .slots_with_runs("a", slot(0).at, slot(10).at)
            .unwrap()
            .len(),
        4
    );
    // Exclusive: one at a time, counting the job's other runs.
    let (_, more) = ledger
        .create_backfill(&backfill(vec![slot(20), slot(21)], 1, true), now)
        .unwrap();
    assert_eq!(state(&ledger, more[0]), "blocked", "the job has runs going");
    ledger
        .finish_runs(
            &[end(ids[1], epoch, RunState::Succeeded, now)],
            &Graph::default(),
        )
        .unwrap();
    ledger.request_cancel(ids[3], "alice", now).unwrap();
    assert_eq!(state(&ledger, more[0]), "pending");
    assert_eq!(state(&ledger, more[1]), "blocked");
}
