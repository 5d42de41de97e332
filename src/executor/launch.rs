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
/// (which stays one argv element), in an `http` URL (percent-encoded), header and body (JSON
/// string escaping in a JSON body), and in a `prompt`'s messages; a `run` script as written.
pub fn run_action(spec: &JobSpec, run: &RunRow) -> spec::Action {
    let values = param_values(spec, run);
    let render = |text: &str| crate::template::render(text, &values);
    match &spec.action {
        spec::Action::Command(argv) => {
            spec::Action::Command(argv.iter().map(|a| render(a)).collect())
        }
        spec::Action::Http(h) => {
            let mut h = h.clone();
            h.url = crate::template::render_with(&h.url, &values, crate::template::percent_encode);
            let json = h.headers.iter().any(|(name, value)| {
                name == "content-type"
                    && matches!(value, spec::HeaderValue::Text(t) if t.to_ascii_lowercase().contains("json"))
            });
            for (_, value) in &mut h.headers {
                if let spec::HeaderValue::Text(text) = value {
                    // A value may not hold a line break, whatever a parameter holds.
                    *text = render(text).replace(['\r', '\n'], " ");
                }
            }
            h.body = h.body.map(|body| match body {
                spec::HttpBody::Text(text) if json => spec::HttpBody::Text(
                    crate::template::render_with(&text, &values, crate::template::json_escape),
                ),
                spec::HttpBody::Text(text) => spec::HttpBody::Text(render(&text)),
                spec::HttpBody::Json(value) => spec::HttpBody::Json(render_json(value, &render)),
            });
            spec::Action::Http(h)
        }
        spec::Action::Prompt(p) => {
            let mut p = p.clone();
            p.prompt = render(&p.prompt);
            p.system = p.system.as_deref().map(render);
            spec::Action::Prompt(p)
        }
        script => script.clone(),
    }
}

/// The strings of a JSON body rendered (serializing it escapes them).
fn render_json(value: serde_json::Value, render: &impl Fn(&str) -> String) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(render(&s)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| render_json(v, render)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, render_json(v, render)))
                .collect(),
        ),
        other => other,
    }
}
