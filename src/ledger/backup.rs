//! Backups and checks of a live ledger.
//!
//! The ledger runs in WAL mode: committed pages may sit in `ledger.db-wal` until a checkpoint,
//! so copying `ledger.db` alone can lose them. [`Ledger::backup_to`] writes a consistent,
//! compact copy from one read transaction (SQLite's `VACUUM INTO`), which never blocks the
//! daemon's writes; [`Ledger::check`] runs SQLite's integrity check; [`Ledger::checkpoint`]
//! folds the WAL into the database file, which the daemon does as it stops.

use std::path::Path;

use super::{ForLedger, Ledger, LedgerError, Result};

impl Ledger {
    /// Writes a consistent copy of the ledger to `target`, which must not exist.
    ///
    /// # Errors
    ///
    /// When `target` exists, or on a SQLite failure (a full disk, an unwritable folder).
    pub fn backup_to(&self, target: &Path) -> Result<()> {
        if target.exists() {
            return Err(LedgerError::Conflict {
                path: target.to_path_buf(),
                detail: format!(
                    "{} already exists; a backup never overwrites a file",
                    target.display()
                ),
            });
        }
        let text = target.to_str().ok_or_else(|| LedgerError::CannotOpen {
            path: target.to_path_buf(),
            detail: "the path is not UTF-8".to_string(),
        })?;
        self.sqlite_only("backup")?
            .execute("VACUUM INTO ?1", [text])
            .map(|_| ())
            .map_err(|e| LedgerError::from_sqlite(target, e))
    }

    /// SQLite's integrity check: the problems it finds, none when the ledger is sound.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn check(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .sqlite_only("check")?
            .prepare("PRAGMA integrity_check")
            .for_ledger(self)?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .for_ledger(self)?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// Folds the write-ahead log into the database file and empties it, so the file alone
    /// holds every commit (what a copy of `ledger.db` then gets).
    ///
    /// # Errors
    ///
    /// On a SQLite failure (another connection reading may keep part of the log).
    pub fn checkpoint(&self) -> Result<()> {
        // PostgreSQL has no log of ours to fold.
        let Some(conn) = self.sqlite() else {
            return Ok(());
        };
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .for_ledger(self)
    }

    /// The SQLite connection for `what`, which only a SQLite ledger does.
    fn sqlite_only(&self, what: &'static str) -> Result<&rusqlite::Connection> {
        self.sqlite().ok_or_else(|| LedgerError::SqliteOnly {
            path: self.path.clone(),
            what,
        })
    }
}
