//! What a run executes: `command` or `run` (with `shell`), `env`, `working_dir`, and the
//! `params` whose `{{ params.NAME }}` placeholders may appear in `command` and `env`.

use std::collections::BTreeMap;

use super::super::raw::{At, Loc, LocMap, RawCommand, RawHttp, RawParam, RawPrompt};
use super::request::{self, Template};
use super::*;

/// The action fields as written.
pub(super) struct Written {
    pub command: Option<Loc<RawCommand>>,
    pub run: Option<Loc<String>>,
    pub shell: Option<Loc<String>>,
    pub http: Option<Loc<RawHttp>>,
    pub prompt: Option<Loc<RawPrompt>>,
}

/// Exactly one of `command` (a list), `run` (a script), `http` and `prompt`; `shell` only
/// goes with `run`. Returns the action and the texts of an `http` or `prompt` that may hold
/// placeholders.
pub(super) fn action(b: &mut Builder, w: Written) -> (Option<Action>, Vec<Template>) {
    let set: Vec<(&str, At)> = [
        ("command", w.command.as_ref().map(|c| c.at)),
        ("run", w.run.as_ref().map(|r| r.at)),
        ("http", w.http.as_ref().map(|h| h.at)),
        ("prompt", w.prompt.as_ref().map(|p| p.at)),
    ]
    .into_iter()
    .filter_map(|(name, at)| at.map(|at| (name, at)))
    .collect();
    if let [(first, _), (second, at), ..] = set[..] {
        b.error(
            at,
            format!("both `{first}` and `{second}` are set; a job has exactly one"),
        )
        .help = Some(
            "`command` is a list run without a shell; `run` is a script run with `shell -c`; `http` sends a request; `prompt` asks a language model"
                .into(),
        );
        return (None, Vec::new());
    }
    if let Some(shell) = &w.shell
        && w.run.is_none()
        && set.len() == 1
    {
        b.error(
            shell.at,
            format!("`shell` only applies to `run`, not to `{}`", set[0].0),
        );
    }
    if let Some(http) = w.http {
        return request::http(b, http).map_or((None, Vec::new()), |(a, t)| (Some(a), t));
    }
    if let Some(prompt) = w.prompt {
        return request::prompt(b, prompt).map_or((None, Vec::new()), |(a, t)| (Some(a), t));
    }
    let action = match (w.command, w.run) {
        (None, None) => {
            let d = Diagnostic::error(
                b.path,
                "the job has no action; it needs exactly one of `command`, `run`, `http` or `prompt`",
            )
            .at(Some(Position { line: 1, column: 1 }))
            .help("add `command: [program, arg, ...]` or `run: script`");
            b.push(d);
            None
        }
        (Some(command), _) => self::command(b, command),
        (None, Some(run)) if run.value.trim().is_empty() => {
            b.error(run.at, "`run` is empty");
            None
        }
        (None, Some(run)) => Some(Action::Script {
            script: run.value,
            shell: w.shell.map_or(DEFAULT_SHELL.to_string(), |s| s.value),
        }),
    };
    (action, Vec::new())
}

fn command(b: &mut Builder, command: Loc<RawCommand>) -> Option<Action> {
    match command.value {
        RawCommand::String(s) => {
            b.error(command.at, "`command` is a list of arguments, not a string")
                .help = Some(format!(
                "write `command: [{}]`, or `run: {s}` to run it with a shell",
                s.split_whitespace().collect::<Vec<_>>().join(", ")
            ));
            None
        }
        RawCommand::List(argv) if argv.is_empty() || argv[0].is_empty() => {
            b.error(
                command.at,
                "`command` is empty; it needs at least the program to run",
            );
            None
        }
        RawCommand::List(argv) => Some(Action::Command(argv)),
    }
}

/// `env`: the variables, and where each value was written (for the placeholder check).
pub(super) fn env(
    b: &mut Builder,
    raw: Option<LocMap<Loc<String>>>,
) -> (BTreeMap<String, String>, Vec<(At, String)>) {
    let mut env = BTreeMap::new();
    let mut env_at = Vec::new();
    for (key, value) in raw.map(|m| m.0).unwrap_or_default() {
        if !is_env_name(&key.value) {
            b.error(
                key.at,
                format!("`{}` is not a valid environment variable name", key.value),
            )
            .help = Some("use letters, digits and `_`, not starting with a digit".into());
        } else if key.value.starts_with("JOBS_") {
            b.error(
                key.at,
                format!(
                    "`{}`: names starting with `JOBS_` are reserved for jobs",
                    key.value
                ),
            );
        } else {
            env_at.push((value.at, key.value.clone()));
            env.insert(key.value, value.value);
        }
    }
    (env, env_at)
}

pub(super) fn working_dir(b: &mut Builder, raw: Option<Loc<String>>) -> Option<String> {
    match raw {
        Some(dir) if dir.value.trim().is_empty() => {
            b.error(dir.at, "`working_dir` is empty");
            None
        }
        other => other.map(|d| d.value),
    }
}

/// `params`: each name a variable name (it becomes `JOBS_PARAM_NAME`), required or defaulted.
pub(super) fn params(
    b: &mut Builder,
    raw: Option<LocMap<Loc<RawParam>>>,
) -> BTreeMap<String, Param> {
    let mut params = BTreeMap::new();
    for (key, param) in raw.map(|m| m.0).unwrap_or_default() {
        if !is_env_name(&key.value) {
            b.error(key.at, format!("parameter name `{}` is not valid", key.value)).help = Some(
                "use letters, digits and `_`, not starting with a digit (it becomes JOBS_PARAM_NAME)".into(),
            );
            continue;
        }
        let at = param.at;
        let p = param.value;
        let required = p.required.unwrap_or(false);
        if required && p.default.is_some() {
            b.error(
                at,
                format!(
                    "parameter `{}` is required and has a default; choose one",
                    key.value
                ),
            );
        }
        params.insert(
            key.value,
            Param {
                default: p.default.map(|d| d.value),
                required,
                description: p.description.unwrap_or_default(),
            },
        );
    }
    params
}

/// The values that may hold placeholders, and where they were written.
pub(super) struct Templated<'a> {
    pub action: Option<&'a Action>,
    pub command_at: Option<At>,
    pub run_at: Option<At>,
    pub env: &'a BTreeMap<String, String>,
    pub env_at: Vec<(At, String)>,
    /// The texts of an `http` or `prompt` action.
    pub request: Vec<Template>,
}

/// `{{ params.NAME }}` in `command` elements and `env` values must name declared parameters;
/// `run` scripts are never templated.
pub(super) fn check_placeholders(
    b: &mut Builder,
    values: Templated<'_>,
    params: &BTreeMap<String, Param>,
) {
    let mut templates: Vec<(At, String, String)> = values.request;
    match (values.action, values.command_at, values.run_at) {
        (Some(Action::Command(argv)), Some(at), _) => {
            for (i, element) in argv.iter().enumerate() {
                templates.push((at, format!("`command` element {}", i + 1), element.clone()));
            }
        }
        (Some(Action::Script { script, .. }), _, Some(at)) if script.contains("{{") => {
            b.error(at, "`run` scripts are not templated: `{{ }}` is not substituted here")
                .help = Some(
                "use the parameter as \"$JOBS_PARAM_NAME\" in the script, or `{{ params.NAME }}` in a `command` element or an `env` value".into(),
            );
        }
        _ => {}
    }
    for (at, key) in values.env_at {
        if let Some(value) = values.env.get(&key) {
            templates.push((at, format!("`env.{key}`"), value.clone()));
        }
    }
    for (at, what, text) in templates {
        match crate::template::placeholders(&text) {
            Err(e) => {
                b.error(at, format!("{what}: {}", e.message));
            }
            Ok(found) => {
                for p in found.iter().filter(|p| !params.contains_key(&p.name)) {
                    b.error(
                        at,
                        format!(
                            "{what} uses `{{{{ params.{} }}}}`, which is not a declared parameter ({})",
                            p.name,
                            declared(params)
                        ),
                    );
                }
            }
        }
    }
}

fn declared(params: &BTreeMap<String, Param>) -> String {
    if params.is_empty() {
        "the job declares no `params`".to_string()
    } else {
        format!(
            "declared: {}",
            params.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}
