//! The ledger: the SQLite database that records applied job definitions (and, later, runs).
//!
//! Only this module speaks SQL. The schema is versioned with `PRAGMA user_version` and migrated
//! on open by [`MIGRATIONS`], which are only ever appended to: a ledger written by any earlier
//! version of `jobs` opens in this one, and a ledger from a newer version is refused rather than
//! misread. The database runs in WAL mode so readers (`jobctl list`) never block the writer.
//!
//! Revisions are append-only: applying a change inserts a revision and points the job at it;
//! nothing here deletes a revision or a run.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

mod backup;
mod chunk;
mod deps;
mod output;
mod rewind;
mod runs;
pub use rewind::Rewound;
pub use runs::*;

/// How the ledger writes instants: RFC 3339 in UTC with milliseconds, so that text order is
/// time order.
pub fn stamp(t: jiff::Timestamp) -> String {
    format!("{t:.3}")
}

/// The schema, one migration per step; `user_version` counts how many have run.
/// Append only: never edit or reorder a migration that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: applies, revisions, jobs, and the run rows that history counts refer to.
    r#"
    CREATE TABLE applies (
        id          INTEGER PRIMARY KEY,
        applied_at  TEXT NOT NULL,
        git_commit  TEXT,
        git_dirty   INTEGER,
        added       INTEGER NOT NULL,
        changed     INTEGER NOT NULL,
        removed     INTEGER NOT NULL
    );
    CREATE TABLE revisions (
        id            INTEGER PRIMARY KEY,
        job           TEXT NOT NULL,
        number        INTEGER NOT NULL,
        apply_id      INTEGER REFERENCES applies(id),
        content_hash  TEXT NOT NULL,
        definition    TEXT NOT NULL,
        source_path   TEXT,
        enabled       INTEGER NOT NULL,
        schedule      TEXT NOT NULL,
        timezone      TEXT NOT NULL,
        description   TEXT NOT NULL,
        tags          TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        git_commit    TEXT,
        git_dirty     INTEGER
    );
    CREATE UNIQUE INDEX revisions_by_job ON revisions(job, number);
    CREATE TABLE jobs (
        name             TEXT PRIMARY KEY,
        owner            TEXT NOT NULL CHECK (owner IN ('file', 'api')),
        revision_id      INTEGER NOT NULL REFERENCES revisions(id),
        active           INTEGER NOT NULL,
        schedule_anchor  TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        removed_at       TEXT
    );
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY,
        job           TEXT NOT NULL,
        revision_id   INTEGER REFERENCES revisions(id),
        trigger       TEXT NOT NULL,
        scheduled_at  TEXT,
        state         TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        started_at    TEXT,
        finished_at   TEXT,
        exit_code     INTEGER
    );
    CREATE INDEX runs_by_job ON runs(job, id);
    "#,
    // 2: the daemon. Runs gain their slot (unique per job: no slot is written or fired twice),
    // attempt, process and outcome; events, output, pauses, the daemon's lease and its status.
    r#"
    ALTER TABLE jobs ADD COLUMN slot_cursor TEXT;
    UPDATE jobs SET slot_cursor = schedule_anchor;
    ALTER TABLE runs ADD COLUMN slot TEXT;
    ALTER TABLE runs ADD COLUMN slot_first TEXT;
    ALTER TABLE runs ADD COLUMN slot_count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN first_run_id INTEGER;
    ALTER TABLE runs ADD COLUMN not_before TEXT;
    ALTER TABLE runs ADD COLUMN params TEXT;
    ALTER TABLE runs ADD COLUMN reason TEXT;
    ALTER TABLE runs ADD COLUMN error TEXT;
    ALTER TABLE runs ADD COLUMN signal INTEGER;
    ALTER TABLE runs ADD COLUMN epoch INTEGER;
    ALTER TABLE runs ADD COLUMN supervisor_pid INTEGER;
    ALTER TABLE runs ADD COLUMN supervisor_start INTEGER;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN pid_start INTEGER;
    ALTER TABLE runs ADD COLUMN cancel_requested TEXT;
    ALTER TABLE runs ADD COLUMN cpu_user_ms INTEGER;
    ALTER TABLE runs ADD COLUMN cpu_sys_ms INTEGER;
    ALTER TABLE runs ADD COLUMN max_rss_kb INTEGER;
    ALTER TABLE runs ADD COLUMN output_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN output_truncated INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX runs_by_slot ON runs(job, slot) WHERE slot IS NOT NULL;
    CREATE INDEX runs_by_state ON runs(state, id);
    CREATE TABLE run_events (
        id       INTEGER PRIMARY KEY,
        run_id   INTEGER NOT NULL,
        at       TEXT NOT NULL,
        kind     TEXT NOT NULL,
        message  TEXT NOT NULL
    );
    CREATE INDEX run_events_by_run ON run_events(run_id, id);
    CREATE TABLE run_output (
        id      INTEGER PRIMARY KEY,
        run_id  INTEGER NOT NULL,
        at      TEXT NOT NULL,
        stream  TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
        line    TEXT NOT NULL
    );
    CREATE INDEX run_output_by_run ON run_output(run_id, id);
    CREATE TABLE pauses (
        job        TEXT PRIMARY KEY,
        paused_by  TEXT NOT NULL,
        paused_at  TEXT NOT NULL,
        reason     TEXT
    );
    CREATE TABLE leases (
        name         TEXT PRIMARY KEY,
        holder       TEXT NOT NULL,
        pid          INTEGER,
        pid_start    INTEGER,
        epoch        INTEGER NOT NULL,
        acquired_at  TEXT NOT NULL,
        released_at  TEXT
    );
    CREATE TABLE daemon_events (
        id       INTEGER PRIMARY KEY,
        at       TEXT NOT NULL,
        kind     TEXT NOT NULL,
        message  TEXT NOT NULL
    );
    CREATE TABLE daemon_status (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    "#,
    // 3: a job's runs counted by state from the index alone (`GET /v1/jobs/{name}`).
    r#"
    CREATE INDEX runs_by_job_state ON runs(job, state);
    "#,
    // 4: workflows. A job's fires under its current revision and when it completed (`repeat`),
    // its failure streak (notifications); a revision's `repeat` and `depends_on`; the upstream runs that
    // released a run. Finish times by job and state find an upstream's latest success
    // (`after`) from the index; the old (job, state) index is its prefix.
    r#"
    ALTER TABLE jobs ADD COLUMN fires INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN completed_at TEXT;
    ALTER TABLE jobs ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE revisions ADD COLUMN repeat TEXT;
    ALTER TABLE revisions ADD COLUMN depends_on TEXT;
    ALTER TABLE runs ADD COLUMN released_by TEXT;
    CREATE INDEX runs_by_job_state_finish ON runs(job, state, finished_at);
    DROP INDEX runs_by_job_state;
    "#,
    // 5: run ids are never reused (issue 12). Without AUTOINCREMENT a new run took the largest
    // remaining id plus one, so after retention deleted every run, ids started again at 1 and
    // links (`first_run_id`, `released_by`, logs, artifacts named by `JOBS_RUN_ID`) pointed at
    // other runs. SQLite cannot add AUTOINCREMENT to a table: `runs` is rebuilt with the same
    // columns and indexes, and its counter is seeded with the highest run id the ledger still
    // mentions (a run, an upstream in `released_by`, events or output left behind). Ids deleted before this migration and mentioned nowhere cannot be known: a ledger
    // whose runs were all pruned continues above what remains, at worst from 1 as before.
    r#"
    CREATE TABLE runs_new (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        job               TEXT NOT NULL,
        revision_id       INTEGER REFERENCES revisions(id),
        trigger           TEXT NOT NULL,
        scheduled_at      TEXT,
        state             TEXT NOT NULL,
        created_at        TEXT NOT NULL,
        started_at        TEXT,
        finished_at       TEXT,
        exit_code         INTEGER,
        slot              TEXT,
        slot_first        TEXT,
        slot_count        INTEGER NOT NULL DEFAULT 1,
        attempt           INTEGER NOT NULL DEFAULT 1,
        first_run_id      INTEGER,
        not_before        TEXT,
        params            TEXT,
        reason            TEXT,
        error             TEXT,
        signal            INTEGER,
        epoch             INTEGER,
        supervisor_pid    INTEGER,
        supervisor_start  INTEGER,
        pid               INTEGER,
        pid_start         INTEGER,
        cancel_requested  TEXT,
        cpu_user_ms       INTEGER,
        cpu_sys_ms        INTEGER,
        max_rss_kb        INTEGER,
        output_bytes      INTEGER NOT NULL DEFAULT 0,
        output_truncated  INTEGER NOT NULL DEFAULT 0,
        released_by       TEXT
    );
    INSERT INTO runs_new (id, job, revision_id, trigger, scheduled_at, state, created_at,
        started_at, finished_at, exit_code, slot, slot_first, slot_count, attempt, first_run_id,
        not_before, params, reason, error, signal, epoch, supervisor_pid, supervisor_start, pid,
        pid_start, cancel_requested, cpu_user_ms, cpu_sys_ms, max_rss_kb, output_bytes,
        output_truncated, released_by)
    SELECT id, job, revision_id, trigger, scheduled_at, state, created_at,
        started_at, finished_at, exit_code, slot, slot_first, slot_count, attempt, first_run_id,
        not_before, params, reason, error, signal, epoch, supervisor_pid, supervisor_start, pid,
        pid_start, cancel_requested, cpu_user_ms, cpu_sys_ms, max_rss_kb, output_bytes,
        output_truncated, released_by
    FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_new RENAME TO runs;
    CREATE INDEX runs_by_job ON runs(job, id);
    CREATE UNIQUE INDEX runs_by_slot ON runs(job, slot) WHERE slot IS NOT NULL;
    CREATE INDEX runs_by_state ON runs(state, id);
    CREATE INDEX runs_by_job_state_finish ON runs(job, state, finished_at);
    DELETE FROM sqlite_sequence WHERE name IN ('runs', 'runs_new');
    INSERT INTO sqlite_sequence (name, seq)
    SELECT 'runs', max(seen) FROM (
        SELECT 0 AS seen
        UNION ALL SELECT max(id) FROM runs
        UNION ALL SELECT max(json_extract(upstream.value, '$.run'))
            FROM runs, json_each(runs.released_by) AS upstream
            WHERE runs.released_by IS NOT NULL
        UNION ALL SELECT max(run_id) FROM run_events
        UNION ALL SELECT max(run_id) FROM run_output
    );
    "#,
    // 6: output in chunks (see `ledger::chunk` and `ledger::output`): consecutive lines of a run
    // in one row, zstd-compressed once sealed; a line's id is its number in the run (1, 2, …).
    // A live run's newest lines wait in small plain rows (its *open* rows, from
    // `output_open_first`, holding `output_open_bytes` raw bytes) until they fill a chunk or
    // the run ends. The old one-row-per-line table is moved into chunks by
    // `output::move_legacy_rows` after this SQL, in the same transaction, and dropped.
    r#"
    CREATE TABLE run_output_chunks (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL,
        first_line  INTEGER NOT NULL,
        n_lines     INTEGER NOT NULL,
        at_ms       INTEGER NOT NULL,
        raw_bytes   INTEGER NOT NULL,
        codec       INTEGER NOT NULL,
        payload     BLOB NOT NULL
    );
    CREATE UNIQUE INDEX run_output_chunks_by_run ON run_output_chunks(run_id, first_line);
    ALTER TABLE runs ADD COLUMN output_open_first INTEGER;
    ALTER TABLE runs ADD COLUMN output_open_bytes INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The migration (its `user_version`) after whose SQL the old `run_output` rows are moved into
/// chunks: compression needs Rust, not SQL.
const OUTPUT_CHUNKS_VERSION: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "the ledger {path} is locked by another process (a running `jobctl serve` or `jobctl apply`?); try again when it has finished"
    )]
    Locked { path: PathBuf },
    #[error(
        "the ledger {path} is read-only: {detail}; check the file's and its folder's permissions"
    )]
    ReadOnly { path: PathBuf, detail: String },
    #[error(
        "cannot open the ledger {path} ({detail}); check that its folder exists and is writable"
    )]
    CannotOpen { path: PathBuf, detail: String },
    #[error(
        "{path} is not a jobs ledger or is damaged ({detail}); restore it from a backup or move it aside to start a new one"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the ledger {path} was written by a newer version of jobs (schema {found}, this binary knows up to {known}); upgrade jobs"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the ledger {path} is {kind}, not a regular file; point --ledger (or JOBS_LEDGER) at a file, or move it aside"
    )]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("cannot create the ledger's folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the ledger {path} changed while applying: {detail}")]
    Conflict { path: PathBuf, detail: String },
    #[error(
        "the ledger {path} is already served by `jobctl serve` (pid {pid} on {holder}, since {since}); stop it first, or give this one another ledger"
    )]
    LeaseHeld {
        path: PathBuf,
        holder: String,
        pid: i64,
        since: String,
    },
    #[error(
        "this daemon's lease on {path} (epoch {epoch}) was taken over by another daemon; stopping"
    )]
    LeaseLost { path: PathBuf, epoch: i64 },
    #[error("no {what} in the ledger {path}")]
    NotFound { path: PathBuf, what: String },
    #[error("the disk holding the ledger {path} is full; nothing was written (free some space)")]
    DiskFull { path: PathBuf },
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl LedgerError {
    fn from_sqlite(path: &Path, e: rusqlite::Error) -> LedgerError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                LedgerError::Locked { path }
            }
            Some(ErrorCode::CannotOpen) => LedgerError::CannotOpen {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::DiskFull) => LedgerError::DiskFull { path },
            Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => LedgerError::ReadOnly {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => LedgerError::Corrupt {
                path,
                detail: e.to_string(),
            },
            _ => LedgerError::Sqlite { path, source: e },
        }
    }
}

impl LedgerError {
    /// Whether trying again later may succeed: the ledger is busy, or cannot be written now
    /// (a full disk, a read-only mount) although nothing is wrong with the request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LedgerError::Locked { .. }
                | LedgerError::DiskFull { .. }
                | LedgerError::ReadOnly { .. }
        )
    }
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// A job as the ledger knows it, joined with its current revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    pub name: String,
    pub owner: String,
    pub active: bool,
    /// The job's revision number: 1 for its first applied definition, then 2, ...
    pub revision: i64,
    pub content_hash: String,
    pub definition: String,
    pub source_path: Option<String>,
    pub enabled: bool,
    /// The schedule as canonical JSON (see `schedule::Schedule`).
    pub schedule: String,
    pub timezone: String,
    pub description: String,
    pub tags: Vec<String>,
    pub schedule_anchor: String,
    pub created_at: String,
    pub updated_at: String,
    pub removed_at: Option<String>,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub n_runs: i64,
    pub last_run: Option<LastRun>,
    /// The id of the current revision's row.
    pub revision_id: i64,
    /// Every slot up to this instant is accounted for (see `slots`).
    pub slot_cursor: String,
    /// Set while an operator has paused the job.
    pub paused: Option<Pause>,
    /// Runs fired by the schedule or a dependency under the current revision (`repeat`).
    pub fires: i64,
    /// When the job completed (`repeat`); a new revision clears it.
    pub completed_at: Option<String>,
    /// Final runs that failed or timed out since the last success.
    pub failure_streak: i64,
    /// The revision's `repeat` as JSON.
    pub repeat: Option<String>,
    /// What the job's blocked runs wait for (`waiting for a, b`), when it has any.
    pub blocked: Option<String>,
    /// The revision's `depends_on`.
    pub depends_on: Vec<String>,
}

/// An operator's pause of a job: who, when, why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    pub by: String,
    pub at: String,
    pub reason: Option<String>,
}

impl std::fmt::Display for Pause {
    /// `by alice@host at 2026-…Z: the reason`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "by {} at {}", self.by, self.at)?;
        match &self.reason {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastRun {
    pub state: String,
    pub at: String,
}

/// A definition to record as a new revision.
#[derive(Clone, Debug)]
pub struct NewRevision {
    pub name: String,
    pub content_hash: String,
    pub definition: String,
    pub source_path: Option<String>,
    pub enabled: bool,
    pub schedule: String,
    pub timezone: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Restart the schedule's anchor (for `every`) at the apply time.
    pub reset_anchor: bool,
    /// `repeat` as JSON (`{"times": 5}`, `{"until": "success"}`), for the job's state.
    pub repeat: Option<String>,
    /// `depends_on` as a JSON list, `None` when empty: the gate of the revision's runs.
    pub depends_on: Option<String>,
}

/// What one apply writes: new revisions (adds and changes) and removals.
#[derive(Clone, Debug, Default)]
pub struct ApplyBatch {
    pub upserts: Vec<NewRevision>,
    pub removals: Vec<String>,
    /// Who owns the jobs written: an apply of the files touches only `File` jobs, the API
    /// only `Api` ones.
    pub owner: Owner,
}

/// Who owns a job: its file in `jobs.d` (git), or the API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Owner {
    #[default]
    File,
    Api,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::File => "file",
            Owner::Api => "api",
        }
    }
}

/// Where the applied definitions came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitInfo {
    pub commit: Option<String>,
    pub dirty: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyRecord {
    pub id: i64,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    /// Commits sync to disk (`synchronous=FULL`), see `set_durable`.
    durable: std::cell::Cell<bool>,
    /// The dependency graph the daemon schedules by: with it, ending runs release the runs
    /// that wait for them in the same transaction (see `deps`). `None` outside the daemon.
    graph: Option<std::sync::Arc<crate::graph::Graph>>,
}

/// How long to wait for another writer before reporting the ledger as locked. `JOBS_LOCK_WAIT`
/// (a duration such as `500ms`) overrides it.
const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(5);

fn busy_timeout() -> StdDuration {
    std::env::var("JOBS_LOCK_WAIT")
        .ok()
        .and_then(|v| crate::duration::Duration::parse(&v).ok())
        .and_then(|d| d.as_signed().try_into().ok())
        .unwrap_or(BUSY_TIMEOUT)
}

impl Ledger {
    /// Opens the ledger for writing, creating it (and its folder) if missing, and migrates it.
    ///
    /// # Errors
    ///
    /// [`LedgerError`] naming the path: locked, read-only, corrupt, too new.
    pub fn open(path: &Path) -> Result<Ledger> {
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
            conn,
            path: path.to_path_buf(),
            durable: std::cell::Cell::new(false),
            graph: None,
        };
        ledger.configure(true)?;
        ledger.migrate()?;
        Ok(ledger)
    }

    /// Opens an existing ledger without writing to it; `None` when there is none yet.
    ///
    /// # Errors
    ///
    /// As [`Ledger::open`]; also when the ledger needs a migration (run `jobctl apply`).
    pub fn open_read_only(path: &Path) -> Result<Option<Ledger>> {
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
            conn,
            path: path.to_path_buf(),
            durable: std::cell::Cell::new(false),
            graph: None,
        };
        ledger.configure(false)?;
        let version = ledger.schema_version()?;
        let known = MIGRATIONS.len() as i64;
        if version < known {
            // An older ledger is upgraded by the next command that writes; reading it as it is
            // would be guessing.
            return Err(LedgerError::ReadOnly {
                path: ledger.path,
                detail: format!(
                    "it uses schema {version} and needs upgrading to {known}, which a read-only command does not do; run `jobctl apply` once"
                ),
            });
        }
        Ok(Some(ledger))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> LedgerError {
        LedgerError::from_sqlite(&self.path, e)
    }

    fn configure(&self, write: bool) -> Result<()> {
        self.conn
            .busy_timeout(busy_timeout())
            .map_err(|e| self.err(e))?;
        // The bundled SQLite has STAT4, which re-prepares (re-parses) a cached statement each
        // time new values are bound, in case they change the plan: ~50 µs on every point read
        // with a join. Our plans do not depend on the values; keep them stable.
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
            .map_err(|e| self.err(e))?;
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
            self.conn
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| self.err(e))?;
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))?;
        if !write {
            // Readers map the file instead of copying pages through read(2): a large ledger's
            // random point reads (the API) then cost no system call each.
            self.conn
                .pragma_update(None, "mmap_size", 1i64 << 30)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn schema_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        // An up-to-date ledger needs no write lock just to be opened.
        if self.schema_version()? == known {
            return Ok(());
        }
        if self.schema_version()? == 0 {
            // Only possible before the first table exists: lets retention give pages back.
            self.conn
                .pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(|e| self.err(e))?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| LedgerError::from_sqlite(&self.path, e))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| LedgerError::from_sqlite(&self.path, e))?;
        if version > known {
            return Err(LedgerError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .map_err(|e| LedgerError::from_sqlite(&self.path, e))?;
            if index + 1 == OUTPUT_CHUNKS_VERSION {
                output::move_legacy_rows(&tx, &self.path)?;
            }
            tx.pragma_update(None, "user_version", index as i64 + 1)
                .map_err(|e| LedgerError::from_sqlite(&self.path, e))?;
        }
        tx.commit()
            .map_err(|e| LedgerError::from_sqlite(&self.path, e))
    }

    /// Every job the ledger knows, removed ones included, by name.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn jobs(&self) -> Result<Vec<JobRow>> {
        query_jobs(&self.conn, None, Detail::Full).map_err(|e| self.err(e))
    }

    /// The names of the active jobs created through the API.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn api_owned(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM jobs WHERE owner = 'api' AND active = 1")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))
    }

    /// Every job without its definition, tags, run counts or blocked reasons: what a plan
    /// compares with the files. [`Ledger::applied_definition`] reads the definitions it needs.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn jobs_bare(&self) -> Result<Vec<JobRow>> {
        query_jobs(&self.conn, None, Detail::Bare).map_err(|e| self.err(e))
    }

    /// A job's applied definition and how many runs it has: what a plan shows for a changed or
    /// removed job. `None` for a job the ledger does not know.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn applied_definition(&self, name: &str) -> Result<Option<(String, i64)>> {
        applied_definition(&self.conn, name).map_err(|e| self.err(e))
    }

    /// Every job without its definition text (which stays empty): what a listing needs.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn job_summaries(&self) -> Result<Vec<JobRow>> {
        query_jobs(&self.conn, None, Detail::Summary).map_err(|e| self.err(e))
    }

    /// One job by name, removed or not.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn job(&self, name: &str) -> Result<Option<JobRow>> {
        query_jobs(&self.conn, Some(name), Detail::Full)
            .map(|mut rows| rows.pop())
            .map_err(|e| self.err(e))
    }

    /// Applies a batch in one transaction; `None` when the batch is empty (nothing written). `decide` sees the jobs as they are inside the
    /// transaction (so a concurrent apply cannot slip in between planning and writing) and
    /// returns what to write.
    ///
    /// # Errors
    ///
    /// On a SQLite failure, or when `decide` refuses (its error is returned as a conflict).
    pub fn apply(
        &mut self,
        now: &str,
        git: &GitInfo,
        decide: impl FnOnce(
            &[JobRow],
            &dyn Fn(&str) -> Option<(String, i64)>,
        ) -> std::result::Result<ApplyBatch, String>,
    ) -> Result<Option<ApplyRecord>> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        // Bare rows: a plan needs the definitions (and run counts) of changed and removed jobs
        // only, which `fetch` reads on demand (most of the time, of 10,000 jobs, one).
        let current = query_jobs(&tx, None, Detail::Bare).map_err(e)?;
        let fetch = |name: &str| applied_definition(&tx, name).ok().flatten();
        let batch = decide(&current, &fetch).map_err(|detail| LedgerError::Conflict {
            path: path.clone(),
            detail,
        })?;
        if batch.upserts.is_empty() && batch.removals.is_empty() {
            // Nothing to record: an apply with no changes leaves no trace.
            return Ok(None);
        }
        // The slot cursor is an instant with milliseconds; `now` as given is the apply stamp.
        let cursor = now
            .parse::<jiff::Timestamp>()
            .map(stamp)
            .unwrap_or_else(|_| now.to_string());
        let existing: std::collections::HashMap<&str, &JobRow> =
            current.iter().map(|j| (j.name.as_str(), j)).collect();
        let (mut added, mut changed) = (0, 0);
        tx.execute(
            "INSERT INTO applies (applied_at, git_commit, git_dirty, added, changed, removed) VALUES (?1, ?2, ?3, 0, 0, 0)",
            params![now, git.commit, git.dirty],
        )
        .map_err(e)?;
        let apply_id = tx.last_insert_rowid();
        {
            let mut insert_revision = tx
                .prepare_cached(
                    "INSERT INTO revisions (job, number, apply_id, content_hash, definition, source_path, enabled, schedule, timezone, description, tags, created_at, git_commit, git_dirty, repeat, depends_on)
                     VALUES (?1, (SELECT coalesce(max(number), 0) + 1 FROM revisions WHERE job = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(e)?;
            let mut upsert_job = tx
                .prepare_cached(
                    "INSERT INTO jobs (name, owner, revision_id, active, schedule_anchor, created_at, updated_at, removed_at, slot_cursor)
                     VALUES (?1, ?6, ?2, 1, ?3, ?3, ?3, NULL, ?5)
                     ON CONFLICT (name) DO UPDATE SET
                         owner = excluded.owner,
                         revision_id = excluded.revision_id,
                         active = 1,
                         removed_at = NULL,
                         updated_at = excluded.updated_at,
                         fires = 0,
                         completed_at = NULL,
                         schedule_anchor = CASE WHEN ?4 THEN excluded.schedule_anchor ELSE jobs.schedule_anchor END,
                         slot_cursor = CASE WHEN ?4 THEN excluded.slot_cursor ELSE jobs.slot_cursor END",
                )
                .map_err(e)?;
            for rev in &batch.upserts {
                let tags = serde_json::to_string(&rev.tags).expect("a list of strings serialises");
                insert_revision
                    .execute(params![
                        rev.name,
                        apply_id,
                        rev.content_hash,
                        rev.definition,
                        rev.source_path,
                        rev.enabled,
                        rev.schedule,
                        rev.timezone,
                        rev.description,
                        tags,
                        now,
                        git.commit,
                        git.dirty,
                        rev.repeat,
                        rev.depends_on,
                    ])
                    .map_err(e)?;
                let revision_id = tx.last_insert_rowid();
                let was_active = existing.get(rev.name.as_str()).is_some_and(|j| j.active);
                // A job coming back after removal starts its schedule afresh, like a new one.
                let reset = rev.reset_anchor || !was_active;
                upsert_job
                    .execute(params![
                        rev.name,
                        revision_id,
                        now,
                        reset,
                        cursor,
                        batch.owner.as_str()
                    ])
                    .map_err(e)?;
                if was_active {
                    changed += 1;
                } else {
                    added += 1;
                }
            }
            let mut remove = tx
                .prepare_cached(
                    "UPDATE jobs SET active = 0, removed_at = ?2, updated_at = ?2 WHERE name = ?1 AND active = 1 AND owner = ?3",
                )
                .map_err(e)?;
            for name in &batch.removals {
                remove
                    .execute(params![name, now, batch.owner.as_str()])
                    .map_err(e)?;
            }
        }
        let removed = batch.removals.len();
        tx.execute(
            "UPDATE applies SET added = ?2, changed = ?3, removed = ?4 WHERE id = ?1",
            params![apply_id, added as i64, changed as i64, removed as i64],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(Some(ApplyRecord {
            id: apply_id,
            added,
            changed,
            removed,
        }))
    }

    /// How many revisions a job has.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn revision_count(&self, name: &str) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM revisions WHERE job = ?1",
                [name],
                |row| row.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The latest apply, if any: `(id, applied_at, git_commit)`.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn last_apply(&self) -> Result<Option<(i64, String, Option<String>)>> {
        self.conn
            .query_row(
                "SELECT id, applied_at, git_commit FROM applies ORDER BY id DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
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

/// A job's applied definition and run count (see [`Ledger::applied_definition`]).
fn applied_definition(conn: &Connection, name: &str) -> rusqlite::Result<Option<(String, i64)>> {
    conn.prepare_cached(
        "SELECT r.definition, (SELECT count(*) FROM runs WHERE job = j.name)
         FROM jobs j JOIN revisions r ON r.id = j.revision_id WHERE j.name = ?1",
    )?
    .query_row([name], |row| Ok((row.get(0)?, row.get(1)?)))
    .optional()
}

/// Which columns a job query loads: a listing has no use for whole definitions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// No definitions and no run counts: what an apply compares.
    Bare,
    Summary,
    Full,
}

fn query_jobs(
    conn: &Connection,
    name: Option<&str>,
    detail: Detail,
) -> rusqlite::Result<Vec<JobRow>> {
    let sql = format!(
        "SELECT j.name, j.owner, j.active, r.number, r.content_hash, {definition}, r.source_path,
                r.enabled, r.schedule, r.timezone, r.description, r.tags, j.schedule_anchor,
                j.created_at, j.updated_at, j.removed_at, r.git_commit, r.git_dirty,
                {runs},
                {last_run},
                j.revision_id, coalesce(j.slot_cursor, j.schedule_anchor),
                p.paused_by, p.paused_at, p.reason,
                j.fires, j.completed_at, j.failure_streak, r.repeat,
                {blocked}, r.depends_on
         FROM jobs j
         JOIN revisions r ON r.id = j.revision_id
         LEFT JOIN pauses p ON p.job = j.name
         {runs_join}
         WHERE {filter}
         ORDER BY j.name",
        filter = if name.is_some() {
            "j.name = ?1"
        } else {
            "?1 IS NULL"
        },
        definition = match detail {
            Detail::Full => "r.definition",
            Detail::Summary | Detail::Bare => "''",
        },
        blocked = if detail == Detail::Bare {
            "NULL"
        } else {
            "(SELECT group_concat(b.reason, '; ') FROM runs b WHERE b.job = j.name AND b.state = 'blocked')"
        },
        runs = if detail == Detail::Bare {
            "0"
        } else {
            "coalesce(rs.n, 0)"
        },
        last_run = if detail == Detail::Bare {
            "NULL"
        } else {
            "lr.state || ' ' || coalesce(lr.finished_at, lr.started_at, lr.created_at)"
        },
        // One job: two lookups in `runs_by_job`. All jobs: one pass over it, grouped.
        runs_join = match (detail, name) {
            (Detail::Bare, _) => "",
            (_, Some(_)) => {
                "LEFT JOIN (SELECT ?1 AS job, count(*) AS n, max(id) AS last FROM runs WHERE job = ?1) rs ON rs.job = j.name
                 LEFT JOIN runs lr ON lr.id = rs.last"
            }
            (_, None) => {
                "LEFT JOIN (SELECT job, count(*) AS n, max(id) AS last FROM runs GROUP BY job) rs ON rs.job = j.name
                 LEFT JOIN runs lr ON lr.id = rs.last"
            }
        },
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([name], |row| {
        let tags: String = row.get(11)?;
        let last: Option<String> = row.get(19)?;
        Ok(JobRow {
            name: row.get(0)?,
            owner: row.get(1)?,
            active: row.get(2)?,
            revision: row.get(3)?,
            content_hash: row.get(4)?,
            definition: row.get(5)?,
            source_path: row.get(6)?,
            enabled: row.get(7)?,
            schedule: row.get(8)?,
            timezone: row.get(9)?,
            description: row.get(10)?,
            tags: if detail == Detail::Bare {
                Vec::new()
            } else {
                serde_json::from_str(&tags).unwrap_or_default()
            },
            schedule_anchor: row.get(12)?,
            created_at: row.get(13)?,
            updated_at: row.get(14)?,
            removed_at: row.get(15)?,
            git_commit: row.get(16)?,
            git_dirty: row.get(17)?,
            n_runs: row.get(18)?,
            revision_id: row.get(20)?,
            slot_cursor: row.get(21)?,
            paused: match row.get::<_, Option<String>>(22)? {
                Some(by) => Some(Pause {
                    by,
                    at: row.get(23)?,
                    reason: row.get(24)?,
                }),
                None => None,
            },
            fires: row.get(25)?,
            completed_at: row.get(26)?,
            failure_streak: row.get(27)?,
            repeat: row.get(28)?,
            blocked: row.get(29)?,
            depends_on: row
                .get::<_, Option<String>>(30)?
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or_default(),
            last_run: last.and_then(|s| {
                s.split_once(' ').map(|(state, at)| LastRun {
                    state: state.to_string(),
                    at: at.to_string(),
                })
            }),
        })
    })?;
    rows.collect()
}
