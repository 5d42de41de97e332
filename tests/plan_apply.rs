//! `jobctl plan` and `jobctl apply` through the binary: what changes, what does not, and that a bad
//! file never changes the ledger.

mod common;

use common::{Project, job};

fn project() -> Project {
    Project::new()
        .file("jobs.d/backup.yaml", "# nightly\nschedule: \"30 2 * * *\"\ntimezone: Europe/Berlin\ncommand: [backup, --all]\n")
        .file("jobs.d/health.yaml", "schedule: {every: 90s}\ncommand: [curl, localhost]\n")
        .file("jobs.d/old.yaml", job("@hourly"))
}

#[test]
fn a_first_plan_adds_everything_and_writes_nothing() {
    let p = project();
    p.run(&["plan"])
        .code(0)
        .stdout_has("+ backup  (jobs.d/backup.yaml)")
        .stdout_has("+   cron: 30 2 * * *")
        .stdout_has("next: 2026-11-01T02:30:00+01:00, 2026-11-02T02:30:00+01:00")
        .stdout_has("Plan: 3 to add, 0 to change, 0 to remove, 0 unchanged.");
    assert!(!p.path(".jobs").exists(), "plan must not create the ledger");
    p.run(&["plan", "--detailed-exitcode"]).code(2);
    p.run(&["apply", "--dry-run", "--detailed-exitcode"])
        .code(2);
    assert!(
        !p.path(".jobs").exists(),
        "a dry run must not create the ledger"
    );
}

#[test]
fn apply_then_plan_shows_no_changes() {
    let p = project();
    p.run(&["apply"])
        .code(0)
        .stdout_has("Apply complete: 3 added, 0 changed, 0 removed");
    assert!(p.path(".jobs/ledger.db").exists());
    p.run(&["plan", "--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The ledger matches the files (3 unchanged).");
    p.run(&["apply"]).code(0).stdout_has("No changes.");
}

#[test]
fn comments_key_order_and_equivalent_values_are_no_change() {
    let p = project();
    p.run(&["apply"]).code(0);
    p.write(
        "jobs.d/backup.yaml",
        "command: [\"backup\", '--all']   # reordered, requoted\ntimezone: Europe/Berlin\nschedule: {cron: 30 2 * * *}\nenabled: true\nconcurrency: forbid\n",
    );
    p.write(
        "jobs.d/health.yaml",
        "command: [curl, localhost]\nschedule:\n  every: 1m 30s\n",
    );
    p.run(&["plan", "--detailed-exitcode"])
        .code(0)
        .stdout_has("3 unchanged");
}

#[test]
fn an_http_request_is_planned_in_its_normal_form() {
    let p = Project::new().file(
        "jobs.d/probe.yaml",
        "http:\n  url: https://example.com/health\n  headers: {Accept: text/plain}\n",
    );
    p.run(&["apply"]).code(0);
    // The same request written otherwise: the method's and the headers' case, the defaults
    // spelled out, a status list of one.
    p.write(
        "jobs.d/probe.yaml",
        "http:\n  method: get\n  headers: {accept: text/plain}\n  expect: 2xx\n  url: https://example.com/health\n",
    );
    p.run(&["plan", "--detailed-exitcode"])
        .code(0)
        .stdout_has("1 unchanged");
    p.write(
        "jobs.d/probe.yaml",
        "http:\n  method: POST\n  url: https://example.com/health\n  headers: {Accept: text/plain}\n  body: {deep: true}\n  expect: [200, 503]\n",
    );
    p.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("+  method: POST")
        .stdout_has("+  body:")
        .stdout_has("+    deep: true")
        .stdout_has("+  - 503");
}

#[test]
fn a_change_shows_a_diff_and_the_next_fires_before_and_after() {
    let p = project();
    p.run(&["apply"]).code(0);
    p.write(
        "jobs.d/backup.yaml",
        "schedule: \"30 1 * * *\"\ntimezone: America/New_York\ncommand: [backup, --all]\n",
    );
    p.remove("jobs.d/old.yaml");
    p.write("jobs.d/new.toml", "command = [\"x\"]\n");
    p.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("~ backup  (jobs.d/backup.yaml)")
        .stdout_has("--- applied (revision 1)")
        .stdout_has("+++ jobs.d/backup.yaml")
        .stdout_has("-  cron: 30 2 * * *")
        .stdout_has("+  cron: 30 1 * * *")
        .stdout_has("-timezone: Europe/Berlin")
        .stdout_has("+timezone: America/New_York")
        .stdout_has("next before: 2026-11-01T02:30:00+01:00")
        .stdout_has("next after:  2026-11-01T01:30:00-04:00, 2026-11-02T01:30:00-05:00")
        .stdout_has(
            "note: 2026-11-01: 01:30 happens twice (clocks go back); fires once, at the first",
        )
        .stdout_has("- old  (no longer in old.yaml; its history keeps 0 runs)")
        .stdout_has("+ new  (jobs.d/new.toml)")
        .stdout_has("Plan: 1 to add, 1 to change, 1 to remove, 1 unchanged.");
    p.run(&["apply"])
        .code(0)
        .stdout_has("Apply complete: 1 added, 1 changed, 1 removed");
    p.run(&["list", "--all"]).code(0).stdout_has("removed");
    p.run(&["get", "backup"])
        .code(0)
        .stdout_has("Revision:     2 of 2");
}

#[test]
fn plan_json_has_the_documented_shape() {
    let p = project();
    p.run(&["apply"]).code(0);
    p.write(
        "jobs.d/health.yaml",
        "schedule: {every: 5m}\ncommand: [curl, localhost]\n",
    );
    let run = p.run(&["plan", "--output", "json"]).code(0);
    let v = run.json();
    assert_eq!(v["format_version"], "1");
    assert_eq!(
        v["summary"],
        serde_json::json!({"add": 0, "change": 1, "remove": 0, "unchanged": 2})
    );
    let change = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "health")
        .unwrap();
    assert_eq!(change["action"], "change");
    assert_eq!(change["file"], "jobs.d/health.yaml");
    assert!(change["before"].as_str().unwrap().contains("every: 1m 30s"));
    assert!(change["after"].as_str().unwrap().contains("every: 5m"));
    assert!(change["diff"].as_str().unwrap().contains("+  every: 5m"));
    // Applied at NOW; 90 s intervals from then, and 5 min from the new apply.
    assert_eq!(change["next_before"][0], "2026-10-31T12:01:30+00:00");
    assert_eq!(change["next_after"][0], "2026-10-31T12:05:00+00:00");
}

#[test]
fn an_invalid_file_applies_nothing_and_keeps_the_job() {
    let p = project();
    p.run(&["apply"]).code(0);
    p.write(
        "jobs.d/backup.yaml",
        "schedule: \"30 2 * * *\"\ncomand: [backup]\n",
    );
    p.write("jobs.d/brand-new.yaml", job("@daily"));
    p.run(&["apply"])
        .code(1)
        .stderr_has("jobs.d/backup.yaml:2:1")
        .stderr_has("did you mean `command`?")
        .stderr_has("nothing was applied");
    let v = p.run(&["list", "--output", "json"]).code(0).json();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["backup", "health", "old"]);
    assert_eq!(v[0]["revision"], 1);
}

#[test]
fn an_invalid_folder_does_not_even_create_the_ledger() {
    let p = Project::new().file("jobs.d/a.yaml", "nope: 1\n");
    p.run(&["apply"]).code(1);
    assert!(!p.path(".jobs").exists());
}

#[test]
fn apply_records_the_git_commit() {
    let p = project();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(p.root())
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
        String::from_utf8(status.stdout).unwrap()
    };
    git(&["init", "-q"]);
    git(&["add", "jobs.d"]);
    git(&["commit", "-qm", "jobs"]);
    let head = git(&["rev-parse", "HEAD"]).trim().to_string();
    p.run(&["apply"])
        .code(0)
        .stdout_has(&format!("(from commit {})", &head[..12]));
    let v = p.run(&["get", "backup", "--output", "json"]).code(0).json();
    assert_eq!(v["git_commit"], head);
    assert_eq!(v["git_dirty"], false);
}

#[test]
fn list_get_and_next_read_the_ledger() {
    let p = project().file("jobs.d/tagged.yaml", "schedule: \"0 9 * * mon-fri\"\ntimezone: America/New_York\ncommand: [x]\ntags: [team-a]\ndescription: Morning report\n");
    p.run(&["list"]).code(0).stderr_has("No jobs applied yet");
    p.run(&["apply"]).code(0);
    p.run(&["list"])
        .code(0)
        .stdout_has("NAME")
        .stdout_has("backup")
        .stdout_has("2026-11-01 02:30 (in 13h 30m)")
        .stdout_has("every 1m 30s");
    let v = p
        .run(&["list", "--tag", "team-a", "-o", "json"])
        .code(0)
        .json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let j = &v[0];
    for key in [
        "name",
        "schedule",
        "timezone",
        "next_fire",
        "enabled",
        "revision",
        "file",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    assert_eq!(j["next_fire"], "2026-11-02T09:00:00-05:00");
    assert_eq!(j["file"], "tagged.yaml");
    p.run(&["get", "tagged"])
        .code(0)
        .stdout_has("Morning report")
        .stdout_has("At 09:00")
        .stdout_has("2026-11-02T09:00:00-05:00")
        .stdout_has("Definition:");
    p.run(&["get", "nope"]).code(1).stderr_has("no job `nope`");
    let v = p
        .run(&["next", "tagged", "-n", "2", "-o", "json"])
        .code(0)
        .json();
    assert_eq!(
        v["next"],
        serde_json::json!(["2026-11-02T09:00:00-05:00", "2026-11-03T09:00:00-05:00"])
    );
    // A job not applied yet is answered from the files.
    p.write("jobs.d/later.yaml", job("0 0 1 * *"));
    p.run(&["next", "later", "-n", "1"])
        .code(0)
        .stdout_has("2026-11-01T00:00:00+00:00");
}

#[test]
fn an_applied_every_job_counts_from_its_apply() {
    let p = project();
    p.run(&["apply"]).code(0);
    let v = p
        .run_with(
            &["next", "health", "-n", "2", "-o", "json"],
            &[("JOBS_NOW", "2026-10-31T12:02:00Z")],
        )
        .code(0)
        .json();
    assert_eq!(
        v["next"],
        serde_json::json!(["2026-10-31T12:03:00+00:00", "2026-10-31T12:04:30+00:00"])
    );
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let p = Project::new();
    for i in 0..2000 {
        p.write(&format!("jobs.d/j{i}.yaml"), job("@daily"));
    }
    p.run(&["apply"]).code(0);
    let bin = assert_cmd::cargo::cargo_bin("jobctl");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' list | head -1", bin.display()))
        .current_dir(p.root())
        .env("JOBS_NOW", common::NOW)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("NAME"));
}

/// `jobctl plan --out FILE` then `jobctl apply FILE`: exactly that plan, or a refusal naming
/// what moved in the files or the ledger; and the same through a server.
#[test]
fn a_saved_plan_applies_exactly_or_names_what_moved() {
    const ADMIN: &str = "saved-plan-admin-token-0123456789";
    const READER: &str = "saved-plan-read-token-0123456789";
    let p = project().file("tokens", format!("admin {ADMIN}\nread {READER}\n"));
    p.run(&["apply"]).code(0);
    p.write(
        "jobs.d/health.yaml",
        "schedule: {every: 2m}\ncommand: [curl, localhost]\n",
    );
    p.write("jobs.d/new.yaml", job("@daily"));
    p.run(&["plan", "--out", "plan.json"])
        .code(0)
        .stdout_has("~ health")
        .stdout_has("+ new")
        .stdout_has("Saved this plan to plan.json");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(p.path("plan.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "it holds every job file's text");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path("plan.json")).unwrap()).unwrap();
    assert_eq!(saved["format"], "jobctl-saved-plan/1");
    assert_eq!(saved["ledger"]["health"]["revision"], 1);
    assert!(saved["files"]["new.yaml"]["sha256"].as_str().unwrap().len() == 64);
    p.run(&["apply", "plan.json"])
        .code(0)
        .stdout_has("Apply complete: 1 added, 1 changed, 0 removed");
    assert_eq!(
        p.sql("SELECT count(*) FROM revisions WHERE job = 'health'"),
        "2"
    );

    // The ledger moved: another apply landed after the plan was saved.
    p.write("jobs.d/old.yaml", job("@weekly"));
    p.run(&["plan", "--out", "stale.json"]).code(0);
    p.run(&["apply"]).code(0);
    p.run(&["apply", "stale.json"])
        .code(1)
        .stderr_has(
            "the ledger changed since the plan in stale.json was made, so it was not applied",
        )
        .stderr_has("job `old` is at revision 2; the plan saw revision 1")
        .stderr_has("jobctl plan --out stale.json");

    // The files moved: one edited, one added after the plan.
    p.write("jobs.d/backup.yaml", job("@monthly"));
    p.run(&["plan", "--out", "files.json"]).code(0);
    p.write("jobs.d/backup.yaml", job("@yearly"));
    p.write("jobs.d/extra.yaml", job("@daily"));
    p.run(&["apply", "files.json"])
        .code(1)
        .stderr_has("the files changed since the plan in files.json was made")
        .stderr_has("jobs.d/backup.yaml changed")
        .stderr_has("jobs.d/extra.yaml is new");
    assert_eq!(
        p.sql("SELECT count(*) FROM revisions WHERE job = 'backup'"),
        "1",
        "nothing was applied"
    );
    p.write("junk.json", "{\"format\": \"jobctl-saved-plan/7\"}");
    p.run(&["apply", "junk.json"])
        .code(1)
        .stderr_has("format `jobctl-saved-plan/7`");
    p.run(&["apply", "files.json", "--dry-run"]).code(2);
    p.remove("jobs.d/extra.yaml");

    // Through a server: the plan saved by the server, applied there after review.
    let mut daemon = p.serve(&["--token-file", "tokens", "--no-apply"], None);
    let url = daemon.url();
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["--server", &url, "--token", token];
        all.extend_from_slice(args);
        p.run_live(&all)
    };
    remote(READER, &["plan", "--out", "remote.json"])
        .code(0)
        .stdout_has("~ backup")
        .stdout_has("Saved this plan to remote.json");
    remote(READER, &["apply", "remote.json"])
        .code(1)
        .stderr_has("admin");
    remote(ADMIN, &["apply", "remote.json"])
        .code(0)
        .stdout_has("Apply complete: 0 added, 1 changed, 0 removed");
    assert_eq!(
        p.sql("SELECT count(*) FROM revisions WHERE job = 'backup'"),
        "2"
    );
    // Applied once: the ledger moved past it.
    remote(ADMIN, &["apply", "remote.json"])
        .code(1)
        .stderr_has("job `backup` is at revision 2; the plan saw revision 1");
    assert_eq!(daemon.stop(), Some(0));
}
