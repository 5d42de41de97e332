//! The ledger: the SQLite database that records applied job definitions, runs and what the
//! daemon knows.
//!
//! Only this module speaks SQL. It decides nothing: the rules are in `rules` and `slots`; an
//! operation reads their facts, calls the rule and writes its decision in one transaction
//! ([`Ledger::with_tx`], IMMEDIATE, errors mapped once to [`LedgerError`]). The schema is
//! versioned with `PRAGMA user_version` and migrated on open by [`MIGRATIONS`] (`schema`),
//! which are only ever appended to. The database runs in WAL mode so readers (`jobctl list`)
//! never block the writer.
//!
//! One file per concern: `schema` (migrations), `jobs` (jobs, revisions, pauses), `runs` (run
//! rows and their queries), `write` (the row writes the others share), `slots` (the
//! scheduler's write), `claims` (creating, claiming, ending, cancelling runs), `deps` (what an
//! end releases), `lease`, `retention`, `daemon_state`, and `output`/`chunk`/`backup`/`rewind`.
//! SQLite-only tricks (group commit of durable writes, `SQLITE_DBCONFIG_ENABLE_QPSG`, mmap for
//! readers) stay in here.
//!
//! Revisions are append-only: applying a change inserts a revision and points the job at it.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use rusqlite::{Connection, OpenFlags};

use db::{Begin, Conn};

/// SQL that holds when run row `$runs` may run on a node with the labels `$labels` (a JSON
/// list parameter): no label of its revision's `runs_on` is missing from them. `sqlite` or
/// `pg` first: the dialect.
macro_rules! placeable {
    (sqlite, $runs:literal, $labels:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM revisions v, json_each(v.runs_on) need
                WHERE v.id = ",
            $runs,
            ".revision_id AND v.runs_on IS NOT NULL
                  AND need.value NOT IN (SELECT value FROM json_each(",
            $labels,
            ")))"
        )
    };
    (pg, $runs:literal, $labels:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM revisions v,
                    jsonb_array_elements_text(CAST(v.runs_on AS jsonb)) need(value)
                WHERE v.id = ",
            $runs,
            ".revision_id AND v.runs_on IS NOT NULL
                  AND need.value NOT IN (SELECT l.value FROM jsonb_array_elements_text(CAST(",
            $labels,
            " AS jsonb)) l(value)))"
        )
    };
}

mod backfills;
mod backup;
mod chunk;
mod claims;
mod columns;
mod copy;
mod daemon_state;
pub mod db;
mod deps;
mod error;
mod history;
mod jobs;
mod lease;
mod location;
mod nodes;
mod output;
mod retention;
mod rewind;
mod runs;
mod schema;
mod slots;
mod write;
pub use backfills::{NewBackfill, RevisionAt};
pub use claims::{CancelOutcome, Claim, Finish, Handoff, ProcessStarted, RunEnd, Taker};
pub use daemon_state::{DaemonEvent, Wake};
pub use deps::Resolved;
pub use error::{LedgerError, Result};
pub use history::{JobLine, JobLogPage, JobLogQuery};
pub use jobs::{
    ApplyBatch, ApplyRecord, GitInfo, JobRow, LastRun, NewRevision, Owner, Pause, Revision,
    RunFacts,
};
pub use lease::{Leadership, LeaseRow};
pub use location::Location;
pub use nodes::{Lost, NodeInfo, NodeRow, PendingNeed};
pub use retention::Retention;
pub use rewind::Rewound;
pub use runs::{OutputLine, RunChanges, RunEvent, RunFilter, RunRow};
pub use schema::MIGRATIONS;
pub use slots::{JobSlots, Recorded};
pub use write::NewRun;

/// How the ledger writes instants: RFC 3339 in UTC with milliseconds, so that text order is
/// time order (`2026-10-31T12:00:00.000Z`). The same text as jiff's `{t:.3}`, written by hand
/// for the years 0001 to 9999 (jiff's formatter cost more than the rest of a run's JSON; the
/// wire writes seven of these per run).
pub fn stamp(t: jiff::Timestamp) -> String {
    let (seconds, nanos) = (t.as_second(), t.subsec_nanosecond());
    // Before 1970 (a negative fraction) jiff writes it; no ledger has such instants.
    if seconds < 0 || nanos < 0 {
        return format!("{t:.3}");
    }
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; 24];
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, second_of_day / 3_600);
    put(14, 2, second_of_day / 60 % 60);
    put(17, 2, second_of_day % 60);
    put(20, 3, i64::from(nanos) / 1_000_000);
    for (i, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ] {
        out[i] = c;
    }
    String::from_utf8(out.to_vec()).expect("digits and ASCII punctuation")
}

/// How `apply` writes a job's instants (`created_at`, `updated_at`, `removed_at`, the
/// `every` anchor) and an apply's: RFC 3339 in UTC as jiff prints it. The caller gives an
/// instant truncated to the second (`apply::apply`), so these read `…T10:00:00Z`, as every
/// ledger since the first has them; views print them back the same way.
pub fn applied_stamp(t: jiff::Timestamp) -> String {
    t.to_string()
}

pub struct Ledger {
    conn: Conn,
    path: PathBuf,
    /// Commits sync to disk (`synchronous=FULL`), see `set_durable`.
    durable: std::cell::Cell<bool>,
    /// Processes started whose record rides with the next transaction (see
    /// [`Ledger::carry_starts`]).
    carried: Vec<ProcessStarted>,
    /// The node this connection writes for ([`Ledger::set_node`]): the runs it claims
    /// record it, and only those its labels can run are claimed.
    node: Option<std::sync::Arc<nodes::Me>>,
    /// The term that fences the next write transaction ([`Ledger::fence_next`]).
    fence: Option<i64>,
}

/// A failure inside a transaction: SQLite's, or the ledger's own (a lost lease, a missing
/// run). [`Ledger::with_tx`] maps it to a [`LedgerError`] naming the path, once.
pub(crate) enum TxError {
    Sql(db::Error),
    Ledger(LedgerError),
}

impl From<db::Error> for TxError {
    fn from(e: db::Error) -> TxError {
        TxError::Sql(e)
    }
}

impl From<LedgerError> for TxError {
    fn from(e: LedgerError) -> TxError {
        TxError::Ledger(e)
    }
}

type TxResult<T> = std::result::Result<T, TxError>;

/// Maps a SQLite result to the ledger's, naming the ledger's path: the one conversion every
/// read outside [`Ledger::with_tx`] goes through.
pub(crate) trait ForLedger<T> {
    fn for_ledger(self, ledger: &Ledger) -> Result<T>;
}

impl<T> ForLedger<T> for db::Result<T> {
    fn for_ledger(self, ledger: &Ledger) -> Result<T> {
        self.map_err(|e| ledger.err(e))
    }
}

impl<T> ForLedger<T> for rusqlite::Result<T> {
    fn for_ledger(self, ledger: &Ledger) -> Result<T> {
        self.map_err(|e| ledger.err(e.into()))
    }
}

/// How a ledger connection is opened: what the caller decides, so the ledger reads no
/// environment. `Default` is what every command gets unless told otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// How long to wait for another writer before reporting the ledger as locked (the CLI and
    /// `jobctl serve` take it from `JOBS_LOCK_WAIT`).
    pub lock_wait: StdDuration,
}

impl OpenOptions {
    /// The lock wait when the caller sets none.
    pub const DEFAULT_LOCK_WAIT: StdDuration = StdDuration::from_secs(5);
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            lock_wait: OpenOptions::DEFAULT_LOCK_WAIT,
        }
    }
}

impl Ledger {
    /// Opens the ledger for writing, creating it (and its folder) if missing, and migrates it.
    ///
    /// # Errors
    ///
    /// [`LedgerError`] naming the path: locked, read-only, corrupt, too new.
    pub fn open(path: &Path) -> Result<Ledger> {
        Ledger::open_with(path, OpenOptions::default())
    }

    /// [`Ledger::open`] with the caller's [`OpenOptions`].
    ///
    /// # Errors
    ///
    /// As [`Ledger::open`].
    pub fn open_with(path: &Path, options: OpenOptions) -> Result<Ledger> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|source| LedgerError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        refuse_odd_file(path)?;
        let conn = Connection::open(path).map_err(|e| LedgerError::from_sqlite(path, e))?;
        let mut ledger = Ledger {
            conn: Conn::Sqlite(conn),
            path: path.to_path_buf(),
            durable: std::cell::Cell::new(false),
            carried: Vec::new(),
            node: None,
            fence: None,
        };
        ledger.configure(options, true)?;
        ledger.migrate()?;
        Ok(ledger)
    }

    /// Opens the ledger at `location` (a SQLite file or a PostgreSQL database) for writing,
    /// creating and migrating it as needed.
    ///
    /// # Errors
    ///
    /// As [`Ledger::open`]; for PostgreSQL also a server that cannot be reached or refuses
    /// the credentials.
    pub fn open_at(location: &Location, options: OpenOptions) -> Result<Ledger> {
        match location {
            Location::File(path) => Ledger::open_with(path, options),
            Location::Postgres(_) => {
                let mut ledger = Ledger::connect(location, options)?;
                ledger.migrate()?;
                Ok(ledger)
            }
        }
    }

    /// Opens the ledger at `location` to read it; `None` when there is none yet.
    ///
    /// # Errors
    ///
    /// As [`Ledger::open_read_only`].
    pub fn open_read_only_at(location: &Location, options: OpenOptions) -> Result<Option<Ledger>> {
        match location {
            Location::File(path) => Ledger::open_read_only_with(path, options),
            Location::Postgres(_) => {
                let ledger = Ledger::connect(location, options)?;
                let version = ledger.schema_version()?;
                let known = MIGRATIONS.len() as i64;
                if version == 0 {
                    return Ok(None);
                }
                if version > known {
                    return Err(LedgerError::TooNew {
                        path: ledger.path,
                        found: version,
                        known,
                    });
                }
                ledger.readable_as_it_is(version).map(Some)
            }
        }
    }

    /// A connection to a PostgreSQL ledger, not yet migrated.
    fn connect(location: &Location, options: OpenOptions) -> Result<Ledger> {
        let Location::Postgres(target) = location else {
            unreachable!("only PostgreSQL locations connect");
        };
        let conn = Conn::open_pg(target, options.lock_wait)
            .map_err(|e| LedgerError::from_db(&location.name(), e))?;
        Ok(Ledger {
            conn,
            path: location.name(),
            durable: std::cell::Cell::new(false),
            carried: Vec::new(),
            node: None,
            fence: None,
        })
    }

    /// Whether this ledger is a PostgreSQL database (shared by nodes) rather than a file.
    pub fn is_postgres(&self) -> bool {
        self.conn.dialect() == db::Dialect::Postgres
    }

    /// Opens an existing ledger without writing to it; `None` when there is none yet.
    ///
    /// # Errors
    ///
    /// As [`Ledger::open`]; also when the ledger needs a migration (run `jobctl apply`).
    pub fn open_read_only(path: &Path) -> Result<Option<Ledger>> {
        Ledger::open_read_only_with(path, OpenOptions::default())
    }

    /// [`Ledger::open_read_only`] with the caller's [`OpenOptions`].
    ///
    /// # Errors
    ///
    /// As [`Ledger::open_read_only`].
    pub fn open_read_only_with(path: &Path, options: OpenOptions) -> Result<Option<Ledger>> {
        if !path.exists() {
            return Ok(None);
        }
        refuse_odd_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LedgerError::from_sqlite(path, e))?;
        let ledger = Ledger {
            conn: Conn::Sqlite(conn),
            path: path.to_path_buf(),
            durable: std::cell::Cell::new(false),
            carried: Vec::new(),
            node: None,
            fence: None,
        };
        ledger.configure(options, false)?;
        let version = ledger.schema_version()?;
        ledger.readable_as_it_is(version).map(Some)
    }

    /// The ledger, for a read-only command, unless its schema is older than this version's:
    /// an older ledger is upgraded by the next command that writes, and reading it as it is
    /// would be guessing.
    fn readable_as_it_is(self, version: i64) -> Result<Ledger> {
        let known = MIGRATIONS.len() as i64;
        if version < known {
            return Err(LedgerError::ReadOnly {
                path: self.path,
                detail: format!(
                    "it uses schema {version} and needs upgrading to {known}, which a read-only command does not do; run `jobctl apply` once"
                ),
            });
        }
        Ok(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: db::Error) -> LedgerError {
        LedgerError::from_db(&self.path, e)
    }

    /// The SQLite connection under a SQLite ledger, for what only SQLite has (pragmas,
    /// backups, the file's header).
    fn sqlite(&self) -> Option<&Connection> {
        self.conn.sqlite()
    }

    /// Runs `f` in one IMMEDIATE transaction (the write lock taken up front, so two writers
    /// never deadlock upgrading) and commits when it returns `Ok`; an error rolls everything
    /// back. Errors are mapped to [`LedgerError`] here, once.
    pub(crate) fn with_tx<T>(&mut self, f: impl FnOnce(&Conn) -> TxResult<T>) -> Result<T> {
        let path = &self.path;
        let at = |e: TxError| match e {
            TxError::Sql(e) => LedgerError::from_db(path, e),
            TxError::Ledger(e) => e,
        };
        let carried = std::mem::take(&mut self.carried);
        let fence = self.fence;
        let written = (|| {
            let tx = self
                .conn
                .transaction(Begin::Immediate)
                .map_err(|e| LedgerError::from_db(path, e))?;
            if let Some(term) = fence {
                lease::check_epoch(&tx, path, term)?;
            }
            claims::write_starts(&tx, &carried).map_err(|e| LedgerError::from_db(path, e))?;
            let out = f(&tx).map_err(at)?;
            tx.commit().map_err(|e| LedgerError::from_db(path, e))?;
            Ok(out)
        })();
        if written.is_err() {
            // Rolled back: the starts ride with the next transaction instead.
            self.carried.splice(0..0, carried);
        }
        written
    }

    /// Fences the write transactions by the leader's `term` until set back to `None`: each
    /// is refused ([`LedgerError::LeaseLost`]) unless `term` still holds the lease.
    pub fn set_fence(&mut self, term: Option<i64>) {
        self.fence = term;
    }

    /// The database's clock: PostgreSQL's, which every node of a cluster shares; on SQLite,
    /// `local` (the database is on this machine).
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn db_now(&self, local: jiff::Timestamp) -> Result<jiff::Timestamp> {
        if !self.is_postgres() {
            return Ok(local);
        }
        let micros: i64 = self
            .conn
            .query_row(
                "SELECT CAST(floor(extract(epoch FROM clock_timestamp()) * 1000000) AS BIGINT)",
                db::params![],
                |r| r.get(0),
            )
            .for_ledger(self)?;
        jiff::Timestamp::from_microsecond(micros).map_err(|e| LedgerError::Conflict {
            path: self.path.clone(),
            detail: format!("the database's clock reads an impossible instant: {e}"),
        })
    }

    /// Runs the reads (or a single autocommit write) of `f` on the connection, mapping a
    /// SQLite error to [`LedgerError`].
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Conn) -> db::Result<T>) -> Result<T> {
        f(&self.conn).for_ledger(self)
    }

    fn configure(&self, options: OpenOptions, write: bool) -> Result<()> {
        let Some(conn) = self.sqlite() else {
            return Ok(());
        };
        conn.busy_timeout(options.lock_wait).for_ledger(self)?;
        // The bundled SQLite has STAT4, which re-prepares (re-parses) a cached statement each
        // time new values are bound, in case they change the plan: ~50 µs on every point read
        // with a join. Our plans do not depend on the values; keep them stable.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .for_ledger(self)?;
        // The schema version is read, and a newer one refused, before any pragma that writes
        // (`journal_mode` rewrites the file's header): a ledger this binary cannot read is
        // left exactly as it was. Reading it first also turns "not a database" into a clear
        // error here.
        let version = self.schema_version()?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(LedgerError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        if write {
            conn.pragma_update(None, "journal_mode", "WAL")
                .for_ledger(self)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .for_ledger(self)?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")
            .for_ledger(self)?;
        if !write {
            // Readers map the file instead of copying pages through read(2): a large ledger's
            // random point reads (the API) then cost no system call each.
            conn.pragma_update(None, "mmap_size", 1i64 << 30)
                .for_ledger(self)?;
        }
        Ok(())
    }
}

impl Ledger {
    /// Commits from now on reach the disk before returning (`synchronous=FULL`): what the daemon
    /// uses, because it acts on each state it records (spawns a process, fires a slot).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn set_durable(&self) -> Result<()> {
        if let Some(conn) = self.sqlite() {
            conn.pragma_update(None, "synchronous", "FULL")
                .for_ledger(self)?;
        }
        self.durable.set(true);
        Ok(())
    }

    /// Runs `f` with `synchronous=NORMAL` on a durable connection: for writes the daemon does
    /// not act on (a run's pid, output lines, events). They reach the disk with the next
    /// state change's sync, and a power cut that loses them also kills the process they
    /// describe.
    fn relaxed<T>(&self, f: impl FnOnce(&Conn) -> db::Result<T>) -> Result<T> {
        self.relaxed_result(|conn| f(conn).for_ledger(self))
    }

    /// As [`Ledger::relaxed`], for writes that fail with a [`LedgerError`] of their own.
    pub(super) fn relaxed_result<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        let Some(conn) = self.sqlite().filter(|_| self.durable.get()) else {
            return f(&self.conn);
        };
        conn.pragma_update(None, "synchronous", "NORMAL")
            .for_ledger(self)?;
        let result = f(&self.conn);
        conn.pragma_update(None, "synchronous", "FULL")
            .for_ledger(self)?;
        result
    }
}

/// Refuses a ledger path that exists but is not a regular file (symbolic links are followed):
/// SQLite would block forever opening a FIFO, and a folder or a device is never a ledger.
/// A missing path is fine (the ledger is created).
fn refuse_odd_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let kind = meta.file_type();
    let kind = if kind.is_file() {
        return Ok(());
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else {
        "a special file"
    };
    Err(LedgerError::NotAFile {
        path: path.to_path_buf(),
        kind,
    })
}

#[cfg(test)]
mod tests;
