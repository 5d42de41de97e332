//! What a job's process inherits: never the daemon's own settings and tokens, never the
//! variables that hold webhook secrets (issue 13, "Secrets kept").

mod common;

use common::Project;

#[test]
fn a_jobs_environment_holds_no_token_and_no_webhook_secret() {
    let token = "admin-token-never-in-a-job-0123";
    let p = Project::new().file("jobs.d/dump.yaml", "run: env\n").file(
        "jobs.d/hook.yaml",
        "command: [\"true\"]\nwebhook: {secret_env: HOOK_SECRET}\n",
    );
    let mut daemon = p.serve_env(
        &[],
        None,
        &[
            ("JOBS_TOKEN", token),
            ("HOOK_SECRET", "webhook-secret-value"),
            ("JOBS_LOG_FORMAT", "json"),
            ("SOMETHING_ORDINARY", "kept"),
        ],
    );
    daemon.wait_for("scheduler started", &[]);
    p.run_live(&["trigger", "dump"]).code(0);
    let ended = daemon.wait_for("run ended", &[("job", "dump")]);
    assert_eq!(ended["state"], "succeeded");
    let id = ended["run"].to_string();
    let env = p.run_live(&["logs", &id]).code(0).stdout;
    assert!(
        !env.contains(token),
        "the admin token reached the job:\n{env}"
    );
    assert!(
        !env.contains("webhook-secret-value"),
        "a webhook secret reached the job:\n{env}"
    );
    assert!(
        !env.contains("JOBS_LOG_FORMAT"),
        "a daemon setting reached the job:\n{env}"
    );
    // What the README promises is there, and the rest of the environment is inherited.
    for expected in [
        "JOBS_RUN_ID=",
        "JOBS_JOB=dump",
        "SOMETHING_ORDINARY=kept",
        "PATH=",
    ] {
        assert!(env.contains(expected), "{expected} is missing:\n{env}");
    }
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_token_file_others_can_read_is_refused_unless_insecure() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new()
        .file("jobs.d/a.yaml", common::job("@daily"))
        .file("tokens", "admin admin-token-0123456789abcdef\n");
    std::fs::set_permissions(p.path("tokens"), std::fs::Permissions::from_mode(0o644)).unwrap();
    p.run(&["serve", "--listen", "127.0.0.1:0", "--token-file", "tokens"])
        .code(1)
        .stderr_has("can be read or written by others (mode 644)")
        .stderr_has("chmod 600 tokens");
    let mut daemon = p.serve(&["--token-file", "tokens", "--insecure"], None);
    daemon.wait_for("can be read or written by others", &[]);
    daemon.wait_for("scheduler started", &[]);
    assert_eq!(daemon.stop(), Some(0));
}

/// Under systemd, cron or a container `$USER` is unset: actions are recorded under the uid's
/// name, not `unknown`.
#[test]
fn without_user_an_action_is_recorded_under_the_uids_name() {
    let p = Project::new().file("jobs.d/a.yaml", common::job("@daily"));
    p.run(&["apply"]).code(0);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("jobctl"))
        .args(["pause", "a", "--reason", "test"])
        .current_dir(p.root())
        .env("JOBS_NOW", common::NOW)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let job = p.run(&["get", "a", "-o", "json"]).code(0).json();
    let by = job["paused"]["by"].as_str().unwrap().to_string();
    assert!(!by.starts_with("unknown@"), "{by}");
    // SAFETY: getuid has no failure and no memory effects.
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        assert!(by.starts_with("root@"), "{by}");
    }
}

/// The names a run must not inherit are computed once, not at every spawn, and computed again
/// when the jobs change: a variable that becomes a webhook's secret is inherited by the runs
/// before that change and by none after it.
#[test]
fn a_variable_that_becomes_a_webhook_secret_is_no_longer_inherited() {
    let secret = "soon-a-webhook-secret-value";
    let p = Project::new().file("jobs.d/dump.yaml", "run: env\n");
    let mut daemon = p.serve_env(&[], None, &[("HOOK_SECRET", secret), ("JOBS_LOG", "debug")]);
    daemon.wait_for("scheduler started", &[]);
    let env_of_a_run = |daemon: &mut common::Daemon| {
        p.run_live(&["trigger", "dump"]).code(0);
        let ended = daemon.wait_for("run ended", &[("job", "dump")]);
        assert_eq!(ended["state"], "succeeded");
        p.run_live(&["logs", &ended["run"].to_string()])
            .code(0)
            .stdout
    };
    let before = env_of_a_run(&mut daemon);
    assert!(
        before.contains(secret),
        "an ordinary variable is inherited:\n{before}"
    );
    p.write(
        "jobs.d/hook.yaml",
        "command: [\"true\"]\nwebhook: {secret_env: HOOK_SECRET}\n",
    );
    daemon.wait_for("reconciled: applied 1 added", &[]);
    daemon.wait_for("scheduler reloaded", &[]);
    let after = env_of_a_run(&mut daemon);
    assert!(
        !after.contains(secret),
        "a webhook secret reached the job:\n{after}"
    );
    assert_eq!(daemon.stop(), Some(0));
}
