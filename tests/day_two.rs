//! Day-two commands (issue 13): `jobctl logs JOB` shows the job's latest run.

mod common;

use common::Project;

#[test]
fn logs_of_a_job_name_show_its_latest_run_locally_and_remotely() {
    let p = Project::new()
        .file(
            "jobs.d/hello.yaml",
            "run: echo \"hello from run $JOBS_RUN_ID\"\n",
        )
        .file("tokens", "read read-token-0123456789abcdef\n");
    p.run(&["apply"]).code(0);
    p.run(&["run", "hello"]).code(0);
    p.run(&["run", "hello"]).code(0);
    p.run(&["logs", "hello"])
        .code(0)
        .stdout_has("hello from run 2")
        .stdout_lacks("hello from run 1");
    p.run(&["logs", "1"]).code(0).stdout_has("hello from run 1");
    p.run(&["logs", "nope"])
        .code(1)
        .stderr_has("no job `nope` and no run with that id");

    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    let url = daemon.url();
    let token = "read-token-0123456789abcdef";
    p.run_live(&["--server", &url, "--token", token, "logs", "hello"])
        .code(0)
        .stdout_has("hello from run 2");
    assert_eq!(daemon.stop(), Some(0));
}

/// `jobctl run get` is the `run get ID` subcommand and `jobctl logs 2024` a run id: names the
/// command line would misread are refused with the reason, at the file that takes them.
#[test]
fn job_names_the_command_line_would_misread_are_refused() {
    for (file, why) in [
        ("get.yaml", "are subcommands"),
        ("cancel.yaml", "are subcommands"),
        ("2024.yaml", "reads as a run id"),
    ] {
        Project::new()
            .file(&format!("jobs.d/{file}"), common::job("@daily"))
            .file("jobs.d/fine.yaml", common::job("@daily"))
            .run(&["validate"])
            .code(1)
            .stderr_has(&format!("jobs.d/{file}"))
            .stderr_has("is reserved")
            .stderr_has(why);
    }
}

/// `trigger --wait` follows retries to the final attempt and exits with its code, locally and
/// with --server.
#[test]
fn trigger_wait_follows_retries_to_the_final_attempt() {
    let p = Project::new()
        .file(
            "jobs.d/flaky.yaml",
            "run: \"if [ -e ok ]; then rm ok; echo second; exit 0; fi; touch ok; echo first; exit 3\"\nretry: {attempts: 1, backoff: 1s}\n",
        )
        .file("tokens", "admin admin-token-0123456789abcdef\n");
    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    daemon.wait_for("scheduler started", &[]);
    p.run_live(&["trigger", "flaky", "--wait"])
        .code(0)
        .stdout_has("first")
        .stdout_has("second")
        .stderr_has("attempt 2 is run");
    let url = daemon.url();
    let token = "admin-token-0123456789abcdef";
    p.run_live(&[
        "--server", &url, "--token", token, "trigger", "flaky", "--wait",
    ])
    .code(0)
    .stdout_has("first")
    .stdout_has("second")
    .stderr_has("attempt 2 is run");
    assert_eq!(daemon.stop(), Some(0));
}

/// An `at` job that has fired is done, not a mistake: plan, apply and validate stop warning
/// that its time is past. Moving it to another past time warns again (that one never fires).
#[test]
fn a_one_off_that_fired_stops_warning_that_it_is_in_the_past() {
    let p = Project::new().file(
        "jobs.d/once.yaml",
        "schedule:\n  at: 2026-10-31T12:00:01Z\nrun: echo once\n",
    );
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("run ended", &[("job", "once")]);
    assert_eq!(daemon.stop(), Some(0));

    let later = [("JOBS_NOW", "2026-10-31T13:00:00Z")];
    for command in ["plan", "apply", "validate"] {
        p.run_with(&[command], &later)
            .code(0)
            .stderr_lacks("in the past");
    }
    p.run_with(&["list"], &later)
        .code(0)
        .stdout_has("completed");

    p.write(
        "jobs.d/once.yaml",
        "schedule:\n  at: 2026-10-31T12:10:00Z\nrun: echo once\n",
    );
    p.run_with(&["plan"], &later)
        .code(0)
        .stderr_has("jobs.d/once.yaml:2:7")
        .stderr_has("`at: 2026-10-31T12:10:00Z` is in the past");
}

/// A stopping daemon says what it waits for every few seconds; a second SIGTERM ends the runs
/// at once (SIGKILL, no kill grace) and the runs record why.
#[test]
fn a_second_sigterm_ends_the_runs_at_once_and_says_so() {
    // The run ignores SIGTERM: only SIGKILL ends it. Both graces are long: without the second
    // signal the daemon would wait minutes.
    let p = Project::new().file("jobs.d/stubborn.yaml", "run: trap '' TERM; sleep 300\n");
    let mut daemon = p.serve(&["--shutdown-grace", "5m", "--kill-grace", "5m"], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "stubborn"]).code(0);
    daemon.wait_for("process started", &[("job", "stubborn")]);
    daemon.signal(libc::SIGTERM);
    let waiting = daemon.wait_for("waiting up to", &[]);
    let message = waiting["message"].as_str().unwrap();
    assert!(message.contains("stubborn run 1 (running"), "{waiting}");
    assert!(
        message.contains("send SIGTERM or SIGINT again"),
        "{waiting}"
    );
    let started = std::time::Instant::now();
    daemon.signal(libc::SIGTERM);
    daemon.wait_for("second SIGTERM: stopping the runs at once", &[]);
    assert_eq!(daemon.wait(), Some(0));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let runs = p
        .run_live(&["runs", "stubborn", "-o", "json"])
        .code(0)
        .json();
    let run = &runs.as_array().unwrap()[0];
    assert_eq!(run["state"], "cancelled", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("SIGTERM again: killed at once"), "{error}");
}

/// `runs --since` keeps the recent runs (a duration back or an instant), locally and remotely.
#[test]
fn runs_since_a_duration_or_an_instant() {
    let p = Project::new()
        .file("jobs.d/hello.yaml", "run: echo hi\n")
        .file("tokens", "read read-token-0123456789abcdef\n");
    p.run(&["apply"]).code(0);
    p.run_with(&["run", "hello"], &[("JOBS_NOW", "2026-10-31T08:00:00Z")])
        .code(0);
    p.run_with(&["run", "hello"], &[("JOBS_NOW", "2026-10-31T11:30:00Z")])
        .code(0);
    let ids = |run: common::Run| -> Vec<i64> {
        run.code(0)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(p.run(&["runs", "--since", "1h", "-o", "json"])), [2]);
    assert_eq!(ids(p.run(&["runs", "--since", "1d", "-o", "json"])), [2, 1]);
    assert_eq!(
        ids(p.run(&["runs", "--since", "2026-10-31T09:00:00Z", "-o", "json"])),
        [2]
    );
    p.run(&["runs", "--since", "yesterday"])
        .code(1)
        .stderr_has("expected a duration back from now");

    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    let url = daemon.url();
    let remote = p.run(&[
        "--server",
        &url,
        "--token",
        "read-token-0123456789abcdef",
        "runs",
        "--since",
        "1h",
        "-o",
        "json",
    ]);
    assert_eq!(ids(remote), [2]);
    assert_eq!(daemon.stop(), Some(0));
}

/// `runs --watch` prints the runs, then a line per run that appears or changes state, until
/// stopped (one JSON object per line with `-o json`); through a server too.
#[test]
fn runs_watch_prints_each_change_as_it_happens() {
    let p = Project::new()
        .file("jobs.d/gate.yaml", "run: cat gate.fifo\n")
        .file("tokens", "admin admin-token-0123456789abcdef\n");
    common::mkfifo(&p.path("gate.fifo"));
    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    daemon.wait_for("reconciled", &[]);
    let url = daemon.url();
    let token = "admin-token-0123456789abcdef";
    let (mut local, local_lines) = p.spawn(&["runs", "--watch", "-o", "json"]);
    let (mut remote, remote_lines) = p.spawn(&[
        "--server", &url, "--token", token, "runs", "--watch", "gate",
    ]);
    // Both are watching (the remote one printed nothing yet: no runs).
    p.run_live(&["trigger", "gate"]).code(0);
    for state in ["running", "succeeded"] {
        if state == "succeeded" {
            std::fs::write(p.path("gate.fifo"), "open\n").unwrap();
        }
        let line = local_lines.until(|l| l.contains(&format!("\"state\":\"{state}\"")));
        let run: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(run["job"], "gate");
        remote_lines.until(|l| l.starts_with('1') && l.contains(state));
    }
    for child in [&mut local, &mut remote] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(daemon.stop(), Some(0));
}

/// A foreground `jobctl run`: the first Ctrl-C asks the run to stop (SIGTERM, then the kill
/// grace), a second one kills it at once, and the run records why.
#[test]
fn a_second_ctrl_c_kills_a_foreground_run_at_once() {
    let p = Project::new()
        .file("jobs.toml", "[daemon]\nkill_grace = \"5m\"\n")
        .file(
            "jobs.d/stubborn.yaml",
            "run: trap '' TERM INT; echo started; sleep 300\n",
        );
    p.run(&["apply"]).code(0);
    let (mut foreground, lines) = p.spawn(&["run", "stubborn"]);
    lines.until(|l| l.contains("started"));
    let pid = i32::try_from(foreground.id()).unwrap();
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, libc::SIGINT) };
    // The run is asked to stop; it ignores SIGTERM, so only the second Ctrl-C ends it now.
    let first = std::time::Instant::now();
    let mut ended = None;
    while first.elapsed() < std::time::Duration::from_secs(2) {
        if let Some(status) = foreground.try_wait().unwrap() {
            ended = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        ended.is_none(),
        "the first Ctrl-C must wait out the kill grace"
    );
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = foreground.wait().unwrap();
    assert!(first.elapsed() < std::time::Duration::from_secs(30));
    assert_ne!(status.code(), Some(0));
    let runs = p.run(&["runs", "stubborn", "-o", "json"]).code(0).json();
    let run = &runs.as_array().unwrap()[0];
    assert_eq!(run["state"], "cancelled", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("again: killed at once"), "{error}");
}

/// `jobctl list --search TEXT` and `GET /v1/jobs?q=TEXT`: name, tags, description, schedule
/// and command words, name hits first, locally and through a server alike.
#[test]
fn a_search_finds_jobs_by_name_tag_description_and_command_best_first() {
    let p = Project::new()
        .file(
            "jobs.d/backup.yaml",
            "description: nightly dump\ntags: [db]\nschedule: \"0 3 * * *\"\ncommand: [pg_dump, --format=custom, app]\n",
        )
        .file("jobs.d/db-vacuum.yaml", "command: [vacuumdb, --all]\n")
        .file(
            "jobs.d/report.yaml",
            "description: mail the Backup report\nrun: mail -s report ops\n",
        )
        .file("jobs.d/cleanup.yaml", "run: |\n  rm -rf /tmp/backup-*\n  echo done\n")
        .file("jobs.d/zz-backup-check.yaml", "run: \"true\"\n")
        .file("tokens", "read read-token-0123456789abcdef\n");
    p.run(&["apply"]).code(0);
    let names = |run: common::Run| -> Vec<String> {
        run.code(0)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_string())
            .collect()
    };
    let cases: [(&str, &[&str]); 5] = [
        // The whole name, a name containing it, the description, the command.
        (
            "backup",
            &["backup", "zz-backup-check", "report", "cleanup"],
        ),
        // A name's beginning before a tag.
        ("DB", &["db-vacuum", "backup"]),
        ("pg_dump", &["backup"]),
        ("0 3 * * *", &["backup"]),
        ("nothing-like-it", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(
            names(p.run(&["list", "--search", text, "-o", "json"])),
            expected,
            "{text}"
        );
    }
    p.run(&["list", "--search", "vacuum"])
        .code(0)
        .stdout_has("db-vacuum")
        .stdout_lacks("backup");

    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    let url = daemon.url();
    let token = "read-token-0123456789abcdef";
    for (text, expected) in cases {
        let remote = p.run_live(&[
            "--server", &url, "--token", token, "list", "--search", text, "-o", "json",
        ]);
        assert_eq!(names(remote), expected, "{text} through the server");
    }
    assert_eq!(daemon.stop(), Some(0));
}
