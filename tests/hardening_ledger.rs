//! Issue 12, "Nothing stuck, whatever the machine does": the ledger's defects, each with a
//! regression test named after it, through the binary.

mod common;

use std::time::Duration;

use common::{Project, job, mkfifo};

/// How long a command may take to refuse a ledger it cannot use: it must answer, not hang.
const PROMPT: Duration = Duration::from_secs(10);

fn journal_mode(path: &std::path::Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap()
}

// Defect 14: odd ledger files.

#[test]
fn odd_ledger_files_a_too_new_ledger_is_refused_untouched() {
    let p = Project::new().file("jobs.d/a.yaml", job("@daily"));
    let ledger = p.path(".jobs/ledger.db");
    std::fs::create_dir_all(ledger.parent().unwrap()).unwrap();
    {
        // A ledger from a future version, still in rollback-journal mode.
        let conn = rusqlite::Connection::open(&ledger).unwrap();
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 999;")
            .unwrap();
    }
    assert_eq!(journal_mode(&ledger), "delete");
    let before = std::fs::read(&ledger).unwrap();
    for args in [&["apply"][..], &["list"], &["plan"]] {
        p.run(args)
            .code(1)
            .stderr_has("written by a newer version of jobs (schema 999");
    }
    assert_eq!(
        std::fs::read(&ledger).unwrap(),
        before,
        "a refused ledger's bytes are unchanged"
    );
    assert_eq!(journal_mode(&ledger), "delete");
}

#[test]
fn odd_ledger_files_a_fifo_at_the_ledger_path_is_a_prompt_clear_error() {
    let p = Project::new().file("jobs.d/a.yaml", job("@daily"));
    mkfifo(&p.path(".jobs/ledger.db"));
    for args in [&["list"][..], &["apply"], &["plan"], &["runs"]] {
        p.run_within(PROMPT, args)
            .code(1)
            .stderr_has("the ledger .jobs/ledger.db is a FIFO (named pipe), not a regular file");
    }
}

#[test]
fn odd_ledger_files_a_folder_at_the_ledger_path_is_a_clear_error() {
    let p = Project::new().file("jobs.d/a.yaml", job("@daily"));
    std::fs::create_dir_all(p.path(".jobs/ledger.db")).unwrap();
    for args in [&["list"][..], &["apply"]] {
        p.run_within(PROMPT, args)
            .code(1)
            .stderr_has("the ledger .jobs/ledger.db is a folder, not a regular file");
    }
}

#[test]
fn odd_ledger_files_a_fifo_at_the_wake_file_does_not_hang_apply() {
    let p = Project::new().file("jobs.d/a.yaml", job("@daily"));
    mkfifo(&p.path(".jobs/ledger.db.wake"));
    p.run_within(PROMPT, &["apply"])
        .code(0)
        .stdout_has("1 added");
}

// Defect 12: run ids are reused.

fn run_ids(p: &Project) -> Vec<i64> {
    p.run(&["runs", "-o", "json", "--limit", "1000"])
        .code(0)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn run_ids_are_not_reused_after_retention_deletes_every_run() {
    let p = Project::new().file("jobs.d/tick.yaml", "run: echo \"id=$JOBS_RUN_ID\"\n");
    p.run(&["apply"]).code(0);
    for id in 1..=3 {
        p.run(&["run", "tick"])
            .code(0)
            .stdout_has(&format!("id={id}"));
    }
    // A long outage: the daemon comes back a year later and retention (30 days by default)
    // deletes every run.
    let mut daemon = p.serve(&[], Some("2027-10-31T12:00:00Z"));
    daemon.wait_for("retention: deleted old runs", &[("deleted", "3")]);
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(run_ids(&p), Vec::<i64>::new());
    p.run_live(&["run", "tick"]).code(0).stdout_has("id=4");
    assert_eq!(run_ids(&p), [4]);
}

/// A ledger as version 4 of the schema left it (before run ids had a high-water mark), with
/// `runs` rows `ids` for a job `a` and `setup` SQL after them.
fn version_4_ledger(p: &Project, ids: &[i64], setup: &str) {
    let path = p.path(".jobs/ledger.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in &jobs::ledger::MIGRATIONS[..4] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 4).unwrap();
    for id in ids {
        conn.execute(
            "INSERT INTO runs (id, job, trigger, state, created_at, finished_at)
             VALUES (?1, 'a', 'manual', 'succeeded', '2026-10-01T00:00:00.000Z', '2026-10-01T00:00:01.000Z')",
            [id],
        )
        .unwrap();
    }
    conn.execute_batch(setup).unwrap();
}

#[test]
fn run_ids_are_not_reused_by_a_migrated_ledger_whose_runs_are_then_pruned() {
    let p = Project::new().file("jobs.d/a.yaml", "run: echo \"id=$JOBS_RUN_ID\"\n");
    version_4_ledger(&p, &[5, 6, 7], "");
    // The apply migrates; every run is then deleted, as retention would.
    p.run(&["apply"]).code(0).stdout_has("1 added");
    rusqlite::Connection::open(p.path(".jobs/ledger.db"))
        .unwrap()
        .execute_batch("DELETE FROM runs")
        .unwrap();
    p.run(&["run", "a"]).code(0).stdout_has("id=8");
}

#[test]
fn run_ids_are_not_reused_a_ledger_pruned_before_migrating_continues_above_what_remains() {
    // Runs were pruned before the migration; an upstream named in `released_by`, events or
    // output left behind still tell which ids were used. Every run is pruned after it, too.
    for (setup, next) in [
        (
            "DELETE FROM runs; INSERT INTO run_output (run_id, at, stream, line) VALUES (9, 'x', 'stdout', 'l');",
            10,
        ),
        (
            "DELETE FROM runs; INSERT INTO run_events (run_id, at, kind, message) VALUES (11, 'x', 'k', 'm');",
            12,
        ),
        (
            "DELETE FROM runs WHERE id > 1; UPDATE runs SET released_by = '[{\"job\": \"up\", \"run\": 20}]';",
            21,
        ),
    ] {
        let p = Project::new().file("jobs.d/a.yaml", "run: echo \"id=$JOBS_RUN_ID\"\n");
        version_4_ledger(&p, &[1, 2, 3], setup);
        p.run(&["apply"]).code(0);
        rusqlite::Connection::open(p.path(".jobs/ledger.db"))
            .unwrap()
            .execute_batch("DELETE FROM runs")
            .unwrap();
        p.run(&["run", "a"])
            .code(0)
            .stdout_has(&format!("id={next}"));
    }
}

// Defect 15: limits that protect the ledger.

fn rejects(file: &str, content: &str, location: &str, message: &str) {
    let run = Project::new()
        .file(&format!("jobs.d/{file}"), content)
        .run(&["validate"]);
    assert_eq!(run.code, 1, "{content}: expected exit 1\n{}", run.stderr);
    let at = format!("jobs.d/{file}:{location}");
    assert!(
        run.stderr.contains(&at),
        "{content}: no {at:?} in\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(message),
        "{content}: no {message:?} in\n{}",
        run.stderr
    );
}

#[test]
fn limits_that_protect_the_ledger_refuse_tiny_intervals_and_endless_retries() {
    for (file, content, location, message) in [
        (
            "a.yaml",
            "schedule: {every: 1ms}\ncommand: [x]\n",
            "1:19",
            "every must be at least 1s (it is 1ms)",
        ),
        (
            "a.yaml",
            "schedule: {every: 999ms}\ncommand: [x]\n",
            "1:19",
            "every must be at least 1s",
        ),
        (
            "a.yaml",
            "command: [x]\nretry: {attempts: 1, backoff: 0s}\n",
            "2:31",
            "retry.backoff must be at least 1s (it is 0s)",
        ),
        (
            "a.yaml",
            "command: [x]\nretry:\n  attempts: 4000000000\n",
            "3:13",
            "retry.attempts must be at most 100 (it is 4000000000)",
        ),
        (
            "a.toml",
            "command = [\"x\"]\n[retry]\nattempts = 101\n",
            "3:12",
            "retry.attempts must be at most 100 (it is 101)",
        ),
    ] {
        rejects(file, content, location, message);
    }
    // The limits themselves are valid, and so are the examples.
    Project::new()
        .file("jobs.d/a.yaml", "schedule: {every: 1s}\ncommand: [x]\n")
        .file(
            "jobs.d/b.yaml",
            "command: [x]\nretry: {attempts: 100, backoff: 1s, max_backoff: 1s}\n",
        )
        .run(&["validate"])
        .code(0)
        .stdout_has("2 jobs in 2 files");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.d");
    Project::new()
        .run(&["--dir", examples.to_str().unwrap(), "validate"])
        .code(0);
}

#[test]
fn limits_that_protect_the_ledger_a_century_of_backlog_is_caught_up_promptly() {
    // A minutely job applied at NOW, and a daemon that comes back 100 years later: every
    // minute but the last was missed (`missed: skip`), and the decision must take
    // milliseconds, not the 19 s (release build) of walking 52 million slots.
    let p = Project::new().file(
        "jobs.d/tick.yaml",
        "schedule: \"* * * * *\"\ntimezone: Europe/Berlin\nmissed: skip\nrun: \"true\"\n",
    );
    p.run(&["apply"]).code(0);
    let (applied, back): (jiff::Timestamp, jiff::Timestamp) = (
        common::NOW.parse().unwrap(),
        "2126-10-31T12:00:30Z".parse().unwrap(),
    );
    let missed = (back.as_second() - applied.as_second()) / 60 - 1;
    let started = std::time::Instant::now();
    let mut daemon = p.serve(&[], Some("2126-10-31T12:00:30Z"));
    daemon.wait_for(
        "slot skipped",
        &[("job", "tick"), ("slots", &missed.to_string())],
    );
    let took = started.elapsed();
    assert!(took < PROMPT, "the catch-up took {took:?}");
    assert_eq!(daemon.stop(), Some(0));
}
