//! The SQL edge under the ledger: one connection type over SQLite (rusqlite) and PostgreSQL
//! (tokio-postgres), so the ledger's operations are written once.
//!
//! The surface is rusqlite's shape, kept small: [`Conn::prepare_cached`] gives a [`Stmt`] that
//! executes or queries with [`params!`]; rows are read through [`Row`] into Rust types with
//! [`FromCol`]. Parameters are [`Param`]s, read as a borrowed [`Value`] and bound to what each
//! database expects (SQLite takes the value as it is; PostgreSQL converts it to the type the
//! server inferred for the placeholder). SQL is written with SQLite's `?N` placeholders;
//! PostgreSQL's `$N` are derived once per statement. Where the two dialects differ, the
//! ledger gives both texts ([`Conn::dialect`]).
//!
//! Transactions are [`Conn::transaction`]: `Immediate` takes the write lock up front (SQLite's
//! `BEGIN IMMEDIATE`; on PostgreSQL a transaction-scoped advisory lock, so the ledger's writes
//! are serialised across every node exactly as SQLite serialises them across processes).

use std::fmt;

mod pg;
pub use pg::{Listener, PgTarget, listen};

/// A connection to one ledger database.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Pg(pg::PgConn),
}

/// Which SQL a statement must be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A failure at the SQL edge.
#[derive(Debug)]
pub enum Error {
    Sqlite(rusqlite::Error),
    Pg(tokio_postgres::Error),
    /// Column `idx` does not read as the type asked for.
    Column {
        idx: usize,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `query_row` found no row.
    NoRows,
    /// The connection is gone (its thread ended).
    Closed,
    /// TLS to the server cannot be set up (its CA file cannot be read).
    Tls(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => e.fmt(f),
            Error::Pg(e) => f.write_str(&pg_message(e)),
            Error::Column { idx, source } => write!(f, "column {idx}: {source}"),
            Error::NoRows => f.write_str("no row returned"),
            Error::Closed => f.write_str("the connection to the database is closed"),
            Error::Tls(e) => write!(f, "setting up TLS to the database: {e}"),
        }
    }
}

/// PostgreSQL's message for `e`: the server's own words when it sent some.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sqlite(e) => Some(e),
            // The server's message is already this error's own.
            Error::Pg(_) => None,
            Error::Column { source, .. } => Some(source.as_ref()),
            Error::NoRows | Error::Closed | Error::Tls(_) => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            e => Error::Sqlite(e),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Error {
        Error::Pg(e)
    }
}

/// `Ok(None)` for a `query_row` that found nothing.
pub trait Optional<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> Optional<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A value as SQL sees it, borrowed: what a [`Param`] binds and what a column reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A value to bind to a placeholder.
pub trait Param {
    fn value(&self) -> Value<'_>;
}

/// `params![a, b]`: the parameters of a statement, in placeholder order.
#[macro_export]
#[doc(hidden)]
macro_rules! __ledger_params {
    () => { &[] as &[&dyn $crate::ledger::db::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::ledger::db::Param),+] as &[&dyn $crate::ledger::db::Param] };
}
pub use crate::__ledger_params as params;

macro_rules! int_params {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Value<'_> {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_params!(i64, i32, u32, u64, usize, u16, u8, i16);

impl Param for bool {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Param for f64 {
    fn value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl Param for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param + ?Sized> Param for Box<T> {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

impl Param for Value<'_> {
    fn value(&self) -> Value<'_> {
        *self
    }
}

/// An owned value, for parameter lists built at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum Owned {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Param for Owned {
    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(i) => Value::Int(*i),
            Owned::Real(r) => Value::Real(*r),
            Owned::Text(t) => Value::Text(t),
            Owned::Blob(b) => Value::Blob(b),
        }
    }
}

impl From<i64> for Owned {
    fn from(i: i64) -> Owned {
        Owned::Int(i)
    }
}

impl From<String> for Owned {
    fn from(t: String) -> Owned {
        Owned::Text(t)
    }
}

impl From<&str> for Owned {
    fn from(t: &str) -> Owned {
        Owned::Text(t.to_string())
    }
}

/// A column's type did not match what was asked.
#[derive(Debug)]
struct WrongType {
    wanted: &'static str,
    found: &'static str,
}

impl fmt::Display for WrongType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {}", self.wanted, self.found)
    }
}

impl std::error::Error for WrongType {}

impl<'a> Value<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }

    fn wrong(&self, wanted: &'static str) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(WrongType {
            wanted,
            found: self.kind(),
        })
    }

    /// The text of a text column, borrowed.
    pub fn as_str(self) -> std::result::Result<&'a str, Box<dyn std::error::Error + Send + Sync>> {
        match self {
            Value::Text(t) => Ok(t),
            v => Err(v.wrong("text")),
        }
    }
}

/// A Rust type a column reads as.
pub trait FromCol: Sized {
    /// # Errors
    ///
    /// When the value is not of this type.
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>>;
}

impl FromCol for i64 {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<i64, Box<dyn std::error::Error + Send + Sync>> {
        match v {
            Value::Int(i) => Ok(i),
            v => Err(v.wrong("an integer")),
        }
    }
}

impl FromCol for usize {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let i = i64::from_value(v)?;
        usize::try_from(i).map_err(|e| Box::new(e) as _)
    }
}

impl FromCol for u64 {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<u64, Box<dyn std::error::Error + Send + Sync>> {
        let i = i64::from_value(v)?;
        u64::try_from(i).map_err(|e| Box::new(e) as _)
    }
}

impl FromCol for i32 {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<i32, Box<dyn std::error::Error + Send + Sync>> {
        let i = i64::from_value(v)?;
        i32::try_from(i).map_err(|e| Box::new(e) as _)
    }
}

impl FromCol for bool {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromCol for f64 {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<f64, Box<dyn std::error::Error + Send + Sync>> {
        match v {
            Value::Real(r) => Ok(r),
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => Ok(i as f64),
            v => Err(v.wrong("a real")),
        }
    }
}

impl FromCol for String {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(v.as_str()?.to_string())
    }
}

impl FromCol for Vec<u8> {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        match v {
            Value::Blob(b) => Ok(b.to_vec()),
            Value::Text(t) => Ok(t.as_bytes().to_vec()),
            v => Err(v.wrong("a blob")),
        }
    }
}

impl<T: FromCol> FromCol for Option<T> {
    fn from_value(
        v: Value<'_>,
    ) -> std::result::Result<Option<T>, Box<dyn std::error::Error + Send + Sync>> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result.
pub struct Row<'r>(RowIn<'r>);

enum RowIn<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Pg(&'r tokio_postgres::Row),
}

impl<'r> Row<'r> {
    /// Column `idx` as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Column`] when it is not a `T`.
    pub fn get<T: FromCol>(&self, idx: usize) -> Result<T> {
        T::from_value(self.get_ref(idx)?).map_err(|source| Error::Column { idx, source })
    }

    /// Column `idx` as it is, borrowed from the row.
    ///
    /// # Errors
    ///
    /// When there is no such column, or PostgreSQL's type has no [`Value`].
    pub fn get_ref(&self, idx: usize) -> Result<Value<'r>> {
        match &self.0 {
            RowIn::Sqlite(row) => Ok(match row.get_ref(idx)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(i) => Value::Int(i),
                rusqlite::types::ValueRef::Real(r) => Value::Real(r),
                rusqlite::types::ValueRef::Text(t) => {
                    Value::Text(std::str::from_utf8(t).map_err(|e| Error::Column {
                        idx,
                        source: Box::new(e),
                    })?)
                }
                rusqlite::types::ValueRef::Blob(b) => Value::Blob(b),
            }),
            RowIn::Pg(row) => pg::get(row, idx),
        }
    }

    /// The name of column `idx` (or its number when it has none).
    pub fn column_name(&self, idx: usize) -> String {
        match &self.0 {
            RowIn::Sqlite(row) => row
                .as_ref()
                .column_name(idx)
                .map_or_else(|_| idx.to_string(), str::to_string),
            RowIn::Pg(row) => row
                .columns()
                .get(idx)
                .map_or_else(|| idx.to_string(), |c| c.name().to_string()),
        }
    }
}

/// SQLite's binding of a [`Param`]: the value as it is, borrowed.
struct Bind<'a>(&'a dyn Param);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0.value() {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Real(r) => ValueRef::Real(r),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_params<'a>(
    params: &'a [&'a dyn Param],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = Bind<'a>>> {
    rusqlite::params_from_iter(params.iter().map(|p| Bind(*p)))
}

/// How a transaction takes its locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Reads see one snapshot; writes wait for the lock when they come.
    Deferred,
    /// The ledger's write lock is taken up front, so two writers never deadlock upgrading.
    Immediate,
}

/// An open transaction: rolled back when dropped without [`Tx::commit`].
pub struct Tx<'c> {
    conn: &'c Conn,
    open: bool,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Tx<'_> {
    /// Commits the transaction.
    ///
    /// # Errors
    ///
    /// When the commit fails (the transaction is then rolled back).
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        let done = self.conn.execute_batch("COMMIT");
        if done.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// How long PostgreSQL lets a session sit idle inside a transaction before it ends the
/// session (and its locks). The ledger's transactions run their statements back to back.
pub const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(5);

/// The advisory lock that stands for SQLite's write lock on PostgreSQL (any constant: the
/// ledger's database holds nothing else that takes advisory locks).
pub const WRITE_LOCK: i64 = 0x6a6f_6273; // "jobs"

impl Conn {
    /// Opens a PostgreSQL ledger.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses the credentials.
    pub fn open_pg(target: &PgTarget, lock_wait: std::time::Duration) -> Result<Conn> {
        // As SQLite's busy timeout: a writer waits this long for the write lock (the advisory
        // lock of `Begin::Immediate`) or a row, then fails as "locked" instead of hanging.
        // A session idle inside a transaction for 5 s is ended by the server: a node frozen
        // (SIGSTOP, a VM pause) while it holds the write lock does not hold up the cluster.
        let setup = format!(
            "SET lock_timeout = '{}ms'; SET idle_in_transaction_session_timeout = '{}ms'",
            lock_wait.as_millis(),
            IDLE_IN_TRANSACTION.as_millis()
        );
        Ok(Conn::Pg(pg::PgConn::connect(target, setup)?))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Pg(_) => Dialect::Postgres,
        }
    }

    /// `sqlite` or `pg`: the text of a statement in this connection's dialect.
    pub fn sql<'a>(&self, sqlite: &'a str, pg: &'a str) -> &'a str {
        match self {
            Conn::Sqlite(_) => sqlite,
            Conn::Pg(_) => pg,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, backups).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }

    /// Starts a transaction.
    ///
    /// # Errors
    ///
    /// When the lock cannot be taken (SQLite's busy timeout) or the server is gone.
    pub fn transaction(&self, begin: Begin) -> Result<Tx<'_>> {
        match (self, begin) {
            (Conn::Sqlite(_), Begin::Deferred) => self.execute_batch("BEGIN DEFERRED")?,
            (Conn::Sqlite(_), Begin::Immediate) => self.execute_batch("BEGIN IMMEDIATE")?,
            (Conn::Pg(_), Begin::Deferred) => self.execute_batch("BEGIN")?,
            (Conn::Pg(_), Begin::Immediate) => {
                let begun = self.execute_batch(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                ));
                if begun.is_err() {
                    // The lock's wait timed out inside the transaction: end it.
                    let _ = self.execute_batch("ROLLBACK");
                }
                begun?;
            }
        }
        Ok(Tx {
            conn: self,
            open: true,
        })
    }

    /// Runs statements without parameters, separated by `;`.
    ///
    /// # Errors
    ///
    /// The first statement that fails.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(c) => c.batch(sql),
        }
    }

    /// A statement, prepared once per connection and kept.
    ///
    /// # Errors
    ///
    /// When the SQL does not prepare.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        match self {
            Conn::Sqlite(c) => Ok(Stmt(StmtIn::Sqlite(c.prepare_cached(sql)?))),
            Conn::Pg(c) => Ok(Stmt(StmtIn::Pg(c, c.prepare(sql)?))),
        }
    }

    /// Executes one statement; the number of rows it changed.
    ///
    /// # Errors
    ///
    /// When it fails.
    pub fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The first row of a query, mapped by `f`; [`Error::NoRows`] when there is none.
    ///
    /// # Errors
    ///
    /// When the query or `f` fails.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// A prepared statement.
pub struct Stmt<'c>(StmtIn<'c>);

enum StmtIn<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Pg(&'c pg::PgConn, pg::Prepared),
}

impl Stmt<'_> {
    /// Executes it; the number of rows changed.
    ///
    /// # Errors
    ///
    /// When it fails.
    pub fn execute(&mut self, params: &[&dyn Param]) -> Result<usize> {
        match &mut self.0 {
            StmtIn::Sqlite(s) => Ok(s.execute(sqlite_params(params))?),
            StmtIn::Pg(c, s) => c.execute(s, params),
        }
    }

    /// The first row, mapped by `f`; [`Error::NoRows`] when there is none.
    ///
    /// # Errors
    ///
    /// When the query or `f` fails.
    pub fn query_row<T>(
        &mut self,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        match &mut self.0 {
            StmtIn::Sqlite(s) => {
                let mut rows = s.query(sqlite_params(params))?;
                match rows.next()? {
                    Some(row) => f(&Row(RowIn::Sqlite(row))),
                    None => Err(Error::NoRows),
                }
            }
            StmtIn::Pg(c, s) => match c.query(s, params)?.first() {
                Some(row) => f(&Row(RowIn::Pg(row))),
                None => Err(Error::NoRows),
            },
        }
    }

    /// Whether the query returns any row.
    ///
    /// # Errors
    ///
    /// When it fails.
    pub fn exists(&mut self, params: &[&dyn Param]) -> Result<bool> {
        self.query_row(params, |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
    }

    /// Every row, mapped by `f`, in order.
    ///
    /// # Errors
    ///
    /// When the query fails; a row's error is its item's.
    pub fn query_map<T>(
        &mut self,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut out = Vec::new();
        match &mut self.0 {
            StmtIn::Sqlite(s) => {
                let mut rows = s.query(sqlite_params(params))?;
                while let Some(row) = rows.next()? {
                    out.push(f(&Row(RowIn::Sqlite(row))));
                }
            }
            StmtIn::Pg(c, s) => {
                for row in &c.query(s, params)? {
                    out.push(f(&Row(RowIn::Pg(row))));
                }
            }
        }
        Ok(out.into_iter())
    }

    /// Every row, each given to `f` as it is read; stops at the first error.
    ///
    /// # Errors
    ///
    /// When the query or `f` fails.
    pub fn for_each(
        &mut self,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        match &mut self.0 {
            StmtIn::Sqlite(s) => {
                let mut rows = s.query(sqlite_params(params))?;
                while let Some(row) = rows.next()? {
                    f(&Row(RowIn::Sqlite(row)))?;
                }
            }
            StmtIn::Pg(c, s) => {
                for row in &c.query(s, params)? {
                    f(&Row(RowIn::Pg(row)))?;
                }
            }
        }
        Ok(())
    }
}

/// SQLite's `?N` and `?` placeholders as PostgreSQL's `$N`, outside quotes, numbered densely
/// in order of first use, with the SQLite number (from 1) of each: PostgreSQL must infer a
/// type for every parameter, so one a statement does not use (a claim that does not need
/// the released ids) is left out rather than sent.
fn dollar_placeholders(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut used: Vec<usize> = Vec::new();
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let number = if digits.is_empty() {
                    next += 1;
                    next - 1
                } else {
                    digits.parse().unwrap_or(0)
                };
                let dense = match used.iter().position(|&n| n == number) {
                    Some(i) => i + 1,
                    None => {
                        used.push(number);
                        used.len()
                    }
                };
                out.push('$');
                out.push_str(&dense.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    (out, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dense_dollars_outside_quotes() {
        for (sqlite, pg, used) in [
            ("SELECT ?1, ?2, ?1", "SELECT $1, $2, $1", vec![1, 2]),
            ("a = ? AND b = ?", "a = $1 AND b = $2", vec![1, 2]),
            ("x = '?1' AND y = ?3", "x = '?1' AND y = $1", vec![3]),
            (
                "\"odd?\" = ?12 OR ?2 = ?12",
                "\"odd?\" = $1 OR $2 = $1",
                vec![12, 2],
            ),
        ] {
            assert_eq!(
                dollar_placeholders(sqlite),
                (pg.to_string(), used),
                "{sqlite}"
            );
        }
    }

    #[test]
    fn sqlite_reads_and_writes_through_the_edge() {
        let conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, size REAL)")
            .unwrap();
        let name = "a".to_string();
        let none: Option<i64> = None;
        assert_eq!(
            conn.execute(
                "INSERT INTO t (name, size) VALUES (?1, ?2), (?3, ?4)",
                params![name, 1.5, "b", none]
            )
            .unwrap(),
            2
        );
        let rows: Vec<(i64, String, Option<f64>)> = conn
            .prepare_cached("SELECT id, name, size FROM t ORDER BY id")
            .unwrap()
            .query_map(params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![(1, "a".into(), Some(1.5)), (2, "b".into(), None)]
        );
        let missing = conn
            .query_row("SELECT id FROM t WHERE name = ?1", params!["z"], |r| {
                r.get::<i64>(0)
            })
            .optional()
            .unwrap();
        assert_eq!(missing, None);
        let wrong = conn.query_row("SELECT name FROM t", params![], |r| r.get::<i64>(0));
        assert!(
            matches!(wrong, Err(Error::Column { idx: 0, .. })),
            "{wrong:?}"
        );
        {
            let tx = conn.transaction(Begin::Immediate).unwrap();
            tx.execute("DELETE FROM t", params![]).unwrap();
        }
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM t", params![], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 2, "a dropped transaction rolls back");
    }
}
