//! The command line: flags, settings, and one function per command.
//!
//! This edge turns arguments into calls on the core and the other edges, and results into text
//! or JSON. Exit codes: 0 success, 1 an error (invalid files, a ledger problem), 2 a usage error
//! or, with `plan --detailed-exitcode`, "there are changes".

mod complete;
mod init;
mod output;
mod remote;
mod runs;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::apply::stored_schedule;
use crate::catalog::{self, Catalog};
use crate::config::{self, Config};
use crate::cron::CronExpr;
use crate::diag::{self, Diagnostic};
use crate::ledger::{JobRow, Ledger};
use crate::plan::{self, Plan};
use crate::schedule::Schedule;
use crate::source;
use crate::spec;

#[derive(Debug, Parser)]
#[command(
    name = "jobctl",
    version,
    about = "A file-based, declarative job manager: job files in git, a plan, an apply, a ledger",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: ./jobs.toml if present]
    #[arg(long, global = true, env = "JOBS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The folder of job files [default: jobs.d]
    #[arg(long, global = true, env = "JOBS_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The ledger database [default: .jobs/ledger.db beside the jobs folder]
    #[arg(long, global = true, env = "JOBS_LEDGER", value_name = "PATH")]
    ledger: Option<PathBuf>,
    /// Output format [default: table]
    #[arg(long, short, global = true, env = "JOBS_OUTPUT", value_enum)]
    output: Option<OutputFormat>,
    /// Talk to this server's API instead of the local ledger (list, get, status, trigger,
    /// pause, resume, runs, run get|events|cancel, logs, plan)
    #[arg(long, global = true, env = "JOBS_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The API token to send with --server
    #[arg(
        long,
        global = true,
        env = "JOBS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Also trust this CA certificate (PEM) for an https:// --server, beside the system's
    /// roots and SSL_CERT_FILE
    #[arg(long, global = true, env = "JOBS_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    /// Graphviz, for `jobctl graph`
    Dot,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a jobs folder with a commented example job and a jobs.toml
    Init {
        /// Where to create them [default: the current folder]
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Check every job file and print every problem
    Validate,
    /// Show what `apply` would change (the same as `apply --dry-run`)
    Plan {
        /// Exit 0 when there are no changes, 2 when there are, 1 on error
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the ledger match the job files, in one transaction
    Apply {
        /// Show the plan and change nothing
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: exit 0 when there are no changes, 2 when there are, 1 on error
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// List the applied jobs
    List {
        /// Only jobs with this tag
        #[arg(long)]
        tag: Option<String>,
        /// Include jobs removed from the files
        #[arg(long)]
        all: bool,
    },
    /// Show one job: its definition, revision, and next fires
    Get {
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: String,
    },
    /// The next fires of a job
    Next {
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: String,
        /// How many
        #[arg(short = 'n', default_value_t = 5)]
        count: usize,
    },
    /// Explain a cron expression and list its next fires
    Cron {
        expression: String,
        /// Time zone (IANA name)
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Fires strictly after this instant (RFC 3339) [default: now]
        #[arg(long)]
        from: Option<String>,
        /// How many
        #[arg(short = 'n', default_value_t = 5)]
        count: usize,
    },
    /// Print a shell completion script (commands, flags and the jobs folder's job names)
    Completions { shell: clap_complete::Shell },
    /// Run the daemon: keep the ledger in step with the files, fire jobs, run them
    Serve(runs::ServeFlags),
    /// Run a job now, in the foreground, recorded in the ledger (or: run get|events|cancel ID)
    #[command(args_conflicts_with_subcommands = true)]
    Run {
        #[command(subcommand)]
        action: Option<RunAction>,
        /// The job to run now
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: Option<String>,
        /// A parameter, KEY=VALUE (repeatable)
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// Queue a run of a job for the daemon to start
    Trigger {
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: String,
        /// A parameter, KEY=VALUE (repeatable)
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Follow the run's output until it ends and exit with its exit code
        #[arg(long)]
        wait: bool,
    },
    /// Stop a job's scheduled fires until it is resumed (survives apply)
    Pause {
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: String,
        /// Why, recorded with who and when
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused job
    Resume {
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: String,
    },
    /// List runs, newest first
    Runs {
        /// Only this job's runs
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: Option<String>,
        /// Only runs in this state
        #[arg(long)]
        state: Option<String>,
        /// How many
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only runs scheduled since then: a duration back from now (`30m`, `2h`, `1d`) or an
        /// instant (`2026-10-31T12:00:00Z`, `2026-10-31`)
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Keep printing runs as they appear or change state, until interrupted (`-o json`:
        /// one object per line)
        #[arg(short, long)]
        watch: bool,
    },
    /// Print a run's output
    Logs {
        /// A run id, or a job's name for its latest run that started
        #[arg(value_name = "RUN_ID|JOB", add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        target: String,
        /// Keep printing while the run goes on, until it ends
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (with -f: the last N, then every new line)
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<u64>,
    },
    /// The daemon, errors in the files, active runs and next fires
    Status,
    /// The dependency graph: which jobs fire after or wait for which (`-o dot` for Graphviz)
    Graph,
    /// The ledger itself: a consistent backup of a live ledger, an integrity check
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// Create an API-owned job from a definition file (YAML, TOML or JSON); needs --server
    Create {
        /// The definition, in the job file format; the job's name is the file's name
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Replace an API-owned job's definition with a file's (as `kubectl replace`); needs --server
    Update {
        name: String,
        /// The whole definition, in the job file format (YAML, TOML or JSON)
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Remove an API-owned job (its history stays); needs --server
    Delete {
        name: String,
        /// Also cancel its pending and running runs
        #[arg(long)]
        cancel_active: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerAction {
    /// Write a consistent copy of the ledger to FILE (it must not exist); safe while
    /// `jobctl serve` runs
    Backup { file: PathBuf },
    /// Run SQLite's integrity check; exit 1 if it finds a problem
    Check,
}

#[derive(Debug, Subcommand)]
enum RunAction {
    /// Show one run
    Get { id: i64 },
    /// A run's events
    Events { id: i64 },
    /// Cancel a pending or running run
    Cancel { id: i64 },
}

/// Everything a command needs to know about where things are.
struct Settings {
    dir: PathBuf,
    ledger: PathBuf,
    output: OutputFormat,
    config: Config,
    color: bool,
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
    })
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
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
    crate::clock::now().map_err(anyhow::Error::msg)
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
        return cron(expression, tz, from.as_deref(), *count, output);
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
        Command::Validate => validate(&settings),
        Command::Plan { detailed_exitcode } => plan_command(&settings, detailed_exitcode),
        Command::Apply {
            dry_run: true,
            detailed_exitcode,
        } => plan_command(&settings, detailed_exitcode),
        Command::Apply { .. } => apply(&settings),
        Command::List { tag, all } => list(&settings, tag.as_deref(), all),
        Command::Get { name } => get(&settings, &name),
        Command::Next { name, count } => next(&settings, &name, count),
        Command::Serve(flags) => runs::serve(&settings, flags),
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
        Command::Trigger { name, params, wait } => runs::trigger(&settings, &name, &params, wait),
        Command::Pause { name, reason } => runs::pause(&settings, &name, reason.as_deref()),
        Command::Resume { name } => runs::resume(&settings, &name),
        Command::Runs {
            name,
            state,
            limit,
            since,
            watch,
        } => runs::runs(&settings, &runs_query(name, state, limit, since, watch)?),
        Command::Logs {
            target,
            follow,
            tail,
        } => runs::logs(&settings, &target, follow, tail),
        Command::Status => runs::status(&settings),
        Command::Graph => graph(&settings),
        Command::Ledger { action } => ledger_command(&settings, action),
        Command::Create { .. } | Command::Update { .. } | Command::Delete { .. } => bail!(
            "API-owned jobs are managed through a server: pass --server URL (jobs in jobs.d are changed by editing their files)"
        ),
        Command::Cron { .. } | Command::Completions { .. } | Command::Init { .. } => {
            unreachable!("handled above")
        }
    }
}

/// `jobctl ledger backup FILE` and `jobctl ledger check`, on the local ledger.
fn ledger_command(settings: &Settings, action: LedgerAction) -> Result<ExitCode> {
    let path = &settings.ledger;
    let ledger = Ledger::open_read_only(path)
        .with_context(|| format!("opening ledger {}", path.display()))?
        .with_context(|| format!("there is no ledger at {}", path.display()))?;
    match action {
        LedgerAction::Backup { file } => {
            ledger
                .backup_to(&file)
                .with_context(|| format!("backing up {} to {}", path.display(), file.display()))?;
            println!(
                "Backed up {} to {} (a consistent copy; restore it by putting it in the ledger's place while no daemon runs).",
                path.display(),
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LedgerAction::Check => {
            let problems = ledger
                .check()
                .with_context(|| format!("checking {}", path.display()))?;
            if problems.is_empty() {
                println!("{}: ok", path.display());
                Ok(ExitCode::SUCCESS)
            } else {
                for problem in &problems {
                    eprintln!("{}: {problem}", path.display());
                }
                eprintln!(
                    "error: the ledger is damaged ({} problems); restore a backup (`jobctl ledger backup`)",
                    problems.len()
                );
                Ok(ExitCode::FAILURE)
            }
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
        Command::List { tag, all } => remote::list(client, f, tag.as_deref(), all),
        Command::Get { name } => remote::get(client, f, &name),
        Command::Status => remote::status(client, f),
        Command::Graph => output::graph(f, &client.get("/v1/graph")?),
        Command::Trigger { name, params, wait } => remote::trigger(client, f, &name, &params, wait),
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
            target,
            follow,
            tail,
        } => remote::logs(client, f, &target, follow, tail),
        Command::Create { file } => remote::create(client, f, &file),
        Command::Update { name, file } => remote::update(client, f, &name, &file),
        Command::Delete {
            name,
            cancel_active,
        } => remote::delete(client, f, &name, cancel_active),
        Command::Plan { detailed_exitcode }
        | Command::Apply {
            dry_run: true,
            detailed_exitcode,
        } => remote::plan(client, f, &settings.dir, detailed_exitcode),
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

fn validate(settings: &Settings) -> Result<ExitCode> {
    let mut loaded = load(settings, now()?, &[])?;
    // A ledger, when there is one, says which one-offs have fired (a CI checkout has none).
    if let Ok(Some(ledger)) = Ledger::open_read_only(&settings.ledger)
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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

fn open_read_only(settings: &Settings) -> Result<Option<Ledger>> {
    Ledger::open_read_only(&settings.ledger)
        .with_context(|| format!("opening ledger {}", settings.ledger.display()))
}

fn plan_command(settings: &Settings, detailed_exitcode: bool) -> Result<ExitCode> {
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

fn apply(settings: &Settings) -> Result<ExitCode> {
    let now = now()?;
    // Validate before opening the ledger for writing: an invalid folder must not even create
    // it. API-owned jobs may be depended on, so their names come from a read-only look first.
    let existing = match open_read_only(settings) {
        Ok(Some(ledger)) => ledger.jobs_bare().unwrap_or_default(),
        _ => Vec::new(),
    };
    let loaded = load_valid(settings, now, &existing)?;
    let mut ledger = Ledger::open(&settings.ledger)
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
        };
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

/// A job's next fires from its ledger row, at `now`.
fn row_next_fires(row: &JobRow, now: Timestamp, n: usize) -> Vec<jiff::Zoned> {
    match jiff::tz::db().get(&row.timezone) {
        Ok(tz) => crate::views::next_fires_in(row, &tz, now, n),
        Err(_) => Vec::new(),
    }
}

fn list(settings: &Settings, tag: Option<&str>, all: bool) -> Result<ExitCode> {
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
    let rows: Vec<JobRow> = ledger
        .job_summaries()
        .context("reading the ledger")?
        .into_iter()
        .filter(|r| all || r.active)
        .filter(|r| tag.is_none_or(|t| r.tags.iter().any(|x| x == t)))
        .collect();
    let mut counts = ledger.run_counts(None).context("reading the ledger")?;
    let jobs = crate::views::summaries(&rows, &mut counts, now);
    let code = output::job_list(settings.output, &jobs, now);
    // The process ends here: freeing 10,000 rows and views one by one is time for nothing.
    std::mem::forget((rows, jobs, counts));
    code
}

fn graph(settings: &Settings) -> Result<ExitCode> {
    let rows = match open_read_only(settings)? {
        Some(ledger) => ledger.job_summaries().context("reading the ledger")?,
        None => Vec::new(),
    };
    output::graph(settings.output, &crate::views::graph(&rows))
}

fn get(settings: &Settings, name: &str) -> Result<ExitCode> {
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
        &crate::views::detail(&row, &fires, counts, n_revisions),
    )
}

fn next(settings: &Settings, name: &str, count: usize) -> Result<ExitCode> {
    let now = now()?;
    let row = match open_read_only(settings)? {
        Some(l) => l.job(name).context("reading the ledger")?,
        None => None,
    };
    let (schedule, zone, anchor) = match row.filter(|r| r.active) {
        Some(row) => (
            stored_schedule(&row).context("reading the job's stored schedule")?,
            row.timezone.clone(),
            row.schedule_anchor.parse().unwrap_or(now),
        ),
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
                entry.spec.timezone.name.clone(),
                now,
            )
        }
    };
    let tz = jiff::tz::db()
        .get(&zone)
        .with_context(|| format!("time zone {zone}"))?;
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

fn cron(
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
