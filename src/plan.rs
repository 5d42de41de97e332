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
                changes.push(changed(entry, current, now));
            }
            _ => {
                summary.add += 1;
                changes.push(added(entry, now));
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

/// An applied job whose file says something else: the diff of the normal forms and, when the
/// schedule changed, the next fires before and after with the DST notes.
fn changed(entry: &Entry, current: &Applied, now: Timestamp) -> Change {
    let spec = &entry.spec;
    let tz = &spec.timezone.tz;
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
    Change {
        before: Some(current.definition.clone()),
        after: Some(after),
        diff: Some(diff),
        next_before,
        next_after,
        notes,
        reset_anchor: schedule_changed || re_enabled,
        ..Change::new(Action::Change, spec.name.as_str(), Some(entry.file.clone()))
    }
}

/// A job the ledger does not have (or has removed): its normal form and next fires.
fn added(entry: &Entry, now: Timestamp) -> Change {
    let spec = &entry.spec;
    let tz = &spec.timezone.tz;
    Change {
        after: Some(normal::to_yaml(spec)),
        next_after: fires(&spec.schedule, tz, now, now),
        notes: spec.schedule.dst_notes(tz, now, year_after(now)),
        reset_anchor: true,
        ..Change::new(Action::Add, spec.name.as_str(), Some(entry.file.clone()))
    }
}

/// The plan as a person reads it.
pub fn render(plan: &Plan, color: bool) -> String {
    let p = Paint::new(color);
    let mut out = String::new();
    let w = &mut out;
    for change in &plan.changes {
        render_change(w, &p, change);
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

/// One change of a plan, terraform-like: its sign, name and file, the added definition or the
/// diff, its next fires and its notes. Nothing for an unchanged job.
fn render_change(w: &mut String, p: &Paint, change: &Change) {
    let file = change.file.as_deref().unwrap_or("-");
    match change.action {
        Action::Unchanged => return,
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

/// The entries of the catalog that a plan adds or changes, with their change.
pub fn upserts<'a>(plan: &'a Plan, catalog: &'a Catalog) -> Vec<(&'a Change, &'a Entry)> {
    plan.changes
        .iter()
        .filter(|c| matches!(c.action, Action::Add | Action::Change))
        .filter_map(|c| catalog.get(&c.name).map(|e| (c, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::catalog;

    const NOW: &str = "2026-03-20T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// What the ledger would hold after applying `files` a day before [`NOW`].
    fn applied(files: &[(&str, &str)]) -> Vec<Applied> {
        let anchor: Timestamp = "2026-03-19T12:00:00Z".parse().unwrap();
        catalog(files, &[])
            .entries
            .iter()
            .map(|e| Applied {
                name: e.spec.name.to_string(),
                api_owned: false,
                active: true,
                revision: 1,
                hash: e.hash.clone(),
                definition: normal::to_yaml(&e.spec),
                source_path: Some(e.relative.clone()),
                schedule: Some(e.spec.schedule.clone()),
                timezone: Some(e.spec.timezone.tz.clone()),
                enabled: e.spec.enabled,
                anchor,
                n_runs: 7,
            })
            .collect()
    }

    fn api_job(name: &str, active: bool) -> Applied {
        Applied {
            api_owned: true,
            active,
            source_path: None,
            ..applied(&[(&format!("{name}.yaml"), DAILY)]).remove(0)
        }
    }

    const DAILY: &str = "schedule: '0 3 * * *'\ncommand: [backup]\n";
    const DAILY_COMMENTED: &str =
        "# nightly\ncommand: [backup]  # the tool\nschedule: '0 3 * * *'\n";
    const DAILY_OTHER_COMMAND: &str = "schedule: '0 3 * * *'\ncommand: [backup, --full]\n";
    const HOURLY: &str = "schedule: '0 * * * *'\ncommand: [backup]\n";
    const DISABLED: &str = "schedule: '0 3 * * *'\ncommand: [backup]\nenabled: false\n";

    /// Each change as `ACTION name` (unchanged ones included), sorted by name.
    fn actions(plan: &Plan) -> Vec<String> {
        plan.changes
            .iter()
            .map(|c| format!("{:?} {}", c.action, c.name))
            .collect()
    }

    #[test]
    fn plans_compare_files_with_the_ledger_by_content_hash() {
        let a = |text| ("a.yaml", text);
        type Files<'a> = Vec<(&'a str, &'a str)>;
        let cases: &[(&str, Files, Files, &[&str])] = &[
            ("a new file is added", vec![], vec![a(DAILY)], &["Add a"]),
            (
                "the same file is unchanged",
                vec![a(DAILY)],
                vec![a(DAILY)],
                &["Unchanged a"],
            ),
            (
                "comments and key order are no change",
                vec![a(DAILY)],
                vec![a(DAILY_COMMENTED)],
                &["Unchanged a"],
            ),
            (
                "another command is a change",
                vec![a(DAILY)],
                vec![a(DAILY_OTHER_COMMAND)],
                &["Change a"],
            ),
            (
                "a deleted file removes its job",
                vec![a(DAILY)],
                vec![],
                &["Remove a"],
            ),
            (
                "a renamed file is a removal and an addition",
                vec![a(DAILY)],
                vec![("b.yaml", DAILY)],
                &["Remove a", "Add b"],
            ),
            (
                "a file moved to a subfolder keeps its job",
                vec![a(DAILY)],
                vec![("nightly/a.yaml", DAILY)],
                &["Unchanged a"],
            ),
            (
                "changes are listed by name",
                vec![("c.yaml", DAILY), ("b.yaml", DAILY)],
                vec![("b.yaml", HOURLY), ("a.yaml", DAILY)],
                &["Add a", "Change b", "Remove c"],
            ),
        ];
        for (what, before, after, expected) in cases {
            let plan = plan(&catalog(after, &[]), &applied(before), now());
            assert_eq!(actions(&plan), *expected, "{what}");
            assert!(plan.errors.is_empty(), "{what}: {:?}", plan.errors);
            let s = plan.summary;
            let counted = s.add + s.change + s.remove + s.unchanged;
            assert_eq!(counted, expected.len(), "{what}: {s:?}");
            let changes = expected.iter().any(|e| !e.starts_with("Unchanged"));
            assert_eq!(plan.has_changes(), changes, "{what}");
        }
    }

    #[test]
    fn a_schedule_change_shows_next_fires_and_restarts_the_anchor() {
        let before = applied(&[("a.yaml", DAILY)]);
        let cases = [
            // (file, next fires shown, anchor restarts)
            (DAILY_OTHER_COMMAND, false, false),
            (HOURLY, true, true),
            (DISABLED, false, false),
        ];
        for (text, fires, reset) in cases {
            let plan = plan(&catalog(&[("a.yaml", text)], &[]), &before, now());
            let change = &plan.changes[0];
            assert_eq!(change.action, Action::Change, "{text}");
            assert_eq!(!change.next_after.is_empty(), fires, "{text}");
            assert_eq!(change.reset_anchor, reset, "{text}");
            assert!(
                change
                    .diff
                    .as_deref()
                    .unwrap()
                    .contains("applied (revision 1)")
            );
        }
        let hourly = plan(&catalog(&[("a.yaml", HOURLY)], &[]), &before, now());
        assert_eq!(
            hourly.changes[0].next_before,
            [
                "2026-03-21T03:00:00+00:00",
                "2026-03-22T03:00:00+00:00",
                "2026-03-23T03:00:00+00:00"
            ]
        );
        assert_eq!(hourly.changes[0].next_after[0], "2026-03-20T13:00:00+00:00");
        // Re-enabling restarts the anchor too.
        let disabled = applied(&[("a.yaml", DISABLED)]);
        let enabled = plan(&catalog(&[("a.yaml", DAILY)], &[]), &disabled, now());
        assert!(enabled.changes[0].reset_anchor);
    }

    #[test]
    fn removed_jobs_keep_their_history_and_inactive_ones_come_back_as_new() {
        let mut before = applied(&[("a.yaml", DAILY)]);
        let removal = plan(&catalog(&[], &[]), &before, now());
        assert_eq!(removal.changes[0].runs_kept, Some(7));
        assert_eq!(removal.changes[0].file.as_deref(), Some("a.yaml"));
        before[0].active = false;
        let back = plan(&catalog(&[("a.yaml", DAILY)], &[]), &before, now());
        assert_eq!(actions(&back), ["Add a"]);
        assert!(back.changes[0].reset_anchor);
        let gone = plan(&catalog(&[], &[]), &before, now());
        assert!(
            gone.changes.is_empty(),
            "an inactive job is not removed twice"
        );
    }

    #[test]
    fn api_owned_jobs_are_never_planned_for_and_a_file_cannot_take_one_over() {
        let ledger = vec![api_job("a", true), api_job("b", true), api_job("c", false)];
        // The catalog is told about API jobs too; plan checks on its own as well.
        let files = [("a.yaml", DAILY), ("c.yaml", DAILY)];
        let plan = plan(&catalog(&files, &[]), &ledger, now());
        assert_eq!(
            actions(&plan),
            ["Add c"],
            "a deleted API job's name is free"
        );
        assert_eq!(plan.api_owned, ["a", "b"]);
        assert_eq!(plan.errors.len(), 1);
        assert_eq!(plan.errors[0].file, "jobs.d/a.yaml");
        assert_eq!(
            plan.errors[0].message,
            "job `a` was created through the API; a file cannot take it over"
        );
        let refused = catalog(&files, &["a"]);
        assert_eq!(refused.entries.len(), 1, "the catalog drops the file's job");
    }

    #[test]
    fn the_rendered_plan_reads_like_terraform() {
        let before = applied(&[
            ("backup.yaml", DAILY),
            ("old.yaml", DAILY),
            ("same.yaml", DAILY),
        ]);
        let files = [
            ("backup.yaml", HOURLY),
            (
                "report.toml",
                "command = [\"report\"]\ntimezone = \"Europe/Berlin\"\nschedule = \"30 2 * * *\"\n",
            ),
            ("same.yaml", DAILY),
        ];
        let mut plan = plan(&catalog(&files, &[]), &before, now());
        plan.api_owned.push("from-api".into());
        insta::assert_snapshot!("plan_add_change_remove", render(&plan, false));
        let unchanged = super::plan(
            &catalog(&[("same.yaml", DAILY)], &[]),
            &applied(&[("same.yaml", DAILY)]),
            now(),
        );
        insta::assert_snapshot!("plan_no_changes", render(&unchanged, false));
    }
}
