//! The nodes that serve the ledger: each daemon writes its row when it starts (its name,
//! labels, API address, host, pid and incarnation), a heartbeat while it lives, and when it
//! stopped. The runs a node claims record its name (`runs.node`, see [`Ledger::set_node`])
//! and its incarnation (`runs.epoch`), which fences their ends.
//!
//! A node whose heartbeat is older than [`crate::rules::NODE_LOST_AFTER`] is declared lost by
//! the leader ([`Ledger::declare_lost`]), once and for good: its heartbeats are refused from
//! then on (it learns it was declared lost and stops), so are its claims, and the ends of
//! its runs, which the leader ends `failed` ("node lost") and retries.

use super::db::params;
use jiff::Timestamp;

use super::columns::{instant, instant_opt};
use super::lease::{check_epoch, next_incarnation};
use super::{ForLedger, Ledger, Result, stamp};

/// A node as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub name: String,
    pub labels: Vec<String>,
    /// Its API's URL.
    pub address: Option<String>,
    pub host: String,
    pub pid: i64,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
    /// When the leader declared it lost.
    pub lost_at: Option<Timestamp>,
    /// Its incarnation: the epoch its runs carry.
    pub epoch: Option<i64>,
    /// Its runs now running.
    pub running: i64,
}

/// A node the leader declared lost, with its runs still `running`.
#[derive(Clone, Debug)]
pub struct Lost {
    pub runs: Vec<super::runs::RunRow>,
    /// The names of the nodes declared lost now, each with its host and last heartbeat.
    pub nodes: Vec<(String, String, Timestamp)>,
}

/// Who a node is when it starts: what [`Ledger::join`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: Vec<String>,
    pub address: Option<String>,
    pub host: String,
    pub pid: i64,
}

/// A pending run whose job needs node labels (`runs_on`), with the reason it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingNeed {
    pub run: i64,
    pub job: String,
    pub labels: Vec<String>,
    pub reason: Option<String>,
}

/// The node a connection claims for: its name, and its labels as the claim's SQL reads them
/// (a JSON list).
#[derive(Debug)]
pub(super) struct Me {
    pub name: String,
    pub labels: String,
}

impl Ledger {
    /// Names the node this connection claims for, with its labels: the runs it claims record
    /// the name, and it claims only runs whose job's `runs_on` its labels cover.
    pub fn set_node(&mut self, name: &str, labels: &[String]) {
        self.node = Some(std::sync::Arc::new(Me {
            name: name.to_string(),
            labels: serde_json::to_string(labels).expect("labels serialise"),
        }));
    }

    /// Records a node joining at `now` (a restart under the same name starts its row afresh)
    /// and returns its incarnation: the epoch its runs carry.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn join(&mut self, node: &NodeInfo, now: Timestamp) -> Result<i64> {
        let labels = serde_json::to_string(&node.labels).expect("labels serialise");
        self.with_tx(|tx| {
            let epoch = next_incarnation(tx, now)?;
            tx.execute(
                "INSERT INTO nodes (name, labels, address, host, pid, started_at, heartbeat_at,
                                    epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET labels = excluded.labels,
                    address = excluded.address, host = excluded.host, pid = excluded.pid,
                    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
                    stopped_at = NULL, lost_at = NULL, epoch = excluded.epoch",
                params![
                    node.name,
                    labels,
                    node.address,
                    node.host,
                    node.pid,
                    stamp(now),
                    epoch
                ],
            )?;
            Ok(epoch)
        })
    }

    /// Records that the node of incarnation `epoch` is alive at `now`; `false` when it may
    /// not: it was declared lost (or a newer start took its name), and must stop.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn heartbeat(&self, name: &str, epoch: i64, now: Timestamp) -> Result<bool> {
        self.conn
            .execute(
                "UPDATE nodes SET heartbeat_at = ?2
                 WHERE name = ?1 AND epoch = ?3 AND lost_at IS NULL AND stopped_at IS NULL",
                params![name, stamp(now), epoch],
            )
            .map(|n| n == 1)
            .for_ledger(self)
    }

    /// Records that the node of incarnation `epoch` stopped at `now`.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn leave(&self, name: &str, epoch: i64, now: Timestamp) -> Result<()> {
        self.conn
            .execute(
                "UPDATE nodes SET stopped_at = ?2, heartbeat_at = ?2 WHERE name = ?1 AND epoch = ?3",
                params![name, stamp(now), epoch],
            )
            .map(drop)
            .for_ledger(self)
    }

    /// The leader's look for lost nodes, fenced by its `term`: declares lost every node (but
    /// `me`, the caller's incarnation) whose heartbeat is older than
    /// [`crate::rules::NODE_LOST_AFTER`] at `now` (the database's clock), and returns them with
    /// the runs still `running` under an incarnation that is no live node's (theirs, and
    /// those of nodes that stopped without ending them): the caller ends those.
    ///
    /// # Errors
    ///
    /// [`super::LedgerError::LeaseLost`] when `term` no longer leads, or a database failure.
    pub fn declare_lost(&mut self, term: i64, me: i64, now: Timestamp) -> Result<Lost> {
        let since = now
            .checked_sub(crate::rules::NODE_LOST_AFTER)
            .unwrap_or(now);
        let path = self.path.clone();
        let (nodes, ids) = self.with_tx(|tx| {
            check_epoch(tx, &path, term)?;
            let nodes = tx
                .prepare_cached(
                    "UPDATE nodes SET lost_at = ?1
                     WHERE lost_at IS NULL AND stopped_at IS NULL AND heartbeat_at < ?2
                       AND epoch IS DISTINCT FROM ?3
                     RETURNING name, host, heartbeat_at",
                )?
                .query_map(params![stamp(now), stamp(since), me], |r| {
                    let name: String = r.get(0)?;
                    let what = || format!("node {name}");
                    let at = instant(r, 2, &what)?;
                    Ok((name, r.get(1)?, at))
                })?
                .collect::<super::db::Result<Vec<(String, String, Timestamp)>>>()?;
            let ids = tx
                .prepare_cached(
                    "SELECT r.id FROM runs r WHERE r.state = 'running' AND r.epoch IS NOT NULL
                       AND r.epoch IS DISTINCT FROM ?1
                       AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.epoch = r.epoch
                                       AND n.lost_at IS NULL AND n.stopped_at IS NULL)
                     ORDER BY r.id",
                )?
                .query_map(params![me], |r| r.get::<i64>(0))?
                .collect::<super::db::Result<Vec<i64>>>()?;
            Ok((nodes, ids))
        })?;
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            runs.extend(self.run(id)?);
        }
        Ok(Lost { runs, nodes })
    }

    /// The nodes whose last sign of life is after `since`, or that are still running runs, by
    /// name, each with its runs now running.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn nodes(&self, since: Timestamp) -> Result<Vec<NodeRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT n.name, n.labels, n.address, n.host, n.pid, n.started_at,
                        n.heartbeat_at, n.stopped_at,
                        (SELECT count(*) FROM runs r WHERE r.state = 'running' AND r.node = n.name),
                        n.lost_at, n.epoch
                 FROM nodes n ORDER BY n.name",
            )
            .for_ledger(self)?;
        let rows: Vec<NodeRow> = stmt
            .query_map(params![], |r| {
                let name: String = r.get(0)?;
                let what = || format!("node {name}");
                Ok(NodeRow {
                    labels: serde_json::from_str(&r.get::<String>(1)?).unwrap_or_default(),
                    address: r.get(2)?,
                    host: r.get(3)?,
                    pid: r.get(4)?,
                    started_at: instant(r, 5, &what)?,
                    heartbeat_at: instant(r, 6, &what)?,
                    stopped_at: instant_opt(r, 7, &what)?,
                    running: r.get(8)?,
                    lost_at: instant_opt(r, 9, &what)?,
                    epoch: r.get(10)?,
                    name,
                })
            })
            .and_then(Iterator::collect)
            .for_ledger(self)?;
        Ok(rows
            .into_iter()
            .filter(|n| n.heartbeat_at > since || n.running > 0)
            .collect())
    }

    /// The labels of each node alive at `now` (not stopped, a heartbeat within
    /// `rules::NODE_LOST_AFTER`).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn alive_labels(&self, now: Timestamp) -> Result<Vec<Vec<String>>> {
        let since = now
            .checked_sub(crate::rules::NODE_LOST_AFTER)
            .unwrap_or(now);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT labels FROM nodes
                 WHERE stopped_at IS NULL AND lost_at IS NULL AND heartbeat_at >= ?1",
            )
            .for_ledger(self)?;
        stmt.query_map(params![stamp(since)], |r| r.get::<String>(0))
            .and_then(|rows| {
                rows.map(|l| l.map(|l| serde_json::from_str(&l).unwrap_or_default()))
                    .collect()
            })
            .for_ledger(self)
    }

    /// The pending runs whose job needs node labels.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn pending_needs(&self) -> Result<Vec<PendingNeed>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.id, r.job, v.runs_on, r.reason FROM runs r
                 JOIN revisions v ON v.id = r.revision_id
                 WHERE r.state = 'pending' AND v.runs_on IS NOT NULL ORDER BY r.id",
            )
            .for_ledger(self)?;
        stmt.query_map(params![], |r| {
            let needs: String = r.get(2)?;
            Ok(PendingNeed {
                run: r.get(0)?,
                job: r.get(1)?,
                labels: serde_json::from_str(&needs).unwrap_or_default(),
                reason: r.get(3)?,
            })
        })
        .and_then(Iterator::collect)
        .for_ledger(self)
    }

    /// Sets the reasons of pending runs (`None` clears one); a run no longer pending is left.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn set_pending_reasons(&self, reasons: &[(i64, Option<String>)]) -> Result<()> {
        if reasons.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction(super::db::Begin::Deferred)
            .for_ledger(self)?;
        {
            let mut stmt = tx
                .prepare_cached("UPDATE runs SET reason = ?2 WHERE id = ?1 AND state = 'pending'")
                .for_ledger(self)?;
            for (id, reason) in reasons {
                stmt.execute(params![id, reason]).for_ledger(self)?;
            }
        }
        tx.commit().for_ledger(self)
    }
}
