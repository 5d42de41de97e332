//! The command line as clap reads it: global flags, commands and their arguments. Nothing
//! here runs a command; `cli::run` dispatches the parsed [`Cli`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::complete;

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
    pub(super) config: Option<PathBuf>,
    /// The folder of job files [default: jobs.d]
    #[arg(long, global = true, env = "JOBS_DIR", value_name = "DIR")]
    pub(super) dir: Option<PathBuf>,
    /// The ledger: a SQLite file, or a PostgreSQL URL (postgres://USER@HOST:PORT/DB) [default: .jobs/ledger.db beside the jobs folder]
    #[arg(long, global = true, env = "JOBS_LEDGER", value_name = "PATH|URL")]
    pub(super) ledger: Option<PathBuf>,
    /// Output format [default: table]
    #[arg(long, short, global = true, env = "JOBS_OUTPUT", value_enum)]
    pub(super) output: Option<OutputFormat>,
    /// Talk to this server's API instead of the local ledger (list, get, status, trigger,
    /// pause, resume, runs, run get|events|cancel, logs, plan)
    #[arg(long, global = true, env = "JOBS_SERVER", value_name = "URL")]
    pub(super) server: Option<String>,
    /// The API token to send with --server
    #[arg(
        long,
        global = true,
        env = "JOBS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(super) token: Option<String>,
    /// Also trust this CA certificate (PEM) for an https:// --server, beside the system's
    /// roots and SSL_CERT_FILE
    #[arg(long, global = true, env = "JOBS_CA_CERT", value_name = "FILE")]
    pub(super) ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    /// Graphviz, for `jobctl graph`
    Dot,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Also save the plan, with the files and the ledger state it was computed from, for `jobctl apply FILE`
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Make the ledger match the job files, in one transaction
    Apply {
        /// A plan saved by `jobctl plan --out FILE`: apply exactly it, or refuse if the files or the ledger moved since
        #[arg(value_name = "PLAN_FILE", conflicts_with = "dry_run")]
        saved: Option<PathBuf>,
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
        /// Only jobs with this text (any case) in their name, tags, description, schedule or command, best match first
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
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
    Serve(Box<ServeFlags>),
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
        /// This run's timeout in place of the job's (`2h`), for this run and its retries
        /// only; recorded on the run (`jobctl run get`)
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
    },
    /// Run the slots of a past window that have no run, each with the revision in force then
    #[command(
        after_help = "Every slot of the job's schedule in [--from, --to) without a run gets one (trigger `backfill`), \
executing the revision that was applied at that slot, in slot order, at most --parallel at a time \
(one at a time when the job's concurrency is not `allow`). A slot that has a run is never run again. \
Slots the daemon has not accounted for yet are left to it.\n\nExamples:\n  \
jobctl backfill nightly --from 7d --to 1d --dry-run\n  \
jobctl backfill export --from 2026-11-28 --to 2026-11-30 --parallel 4"
    )]
    Backfill {
        #[arg(add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        name: String,
        /// The window's start: how long ago (`7d`), an instant or a date
        #[arg(long, value_name = "DURATION|INSTANT")]
        from: String,
        /// The window's end, not included: how long ago, an instant or a date [default: now]
        #[arg(
            long,
            value_name = "DURATION|INSTANT",
            default_value = "0s",
            hide_default_value = true
        )]
        to: String,
        /// List the slots and the revision each would run; create nothing
        #[arg(long)]
        dry_run: bool,
        /// How many of its runs at a time (1 to 64)
        #[arg(long, value_name = "N", default_value_t = 1)]
        parallel: usize,
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
        #[arg(value_name = "RUN_ID|JOB", add = clap_complete::ArgValueCandidates::new(complete::job_names), required_unless_present = "job", conflicts_with = "job")]
        target: Option<String>,
        /// Keep printing while the run goes on, until it ends
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (with -f: the last N, then every new line)
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<u64>,
        /// Every run of this job in a window instead (`--since`, `--until`), each line with its run
        #[arg(long, value_name = "JOB", conflicts_with_all = ["follow", "tail"], add = clap_complete::ArgValueCandidates::new(complete::job_names))]
        job: Option<String>,
        /// With --job: from this long ago (`30m`, `24h`, `7d`) or this instant [default: 24h]
        #[arg(long, requires = "job", value_name = "DURATION|INSTANT")]
        since: Option<String>,
        /// With --job: up to this long ago or this instant [default: now]
        #[arg(long, requires = "job", value_name = "DURATION|INSTANT")]
        until: Option<String>,
        /// With --job: only lines containing this text
        #[arg(long, requires = "job", value_name = "TEXT")]
        grep: Option<String>,
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
pub enum LedgerAction {
    /// Write a consistent copy of the ledger to FILE (it must not exist); safe while
    /// `jobctl serve` runs
    Backup { file: PathBuf },
    /// Run SQLite's integrity check; exit 1 if it finds a problem
    Check,
    /// Copy a whole ledger into an empty one, in one transaction: revisions, jobs, pauses,
    /// runs, events and output (SQLite to PostgreSQL, or back); stop `jobctl serve` first
    Copy {
        /// The ledger to copy: a SQLite file or a PostgreSQL URL [default: --ledger's]
        #[arg(long)]
        from: Option<String>,
        /// The empty ledger to fill: a SQLite file (created) or a PostgreSQL URL
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunAction {
    /// Show one run
    Get { id: i64 },
    /// A run's events
    Events { id: i64 },
    /// Cancel a pending or running run
    Cancel { id: i64 },
}

/// `jobctl serve`'s flags.
#[derive(Debug, clap::Args)]
pub struct ServeFlags {
    /// Runs beyond this many wait, in order [default: 64]
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
    /// This daemon's name among the nodes serving the ledger; each run records the node that ran it [default: HOST-PID]
    #[arg(long, env = "JOBS_NODE", value_name = "NAME")]
    pub node: Option<String>,
    /// This node's labels, comma-separated (a job's `runs_on` may require them)
    #[arg(
        long,
        env = "JOBS_LABELS",
        value_name = "LABEL,...",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
    /// Never apply the jobs folder, even while leading: the jobs come from `jobctl apply`
    /// (from CI) or the API. For a cluster whose nodes carry no checkout
    #[arg(long)]
    pub no_apply: bool,
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
    /// Follow this git repository instead of a jobs folder on disk: fetch it, apply whole valid commits (`[git] url`)
    #[arg(long, env = "JOBS_GIT_URL", value_name = "URL")]
    pub git_url: Option<String>,
    /// The branch to follow [default: main]
    #[arg(long, env = "JOBS_GIT_BRANCH", value_name = "BRANCH")]
    pub git_branch: Option<String>,
    /// The jobs folder inside the repository [default: jobs.d]
    #[arg(long, env = "JOBS_GIT_PATH", value_name = "PATH")]
    pub git_path: Option<String>,
    /// How often to fetch [default: 1m]
    #[arg(long, env = "JOBS_GIT_INTERVAL", value_name = "DURATION")]
    pub git_interval: Option<String>,
    /// A private key for SSH URLs
    #[arg(long, env = "JOBS_GIT_SSH_KEY_FILE", value_name = "FILE")]
    pub git_ssh_key_file: Option<std::path::PathBuf>,
    /// A file holding a token for HTTPS URLs (sent as the password of basic authentication)
    #[arg(long, env = "JOBS_GIT_TOKEN_FILE", value_name = "FILE")]
    pub git_token_file: Option<std::path::PathBuf>,
    /// Where the repository's mirror and work trees are kept [default: beside the ledger]
    #[arg(long, env = "JOBS_GIT_WORKDIR", value_name = "DIR")]
    pub git_workdir: Option<std::path::PathBuf>,
}
