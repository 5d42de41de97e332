//! The command line: settings, and the dispatch of each command to its family.
//!
//! This edge turns arguments into calls on the core and the other edges, and results into text
//! or JSON. `args` is what clap parses; `jobs`, `runs`, `control`, `serve` and `ledger_ops` run
//! the commands on this machine's files and ledger, `remote` the same commands through a
//! server's API; `output` prints both alike. Exit codes: 0 success, 1 an error (invalid files,
//! a ledger problem), 2 a usage error or, with `plan --detailed-exitcode`, "there are changes".

mod args;
mod complete;
mod control;
mod init;
mod jobs;
mod ledger_ops;
mod operator;
mod output;
mod remote;
mod runs;
mod serve;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use jiff::Timestamp;

use crate::clock::Clock;
use crate::config::{self, Config};
use crate::ledger::{Ledger, Location, OpenOptions};
pub use args::{Cli, OutputFormat};
use args::{Command, RunAction};

/// Everything a command needs to know about where things are.
struct Settings {
    dir: PathBuf,
    ledger: Location,
    output: OutputFormat,
    config: Config,
    color: bool,
    /// How the ledger is opened (`JOBS_LOCK_WAIT`).
    open: OpenOptions,
}

/// A failure already reported to the user (diagnostics printed): exit 1 without more text.
#[derive(Debug)]
struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Reported {}

/// Runs the program and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`jobctl list | head`) as Unix tools do, instead of panicking
    // in `println!`.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    complete::answer_if_asked();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is::<Reported>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn settings(cli: &Cli) -> Result<Settings> {
    let config = config::load(cli.config.as_deref()).map_err(|e| {
        eprint!("{}", e.render(stderr_color()));
        Reported
    })?;
    let dir = cli
        .dir
        .clone()
        .or_else(|| config.dir.clone())
        .unwrap_or_else(|| PathBuf::from("jobs.d"));
    let ledger = cli
        .ledger
        .clone()
        .or_else(|| config.ledger.clone())
        .unwrap_or_else(|| {
            dir.parent()
                .unwrap_or(Path::new(""))
                .join(".jobs")
                .join("ledger.db")
        });
    let ledger = Location::parse(&ledger.to_string_lossy(), &|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    let output = match (cli.output, config.output.as_deref()) {
        (Some(o), _) => o,
        (None, Some("json")) => OutputFormat::Json,
        _ => OutputFormat::Table,
    };
    Ok(Settings {
        dir,
        ledger,
        output,
        config,
        color: stdout_color(),
        open: open_options(),
    })
}

/// `JOBS_LOCK_WAIT` (a duration such as `500ms`): how long a command waits for another
/// writer before reporting the ledger as locked. A value that does not parse is ignored.
fn open_options() -> OpenOptions {
    let lock_wait = std::env::var("JOBS_LOCK_WAIT")
        .ok()
        .and_then(|v| crate::duration::Duration::parse(&v).ok())
        .and_then(|d| d.as_signed().try_into().ok())
        .unwrap_or(OpenOptions::DEFAULT_LOCK_WAIT);
    OpenOptions { lock_wait }
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// `jobctl logs --job`: the window as given (a duration back from now or an instant), checked
/// here so a mistake is reported before any read.
fn job_log_query(
    job: String,
    since: Option<String>,
    until: Option<String>,
    grep: Option<String>,
) -> Result<runs::JobLogsQuery> {
    let now = now()?;
    for (flag, text) in [("--since", &since), ("--until", &until)] {
        if let Some(text) = text {
            crate::duration::instant_or_ago(text, now)
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
        }
    }
    Ok(runs::JobLogsQuery {
        job,
        since: since.unwrap_or_else(|| "24h".to_string()),
        until,
        grep: grep.filter(|g| !g.is_empty()),
    })
}

fn runs_query(
    job: Option<String>,
    state: Option<String>,
    limit: usize,
    since: Option<String>,
    watch: bool,
) -> Result<runs::RunsQuery> {
    let since = match since {
        Some(text) => Some(runs::parse_since(&text, now()?)?),
        None => None,
    };
    Ok(runs::RunsQuery {
        job,
        state,
        since,
        limit,
        watch,
    })
}

fn stdout_color() -> bool {
    !no_color() && std::io::stdout().is_terminal()
}

fn stderr_color() -> bool {
    !no_color() && std::io::stderr().is_terminal()
}

fn now() -> Result<Timestamp> {
    Ok(crate::clock::now()?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Completions { shell } = &cli.command {
        complete::write_script(*shell, &mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Cron {
        expression,
        tz,
        from,
        count,
    } = &cli.command
    {
        let output = cli.output.unwrap_or(OutputFormat::Table);
        return jobs::cron(expression, tz, from.as_deref(), *count, output);
    }
    if let Command::Init { path } = &cli.command {
        return init::init(path);
    }
    let settings = settings(&cli)?;
    if settings.output == OutputFormat::Dot && !matches!(cli.command, Command::Graph) {
        bail!("--output dot is only for `jobctl graph`; use --output table or json");
    }
    if let Some(server) = &cli.server {
        let client = crate::client::Client::new(server, cli.token.clone(), cli.ca_cert.as_deref())?;
        return remote_command(&client, &settings, cli.command);
    }
    match cli.command {
        Command::Validate => jobs::validate(&settings),
        Command::Plan {
            detailed_exitcode,
            out,
        } => jobs::plan_command(&settings, detailed_exitcode, out.as_deref()),
        Command::Apply {
            dry_run: true,
            detailed_exitcode,
            ..
        } => jobs::plan_command(&settings, detailed_exitcode, None),
        Command::Apply {
            saved: Some(file), ..
        } => jobs::apply_saved(&settings, &file),
        Command::Apply { .. } => jobs::apply(&settings),
        Command::List { tag, all, search } => {
            jobs::list(&settings, tag.as_deref(), all, search.as_deref())
        }
        Command::Get { name } => jobs::get(&settings, &name),
        Command::Next { name, count } => jobs::next(&settings, &name, count),
        Command::Serve(flags) => serve::serve(&settings, *flags),
        Command::Run {
            action: Some(action),
            ..
        } => match action {
            RunAction::Get { id } => runs::run_get(&settings, id),
            RunAction::Events { id } => runs::run_events(&settings, id),
            RunAction::Cancel { id } => runs::cancel(&settings, id),
        },
        Command::Run {
            action: None,
            name: Some(name),
            params,
        } => runs::run_now(&settings, &name, &params),
        Command::Run { .. } => {
            bail!("`jobctl run` needs a job name (or one of: get ID, events ID, cancel ID)")
        }
        Command::Trigger {
            name,
            params,
            wait,
            timeout,
        } => runs::trigger(&settings, &name, &params, wait, timeout.as_deref()),
        Command::Backfill {
            name,
            from,
            to,
            dry_run,
            parallel,
        } => runs::backfill(&settings, &name, (&from, &to), dry_run, parallel),
        Command::Pause { name, reason } => control::pause(&settings, &name, reason.as_deref()),
        Command::Resume { name } => control::resume(&settings, &name),
        Command::Runs {
            name,
            state,
            limit,
            since,
            watch,
        } => runs::runs(&settings, &runs_query(name, state, limit, since, watch)?),
        Command::Logs {
            job: Some(job),
            since,
            until,
            grep,
            ..
        } => runs::job_logs(&settings, &job_log_query(job, since, until, grep)?),
        Command::Logs {
            target,
            follow,
            tail,
            ..
        } => runs::logs(
            &settings,
            target.as_deref().unwrap_or_default(),
            follow,
            tail,
        ),
        Command::Status => control::status(&settings),
        Command::Graph => jobs::graph(&settings),
        Command::Ledger { action } => ledger_ops::ledger_command(&settings, action),
        Command::Create { .. } | Command::Update { .. } | Command::Delete { .. } => bail!(
            "API-owned jobs are managed through a server: pass --server URL (jobs in jobs.d are changed by editing their files)"
        ),
        Command::Cron { .. } | Command::Completions { .. } | Command::Init { .. } => {
            unreachable!("handled above")
        }
    }
}

/// A command against a server's API (`--server`).
fn remote_command(
    client: &crate::client::Client,
    settings: &Settings,
    command: Command,
) -> Result<ExitCode> {
    let f = settings.output;
    match command {
        Command::List { tag, all, search } => {
            remote::list(client, f, tag.as_deref(), all, search.as_deref())
        }
        Command::Get { name } => remote::get(client, f, &name),
        Command::Status => remote::status(client, f),
        Command::Graph => output::graph(f, &client.get("/v1/graph")?),
        Command::Trigger {
            name,
            params,
            wait,
            timeout,
        } => remote::trigger(client, f, &name, &params, wait, timeout),
        Command::Pause { name, reason } => remote::pause(client, f, &name, reason.as_deref()),
        Command::Resume { name } => remote::resume(client, f, &name),
        Command::Runs {
            name,
            state,
            limit,
            since,
            watch,
        } => remote::runs(client, f, &runs_query(name, state, limit, since, watch)?),
        Command::Run {
            action: Some(action),
            ..
        } => match action {
            RunAction::Get { id } => remote::run_get(client, f, id),
            RunAction::Events { id } => remote::run_events(client, f, id),
            RunAction::Cancel { id } => remote::cancel(client, f, id),
        },
        Command::Logs {
            job: Some(job),
            since,
            until,
            grep,
            ..
        } => remote::job_logs(client, f, &job_log_query(job, since, until, grep)?),
        Command::Backfill {
            name,
            from,
            to,
            dry_run,
            parallel,
        } => remote::backfill(
            client,
            f,
            &name,
            &crate::api::wire::BackfillBody {
                from,
                to,
                dry_run,
                parallel,
            },
        ),
        Command::Logs {
            target,
            follow,
            tail,
            ..
        } => remote::logs(
            client,
            f,
            target.as_deref().unwrap_or_default(),
            follow,
            tail,
        ),
        Command::Create { file } => remote::create(client, f, &file),
        Command::Update { name, file } => remote::update(client, f, &name, &file),
        Command::Delete {
            name,
            cancel_active,
        } => remote::delete(client, f, &name, cancel_active),
        Command::Plan {
            detailed_exitcode,
            out,
        } => remote::plan(client, f, &settings.dir, detailed_exitcode, out.as_deref()),
        Command::Apply {
            dry_run: true,
            detailed_exitcode,
            ..
        } => remote::plan(client, f, &settings.dir, detailed_exitcode, None),
        Command::Apply {
            saved: Some(file), ..
        } => remote::apply_saved(client, f, &settings.dir, &file),
        other => {
            let name = format!("{other:?}");
            let name = name
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or("")
                .to_lowercase();
            bail!(
                "`jobctl {name}` works on this machine's files and ledger, not with --server; --server applies to list, get, status, trigger, pause, resume, runs, run get|events|cancel, logs and plan"
            )
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn open_read_only(settings: &Settings) -> Result<Option<Ledger>> {
    Ledger::open_read_only_at(&settings.ledger, settings.open)
        .with_context(|| format!("opening ledger {}", settings.ledger.display()))
}

fn open(settings: &Settings) -> Result<Ledger> {
    Ledger::open_at(&settings.ledger, settings.open)
        .with_context(|| format!("opening ledger {}", settings.ledger.display()))
}

fn open_existing(settings: &Settings) -> Result<Ledger> {
    let missing = match settings.ledger.file() {
        Some(f) => !f.exists(),
        // A PostgreSQL database without the ledger's tables is no ledger yet either.
        None => open_read_only(settings)?.is_none(),
    };
    if missing {
        bail!(
            "there is no ledger at {} yet; run `jobctl apply` first",
            settings.ledger.display()
        );
    }
    open(settings)
}

fn clock() -> Result<Clock> {
    Ok(Clock::from_env()?)
}
