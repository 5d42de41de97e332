//! `jobctl init`: a jobs folder with a commented example, and a `jobs.toml`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

const EXAMPLE: &str = r#"# A job file: one job per file, named after the file (this job is `hello`).
# Check it with `jobctl validate`, see what applying would do with `jobctl plan`,
# and record it with `jobctl apply`. Every field is described in the README.

description: Say hello every weekday morning

# A cron expression (crontab(5): minute hour day-of-month month day-of-week),
# or a map: {every: 15m}, {at: 2026-12-24T18:00:00}, {after: [other-job]}.
# Without a schedule, a job runs only when triggered.
schedule: "0 9 * * mon-fri"
timezone: UTC

# Either `command` (a list, run without a shell) or `run` (a script for `sh -c`).
command: [echo, "hello from jobs"]

# timeout: 10m
# retry: {attempts: 2, backoff: 30s}
# concurrency: forbid        # forbid | allow | replace
# env: {GREETING: hello}
# tags: [example]
"#;

const CONFIG: &str = r#"# jobs.toml: settings for every `jobctl` command run in this folder.
# Flags and JOBS_* environment variables override these.

dir = "jobs.d"
# ledger = ".jobs/ledger.db"
# timezone = "UTC"            # for jobs that do not name one

# [history]
# keep_runs = 1000
# max_age = "30d"
"#;

/// What stays out of git: the ledger (state, not definitions) and token files (secrets). Keep
/// tokens outside the repository anyway; this only guards against an accident.
const GITIGNORE: &str = "# Written by `jobctl init`: state and secrets stay out of git.
.jobs/
tokens
*.tokens
";

pub fn init(path: &Path) -> Result<ExitCode> {
    let dir = path.join("jobs.d");
    let example = dir.join("hello.yaml");
    let config = path.join(crate::config::FILE_NAME);
    let existing: Vec<String> = [&example, &config]
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist{}; `jobctl init` never overwrites files",
            existing.join(" and "),
            if existing.len() == 1 { "s" } else { "" }
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&example, EXAMPLE).with_context(|| format!("writing {}", example.display()))?;
    std::fs::write(&config, CONFIG).with_context(|| format!("writing {}", config.display()))?;
    // An existing .gitignore is the team's: add what is missing, never rewrite it.
    let ignore = path.join(".gitignore");
    let current = std::fs::read_to_string(&ignore).unwrap_or_default();
    let missing: Vec<&str> = GITIGNORE
        .lines()
        .filter(|l| !l.starts_with('#') && !current.lines().any(|c| c.trim() == *l))
        .collect();
    if !missing.is_empty() {
        let mut text = current.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        if current.is_empty() {
            text.push_str(GITIGNORE);
        } else {
            text.push_str("# Added by `jobctl init`: state and secrets stay out of git.\n");
            for line in missing {
                text.push_str(line);
                text.push('\n');
            }
        }
        std::fs::write(&ignore, text).with_context(|| format!("writing {}", ignore.display()))?;
    }
    println!(
        "Created {} and {} (and .gitignore entries for the ledger and token files).",
        example.display(),
        config.display()
    );
    println!("Next: `jobctl validate`, then `jobctl plan`, then `jobctl apply`.");
    Ok(ExitCode::SUCCESS)
}
