//! Commands on runs and the daemon: serve, run, trigger, pause, resume, runs, run get, run
//! events, run cancel, logs, status.
//!
//! They work on the local ledger, also while a daemon runs: reads never block (WAL), and the
//! few writes (a trigger, a pause, a cancel request) are one short transaction each, which the
//! daemon notices by watching the ledger.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration as StdDuration;

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use serde_json::json;

use super::{OutputFormat, Settings, output, plural};
use crate::clock::Clock;
use crate::daemon;
use crate::ledger::{CancelOutcome, Ledger, NewRun, OutputLine, RunEvent, RunFilter, RunRow};
use crate::run::{RunState, Trigger};
use crate::runner;
use crate::views::{PauseView, StatusView};

fn open(settings: &Settings) -> Result<Ledger> {
    Ledger::open(&settings.ledger)
        .with_context(|| format!("opening ledger {}", settings.ledger.display()))
}

fn open_existing(settings: &Settings) -> Result<Ledger> {
    if !settings.ledger.exists() {
        bail!(
            "there is no ledger at {} yet; run `jobctl apply` first",
            settings.ledger.display()
        );
    }
    open(settings)
}

fn clock() -> Result<Clock> {
    Clock::from_env().map_err(anyhow::Error::msg)
}

/// Who an operator's action is recorded as: `$USER@host`.
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(uid_name)
        .unwrap_or_else(|| format!("uid {}", current_uid()));
    format!("{user}@{}", crate::host::hostname())
}

fn current_uid() -> libc::uid_t {
    // SAFETY: getuid has no failure and no memory effects.
    unsafe { libc::getuid() }
}

/// The name of this process's user from the password database: under systemd, cron or a
/// container `$USER` is often unset.
fn uid_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data; getpwuid_r writes into `pwd` and `buf`, whose sizes we pass.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            current_uid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn kill_grace(settings: &Settings) -> StdDuration {
    StdDuration::try_from(settings.config.daemon.kill_grace.as_signed())
        .unwrap_or(StdDuration::from_secs(10))
}

/// `jobctl serve`'s flags.
#[derive(Debug, clap::Args)]
pub struct ServeFlags {
    /// Runs beyond this many wait, in order [default: 16]
    #[arg(long, env = "JOBS_MAX_CONCURRENT_RUNS")]
    pub max_concurrent_runs: Option<usize>,
    /// At SIGTERM, how long active runs may finish before they are stopped [default: 30s]
    #[arg(long, env = "JOBS_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// After SIGTERM to a run, how long before SIGKILL [default: 10s]
    #[arg(long, env = "JOBS_KILL_GRACE")]
    pub kill_grace: Option<String>,
    /// Log format [default: human]
    #[arg(long, env = "JOBS_LOG_FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,
    /// The API's address, ADDRESS:PORT; port 0 picks a free port [default: 127.0.0.1:8631]
    #[arg(long, env = "JOBS_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// API tokens, one `ROLE NAME TOKEN` per line (ROLE: read or admin; NAME: who its writes are recorded as); JOBS_TOKEN adds an admin token
    #[arg(long, env = "JOBS_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Serve the API on a non-loopback address with no token (only behind an authenticating proxy)
    #[arg(long)]
    pub insecure: bool,
    /// Open API connections at most; beyond, idle ones give way [default: the descriptor limit less 256, at most 4096]
    #[arg(long, env = "JOBS_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Open API connections from one address at most [default: a quarter of --max-connections]
    #[arg(long, env = "JOBS_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Serve the API over HTTPS with this certificate chain (PEM, the server's own first); re-read on SIGHUP
    #[arg(long, env = "JOBS_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert; re-read on SIGHUP
    #[arg(long, env = "JOBS_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

pub fn serve(settings: &Settings, flags: ServeFlags) -> Result<ExitCode> {
    let mut config = settings.config.daemon.clone();
    if let Some(n) = flags.max_concurrent_runs {
        if n == 0 {
            bail!("--max-concurrent-runs must be at least 1");
        }
        config.max_concurrent_runs = n;
    }
    for (flag, value, slot) in [
        (
            "--shutdown-grace",
            &flags.shutdown_grace,
            &mut config.shutdown_grace,
        ),
        ("--kill-grace", &flags.kill_grace, &mut config.kill_grace),
    ] {
        if let Some(text) = value {
            *slot = crate::duration::Duration::parse(text)
                .map_err(|m| anyhow::anyhow!("{flag}: {m}"))?;
        }
    }
    let format = flags
        .log_format
        .or_else(|| config.log_format.clone())
        .unwrap_or_else(|| "human".to_string());
    init_logging(&format)?;
    if !settings.dir.is_dir() {
        bail!(
            "the jobs folder {} does not exist; create it (`jobctl init`) or pass --dir",
            settings.dir.display()
        );
    }
    let mut server = settings.config.server.clone();
    if let Some(listen) = flags.listen {
        server.listen = listen;
    }
    if let Some(file) = flags.token_file {
        server.token_file = Some(file);
    }
    if let (Some(cert), Some(key)) = (flags.tls_cert, flags.tls_key) {
        server.tls_cert = Some(cert);
        server.tls_key = Some(key);
    }
    // Before anything opens descriptors: runs, the ledger and the API share this limit.
    let nofile = crate::api::conns::raise_descriptor_limit();
    let derived = crate::api::conns::Limits::for_descriptors(nofile);
    for (flag, value) in [
        ("--max-connections", flags.max_connections),
        ("--max-connections-per-ip", flags.max_connections_per_ip),
    ] {
        if value == Some(0) {
            bail!("{flag} must be at least 1");
        }
    }
    let max = flags
        .max_connections
        .or(server.max_connections)
        .unwrap_or(derived.max);
    let per_ip = flags
        .max_connections_per_ip
        .or(server.max_connections_per_ip)
        .unwrap_or((max / 4).max(1))
        .min(max);
    server.max_connections = Some(max);
    server.max_connections_per_ip = Some(per_ip);
    if max as u64 + crate::api::conns::FD_RESERVE > nofile {
        tracing::warn!(
            max_connections = max,
            descriptors = nofile,
            "--max-connections leaves fewer than {} descriptors for runs and the ledger",
            crate::api::conns::FD_RESERVE
        );
    }
    let admin = std::env::var("JOBS_TOKEN").ok();
    let tokens = crate::api::auth::Tokens::load(
        server.token_file.as_deref(),
        admin.as_deref(),
        flags.insecure,
    )
    .map_err(anyhow::Error::msg)?;
    daemon::serve(daemon::Options {
        dir: settings.dir.clone(),
        ledger: settings.ledger.clone(),
        defaults: settings.config.defaults.clone(),
        daemon: config,
        server,
        notify: settings.config.notify.clone(),
        tokens,
        insecure: flags.insecure,
        clock: clock()?,
    })?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: &str) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("JOBS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(super::stderr_color());
    match format {
        "json" => builder.json().flatten_event(true).init(),
        "human" => builder.init(),
        other => bail!("--log-format `{other}` is not one of `human`, `json`"),
    }
    Ok(())
}

/// `--param K=V` flags, checked against the job's declared parameters.
fn params(
    settings: &Settings,
    ledger: &Ledger,
    job: &str,
    given: &[String],
) -> Result<(i64, Option<serde_json::Value>)> {
    let row = ledger
        .job(job)?
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
        Timestamp::now(),
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
    let params = {
        let ledger = open_existing(settings)?;
        params(settings, &ledger, job, given)?.1
    };
    let (id, conclusion) = crate::foreground::run_foreground(
        &settings.ledger,
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

pub fn trigger(settings: &Settings, job: &str, given: &[String], wait: bool) -> Result<ExitCode> {
    let mut ledger = open_existing(settings)?;
    let (revision_id, params) = params(settings, &ledger, job, given)?;
    let now = clock()?.now();
    let id = ledger.create_run(
        &NewRun::now(job, revision_id, Trigger::Manual, params, now).by(operator()),
        now,
    )?;
    ledger.wake_daemon();
    let daemon_up = daemon_pid(&ledger)?.is_some();
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
    render_queued(settings.output, id, job)?;
    if !daemon_up {
        eprintln!(
            "warning: no `jobctl serve` is running on {}; the run starts when one does (or use `jobctl run {job}` to run it here)",
            settings.ledger.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn render_queued(format: OutputFormat, id: i64, job: &str) -> Result<()> {
    if format == OutputFormat::Json {
        output::json(&json!({"run": id, "job": job, "state": "pending"}))
    } else {
        println!("run {id} of {job} queued");
        Ok(())
    }
}

/// Waits for a queued run to start (a spinner on a terminal), follows its output, and exits
/// with its exit code.
fn wait_for_run(settings: &Settings, ledger: &Ledger, id: i64) -> Result<ExitCode> {
    let mut id = id;
    loop {
        let mut spinner = super::remote::Spinner::new(id);
        loop {
            let run = ledger
                .run(id)?
                .with_context(|| format!("run {id} disappeared from the ledger"))?;
            if !run.state().is_some_and(RunState::is_waiting) {
                break;
            }
            spinner.tick();
            std::thread::sleep(StdDuration::from_millis(200));
        }
        spinner.clear();
        logs(settings, &id.to_string(), true, None)?;
        let run = ledger
            .run(id)?
            .with_context(|| format!("run {id} disappeared from the ledger"))?;
        // A failure that will be retried is not the end: follow the next attempt (written
        // in the same transaction as this end).
        let recent = ledger.runs(&crate::ledger::RunFilter {
            job: Some(run.job.clone()),
            limit: Some(100),
            ..Default::default()
        })?;
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
pub(super) fn next_attempt<'a>(recent: &'a [RunRow], ended: &RunRow) -> Option<&'a RunRow> {
    let first = ended.first_run_id.unwrap_or(ended.id);
    recent.iter().find(|r| {
        r.first_run_id == Some(first) && r.attempt == ended.attempt + 1 && r.id != ended.id
    })
}

/// A finished run's exit code, as `jobctl run` and `jobctl trigger --wait` exit with it.
pub(super) fn exit_code_of(run: &RunRow) -> ExitCode {
    match (run.exit_code, run.state()) {
        (_, Some(RunState::Succeeded)) => ExitCode::SUCCESS,
        (Some(code), _) => ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1)),
        (None, _) => ExitCode::from(1),
    }
}

/// The pid of the daemon serving this ledger, if one is alive.
fn daemon_pid(ledger: &Ledger) -> Result<Option<i64>> {
    Ok(ledger.lease()?.and_then(|lease| {
        let alive = lease.released_at.is_none()
            && matches!((lease.pid, lease.pid_start), (Some(pid), Some(start)) if runner::is_alive(pid, start));
        alive.then_some(lease.pid).flatten()
    }))
}

pub fn pause(settings: &Settings, job: &str, reason: Option<&str>) -> Result<ExitCode> {
    let ledger = open_existing(settings)?;
    let now = clock()?.now();
    let paused = ledger.pause(job, &operator(), reason, now)?;
    ledger.wake_daemon();
    let row = ledger.job(job)?;
    render_pause(
        settings.output,
        job,
        true,
        paused,
        row.and_then(|r| r.paused).map(|p| PauseView {
            by: p.by,
            at: p.at,
            reason: p.reason,
        }),
    )
}

pub fn resume(settings: &Settings, job: &str) -> Result<ExitCode> {
    let ledger = open_existing(settings)?;
    let resumed = ledger.resume(job)?;
    ledger.wake_daemon();
    render_pause(settings.output, job, false, resumed, None)
}

/// The outcome of `pause` (`pausing`) or `resume`.
pub(super) fn render_pause(
    format: OutputFormat,
    job: &str,
    pausing: bool,
    changed: bool,
    paused: Option<PauseView>,
) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        output::json(&json!({"job": job, "changed": changed, "paused": paused}))?;
        return Ok(ExitCode::SUCCESS);
    }
    match (pausing, changed) {
        (true, true) => {
            println!("{job} paused; its scheduled fires are skipped until `jobctl resume {job}`")
        }
        (true, false) => println!("{job} was already paused"),
        (false, true) => println!("{job} resumed"),
        (false, false) => println!("{job} was not paused"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cancel(settings: &Settings, id: i64) -> Result<ExitCode> {
    let mut ledger = open_existing(settings)?;
    let now = clock()?.now();
    let outcome = ledger.request_cancel(id, &operator(), now)?;
    ledger.wake_daemon();
    let result = match outcome {
        CancelOutcome::Cancelled => "cancelled",
        CancelOutcome::Requested => "cancel_requested",
    };
    render_cancel(settings.output, id, result)
}

pub(super) fn render_cancel(format: OutputFormat, id: i64, result: &str) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        output::json(&json!({"run": id, "result": result}))?;
        return Ok(ExitCode::SUCCESS);
    }
    if result == "cancelled" {
        println!("run {id} cancelled before it started");
    } else {
        println!("run {id}: cancellation requested; its supervisor stops it now");
    }
    Ok(ExitCode::SUCCESS)
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
    let state = query
        .state
        .as_deref()
        .map(RunState::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let filter = RunFilter {
        job: query.job.clone(),
        state,
        trigger: None,
        since: query.since.map(crate::ledger::stamp),
        before: None,
        limit: Some(query.limit),
    };
    if query.watch {
        return watch_runs(settings.output, || match super::open_read_only(settings)? {
            Some(ledger) => Ok(ledger.runs(&filter)?),
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
    render_runs(settings.output, &ledger.runs(&filter)?)
}

/// `runs --watch`, as `kubectl get -w`: the runs as they are, then a line for each run that
/// appears or changes (state, attempt, exit), oldest first; with `-o json`, one JSON object per
/// line. Runs until interrupted or until stdout is closed.
pub(super) fn watch_runs(
    format: OutputFormat,
    mut fetch: impl FnMut() -> Result<Vec<RunRow>>,
) -> Result<ExitCode> {
    use std::io::Write as _;
    let mut seen: BTreeMap<i64, String> = BTreeMap::new();
    let mut first = true;
    loop {
        let mut rows = fetch()?;
        rows.sort_by_key(|r| r.id);
        let changed: Vec<&RunRow> = rows
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
fn watch_key(r: &RunRow) -> String {
    format!(
        "{}/{}/{:?}/{:?}/{:?}",
        r.state, r.attempt, r.exit_code, r.signal, r.duration_ms
    )
}

fn run_header() -> [String; 9] {
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

fn run_line(r: &RunRow) -> [String; 9] {
    [
        r.id.to_string(),
        r.job.clone(),
        r.state.clone(),
        r.trigger.clone(),
        r.attempt.to_string(),
        r.scheduled_at.clone().unwrap_or_else(|| "-".into()),
        r.duration_ms.map_or("-".into(), format_ms),
        match (r.exit_code, r.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => crate::run::signal_name(s).to_string(),
            _ => "-".into(),
        },
        note(r),
    ]
}

pub(super) fn render_runs(format: OutputFormat, rows: &[RunRow]) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        output::json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("No runs.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![run_header()];
    lines.extend(rows.iter().map(run_line));
    print!("{}", output::columns(&lines));
    Ok(ExitCode::SUCCESS)
}

fn note(r: &RunRow) -> String {
    let mut parts = Vec::new();
    if r.slot_count > 1 {
        parts.push(format!("{} slots", r.slot_count));
    }
    if let Some(reason) = &r.reason {
        parts.push(reason.clone());
    } else if let Some(error) = &r.error
        && r.state != "succeeded"
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

fn find_run(settings: &Settings, id: i64) -> Result<(Ledger, RunRow)> {
    let ledger = super::open_read_only(settings)?
        .with_context(|| format!("there is no ledger at {}", settings.ledger.display()))?;
    let run = ledger
        .run(id)?
        .with_context(|| format!("no run {id} in the ledger {}", settings.ledger.display()))?;
    Ok((ledger, run))
}

pub fn run_get(settings: &Settings, id: i64) -> Result<ExitCode> {
    let (_, run) = find_run(settings, id)?;
    render_run(settings.output, &run)
}

pub(super) fn render_run(format: OutputFormat, run: &RunRow) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        output::json(run)?;
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
    ];
    let lines: Vec<[String; 2]> = pairs
        .into_iter()
        .map(|(k, v)| [format!("{k}:"), v])
        .collect();
    print!("{}", output::columns(&lines));
    Ok(ExitCode::SUCCESS)
}

pub fn run_events(settings: &Settings, id: i64) -> Result<ExitCode> {
    let (ledger, _) = find_run(settings, id)?;
    let events = ledger.run_events(id)?;
    render_events(settings.output, &events)
}

pub(super) fn render_events(format: OutputFormat, events: &[RunEvent]) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        output::json(&events)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![["AT", "EVENT", "MESSAGE"].map(String::from)];
    for e in events {
        lines.push([e.at.clone(), e.kind.clone(), e.message.clone()]);
    }
    print!("{}", output::columns(&lines));
    Ok(ExitCode::SUCCESS)
}

/// One output line: to stdout or stderr as the run wrote it, or as a JSON line.
pub(super) fn print_line(format: OutputFormat, line: &OutputLine) -> Result<()> {
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string(line)?);
    } else if line.stream == "stderr" {
        eprintln!("{}", line.line);
    } else {
        println!("{}", line.line);
    }
    Ok(())
}

/// A `logs` target: a run id, or a job's name for its latest run that started.
pub(super) enum LogTarget<'a> {
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
pub(super) fn latest_started(job: &str, runs: &[RunRow]) -> Result<i64> {
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
            latest_started(job, &runs)?
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
    let _watch = if follow {
        Some(crate::watch::watch_ledger(
            &settings.ledger,
            false,
            move || {
                let _ = tx.send(());
            },
        )?)
    } else {
        None
    };
    loop {
        after = print_output(settings.output, &ledger, id, after)?;
        let ended = run.state().is_none_or(RunState::is_terminal);
        if !follow || ended {
            break;
        }
        let _ = rx.recv_timeout(StdDuration::from_secs(1));
        while rx.try_recv().is_ok() {}
        run = ledger
            .run(id)?
            .with_context(|| format!("run {id} disappeared from the ledger"))?;
        if run.state().is_none_or(RunState::is_terminal) {
            // One more read: lines flushed together with the end.
            print_output(settings.output, &ledger, id, after)?;
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a run's output after line `after`, a page at a time (a log may be far larger than
/// memory should hold); returns the last line's id.
fn print_output(format: OutputFormat, ledger: &Ledger, id: i64, mut after: i64) -> Result<i64> {
    loop {
        // A chunk holds up to 4096 lines: a page of as many decompresses each chunk once.
        let (lines, more) = ledger.run_output_page(id, after, 4096, 512 * 1024)?;
        for line in &lines {
            after = line.id;
            print_line(format, line)?;
        }
        if !more {
            return Ok(after);
        }
    }
}

pub fn status(settings: &Settings) -> Result<ExitCode> {
    let now = super::now()?;
    let Some(ledger) = super::open_read_only(settings)? else {
        bail!(
            "there is no ledger at {} yet; run `jobctl apply` or `jobctl serve`",
            settings.ledger.display()
        );
    };
    let view = crate::views::status(&ledger, &settings.ledger, now, runner::is_alive)?;
    render_status(settings.output, &view)
}

/// `jobctl status`'s exit code, as `systemctl is-active` answers scripts: 0 when a daemon
/// serves the ledger and the files are valid, 3 when no daemon serves it, 4 when one does but
/// the jobs folder has errors.
fn status_code(view: &StatusView) -> ExitCode {
    if !view.daemon.running {
        ExitCode::from(3)
    } else if view.files.errors > 0 {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

pub(super) fn render_status(format: OutputFormat, view: &StatusView) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        output::json(view)?;
        return Ok(status_code(view));
    }
    let d = &view.daemon;
    match (d.running, &d.holder) {
        (true, Some(holder)) => println!(
            "Daemon:   running (pid {} on {holder}, since {}, epoch {})",
            d.pid.unwrap_or(0),
            d.since.as_deref().unwrap_or("-"),
            d.epoch.unwrap_or(0)
        ),
        (false, Some(_)) => println!(
            "Daemon:   not running (last: pid {} until {})",
            d.pid.unwrap_or(0),
            d.stopped_at
                .as_deref()
                .unwrap_or("it stopped without releasing its lease")
        ),
        _ => println!("Daemon:   never started on this ledger"),
    }
    println!(
        "Ledger:   {} ({} job{})",
        view.ledger,
        view.jobs,
        plural(view.jobs)
    );
    let n_errors = view.files.errors;
    if n_errors == 0 {
        println!("Files:    valid");
    } else {
        println!(
            "Files:    {n_errors} error{} (their jobs keep their last applied revision):",
            plural(n_errors as usize)
        );
        for line in view.files.rendered.as_deref().unwrap_or("").lines() {
            println!("  {line}");
        }
    }
    if view.active_runs.is_empty() {
        println!("Active:   none");
    } else {
        println!("Active:");
        for r in &view.active_runs {
            println!(
                "  run {} of {}: {} since {}",
                r.id,
                r.job,
                r.state,
                r.started_at.as_deref().unwrap_or(&r.created_at)
            );
        }
    }
    if !view.next_fires.is_empty() {
        println!("Next fires:");
        for f in &view.next_fires {
            println!("  {}  {}", f.at, f.job);
        }
    }
    Ok(status_code(view))
}
