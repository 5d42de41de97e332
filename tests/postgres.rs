//! The PostgreSQL ledger through the binary, on a throwaway server started by the test
//! (`common::pg`): the commands work on it as on SQLite, a daemon wakes on other processes'
//! commits through notifications, migrations run once and a newer schema is refused, and a
//! wrong URL or an unreachable server is a clear error.

mod common;

use common::{Project, pg};

fn on_postgres(p: Project) -> (Project, String) {
    (p, pg::database())
}

fn jobs() -> Project {
    Project::new()
        .file(
            "jobs.d/hello.yaml",
            "command: [echo, hello from postgres]\n",
        )
        .file(
            "jobs.d/nightly.yaml",
            "schedule: \"30 2 * * *\"\ntimezone: Europe/Berlin\ncommand: [\"true\"]\n",
        )
}

#[test]
fn validate_plan_apply_list_run_and_logs_work_on_postgres() {
    let (p, url) = on_postgres(jobs());
    let on = |args: &[&str]| {
        let mut all = vec!["--ledger", url.as_str()];
        all.extend_from_slice(args);
        p.run(&all)
    };
    on(&["plan"]).code(0).stdout_has("Plan: 2 to add");
    on(&["apply"]).code(0).stdout_has("2 added");
    on(&["plan"]).code(0).stdout_has("No changes");
    let list = on(&["list", "-o", "json"]).code(0).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "nightly"]);
    on(&["run", "hello"])
        .code(0)
        .stdout_has("hello from postgres");
    let runs = on(&["runs", "-o", "json"]).code(0).json();
    assert_eq!(runs[0]["state"], "succeeded", "{runs}");
    let id = runs[0]["id"].to_string();
    on(&["logs", &id]).code(0).stdout_has("hello from postgres");
    // Exit 3: no daemon serves this ledger.
    on(&["status"])
        .code(3)
        .stdout_has(&format!("Ledger:   {url} (2 jobs)"));

    // Removing a file removes its job; `get` still shows it, removed, with its history.
    p.remove("jobs.d/nightly.yaml");
    on(&["apply"]).code(0).stdout_has("1 removed");
    on(&["get", "nightly"])
        .code(0)
        .stdout_has("removed")
        .stdout_has("30 2 * * *");
}

#[test]
fn a_daemon_on_postgres_runs_what_another_process_triggers() {
    let (p, url) = on_postgres(jobs());
    let mut daemon = p.serve(&["--ledger", &url], None);
    daemon.wait_for("reconciled", &[]);
    let queued = p.run_live(&["--ledger", &url, "trigger", "hello"]).code(0);
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    // The trigger's notification wakes the daemon: well before its 5 s poll.
    let started = std::time::Instant::now();
    daemon.wait_for("run ended", &[("run", &id), ("state", "succeeded")]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the run took {:?} to start and end",
        started.elapsed()
    );
    p.run_live(&["--ledger", &url, "logs", &id])
        .code(0)
        .stdout_has("hello from postgres");
    let run = p
        .run_live(&["--ledger", &url, "run", "get", &id, "-o", "json"])
        .code(0)
        .json();
    assert!(run["node"].as_str().is_some_and(|n| !n.is_empty()), "{run}");
    daemon.stop();
}

#[test]
fn two_commands_opening_a_new_database_together_migrate_it_once() {
    let p = jobs();
    let fresh = pg::database();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let root = p.root().to_path_buf();
            let url = fresh.clone();
            std::thread::spawn(move || {
                std::process::Command::new(assert_cmd::cargo::cargo_bin!("jobctl"))
                    .current_dir(root)
                    .args(["--ledger", &url, "apply"])
                    .env("JOBS_NOW", common::NOW)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let mut added = 0;
    for h in handles {
        let out = h.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if stdout.contains("2 added") {
            added += 1;
        }
    }
    assert_eq!(
        added, 1,
        "exactly one of four concurrent applies added the jobs"
    );
}

#[test]
fn a_ledger_from_a_newer_jobs_is_refused() {
    let (p, url) = on_postgres(jobs());
    p.run(&["--ledger", &url, "apply"]).code(0);
    pg::psql(&url, "UPDATE schema_version SET version = version + 1");
    p.run(&["--ledger", &url, "list"])
        .code(1)
        .stderr_has("newer");
}

#[test]
fn a_wrong_url_or_an_unreachable_server_is_a_clear_error() {
    let p = jobs();
    p.run(&[
        "--ledger",
        "postgres://jobs:secret@127.0.0.1:notaport/x",
        "list",
    ])
    .code(1)
    .stderr_has("does not parse")
    .stderr_lacks("secret");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://jobs:secret@127.0.0.1:{port}/x");
    p.run(&["--ledger", &url, "apply"])
        .code(1)
        .stderr_has("postgres://jobs:***@127.0.0.1")
        .stderr_has("refused")
        .stderr_lacks("secret");
    // A database that does not exist.
    let server = pg::server();
    let missing = server.url("no_such_database");
    p.run(&["--ledger", &missing, "list"])
        .code(1)
        .stderr_has("no_such_database")
        .stderr_has("does not exist");
    // Credentials the server refuses (a role it does not know).
    let stranger = format!("postgres://nobody@127.0.0.1:{}/postgres", server.port);
    p.run(&["--ledger", &stranger, "list"])
        .code(1)
        .stderr_has("refused")
        .stderr_has("role \"nobody\" does not exist");
}

#[test]
fn a_sqlite_ledger_is_copied_whole_to_postgres_and_back_and_a_full_target_is_refused() {
    let mut p = jobs();
    p.ledger_url = None;
    p.run(&["apply"]).code(0);
    p.run(&["run", "hello"]).code(0);
    p.run(&["run", "hello"]).code(0);
    p.run(&["pause", "nightly"]).code(0);
    let before = p.run(&["runs", "-o", "json"]).code(0).json();
    let url = pg::database();

    let copied = p.run(&["ledger", "copy", "--to", &url]).code(0);
    copied.stdout_has("2 revisions, 2 jobs, 1 pauses, 2 runs");
    let on = |args: &[&str]| {
        let mut all = vec!["--ledger", url.as_str()];
        all.extend_from_slice(args);
        p.run(&all)
    };
    // The same runs, ids and all, with their output; the pause; the revisions.
    assert_eq!(on(&["runs", "-o", "json"]).code(0).json(), before);
    let id = before[0]["id"].to_string();
    on(&["logs", &id]).code(0).stdout_has("hello from postgres");
    on(&["list"]).code(0).stdout_has("paused");
    on(&["plan"]).code(0).stdout_has("No changes");
    // A new run continues the numbering.
    on(&["run", "hello"]).code(0);
    let after = on(&["runs", "-o", "json"]).code(0).json();
    assert_eq!(
        after[0]["id"].as_i64().unwrap(),
        before[0]["id"].as_i64().unwrap() + 1
    );

    // A target that is not empty is refused, and left as it was.
    p.run(&["ledger", "copy", "--to", &url])
        .code(1)
        .stderr_has("is not empty");
    assert_eq!(on(&["runs", "-o", "json"]).code(0).json(), after);

    // And back to a new SQLite file.
    p.run(&["ledger", "copy", "--from", &url, "--to", "moved.db"])
        .code(0);
    let back = p
        .run(&["--ledger", "moved.db", "runs", "-o", "json"])
        .code(0)
        .json();
    assert_eq!(back, after);
}

#[test]
fn sslmode_require_encrypts_and_verifies_the_server_certificate() {
    let (p, url) = on_postgres(jobs());
    let ca = pg::server().ca_file();
    let secure = format!("{url}?sslmode=require&sslrootcert={}", ca.display());
    p.run(&["--ledger", &secure, "apply"])
        .code(0)
        .stdout_has("2 added");
    // A daemon on it: its connections are TLS, as the server sees them.
    let mut daemon = p.serve(&["--ledger", &secure], None);
    daemon.wait_for("scheduler started", &[]);
    let db = url.rsplit('/').next().unwrap();
    let sql = format!(
        "SELECT count(*) FILTER (WHERE s.ssl) || ' of ' || count(*) FROM pg_stat_ssl s
         JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{db}' AND a.application_name = 'jobs'"
    );
    let seen = pg::psql(&url, &sql);
    let (tls, all) = seen.split_once(" of ").unwrap();
    assert!(tls == all && tls != "0", "TLS connections: {seen}");
    drop(daemon);
    // Without the CA the certificate is not trusted: a clear error, nothing done.
    p.run(&["--ledger", &format!("{url}?sslmode=require"), "list"])
        .code(1)
        .stderr_has("certificate");
    // PGSSLROOTCERT and PGSSLMODE work as with libpq.
    p.run_with(
        &["--ledger", &url, "list"],
        &[
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", ca.to_str().unwrap()),
        ],
    )
    .code(0)
    .stdout_has("hello");
    p.run(&["--ledger", &format!("{url}?sslmode=sometimes"), "list"])
        .code(1)
        .stderr_has("sslmode `sometimes` is not disable");
}
