//! Workflows end to end: `after` fan-ins, `depends_on` gates, `repeat`, the job lifecycle,
//! notifications and `jobctl graph`, through the binary with a running daemon.
//!
//! The daemon's clock starts at a fixed instant (`JOBS_NOW`) and runs at real speed; the CLI's
//! stays at that instant. Tests wait for what the daemon logs, never by sleeping.

mod common;

use common::{Daemon, Project};
use serde_json::Value;

const T0: &str = "2026-10-31T12:00:00Z";

fn runs(p: &Project, job: &str) -> Vec<Value> {
    let mut all = p
        .run(&["runs", job, "-o", "json", "--limit", "1000"])
        .code(0)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default();
    all.reverse(); // oldest first
    all
}

fn jobs(p: &Project) -> Vec<Value> {
    p.run(&["list", "-o", "json"])
        .code(0)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn job_of<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {all:?}"))
}

fn ended(daemon: &mut Daemon, job: &str) -> Value {
    daemon.wait_for("run ended", &[("job", job)])
}

fn started(p: &Project) -> Daemon {
    let mut daemon = p.serve(&[], Some(T0));
    daemon.wait_for("scheduler started", &[]);
    daemon
}

#[test]
fn a_chain_runs_in_order_each_released_by_its_upstream() {
    let p = Project::new()
        .file("jobs.d/a.yaml", "command: [true]\n")
        .file("jobs.d/b.yaml", "schedule: {after: [a]}\ncommand: [true]\n")
        .file("jobs.d/c.yaml", "schedule: {after: [b]}\ncommand: [true]\n");
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    p.run(&["trigger", "a"]).code(0);
    ended(&mut daemon, "c");
    assert_eq!(daemon.stop(), Some(0));

    let (a, b, c) = (&runs(&p, "a")[0], &runs(&p, "b"), &runs(&p, "c"));
    assert_eq!((b.len(), c.len()), (1, 1), "{b:?} {c:?}");
    let (b, c) = (&b[0], &c[0]);
    for run in [b, c] {
        assert_eq!(run["trigger"], "dependency");
        assert_eq!(run["state"], "succeeded");
    }
    assert_eq!(
        b["released_by"],
        serde_json::json!([{"job": "a", "run": a["id"]}])
    );
    assert_eq!(
        c["released_by"],
        serde_json::json!([{"job": "b", "run": b["id"]}])
    );
    let at = |r: &Value, k: &str| r[k].as_str().unwrap().to_string();
    assert!(at(a, "finished_at") <= at(b, "started_at"));
    assert!(at(b, "finished_at") <= at(c, "started_at"));
    p.run(&["run", "get", &b["id"].to_string()])
        .code(0)
        .stdout_has(&format!("a (run {})", a["id"]));
}

#[test]
fn a_fan_in_fires_once_every_upstream_has_succeeded_since_its_last_fire() {
    let p = Project::new()
        .file("jobs.d/x.yaml", "command: [true]\n")
        .file("jobs.d/y.yaml", "command: [true]\n")
        .file(
            "jobs.d/z.yaml",
            "schedule: {after: [x, y]}\ncommand: [true]\n",
        );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    p.run(&["trigger", "x"]).code(0);
    ended(&mut daemon, "x");
    // The fan-in is decided in the transaction that wrote x's end: nothing yet.
    assert!(runs(&p, "z").is_empty());
    p.run(&["trigger", "y"]).code(0);
    ended(&mut daemon, "z");
    // A second success of x alone does not fire z again: y has not succeeded since.
    p.run(&["trigger", "x"]).code(0);
    ended(&mut daemon, "x");
    assert_eq!(daemon.stop(), Some(0));

    let z = runs(&p, "z");
    assert_eq!(z.len(), 1, "{z:?}");
    let released: Vec<&str> = z[0]["released_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(released, ["x", "y"]);
}

#[test]
fn a_gated_run_waits_blocked_and_starts_when_its_dependency_succeeds() {
    let p = Project::new()
        .file("jobs.d/check.yaml", "command: [true]\n")
        .file(
            "jobs.d/deploy.yaml",
            "depends_on: [check]\nparams: {branch: {default: main}}\ncommand: [echo, '{{ params.branch }}']\n",
        );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    p.run(&["trigger", "deploy", "--param", "branch=x"]).code(0);
    let blocked = runs(&p, "deploy");
    assert_eq!(blocked[0]["state"], "blocked", "{blocked:?}");
    assert_eq!(blocked[0]["reason"], "waiting for check");
    p.run(&["runs", "deploy"])
        .code(0)
        .stdout_has("blocked")
        .stdout_has("waiting for check");
    let all = jobs(&p);
    assert_eq!(job_of(&all, "deploy")["state"], "blocked");
    assert_eq!(job_of(&all, "deploy")["blocked"], "waiting for check");

    p.run(&["trigger", "check"]).code(0);
    ended(&mut daemon, "deploy");
    assert_eq!(daemon.stop(), Some(0));
    let deploy = &runs(&p, "deploy")[0];
    assert_eq!(deploy["state"], "succeeded");
    let check = &runs(&p, "check")[0];
    assert_eq!(
        deploy["released_by"],
        serde_json::json!([{"job": "check", "run": check["id"]}])
    );
    let id = deploy["id"].to_string();
    p.run(&["logs", &id]).code(0).stdout_has("x");
    p.run(&["run", "events", &id])
        .code(0)
        .stdout_has("waiting for check")
        .stdout_has("released by check");
    assert_eq!(job_of(&jobs(&p), "deploy")["state"], "active");
}

#[test]
fn a_gated_run_is_skipped_when_its_dependency_fails() {
    let p = Project::new()
        .file("jobs.d/check.yaml", "command: [false]\n")
        .file(
            "jobs.d/deploy.yaml",
            "depends_on: [check]\ncommand: [true]\n",
        );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    p.run(&["trigger", "deploy"]).code(0);
    p.run(&["trigger", "check"]).code(0);
    ended(&mut daemon, "check");
    assert_eq!(daemon.stop(), Some(0));
    let check = &runs(&p, "check")[0];
    let deploy = &runs(&p, "deploy")[0];
    assert_eq!(deploy["state"], "skipped");
    assert_eq!(
        deploy["reason"],
        format!("dependency check ended failed (run {})", check["id"])
    );
    let all = jobs(&p);
    assert_eq!(job_of(&all, "check")["failure_streak"], 1);
    assert_eq!(job_of(&all, "deploy")["state"], "active");
}

#[test]
fn a_blocked_run_is_skipped_when_its_starting_deadline_passes() {
    let p = Project::new()
        .file("jobs.d/check.yaml", "command: [true]\n")
        .file(
            "jobs.d/deploy.yaml",
            "depends_on: [check]\nstarting_deadline: 1s\ncommand: [true]\n",
        );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    p.run(&["trigger", "deploy"]).code(0);
    daemon.wait_for("dependencies resolved", &[("skipped", "1")]);
    assert_eq!(daemon.stop(), Some(0));
    let deploy = &runs(&p, "deploy")[0];
    assert_eq!(deploy["state"], "skipped");
    assert_eq!(
        deploy["reason"],
        "its starting deadline (1s) passed while waiting for check"
    );
}

#[test]
fn repeat_times_completes_the_job_and_a_new_revision_makes_it_active() {
    let p = Project::new().file(
        "jobs.d/remind.yaml",
        "schedule: {every: 1s}\nrepeat: {times: 2}\ncommand: [true]\n",
    );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    daemon.wait_for("the job has completed", &[("job", "remind")]);
    daemon.wait_for("run ended", &[("job", "remind"), ("run", "2")]);
    let all = jobs(&p);
    let remind = job_of(&all, "remind");
    assert_eq!(remind["state"], "completed");
    assert_eq!(remind["progress"], "2 of 2");
    assert_eq!(remind["next_fire"], Value::Null);
    p.run(&["list"]).code(0).stdout_has("completed 2 of 2");
    assert_eq!(runs(&p, "remind").len(), 2);

    // A new revision starts counting again. The daemon stops first: it would fire the new
    // revision every second, and a loaded machine could complete it again before it is read.
    assert_eq!(daemon.stop(), Some(0));
    p.write(
        "jobs.d/remind.yaml",
        "description: again\nschedule: {every: 1s}\nrepeat: {times: 2}\ncommand: [true]\n",
    );
    p.run(&["apply"]).code(0);
    let all = jobs(&p);
    assert_eq!(job_of(&all, "remind")["state"], "active");
    assert_eq!(job_of(&all, "remind")["progress"], "0 of 2");
}

#[test]
fn repeat_until_success_stops_after_the_first_success() {
    let p = Project::new().file(
        "jobs.d/poll.yaml",
        "schedule: {every: 1s}\nrepeat: {until: success}\n\
         run: n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 2 ]\n\
         working_dir: .\n",
    );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    daemon.wait_for("run ended", &[("job", "poll"), ("state", "failed")]);
    daemon.wait_for("the job has completed", &[("job", "poll")]);
    let all = jobs(&p);
    let poll = job_of(&all, "poll");
    assert_eq!(poll["state"], "completed");
    assert_eq!(poll["progress"], "succeeded after 2 runs");
    assert_eq!(poll["failure_streak"], 0);
    assert_eq!(daemon.stop(), Some(0));
    let states: Vec<String> = runs(&p, "poll")
        .iter()
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["failed", "succeeded"]);
}

#[test]
fn every_job_state_shows_in_list_and_get() {
    let p = Project::new()
        .file("jobs.d/plain.yaml", "command: [true]\n")
        .file("jobs.d/held.yaml", "command: [true]\n")
        .file("jobs.d/off.yaml", "enabled: false\ncommand: [true]\n")
        .file(
            "jobs.d/gated.yaml",
            "depends_on: [plain]\ncommand: [true]\n",
        )
        .file(
            "jobs.d/once.yaml",
            "schedule: {at: '2026-10-31T11:00:00Z'}\ncommand: [true]\n",
        )
        .file("jobs.d/gone.yaml", "command: [true]\n");
    p.run(&["apply"]).code(0);
    p.run(&["pause", "held"]).code(0);
    p.run(&["trigger", "gated"]).code(0);
    p.remove("jobs.d/gone.yaml");
    p.run(&["apply"]).code(0);
    let all = p
        .run(&["list", "--all", "-o", "json"])
        .code(0)
        .json()
        .as_array()
        .cloned()
        .unwrap();
    let state = |name: &str| job_of(&all, name)["state"].as_str().unwrap().to_string();
    assert_eq!(
        ["plain", "held", "off", "gated", "once", "gone"].map(state),
        [
            "active",
            "paused",
            "disabled",
            "blocked",
            "completed",
            "removed"
        ]
    );
    p.run(&["get", "gated"])
        .code(0)
        .stdout_has("blocked")
        .stdout_has("waiting for plain");
}

#[test]
fn a_fan_in_with_concurrency_replace_stops_its_running_run_when_it_fires_again() {
    let p = Project::new()
        .file("jobs.d/a.yaml", "command: [true]\n")
        .file(
            "jobs.d/slow.yaml",
            "schedule: {after: [a]}\nconcurrency: replace\nrun: sleep 30\n",
        );
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&["--kill-grace", "1s", "--shutdown-grace", "0s"], Some(T0));
    daemon.wait_for("scheduler started", &[]);
    p.run(&["trigger", "a"]).code(0);
    let first = daemon.wait_for("process started", &[("job", "slow")]);
    // The second fire is written with `a`'s end, and so is its request that the first run
    // stop: the daemon acts on it at once, not at its next look at the ledger.
    p.run(&["trigger", "a"]).code(0);
    let end = ended(&mut daemon, "slow");
    assert_eq!(
        (&end["run"], &end["state"]),
        (&first["run"], &"cancelled".into())
    );
    assert_eq!(daemon.stop(), Some(0));
    let slow = runs(&p, "slow");
    assert_eq!(slow.len(), 2, "{slow:?}");
    assert_eq!(slow[0]["id"], first["run"]);
    p.run_live(&["run", "events", &first["run"].to_string()])
        .code(0)
        .stdout_has("(concurrency: replace)");
}

#[test]
fn removing_a_job_others_depend_on_is_a_plan_error_naming_them() {
    let p = Project::new()
        .file("jobs.d/extract.yaml", "command: [true]\n")
        .file(
            "jobs.d/report.yaml",
            "schedule: {after: [extract]}\ncommand: [true]\n",
        );
    p.run(&["apply"]).code(0);
    p.remove("jobs.d/extract.yaml");
    p.run(&["plan"])
        .code(1)
        .stderr_has("report.yaml")
        .stderr_has("extract");
    p.run(&["apply"]).code(1);
    assert_eq!(job_of(&jobs(&p), "extract")["state"], "active");
}

#[test]
fn graph_prints_a_tree_dot_and_json() {
    let p = Project::new()
        .file(
            "jobs.d/extract.yaml",
            "schedule: '0 2 * * *'\ncommand: [true]\n",
        )
        .file(
            "jobs.d/report.yaml",
            "schedule: {after: [extract]}\ncommand: [true]\n",
        )
        .file(
            "jobs.d/deploy.yaml",
            "depends_on: [report]\ncommand: [true]\n",
        );
    p.run(&["graph"])
        .code(0)
        .stderr_has("No jobs applied yet; `jobctl apply` records them.");
    p.run(&["apply"]).code(0);
    p.run(&["list", "-o", "dot"])
        .code(1)
        .stderr_has("--output dot is only for `jobctl graph`; use --output table or json");
    p.run(&["graph"])
        .code(0)
        .stdout_has("extract  (0 2 * * *)\n└── report  (after)\n    └── deploy  (depends_on)\n");
    p.run(&["graph", "--output", "dot"])
        .code(0)
        .stdout_has("digraph jobs {")
        .stdout_has("\"extract\" -> \"report\";")
        .stdout_has("\"report\" -> \"deploy\" [style=dashed");
    let json = p.run(&["graph", "-o", "json"]).code(0).json();
    assert_eq!(
        json["edges"],
        serde_json::json!([
            {"from": "report", "to": "deploy", "kind": "depends_on"},
            {"from": "extract", "to": "report", "kind": "after"},
        ])
    );
    assert_eq!(json["jobs"].as_array().unwrap().len(), 3);
}

/// A local HTTP receiver: answers each request in turn with the next status of `statuses`
/// (then 200), and hands over each request's body.
fn receiver(statuses: &[u16]) -> (String, std::sync::mpsc::Receiver<(u16, Value)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hook?token=secret",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let statuses: Vec<u16> = statuses.to_vec();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = statuses.next().unwrap_or(200);
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if tx.send((status, body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn notifications_reach_a_webhook_with_retries_and_a_script_on_the_nth_failure() {
    let (url, requests) = receiver(&[500]);
    let p = Project::new().file(
        "jobs.d/backup.yaml",
        format!(
            "command: [false]\n\
             on_failure:\n  - webhook: {url}\n  - run: echo \"$JOBS_JOB $JOBS_RUN_STATE $JOBS_FAILURE_STREAK\" >> notes\n    after: 2\n\
             on_success:\n  - run: echo ok >> notes\n\
             working_dir: .\n"
        ),
    );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    p.run(&["trigger", "backup"]).code(0);
    daemon.wait_for("on_failure webhook", &[("job", "backup"), ("run", "1")]);
    p.run(&["trigger", "backup"]).code(0);
    // Sent in the order written: the webhook, then the script.
    daemon.wait_for("on_failure webhook", &[("job", "backup"), ("run", "2")]);
    daemon.wait_for("on_failure run", &[("job", "backup"), ("run", "2")]);
    assert_eq!(daemon.stop(), Some(0));

    // The first POST was refused and retried; each carries the run's summary.
    let got: Vec<(u16, Value)> = requests.try_iter().collect();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [500, 200, 200]);
    let first = &got[0].1;
    assert_eq!(first["job"], "backup");
    assert_eq!(first["run_id"], 1);
    assert_eq!(first["state"], "failed");
    assert_eq!(first["exit_code"], 1);
    assert_eq!(first["event"], "on_failure");
    assert_eq!(got[2].1["failure_streak"], 2);
    // `after: 2`: the script ran on the second failure only.
    let notes = std::fs::read_to_string(p.path("notes")).unwrap();
    assert_eq!(notes, "backup failed 2\n");
    // The outcome is an event of the run, without the URL's query (it may carry a token).
    let events = p.run(&["run", "events", "1"]).code(0);
    assert!(
        events.stdout.contains("answered 200 after 2 attempts"),
        "{}",
        events.stdout
    );
    assert!(!events.stdout.contains("secret"), "{}", events.stdout);
    let all = jobs(&p);
    assert_eq!(job_of(&all, "backup")["failure_streak"], 2);
    // When it last failed: the second run's end, as the run records it.
    let runs = p.run(&["runs", "-o", "json"]).code(0).json();
    let second = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == 2)
        .unwrap();
    assert_eq!(
        job_of(&all, "backup")["last_failure_at"],
        second["finished_at"]
    );
    p.run(&["list"]).code(0).stdout_has("2 runs");
}

#[test]
fn a_failure_cascades_down_a_chain_of_gates() {
    let p = Project::new()
        .file("jobs.d/fetch.yaml", "command: [false]\n")
        .file(
            "jobs.d/build.yaml",
            "depends_on: [fetch]\ncommand: [true]\n",
        )
        .file("jobs.d/ship.yaml", "depends_on: [build]\ncommand: [true]\n");
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p);
    p.run(&["trigger", "ship"]).code(0);
    p.run(&["trigger", "build"]).code(0);
    p.run(&["trigger", "fetch"]).code(0);
    ended(&mut daemon, "fetch");
    assert_eq!(daemon.stop(), Some(0));
    let (build, ship) = (&runs(&p, "build")[0], &runs(&p, "ship")[0]);
    assert_eq!(build["state"], "skipped");
    assert_eq!(ship["state"], "skipped");
    assert_eq!(
        ship["reason"],
        format!("dependency build ended skipped (run {})", build["id"])
    );
}
