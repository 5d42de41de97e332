//! `jobctl serve` end to end: the binary in a temp folder, waited on through its JSON log.
//!
//! Daemons here run on a clock that starts at a fixed instant (`JOBS_NOW`) and runs at real
//! speed, so schedules are deterministic; intervals are 1 s, and nothing sleeps to wait for
//! the daemon: tests wait for the log line that says it happened.

mod common;

use common::{Daemon, Project, alive};
use serde_json::Value;

const T0: &str = "2026-10-31T12:00:00Z";

fn runs(p: &Project, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["runs", "-o", "json", "--limit", "1000"];
    all.extend_from_slice(args);
    p.run(&all)
        .code(0)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn field<'a>(run: &'a Value, key: &str) -> &'a str {
    run.get(key).and_then(Value::as_str).unwrap_or("")
}

fn wait_run_end(daemon: &mut Daemon, job: &str) -> Value {
    daemon.wait_for("run ended", &[("job", job)])
}

#[test]
fn serve_fires_on_schedule_and_records_runs_with_output() {
    let p = Project::new().file(
        "jobs.d/tick.yaml",
        "schedule: {every: 1s}\nrun: echo \"tick $JOBS_RUN_ID $JOBS_ATTEMPT $JOBS_JOB\"; echo oops >&2\n",
    );
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&[], Some(T0));
    daemon.wait_for("jobs serve started", &[]);
    wait_run_end(&mut daemon, "tick");
    wait_run_end(&mut daemon, "tick");
    assert_eq!(daemon.stop(), Some(0));

    let all = runs(&p, &["tick"]);
    assert!(all.len() >= 2, "{all:?}");
    let first = all.last().unwrap();
    for key in [
        "id",
        "job",
        "state",
        "trigger",
        "attempt",
        "scheduled_at",
        "started_at",
        "finished_at",
        "exit_code",
        "signal",
        "error",
        "revision",
        "git_commit",
    ] {
        assert!(first.get(key).is_some(), "runs JSON lacks {key}: {first}");
    }
    assert_eq!(field(first, "state"), "succeeded");
    assert_eq!(field(first, "trigger"), "schedule");
    // The first slot is one interval after the apply; times carry milliseconds.
    assert_eq!(field(first, "scheduled_at"), "2026-10-31T12:00:01.000Z");
    assert!(
        field(first, "started_at") >= field(first, "scheduled_at"),
        "never early"
    );
    assert_eq!(first["exit_code"], 0);
    assert_eq!(first["revision"], 1);
    assert!(first["cpu_user_ms"].is_i64() && first["max_rss_kb"].as_i64().unwrap() > 0);

    let id = first["id"].to_string();
    let logs = p.run(&["logs", &id]).code(0);
    assert_eq!(logs.stdout.trim(), format!("tick {id} 1 tick"));
    assert_eq!(logs.stderr.trim(), "oops");
    let events = p.run(&["run", "events", &id, "-o", "json"]).code(0).json();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["fired", "started", "finished"]);
}

#[test]
fn a_second_daemon_on_the_same_ledger_exits_naming_the_first() {
    let p = Project::new().file("jobs.d/a.yaml", "command: [true]\n");
    let mut first = p.serve(&[], None);
    first.wait_for("jobs serve started", &[]);
    let now = p.live_now().to_string();
    let mut second = p.serve(&[], Some(&now));
    if p.ledger_url.is_some() {
        // On PostgreSQL a second daemon is a second node: it follows the first.
        second.wait_for("this node follows", &[]);
        let status = p.run_live(&["status", "-o", "json"]).code(0).json();
        let nodes = status["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2, "{status}");
        let leaders: Vec<i64> = nodes
            .iter()
            .filter(|n| n["leader"] == true)
            .map(|n| n["pid"].as_i64().unwrap())
            .collect();
        assert_eq!(leaders, [i64::from(first.pid())], "{status}");
        assert_eq!(second.stop(), Some(0));
    } else {
        let code = second.wait();
        assert_eq!(code, Some(1));
        let said: String = second.seen.iter().map(ToString::to_string).collect();
        assert!(
            said.contains(&format!(
                "already served by `jobctl serve` (pid {}",
                first.pid()
            )),
            "{said}"
        );
    }
    p.run_live(&["status"])
        .code(0)
        .stdout_has(&format!("running (leader: pid {}", first.pid()));
    assert_eq!(first.stop(), Some(0));
    // As `systemctl is-active`: 3 when no daemon serves the ledger.
    p.run_live(&["status"]).code(3).stdout_has("not running");
}

#[test]
fn trigger_queues_a_run_that_the_daemon_starts_at_once() {
    let p = Project::new().file(
        "jobs.d/deploy.yaml",
        "run: echo \"deploying $JOBS_PARAM_BRANCH to $JOBS_PARAM_ENV\"\nparams:\n  branch: {required: true}\n  env: {default: staging}\n",
    );
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "deploy"])
        .code(1)
        .stderr_has("needs the parameter `branch`");
    p.run_live(&["trigger", "deploy", "--param", "color=red"])
        .code(1)
        .stderr_has("has no parameter `color`; it declares: branch, env");
    let queued = p
        .run_live(&["trigger", "deploy", "--param", "branch=main; rm -rf /"])
        .code(0)
        .stdout_has("queued");
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    let started = daemon.wait_for("run starting", &[("run", &id)]);
    assert_eq!(started["trigger"], "manual");
    wait_run_end(&mut daemon, "deploy");
    p.run_live(&["logs", &id])
        .code(0)
        .stdout_has("deploying main; rm -rf / to staging");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_timeout_kills_the_whole_process_group_and_retries() {
    // The shell ignores SIGTERM and so does its child: only SIGKILL to the group ends them.
    let p = Project::new().file(
        "jobs.d/stuck.yaml",
        "run: trap '' TERM; sh -c \"trap '' TERM; echo child \\$\\$; sleep 60\" & echo started; wait\ntimeout: 1s\nretry: {attempts: 1, backoff: 1s}\n",
    );
    let mut daemon = p.serve(&["--kill-grace", "500ms"], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "stuck"]).code(0);
    let ended = daemon.wait_for("run ended; retrying", &[("job", "stuck")]);
    assert_eq!(ended["state"], "timed_out");
    let retried = wait_run_end(&mut daemon, "stuck");
    assert_eq!(retried["state"], "timed_out");
    assert_eq!(daemon.stop(), Some(0));

    let all = runs(&p, &["stuck"]);
    assert_eq!(all.len(), 2);
    let (retry, first) = (&all[0], &all[1]);
    assert_eq!(field(first, "state"), "timed_out");
    assert_eq!(first["signal"], 9, "SIGTERM was ignored, SIGKILL ended it");
    assert_eq!(field(retry, "trigger"), "retry");
    assert_eq!(retry["attempt"], 2);
    assert_eq!(retry["first_run_id"], first["id"]);
    // The grandchild printed its pid; it must be gone.
    let logs = p.run_live(&["logs", &first["id"].to_string()]).code(0);
    let child: i32 = logs
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .expect("the child printed its pid")
        .trim()
        .parse()
        .unwrap();
    assert!(
        !alive(child),
        "the group's child {child} survived the timeout"
    );
    let events = p
        .run_live(&["run", "events", &first["id"].to_string()])
        .code(0);
    events
        .stdout_has("sent SIGTERM to the process group: the timeout passed")
        .stdout_has("sent SIGKILL to the process group")
        .stdout_has("attempt 2 is run");
}

#[test]
fn a_daemon_killed_mid_run_is_recovered_without_orphans_or_double_fires() {
    let p = Project::new()
        .file(
            "jobs.d/long.yaml",
            "run: echo $$; exec sleep 60\nretry: {attempts: 1, backoff: 1h}\n",
        )
        .file(
            "jobs.d/hourly.yaml",
            "schedule: {cron: \"0 * * * *\"}\nrun: \"true\"\n",
        );
    p.run(&["apply"]).code(0);
    // 12:59:59: the hourly slot at 13:00 comes due a second after start.
    // One node, restarted under its name (as systemd restarts it).
    let mut daemon = p.serve(&["--node", "solo"], Some("2026-10-31T12:59:59Z"));
    daemon.wait_for("jobs serve started", &[]);
    p.run_live(&["trigger", "long"]).code(0);
    let started = daemon.wait_for("process started", &[("job", "long")]);
    let pid = started["pid"].as_i64().unwrap() as i32;
    wait_run_end(&mut daemon, "hourly");
    assert!(alive(pid));
    daemon.signal(libc::SIGKILL);
    daemon.wait();
    assert!(alive(pid), "SIGKILL of the daemon leaves its child running");

    // Restarted at the same instant: the 13:00 slot is already accounted for.
    let mut again = p.serve(&["--node", "solo"], Some("2026-10-31T13:00:01Z"));
    let interrupted = again.wait_for("recorded as failed (interrupted)", &[("job", "long")]);
    assert!(
        interrupted["message"]
            .as_str()
            .unwrap()
            .contains(&format!("killed its process group {pid}"))
    );
    again.wait_for("scheduler started", &[]);
    assert!(!alive(pid), "the orphaned run's process is gone");
    assert_eq!(again.stop(), Some(0));

    let long = runs(&p, &["long"]);
    assert_eq!(long.len(), 2, "the run and its retry: {long:?}");
    assert_eq!(field(&long[1], "state"), "failed");
    assert!(field(&long[1], "error").starts_with("interrupted"));
    assert_eq!(field(&long[0], "state"), "pending");
    assert_eq!(field(&long[0], "trigger"), "retry");
    let hourly = runs(&p, &["hourly"]);
    assert_eq!(hourly.len(), 1, "the 13:00 slot fired once: {hourly:?}");
    assert_eq!(
        field(&hourly[0], "scheduled_at"),
        "2026-10-31T13:00:00.000Z"
    );
}

#[test]
fn missed_slots_run_once_after_downtime_with_the_count() {
    let p = Project::new()
        .file(
            "jobs.d/hourly.yaml",
            "schedule: {cron: \"0 * * * *\"}\nrun: \"true\"\n",
        )
        .file(
            "jobs.d/skipper.yaml",
            "schedule: {cron: \"0 * * * *\"}\nmissed: skip\nrun: \"true\"\n",
        );
    p.run(&["apply"]).code(0);
    // Down from 12:00 until 15:10: 13:00, 14:00, 15:00 were missed.
    let mut daemon = p.serve(&[], Some("2026-10-31T15:10:00Z"));
    wait_run_end(&mut daemon, "hourly");
    assert_eq!(daemon.stop(), Some(0));
    let hourly = runs(&p, &["hourly"]);
    assert_eq!(hourly.len(), 1);
    assert_eq!(field(&hourly[0], "trigger"), "missed");
    assert_eq!(hourly[0]["slot_count"], 3);
    assert_eq!(field(&hourly[0], "slot_first"), "2026-10-31T13:00:00.000Z");
    assert_eq!(field(&hourly[0], "slot"), "2026-10-31T15:00:00.000Z");
    let skipped = runs(&p, &["skipper"]);
    assert_eq!(skipped.len(), 1);
    assert_eq!(field(&skipped[0], "state"), "skipped");
    assert_eq!(skipped[0]["slot_count"], 3);
    assert!(field(&skipped[0], "reason").contains("missed: skip"));
}

#[test]
fn overlapping_fires_are_skipped_with_the_reason() {
    let p = Project::new().file(
        "jobs.d/slow.yaml",
        "schedule: {every: 1s}\nrun: sleep 1.6\n",
    );
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&[], Some(T0));
    wait_run_end(&mut daemon, "slow");
    assert_eq!(daemon.stop(), Some(0));
    let all = runs(&p, &["slow", "--state", "skipped"]);
    assert!(!all.is_empty());
    assert_eq!(
        field(&all[0], "reason"),
        "the previous run is still active (concurrency: forbid)"
    );
}

#[test]
fn a_paused_job_skips_its_slots_and_shows_as_paused() {
    let p = Project::new().file("jobs.d/tick.yaml", "schedule: {every: 1s}\nrun: \"true\"\n");
    p.run(&["apply"]).code(0);
    p.run(&["pause", "tick", "--reason", "maintenance window"])
        .code(0)
        .stdout_has("tick paused");
    p.run(&["list"]).code(0).stdout_has("paused");
    p.run(&["plan"])
        .code(0)
        .stdout_has("Note: tick is paused (by ")
        .stdout_has(": maintenance window); applying keeps it paused.");
    let got = p.run(&["get", "tick", "-o", "json"]).code(0).json();
    assert_eq!(got["state"], "paused");
    assert_eq!(got["paused"]["reason"], "maintenance window");
    // A pause survives an apply of a changed file.
    p.write(
        "jobs.d/tick.yaml",
        "schedule: {every: 1s}\nrun: \"true\"\ndescription: changed\n",
    );
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&[], Some(T0));
    daemon.wait_for("jobs serve started", &[]);
    let skipped = daemon.wait_for("slot skipped", &[("job", "tick")]);
    assert_eq!(skipped["reason"], "the job is paused");
    let rows = runs(&p, &["tick", "--state", "skipped"]);
    assert_eq!(field(&rows[0], "reason"), "the job is paused");
    p.run_live(&["resume", "tick"])
        .code(0)
        .stdout_has("tick resumed");
    wait_run_end(&mut daemon, "tick");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn an_invalid_edit_keeps_the_last_good_revision_and_shows_in_status() {
    let p = Project::new()
        .file("jobs.d/a.yaml", "command: [echo, one]\n")
        .file("jobs.d/b.yaml", "command: [echo, b]\n");
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("reconciled", &[]);
    p.write("jobs.d/a.yaml", "command: [echo, one]\ntimeout: forever\n");
    p.write("jobs.d/b.yaml", "command: [echo, b2]\n");
    daemon.wait_for("reconciled", &[("changed", "1")]);
    // 4: a daemon serves, but the jobs folder has errors.
    let status = p.run_live(&["status"]).code(4);
    status
        .stdout_has("1 error")
        .stdout_has("jobs.d/a.yaml:2:10");
    // `a` is still there at revision 1; `b` moved on.
    let list = p.run_live(&["list", "-o", "json"]).code(0).json();
    let revision = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .map(|j| j["revision"].clone())
    };
    assert_eq!(revision("a"), Some(Value::from(1)));
    assert_eq!(revision("b"), Some(Value::from(2)));
    // Fixing the file applies it.
    p.write("jobs.d/a.yaml", "command: [echo, two]\n");
    daemon.wait_for("reconciled", &[("changed", "1")]);
    p.run_live(&["status"])
        .code(0)
        .stdout_has("Files:    valid");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn sighup_reconciles_and_removed_files_remove_jobs() {
    let p = Project::new()
        .file("jobs.d/a.yaml", "command: [\"true\"]\n")
        .file("jobs.d/b.yaml", "command: [\"true\"]\n");
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("reconciled", &[("added", "2")]);
    p.remove("jobs.d/b.yaml");
    daemon.wait_for("reconciled", &[("removed", "1")]);
    daemon.signal(libc::SIGHUP);
    assert_eq!(daemon.stop(), Some(0));
    let list = p.run_live(&["list", "-o", "json"]).code(0).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn sigterm_lets_runs_finish_within_the_grace_then_stops_them() {
    let p = Project::new().file("jobs.d/long.yaml", "run: sleep 60\n");
    let mut daemon = p.serve(&["--shutdown-grace", "300ms", "--kill-grace", "1s"], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "long"]).code(0);
    daemon.wait_for("run starting", &[("job", "long")]);
    assert_eq!(daemon.stop(), Some(0));
    let all = runs(&p, &["long"]);
    assert_eq!(field(&all[0], "state"), "cancelled");
    assert!(field(&all[0], "error").contains("the daemon shut down (SIGTERM)"));
}

#[test]
fn run_cancel_stops_a_running_run() {
    let p = Project::new().file("jobs.d/long.yaml", "run: sleep 60\n");
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "long"]).code(0);
    let started = daemon.wait_for("run starting", &[("job", "long")]);
    let id = started["run"].to_string();
    p.run_live(&["run", "cancel", &id])
        .code(0)
        .stdout_has("cancellation requested");
    let ended = wait_run_end(&mut daemon, "long");
    assert_eq!(ended["state"], "cancelled");
    p.run_live(&["run", "cancel", &id])
        .code(1)
        .stderr_has("has already ended (cancelled)");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn jobs_run_runs_in_the_foreground_and_passes_the_exit_code() {
    let p = Project::new()
        .file("jobs.d/ok.yaml", "run: echo out; echo err >&2\n")
        .file(
            "jobs.d/bad.yaml",
            "command: [sh, -c, \"echo failing; exit 3\"]\n",
        );
    p.run(&["apply"]).code(0);
    p.run(&["run", "ok"])
        .code(0)
        .stdout_has("out")
        .stderr_has("err")
        .stderr_has("succeeded");
    p.run(&["run", "bad"])
        .code(3)
        .stdout_has("failing")
        .stderr_has("failed (exited with status 3)");
    let bad = runs(&p, &["bad"]);
    assert_eq!(field(&bad[0], "trigger"), "manual");
    assert_eq!(bad[0]["exit_code"], 3);
    p.run(&["run", "nope"]).code(1).stderr_has("no job `nope`");
    p.run(&["run", "get", &bad[0]["id"].to_string()])
        .code(0)
        .stdout_has("exited with status 3");
}

#[test]
fn output_beyond_the_limit_is_truncated_and_recorded() {
    let p = Project::new().file(
        "jobs.d/chatty.yaml",
        "run: for i in $(seq 1 2000); do echo line $i; done\noutput_limit: 1KiB\n",
    );
    p.run(&["apply"]).code(0);
    p.run(&["run", "chatty"]).code(0);
    let run = &runs(&p, &["chatty"])[0];
    assert_eq!(run["output_truncated"], true);
    let logs = p.run(&["logs", &run["id"].to_string()]).code(0);
    assert!(logs.stdout.len() <= 1024, "{}", logs.stdout.len());
    assert!(logs.stdout.starts_with("line 1\n"));
    p.run(&["run", "events", &run["id"].to_string()])
        .code(0)
        .stdout_has("output passed its limit of 1 KiB");
}

#[test]
fn retention_keeps_at_most_keep_runs_per_job() {
    let p = Project::new().file(
        "jobs.d/tick.yaml",
        "run: \"true\"\nhistory: {keep_runs: 2}\n",
    );
    p.run(&["apply"]).code(0);
    for _ in 0..4 {
        p.run(&["run", "tick"]).code(0);
    }
    assert_eq!(runs(&p, &["tick"]).len(), 4);
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("retention: deleted old runs", &[("deleted", "2")]);
    assert_eq!(daemon.stop(), Some(0));
    let kept = runs(&p, &["tick"]);
    assert_eq!(kept.len(), 2);
    assert!(kept[0]["id"].as_i64() > kept[1]["id"].as_i64());
    assert_eq!(kept[1]["id"], 3, "the oldest went first");
}

#[test]
fn logs_follow_a_live_run_until_it_ends() {
    let p = Project::new().file(
        "jobs.d/talk.yaml",
        "run: echo one; sleep 0.5; echo two; sleep 0.5; echo three\n",
    );
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "talk"]).code(0);
    let started = daemon.wait_for("process started", &[("job", "talk")]);
    let id = started["run"].to_string();
    let followed = p.run_live(&["logs", &id, "-f"]).code(0);
    assert_eq!(followed.stdout, "one\ntwo\nthree\n");
    let ended = p
        .run_live(&["run", "get", &id, "-o", "json"])
        .code(0)
        .json();
    assert_eq!(
        ended["state"], "succeeded",
        "-f returns once the run has ended"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn concurrency_replace_cancels_the_active_run() {
    let p = Project::new().file(
        "jobs.d/latest.yaml",
        "schedule: {every: 1s}\nconcurrency: replace\nrun: sleep 30\n",
    );
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&["--kill-grace", "1s", "--shutdown-grace", "0s"], Some(T0));
    let first = daemon.wait_for("process started", &[("job", "latest")]);
    let ended = wait_run_end(&mut daemon, "latest");
    assert_eq!(ended["run"], first["run"]);
    assert_eq!(ended["state"], "cancelled");
    let events = p
        .run_live(&["run", "events", &first["run"].to_string()])
        .code(0);
    events.stdout_has("(concurrency: replace)");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn changes_are_read_incrementally_including_new_folders_and_renames() {
    let p = Project::new().file("jobs.d/a.yaml", "command: [\"true\"]\n");
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("reconciled", &[("added", "1")]);
    // A new folder with a job in it.
    p.write("jobs.d/team/b.yaml", "command: [\"true\"]\n");
    daemon.wait_for("reconciled", &[("added", "1")]);
    // An atomic save: write a temporary file, then rename it over the job file.
    p.write("jobs.d/.a.yaml.tmp", "command: [echo, saved]\n");
    std::fs::rename(p.path("jobs.d/.a.yaml.tmp"), p.path("jobs.d/a.yaml")).unwrap();
    daemon.wait_for("reconciled", &[("changed", "1")]);
    // A folder renamed away takes its job with it.
    std::fs::rename(p.path("jobs.d/team"), p.path("elsewhere")).unwrap();
    daemon.wait_for("reconciled", &[("removed", "1")]);
    assert_eq!(daemon.stop(), Some(0));
    let list = p.run_live(&["list", "-o", "json"]).code(0).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn mistakes_on_the_run_commands_say_what_to_do() {
    let p = Project::new().file("jobs.d/a.yaml", "command: [\"true\"]\n");
    let ledger = p.ledger_name();
    p.run(&["status"]).code(1).stderr_has(&format!(
        "there is no ledger at {ledger} yet; run `jobctl apply` or `jobctl serve`"
    ));
    p.run(&["trigger", "a"]).code(1).stderr_has(&format!(
        "there is no ledger at {ledger} yet; run `jobctl apply` first"
    ));
    p.run(&["apply"]).code(0);
    let cases: &[(&[&str], &str)] = &[
        (
            &["run"],
            "`jobctl run` needs a job name (or one of: get ID, events ID, cancel ID)",
        ),
        (&["trigger", "nope"], "no job `nope` in the ledger"),
        (
            &["run", "a", "--param", "x=1"],
            "has no parameter `x`; it declares none",
        ),
        (
            &["run", "a", "--param", "x"],
            "--param `x` is not KEY=VALUE",
        ),
        (&["pause", "nope"], "no job `nope` in the ledger"),
        (&["run", "get", "99"], "no run 99 in the ledger"),
        (&["run", "cancel", "99"], "no run 99 in the ledger"),
        (
            &["runs", "--state", "done"],
            "`done` is not a run state; expected one of blocked, pending",
        ),
        (
            &["serve", "--max-concurrent-runs", "0"],
            "--max-concurrent-runs must be at least 1",
        ),
        (
            &["serve", "--kill-grace", "soon"],
            "--kill-grace: `soon` is not a duration",
        ),
        (
            &["--dir", "missing", "serve"],
            "the jobs folder missing does not exist",
        ),
    ];
    for (args, message) in cases {
        p.run(args).code(1).stderr_has(message);
    }
}

#[test]
fn a_retry_due_after_the_last_end_starts_on_time_though_the_room_was_full() {
    // Issue 14: a run's end wakes the executor only when its own transaction could not have
    // claimed what is pending. Here the executor's last look found no free place (`hold`
    // took the only one), and the retry of `flaky` comes due after `hold` ends: that end
    // must still wake the executor to learn when, or the retry would wait for its next
    // look, a minute later.
    let p = Project::new()
        .file(
            "jobs.d/flaky.yaml",
            "command: [\"false\"]\nretry: {attempts: 1, backoff: 3s}\n",
        )
        .file("jobs.d/hold.yaml", "command: [\"sleep\", \"1\"]\n");
    p.run(&["apply"]).code(0);
    p.run(&["trigger", "flaky"]).code(0);
    p.run(&["trigger", "hold"]).code(0);
    let mut daemon = p.serve(&["--max-concurrent-runs", "1"], None);
    wait_run_end(&mut daemon, "flaky");
    wait_run_end(&mut daemon, "hold");
    wait_run_end(&mut daemon, "flaky");
    assert_eq!(daemon.stop(), Some(0));

    let at = |run: &Value, key: &str| field(run, key).parse::<jiff::Timestamp>().unwrap();
    let flaky = runs(&p, &["flaky"]);
    let hold = runs(&p, &["hold"]);
    let (retry, first) = (&flaky[0], &flaky[1]);
    assert_eq!(field(retry, "trigger"), "retry", "{flaky:#?}");
    // `hold` took the place the first attempt freed, and ended before the retry was due.
    assert!(
        at(&hold[0], "finished_at") < at(retry, "started_at"),
        "{hold:#?} {flaky:#?}"
    );
    let late = at(retry, "started_at").duration_since(at(first, "finished_at"));
    assert!(
        late >= jiff::SignedDuration::from_secs(3) && late < jiff::SignedDuration::from_secs(10),
        "the retry started {late:?} after the first attempt ended (backoff 3s)"
    );
}

#[test]
fn runs_ending_together_are_each_recorded_once_with_their_retries() {
    // Many runs end at once and share commits (group commit); each end and each retry must
    // still be written exactly once, to the right run.
    const N: usize = 24;
    let p = Project::new().file(
        "jobs.d/flaky.yaml",
        "command: [\"false\"]\nconcurrency: allow\nretry: {attempts: 1, backoff: 1s}\n",
    );
    p.run(&["apply"]).code(0);
    for _ in 0..N {
        p.run(&["trigger", "flaky"]).code(0);
    }
    let mut daemon = p.serve(&["--max-concurrent-runs", "8"], None);
    let mut logged = Vec::new();
    for _ in 0..2 * N {
        let ended = wait_run_end(&mut daemon, "flaky");
        if let Some(retry) = ended.get("retry") {
            logged.push((ended["run"].as_i64().unwrap(), retry.as_i64().unwrap()));
        }
    }
    assert_eq!(daemon.stop(), Some(0));

    let all = runs(&p, &["flaky"]);
    assert_eq!(all.len(), 2 * N, "{all:#?}");
    let (retries, firsts): (Vec<&Value>, Vec<&Value>) =
        all.iter().partition(|r| field(r, "trigger") == "retry");
    assert_eq!((retries.len(), firsts.len()), (N, N));
    for run in &all {
        assert_eq!(field(run, "state"), "failed", "{run:#?}");
        assert_eq!(run["exit_code"], 1);
    }
    let mut retried: Vec<i64> = retries
        .iter()
        .map(|r| r["first_run_id"].as_i64().unwrap())
        .collect();
    retried.sort_unstable();
    let mut first_ids: Vec<i64> = firsts.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    first_ids.sort_unstable();
    assert_eq!(
        retried, first_ids,
        "each first attempt has exactly one retry"
    );
    let mut recorded: Vec<(i64, i64)> = retries
        .iter()
        .map(|r| {
            (
                r["first_run_id"].as_i64().unwrap(),
                r["id"].as_i64().unwrap(),
            )
        })
        .collect();
    recorded.sort_unstable();
    logged.sort_unstable();
    assert_eq!(logged, recorded, "the log names each run's own retry");
    for run in firsts {
        let events = p
            .run(&["run", "events", &run["id"].to_string(), "-o", "json"])
            .code(0)
            .json();
        let kinds: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| field(e, "kind"))
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "finished").count(),
            1,
            "{kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "retry").count(),
            1,
            "{kinds:?}"
        );
    }
}

#[test]
fn parameters_are_substituted_into_command_elements_and_env_verbatim() {
    let p = Project::new().file(
        "jobs.d/greet.yaml",
        "command: [\"printf\", \"[%s]|[%s]|[%s]\", \"{{ params.msg }}\", \"x{{params.who}}y\", \"{{ params.msg }}\"]\nparams:\n  msg: {required: true}\n  who: {default: world}\n",
    )
    .file(
        "jobs.d/envy.yaml",
        "command: [\"sh\", \"-c\", \"printf '<%s>' \\\"$GREETING\\\"\"]\nenv:\n  GREETING: \"hi {{ params.msg }}!\"\nparams:\n  msg: {required: true}\n",
    );
    p.run(&["apply"]).code(0);
    // Spaces, quotes, a newline and a command substitution arrive as one argument, untouched.
    let nasty = "a b \"c\" 'd'\n$(echo pwned) ;rm -rf /";
    let out = p
        .run(&["run", "greet", "--param", &format!("msg={nasty}")])
        .code(0);
    // (Output is recorded and echoed line by line, so the last line gains its newline.)
    assert_eq!(out.stdout, format!("[{nasty}]|[xworldy]|[{nasty}]\n"));
    let out = p
        .run(&["run", "envy", "--param", &format!("msg={nasty}")])
        .code(0);
    assert_eq!(out.stdout, format!("<hi {nasty}!>\n"));
    let runs = runs(&p, &["greet"]);
    assert_eq!(
        runs[0]["params"]["msg"], nasty,
        "the run records its parameters"
    );
}

/// Issue 14: the daemon starts a run's process itself (`posix_spawn` from an environment
/// prepared once, the program looked up on the run's own `PATH`), and the process sees what
/// std's `Command` gave it: its `argv[0]`, the daemon's variables but the scrubbed ones, the
/// job's over them, its folder, stdin from /dev/null, a group of its own, no blocked signal
/// and `SIGPIPE` at its default. A missing program fails the run with the same error.
#[test]
fn a_run_sees_the_process_environment_std_gave_it_and_a_missing_program_fails_it() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    let bin = p.path("bin");
    p.write("bin/mytool", "#!/bin/sh\necho \"mytool ran\"\n");
    std::fs::set_permissions(bin.join("mytool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let look = format!(
        "env:\n  OVERRIDDEN: job\n  PATH: \"{}:/usr/bin:/bin\"\nrun: |\n  \
         echo \"argv0=$0\"\n  \
         echo \"inherited=$INHERITED overridden=$OVERRIDDEN secret=${{JOBS_SECRET_X:-none}}\"\n  \
         echo \"cwd=$(pwd)\"\n  \
         echo \"stdin=$(readlink /proc/$$/fd/0)\"\n  \
         echo \"own group=$(( $(cut -d' ' -f5 /proc/$$/stat) == $$ ))\"\n  \
         echo \"blocked=$(awk '/^SigBlk/ {{print $2}}' /proc/$$/status)\"\n  \
         echo \"pipe ignored=$(( 0x$(awk '/^SigIgn/ {{print $2}}' /proc/$$/status) >> 12 & 1 ))\"\n  \
         mytool\n",
        bin.display()
    );
    let p = p
        .file("jobs.d/look.yaml", look)
        .file(
            "jobs.d/missing.yaml",
            "command: [\"no-such-program-for-jobs\"]\n",
        )
        .file(
            "jobs.d/missing-path.yaml",
            "command: [\"./no-such-script.sh\"]\n",
        );
    let mut daemon = p.serve_env(
        &[],
        None,
        &[
            ("INHERITED", "daemon"),
            ("OVERRIDDEN", "daemon"),
            ("JOBS_SECRET_X", "s3cret"),
        ],
    );
    daemon.wait_for("reconciled", &[]);
    for job in ["look", "missing", "missing-path"] {
        p.run_live(&["trigger", job]).code(0);
        wait_run_end(&mut daemon, job);
    }
    let dir = p.root().canonicalize().unwrap();
    let run = &runs(&p, &["look"])[0];
    assert_eq!(field(run, "state"), "succeeded", "{run}");
    let logs = p.run_live(&["logs", &run["id"].to_string()]).code(0);
    for line in [
        "argv0=sh".to_string(),
        "inherited=daemon overridden=job secret=none".to_string(),
        format!("cwd={}", dir.display()),
        "stdin=/dev/null".to_string(),
        "own group=1".to_string(),
        "blocked=0000000000000000".to_string(),
        "pipe ignored=0".to_string(),
        "mytool ran".to_string(),
    ] {
        assert!(logs.stdout.contains(&line), "{line:?} in {}", logs.stdout);
    }
    for (job, program) in [
        ("missing", "no-such-program-for-jobs"),
        ("missing-path", "./no-such-script.sh"),
    ] {
        let run = &runs(&p, &[job])[0];
        assert_eq!(field(run, "state"), "failed", "{run}");
        assert_eq!(
            field(run, "error"),
            format!(
                "cannot start `{program}` in {}: No such file or directory (os error 2)",
                p.root().join(".").display()
            ),
            "{run}"
        );
    }
    assert_eq!(daemon.stop(), Some(0));
}

/// Issue 14: a daemon whose lease another daemon took no longer exits from inside the
/// scheduler (`process::exit` left its runs and notifications behind): it stops in order,
/// its runs stopped and recorded, and exits 1 saying why.
#[test]
fn a_daemon_that_lost_its_lease_stops_its_runs_and_exits_1() {
    let p = Project::new().file("jobs.d/tick.yaml", "schedule: {every: 1s}\nrun: sleep 60\n");
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&["--kill-grace", "1s"], Some(T0));
    let started = daemon.wait_for("process started", &[("job", "tick")]);
    let pid = started["pid"].as_i64().unwrap() as i32;
    // Another daemon takes the lease, as one would after this one looked dead; this one
    // learns it at its next slot (every second).
    p.sql("UPDATE leases SET epoch = epoch + 1, holder = 'elsewhere' WHERE name = 'daemon'");
    if p.ledger_url.is_some() {
        // On PostgreSQL the deposed leader steps down and follows: a node of the cluster,
        // its run goes on (tests/cluster.rs follows what comes next).
        daemon.wait_for("this node follows", &[]);
        assert!(alive(pid), "the run's process goes on");
        return;
    }
    daemon.wait_for("shutting down", &[("signal", "the lease was lost")]);
    assert_eq!(daemon.wait(), Some(1));
    let said: String = daemon.seen.iter().map(ToString::to_string).collect();
    assert!(said.contains("another daemon took over"), "{said}");
    assert!(said.contains("was taken over by another daemon"), "{said}");
    assert!(!alive(pid), "the run's process was stopped");
    let all = runs(&p, &["tick", "--state", "cancelled"]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        field(&all[0], "error").contains("the daemon shut down (the lease was lost)"),
        "{all:?}"
    );
    // Not given back: the lease is the other daemon's.
    assert_eq!(
        p.sql("SELECT holder FROM leases WHERE name = 'daemon'"),
        "elsewhere"
    );
}

#[test]
fn a_burst_through_the_concurrency_limit_never_runs_more_than_the_limit() {
    // Issue 14: a run's end hands its place to the next pending run in the same transaction.
    // The places it frees must never let more than the limit run at once, and every run
    // must start and end exactly once.
    const N: usize = 12;
    const LIMIT: usize = 3;
    let p = Project::new().file(
        "jobs.d/quick.yaml",
        "command: [\"true\"]\nconcurrency: allow\n",
    );
    p.run(&["apply"]).code(0);
    for _ in 0..N {
        p.run(&["trigger", "quick"]).code(0);
    }
    let mut daemon = p.serve(&["--max-concurrent-runs", &LIMIT.to_string()], None);
    for _ in 0..N {
        wait_run_end(&mut daemon, "quick");
    }
    assert_eq!(daemon.stop(), Some(0));

    let all = runs(&p, &["quick"]);
    assert_eq!(all.len(), N, "{all:#?}");
    // Each run occupies its place from `started_at` up to (not including) `finished_at`: the
    // run that takes a freed place is stamped at or after the end that freed it.
    let mut edges: Vec<(String, i32)> = Vec::new();
    for run in &all {
        assert_eq!(field(run, "state"), "succeeded", "{run:#?}");
        edges.push((field(run, "started_at").to_string(), 1));
        edges.push((field(run, "finished_at").to_string(), -1));
    }
    // Ends before starts at the same instant (stamps have a fixed width: text order is time
    // order).
    edges.sort();
    let (mut running, mut most) = (0, 0);
    for (_, step) in &edges {
        running += step;
        most = most.max(running);
    }
    assert!(
        most as usize <= LIMIT,
        "{most} runs at once with a limit of {LIMIT}: {edges:?}"
    );
}
