//! Printing results: tables for people, JSON for programs.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::{Table, presets};
use jiff::{Timestamp, Zoned};
use serde::Serialize;
use serde_json::json;

use super::OutputFormat;
use crate::ledger::JobRow;

pub fn json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

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

pub fn job_list(
    format: OutputFormat,
    rows: &[JobRow],
    next: &[Option<Zoned>],
    now: Timestamp,
) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        let items: Vec<_> = rows
            .iter()
            .zip(next)
            .map(|(r, n)| {
                json!({
                    "name": r.name,
                    "description": r.description,
                    "schedule": schedule_text(r),
                    "timezone": r.timezone,
                    "next_fire": n.as_ref().map(rfc3339),
                    "enabled": r.enabled,
                    "state": super::state_of(r),
                    "paused": r.paused,
                    "revision": r.revision,
                    "file": r.source_path,
                    "tags": r.tags,
                    "last_run": r.last_run.as_ref().map(|l| json!({"state": l.state, "at": l.at})),
                })
            })
            .collect();
        json(&items)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("No jobs.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines: Vec<[String; 6]> = Vec::with_capacity(rows.len() + 1);
    lines.push(["NAME", "SCHEDULE", "TZ", "NEXT", "LAST", "STATE"].map(String::from));
    for (r, n) in rows.iter().zip(next) {
        let next = n.as_ref().map_or("-".to_string(), |z| {
            format!(
                "{} ({})",
                z.strftime("%Y-%m-%d %H:%M"),
                relative(z.timestamp(), now)
            )
        });
        let last = r
            .last_run
            .as_ref()
            .map_or("-".to_string(), |l| format!("{} {}", l.state, l.at));
        lines.push([
            r.name.clone(),
            schedule_text(r),
            r.timezone.clone(),
            next,
            last,
            super::state_of(r).to_string(),
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

fn schedule_text(row: &JobRow) -> String {
    super::stored_schedule(row).map_or_else(|| row.schedule.clone(), |s| s.to_string())
}

pub fn job_detail(
    format: OutputFormat,
    row: &JobRow,
    n_revisions: i64,
    fires: &[Zoned],
    description: Option<&str>,
) -> Result<ExitCode> {
    let fires_text: Vec<String> = fires.iter().map(rfc3339).collect();
    if format == OutputFormat::Json {
        json(&json!({
            "name": row.name,
            "description": row.description,
            "state": super::state_of(row),
            "paused": row.paused,
            "enabled": row.enabled,
            "owner": row.owner,
            "schedule": schedule_text(row),
            "schedule_description": description,
            "timezone": row.timezone,
            "next_fires": fires_text,
            "file": row.source_path,
            "revision": row.revision,
            "revisions": n_revisions,
            "content_hash": row.content_hash,
            "git_commit": row.git_commit,
            "git_dirty": row.git_dirty,
            "applied_at": row.updated_at,
            "created_at": row.created_at,
            "removed_at": row.removed_at,
            "tags": row.tags,
            "runs": row.n_runs,
            "definition": row.definition,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table();
    let commit = match (&row.git_commit, row.git_dirty) {
        (Some(c), Some(true)) => format!("{c} (with uncommitted changes)"),
        (Some(c), _) => c.clone(),
        (None, _) => "-".into(),
    };
    let pairs: Vec<(&str, String)> = vec![
        ("Name", row.name.clone()),
        (
            "Description",
            if row.description.is_empty() {
                "-".into()
            } else {
                row.description.clone()
            },
        ),
        (
            "State",
            match &row.paused {
                Some(p) => format!("paused {p}"),
                None => super::state_of(row).into(),
            },
        ),
        ("Schedule", schedule_text(row)),
        ("Meaning", description.unwrap_or("-").to_string()),
        ("Time zone", row.timezone.clone()),
        (
            "File",
            row.source_path.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Revision", format!("{} of {}", row.revision, n_revisions)),
        ("Commit", commit),
        ("Applied", row.updated_at.clone()),
        (
            "Tags",
            if row.tags.is_empty() {
                "-".into()
            } else {
                row.tags.join(", ")
            },
        ),
        ("Runs", row.n_runs.to_string()),
    ];
    for (k, v) in pairs {
        t.add_row([format!("{k}:"), v]);
    }
    println!("{t}");
    if !fires_text.is_empty() {
        println!("\nNext fires:");
        for f in &fires_text {
            println!("  {f}");
        }
    }
    println!("\nDefinition:");
    for line in row.definition.lines() {
        println!("  {line}");
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
