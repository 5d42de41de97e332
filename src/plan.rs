//! The plan: what applying the files would change in the ledger, like `terraform plan`.
//!
//! [`plan`] compares the catalog (what the files say) with what the ledger has applied, by
//! content hash of the normal form, so a comment or key-order edit is no change. Each change
//! carries a unified diff of the normal forms and, where the schedule changes, the next fires
//! before and after with notes on DST effects in the coming year. Pure: `now` is an argument.

use std::collections::HashMap;
use std::fmt::Write;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::catalog::{Catalog, Entry};
use crate::diag::Diagnostic;
use crate::schedule::Schedule;
use crate::spec::normal;

/// How many next fires a plan shows for a changed schedule.
pub const NEXT_FIRES: usize = 3;

/// A job as the ledger has applied it.
#[derive(Clone, Debug)]
pub struct Applied {
    pub name: String,
    /// Created through the API: `apply` never touches it.
    pub api_owned: bool,
    /// Still defined (not removed).
    pub active: bool,
    pub revision: i64,
    pub hash: String,
    pub definition: String,
    pub source_path: Option<String>,
    pub schedule: Option<Schedule>,
    pub timezone: Option<TimeZone>,
    pub enabled: bool,
    pub anchor: Timestamp,
    pub n_runs: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Change,
    Remove,
    Unchanged,
}

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub action: Action,
    pub name: String,
    pub file: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub diff: Option<String>,
    pub next_before: Vec<String>,
    pub next_after: Vec<String>,
    /// DST effects on the new schedule in the coming year.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// For a removal: how many runs the job's history keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_kept: Option<i64>,
    /// The schedule's anchor restarts at apply (a new or changed schedule, or re-enabled).
    #[serde(skip)]
    pub reset_anchor: bool,
}

impl Change {
    /// A change with nothing but its action, job and file; the rest is filled in per action.
    fn new(action: Action, name: &str, file: Option<String>) -> Change {
        Change {
            action,
            name: name.to_string(),
            file,
            before: None,
            after: None,
            diff: None,
            next_before: Vec::new(),
            next_after: Vec::new(),
            notes: Vec::new(),
            runs_kept: None,
            reset_anchor: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
    pub unchanged: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub format_version: &'static str,
    pub changes: Vec<Change>,
    pub summary: Summary,
    /// Jobs created through the API, which `apply` leaves alone.
    pub api_owned: Vec<String>,
    /// Conflicts that make the plan impossible to apply.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Diagnostic>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.summary.add + self.summary.change + self.summary.remove > 0
    }
}

fn fires(schedule: &Schedule, tz: &TimeZone, anchor: Timestamp, now: Timestamp) -> Vec<String> {
    schedule
        .next_fires(tz, anchor, now, NEXT_FIRES)
        .into_iter()
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .collect()
}

fn year_after(now: Timestamp) -> Timestamp {
    now.checked_add(jiff::SignedDuration::from_hours(24 * 366))
        .unwrap_or(now)
}

/// Compares the catalog with the ledger's applied jobs.
pub fn plan(catalog: &Catalog, applied: &[Applied], now: Timestamp) -> Plan {
    let by_name: HashMap<&str, &Applied> = applied.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut changes = Vec::new();
    let mut summary = Summary::default();
    let mut errors = Vec::new();
    for entry in &catalog.entries {
        let name = entry.spec.name.as_str();
        let spec = &entry.spec;
        let tz = &spec.timezone.tz;
        match by_name.get(name) {
            // A deleted API job's name is free for a file.
            Some(current) if current.api_owned && current.active => errors.push(
                Diagnostic::error(
                    entry.file.as_str(),
                    format!("job `{name}` was created through the API; a file cannot take it over"),
                )
                .help("delete it through the API first, or rename the file"),
            ),
            Some(current) if current.active && current.hash == entry.hash => {
                summary.unchanged += 1;
                changes.push(Change::new(
                    Action::Unchanged,
                    name,
                    Some(entry.file.clone()),
                ));
            }
            Some(current) if current.active => {
                summary.change += 1;
                let after = normal::to_yaml(spec);
                let diff = similar::TextDiff::from_lines(&current.definition, &after)
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("applied (revision {})", current.revision),
                        &entry.file,
                    )
                    .to_string();
                let schedule_changed = current.schedule.as_ref() != Some(&spec.schedule)
                    || current.timezone.as_ref().and_then(|t| t.iana_name()) != tz.iana_name();
                let re_enabled = !current.enabled && spec.enabled;
                let reset_anchor = schedule_changed || re_enabled;
                let (next_before, next_after, notes) = if schedule_changed {
                    let before = match (&current.schedule, &current.timezone) {
                        (Some(s), Some(t)) => fires(s, t, current.anchor, now),
                        _ => Vec::new(),
                    };
                    (
                        before,
                        fires(&spec.schedule, tz, now, now),
                        spec.schedule.dst_notes(tz, now, year_after(now)),
                    )
                } else {
                    (Vec::new(), Vec::new(), Vec::new())
                };
                changes.push(Change {
                    before: Some(current.definition.clone()),
                    after: Some(after),
                    diff: Some(diff),
                    next_before,
                    next_after,
                    notes,
                    reset_anchor,
                    ..Change::new(Action::Change, name, Some(entry.file.clone()))
                });
            }
            _ => {
                summary.add += 1;
                changes.push(Change {
                    after: Some(normal::to_yaml(spec)),
                    next_after: fires(&spec.schedule, tz, now, now),
                    notes: spec.schedule.dst_notes(tz, now, year_after(now)),
                    reset_anchor: true,
                    ..Change::new(Action::Add, name, Some(entry.file.clone()))
                });
            }
        }
    }
    let mut api_owned = Vec::new();
    for current in applied {
        if current.api_owned {
            if current.active {
                api_owned.push(current.name.clone());
            }
            continue;
        }
        if current.active && catalog.get(&current.name).is_none() {
            summary.remove += 1;
            changes.push(Change {
                before: Some(current.definition.clone()),
                runs_kept: Some(current.n_runs),
                ..Change::new(Action::Remove, &current.name, current.source_path.clone())
            });
        }
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    Plan {
        format_version: "1",
        changes,
        summary,
        api_owned,
        errors,
    }
}

/// Text styles for a terminal; all empty when colour is off.
struct Paint {
    green: &'static str,
    yellow: &'static str,
    red: &'static str,
    bold: &'static str,
    dim: &'static str,
    reset: &'static str,
}

impl Paint {
    fn new(color: bool) -> Paint {
        if color {
            Paint {
                green: "\x1b[32m",
                yellow: "\x1b[33m",
                red: "\x1b[31m",
                bold: "\x1b[1m",
                dim: "\x1b[2m",
                reset: "\x1b[0m",
            }
        } else {
            Paint {
                green: "",
                yellow: "",
                red: "",
                bold: "",
                dim: "",
                reset: "",
            }
        }
    }
}

/// The plan as a person reads it.
pub fn render(plan: &Plan, color: bool) -> String {
    let p = Paint::new(color);
    let mut out = String::new();
    let w = &mut out;
    for change in &plan.changes {
        let file = change.file.as_deref().unwrap_or("-");
        match change.action {
            Action::Unchanged => continue,
            Action::Add => {
                let _ = writeln!(
                    w,
                    "{}+ {}{}{}  ({file})",
                    p.green, p.bold, change.name, p.reset
                );
                for line in change.after.as_deref().unwrap_or("").lines() {
                    let _ = writeln!(w, "    {}+ {line}{}", p.green, p.reset);
                }
            }
            Action::Change => {
                let _ = writeln!(
                    w,
                    "{}~ {}{}{}  ({file})",
                    p.yellow, p.bold, change.name, p.reset
                );
                for line in change.diff.as_deref().unwrap_or("").lines() {
                    let style = if line.starts_with("+++") || line.starts_with("---") {
                        p.bold
                    } else if line.starts_with('+') {
                        p.green
                    } else if line.starts_with('-') {
                        p.red
                    } else if line.starts_with("@@") {
                        p.dim
                    } else {
                        ""
                    };
                    let _ = writeln!(w, "    {style}{line}{}", p.reset);
                }
            }
            Action::Remove => {
                let runs = change.runs_kept.unwrap_or(0);
                let _ = writeln!(
                    w,
                    "{}- {}{}{}  (no longer in {file}; its history keeps {runs} run{})",
                    p.red,
                    p.bold,
                    change.name,
                    p.reset,
                    if runs == 1 { "" } else { "s" }
                );
            }
        }
        let fires = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        match change.action {
            Action::Add if !change.next_after.is_empty() => {
                let _ = writeln!(w, "    next: {}", fires(&change.next_after));
            }
            Action::Change if !change.next_before.is_empty() || !change.next_after.is_empty() => {
                let _ = writeln!(w, "    next before: {}", fires(&change.next_before));
                let _ = writeln!(w, "    next after:  {}", fires(&change.next_after));
            }
            _ => {}
        }
        for note in &change.notes {
            let _ = writeln!(w, "    {}note: {note}{}", p.yellow, p.reset);
        }
        let _ = writeln!(w);
    }
    if !plan.api_owned.is_empty() {
        let _ = writeln!(
            w,
            "{}Owned by the API, not by files (apply leaves them alone): {}{}\n",
            p.dim,
            plan.api_owned.join(", "),
            p.reset
        );
    }
    let s = plan.summary;
    if plan.has_changes() {
        let _ = writeln!(
            w,
            "{}Plan:{} {} to add, {} to change, {} to remove, {} unchanged.",
            p.bold, p.reset, s.add, s.change, s.remove, s.unchanged
        );
    } else {
        let _ = writeln!(
            w,
            "No changes. The ledger matches the files ({} unchanged).",
            s.unchanged
        );
    }
    out
}

/// The entries of the catalog that a plan adds or changes, with their change.
pub fn upserts<'a>(plan: &'a Plan, catalog: &'a Catalog) -> Vec<(&'a Change, &'a Entry)> {
    plan.changes
        .iter()
        .filter(|c| matches!(c.action, Action::Add | Action::Change))
        .filter_map(|c| catalog.get(&c.name).map(|e| (c, e)))
        .collect()
}
