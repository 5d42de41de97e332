//! The schema and its migrations. `PRAGMA user_version` counts the migrations that ran; they
//! are only ever appended to, so a ledger written by any earlier version opens in this one and
//! one from a newer version is refused rather than misread. Fixture ledgers of every earlier
//! version (`tests/data/`) keep this promise tested.

use super::{ForLedger, Ledger, LedgerError, Result, output};

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
    // When each job's last failed or timed-out run ended: the dashboard sorts by it (a page
    // of 10,000 jobs cannot look it up in the runs), kept by the end of each run like the
    // failure streak. Filled from the runs on the way.
    // The nodes (daemons) that serve the ledger: each writes its row at start and a heartbeat
    // while it lives; each run records the node that ran it, and a revision the node labels
    // its runs need (`runs_on`, a JSON list; NULL for none).
    r#"
    ALTER TABLE jobs ADD COLUMN last_failed_at TEXT;
    UPDATE jobs SET last_failed_at = (
        SELECT max(finished_at) FROM runs
        WHERE runs.job = jobs.name AND runs.state IN ('failed', 'timed_out')
    );
    CREATE TABLE nodes (
        name          TEXT PRIMARY KEY,
        labels        TEXT NOT NULL DEFAULT '[]',
        address       TEXT,
        host          TEXT NOT NULL,
        pid           INTEGER NOT NULL,
        started_at    TEXT NOT NULL,
        heartbeat_at  TEXT NOT NULL,
        stopped_at    TEXT
    );
    ALTER TABLE runs ADD COLUMN node TEXT;
    ALTER TABLE revisions ADD COLUMN runs_on TEXT;
    "#,
];

/// The migration (its `user_version`) after whose SQL the old `run_output` rows are moved into
/// chunks: compression needs Rust, not SQL.
const OUTPUT_CHUNKS_VERSION: usize = 6;

impl Ledger {
    pub(super) fn schema_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .for_ledger(self)
    }

    pub(super) fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        // An up-to-date ledger needs no write lock just to be opened.
        if self.schema_version()? == known {
            return Ok(());
        }
        if self.schema_version()? == 0 {
            // Only possible before the first table exists: lets retention give pages back.
            self.conn
                .pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .for_ledger(self)?;
        }
        let path = self.path.clone();
        self.with_tx(|tx| {
            let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
            if version > known {
                return Err(LedgerError::TooNew {
                    path,
                    found: version,
                    known,
                }
                .into());
            }
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(sql)?;
                if index + 1 == OUTPUT_CHUNKS_VERSION {
                    output::move_legacy_rows(tx, &path)?;
                }
                tx.pragma_update(None, "user_version", index as i64 + 1)?;
            }
            Ok(())
        })
    }
}
