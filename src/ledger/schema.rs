//! The schema and its migrations. `PRAGMA user_version` counts the migrations that ran; they
//! are only ever appended to, so a ledger written by any earlier version opens in this one and
//! one from a newer version is refused rather than misread. Fixture ledgers of every earlier
//! version (`tests/data/`) keep this promise tested.

use super::db::{self, Conn, Dialect, params};
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
    // 8: a cluster. The leader's lease is renewed (`renewed_at`) and expires; each daemon
    // start is an incarnation (`nodes.epoch`, from the `nodes` row of `leases` as a counter)
    // whose runs carry it; a node that stopped heartbeating is declared lost (`lost_at`).
    r#"
    ALTER TABLE leases ADD COLUMN renewed_at TEXT;
    ALTER TABLE nodes ADD COLUMN epoch INTEGER;
    ALTER TABLE nodes ADD COLUMN lost_at TEXT;
    "#,
    // 9: a run's overrides of its revision (`{"timeout": "2h"}` from a trigger), backfills
    // (a window of a job's slots run at most `parallel` at a time, or one at a time beside the
    // job's other runs when `exclusive`; each of its runs names it, and no slot is backfilled
    // twice),
    // and the scope (the folders of `jobs.d`) of the token that created an API-owned job.
    r#"
    ALTER TABLE runs ADD COLUMN overrides TEXT;
    CREATE TABLE backfills (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        job          TEXT NOT NULL,
        window_from  TEXT NOT NULL,
        window_to    TEXT NOT NULL,
        parallel     INTEGER NOT NULL,
        exclusive    INTEGER NOT NULL,
        created_at   TEXT NOT NULL,
        created_by   TEXT
    );
    ALTER TABLE runs ADD COLUMN backfill_id INTEGER REFERENCES backfills(id);
    CREATE INDEX runs_by_backfill ON runs(backfill_id, state) WHERE backfill_id IS NOT NULL;
    CREATE UNIQUE INDEX runs_backfilled_slots ON runs(job, scheduled_at) WHERE trigger = 'backfill';
    ALTER TABLE jobs ADD COLUMN scope TEXT;
    "#,
    // 10: what a request's answer said (issue 18): the HTTP status of an `http` or `prompt`
    // run, and a prompt's model, finish reason and token counts.
    r#"
    ALTER TABLE runs ADD COLUMN http_status INTEGER;
    ALTER TABLE runs ADD COLUMN model TEXT;
    ALTER TABLE runs ADD COLUMN finish_reason TEXT;
    ALTER TABLE runs ADD COLUMN prompt_tokens INTEGER;
    ALTER TABLE runs ADD COLUMN completion_tokens INTEGER;
    "#,
];

/// The migration (its `user_version`) after whose SQL the old `run_output` rows are moved into
/// chunks: compression needs Rust, not SQL.
const OUTPUT_CHUNKS_VERSION: usize = 6;

impl Ledger {
    pub(super) fn schema_version(&self) -> Result<i64> {
        schema_version(&self.conn).for_ledger(self)
    }

    pub(super) fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        // An up-to-date ledger needs no write lock just to be opened.
        if self.schema_version()? == known {
            return Ok(());
        }
        if let Some(conn) = self.sqlite()
            && self.schema_version()? == 0
        {
            // Only possible before the first table exists: lets retention give pages back.
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .for_ledger(self)?;
        }
        let path = self.path.clone();
        // The write lock (SQLite's, or the advisory lock on PostgreSQL) is held from here: two
        // daemons starting together on one database migrate it once.
        self.with_tx(|tx| {
            let version = schema_version(tx)?;
            if version > known {
                return Err(LedgerError::TooNew {
                    path,
                    found: version,
                    known,
                }
                .into());
            }
            if tx.dialect() == Dialect::Postgres {
                return pg_migrate(tx, version);
            }
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(sql)?;
                if index + 1 == OUTPUT_CHUNKS_VERSION {
                    output::move_legacy_rows(tx, &path)?;
                }
                tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
            }
            Ok(())
        })
    }
}

/// How many migrations the ledger has had: SQLite's `user_version`, PostgreSQL's
/// `schema_version` table (0 before the first).
fn schema_version(conn: &Conn) -> db::Result<i64> {
    match conn.dialect() {
        Dialect::Sqlite => conn.query_row("PRAGMA user_version", params![], |r| r.get(0)),
        Dialect::Postgres => {
            // A scan of the catalog, not `to_regclass`: that reads the session's catalog
            // cache, which still says "no such table" after another daemon's migration
            // committed while this one waited for the lock.
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relname = 'schema_version' AND n.nspname = current_schema())",
                params![],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(0);
            }
            conn.query_row("SELECT version FROM schema_version", params![], |r| {
                r.get(0)
            })
        }
    }
}

/// Brings a PostgreSQL ledger from `version` to the current one: an empty database gets
/// [`PG_SCHEMA`] (the schema as [`MIGRATIONS`] leave it at [`PG_BASE`]), then the
/// PostgreSQL text of every migration after that.
fn pg_migrate(tx: &Conn, version: i64) -> super::TxResult<()> {
    let mut version = usize::try_from(version).unwrap_or(0);
    if version == 0 {
        tx.execute_batch(PG_SCHEMA)?;
        version = PG_BASE;
    }
    for sql in PG_MIGRATIONS.iter().skip(version - PG_BASE) {
        tx.execute_batch(sql)?;
        version += 1;
    }
    tx.execute("UPDATE schema_version SET version = ?1", params![version])?;
    Ok(())
}

/// The migration a PostgreSQL ledger starts at: [`PG_SCHEMA`] is the schema as the first
/// `PG_BASE` of [`MIGRATIONS`] leave a SQLite ledger.
const PG_BASE: usize = 7;

/// A new PostgreSQL ledger's schema: the tables of SQLite's [`MIGRATIONS`] up to [`PG_BASE`],
/// with PostgreSQL's types (every integer `BIGINT`, ids as identities, blobs `BYTEA`), and
/// `schema_version` in place of `PRAGMA user_version`.
const PG_SCHEMA: &str = r#"
CREATE TABLE schema_version (version BIGINT NOT NULL);
INSERT INTO schema_version (version) VALUES (0);
-- SQLite's group_concat(value, separator), so the statements that join reasons are shared.
CREATE FUNCTION jobs_concat(acc text, value text, sep text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN value IS NULL THEN acc WHEN acc IS NULL THEN value
                      ELSE acc || sep || value END $$;
CREATE AGGREGATE group_concat(text, text) (SFUNC = jobs_concat, STYPE = text);
-- Every node LISTENs on jobs_wake: new or changed runs say "work" once per transaction
-- (identical notifications of one transaction are folded into one).
CREATE FUNCTION jobs_notify_work() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_notify('jobs_wake', 'work'); RETURN NULL; END $$;
CREATE TABLE applies (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    applied_at  TEXT NOT NULL,
    git_commit  TEXT,
    git_dirty   BIGINT,
    added       BIGINT NOT NULL,
    changed     BIGINT NOT NULL,
    removed     BIGINT NOT NULL
);
CREATE TABLE revisions (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    job           TEXT NOT NULL,
    number        BIGINT NOT NULL,
    apply_id      BIGINT REFERENCES applies(id),
    content_hash  TEXT NOT NULL,
    definition    TEXT NOT NULL,
    source_path   TEXT,
    enabled       BIGINT NOT NULL,
    schedule      TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    description   TEXT NOT NULL,
    tags          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    git_commit    TEXT,
    git_dirty     BIGINT,
    repeat        TEXT,
    depends_on    TEXT,
    runs_on       TEXT
);
CREATE UNIQUE INDEX revisions_by_job ON revisions(job, number);
CREATE TABLE jobs (
    name             TEXT PRIMARY KEY,
    owner            TEXT NOT NULL CHECK (owner IN ('file', 'api')),
    revision_id      BIGINT NOT NULL REFERENCES revisions(id),
    active           BIGINT NOT NULL,
    schedule_anchor  TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    removed_at       TEXT,
    slot_cursor      TEXT,
    fires            BIGINT NOT NULL DEFAULT 0,
    completed_at     TEXT,
    failure_streak   BIGINT NOT NULL DEFAULT 0,
    last_failed_at   TEXT
);
CREATE TABLE run_events (
    id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    run_id   BIGINT NOT NULL,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE INDEX run_events_by_run ON run_events(run_id, id);
CREATE TABLE pauses (
    job        TEXT PRIMARY KEY,
    paused_by  TEXT NOT NULL,
    paused_at  TEXT NOT NULL,
    reason     TEXT
);
CREATE TABLE leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    pid          BIGINT,
    pid_start    BIGINT,
    epoch        BIGINT NOT NULL,
    acquired_at  TEXT NOT NULL,
    released_at  TEXT
);
CREATE TABLE daemon_events (
    id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE TABLE daemon_status (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
CREATE TABLE runs (
    id                 BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    job                TEXT NOT NULL,
    revision_id        BIGINT REFERENCES revisions(id),
    trigger            TEXT NOT NULL,
    scheduled_at       TEXT,
    state              TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    exit_code          BIGINT,
    slot               TEXT,
    slot_first         TEXT,
    slot_count         BIGINT NOT NULL DEFAULT 1,
    attempt            BIGINT NOT NULL DEFAULT 1,
    first_run_id       BIGINT,
    not_before         TEXT,
    params             TEXT,
    reason             TEXT,
    error              TEXT,
    signal             BIGINT,
    epoch              BIGINT,
    supervisor_pid     BIGINT,
    supervisor_start   BIGINT,
    pid                BIGINT,
    pid_start          BIGINT,
    cancel_requested   TEXT,
    cpu_user_ms        BIGINT,
    cpu_sys_ms         BIGINT,
    max_rss_kb         BIGINT,
    output_bytes       BIGINT NOT NULL DEFAULT 0,
    output_truncated   BIGINT NOT NULL DEFAULT 0,
    released_by        TEXT,
    output_open_first  BIGINT,
    output_open_bytes  BIGINT NOT NULL DEFAULT 0,
    node               TEXT
);
CREATE INDEX runs_by_job ON runs(job, id);
CREATE UNIQUE INDEX runs_by_slot ON runs(job, slot) WHERE slot IS NOT NULL;
CREATE INDEX runs_by_state ON runs(state, id);
CREATE INDEX runs_by_job_state_finish ON runs(job, state, finished_at);
CREATE TABLE run_output_chunks (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    run_id      BIGINT NOT NULL,
    first_line  BIGINT NOT NULL,
    n_lines     BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    raw_bytes   BIGINT NOT NULL,
    codec       BIGINT NOT NULL,
    payload     BYTEA NOT NULL
);
CREATE UNIQUE INDEX run_output_chunks_by_run ON run_output_chunks(run_id, first_line);
CREATE TRIGGER runs_notify_work AFTER INSERT OR UPDATE OF state ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_work();
CREATE TABLE nodes (
    name          TEXT PRIMARY KEY,
    labels        TEXT NOT NULL DEFAULT '[]',
    address       TEXT,
    host          TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    stopped_at    TEXT
);
"#;

/// The PostgreSQL text of each migration after [`PG_BASE`], in step with [`MIGRATIONS`].
const PG_MIGRATIONS: &[&str] = &[
    // 8; and "work" only when a statement leaves a run pending: a claim (pending to running)
    // or an end must not wake every node's executor, its own included, to claim again.
    r#"
    ALTER TABLE leases ADD COLUMN renewed_at TEXT;
    ALTER TABLE nodes ADD COLUMN epoch BIGINT;
    ALTER TABLE nodes ADD COLUMN lost_at TEXT;
    DROP TRIGGER runs_notify_work ON runs;
    CREATE OR REPLACE FUNCTION jobs_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM new_runs WHERE state = 'pending') THEN
            PERFORM pg_notify('jobs_wake', 'work');
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER runs_inserted_work AFTER INSERT ON runs REFERENCING NEW TABLE AS new_runs
        FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_work();
    CREATE TRIGGER runs_updated_work AFTER UPDATE ON runs REFERENCING NEW TABLE AS new_runs
        FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_work();
    "#,
    // 9
    r#"
    ALTER TABLE runs ADD COLUMN overrides TEXT;
    CREATE TABLE backfills (
        id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        job          TEXT NOT NULL,
        window_from  TEXT NOT NULL,
        window_to    TEXT NOT NULL,
        parallel     BIGINT NOT NULL,
        exclusive    BIGINT NOT NULL,
        created_at   TEXT NOT NULL,
        created_by   TEXT
    );
    ALTER TABLE runs ADD COLUMN backfill_id BIGINT REFERENCES backfills(id);
    CREATE INDEX runs_by_backfill ON runs(backfill_id, state) WHERE backfill_id IS NOT NULL;
    CREATE UNIQUE INDEX runs_backfilled_slots ON runs(job, scheduled_at) WHERE trigger = 'backfill';
    ALTER TABLE jobs ADD COLUMN scope TEXT;
    "#,
    // 10: what a request's answer said (issue 18): the HTTP status of an `http` or `prompt`
    // run, and a prompt's model, finish reason and token counts.
    r#"
    ALTER TABLE runs ADD COLUMN http_status BIGINT;
    ALTER TABLE runs ADD COLUMN model TEXT;
    ALTER TABLE runs ADD COLUMN finish_reason TEXT;
    ALTER TABLE runs ADD COLUMN prompt_tokens BIGINT;
    ALTER TABLE runs ADD COLUMN completion_tokens BIGINT;
    "#,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_has_its_postgresql_text() {
        assert_eq!(MIGRATIONS.len(), PG_BASE + PG_MIGRATIONS.len());
    }
}
