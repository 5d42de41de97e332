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
