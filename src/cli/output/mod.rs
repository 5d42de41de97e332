//! Printing results: tables for people, JSON for programs. The same renderers print what the
//! local ledger holds and what a server's API answers: both are `api::wire` shapes.

pub mod control;
pub mod runs;

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::{Table, presets};
use jiff::{Timestamp, Zoned};
use serde::Serialize;
use serde_json::json;

use super::OutputFormat;
use crate::api::wire::{JobDetail, JobSummary};

pub fn json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

use crate::views::rfc3339;

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t
}

/// "in 5m", "in 2h 3m", "in 3d" relative to now: what an operator scans for.
fn relative(at: Timestamp, now: Timestamp) -> String {
    let secs = at.as_second() - now.as_second();
    let (sign, secs) = if secs < 0 {
        ("ago", -secs)
    } else {
        ("in", secs)
    };
    let text = match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    };
    if sign == "in" {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

pub fn job_list(format: OutputFormat, jobs: &[JobSummary], now: Timestamp) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        json(&jobs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        eprintln!("No jobs.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines: Vec<[String; 7]> = Vec::with_capacity(jobs.len() + 1);
    lines.push(["NAME", "SCHEDULE", "TZ", "NEXT", "LAST", "STATE", "FAILING"].map(String::from));
    for j in jobs {
        let next = j.next_fire.as_deref().map_or("-".to_string(), |text| {
            // `2026-11-22T03:00:00+01:00`: the job's local wall time, and how far off it is.
            let local = text.get(..16).unwrap_or(text).replacen('T', " ", 1);
            match text.parse::<Timestamp>() {
                Ok(at) => format!("{local} ({})", relative(at, now)),
                Err(_) => local,
            }
        });
        let last = j
            .last_run
            .as_ref()
            .map_or("-".to_string(), |l| format!("{} {}", l.state, l.at));
        lines.push([
            j.name.clone(),
            j.schedule.clone(),
            j.timezone.clone(),
            next,
            last,
            state_text(j),
            match j.failure_streak {
                0 => "-".to_string(),
                1 => "1 run".to_string(),
                n => format!("{n} runs"),
            },
        ]);
    }
    print!("{}", columns(&lines));
    Ok(ExitCode::SUCCESS)
}

/// Left-aligned columns separated by two spaces, like `kubectl get`. Written by hand for
/// listings: comfy-table spends ~40 ms laying out 10,000 rows, more than the rest of `list`.
pub fn columns<const N: usize>(lines: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for line in lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::with_capacity(lines.len() * (widths.iter().sum::<usize>() + 2 * N));
    for line in lines {
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                out.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// The state with what qualifies it: `completed 5 of 5`, `active 2 of 5`.
pub fn state_text(j: &JobSummary) -> String {
    match &j.progress {
        Some(progress) => format!("{} {progress}", j.state),
        None => j.state.clone(),
    }
}

pub fn job_detail(format: OutputFormat, job: &JobDetail) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        json(job)?;
        return Ok(ExitCode::SUCCESS);
    }
    let j = &job.summary;
    let mut t = table();
    let commit = match (&j.git_commit, job.git_dirty) {
        (Some(c), Some(true)) => format!("{c} (with uncommitted changes)"),
        (Some(c), _) => c.clone(),
        (None, _) => "-".into(),
    };
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let runs = if j.runs.is_empty() {
        "0".to_string()
    } else {
        let total: i64 = j.runs.values().sum();
        let parts: Vec<String> = j.runs.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!("{total} ({})", parts.join(", "))
    };
    let pairs: Vec<(&str, String)> = vec![
        ("Name", j.name.clone()),
        ("Description", dash(&j.description)),
        (
            "State",
            match &j.paused {
                Some(p) => format!(
                    "paused by {} at {}{}",
                    p.by,
                    p.at,
                    p.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                None => state_text(j),
            },
        ),
        ("Waiting", j.blocked.clone().unwrap_or_else(|| "-".into())),
        (
            "Failing",
            match j.failure_streak {
                0 => "-".to_string(),
                n => format!("{n} in a row"),
            },
        ),
        ("Schedule", j.schedule.clone()),
        (
            "Meaning",
            j.schedule_description.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Time zone", j.timezone.clone()),
        ("Owner", j.owner.clone()),
        ("File", j.file.clone().unwrap_or_else(|| "-".into())),
        ("Revision", format!("{} of {}", j.revision, job.revisions)),
        ("Commit", commit),
        ("Applied", job.applied_at.clone()),
        ("Tags", dash(&j.tags.join(", "))),
        ("Runs", runs),
    ];
    for (k, v) in pairs {
        t.add_row([format!("{k}:"), v]);
    }
    println!("{t}");
    if !job.next_fires.is_empty() {
        println!("\nNext fires:");
        for f in &job.next_fires {
            println!("  {f}");
        }
    }
    println!("\nDefinition:");
    for line in job.definition.lines() {
        println!("  {line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn graph(format: OutputFormat, view: &crate::api::wire::GraphView) -> Result<ExitCode> {
    match format {
        OutputFormat::Json => json(view)?,
        OutputFormat::Dot => print!("{}", crate::graph::render_dot(&view.graph())),
        OutputFormat::Table if view.jobs.is_empty() => {
            eprintln!("No jobs applied yet; `jobctl apply` records them.")
        }
        OutputFormat::Table => print!("{}", crate::graph::render_tree(&view.graph())),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fires(
    format: OutputFormat,
    expression: &str,
    zone: &str,
    description: &str,
    fires: &[Zoned],
) -> Result<ExitCode> {
    let next: Vec<String> = fires.iter().map(rfc3339).collect();
    if format == OutputFormat::Json {
        json(&json!({
            "expression": expression,
            "timezone": zone,
            "description": description,
            "next": next,
        }))?;
    } else {
        println!("{expression}  ({zone})");
        println!("{description}");
        if next.is_empty() {
            println!("No further fires.");
        }
        for n in next {
            println!("  {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
