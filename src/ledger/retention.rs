//! Retention: deleting terminal runs that no rule keeps, in short batches, and giving the
//! freed pages back to the file system.

use super::db::params;
use jiff::Timestamp;

use super::{ForLedger, Ledger, Result, stamp};

/// Retention for one job: at most `keep` terminal runs, none finished before `before`.
#[derive(Clone, Debug)]
pub struct Retention {
    pub job: String,
    pub keep: u32,
    pub before: Timestamp,
}

impl Ledger {
    /// Deletes up to `batch` terminal runs that retention no longer keeps, with their events
    /// and output, in one short transaction; returns how many. Call until it returns 0.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn prune(&mut self, rules: &[Retention], batch: usize) -> Result<usize> {
        self.with_tx(|tx| {
            let mut doomed: Vec<i64> = Vec::new();
            for rule in rules {
                if doomed.len() >= batch {
                    break;
                }
                let room = (batch - doomed.len()) as i64;
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id FROM runs WHERE job = ?1
                           AND state NOT IN ('blocked', 'pending', 'running')
                           AND (finished_at < ?2 OR id IN (
                                SELECT id FROM runs WHERE job = ?1 AND state NOT IN ('blocked', 'pending', 'running')
                                ORDER BY id DESC LIMIT 9223372036854775807 OFFSET ?3))
                         ORDER BY id LIMIT ?4",
                    )?;
                let ids = stmt
                    .query_map(
                        params![rule.job, stamp(rule.before), rule.keep as i64, room],
                        |r| r.get::<i64>(0),
                    )
                    .and_then(Iterator::collect::<super::db::Result<Vec<i64>>>)?;
                doomed.extend(ids);
            }
            for id in &doomed {
                for sql in [
                    "DELETE FROM run_output_chunks WHERE run_id = ?1",
                    "DELETE FROM run_events WHERE run_id = ?1",
                    "DELETE FROM runs WHERE id = ?1",
                ] {
                    tx.prepare_cached(sql)?
                        .execute(params![id])?;
                }
            }
            Ok(doomed.len())
        })
    }

    /// Gives free pages back to the file system (the ledger uses incremental auto-vacuum), and
    /// turns that mode on for a ledger created before it (a one-time `VACUUM`).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn reclaim_space(&self) -> Result<()> {
        // PostgreSQL's autovacuum does this on its own.
        let Some(conn) = self.sqlite() else {
            return Ok(());
        };
        let mode: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .for_ledger(self)?;
        if mode != 2 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .and_then(|()| conn.execute_batch("VACUUM"))
                .for_ledger(self)?;
        }
        conn.execute_batch("PRAGMA incremental_vacuum")
            .for_ledger(self)
    }
}
