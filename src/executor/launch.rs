//! A run's launch: its environment, its action with parameters filled in, where it starts.

use std::collections::BTreeMap;

use crate::ledger::RunRow;
use crate::spec::{self, JobSpec};

/// The folder holding `jobs_dir`, absolute (symlinks kept: a `jobs.d` link switched between
/// releases still runs jobs in the folder that holds the link).
pub fn base_dir(jobs_dir: &std::path::Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(jobs_dir).unwrap_or_else(|_| jobs_dir.to_path_buf());
    match absolute.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => absolute,
    }
}

/// The environment of a run: the job's `env`, its parameters as `JOBS_PARAM_NAME`, and the
/// run's identity.
pub fn run_env(spec: &JobSpec, run: &RunRow) -> BTreeMap<String, String> {
    let values = param_values(spec, run);
    let mut env: BTreeMap<String, String> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), crate::template::render(v, &values)))
        .collect();
    for (name, value) in &values {
        env.insert(crate::template::param_env_var(name), value.clone());
    }
    env.insert("JOBS_JOB".into(), run.job.clone());
    env.insert("JOBS_RUN_ID".into(), run.id.to_string());
    env.insert(
        "JOBS_SCHEDULED_AT".into(),
        run.scheduled_at
            .map(crate::ledger::stamp)
            .unwrap_or_default(),
    );
    env.insert("JOBS_ATTEMPT".into(), run.attempt.to_string());
    env
}

/// A run's parameter values: those given, else the declared defaults.
fn param_values(spec: &JobSpec, run: &RunRow) -> BTreeMap<String, String> {
    spec.params
        .iter()
        .filter_map(|(name, param)| {
            let given = run
                .params
                .as_ref()
                .and_then(|p| p.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            given
                .or_else(|| param.default.clone())
                .map(|value| (name.clone(), value))
        })
        .collect()
}

/// The job's action for this run: `{{ params.NAME }}` substituted in each `command` element
/// (which stays one argv element); a `run` script as written.
pub fn run_action(spec: &JobSpec, run: &RunRow) -> spec::Action {
    match &spec.action {
        spec::Action::Command(argv) => {
            let values = param_values(spec, run);
            spec::Action::Command(
                argv.iter()
                    .map(|a| crate::template::render(a, &values))
                    .collect(),
            )
        }
        script => script.clone(),
    }
}
