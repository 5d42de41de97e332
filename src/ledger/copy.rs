//! `jobctl ledger copy --from A --to B`: a whole ledger moved to another database (a team
//! that outgrew SQLite moves to PostgreSQL, or back), in one transaction on the target.
//!
//! Every table of the history is copied row for row, ids kept (runs keep their numbers,
//! links and logs stay true); the target must be empty. What belongs to the daemons serving
//! the source (its lease, its nodes) is not copied: the target's nodes join afresh, their
//! incarnations numbered above every epoch a copied run carries, so a run left `running` in
//! the source is no live node's and ends "node lost" under the target's leader.

use super::db::{Conn, Dialect, Param, Value, params};
use super::{Ledger, LedgerError, Result};

/// The tables copied, parents before children.
const TABLES: &[&str] = &[
    "applies",
    "revisions",
    "jobs",
    "pauses",
    "backfills",
    "runs",
    "run_events",
    "run_output_chunks",
    "daemon_events",
    "daemon_status",
];

/// The tables whose `id` is generated: PostgreSQL's identities move past the copied ids.
const IDENTITIES: &[&str] = &[
    "applies",
    "revisions",
    "backfills",
    "runs",
    "run_events",
    "run_output_chunks",
    "daemon_events",
];

/// How many rows of each table a copy wrote.
pub type Copied = Vec<(&'static str, u64)>;

impl Ledger {
    /// Copies this ledger's history into `target`, which must be empty, in one transaction
    /// on the target (all or nothing). Both are at the current schema.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Conflict`] when the target holds anything, or a database failure (on
    /// either side; nothing is written then).
    pub fn copy_into(&self, target: &mut Ledger) -> Result<Copied> {
        let source = &self.conn;
        let mut columns = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            columns.push(target.read(|conn| columns_of(conn, table))?);
        }
        let from = self.path.clone();
        let to = target.path.clone();
        target.with_tx(|tx| {
            let held: i64 = tx.query_row(
                "SELECT (SELECT count(*) FROM applies) + (SELECT count(*) FROM revisions)
                      + (SELECT count(*) FROM jobs) + (SELECT count(*) FROM runs)",
                params![],
                |r| r.get(0),
            )?;
            if held > 0 {
                return Err(LedgerError::Conflict {
                    path: to.clone(),
                    detail: format!(
                        "{} is not empty ({held} applies, revisions, jobs and runs); a copy \
                         only fills an empty ledger",
                        to.display()
                    ),
                }
                .into());
            }
            let mut copied = Vec::with_capacity(TABLES.len());
            for (table, columns) in TABLES.iter().zip(&columns) {
                let list = columns.join(", ");
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                let insert = format!("INSERT INTO {table} ({list}) VALUES ({})", marks.join(", "));
                let order = if columns.iter().any(|c| c == "id") {
                    " ORDER BY id"
                } else {
                    ""
                };
                let select = format!("SELECT {list} FROM {table}{order}");
                let mut rows = 0u64;
                let mut insert = tx.prepare_cached(&insert)?;
                source
                    .prepare_cached(&select)
                    .map_err(|e| LedgerError::from_db(&from, e))?
                    .for_each(params![], |row| {
                        let values: Vec<Value<'_>> = (0..columns.len())
                            .map(|i| row.get_ref(i))
                            .collect::<super::db::Result<_>>()?;
                        let binds: Vec<&dyn Param> =
                            values.iter().map(|v| v as &dyn Param).collect();
                        insert.execute(&binds)?;
                        rows += 1;
                        Ok(())
                    })
                    .map_err(|e| LedgerError::from_db(&from, e))?;
                copied.push((*table, rows));
            }
            // New incarnations above every epoch a copied run carries.
            let epochs: i64 =
                tx.query_row("SELECT coalesce(max(epoch), 0) FROM runs", params![], |r| {
                    r.get(0)
                })?;
            tx.execute(
                "INSERT INTO leases (name, holder, epoch, acquired_at, released_at)
                 VALUES ('nodes', '', ?1, '1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z')
                 ON CONFLICT (name) DO UPDATE SET epoch = CASE WHEN leases.epoch > ?1
                     THEN leases.epoch ELSE ?1 END",
                params![epochs],
            )?;
            if tx.dialect() == Dialect::Postgres {
                for table in IDENTITIES {
                    tx.execute_batch(&format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                       coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                    ))?;
                }
            }
            Ok(copied)
        })
    }
}

/// The columns of `table` in the ledger at `conn`, in order.
fn columns_of(conn: &Conn, table: &str) -> super::db::Result<Vec<String>> {
    let sql = conn.sql(
        "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        "SELECT column_name FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
    );
    conn.prepare_cached(sql)?
        .query_map(params![table], |r| r.get::<String>(0))?
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_table_with_an_identity_is_copied() {
        for table in super::IDENTITIES {
            assert!(super::TABLES.contains(table), "{table}");
        }
    }
}
