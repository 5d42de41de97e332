//! The reading and operating commands against a server (`--server URL`): the same output as
//! the local commands, from the HTTP API instead of the ledger.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use super::output::control::{render_pause, render_status};
use super::output::runs::{
    Spinner, print_line, render_cancel, render_events, render_queued, render_run, render_runs,
};
use super::{OutputFormat, output, runs};
use crate::api::wire::{
    CancelResult, DeleteResult, JobDetail, JobSummary, LogPage, OutputLine, ParamValue, PauseBody,
    PauseResult, PlanRequest, PlanResponse, Run, RunEvent, RunPage, StatusView, TriggerBody,
};
use crate::client::{Client, encode};
use crate::run::RunState;

pub fn list(
    client: &Client,
    format: OutputFormat,
    tag: Option<&str>,
    all: bool,
    search: Option<&str>,
) -> Result<ExitCode> {
    if all {
        bail!(
            "--all is not available with --server: the API lists the active jobs (run `jobctl list --all` where the ledger is)"
        );
    }
    let mut query = Vec::new();
    if let Some(t) = tag {
        query.push(format!("tag={}", encode(t)));
    }
    if let Some(text) = search.filter(|t| !t.is_empty()) {
        query.push(format!("q={}", encode(text)));
    }
    let path = if query.is_empty() {
        "/v1/jobs".to_string()
    } else {
        format!("/v1/jobs?{}", query.join("&"))
    };
    let jobs: Vec<JobSummary> = client.get(&path)?;
    output::job_list(format, &jobs, crate::clock::now()?)
}

pub fn get(client: &Client, format: OutputFormat, name: &str) -> Result<ExitCode> {
    let job: JobDetail = client.get(&format!("/v1/jobs/{}", encode(name)))?;
    output::job_detail(format, &job)
}

pub fn status(client: &Client, format: OutputFormat) -> Result<ExitCode> {
    let view: StatusView = client.get("/v1/status")?;
    render_status(format, &view)
}

fn params_body(given: &[String]) -> Result<TriggerBody> {
    let mut params = BTreeMap::new();
    for pair in given {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--param `{pair}` is not KEY=VALUE");
        };
        params.insert(key.to_string(), ParamValue::Text(value.to_string()));
    }
    Ok(TriggerBody {
        params,
        timeout: None,
    })
}

pub fn backfill(
    client: &Client,
    format: OutputFormat,
    name: &str,
    body: &crate::api::wire::BackfillBody,
) -> Result<ExitCode> {
    let view: crate::api::wire::BackfillView =
        client.post(&format!("/v1/jobs/{}/backfill", encode(name)), Some(body))?;
    super::output::runs::render_backfill(format, &view)
}

pub fn trigger(
    client: &Client,
    format: OutputFormat,
    name: &str,
    given: &[String],
    wait: bool,
    timeout: Option<String>,
) -> Result<ExitCode> {
    let body = TriggerBody {
        timeout,
        ..params_body(given)?
    };
    let run: Run = client.post(&format!("/v1/jobs/{}/trigger", encode(name)), Some(&body))?;
    if !wait {
        render_queued(format, run.id, name, run.url.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("run {} of {name} queued", run.id);
    let mut current = run;
    loop {
        let mut spinner = Spinner::new(current.id);
        while current.state().is_some_and(RunState::is_waiting) {
            spinner.tick();
            std::thread::sleep(std::time::Duration::from_millis(200));
            current = client.get(&format!("/v1/runs/{}", current.id))?;
        }
        spinner.clear();
        let ended = follow(client, format, current.id)?;
        // A failure that will be retried is not the end: follow the next attempt.
        let page: RunPage =
            client.get(&format!("/v1/runs?job={}&limit=100", encode(&ended.job)))?;
        match runs::next_attempt(&page.runs, &ended) {
            Some(next) => {
                eprintln!(
                    "run {} ended {}; attempt {} is run {}",
                    ended.id, ended.state, next.attempt, next.id
                );
                current = next.clone();
            }
            None => return Ok(runs::exit_code_of(&ended)),
        }
    }
}

/// Prints a run's output as it comes, until it ends; returns the ended run.
fn follow(client: &Client, format: OutputFormat, id: i64) -> Result<Run> {
    follow_from(client, format, id, "after=0")
}

/// As [`follow`], from where `start` (`after=N` or `tail=N`) says.
fn follow_from(client: &Client, format: OutputFormat, id: i64, start: &str) -> Result<Run> {
    let mut ended: Option<Run> = None;
    let mut failure: Option<anyhow::Error> = None;
    client.events(
        &format!("/v1/runs/{id}/logs?follow=true&{start}"),
        |kind, data| {
            match kind {
                "line" => match serde_json::from_str::<OutputLine>(data) {
                    Ok(line) => {
                        if let Err(e) = print_line(format, &line) {
                            failure = Some(e);
                            return false;
                        }
                    }
                    Err(e) => {
                        failure = Some(anyhow::anyhow!("a log line from the server: {e}"));
                        return false;
                    }
                },
                "end" => {
                    ended = serde_json::from_str(data).ok();
                    return false;
                }
                "error" => {
                    failure = Some(anyhow::anyhow!("the server: {data}"));
                    return false;
                }
                _ => {}
            }
            true
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    match ended {
        Some(run) => Ok(run),
        // The stream ended without an `end` event (a restart of the server): read the run.
        None => Ok(client.get(&format!("/v1/runs/{id}"))?),
    }
}

/// `jobctl plan --server`: sends the local job files, prints the server's plan of them.
pub fn plan(
    client: &Client,
    format: OutputFormat,
    dir: &std::path::Path,
    detailed_exitcode: bool,
    out: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let scan = crate::source::scan(dir).map_err(|d| anyhow::anyhow!("{d}"))?;
    if let Some(problem) = scan.problems.first() {
        bail!("{problem}");
    }
    let mut files = BTreeMap::new();
    for f in &scan.files {
        let text = String::from_utf8(f.bytes.clone())
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", f.display))?;
        files.insert(f.relative.clone(), text);
    }
    let git = crate::git::describe(dir);
    let body = PlanRequest {
        files,
        dir: Some(dir.display().to_string()),
        save: out.is_some(),
        commit: git.commit,
        dirty: git.dirty,
    };
    let response: PlanResponse = match client.post("/v1/plan", Some(&body)) {
        Ok(r) => r,
        Err(crate::client::ClientError::Api {
            status: 422,
            message,
            ..
        }) => {
            eprint!("{message}");
            bail!("the server cannot plan these files: fix the errors above");
        }
        Err(e) => return Err(e.into()),
    };
    match format {
        OutputFormat::Json => output::json(&response.plan)?,
        OutputFormat::Table | OutputFormat::Dot => print!("{}", response.text),
    }
    if let Some(out) = out {
        let saved = response
            .saved
            .as_ref()
            .context("the server answered no saved plan; is it older than this jobctl?")?;
        super::jobs::write_saved_plan(out, saved)?;
        if format == OutputFormat::Table {
            println!(
                "Saved this plan to {}: `jobctl apply {} --server URL` applies exactly it on the server, or refuses if the files or its ledger moved.",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if detailed_exitcode && response.has_changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `jobctl apply PLAN_FILE --server`: the saved plan sent to the server, which applies it
/// only if its ledger is as the plan saw it; the local files are compared first.
pub fn apply_saved(
    client: &Client,
    format: OutputFormat,
    dir: &std::path::Path,
    file: &std::path::Path,
) -> Result<ExitCode> {
    let saved = super::jobs::read_saved_plan(file)?;
    super::jobs::check_files(file, &saved, dir)?;
    let result: crate::api::wire::ApplyResult = match client.post("/v1/apply", Some(&saved)) {
        Ok(r) => r,
        Err(crate::client::ClientError::Api {
            status: 409,
            message,
            ..
        }) => bail!("{message}"),
        Err(e) => return Err(e.into()),
    };
    match format {
        OutputFormat::Json => output::json(&result)?,
        OutputFormat::Table | OutputFormat::Dot => {
            print!("{}", result.text);
            if result.applied {
                println!(
                    "Apply complete: {} added, {} changed, {} removed.",
                    result.added, result.changed, result.removed
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A definition file as the API takes it: its text as is (YAML, JSON or TOML), so the
/// server's diagnostics point at lines of this very file.
struct DefinitionFile<'a> {
    path: &'a std::path::Path,
    name: String,
    text: String,
    kind: &'static str,
}

fn definition_of(file: &std::path::Path) -> Result<DefinitionFile<'_>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let kind = if file.extension().is_some_and(|e| e == "toml") {
        "application/toml"
    } else {
        "application/yaml"
    };
    Ok(DefinitionFile {
        path: file,
        name,
        text,
        kind,
    })
}

/// Sends a definition; a 422 with diagnostics is drawn against the user's file, as `validate`
/// draws a file's errors.
fn send_definition(
    client: &Client,
    method: &str,
    path: &str,
    file: &DefinitionFile<'_>,
) -> Result<JobDetail> {
    match client.send_body(method, path, file.kind, file.text.clone().into_bytes()) {
        Ok(job) => Ok(job),
        Err(crate::client::ClientError::Api {
            status: 422,
            diagnostics,
            ..
        }) if !diagnostics.is_empty() => {
            let shown = file.path.display().to_string();
            let diagnostics: Vec<_> = diagnostics
                .into_iter()
                .map(|mut d| {
                    d.file = shown.clone();
                    d
                })
                .collect();
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            eprint!(
                "{}",
                crate::diag::render(&diagnostics, |_| Some(&file.text), super::stderr_color())
            );
            eprintln!(
                "{errors} error{} in {shown}; the server changed nothing.",
                if errors == 1 { "" } else { "s" }
            );
            Err(super::Reported.into())
        }
        Err(e) => Err(e.into()),
    }
}

pub fn create(client: &Client, format: OutputFormat, file: &std::path::Path) -> Result<ExitCode> {
    let definition = definition_of(file)?;
    let job = send_definition(
        client,
        "POST",
        &format!("/v1/jobs?name={}", encode(&definition.name)),
        &definition,
    )?;
    if format == OutputFormat::Json {
        return output::job_detail(format, &job);
    }
    println!(
        "{} created (revision {})",
        job.summary.name, job.summary.revision
    );
    Ok(ExitCode::SUCCESS)
}

/// Replaces an API-owned job's definition with the file's (`PUT`): what the file leaves out
/// takes its default, as it would in `jobs.d/`.
pub fn update(
    client: &Client,
    format: OutputFormat,
    name: &str,
    file: &std::path::Path,
) -> Result<ExitCode> {
    let definition = definition_of(file)?;
    let job = send_definition(
        client,
        "PUT",
        &format!("/v1/jobs/{}", encode(name)),
        &definition,
    )?;
    if format == OutputFormat::Json {
        return output::job_detail(format, &job);
    }
    println!(
        "{} updated (revision {})",
        job.summary.name, job.summary.revision
    );
    Ok(ExitCode::SUCCESS)
}

pub fn delete(
    client: &Client,
    format: OutputFormat,
    name: &str,
    cancel_active: bool,
) -> Result<ExitCode> {
    let result: DeleteResult = client.delete(&format!(
        "/v1/jobs/{}?cancel_active={cancel_active}",
        encode(name)
    ))?;
    if format == OutputFormat::Json {
        output::json(&result)?;
    } else if result.cancelled_runs.is_empty() {
        println!("{name} removed; its history stays");
    } else {
        let ids: Vec<String> = result
            .cancelled_runs
            .iter()
            .map(ToString::to_string)
            .collect();
        println!("{name} removed; cancelled run(s) {}", ids.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logs(
    client: &Client,
    format: OutputFormat,
    target: &str,
    follow_it: bool,
    tail: Option<u64>,
) -> Result<ExitCode> {
    let id = match runs::LogTarget::parse(target) {
        runs::LogTarget::Run(id) => id,
        runs::LogTarget::Job(job) => {
            let page: RunPage = client.get(&format!("/v1/runs?job={}&limit=100", encode(job)))?;
            runs::latest_started(job, &page.runs)?
        }
    };
    let start = match tail {
        Some(n) => format!("tail={n}"),
        None => "after=0".to_string(),
    };
    if follow_it {
        follow_from(client, format, id, &start)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Page after page, each printed as it comes: the whole log is never held at once.
    let mut query = start;
    let mut after = 0;
    loop {
        let page: LogPage = client.get(&format!("/v1/runs/{id}/logs?{query}"))?;
        for line in &page.lines {
            print_line(format, line)?;
        }
        match page.next_after {
            Some(next) if next > after => {
                after = next;
                query = format!("after={after}");
            }
            _ => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// `jobctl logs --job` through the server: `GET /v1/jobs/{name}/logs`, page after page.
pub fn job_logs(
    client: &Client,
    format: OutputFormat,
    query: &runs::JobLogsQuery,
) -> Result<ExitCode> {
    let mut base = format!(
        "/v1/jobs/{}/logs?since={}",
        encode(&query.job),
        encode(&query.since)
    );
    if let Some(until) = &query.until {
        base.push_str(&format!("&until={}", encode(until)));
    }
    if let Some(grep) = &query.grep {
        base.push_str(&format!("&filter={}", encode(grep)));
    }
    let mut path = base.clone();
    loop {
        let page: crate::api::wire::JobLogPage = client.get(&path)?;
        for line in &page.lines {
            crate::cli::output::runs::print_job_line(format, line)?;
        }
        match page.next_after {
            Some(next) => path = format!("{base}&after={}", encode(&next)),
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

pub fn pause(
    client: &Client,
    format: OutputFormat,
    name: &str,
    reason: Option<&str>,
) -> Result<ExitCode> {
    let result: PauseResult = client.post(
        &format!("/v1/jobs/{}/pause", encode(name)),
        Some(&PauseBody {
            reason: reason.map(str::to_string),
        }),
    )?;
    render_pause(format, true, &result)
}

pub fn resume(client: &Client, format: OutputFormat, name: &str) -> Result<ExitCode> {
    let result: PauseResult =
        client.post(&format!("/v1/jobs/{}/resume", encode(name)), None::<&()>)?;
    render_pause(format, false, &result)
}

pub fn cancel(client: &Client, format: OutputFormat, id: i64) -> Result<ExitCode> {
    let result: CancelResult = client.post(&format!("/v1/runs/{id}/cancel"), None::<&()>)?;
    render_cancel(format, &result)
}

pub fn runs(client: &Client, format: OutputFormat, q: &runs::RunsQuery) -> Result<ExitCode> {
    let mut query = vec![format!("limit={}", q.limit.clamp(1, 1000))];
    if let Some(job) = &q.job {
        query.push(format!("job={}", encode(job)));
    }
    if let Some(state) = &q.state {
        query.push(format!("state={}", encode(state)));
    }
    if let Some(since) = q.since {
        query.push(format!("since={}", encode(&crate::ledger::stamp(since))));
    }
    let path = format!("/v1/runs?{}", query.join("&"));
    if q.watch {
        return runs::watch_runs(format, || Ok(client.get::<RunPage>(&path)?.runs));
    }
    let page: RunPage = client.get(&path)?;
    render_runs(format, &page.runs)
}

pub fn run_get(client: &Client, format: OutputFormat, id: i64) -> Result<ExitCode> {
    let run: Run = client.get(&format!("/v1/runs/{id}"))?;
    render_run(format, &run)
}

pub fn run_events(client: &Client, format: OutputFormat, id: i64) -> Result<ExitCode> {
    let events: Vec<RunEvent> = client.get(&format!("/v1/runs/{id}/events"))?;
    render_events(format, &events)
}
