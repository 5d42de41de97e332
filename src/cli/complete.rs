//! Shell completion: `jobctl completions SHELL` prints a script that asks `jobctl` itself
//! (`JOBS_COMPLETE=SHELL jobctl -- WORDS…`, clap_complete's dynamic engine) for the words to
//! offer, so commands, flags and job names come from the same definition as the parser.
//!
//! Job names are the names of the files in the jobs folder: no ledger, no daemon, nothing
//! parsed, and nothing printed when the folder cannot be read. This module does not know
//! API-owned jobs (they live only in the ledger).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::CommandFactory as _;
use clap_complete::CompletionCandidate;
use clap_complete::env::{CompleteEnv, Shells};

use super::Cli;
use crate::{config, name::JobName, source};

/// The variable that turns a `jobctl` call into a completion request.
pub const VAR: &str = "JOBS_COMPLETE";

/// Answers a completion request and exits, when `JOBS_COMPLETE` asks for one; otherwise
/// returns at once.
pub fn answer_if_asked() {
    CompleteEnv::with_factory(Cli::command).var(VAR).complete();
}

/// The script that registers completion for `jobctl` in `shell`.
///
/// # Errors
///
/// When the shell has no dynamic completion, or stdout cannot be written.
pub fn write_script(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| anyhow::anyhow!("no completion for the shell `{name}`"))?;
    completer.write_registration(VAR, "jobctl", "jobctl", "jobctl", out)?;
    Ok(())
}

/// The job names to offer: one per job file under the jobs folder the command line being
/// completed points at (`--dir`, then `JOBS_DIR`, then `dir` in jobs.toml, then `jobs.d`).
pub fn job_names() -> Vec<CompletionCandidate> {
    names_in(&jobs_dir(std::env::args_os()))
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

fn jobs_dir(args: impl Iterator<Item = OsString>) -> PathBuf {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let given = args.iter().enumerate().find_map(|(i, a)| match a.as_str() {
        "--dir" => args.get(i + 1).cloned(),
        other => other.strip_prefix("--dir=").map(str::to_string),
    });
    given
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("JOBS_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| config::load(None).ok().and_then(|c| c.dir))
        .unwrap_or_else(|| PathBuf::from("jobs.d"))
}

/// The names of the job files under `dir`, sorted, each once; none when it cannot be read.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let Ok((found, _)) = source::list(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = found
        .iter()
        .filter_map(|(_, relative)| {
            let file = relative.rsplit('/').next()?;
            let (stem, _) = file.rsplit_once('.')?;
            JobName::parse(stem).ok().map(|_| stem.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_folder_comes_from_the_words_being_completed() {
        let cases: [(&[&str], &str); 4] = [
            (&["jobctl", "--", "jobctl", "--dir", "x", "get", ""], "x"),
            (&["jobctl", "--", "jobctl", "get", "--dir=y/z", ""], "y/z"),
            (&["jobctl", "--", "jobctl", "get", "--dir"], "jobs.d"),
            (&["jobctl", "--", "jobctl", "get", ""], "jobs.d"),
        ];
        // Without `--dir` the environment decides; the binary's tests cover that.
        if std::env::var_os("JOBS_DIR").is_some() {
            return;
        }
        for (words, want) in cases {
            let args = words.iter().map(OsString::from);
            assert_eq!(jobs_dir(args), PathBuf::from(want), "{words:?}");
        }
    }
}
