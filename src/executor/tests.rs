//! The executor's writer on a temporary ledger: ends queued from many tasks and threads at
//! once are each written once, and each waiter hears of its own.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use jiff::Timestamp;

use super::Shared;
use crate::ledger::{ApplyBatch, Finish, GitInfo, Ledger, NewRevision, NewRun, Owner, RunEnd};
use crate::run::{RunState, Trigger};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A ledger with job `a` applied and `n` of its runs claimed (`running`) under a lease; the
/// runs' ids and the lease's epoch.
fn ledger_with_running(n: usize) -> (tempfile::TempDir, Ledger, Vec<i64>, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let now = ts("2026-10-31T12:00:00Z");
    ledger
        .apply(now, &GitInfo::default(), |_, _| {
            Ok(ApplyBatch {
                upserts: vec![NewRevision {
                    name: "a".to_string(),
                    content_hash: "hash-a".to_string(),
                    definition: "command: [echo, a]\n".to_string(),
                    source_path: None,
                    enabled: true,
                    schedule: crate::schedule::Schedule::Manual,
                    timezone: jiff::tz::TimeZone::UTC,
                    description: String::new(),
                    tags: Vec::new(),
                    reset_anchor: true,
                    repeat: None,
                    depends_on: Vec::new(),
                    runs_on: Vec::new(),
                }],
                removals: Vec::new(),
                owner: Owner::File,
                scope: None,
            })
        })
        .unwrap();
    let revision = ledger.job("a").unwrap().unwrap().revision_id;
    let epoch = ledger
        .acquire_lease("host", (1, 1), now, |_| false)
        .unwrap();
    for _ in 0..n {
        ledger
            .create_run(&NewRun::now("a", revision, Trigger::Manual, None, now), now)
            .unwrap();
    }
    let ids = ledger
        .claim(epoch, (1, 1), now, n)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    (dir, ledger, ids, epoch)
}

fn end(run_id: i64, epoch: i64) -> RunEnd {
    RunEnd {
        run_id,
        epoch: Some(epoch),
        finish: Finish {
            state: Some(RunState::Succeeded),
            exit_code: Some(0),
            ..Finish::default()
        },
        retry: None,
        at: ts("2026-10-31T12:00:05Z"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_queued_by_tasks_and_threads_at_once_are_each_written_once() {
    let (dir, ledger, ids, epoch) = ledger_with_running(60);
    let shared = Arc::new(Shared::new(
        ledger,
        crate::clock::Clock::starting_at(ts("2026-10-31T12:00:05Z")),
        Some(epoch),
        StdDuration::from_secs(1),
        crate::spec::Defaults::default(),
        &dir.path().join("jobs.d"),
    ));
    let mut waiting = tokio::task::JoinSet::new();
    for (i, &id) in ids.iter().enumerate() {
        let s = shared.clone();
        if i % 3 == 0 {
            // A blocked thread's end (a foreground run, an orphan's) shares the batches.
            waiting.spawn(async move {
                tokio::task::spawn_blocking(move || s.finish(end(id, epoch)))
                    .await
                    .unwrap()
            });
        } else {
            waiting.spawn(async move { s.finish_queued(end(id, epoch)).await });
        }
    }
    let mut answered = 0;
    while let Some(result) = waiting.join_next().await {
        assert_eq!(result.unwrap(), Ok(None), "no retry, and written");
        answered += 1;
    }
    assert_eq!(answered, ids.len());
    let ledger = shared.ledger();
    for id in &ids {
        let run = ledger.run(*id).unwrap().unwrap();
        assert_eq!(run.state, RunState::Succeeded, "run {id}");
    }
}
