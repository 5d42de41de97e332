//! Nodes: each `jobctl serve` joins the ledger as a named node (`--node`, `--labels`), beats
//! while it lives, and records itself on the runs it runs; `jobctl status` lists the nodes.

mod common;

use common::Project;
use serde_json::Value;

const TOKEN: &str = "nodes-test-admin-token-0123";

fn project() -> Project {
    Project::new().file("jobs.d/hello.yaml", "command: [echo, hi]\n")
}

#[test]
fn a_node_joins_records_its_runs_and_shows_in_status_until_it_stops() {
    let p = project();
    let mut daemon = p.serve_env(
        &["--node", "alpha", "--labels", "gpu,eu,gpu"],
        None,
        &[("JOBS_TOKEN", TOKEN)],
    );
    let started = daemon.wait_for("jobs serve started", &[]);
    assert_eq!(started["node"], "alpha");
    assert_eq!(started["labels"], "eu,gpu");
    daemon.wait_for("reconciled", &[]);
    let queued = p.run_live(&["trigger", "hello"]).code(0);
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    daemon.wait_for("run ended", &[("run", &id)]);

    // The run records the node that ran it, in JSON and in `run get`.
    let run = p
        .run_live(&["run", "get", &id, "-o", "json"])
        .code(0)
        .json();
    assert_eq!(run["node"], "alpha", "{run}");
    p.run_live(&["run", "get", &id])
        .code(0)
        .stdout_has("Node")
        .stdout_has("alpha");

    // Status lists the node: its labels, address, that it is alive and leads, with the
    // lease's term.
    let status = p.run_live(&["status", "-o", "json"]).code(0).json();
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{status}");
    let alpha = &nodes[0];
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(alpha["labels"], serde_json::json!(["eu", "gpu"]));
    assert_eq!(alpha["alive"], true, "{alpha}");
    assert_eq!(alpha["leader"], true, "{alpha}");
    assert_eq!(alpha["term"], status["daemon"]["epoch"], "{status}");
    assert_eq!(alpha["pid"], i64::from(daemon.pid()));
    assert!(
        alpha["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("http://127.0.0.1:")),
        "{alpha}"
    );
    p.run_live(&["status"])
        .code(0)
        .stdout_has("alpha [eu,gpu]  leader, term");
    // The API answers the same.
    let url = daemon.url();
    let api: Value = p
        .run_live(&["status", "-o", "json", "--server", &url, "--token", TOKEN])
        .code(0)
        .json();
    assert_eq!(api["nodes"][0]["name"], "alpha", "{api}");

    // Stopped: still listed (for an hour), no longer alive nor leading.
    assert_eq!(daemon.stop(), Some(0));
    let status = p.run_live(&["status", "-o", "json"]).code(3).json();
    let alpha = &status["nodes"][0];
    assert_eq!(alpha["alive"], false, "{alpha}");
    assert_eq!(alpha["leader"], false, "{alpha}");
    assert!(alpha["stopped_at"].is_string(), "{alpha}");
}

#[test]
fn without_node_the_name_is_the_host_and_pid() {
    let p = project();
    let mut daemon = p.serve(&[], None);
    let started = daemon.wait_for("jobs serve started", &[]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        started["node"],
        format!("{}-{}", host.trim(), daemon.pid()),
        "{started}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_node_name_or_label_that_is_not_a_name_is_refused() {
    let p = project();
    let cases = [
        (
            &["serve", "--node", "a b"][..],
            "--node: `a b` is not a name",
        ),
        (
            &["serve", "--labels", "gpu,e/u"][..],
            "--labels: `e/u` is not a name",
        ),
    ];
    for (args, message) in cases {
        p.run(args).code(1).stderr_has(message);
    }
}

/// Triggers `job`; the new run's id.
fn trigger(p: &Project, job: &str) -> String {
    let queued = p.run_live(&["trigger", job]).code(0);
    queued.stdout.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn a_job_runs_only_on_a_node_with_its_labels_and_says_why_it_waits() {
    let p = Project::new()
        .file(
            "jobs.d/train.yaml",
            "command: [echo, training]\nruns_on: [gpu]\n",
        )
        .file("jobs.d/hello.yaml", "command: [echo, hi]\n");
    // A node without the label: the run waits, pending, and says why; other jobs still run.
    let mut daemon = p.serve(&["--node", "cpu-1", "--labels", "eu"], None);
    daemon.wait_for("reconciled", &[]);
    let train = trigger(&p, "train");
    daemon.wait_for("run waiting for a node with labels gpu", &[("run", &train)]);
    let hello = trigger(&p, "hello");
    daemon.wait_for("run ended", &[("run", &hello)]);
    let run = p
        .run_live(&["run", "get", &train, "-o", "json"])
        .code(0)
        .json();
    assert_eq!(run["state"], "pending", "{run}");
    assert_eq!(run["reason"], "waiting for a node with labels gpu", "{run}");
    assert_eq!(daemon.stop(), Some(0));

    // A node with it runs it, and the reason goes.
    let mut daemon = p.serve(&["--node", "gpu-1", "--labels", "gpu,eu"], None);
    daemon.wait_for("run ended", &[("run", &train)]);
    let run = p
        .run_live(&["run", "get", &train, "-o", "json"])
        .code(0)
        .json();
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["node"], "gpu-1", "{run}");
    assert!(run["reason"].is_null(), "{run}");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn runs_on_is_checked_and_planned_like_any_field() {
    let p = Project::new().file(
        "jobs.d/train.yaml",
        "command: [echo, training]\nruns_on: [gpu, \"e u\", gpu]\n",
    );
    p.run(&["validate"])
        .code(1)
        .stderr_has("jobs.d/train.yaml:2:")
        .stderr_has("runs_on: `e u` is not a node label")
        .stderr_has("`gpu` is listed twice in runs_on");
    std::fs::write(
        p.path("jobs.d/train.yaml"),
        "command: [echo, training]\nruns_on: [gpu]\n",
    )
    .unwrap();
    p.run(&["apply"]).code(0);
    std::fs::write(
        p.path("jobs.d/train.yaml"),
        "command: [echo, training]\nruns_on: [gpu, eu]\n",
    )
    .unwrap();
    p.run(&["plan"])
        .code(0)
        .stdout_has("~ train")
        .stdout_has("     runs_on:\n     - gpu\n    +- eu\n");
}

#[test]
fn jobs_toml_names_and_labels_the_node_and_the_flags_win() {
    let p = project().file(
        "jobs.toml",
        "[daemon]\nnode = \"from-config\"\nlabels = [\"eu\", \"gpu\"]\n",
    );
    let mut daemon = p.serve(&[], None);
    let started = daemon.wait_for("jobs serve started", &[]);
    assert_eq!(
        (&started["node"], &started["labels"]),
        (&"from-config".into(), &"eu,gpu".into())
    );
    assert_eq!(daemon.stop(), Some(0));
    let mut daemon = p.serve(&["--node", "from-flag", "--labels", "ssd"], None);
    let started = daemon.wait_for("jobs serve started", &[]);
    assert_eq!(
        (&started["node"], &started["labels"]),
        (&"from-flag".into(), &"ssd".into())
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_node_started_with_no_apply_leaves_the_jobs_to_jobctl_apply() {
    let p = project();
    let mut daemon = p.serve(&["--node", "worker", "--no-apply"], None);
    daemon.wait_for("scheduler started", &[("jobs", "0")]);
    // Its folder is not applied, even though it leads.
    p.run_live(&["list", "-o", "json"]).code(0).stdout_has("[]");
    // CI applies; the daemon runs what it is given.
    p.run_live(&["apply"]).code(0).stdout_has("1 added");
    let queued = p.run_live(&["trigger", "hello"]).code(0);
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    daemon.wait_for("run ended", &[("run", &id), ("state", "succeeded")]);
    // A change in the folder is still not applied by it.
    p.write("jobs.d/other.yaml", "command: [echo, other]\n");
    p.run_live(&["plan"]).code(0).stdout_has("1 to add");
}
