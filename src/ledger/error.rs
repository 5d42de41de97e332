//! The ledger's one error type, mapped from SQLite once, at the boundary.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use super::db;

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
    #[error("the PostgreSQL server of the ledger {path} refused it: {detail}")]
    Refused { path: PathBuf, detail: String },
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
    #[error(
        "the ledger {path} holds a value this version cannot read: {what}, column `{column}`: {detail}"
    )]
    BadValue {
        path: PathBuf,
        /// The row: `run 12`, `job backup`.
        what: String,
        column: String,
        detail: String,
    },
    #[error("cannot reach the ledger {path}: {detail}")]
    Unreachable { path: PathBuf, detail: String },
    #[error(
        "`{what}` works on a SQLite ledger and {path} is PostgreSQL (use PostgreSQL's own tools, such as pg_dump)"
    )]
    SqliteOnly { path: PathBuf, what: &'static str },
    #[error("ledger {path}: {error}")]
    Database { path: PathBuf, error: db::Error },
}

impl LedgerError {
    pub(super) fn from_sqlite(path: &Path, e: rusqlite::Error) -> LedgerError {
        LedgerError::from_db(path, db::Error::from(e))
    }

    /// The ledger's error for a failure at the SQL edge, naming `path`.
    pub(super) fn from_db(path: &Path, e: db::Error) -> LedgerError {
        let path = path.to_path_buf();
        let e = match e {
            db::Error::Column { source, .. } if source.is::<BadColumn>() => {
                let bad = source
                    .downcast::<BadColumn>()
                    .expect("the guard checked the type");
                return LedgerError::BadValue {
                    path,
                    what: bad.what,
                    column: bad.column,
                    detail: bad.detail,
                };
            }
            e => e,
        };
        if let db::Error::Pg(pg) = &e {
            return match pg_error(&path, pg) {
                Some(mapped) => mapped,
                None => LedgerError::Database { path, error: e },
            };
        }
        if let db::Error::Closed = e {
            return LedgerError::Unreachable {
                path,
                detail: e.to_string(),
            };
        }
        let code = match &e {
            db::Error::Sqlite(e) => e.sqlite_error_code(),
            _ => None,
        };
        match code {
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
            _ => LedgerError::Database { path, error: e },
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
                | LedgerError::Unreachable { .. }
                | LedgerError::DiskFull { .. }
                | LedgerError::ReadOnly { .. }
        )
    }
}

/// PostgreSQL's failures that have a meaning of their own here, by SQLSTATE; `None` for the
/// rest (a bug in a statement, a constraint).
fn pg_error(path: &Path, e: &tokio_postgres::Error) -> Option<LedgerError> {
    use tokio_postgres::error::SqlState;
    let path = path.to_path_buf();
    let detail = db::pg_message(e);
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or was lost.
        return (e.is_closed() || e.as_db_error().is_none())
            .then_some(LedgerError::Unreachable { path, detail });
    };
    Some(match code {
        c if *c == SqlState::DISK_FULL => LedgerError::DiskFull { path },
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => LedgerError::ReadOnly { path, detail },
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::LOCK_NOT_AVAILABLE =>
        {
            LedgerError::Locked { path }
        }
        c if *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
            || *c == SqlState::CONNECTION_FAILURE
            || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            LedgerError::Unreachable { path, detail }
        }
        c if *c == SqlState::INVALID_PASSWORD
            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || *c == SqlState::INVALID_CATALOG_NAME
            || *c == SqlState::INSUFFICIENT_PRIVILEGE =>
        {
            LedgerError::Refused { path, detail }
        }
        _ => return None,
    })
}

/// A stored value that does not parse as its core type, raised while a row is read (inside
/// rusqlite's row closures, as a conversion failure) and mapped to [`LedgerError::BadValue`]
/// by [`LedgerError::from_sqlite`], with the ledger's path.
#[derive(Debug, thiserror::Error)]
#[error("{what}, column `{column}`: {detail}")]
pub(super) struct BadColumn {
    pub what: String,
    pub column: String,
    pub detail: String,
}

pub type Result<T> = std::result::Result<T, LedgerError>;
