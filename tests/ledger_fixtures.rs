//! Ledgers written by every earlier schema version (`tests/data/ledger-vN.db`, see its README)
//! open in this binary, migrate, and read back what was written.

mod common;

use common::Project;
use serde_json::Value;

/// A project whose ledger is the fixture of schema `version`, migrated by a first command
/// that writes (`pause`).
fn migrated(version: u32) -> Project {
    let bytes = std::fs::read(format!(
        "{}/tests/data/ledger-v{version}.db",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let p = Project::new().file(".jobs/ledger.db", bytes);
    p.run(&["pause", "hello", "--reason", "migrated"])
        .code(0)
        .stdout_has("hello paused");
    p
}

fn job<'a>(jobs: &'a Value, name: &str) -> &'a Value {
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {jobs}"))
}

fn run(runs: &Value, id: i64) -> &Value {
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no run {id} in {runs}"))
}

#[test]
fn every_old_ledger_keeps_its_jobs_and_revisions() {
    for version in 1..=9 {
        let p = migrated(version);
        let jobs = p.run(&["list", "-o", "json"]).code(0).json();
        let hello = job(&jobs, "hello");
        assert_eq!(hello["schedule"], "0 * * * *", "v{version}");
        assert_eq!(hello["timezone"], "Europe/Berlin", "v{version}");
        assert_eq!(hello["description"], "Says hello on the hour", "v{version}");
        assert_eq!(hello["tags"], serde_json::json!(["fixture"]), "v{version}");
        assert_eq!(hello["paused"]["reason"], "migrated", "v{version}");
        assert_eq!(job(&jobs, "fails")["schedule"], "manual", "v{version}");
        let every = job(&jobs, "every");
        assert_eq!(every["schedule"], "every 15m", "v{version}");
        assert_eq!(
            every["revision"], 2,
            "v{version}: the edit made a second revision"
        );
        p.run(&["get", "every"])
            .code(0)
            .stdout_has("tock")
            .stdout_lacks("tick");
    }
}

#[test]
fn every_old_ledger_with_runs_keeps_runs_pauses_and_output() {
    for version in 2..=9 {
        let p = migrated(version);
        let jobs = p.run(&["list", "-o", "json"]).code(0).json();
        assert_eq!(
            job(&jobs, "every")["paused"]["at"],
            "2026-11-20T10:06:00.000Z",
            "v{version}"
        );
        let runs = p.run(&["runs", "-o", "json"]).code(0).json();
        // From v6 on, `jobctl run hello` released `after` (run 2) as a daemon would: the
        // runs that follow come one id later.
        let later = i64::from(version >= 6);
        let hello = run(&runs, 1);
        assert_eq!(hello["job"], "hello", "v{version}");
        assert_eq!(hello["state"], "succeeded", "v{version}");
        assert_eq!(hello["trigger"], "manual", "v{version}");
        assert_eq!(hello["exit_code"], 0, "v{version}");
        let fails = run(&runs, 2 + later);
        assert_eq!(fails["state"], "failed", "v{version}");
        assert_eq!(fails["exit_code"], 3, "v{version}");
        assert_eq!(run(&runs, 3 + later)["state"], "pending", "v{version}");
        // Output written one row per line before migration 6 reads back from chunks.
        p.run(&["logs", "1"]).code(0).stdout_has("hello from hello");
        p.run(&["logs", &(2 + later).to_string()])
            .code(0)
            .stdout_has("about to fail");
        // A new run continues the ids; none is reused.
        p.run(&["trigger", "fails"]).code(0);
        let runs = p.run(&["runs", "-o", "json"]).code(0).json();
        let newest = runs[0]["id"].as_i64().unwrap();
        assert!(newest > 3 + later, "v{version}: new run id {newest}");
    }
}

#[test]
fn ledgers_from_the_workflow_schema_keep_repeat_streaks_and_blocked_runs() {
    for version in 4..=9 {
        let p = migrated(version);
        let jobs = p.run(&["list", "-o", "json"]).code(0).json();
        // v6's `run hello` released `after` once (see above).
        let released = if version >= 6 { "1 of 3" } else { "0 of 3" };
        assert_eq!(job(&jobs, "after")["progress"], released, "v{version}");
        assert_eq!(job(&jobs, "after")["schedule"], "after hello", "v{version}");
        assert_eq!(job(&jobs, "fails")["failure_streak"], 1, "v{version}");
        // Filled from the runs by the migration that added it (7).
        let failed = job(&jobs, "fails")["last_failure_at"]
            .as_str()
            .unwrap_or_default();
        assert!(
            failed.starts_with("2026-11-20T10:06"),
            "v{version}: {failed:?}"
        );
        assert!(
            job(&jobs, "hello")["last_failure_at"].is_null(),
            "v{version}"
        );
        let runs = p.run(&["runs", "-o", "json"]).code(0).json();
        let gated = run(&runs, 4 + i64::from(version >= 6));
        assert_eq!(gated["job"], "gated", "v{version}");
        assert_eq!(gated["state"], "blocked", "v{version}");
        assert_eq!(gated["reason"], "waiting for fails", "v{version}");
    }
}
