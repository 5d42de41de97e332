//! The nodes that serve the ledger: each daemon writes its row when it starts (its name,
//! labels, API address, host and pid), a heartbeat while it lives, and when it stopped. The
//! runs a node claims record its name (`runs.node`, see [`Ledger::set_node`]).

use jiff::Timestamp;
use rusqlite::params;

use super::columns::{instant, instant_opt};
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
    /// Its runs now running.
    pub running: i64,
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

impl Ledger {
    /// Names the node this connection writes for: the runs it claims record it.
    pub fn set_node(&mut self, name: &str) {
        self.node = Some(name.into());
    }

    /// Records a node joining at `now` (a restart under the same name starts its row afresh).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn join(&self, node: &NodeInfo, now: Timestamp) -> Result<()> {
        let labels = serde_json::to_string(&node.labels).expect("labels serialise");
        self.conn
            .execute(
                "INSERT INTO nodes (name, labels, address, host, pid, started_at, heartbeat_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (name) DO UPDATE SET labels = excluded.labels,
                    address = excluded.address, host = excluded.host, pid = excluded.pid,
                    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
                    stopped_at = NULL",
                params![
                    node.name,
                    labels,
                    node.address,
                    node.host,
                    node.pid,
                    stamp(now)
                ],
            )
            .map(drop)
            .for_ledger(self)
    }

    /// Records that node `name` is alive at `now`.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn heartbeat(&self, name: &str, now: Timestamp) -> Result<()> {
        self.conn
            .execute(
                "UPDATE nodes SET heartbeat_at = ?2 WHERE name = ?1",
                params![name, stamp(now)],
            )
            .map(drop)
            .for_ledger(self)
    }

    /// Records that node `name` stopped at `now`.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn leave(&self, name: &str, now: Timestamp) -> Result<()> {
        self.conn
            .execute(
                "UPDATE nodes SET stopped_at = ?2, heartbeat_at = ?2 WHERE name = ?1",
                params![name, stamp(now)],
            )
            .map(drop)
            .for_ledger(self)
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
                        (SELECT count(*) FROM runs r WHERE r.state = 'running' AND r.node = n.name)
                 FROM nodes n ORDER BY n.name",
            )
            .for_ledger(self)?;
        let rows: Vec<NodeRow> = stmt
            .query_map([], |r| {
                let name: String = r.get(0)?;
                let what = || format!("node {name}");
                Ok(NodeRow {
                    labels: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                    address: r.get(2)?,
                    host: r.get(3)?,
                    pid: r.get(4)?,
                    started_at: instant(r, 5, &what)?,
                    heartbeat_at: instant(r, 6, &what)?,
                    stopped_at: instant_opt(r, 7, &what)?,
                    running: r.get(8)?,
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
}
