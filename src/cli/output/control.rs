//! How pause, resume and status are printed.

use std::process::ExitCode;

use anyhow::Result;

use super::{OutputFormat, json};
use crate::api::wire::{PauseResult, StatusView};
use crate::cli::plural;

/// The outcome of `pause` (`pausing`) or `resume`.
pub fn render_pause(format: OutputFormat, pausing: bool, result: &PauseResult) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        json(result)?;
        return Ok(ExitCode::SUCCESS);
    }
    let job = &result.job;
    match (pausing, result.changed) {
        (true, true) => {
            println!("{job} paused; its scheduled fires are skipped until `jobctl resume {job}`")
        }
        (true, false) => println!("{job} was already paused"),
        (false, true) => println!("{job} resumed"),
        (false, false) => println!("{job} was not paused"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The followed repository's lines of `jobctl status`.
fn render_git(git: &crate::api::wire::GitView) {
    let short = |c: &str| c.get(..12).unwrap_or(c).to_string();
    let path = if git.path == "." {
        String::new()
    } else {
        format!(", folder {}", git.path)
    };
    println!("Git:      {} (branch {}{path})", git.url, git.branch);
    match (&git.applied_commit, &git.applied_at) {
        (Some(commit), Some(at)) => println!("  applied:    {} at {at}", short(commit)),
        _ => println!("  applied:    no commit yet"),
    }
    let remote = git.remote_commit.as_deref().map_or("-".to_string(), short);
    let behind = match (&git.held, git.behind) {
        (Some(_), _) => "behind: its newest commit is held back",
        (None, true) => "behind",
        (None, false) => "up to date",
    };
    println!("  remote:     {remote} ({behind})");
    match (&git.fetch_error, &git.last_fetch_at) {
        (Some(error), Some(at)) => println!(
            "  last fetch: {at} failed: {error} (tried again; last success {})",
            git.last_fetch_ok_at.as_deref().unwrap_or("never")
        ),
        (None, Some(at)) => println!("  last fetch: {at}"),
        _ => println!("  last fetch: not yet"),
    }
    if let Some(rewritten) = &git.rewritten {
        println!("  rewritten:  {rewritten}");
    }
    if let Some(held) = &git.held {
        println!(
            "  held back:  {} since {}: {} error{}; every job keeps its applied revision:",
            short(&held.commit),
            held.at,
            held.errors,
            plural(held.errors as usize)
        );
        for line in held.rendered.lines() {
            println!("    {line}");
        }
    }
}

/// `jobctl status`'s exit code, as `systemctl is-active` answers scripts: 0 when a daemon
/// serves the ledger and the files are valid, 3 when no daemon serves it, 4 when one does but
/// the jobs folder has errors.
fn status_code(view: &StatusView) -> ExitCode {
    if !view.daemon.running {
        ExitCode::from(3)
    } else if view.files.errors > 0 || view.git.as_ref().is_some_and(|g| g.held.is_some()) {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn render_status(format: OutputFormat, view: &StatusView) -> Result<ExitCode> {
    if format == OutputFormat::Json {
        json(view)?;
        return Ok(status_code(view));
    }
    let d = &view.daemon;
    match (d.running, &d.holder) {
        (true, Some(holder)) => println!(
            "Daemon:   running (leader: pid {} of node {holder}, since {}, term {})",
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
    if !view.nodes.is_empty() {
        println!("Nodes:");
        for n in &view.nodes {
            let role = match (n.alive, n.leader) {
                (true, true) => format!("leader, term {}", n.term.unwrap_or(0)),
                (true, false) => "alive".to_string(),
                (false, _) if n.lost_at.is_some() => format!(
                    "lost at {} (its runs were ended and retried)",
                    n.lost_at.as_deref().unwrap_or("-")
                ),
                (false, _) if n.stopped_at.is_some() => "stopped".to_string(),
                (false, _) => "lost (no heartbeat)".to_string(),
            };
            let labels = if n.labels.is_empty() {
                String::new()
            } else {
                format!(" [{}]", n.labels.join(","))
            };
            println!(
                "  {}{labels}  {role}; {} running; {} (pid {} on {}); last heartbeat {}",
                n.name,
                n.running,
                n.address.as_deref().unwrap_or("-"),
                n.pid,
                n.host,
                n.heartbeat_at
            );
        }
    }
    println!(
        "Ledger:   {} ({} job{})",
        view.ledger,
        view.jobs,
        plural(view.jobs)
    );
    if let Some(git) = &view.git {
        render_git(git);
    }
    let n_errors = view.files.errors;
    if view.git.is_some() && n_errors > 0 {
        // The held commit's errors, printed with it.
    } else if n_errors == 0 {
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
