//! The leader's lease: one daemon decides slots at a time (on PostgreSQL, the others follow:
//! they claim and run, see `nodes`), and the lease's epoch (its *term*) fences the writes of a
//! leader that lost it: [`check_epoch`] in the same transaction, under the write lock.
//!
//! The leader renews the lease with every heartbeat; a lease not renewed for
//! [`rules::LEADER_LEASE`] (by the database's clock) is taken by the next node that asks
//! ([`Ledger::lead`]), with the next term. A renewal names its term, so a leader that was
//! frozen and woke up finds the lease under another term and steps down.

use super::db::{Conn, Optional, params};
use jiff::Timestamp;

use super::columns::{instant, instant_opt};
use super::{ForLedger, Ledger, LedgerError, Result, stamp};
use crate::rules;

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
    /// Its last renewal (its acquisition until the first).
    pub renewed_at: Timestamp,
}

/// Who leads, as [`Ledger::lead`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// The caller leads, in this term.
    Leads { term: i64, taken: bool },
    /// Another node leads (its lease is live); `holder` and its term.
    Follows { holder: String, term: i64 },
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
            take(tx, holder, process, epoch, now)?;
            Ok(epoch)
        })
    }

    /// Keeps or takes the leader's lease for node `holder` at `now` (the database's clock):
    /// renews it if `held` is the term it holds; takes it, with the next term, if it was
    /// released or not renewed for [`rules::LEADER_LEASE`]; else says who leads.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn lead(
        &mut self,
        holder: &str,
        process: (i64, i64),
        held: Option<i64>,
        now: Timestamp,
    ) -> Result<Leadership> {
        if let Some(term) = held {
            // A renewal takes no write lock: it names its term, so it cannot extend a lease
            // another node has taken meanwhile.
            let renewed = self
                .conn
                .execute(
                    "UPDATE leases SET renewed_at = ?3
                     WHERE name = ?1 AND epoch = ?2 AND released_at IS NULL",
                    params![LEASE, term, stamp(now)],
                )
                .for_ledger(self)?;
            if renewed == 1 {
                return Ok(Leadership::Leads { term, taken: false });
            }
        }
        self.with_tx(|tx| {
            let current = lease_row(tx)?;
            // A live lease of another node is followed; one held under this node's own name
            // was its previous start's (a name is one node's), which is gone: taken at once.
            if let Some(lease) = &current
                && lease.released_at.is_none()
                && lease.holder != holder
                && now.duration_since(lease.renewed_at) < rules::LEADER_LEASE
            {
                return Ok(Leadership::Follows {
                    holder: lease.holder.clone(),
                    term: lease.epoch,
                });
            }
            let term = current.map_or(1, |l| l.epoch + 1);
            take(tx, holder, process, term, now)?;
            Ok(Leadership::Leads { term, taken: true })
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

/// Records `holder` as the lease's holder in `term` from `now`.
fn take(
    tx: &Conn,
    holder: &str,
    process: (i64, i64),
    term: i64,
    now: Timestamp,
) -> super::db::Result<()> {
    tx.execute(
        "INSERT INTO leases (name, holder, pid, pid_start, epoch, acquired_at, released_at,
                             renewed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?6)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid,
             pid_start = excluded.pid_start, epoch = excluded.epoch,
             acquired_at = excluded.acquired_at, released_at = NULL,
             renewed_at = excluded.renewed_at",
        params![LEASE, holder, process.0, process.1, term, stamp(now)],
    )
    .map(drop)
}

/// The next incarnation of a node: a counter in `leases` (row `nodes`), so every daemon start
/// on a ledger has a number no other start had.
pub(super) fn next_incarnation(tx: &Conn, now: Timestamp) -> super::db::Result<i64> {
    tx.query_row(
        "INSERT INTO leases (name, holder, epoch, acquired_at, released_at)
         VALUES ('nodes', '', 1, ?1, ?1)
         ON CONFLICT (name) DO UPDATE SET epoch = leases.epoch + 1, acquired_at = ?1
         RETURNING epoch",
        params![stamp(now)],
        |r| r.get(0),
    )
}

fn lease_row(conn: &Conn) -> super::db::Result<Option<LeaseRow>> {
    conn.query_row(
        "SELECT holder, pid, pid_start, epoch, acquired_at, released_at, renewed_at
         FROM leases WHERE name = ?1",
        params![LEASE],
        |r| {
            let what = || "the daemon lease".to_string();
            let acquired_at = instant(r, 4, &what)?;
            Ok(LeaseRow {
                holder: r.get(0)?,
                pid: r.get(1)?,
                pid_start: r.get(2)?,
                epoch: r.get(3)?,
                acquired_at,
                released_at: instant_opt(r, 5, &what)?,
                renewed_at: instant_opt(r, 6, &what)?.unwrap_or(acquired_at),
            })
        },
    )
    .optional()
}
