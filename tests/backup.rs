//! Backups that work (issue 13): a consistent copy of a live ledger, an integrity check, and a
//! ledger file that holds everything after a clean stop.

mod common;

use common::Project;
use serde_json::Value;

fn run_ids(p: &Project, ledger: &str) -> Vec<i64> {
    p.run_live(&["--ledger", ledger, "runs", "-o", "json", "--limit", "1000"])
        .code(0)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_backup_taken_under_load_restores() {
    let p = Project::new()
        .file(
            "jobs.d/tick.yaml",
            "schedule: {every: 1s}\nrun: echo tick\n",
        )
        .file("jobs.d/manual.yaml", "run: echo manual\n");
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("scheduler started", &[]);
    daemon.wait_for("run ended", &[("job", "tick")]);
    p.run_live(&["trigger", "manual"]).code(0);
    // Taken while the daemon writes every second.
    p.run_live(&["ledger", "backup", "backup.db"])
        .code(0)
        .stdout_has("Backed up");
    p.run_live(&["ledger", "backup", "backup.db"])
        .code(1)
        .stderr_has("never overwrites");
    p.run_live(&["--ledger", "backup.db", "ledger", "check"])
        .code(0)
        .stdout_has("ok");
    let backed_up = run_ids(&p, "backup.db");
    assert!(!backed_up.is_empty());
    let jobs = p
        .run_live(&["--ledger", "backup.db", "list", "-o", "json"])
        .json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(2), "{jobs}");
    assert_eq!(daemon.stop(), Some(0));

    // Restored in the ledger's place, it serves on: runs continue above the backup's ids.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(p.path(&format!(".jobs/ledger.db{suffix}")));
    }
    std::fs::rename(p.path("backup.db"), p.path(".jobs/ledger.db")).unwrap();
    let mut daemon = p.serve(&[], None);
    let ended: Value = daemon.wait_for("run ended", &[("job", "tick")]);
    assert!(ended["run"].as_i64().unwrap() > *backed_up.iter().max().unwrap());
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn after_a_clean_stop_the_ledger_file_alone_holds_everything() {
    let p = Project::new().file(
        "jobs.d/tick.yaml",
        "schedule: {every: 1s}\nrun: echo tick\n",
    );
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("scheduler started", &[]);
    daemon.wait_for("run ended", &[("job", "tick")]);
    assert_eq!(daemon.stop(), Some(0));
    let recorded = run_ids(&p, ".jobs/ledger.db");
    // What people do: copy the database file, not its write-ahead log.
    std::fs::copy(p.path(".jobs/ledger.db"), p.path("copy.db")).unwrap();
    assert_eq!(run_ids(&p, "copy.db"), recorded);
}

#[test]
fn ledger_check_finds_damage_and_says_what_to_do() {
    let p = Project::new().file("jobs.d/a.yaml", common::job("@daily"));
    p.run(&["ledger", "check"])
        .code(1)
        .stderr_has("there is no ledger at .jobs/ledger.db");
    p.run(&["apply"]).code(0);
    p.run(&["ledger", "check"]).code(0).stdout_has(": ok");
    let ledger = p.path(".jobs/ledger.db");
    let (root, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(&ledger).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'runs_by_state'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (
            root,
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap(),
        )
    };
    {
        use std::io::{Seek, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&ledger)
            .unwrap();
        file.seek(std::io::SeekFrom::Start(((root - 1) * page_size) as u64))
            .unwrap();
        file.write_all(&vec![0xA5; page_size as usize]).unwrap();
    }
    let damaged = p.run(&["ledger", "check"]).code(1);
    assert!(
        damaged.stderr.contains("restore a backup") || damaged.stderr.contains("damaged"),
        "{}",
        damaged.stderr
    );
    assert!(!damaged.stdout.contains(": ok"), "{}", damaged.stdout);
}
