//! How runs are printed: the runs table, one run, its events, its output lines, and the
//! spinner while a run waits to start.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::{OutputFormat, columns};
use crate::api::wire::{CancelResult, OutputLine, Run, RunEvent};
use crate::run::RunState;

/// A queued run; `page` is its page in the dashboard, when the address is known.
pub fn render_queued(format: OutputFormat, id: i64, job: &str, page: Option<&str>) -> Result<()> {
    if format == OutputFormat::Json {
        let mut out = json!({"run": id, "job": job, "state": "pending"});
        if let Some(page) = page {
            out["url"] = json!(page);
        }
        super::json(&out)
    } else {
        println!("run {id} of {job} queued");
        if let Some(page) = page {
            println!("  {page}");
        }
        Ok(())
    }
}

/// A backfill: what it found (and queued), a slot a line with the revision it runs.
pub fn render_backfill(
    format: OutputFormat,
    view: &crate::api::wire::BackfillView,
) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        super::json(view)?;
        return Ok(ExitCode::SUCCESS);
    }
    let n = view.slots.len();
    let slots = if n == 1 { "slot" } else { "slots" };
    let window = format!("from {} to {}", view.from, view.until);
    let pace = if view.exclusive {
        "one at a time beside the job's other runs (its concurrency is not `allow`)".to_string()
    } else {
        format!("at most {} at a time", view.parallel)
    };
    match (view.dry_run, view.backfill_id) {
        (_, _) if n == 0 => {
            println!(
                "Nothing to backfill for {} {window}: no slot there is without a run.",
                view.job
            )
        }
        (true, _) => println!(
            "Would backfill {n} {slots} of {} {window}, {pace}:",
            view.job
        ),
        (false, Some(id)) => println!(
            "Backfill {id} of {}: {n} {slots} {window} queued, {pace}:",
            view.job
        ),
        (false, None) => {}
    }
    if view.until != view.to {
        println!(
            "  (slots from {} on are the scheduler's: not past yet, or not yet accounted for by a daemon)",
            view.until
        );
    }
    if n > 0 {
        let mut lines = vec![["SLOT", "REVISION", "RUN"].map(String::from)];
        lines.extend(view.slots.iter().map(|s| {
            [
                s.at.clone(),
                s.revision.to_string(),
                s.run_id.map_or_else(|| "-".into(), |r| r.to_string()),
            ]
        }));
        print!("{}", super::columns(&lines));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn render_cancel(format: OutputFormat, result: &CancelResult) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        super::json(result)?;
        return Ok(ExitCode::SUCCESS);
    }
    let id = result.run;
    if result.cancelled() {
        println!("run {id} cancelled before it started");
    } else {
        println!("run {id}: cancellation requested; its supervisor stops it now");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_header() -> [String; 9] {
    [
        "ID",
        "JOB",
        "STATE",
        "TRIGGER",
        "ATTEMPT",
        "SCHEDULED",
        "DURATION",
        "EXIT",
        "NOTE",
    ]
    .map(String::from)
}

pub fn run_line(r: &Run) -> [String; 9] {
    [
        r.id.to_string(),
        r.job.clone(),
        r.state.clone(),
        r.trigger.clone(),
        r.attempt.to_string(),
        r.scheduled_at.clone().unwrap_or_else(|| "-".into()),
        r.duration_ms.map_or("-".into(), format_ms),
        // A request's answer status stands where a process's exit status would.
        match (r.exit_code, r.signal, r.http_status) {
            (Some(c), _, _) => c.to_string(),
            (None, Some(s), _) => crate::run::signal_name(s).to_string(),
            (None, None, Some(status)) => format!("HTTP {status}"),
            _ => "-".into(),
        },
        note(r),
    ]
}

pub fn render_runs(format: OutputFormat, rows: &[Run]) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        super::json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("No runs.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![run_header()];
    lines.extend(rows.iter().map(run_line));
    print!("{}", columns(&lines));
    Ok(ExitCode::SUCCESS)
}

fn note(r: &Run) -> String {
    let mut parts = Vec::new();
    if r.slot_count > 1 {
        parts.push(format!("{} slots", r.slot_count));
    }
    if let Some(reason) = &r.reason {
        parts.push(reason.clone());
    } else if let Some(error) = &r.error
        && r.state() != Some(RunState::Succeeded)
    {
        parts.push(error.clone());
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

fn format_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        crate::duration::Duration::from_secs(ms / 1000).to_string()
    }
}

pub fn render_run(format: OutputFormat, run: &Run) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        super::json(run)?;
        return Ok(ExitCode::SUCCESS);
    }
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let pairs: Vec<(&str, String)> = vec![
        ("Run", run.id.to_string()),
        ("Job", run.job.clone()),
        ("State", run.state.clone()),
        ("Trigger", run.trigger.clone()),
        (
            "Released by",
            dash(run.released_by.as_ref().and_then(|v| {
                let runs: Vec<String> = v
                    .as_array()?
                    .iter()
                    .map(|r| format!("{} (run {})", r["job"].as_str().unwrap_or("?"), r["run"]))
                    .collect();
                Some(runs.join(", "))
            })),
        ),
        (
            "Attempt",
            match run.first_run_id {
                Some(first) => format!("{} (retry of run {first})", run.attempt),
                None => run.attempt.to_string(),
            },
        ),
        ("Revision", dash(run.revision.map(|r| r.to_string()))),
        ("Commit", dash(run.git_commit.clone())),
        ("Scheduled", dash(run.scheduled_at.clone())),
        (
            "Slots",
            match (&run.slot_first, &run.slot) {
                (Some(first), Some(last)) if run.slot_count > 1 => {
                    format!("{} from {first} to {last}", run.slot_count)
                }
                (_, Some(slot)) => slot.clone(),
                _ => "-".into(),
            },
        ),
        ("Node", dash(run.node.clone())),
        ("Started", dash(run.started_at.clone())),
        ("Finished", dash(run.finished_at.clone())),
        ("Duration", dash(run.duration_ms.map(format_ms))),
        ("Exit code", dash(run.exit_code.map(|c| c.to_string()))),
        (
            "Signal",
            dash(
                run.signal
                    .map(|s| format!("{} ({s})", crate::run::signal_name(s))),
            ),
        ),
        ("Error", dash(run.error.clone().or(run.reason.clone()))),
        ("Process", dash(run.pid.map(|p| p.to_string()))),
        (
            "CPU",
            match (run.cpu_user_ms, run.cpu_sys_ms) {
                (Some(u), Some(s)) => format!("{} user, {} system", format_ms(u), format_ms(s)),
                _ => "-".into(),
            },
        ),
        ("Max RSS", dash(run.max_rss_kb.map(|k| format!("{k} KiB")))),
        (
            "Output",
            format!(
                "{} bytes{}",
                run.output_bytes,
                if run.output_truncated {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ),
        ("Params", dash(run.params.as_ref().map(ToString::to_string))),
        (
            "Overrides",
            dash(
                run.overrides
                    .as_ref()
                    .and_then(|o| o.timeout.as_ref())
                    .map(|t| format!("timeout {t} (this run only)")),
            ),
        ),
        (
            "Backfill",
            dash(run.backfill_id.map(|b| format!("backfill {b}"))),
        ),
    ];
    let mut pairs = pairs;
    // What a request's answer said: only for `http` and `prompt` runs.
    if let Some(status) = run.http_status {
        pairs.push(("HTTP status", status.to_string()));
    }
    if let Some(model) = &run.model {
        let reason = run
            .finish_reason
            .as_ref()
            .map(|r| format!(" (finish reason: {r})"))
            .unwrap_or_default();
        pairs.push(("Model", format!("{model}{reason}")));
    }
    if run.prompt_tokens.is_some() || run.completion_tokens.is_some() {
        let n = |t: Option<i64>| t.map_or("?".to_string(), |t| t.to_string());
        pairs.push((
            "Tokens",
            format!(
                "{} prompt + {} completion",
                n(run.prompt_tokens),
                n(run.completion_tokens)
            ),
        ));
    }
    if let Some(page) = &run.url {
        pairs.push(("Page", page.clone()));
    }
    let lines: Vec<[String; 2]> = pairs
        .into_iter()
        .map(|(k, v)| [format!("{k}:"), v])
        .collect();
    print!("{}", columns(&lines));
    Ok(ExitCode::SUCCESS)
}

pub fn render_events(format: OutputFormat, events: &[RunEvent]) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        super::json(&events)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![["AT", "EVENT", "MESSAGE"].map(String::from)];
    for e in events {
        lines.push([e.at.clone(), e.kind.clone(), e.message.clone()]);
    }
    print!("{}", columns(&lines));
    Ok(ExitCode::SUCCESS)
}

/// One output line: to stdout or stderr as the run wrote it, or as a JSON line.
pub fn print_line(format: OutputFormat, line: &OutputLine) -> Result<()> {
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string(line)?);
    } else if line.stream == "stderr" {
        eprintln!("{}", line.line);
    } else {
        println!("{}", line.line);
    }
    Ok(())
}

/// A line of `jobctl logs --job`: its run and time, then the text (stderr's on stderr, as
/// `jobctl logs RUN` does); JSON, one object a line.
pub fn print_job_line(format: OutputFormat, line: &crate::api::wire::JobLogLine) -> Result<()> {
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string(line)?);
    } else if line.stream == "stderr" {
        eprintln!("run {}  {}  {}", line.run_id, line.at, line.line);
    } else {
        println!("run {}  {}  {}", line.run_id, line.at, line.line);
    }
    Ok(())
}

/// A spinner on stderr while a run waits to start, only when stderr is a terminal.
pub struct Spinner {
    run: i64,
    frame: usize,
    shown: bool,
    terminal: bool,
}

impl Spinner {
    pub fn new(run: i64) -> Spinner {
        Spinner {
            run,
            frame: 0,
            shown: false,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn tick(&mut self) {
        if !self.terminal {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        eprint!(
            "\r{} run {} is pending: waiting for the daemon to start it",
            FRAMES[self.frame % FRAMES.len()],
            self.run
        );
        self.frame += 1;
        self.shown = true;
    }

    pub fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}
