//! Commands on runs: run (in the foreground), trigger, runs, run get, run events, run cancel,
//! logs.
//!
//! They work on the local ledger, also while a daemon runs: reads never block (WAL), and the
//! few writes (a trigger, a cancel request) are one short transaction each, which the daemon
//! notices by watching the ledger. The helpers on runs (`next_attempt`, `LogTarget`, …) serve
//! `cli::remote` too; what is printed lives in `output::runs`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration as StdDuration;

use anyhow::{Context as _, Result, anyhow, bail};
use jiff::Timestamp;
use serde_json::json;

use super::operator::operator;
use super::output::runs::{
    Spinner, print_line, render_cancel, render_events, render_queued, render_run, render_runs,
    run_header, run_line,
};
use super::{OutputFormat, Settings, clock, open_existing, output};
use crate::api::wire::{self, CancelResult, OutputLine, Run, RunEvent};
use crate::ledger::{Ledger, NewRun, RunFilter};
use crate::run::{RunState, Trigger};
use crate::runner;

fn kill_grace(settings: &Settings) -> StdDuration {
    StdDuration::try_from(settings.config.daemon.kill_grace.as_signed())
        .unwrap_or(StdDuration::from_secs(10))
}

/// `--param K=V` flags, checked against the job's declared parameters.
fn params(
    settings: &Settings,
    ledger: &Ledger,
    job: &str,
    given: &[String],
) -> Result<(i64, Option<serde_json::Value>)> {
    let row = ledger
        .job(job)
        .with_context(|| format!("reading job {job}"))?
        .filter(|r| r.active)
        .with_context(|| {
            format!(
                "no job `{job}` in the ledger {} (`jobctl list` shows the jobs; `jobctl apply` records new files)",
                settings.ledger.display()
            )
        })?;
    let spec = crate::executor::parse_definition(
        job,
        &row.definition,
        &settings.config.defaults,
        super::now()?,
    )
    .map_err(anyhow::Error::msg)?;
    let mut values = BTreeMap::new();
    for pair in given {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--param `{pair}` is not KEY=VALUE");
        };
        values.insert(key.to_string(), value.to_string());
    }
    let value = crate::spec::bind_params(job, &spec.params, values).map_err(|e| match e {
        crate::spec::ParamError::Missing { ref name, .. } => {
            anyhow::anyhow!("{e}: pass --param {name}=VALUE")
        }
        other => anyhow::Error::new(other),
    })?;
    Ok((row.revision_id, value))
}

pub fn run_now(settings: &Settings, job: &str, given: &[String]) -> Result<ExitCode> {
    // The same connection records the run: opened once, with the command's lock wait.
    let ledger = open_existing(settings)?;
    let params = params(settings, &ledger, job, given)?.1;
    let (id, conclusion) = crate::foreground::run_foreground(
        ledger,
        &settings.dir,
        job,
        params,
        &settings.config,
        clock()?,
        kill_grace(settings),
    )?;
    let summary = match &conclusion.error {
        Some(e) => format!("run {id} of {job}: {} ({e})", conclusion.state),
        None => format!("run {id} of {job}: {}", conclusion.state),
    };
    eprintln!("{summary}");
    if let Some(at) = conclusion.retry_at {
        eprintln!(
            "The job retries: the next attempt is queued for {} (a running `jobctl serve` starts it).",
            crate::ledger::stamp(at)
        );
    }
    Ok(match (conclusion.exit_code, conclusion.state) {
        (_, RunState::Succeeded) => ExitCode::SUCCESS,
        (Some(code), _) => ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1)),
        (None, _) => ExitCode::from(1),
    })
}

pub fn trigger(
    settings: &Settings,
    job: &str,
    given: &[String],
    wait: bool,
    timeout: Option<&str>,
) -> Result<ExitCode> {
    let overrides = crate::run::Overrides::with_timeout(timeout).map_err(|e| anyhow!("--{e}"))?;
    let mut ledger = open_existing(settings)?;
    let (revision_id, params) = params(settings, &ledger, job, given)?;
    let now = clock()?.now();
    let mut new = NewRun::now(job, revision_id, Trigger::Manual, params, now).by(operator());
    new.overrides = overrides;
    let id = ledger
        .create_run(&new, now)
        .with_context(|| format!("queueing a run of {job}"))?;
    ledger.wake_daemon();
    let daemon_up = daemon_up(&ledger)?;
    if wait {
        if !daemon_up {
            bail!(
                "run {id} of {job} is queued, but no `jobctl serve` is running on {} to start it; `jobctl run {job}` runs a job here and waits",
                settings.ledger.display()
            );
        }
        eprintln!("run {id} of {job} queued");
        return wait_for_run(settings, &ledger, id);
    }
    let page = dashboard(settings).map(|base| format!("{base}/runs/{id}"));
    render_queued(settings.output, id, job, page.as_deref())?;
    if !daemon_up {
        eprintln!(
            "warning: no `jobctl serve` is running on {}; the run starts when one does (or use `jobctl run {job}` to run it here)",
            settings.ledger.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `jobctl backfill NAME --from --to`: the window's slots without a run, queued (or listed,
/// `--dry-run`) with the revision in force at each.
pub fn backfill(
    settings: &Settings,
    job: &str,
    (from, to): (&str, &str),
    dry_run: bool,
    parallel: usize,
) -> Result<ExitCode> {
    let now = clock()?.now();
    let at = |flag: &str, text: &str| {
        crate::duration::instant_or_ago(text, now).map_err(|e| anyhow!("--{flag}: {e}"))
    };
    let request = crate::replay::Request {
        job: job.to_string(),
        from: at("from", from)?,
        to: at("to", to)?,
        parallel,
        dry_run,
        by: Some(operator()),
    };
    let mut ledger = open_existing(settings)?;
    let replay = crate::replay::backfill(&mut ledger, &settings.config.defaults, &request, now)?;
    let view = wire::BackfillView::new(job, request.from, request.to, dry_run, &replay);
    if replay.written.is_some() {
        ledger.wake_daemon();
    }
    let code = output::runs::render_backfill(settings.output, &view)?;
    if replay.written.is_some() && !daemon_up(&ledger)? {
        eprintln!(
            "warning: no `jobctl serve` is running on {}; the runs start when one does",
            settings.ledger.display()
        );
    }
    Ok(code)
}

/// Waits for a queued run to start (a spinner on a terminal), follows its output, and exits
/// with its exit code.
fn wait_for_run(settings: &Settings, ledger: &Ledger, id: i64) -> Result<ExitCode> {
    let mut id = id;
    loop {
        let mut spinner = Spinner::new(id);
        loop {
            let run = ledger
                .run(id)?
                .with_context(|| format!("run {id} disappeared from the ledger"))?;
            if !run.state.is_waiting() {
                break;
            }
            spinner.tick();
            std::thread::sleep(StdDuration::from_millis(200));
        }
        spinner.clear();
        logs(settings, &id.to_string(), true, None)?;
        let run = Run::from(
            ledger
                .run(id)?
                .with_context(|| format!("run {id} disappeared from the ledger"))?,
        );
        // A failure that will be retried is not the end: follow the next attempt (written
        // in the same transaction as this end).
        let recent = wire::runs(ledger.runs(&crate::ledger::RunFilter {
            job: Some(run.job.clone()),
            limit: Some(100),
            ..Default::default()
        })?);
        match next_attempt(&recent, &run) {
            Some(next) => {
                eprintln!(
                    "run {id} ended {}; attempt {} is run {}",
                    run.state, next.attempt, next.id
                );
                id = next.id;
            }
            None => return Ok(exit_code_of(&run)),
        }
    }
}

/// The retry that follows `ended`, if one was queued: same first run, the next attempt.
pub fn next_attempt<'a>(recent: &'a [Run], ended: &Run) -> Option<&'a Run> {
    let first = ended.first_run_id.unwrap_or(ended.id);
    recent.iter().find(|r| {
        r.first_run_id == Some(first) && r.attempt == ended.attempt + 1 && r.id != ended.id
    })
}

/// A finished run's exit code, as `jobctl run` and `jobctl trigger --wait` exit with it.
pub fn exit_code_of(run: &Run) -> ExitCode {
    match (run.exit_code, run.state()) {
        (_, Some(RunState::Succeeded)) => ExitCode::SUCCESS,
        (Some(code), _) => ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1)),
        (None, _) => ExitCode::from(1),
    }
}

/// Whether a daemon serves this ledger: on SQLite, the lease's holder lives (on this
/// machine); on PostgreSQL, a node has a live heartbeat (by the database's clock).
pub(super) fn daemon_up(ledger: &Ledger) -> Result<bool> {
    if ledger.is_postgres() {
        let now = ledger
            .db_now(clock()?.now())
            .context("reading the database's clock")?;
        let alive = ledger.alive_labels(now).context("reading the nodes")?;
        return Ok(!alive.is_empty());
    }
    let lease = ledger.lease().context("reading the daemon's lease")?;
    Ok(lease.is_some_and(|lease| {
        lease.released_at.is_none()
            && matches!((lease.pid, lease.pid_start), (Some(pid), Some(start)) if runner::is_alive(pid, start))
    }))
}

pub fn cancel(settings: &Settings, id: i64) -> Result<ExitCode> {
    let mut ledger = open_existing(settings)?;
    let now = clock()?.now();
    let outcome = ledger
        .request_cancel(id, &operator(), now)
        .with_context(|| format!("cancelling run {id}"))?;
    ledger.wake_daemon();
    render_cancel(settings.output, &CancelResult::new(id, outcome))
}

/// What `jobctl runs` lists, locally or through a server.
pub struct RunsQuery {
    pub job: Option<String>,
    pub state: Option<String>,
    /// Only runs scheduled (or created) at or after this instant.
    pub since: Option<Timestamp>,
    pub limit: usize,
    /// Keep printing runs as they are added or change state, until interrupted.
    pub watch: bool,
}

/// `--since`: a duration back from now (`90m`, `2h`, `1d`) or an instant (RFC 3339, or a
/// date for its midnight in UTC).
///
/// # Errors
///
/// Neither form, with what was expected.
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(d) = crate::duration::Duration::parse(text) {
        return now
            .checked_sub(d.as_signed())
            .map_err(|e| anyhow::anyhow!("--since {text}: {e}"));
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return Ok(date.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp());
    }
    bail!(
        "--since {text}: expected a duration back from now (`30m`, `2h`, `1d`) or an instant (`2026-10-31T12:00:00Z`, `2026-10-31`)"
    )
}

/// How often `runs --watch` looks again.
const WATCH_EVERY: StdDuration = StdDuration::from_secs(1);

pub fn runs(settings: &Settings, query: &RunsQuery) -> Result<ExitCode> {
    let state = query.state.as_deref().map(RunState::parse).transpose()?;
    let filter = RunFilter {
        jobs: None,
        job: query.job.clone(),
        state,
        trigger: None,
        since: query.since,
        before: None,
        limit: Some(query.limit),
    };
    if query.watch {
        return watch_runs(settings.output, || match super::open_read_only(settings)? {
            Some(ledger) => Ok(wire::runs(
                ledger.runs(&filter).context("reading the runs")?,
            )),
            None => Ok(Vec::new()),
        });
    }
    let Some(ledger) = super::open_read_only(settings)? else {
        if settings.output == OutputFormat::Json {
            output::json(&json!([]))?;
        } else {
            eprintln!(
                "No runs: there is no ledger at {} yet.",
                settings.ledger.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let rows = ledger.runs(&filter).context("reading the runs")?;
    render_runs(settings.output, &wire::runs(rows))
}

/// `runs --watch`, as `kubectl get -w`: the runs as they are, then a line for each run that
/// appears or changes (state, attempt, exit), oldest first; with `-o json`, one JSON object per
/// line. Runs until interrupted or until stdout is closed.
pub fn watch_runs(
    format: OutputFormat,
    mut fetch: impl FnMut() -> Result<Vec<Run>>,
) -> Result<ExitCode> {
    use std::io::Write as _;
    let mut seen: BTreeMap<i64, String> = BTreeMap::new();
    let mut first = true;
    loop {
        let mut rows = fetch()?;
        rows.sort_by_key(|r| r.id);
        let changed: Vec<&Run> = rows
            .iter()
            .filter(|r| seen.get(&r.id) != Some(&watch_key(r)))
            .collect();
        let mut out = String::new();
        if format == OutputFormat::Json {
            for r in &changed {
                out.push_str(&serde_json::to_string(r)?);
                out.push('\n');
            }
        } else if !changed.is_empty() {
            let mut lines = vec![run_header()];
            lines.extend(changed.iter().map(|r| run_line(r)));
            let table = output::columns(&lines);
            // The header once, at the top.
            let skip = usize::from(!first);
            for line in table.lines().skip(skip) {
                out.push_str(line);
                out.push('\n');
            }
            first = false;
        }
        for r in &changed {
            seen.insert(r.id, watch_key(r));
        }
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader went away (`| head`): done.
            return Ok(ExitCode::SUCCESS);
        }
        drop(stdout);
        std::thread::sleep(WATCH_EVERY);
    }
}

/// What makes a run worth a new line in `--watch`.
fn watch_key(r: &Run) -> String {
    format!(
        "{}/{}/{:?}/{:?}/{:?}",
        r.state, r.attempt, r.exit_code, r.signal, r.duration_ms
    )
}

fn find_run(settings: &Settings, id: i64) -> Result<(Ledger, crate::ledger::RunRow)> {
    let ledger = super::open_read_only(settings)?
        .with_context(|| format!("there is no ledger at {}", settings.ledger.display()))?;
    let run = ledger
        .run(id)?
        .with_context(|| format!("no run {id} in the ledger {}", settings.ledger.display()))?;
    Ok((ledger, run))
}

/// The dashboard's address for links to runs: `[server] public_url` in `jobs.toml`.
fn dashboard(settings: &Settings) -> Option<String> {
    settings.config.notify.public_url.clone()
}

pub fn run_get(settings: &Settings, id: i64) -> Result<ExitCode> {
    let (_, run) = find_run(settings, id)?;
    render_run(
        settings.output,
        &Run::from(run).linked(dashboard(settings).as_deref()),
    )
}

pub fn run_events(settings: &Settings, id: i64) -> Result<ExitCode> {
    let (ledger, _) = find_run(settings, id)?;
    let events: Vec<RunEvent> = ledger
        .run_events(id)?
        .into_iter()
        .map(RunEvent::from)
        .collect();
    render_events(settings.output, &events)
}

/// A `logs` target: a run id, or a job's name for its latest run that started.
pub enum LogTarget<'a> {
    Run(i64),
    Job(&'a str),
}

impl LogTarget<'_> {
    pub(super) fn parse(text: &str) -> LogTarget<'_> {
        match text.parse::<i64>() {
            Ok(id) => LogTarget::Run(id),
            Err(_) => LogTarget::Job(text),
        }
    }
}

/// The newest of `runs` (newest first) that started: the one whose output a job's logs show.
pub fn latest_started(job: &str, runs: &[Run]) -> Result<i64> {
    runs.iter()
        .find(|r| r.started_at.is_some())
        .map(|r| r.id)
        .with_context(|| {
            format!("job `{job}` has no run that started yet (`jobctl runs {job}` lists its runs)")
        })
}

pub fn logs(
    settings: &Settings,
    target: &str,
    follow: bool,
    tail: Option<u64>,
) -> Result<ExitCode> {
    let id = match LogTarget::parse(target) {
        LogTarget::Run(id) => id,
        LogTarget::Job(job) => {
            let ledger = super::open_read_only(settings)?
                .with_context(|| format!("there is no ledger at {}", settings.ledger.display()))?;
            let runs = ledger.runs(&crate::ledger::RunFilter {
                job: Some(job.to_string()),
                limit: Some(100),
                ..Default::default()
            })?;
            if runs.is_empty() && ledger.job(job)?.is_none() {
                bail!(
                    "no job `{job}` and no run with that id in the ledger {} (`jobctl list` shows the jobs)",
                    settings.ledger.display()
                );
            }
            latest_started(job, &wire::runs(runs))?
        }
    };
    let (ledger, mut run) = find_run(settings, id)?;
    let mut after = match tail {
        Some(n) => {
            let last = ledger.output_lines(id)?;
            last.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX))
                .max(0)
        }
        None => 0,
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Follow by watching the ledger's files: each commit wakes us; the timeout is a backstop.
    // A PostgreSQL ledger has no files here: it is read every quarter second.
    let _watch = match settings.ledger.file() {
        Some(file) if follow => Some(crate::watch::watch_ledger(file, move || {
            let _ = tx.send(());
        })?),
        _ => None,
    };
    let backstop = if settings.ledger.file().is_some() {
        StdDuration::from_secs(1)
    } else {
        StdDuration::from_millis(250)
    };
    loop {
        after = print_output(settings.output, &ledger, id, after)?;
        let ended = run.state.is_terminal();
        if !follow || ended {
            break;
        }
        let _ = rx.recv_timeout(backstop);
        while rx.try_recv().is_ok() {}
        run = ledger
            .run(id)?
            .with_context(|| format!("run {id} disappeared from the ledger"))?;
        if run.state.is_terminal() {
            // One more read: lines flushed together with the end.
            print_output(settings.output, &ledger, id, after)?;
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a run's output after line `after`, a page at a time (a log may be far larger than
/// memory should hold); returns the last line's id.
/// `jobctl logs --job`: which lines, as the user gave them.
#[derive(Clone, Debug)]
pub struct JobLogsQuery {
    pub job: String,
    /// A duration back from now, or an instant.
    pub since: String,
    pub until: Option<String>,
    pub grep: Option<String>,
}

/// The output lines of every run of a job in a window, page by page, each with its run.
pub fn job_logs(settings: &Settings, query: &JobLogsQuery) -> Result<ExitCode> {
    let now = super::now()?;
    let at = |text: &str| crate::duration::instant_or_ago(text, now).map_err(anyhow::Error::msg);
    let since = at(&query.since)?;
    let until = query.until.as_deref().map(at).transpose()?;
    let ledger = super::open_read_only(settings)?
        .with_context(|| format!("there is no ledger at {}", settings.ledger.display()))?;
    if ledger.job(&query.job)?.is_none() {
        bail!(
            "no job `{}` in the ledger {} (`jobctl list` shows the jobs)",
            query.job,
            settings.ledger.display()
        );
    }
    let mut after = None;
    loop {
        let page = ledger.job_output(&crate::ledger::JobLogQuery {
            job: &query.job,
            since,
            until,
            contains: query.grep.as_deref(),
            after,
            max_lines: 4096,
            max_bytes: 512 * 1024,
        })?;
        for line in page.lines {
            output::runs::print_job_line(settings.output, &wire::JobLogLine::from(line))?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn print_output(format: OutputFormat, ledger: &Ledger, id: i64, mut after: i64) -> Result<i64> {
    loop {
        // A chunk holds up to 4096 lines: a page of as many decompresses each chunk once.
        let (lines, more) = ledger.run_output_page(id, after, 4096, 512 * 1024)?;
        for line in lines {
            after = line.id;
            print_line(format, &OutputLine::from(line))?;
        }
        if !more {
            return Ok(after);
        }
    }
}
