//! Commands on the ledger file itself: `jobctl ledger backup FILE`, `jobctl ledger check`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::Settings;
use super::args::LedgerAction;
use crate::ledger::Ledger;

/// `jobctl ledger backup FILE` and `jobctl ledger check`, on the local ledger.
pub fn ledger_command(settings: &Settings, action: LedgerAction) -> Result<ExitCode> {
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
