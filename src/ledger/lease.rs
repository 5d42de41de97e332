//! The daemon's lease: one daemon serves a ledger at a time, and the lease's epoch fences the
//! writes of a daemon that lost it.

use super::db::{Conn, Optional, params};
use jiff::Timestamp;

use super::columns::{instant, instant_opt};
use super::{ForLedger, Ledger, LedgerError, Result, stamp};

/// The lease every daemon takes on its ledger.
const LEASE: &str = "daemon";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub pid: Option<i64>,
    pub pid_start: Option<i64>,
    pub epoch: i64,
    pub acquired_at: Timestamp,
    pub released_at: Option<Timestamp>,
}

pub(super) fn check_epoch(conn: &Conn, path: &std::path::Path, epoch: i64) -> Result<()> {
    let current: Option<i64> = conn
        .query_row(
            "SELECT epoch FROM leases WHERE name = ?1 AND released_at IS NULL",
            params![LEASE],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| LedgerError::from_db(path, e))?;
    if current == Some(epoch) {
        Ok(())
    } else {
        Err(LedgerError::LeaseLost {
            path: path.to_path_buf(),
            epoch,
        })
    }
}

impl Ledger {
    /// Takes the daemon lease, with the next epoch. `alive` says whether a recorded holder is
    /// still running; a live holder keeps the lease and this returns [`LedgerError::LeaseHeld`].
    ///
    /// # Errors
    ///
    /// [`LedgerError::LeaseHeld`] naming the holder, or a SQLite failure.
    pub fn acquire_lease(
        &mut self,
        holder: &str,
        process: (i64, i64),
        now: Timestamp,
        alive: impl Fn(&LeaseRow) -> bool,
    ) -> Result<i64> {
        let path = self.path.clone();
        self.with_tx(|tx| {
            let current = lease_row(tx)?;
            if let Some(lease) = &current
                && lease.released_at.is_none()
                && alive(lease)
            {
                return Err(LedgerError::LeaseHeld {
                    path: path.clone(),
                    holder: lease.holder.clone(),
                    pid: lease.pid.unwrap_or(0),
                    since: stamp(lease.acquired_at),
                }
                .into());
            }
            let epoch = current.map_or(1, |l| l.epoch + 1);
            tx.execute(
                "INSERT INTO leases (name, holder, pid, pid_start, epoch, acquired_at, released_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid,
                 pid_start = excluded.pid_start, epoch = excluded.epoch,
                 acquired_at = excluded.acquired_at, released_at = NULL",
                params![LEASE, holder, process.0, process.1, epoch, stamp(now)],
            )?;
            Ok(epoch)
        })
    }

    /// Gives the lease back (at a clean shutdown), if this epoch still holds it.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn release_lease(&self, epoch: i64, now: Timestamp) -> Result<()> {
        self.conn
            .execute(
                "UPDATE leases SET released_at = ?3 WHERE name = ?1 AND epoch = ?2",
                params![LEASE, epoch, stamp(now)],
            )
            .map(drop)
            .for_ledger(self)
    }

    /// The daemon lease as last recorded.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn lease(&self) -> Result<Option<LeaseRow>> {
        lease_row(&self.conn).for_ledger(self)
    }
}

fn lease_row(conn: &Conn) -> super::db::Result<Option<LeaseRow>> {
    conn.query_row(
        "SELECT holder, pid, pid_start, epoch, acquired_at, released_at FROM leases WHERE name = ?1",
        params![LEASE],
        |r| {
            let what = || "the daemon lease".to_string();
            Ok(LeaseRow {
                holder: r.get(0)?,
                pid: r.get(1)?,
                pid_start: r.get(2)?,
                epoch: r.get(3)?,
                acquired_at: instant(r, 4, &what)?,
                released_at: instant_opt(r, 5, &what)?,
            })
        },
    )
    .optional()
}
