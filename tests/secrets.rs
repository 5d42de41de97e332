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
