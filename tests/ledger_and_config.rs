//! The ledger's failure modes and the settings' precedence, through the binary.

mod common;

use common::{Project, job};

fn applied() -> Project {
    let p = Project::new().file("jobs.d/a.yaml", job("@daily"));
    p.run(&["apply"]).code(0);
    p
}

#[test]
fn a_locked_ledger_is_a_clear_error() {
    let p = applied();
    p.write("jobs.d/b.yaml", job("@hourly"));
    let holder = rusqlite::Connection::open(p.path(".jobs/ledger.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    p.run_with(&["apply"], &[("JOBS_LOCK_WAIT", "100ms")])
        .code(1)
        .stderr_has("is locked by another process");
    holder.execute_batch("ROLLBACK").unwrap();
    p.run(&["apply"]).code(0).stdout_has("1 added");
}

#[test]
fn a_corrupt_ledger_is_a_clear_error() {
    let p = Project::new()
        .file("jobs.d/a.yaml", job("@daily"))
        .file(".jobs/ledger.db", vec![0x42u8; 8192]);
    p.run(&["apply"])
        .code(1)
        .stderr_has("is not a jobs ledger or is damaged");
    p.run(&["list"])
        .code(1)
        .stderr_has("is not a jobs ledger or is damaged");
}

#[test]
fn a_ledger_from_a_newer_version_is_refused() {
    let p = applied();
    rusqlite::Connection::open(p.path(".jobs/ledger.db"))
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    p.run(&["apply"])
        .code(1)
        .stderr_has("written by a newer version of jobs (schema 99");
    p.run(&["list"]).code(1).stderr_has("newer version");
}

#[test]
fn an_empty_database_is_migrated_to_a_ledger() {
    let p = Project::new().file("jobs.d/a.yaml", job("@daily"));
    std::fs::create_dir_all(p.path(".jobs")).unwrap();
    rusqlite::Connection::open(p.path(".jobs/ledger.db"))
        .unwrap()
        .execute_batch("VACUUM")
        .unwrap();
    p.run(&["apply"]).code(0).stdout_has("1 added");
    let mode: String = rusqlite::Connection::open(p.path(".jobs/ledger.db"))
        .unwrap()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_ledger_that_cannot_be_created_is_a_clear_error() {
    let p = Project::new()
        .file("jobs.d/a.yaml", job("@daily"))
        .file("blocker", "a file, not a folder");
    p.run(&["--ledger", "blocker/ledger.db", "apply"])
        .code(1)
        .stderr_has("cannot open the ledger blocker/ledger.db");
    p.run(&["--ledger", "blocker/sub/ledger.db", "apply"])
        .code(1)
        .stderr_has("cannot create the ledger's folder blocker/sub");
}

#[test]
fn flags_beat_variables_beat_the_file() {
    let p = Project::new()
        .file("from-file/a.yaml", job("@daily"))
        .file("from-env/b.yaml", job("@daily"))
        .file("from-flag/c.yaml", job("@daily"))
        .file(
            "jobs.toml",
            "dir = \"from-file\"\ntimezone = \"Asia/Tokyo\"\n",
        );
    p.run(&["validate"]).code(0).stdout_has("from-file valid");
    p.run_with(&["validate"], &[("JOBS_DIR", "from-env")])
        .code(0)
        .stdout_has("from-env valid");
    p.run_with(
        &["--dir", "from-flag", "validate"],
        &[("JOBS_DIR", "from-env")],
    )
    .code(0)
    .stdout_has("from-flag valid");
    // The file's default time zone applies to jobs that name none.
    p.run(&["apply"]).code(0);
    p.run(&["list"]).code(0).stdout_has("Asia/Tokyo");
    assert!(
        p.path("from-file/../.jobs/ledger.db").exists(),
        "the ledger sits beside the jobs folder"
    );
}

#[test]
fn a_bad_config_file_points_at_the_line() {
    Project::new()
        .file("jobs.d/a.yaml", job("@daily"))
        .file("jobs.toml", "dir = \"jobs.d\"\ntimezon = \"UTC\"\n")
        .run(&["validate"])
        .code(1)
        .stderr_has("jobs.toml:2:1")
        .stderr_has("unknown field `timezon`");
    Project::new()
        .file("jobs.d/a.yaml", job("@daily"))
        .run(&["--config", "missing.toml", "validate"])
        .code(1)
        .stderr_has("missing.toml");
}

#[test]
fn init_makes_a_project_that_validates_and_never_overwrites() {
    let p = Project::new();
    p.run(&["init"]).code(0).stdout_has("Created");
    p.run(&["validate"]).code(0).stdout_has("1 job in 1 file");
    p.run(&["init"]).code(1).stderr_has("never overwrites");
    let ignore = std::fs::read_to_string(p.path(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == ".jobs/"), "{ignore}");
    assert!(ignore.lines().any(|l| l == "tokens"), "{ignore}");
}

#[test]
fn init_adds_to_an_existing_gitignore_without_rewriting_it() {
    let p = Project::new().file(".gitignore", "target/\n.jobs/");
    p.run(&["init"]).code(0);
    let ignore = std::fs::read_to_string(p.path(".gitignore")).unwrap();
    assert!(ignore.starts_with("target/\n.jobs/\n"), "{ignore}");
    assert_eq!(ignore.matches(".jobs/").count(), 1, "{ignore}");
    assert!(ignore.lines().any(|l| l == "tokens"), "{ignore}");
}

#[test]
fn cron_explains_and_lists_fires_strictly_after_from() {
    let p = Project::new();
    let v = p
        .run(&[
            "cron",
            "0 2 * * 1-5",
            "--tz",
            "America/New_York",
            "--from",
            "2026-11-02T07:00:00Z",
            "-n",
            "2",
            "-o",
            "json",
        ])
        .code(0)
        .json();
    assert_eq!(v["expression"], "0 2 * * 1-5");
    assert_eq!(v["timezone"], "America/New_York");
    assert!(
        v["description"].as_str().unwrap().starts_with("At 02:00"),
        "{v}"
    );
    assert_eq!(
        v["next"],
        serde_json::json!(["2026-11-03T02:00:00-05:00", "2026-11-04T02:00:00-05:00"])
    );
    p.run(&[
        "cron",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2026-03-07T12:00:00Z",
        "-n",
        "1",
    ])
    .code(0)
    .stdout_has("2026-03-08T03:00:00-04:00");
    p.run(&["cron", "0 0 30 2 *"])
        .code(1)
        .stderr_has("can never fire");
    p.run(&["cron", "0 0 * * 9"])
        .code(1)
        .stderr_has("day-of-week field `9`: 9 is out of range; expected 0-7")
        .stderr_has("          ^");
    p.run(&["cron", "@daily", "--tz", "Europe/Berln"])
        .code(1)
        .stderr_has("did you mean `Europe/Berlin`?");
}

#[test]
fn completions_are_printed() {
    Project::new()
        .run(&["completions", "bash"])
        .code(0)
        .stdout_has("complete -o nospace -o bashdefault -o nosort -F _clap_complete_jobctl jobctl");
}
