//! What the daemon records about itself: its events, its status values, and the wake file
//! other processes touch to tell it to look again.

use super::db::{Optional, params};
use jiff::Timestamp;

use super::columns::instant;
use super::{ForLedger, Ledger, Result, stamp};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonEvent {
    pub id: i64,
    pub at: Timestamp,
    pub kind: String,
    pub message: String,
}

impl Ledger {
    /// Records something the daemon did or saw (a reconcile, an invalid file).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn daemon_event(&self, now: Timestamp, kind: &str, message: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO daemon_events (at, kind, message) VALUES (?1, ?2, ?3)",
                params![stamp(now), kind, message],
            )
            .map(drop)
            .for_ledger(self)
    }

    /// The latest daemon events, newest first.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn daemon_events(&self, limit: usize) -> Result<Vec<DaemonEvent>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at, kind, message FROM daemon_events ORDER BY id DESC LIMIT ?1",
            )
            .for_ledger(self)?;
        stmt.query_map(params![limit as i64], |r| {
            let id: i64 = r.get(0)?;
            Ok(DaemonEvent {
                id,
                at: instant(r, 1, &|| format!("daemon event {id}"))?,
                kind: r.get(2)?,
                message: r.get(3)?,
            })
        })
        .and_then(Iterator::collect)
        .for_ledger(self)
    }

    /// Sets a value of the daemon's status (e.g. the current errors in jobs.d).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn set_status(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO daemon_status (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .for_ledger(self)
    }

    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn status(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM daemon_status WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .for_ledger(self)
    }

    /// A number that changes whenever another connection commits: how the daemon tells a
    /// `jobctl trigger` from its own writes.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn data_version(&self) -> Result<i64> {
        match self.sqlite() {
            Some(conn) => conn
                .pragma_query_value(None, "data_version", |row| row.get(0))
                .for_ledger(self),
            // Other nodes' commits reach a PostgreSQL daemon as notifications.
            None => Ok(0),
        }
    }

    /// Tells a daemon watching this ledger that another process committed something it should
    /// act on (a queued run, a pause, a cancel request, an apply): writes `<ledger>.wake`, whose
    /// change the daemon watches. Written after the commit, so the daemon never looks too early.
    pub fn wake_daemon(&self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if self.is_postgres() {
            // Every node listens (`Ledger::listen`); a lost notification is caught by the
            // daemons' backstop.
            let _ = self
                .conn
                .execute("SELECT pg_notify('jobs_wake', 'change')", params![]);
            return;
        }
        let mut path = self.path.clone().into_os_string();
        path.push(".wake");
        // What is written does not matter (the daemon reacts to the change, not the text):
        // the writer's pid, so that the ledger reads no clock. Non-blocking: a FIFO left at this path (no reader) fails at once instead of
        // hanging the command; on a regular file the flag changes nothing.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .and_then(|mut f| f.write_all(std::process::id().to_string().as_bytes()));
    }
}

impl Ledger {
    /// Tells every node that a push webhook arrived (PostgreSQL; the leader fetches). Nothing
    /// on SQLite, whose one daemon is the one that heard it.
    pub fn tell_pushed(&self) {
        if self.is_postgres() {
            let _ = self
                .conn
                .execute("SELECT pg_notify('jobs_wake', 'git_push')", params![]);
        }
    }
}

/// What a PostgreSQL ledger's notification says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Runs were created or changed state (a trigger, a slot, an end): claim what is ready.
    Work,
    /// Something to act on besides runs (an apply, a pause, a cancel request), or the
    /// listener (re)connected and may have missed notifications: look at everything.
    Change,
    /// A push webhook reached another node: the leader fetches the followed repository.
    Pushed,
}

impl Ledger {
    /// Listens for other connections' commits to the PostgreSQL ledger at `location`
    /// (`None` for SQLite, whose daemon watches its wake file instead): `heard` is called for
    /// each, on a thread of the listener's, until the [`super::db::Listener`] is dropped.
    ///
    /// # Errors
    ///
    /// When the listener's thread cannot start.
    pub fn listen(
        location: &super::Location,
        heard: impl Fn(Wake) + Send + 'static,
    ) -> std::io::Result<Option<super::db::Listener>> {
        let super::Location::Postgres(target) = location else {
            return Ok(None);
        };
        super::db::listen(target, "jobs_wake", move |payload| {
            heard(match payload {
                Some("work") => Wake::Work,
                Some("git_push") => Wake::Pushed,
                _ => Wake::Change,
            });
        })
        .map(Some)
    }
}
