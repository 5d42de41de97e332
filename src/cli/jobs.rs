//! Commands on jobs and their files: validate, plan, apply, list, get, next, graph, and the
//! `cron` explainer. They read the jobs folder and the local ledger; `apply` is the one write.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{OutputFormat, Reported, Settings, now, open_read_only, output, plural, stderr_color};
use crate::catalog::{self, Catalog};
use crate::cron::CronExpr;
use crate::diag::{self, Diagnostic};
use crate::ledger::{JobRow, Ledger};
use crate::plan::{self, Plan};
use crate::saved_plan::SavedPlan;
use crate::schedule::Schedule;
use crate::source;
use crate::spec;

/// Reads and checks the jobs folder. Diagnostics keep the files' text for rendering.
struct Loaded {
    catalog: Catalog,
    sources: Vec<source::SourceFile>,
}

fn load(settings: &Settings, now: Timestamp, other_jobs: &[String]) -> Result<Loaded> {
    let scan = source::scan(&settings.dir).map_err(|d| {
        eprint!("{}", diag::render(&[d], |_| None, stderr_color()));
        Reported
    })?;
    let inputs = scan.inputs();
    let context = spec::Context {
        defaults: &settings.config.defaults,
        now,
    };
    let mut catalog = catalog::build(&inputs, context, other_jobs);
    catalog.diagnostics.extend(scan.problems);
    Ok(Loaded {
        catalog,
        sources: scan.files,
    })
}

fn print_diagnostics(loaded: &Loaded, diagnostics: &[Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let source_of = |file: &str| {
        loaded
            .sources
            .iter()
            .find(|s| s.display == file)
            .and_then(|s| std::str::from_utf8(&s.bytes).ok())
    };
    eprint!("{}", diag::render(diagnostics, source_of, stderr_color()));
}

pub fn validate(settings: &Settings) -> Result<ExitCode> {
    let mut loaded = load(settings, now()?, &[])?;
    // A ledger, when there is one, says which one-offs have fired (a CI checkout has none).
    if let Ok(Some(ledger)) = Ledger::open_read_only_at(&settings.ledger, settings.open)
        && let Ok(rows) = ledger.jobs_bare()
    {
        quiet_fired(&mut loaded, &rows);
    }
    let c = &loaded.catalog;
    if settings.output == OutputFormat::Json {
        output::json(&serde_json::json!({
            "valid": c.is_valid(),
            "files": c.n_files,
            "jobs": c.entries.len(),
            "errors": c.n_errors(),
            "warnings": c.n_warnings(),
            "diagnostics": c.diagnostics,
        }))?;
    } else {
        print_diagnostics(&loaded, &c.diagnostics);
        if c.is_valid() {
            println!(
                "{} valid: {} job{} in {} file{}{}.",
                settings.dir.display(),
                c.entries.len(),
                plural(c.entries.len()),
                c.n_files,
                plural(c.n_files),
                match c.n_warnings() {
                    0 => String::new(),
                    n => format!(", {n} warning{}", plural(n)),
                }
            );
        } else {
            eprintln!(
                "{} is invalid: {} error{}, {} warning{} in {} file{}.",
                settings.dir.display(),
                c.n_errors(),
                plural(c.n_errors()),
                c.n_warnings(),
                plural(c.n_warnings()),
                c.n_files,
                plural(c.n_files)
            );
        }
    }
    Ok(if c.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Loads the files, failing with their diagnostics when any is invalid.
fn load_valid(settings: &Settings, now: Timestamp, rows: &[JobRow]) -> Result<Loaded> {
    let mut loaded = load(settings, now, &crate::apply::api_owned_names(rows))?;
    quiet_fired(&mut loaded, rows);
    if !loaded.catalog.is_valid() {
        print_diagnostics(&loaded, &loaded.catalog.diagnostics);
        eprintln!(
            "{} error{} in {}; nothing was applied.",
            loaded.catalog.n_errors(),
            plural(loaded.catalog.n_errors()),
            settings.dir.display()
        );
        return Err(Reported.into());
    }
    // Warnings are worth seeing before a plan.
    print_diagnostics(&loaded, &loaded.catalog.diagnostics);
    Ok(loaded)
}

/// Silences the "in the past" warning of `at` jobs that have fired unchanged.
fn quiet_fired(loaded: &mut Loaded, rows: &[JobRow]) {
    // By name: a scan of every row for each `at` job is quadratic at 10,000 jobs.
    let mut by_name: std::collections::HashMap<&str, Vec<&JobRow>> =
        std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        by_name.entry(row.name.as_str()).or_default().push(row);
    }
    loaded.catalog.quiet_fired_at(|name, hash| {
        by_name.get(name).is_some_and(|rows| {
            rows.iter()
                .any(|r| crate::views::fired_unchanged(std::slice::from_ref(r), name, hash))
        })
    });
}

pub fn plan_command(
    settings: &Settings,
    detailed_exitcode: bool,
    out: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let now = now()?;
    let ledger = open_read_only(settings)?;
    let rows = match &ledger {
        Some(ledger) => ledger.jobs_bare().context("reading the ledger")?,
        None => Vec::new(),
    };
    let loaded = load_valid(settings, now, &rows)?;
    // As `apply` plans: only changed and removed jobs need their applied definition.
    let failed = std::cell::RefCell::new(None);
    let fetch = |name: &str| match ledger.as_ref()?.applied_definition(name) {
        Ok(found) => found,
        Err(e) => {
            failed.borrow_mut().get_or_insert(e);
            None
        }
    };
    let applied = crate::apply::applied_for_plan(&rows, &loaded.catalog, &fetch);
    if let Some(e) = failed.into_inner() {
        return Err(anyhow::Error::new(e).context("reading the ledger"));
    }
    let plan = plan::plan(&loaded.catalog, &applied, now);
    report_plan_errors(&loaded, &plan)?;
    print_plan(settings, &plan)?;
    if settings.output == OutputFormat::Table {
        // A pause is an operator's override that an apply keeps: worth seeing before one.
        for row in rows.iter().filter(|r| r.active) {
            if let Some(p) = &row.paused {
                println!(
                    "Note: {} is paused ({p}); applying keeps it paused.",
                    row.name
                );
            }
        }
    }
    if let Some(out) = out {
        let saved = saved_plan(settings, &loaded, &rows, &plan, now);
        write_saved_plan(out, &saved)?;
        if settings.output == OutputFormat::Table {
            println!(
                "Saved this plan to {}: `jobctl apply {}` applies exactly it, or refuses if the files or the ledger moved.",
                out.display(),
                out.display()
            );
        }
    }
    let code = if detailed_exitcode && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    };
    // The process ends here: freeing 10,000 parsed jobs one by one is time for nothing.
    std::mem::forget((loaded, rows, applied, plan));
    Ok(code)
}

fn report_plan_errors(loaded: &Loaded, plan: &Plan) -> Result<()> {
    if plan.errors.is_empty() {
        return Ok(());
    }
    print_diagnostics(loaded, &plan.errors);
    eprintln!("The plan cannot be applied; nothing was changed.");
    Err(Reported.into())
}

fn print_plan(settings: &Settings, plan: &Plan) -> Result<()> {
    match settings.output {
        OutputFormat::Json => output::json(plan),
        OutputFormat::Table | OutputFormat::Dot => {
            print!("{}", plan::render(plan, settings.color));
            Ok(())
        }
    }
}

pub fn apply(settings: &Settings) -> Result<ExitCode> {
    let now = now()?;
    // Validate before opening the ledger for writing: an invalid folder must not even create
    // it. API-owned jobs may be depended on, so their names come from a read-only look first.
    let existing = match open_read_only(settings) {
        Ok(Some(ledger)) => ledger.jobs_bare().unwrap_or_default(),
        _ => Vec::new(),
    };
    let loaded = load_valid(settings, now, &existing)?;
    let mut ledger = Ledger::open_at(&settings.ledger, settings.open)
        .with_context(|| format!("opening ledger {}", settings.ledger.display()))?;
    let git = crate::git::describe(&settings.dir);
    let outcome =
        match crate::apply::apply(&mut ledger, &loaded.catalog, now, &git, &Default::default()) {
            Ok(outcome) => outcome,
            Err(crate::apply::ApplyError::Plan(plan)) => {
                report_plan_errors(&loaded, &plan)?;
                unreachable!("a plan that failed has errors");
            }
            Err(crate::apply::ApplyError::Ledger(e)) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("applying to ledger {}", settings.ledger.display())));
            }
            Err(crate::apply::ApplyError::Moved(_)) => unreachable!("no saved plan"),
        };
    report_applied(settings, &mut ledger, outcome, &git)
}

/// What an apply did, as `jobctl apply` prints it; the daemon is told when it wrote.
fn report_applied(
    settings: &Settings,
    ledger: &mut Ledger,
    outcome: crate::apply::Outcome,
    git: &crate::ledger::GitInfo,
) -> Result<ExitCode> {
    let (record, plan) = (outcome.record, outcome.plan);
    if record.is_some() {
        ledger.wake_daemon();
    }
    match settings.output {
        OutputFormat::Json => output::json(&serde_json::json!({
            "format_version": "1",
            "applied": record.map(|r| r.id),
            "git_commit": git.commit,
            "git_dirty": git.dirty,
            "plan": plan,
        }))?,
        OutputFormat::Table | OutputFormat::Dot => {
            print!("{}", plan::render(&plan, settings.color));
            if let Some(r) = record {
                println!(
                    "Apply complete: {} added, {} changed, {} removed{}.",
                    r.added,
                    r.changed,
                    r.removed,
                    match (&git.commit, git.dirty) {
                        (Some(c), Some(true)) => format!(
                            " (from commit {}, with uncommitted changes)",
                            &c[..c.len().min(12)]
                        ),
                        (Some(c), _) => format!(" (from commit {})", &c[..c.len().min(12)]),
                        _ => String::new(),
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan with the files and the ledger's jobs it was computed from.
fn saved_plan(
    settings: &Settings,
    loaded: &Loaded,
    rows: &[JobRow],
    plan: &Plan,
    now: Timestamp,
) -> SavedPlan {
    let git = crate::git::describe(&settings.dir);
    let mut text = plan::render(plan, false);
    for row in rows.iter().filter(|r| r.active) {
        if let Some(p) = &row.paused {
            text.push_str(&format!(
                "Note: {} is paused ({p}); applying keeps it paused.\n",
                row.name
            ));
        }
    }
    SavedPlan {
        format: crate::saved_plan::FORMAT.to_string(),
        created_at: crate::ledger::stamp(now),
        dir: settings.dir.display().to_string(),
        commit: git.commit,
        dirty: git.dirty,
        files: crate::saved_plan::files(
            loaded
                .sources
                .iter()
                .map(|f| (f.relative.as_str(), f.bytes.as_slice())),
        ),
        ledger: crate::apply::seen_jobs(rows),
        plan: serde_json::to_value(plan).unwrap_or_default(),
        text,
        has_changes: plan.has_changes(),
    }
}

/// Writes a saved plan whole (a temporary file renamed over FILE), readable by its owner
/// alone: it holds every job file's text.
pub(super) fn write_saved_plan(out: &std::path::Path, saved: &SavedPlan) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = serde_json::to_string_pretty(saved)?;
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, out));
    written.with_context(|| format!("saving the plan to {}", out.display()))
}

/// Reads a saved plan, naming the file in any error.
pub(super) fn read_saved_plan(file: &std::path::Path) -> Result<SavedPlan> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the saved plan {}", file.display()))?;
    SavedPlan::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// The job files in `dir` by path, with their SHA-256; none when the folder is missing.
pub(super) fn folder_hashes(
    dir: &std::path::Path,
) -> Result<std::collections::BTreeMap<String, String>> {
    if !dir.exists() {
        return Ok(Default::default());
    }
    let scan = source::scan(dir).map_err(|d| anyhow::anyhow!("{d}"))?;
    Ok(scan
        .files
        .iter()
        .map(|f| (f.relative.clone(), crate::saved_plan::sha256(&f.bytes)))
        .collect())
}

/// Refuses a saved plan whose files moved, naming them.
pub(super) fn check_files(
    file: &std::path::Path,
    saved: &SavedPlan,
    dir: &std::path::Path,
) -> Result<()> {
    let moved = saved.moved_files(&folder_hashes(dir)?);
    if moved.is_empty() {
        return Ok(());
    }
    bail!(
        "the files changed since the plan in {} was made, so it was not applied:\n  {}\nPlan again (`jobctl plan --out {}`) and review the new plan",
        file.display(),
        moved.join("\n  "),
        file.display()
    )
}

/// `jobctl apply PLAN_FILE`: exactly the saved plan, or nothing.
pub fn apply_saved(settings: &Settings, file: &std::path::Path) -> Result<ExitCode> {
    let now = now()?;
    let saved = read_saved_plan(file)?;
    check_files(file, &saved, &settings.dir)?;
    let existing = match open_read_only(settings) {
        Ok(Some(ledger)) => ledger.jobs_bare().unwrap_or_default(),
        _ => Vec::new(),
    };
    let loaded = load_valid(settings, now, &existing)?;
    let mut ledger = Ledger::open_at(&settings.ledger, settings.open)
        .with_context(|| format!("opening ledger {}", settings.ledger.display()))?;
    let git = crate::ledger::GitInfo {
        commit: saved.commit.clone(),
        dirty: saved.dirty,
    };
    let outcome = match crate::apply::apply_saved(&mut ledger, &loaded.catalog, now, &git, &saved) {
        Ok(outcome) => outcome,
        Err(crate::apply::ApplyError::Moved(moved)) => bail!(
            "the ledger changed since the plan in {} was made, so it was not applied:\n  {}\nPlan again (`jobctl plan --out {}`) and review the new plan",
            file.display(),
            moved.join("\n  "),
            file.display()
        ),
        Err(crate::apply::ApplyError::Plan(plan)) => {
            report_plan_errors(&loaded, &plan)?;
            unreachable!("a plan that failed has errors");
        }
        Err(crate::apply::ApplyError::Ledger(e)) => {
            return Err(anyhow::Error::new(e)
                .context(format!("applying to ledger {}", settings.ledger.display())));
        }
    };
    report_applied(settings, &mut ledger, outcome, &git)
}

/// A job's next fires from its ledger row, at `now`.
fn row_next_fires(row: &JobRow, now: Timestamp, n: usize) -> Vec<jiff::Zoned> {
    crate::views::next_fires_in(row, now, n)
}

pub fn list(
    settings: &Settings,
    tag: Option<&str>,
    all: bool,
    search: Option<&str>,
) -> Result<ExitCode> {
    let now = now()?;
    let Some(ledger) = open_read_only(settings)? else {
        if settings.output == OutputFormat::Json {
            output::json(&serde_json::json!([]))?;
        } else {
            eprintln!(
                "No jobs applied yet: there is no ledger at {}. Run `jobctl apply`.",
                settings.ledger.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let mut rows: Vec<JobRow> = ledger
        .job_summaries()
        .context("reading the ledger")?
        .into_iter()
        .filter(|r| all || r.active)
        .filter(|r| tag.is_none_or(|t| r.tags.iter().any(|x| x == t)))
        .collect();
    if let Some(text) = search.filter(|t| !t.is_empty()) {
        // Best match first, as `GET /v1/jobs?q=` lists them.
        let commands =
            crate::views::listing::command_texts(&ledger).context("reading the ledger")?;
        let text = text.to_lowercase();
        let mut ranked: Vec<(crate::views::listing::Rank, JobRow)> = rows
            .into_iter()
            .filter_map(|r| {
                let command = commands.get(&r.name).map(String::as_str);
                crate::views::listing::rank(&r, &text, command).map(|rank| (rank, r))
            })
            .collect();
        ranked.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.name.cmp(&y.name)));
        rows = ranked.into_iter().map(|(_, r)| r).collect();
    }
    let mut counts = ledger.run_counts(None).context("reading the ledger")?;
    let jobs = crate::views::summaries(&rows, &mut counts, now);
    let code = output::job_list(settings.output, &jobs, now);
    // The process ends here: freeing 10,000 rows and views one by one is time for nothing.
    std::mem::forget((rows, jobs, counts));
    code
}

pub fn graph(settings: &Settings) -> Result<ExitCode> {
    let rows = match open_read_only(settings)? {
        Some(ledger) => ledger.job_summaries().context("reading the ledger")?,
        None => Vec::new(),
    };
    output::graph(settings.output, &crate::views::graph(&rows))
}

pub fn get(settings: &Settings, name: &str) -> Result<ExitCode> {
    let now = now()?;
    let ledger = open_read_only(settings)?;
    let row = match &ledger {
        Some(l) => l.job(name).context("reading the ledger")?,
        None => None,
    };
    let (Some(row), Some(ledger)) = (row, ledger) else {
        bail!(
            "no job `{name}` in the ledger {} (run `jobctl apply` to record the files; `jobctl list` shows what is there)",
            settings.ledger.display()
        );
    };
    let n_revisions = ledger.revision_count(name)?;
    let counts = ledger
        .run_counts(Some(name))?
        .remove(name)
        .unwrap_or_default();
    let fires = row_next_fires(&row, now, 5);
    output::job_detail(
        settings.output,
        &crate::views::detail(&row, &fires, counts, n_revisions, now),
    )
}

pub fn next(settings: &Settings, name: &str, count: usize) -> Result<ExitCode> {
    let now = now()?;
    let row = match open_read_only(settings)? {
        Some(l) => l.job(name).context("reading the ledger")?,
        None => None,
    };
    let (schedule, tz, zone, anchor) = match row.filter(|r| r.active) {
        Some(row) => {
            let zone = crate::views::zone_name(&row.timezone).to_string();
            (row.schedule, row.timezone, zone, row.schedule_anchor)
        }
        None => {
            // Not applied yet: answer from the files, so a job can be checked before apply.
            let loaded = load(settings, now, &[])?;
            let Some(entry) = loaded.catalog.get(name) else {
                bail!(
                    "no job `{name}` in the ledger or in {}",
                    settings.dir.display()
                );
            };
            (
                entry.spec.schedule.clone(),
                entry.spec.timezone.tz.clone(),
                entry.spec.timezone.name.clone(),
                now,
            )
        }
    };
    let fires: Vec<jiff::Zoned> = schedule
        .next_fires(&tz, anchor, now, count)
        .into_iter()
        .map(|t| t.to_zoned(tz.clone()))
        .collect();
    let description = match &schedule {
        Schedule::Cron(c) => c.describe(),
        other => other.to_string(),
    };
    let expression = schedule.to_string();
    output::fires(settings.output, &expression, &zone, &description, &fires)
}

pub fn cron(
    expression: &str,
    zone: &str,
    from: Option<&str>,
    count: usize,
    output_format: OutputFormat,
) -> Result<ExitCode> {
    let (zone_name, tz): (String, TimeZone) = spec::resolve_timezone(zone).map_err(|e| {
        anyhow::anyhow!(
            "{e}{}",
            e.suggestion
                .as_ref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        )
    })?;
    let from = match from {
        Some(text) => parse_instant(text, &tz).with_context(|| format!("--from `{text}`"))?,
        None => now()?,
    };
    let cron = CronExpr::parse(expression).map_err(|e| {
        let pointer = e
            .offset
            .map(|o| format!("\n  {expression}\n  {}^", " ".repeat(o)))
            .unwrap_or_default();
        anyhow::anyhow!("invalid cron expression: {e}{pointer}")
    })?;
    let fires: Vec<jiff::Zoned> = cron
        .upcoming(&tz, from, count)
        .into_iter()
        .map(|t| t.to_zoned(tz.clone()))
        .collect();
    output::fires(
        output_format,
        cron.as_str(),
        &zone_name,
        &cron.describe(),
        &fires,
    )
}

/// An RFC 3339 instant, or a local date-time in `tz`.
fn parse_instant(text: &str, tz: &TimeZone) -> Result<Timestamp> {
    crate::schedule::resolve_time(text, tz)
        .map(|t| t.instant)
        .map_err(anyhow::Error::new)
}
