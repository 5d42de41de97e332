//! Commands on the ledger itself: `jobctl ledger backup FILE`, `jobctl ledger check`,
//! `jobctl ledger copy --from A --to B`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::Settings;
use super::args::LedgerAction;
use crate::ledger::{Ledger, Location};

/// `jobctl ledger backup FILE` and `jobctl ledger check`, on the local ledger.
pub fn ledger_command(settings: &Settings, action: LedgerAction) -> Result<ExitCode> {
    if let LedgerAction::Copy { from, to } = action {
        return copy(settings, from.as_deref(), &to);
    }
    let path = &settings.ledger;
    let ledger = Ledger::open_read_only_at(path, settings.open)
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
        LedgerAction::Copy { .. } => unreachable!("handled above"),
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

/// `jobctl ledger copy`: the source must exist and no daemon may serve it (what it records
/// meanwhile would be left behind); the target is created or migrated, and must be empty.
fn copy(settings: &Settings, from: Option<&str>, to: &str) -> Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    let from = match from {
        Some(text) => Location::parse(text, &env).map_err(anyhow::Error::msg)?,
        None => settings.ledger.clone(),
    };
    let to = Location::parse(to, &env).map_err(anyhow::Error::msg)?;
    if from.display().to_string() == to.display().to_string() {
        anyhow::bail!("--from and --to are the same ledger ({})", to.display());
    }
    let source = Ledger::open_read_only_at(&from, settings.open)
        .with_context(|| format!("opening ledger {}", from.display()))?
        .with_context(|| format!("there is no ledger at {}", from.display()))?;
    if super::runs::daemon_up(&source)? {
        anyhow::bail!(
            "a `jobctl serve` is serving {}: stop it first, or the runs it records during the copy are left behind",
            from.display()
        );
    }
    let mut target = Ledger::open_at(&to, settings.open)
        .with_context(|| format!("opening ledger {}", to.display()))?;
    let copied = source
        .copy_into(&mut target)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    let counts: Vec<String> = copied
        .iter()
        .filter(|(table, _)| ["revisions", "jobs", "pauses", "runs", "run_events"].contains(table))
        .map(|(table, n)| format!("{n} {}", table.replace('_', " ")))
        .collect();
    println!(
        "Copied {} to {}: {}, with their output, in one transaction.",
        from.display(),
        to.display(),
        counts.join(", ")
    );
    println!(
        "Point --ledger (or `ledger =` in jobs.toml) at {} and start `jobctl serve`.",
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}
