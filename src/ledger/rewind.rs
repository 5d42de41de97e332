//! A clock that went backwards: stamps the ledger holds from the future.
//!
//! A daemon that ran with its clock ahead (a wrong boot clock later fixed by NTP) wrote slot
//! cursors, `every` anchors and retry times in what is now the future: every schedule would
//! stay silent until real time caught up. [`Ledger::rewind_future`] brings them back to `now`,
//! in one transaction, and says what it moved; the daemon logs and records it.

use jiff::{SignedDuration, Timestamp};
use rusqlite::{TransactionBehavior, params};

use super::{Ledger, LedgerError, Result, stamp};

/// What [`Ledger::rewind_future`] moved back to `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewound {
    /// Jobs whose cursor or anchor was ahead, with the furthest of the two.
    pub jobs: Vec<(String, Timestamp)>,
    /// Pending runs created in the future (retries): their wait now starts at `now`.
    pub runs: usize,
}

impl Rewound {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.runs == 0
    }
}

/// Stamps less than this far ahead are the clock's ordinary jitter, not a correction.
const TOLERANCE: SignedDuration = SignedDuration::from_secs(1);

impl Ledger {
    /// Moves every job cursor and anchor that is ahead of `now` back to `now`, and shifts the
    /// wait of pending runs created ahead of `now` so it starts at `now` (a retry keeps its
    /// backoff). Nothing else changes.
    ///
    /// # Errors
    ///
    /// On a SQLite failure (nothing is written).
    pub fn rewind_future(&mut self, now: Timestamp) -> Result<Rewound> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let limit = now.saturating_add(TOLERANCE).unwrap_or(now);
        let ahead = |text: &str| text.parse::<Timestamp>().ok().filter(|t| *t > limit);
        let at = stamp(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let mut rewound = Rewound::default();
        {
            let mut jobs = tx
                .prepare("SELECT name, schedule_anchor, coalesce(slot_cursor, schedule_anchor) FROM jobs WHERE active = 1")
                .map_err(e)?;
            let rows: Vec<(String, String, String)> = jobs
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(Iterator::collect)
                .map_err(e)?;
            for (name, anchor, cursor) in rows {
                let (anchor, cursor) = (ahead(&anchor), ahead(&cursor));
                let Some(furthest) = anchor.max(cursor) else {
                    continue;
                };
                tx.execute(
                    "UPDATE jobs SET
                         schedule_anchor = CASE WHEN ?2 THEN ?4 ELSE schedule_anchor END,
                         slot_cursor = CASE WHEN ?3 THEN ?4 ELSE slot_cursor END
                     WHERE name = ?1",
                    params![name, anchor.is_some(), cursor.is_some(), at],
                )
                .map_err(e)?;
                rewound.jobs.push((name, furthest));
            }
            let mut runs = tx
                .prepare("SELECT id, created_at, not_before FROM runs WHERE state IN ('pending', 'blocked')")
                .map_err(e)?;
            let rows: Vec<(i64, String, Option<String>)> = runs
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(Iterator::collect)
                .map_err(e)?;
            for (id, created, not_before) in rows {
                let Some(created) = ahead(&created) else {
                    continue;
                };
                let shift = created.duration_since(now);
                let not_before = not_before
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .map(|t| stamp(t.saturating_sub(shift).unwrap_or(now).max(now)));
                tx.execute(
                    "UPDATE runs SET created_at = ?2, not_before = ?3 WHERE id = ?1",
                    params![id, at, not_before],
                )
                .map_err(e)?;
                rewound.runs += 1;
            }
        }
        tx.commit().map_err(e)?;
        Ok(rewound)
    }
}
