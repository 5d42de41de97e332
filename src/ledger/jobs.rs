//! Jobs and their revisions: what `apply` writes, what listings read, and the operator's
//! pauses.

use std::collections::HashMap;

use super::db::{Conn, Optional, params};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::columns::{self, Column, instant, instant_opt};
use super::{ForLedger, Ledger, LedgerError, Result, applied_stamp, stamp};
use crate::run::RunState;
use crate::schedule::Schedule;
use crate::spec::Repeat;

/// A job as the ledger knows it, joined with its current revision, in core types (read by
/// `job_row` and `type_schedules`, the one place its columns are parsed).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub name: String,
    pub owner: Owner,
    pub active: bool,
    /// The job's revision number: 1 for its first applied definition, then 2, ...
    pub revision: i64,
    pub content_hash: String,
    pub definition: String,
    pub source_path: Option<String>,
    pub enabled: bool,
    /// The revision's schedule (stored as `Schedule::to_json`'s canonical JSON).
    pub schedule: Schedule,
    /// The revision's time zone (stored by its IANA name).
    pub timezone: TimeZone,
    pub description: String,
    pub tags: Vec<String>,
    /// Where an `every` schedule counts from: the apply that (re)started it.
    pub schedule_anchor: Timestamp,
    pub created_at: Timestamp,
    /// The latest apply that changed or removed it.
    pub updated_at: Timestamp,
    pub removed_at: Option<Timestamp>,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub n_runs: i64,
    pub last_run: Option<LastRun>,
    /// The id of the current revision's row.
    pub revision_id: i64,
    /// Every slot up to this instant is accounted for (see `slots`); the anchor until the
    /// first slot is recorded.
    pub slot_cursor: Timestamp,
    /// Set while an operator has paused the job.
    pub paused: Option<Pause>,
    /// Runs fired by the schedule or a dependency under the current revision (`repeat`).
    pub fires: i64,
    /// When the job completed (`repeat`); a new revision clears it.
    pub completed_at: Option<Timestamp>,
    /// Final runs that failed or timed out since the last success.
    pub failure_streak: i64,
    /// The revision's `repeat`.
    pub repeat: Option<Repeat>,
    /// What the job's blocked runs wait for (`waiting for a, b`), when it has any.
    pub blocked: Option<String>,
    /// The revision's `depends_on`.
    pub depends_on: Vec<String>,
    /// When its last failed or timed-out run ended.
    pub last_failed_at: Option<Timestamp>,
    /// For an API-owned job: the scope (`team-a/,shared/`) of the token that created it.
    pub scope: Option<String>,
}

/// An operator's pause of a job: who, when, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    pub by: String,
    pub at: Timestamp,
    pub reason: Option<String>,
}

impl std::fmt::Display for Pause {
    /// `by alice@host at 2026-…Z: the reason`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "by {} at {}", self.by, stamp(self.at))?;
        match &self.reason {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }
}

/// A job's newest run: its state, and when it ended (or started, or was created).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastRun {
    pub state: RunState,
    pub at: Timestamp,
}

/// What a listing shows of a job's runs: how many in each state, and the last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFacts {
    pub counts: std::collections::BTreeMap<String, i64>,
    pub last: Option<LastRun>,
}

/// A definition to record as a new revision.
#[derive(Clone, Debug)]
pub struct NewRevision {
    pub name: String,
    pub content_hash: String,
    pub definition: String,
    pub source_path: Option<String>,
    pub enabled: bool,
    pub schedule: Schedule,
    pub timezone: TimeZone,
    pub description: String,
    pub tags: Vec<String>,
    /// Restart the schedule's anchor (for `every`) at the apply time.
    pub reset_anchor: bool,
    /// For the job's state (`fires`, `completed_at`).
    pub repeat: Option<Repeat>,
    /// The gate of the revision's runs.
    pub depends_on: Vec<String>,
    /// The node labels its runs need.
    pub runs_on: Vec<String>,
}

/// What one apply writes: new revisions (adds and changes) and removals.
#[derive(Clone, Debug, Default)]
pub struct ApplyBatch {
    pub upserts: Vec<NewRevision>,
    pub removals: Vec<String>,
    /// Who owns the jobs written: an apply of the files touches only `File` jobs, the API
    /// only `Api` ones.
    pub owner: Owner,
    /// The scope (`team-a/,shared/`) of the API token that writes: recorded on a job the batch
    /// creates (or brings back), in the same transaction; `None` for files and unscoped tokens.
    pub scope: Option<String>,
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

    /// The owner a `jobs.owner` column names; anything but `api` is a file's.
    fn from_column(text: &str) -> Owner {
        if text == "api" {
            Owner::Api
        } else {
            Owner::File
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

impl Ledger {
    /// Every job the ledger knows, removed ones included, by name.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn jobs(&self) -> Result<Vec<JobRow>> {
        query_jobs(&self.conn, None, Detail::Full).for_ledger(self)
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
            .for_ledger(self)?;
        stmt.query_map(params![], |r| r.get(0))
            .and_then(Iterator::collect)
            .for_ledger(self)
    }

    /// The active jobs' applied definitions, by name: what a search reads a job's command
    /// from.
    ///
    /// # Errors
    ///
    /// On a ledger failure.
    pub fn active_definitions(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT j.name, r.definition FROM jobs j JOIN revisions r ON r.id = j.revision_id
                 WHERE j.active = 1",
            )
            .for_ledger(self)?;
        stmt.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .for_ledger(self)
    }

    /// Every job without its definition, tags, run counts or blocked reasons: what a plan
    /// compares with the files. [`Ledger::applied_definition`] reads the definitions it needs.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn jobs_bare(&self) -> Result<Vec<JobRow>> {
        query_jobs(&self.conn, None, Detail::Bare).for_ledger(self)
    }

    /// A job's applied definition and how many runs it has: what a plan shows for a changed or
    /// removed job. `None` for a job the ledger does not know.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn applied_definition(&self, name: &str) -> Result<Option<(String, i64)>> {
        applied_definition(&self.conn, name).for_ledger(self)
    }

    /// Every job without its definition text (which stays empty): what a listing needs.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn job_summaries(&self) -> Result<Vec<JobRow>> {
        query_jobs(&self.conn, None, Detail::Summary).for_ledger(self)
    }

    /// Every job as [`Ledger::job_summaries`] reads it, but without its run counts and last
    /// run: a paged listing filters and sorts these, then asks [`Ledger::run_facts`] for the
    /// page's. No pass over the runs (the blocked reasons are a walk of the blocked ones).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn jobs_listed(&self) -> Result<Vec<JobRow>> {
        let mut rows = query_jobs(&self.conn, None, Detail::Listed).for_ledger(self)?;
        let mut blocked = self.blocked_reasons()?;
        for row in &mut rows {
            row.blocked = blocked.remove(&row.name);
        }
        Ok(rows)
    }

    /// What each job's blocked runs wait for, by job (only jobs with blocked runs): one walk
    /// of the `runs_by_state` index's blocked entries.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn blocked_reasons(&self) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                // A backfill's waiting runs do not block the job.
                "SELECT job, group_concat(reason, '; ') FROM runs
                 WHERE state = 'blocked' AND backfill_id IS NULL GROUP BY job",
            )
            .for_ledger(self)?;
        stmt.query_map(params![], |r| Ok((r.get(0)?, r.get::<Option<String>>(1)?)))
            .and_then(|rows| {
                rows.filter_map(|row| row.map(|(job, why)| why.map(|w| (job, w))).transpose())
                    .collect()
            })
            .for_ledger(self)
    }

    /// The named jobs' run counts and last runs (what a listing shows of each): two index
    /// lookups per job, so a page of rows costs the same on a ledger of any size.
    ///
    /// # Errors
    ///
    /// On a SQLite failure, or a run whose state or time the ledger cannot read.
    pub fn run_facts(&self, names: &[&str]) -> Result<HashMap<String, RunFacts>> {
        let mut counts = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM runs WHERE job = ?1 GROUP BY state")
            .for_ledger(self)?;
        let mut last = self.last_runs(names)?;
        let mut out = HashMap::with_capacity(names.len());
        for &name in names {
            let counts = counts
                .query_map(params![name], |r| {
                    Ok((r.get::<String>(0)?, r.get::<i64>(1)?))
                })
                .and_then(Iterator::collect)
                .for_ledger(self)?;
            let last = last.remove(name);
            out.insert(name.to_string(), RunFacts { counts, last });
        }
        Ok(out)
    }

    /// The named jobs' last runs (jobs that never ran are left out): one index lookup each.
    ///
    /// # Errors
    ///
    /// On a SQLite failure, or a run whose state or time the ledger cannot read.
    pub fn last_runs(&self, names: &[&str]) -> Result<HashMap<String, LastRun>> {
        let mut last = self
            .conn
            .prepare_cached(
                "SELECT state, coalesce(finished_at, started_at, created_at) FROM runs
                 WHERE job = ?1 ORDER BY id DESC LIMIT 1",
            )
            .for_ledger(self)?;
        let mut out = HashMap::with_capacity(names.len());
        for &name in names {
            let found = last
                .query_row(params![name], |r| {
                    let what = || format!("job {name}");
                    Ok(LastRun {
                        state: columns::parsed(r, 0, &what)?,
                        at: instant(r, 1, &what)?,
                    })
                })
                .optional()
                .for_ledger(self)?;
            if let Some(found) = found {
                out.insert(name.to_string(), found);
            }
        }
        Ok(out)
    }

    /// A mark that moves when the set of jobs or their definitions or pauses change (an
    /// apply, a pause, a resume): a stream of changes compares it to tell pages to refresh
    /// their jobs. Runs' changes are told by their events instead.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn catalog_mark(&self) -> Result<String> {
        self.conn
            .query_row(
                "SELECT coalesce((SELECT max(id) FROM applies), 0) || '.' || count(*) || '.' ||
                        coalesce(max(paused_at), '') FROM pauses",
                params![],
                |r| r.get(0),
            )
            .for_ledger(self)
    }

    /// Each tag of the active jobs and how many carry it, by tag.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn tag_counts(&self) -> Result<Vec<(String, usize)>> {
        let mut stmt = self
            .conn
            .prepare_cached(self.conn.sql(
                "SELECT t.value, count(*) FROM jobs j JOIN revisions r ON r.id = j.revision_id,
                            json_each(r.tags) t
                     WHERE j.active = 1 GROUP BY t.value ORDER BY t.value",
                "SELECT t.value, count(*) FROM jobs j JOIN revisions r ON r.id = j.revision_id,
                            jsonb_array_elements_text(CAST(r.tags AS jsonb)) t(value)
                     WHERE j.active = 1 GROUP BY t.value ORDER BY t.value",
            ))
            .for_ledger(self)?;
        stmt.query_map(params![], |r| Ok((r.get(0)?, r.get::<i64>(1)? as usize)))
            .and_then(Iterator::collect)
            .for_ledger(self)
    }

    /// One job by name, removed or not.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn job(&self, name: &str) -> Result<Option<JobRow>> {
        query_jobs(&self.conn, Some(name), Detail::Full)
            .map(|mut rows| rows.pop())
            .for_ledger(self)
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
        now: Timestamp,
        git: &GitInfo,
        decide: impl FnOnce(
            &[JobRow],
            &dyn Fn(&str) -> Option<(String, i64)>,
        ) -> std::result::Result<ApplyBatch, String>,
    ) -> Result<Option<ApplyRecord>> {
        let path = self.path.clone();
        self.with_tx(|tx| {
            // Bare rows: a plan needs the definitions (and run counts) of changed and removed
            // jobs only, which `fetch` reads on demand (most of the time, of 10,000 jobs, one).
            let current = query_jobs(tx, None, Detail::Bare)?;
            let fetch = |name: &str| applied_definition(tx, name).ok().flatten();
            let batch = decide(&current, &fetch).map_err(|detail| LedgerError::Conflict {
                path: path.clone(),
                detail,
            })?;
            if batch.upserts.is_empty() && batch.removals.is_empty() {
                // Nothing to record: an apply with no changes leaves no trace.
                return Ok(None);
            }
            Ok(Some(write_apply(tx, now, git, &current, &batch)?))
        })
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
                params![name],
                |row| row.get(0),
            )
            .for_ledger(self)
    }

    /// The latest apply, if any: `(id, applied_at, git_commit)`.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn last_apply(&self) -> Result<Option<(i64, Timestamp, Option<String>)>> {
        self.conn
            .query_row(
                "SELECT id, applied_at, git_commit FROM applies ORDER BY id DESC LIMIT 1",
                params![],
                |row| {
                    let id: i64 = row.get(0)?;
                    let at = instant(row, 1, &|| format!("apply {id}"))?;
                    Ok((id, at, row.get(2)?))
                },
            )
            .optional()
            .for_ledger(self)
    }
}

impl Ledger {
    /// Pauses a job (an operator's override that outlives applies).
    ///
    /// # Errors
    ///
    /// [`LedgerError::NotFound`] for a job the ledger does not have, or a SQLite failure.
    pub fn pause(&self, job: &str, by: &str, reason: Option<&str>, now: Timestamp) -> Result<bool> {
        self.require_job(job)?;
        let n = self
            .conn
            .execute(
                "INSERT INTO pauses (job, paused_by, paused_at, reason) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (job) DO NOTHING",
                params![job, by, stamp(now), reason],
            )
            .for_ledger(self)?;
        Ok(n == 1)
    }

    /// Resumes a paused job; `false` when it was not paused.
    ///
    /// # Errors
    ///
    /// [`LedgerError::NotFound`] for a job the ledger does not have, or a SQLite failure.
    pub fn resume(&self, job: &str) -> Result<bool> {
        self.require_job(job)?;
        let n = self
            .conn
            .execute("DELETE FROM pauses WHERE job = ?1", params![job])
            .for_ledger(self)?;
        Ok(n == 1)
    }

    fn require_job(&self, job: &str) -> Result<()> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM jobs WHERE name = ?1 AND active = 1",
                params![job],
                |r| r.get(0),
            )
            .optional()
            .for_ledger(self)?;
        match found {
            Some(_) => Ok(()),
            None => Err(LedgerError::NotFound {
                path: self.path.clone(),
                what: format!("job `{job}`"),
            }),
        }
    }

    /// Every revision of a job, newest first.
    ///
    /// # Errors
    ///
    /// On a SQLite failure, or a stored time that is not one.
    pub fn revisions(&self, name: &str) -> Result<Vec<Revision>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT number, created_at, git_commit, git_dirty, source_path, content_hash,
                        definition
                 FROM revisions WHERE job = ?1 ORDER BY number DESC",
            )
            .for_ledger(self)?;
        stmt.query_map(params![name], |row| {
            let number: i64 = row.get(0)?;
            Ok(Revision {
                number,
                applied_at: instant(row, 1, &|| format!("revision {number}"))?,
                git_commit: row.get(2)?,
                git_dirty: row.get(3)?,
                source_path: row.get(4)?,
                content_hash: row.get(5)?,
                definition: row.get(6)?,
            })
        })
        .and_then(Iterator::collect)
        .for_ledger(self)
    }

    /// A revision's job name and definition (its normal YAML form).
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn revision_definition(&self, revision_id: i64) -> Result<Option<(String, String)>> {
        self.conn
            .query_row(
                "SELECT job, definition FROM revisions WHERE id = ?1",
                params![revision_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .for_ledger(self)
    }
}

/// One applied revision of a job (see [`Ledger::revisions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    pub number: i64,
    pub applied_at: Timestamp,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub source_path: Option<String>,
    pub content_hash: String,
    /// The normal YAML form.
    pub definition: String,
}

/// A job's applied definition and run count (see [`Ledger::applied_definition`]).
fn applied_definition(conn: &Conn, name: &str) -> super::db::Result<Option<(String, i64)>> {
    conn.prepare_cached(
        "SELECT r.definition, (SELECT count(*) FROM runs WHERE job = j.name)
         FROM jobs j JOIN revisions r ON r.id = j.revision_id WHERE j.name = ?1",
    )?
    .query_row(params![name], |row| Ok((row.get(0)?, row.get(1)?)))
    .optional()
}

/// Which columns a job query loads: a listing has no use for whole definitions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// No definitions and no run counts: what an apply compares.
    Bare,
    /// [`Detail::Summary`] without what is read from the runs (counts, last run, blocked
    /// reasons): what a paged listing filters and sorts before reading those for its page.
    Listed,
    Summary,
    Full,
}

fn query_jobs(conn: &Conn, name: Option<&str>, detail: Detail) -> super::db::Result<Vec<JobRow>> {
    let mut stmt = conn.prepare_cached(&jobs_sql(name.is_some(), detail))?;
    let mut texts = Vec::new();
    let mut rows = stmt
        .query_map(params![name], |row| {
            let (job, schedule, zone) = job_row(row, detail)?;
            texts.push((schedule, zone));
            Ok(job)
        })?
        .collect::<super::db::Result<Vec<_>>>()?;
    type_schedules(&mut rows, &texts)?;
    Ok(rows)
}

/// A row as read, before its schedule and zone are parsed: the row (with placeholders for
/// both, never seen outside this file), the schedule's JSON and the zone's name.
type ReadRow = (JobRow, String, String);

/// Parses each row's schedule and looks up its zone (`texts`, in the rows' order), in place,
/// each distinct schedule and zone once. On the calling thread: inside the daemon this runs on the API's
/// long-read pool, where fanning out to rayon made `GET /v1/jobs` slower (see `api::jobs`).
fn type_schedules(rows: &mut [JobRow], texts: &[(String, String)]) -> super::db::Result<()> {
    let mut zones: HashMap<&str, TimeZone> = HashMap::new();
    for (row, (_, zone)) in rows.iter().zip(texts) {
        if !zones.contains_key(zone.as_str()) {
            let tz = jiff::tz::db().get(zone).map_err(|e| {
                let what = format!("job {}", row.name);
                columns::bad_value(&what, "timezone", format!("`{zone}`: {e}"))
            })?;
            zones.insert(zone, tz);
        }
    }
    // Each distinct schedule is parsed once: of 10,000 jobs most share a few hundred
    // (`0 3 * * *`, `every: 5m`), and a clone costs less than a parse (issue 14).
    let mut schedules: HashMap<&str, Schedule> = HashMap::new();
    for (row, (schedule, zone)) in rows.iter_mut().zip(texts) {
        row.schedule = match schedules.get(schedule.as_str()) {
            Some(parsed) => parsed.clone(),
            None => {
                let parsed = serde_json::from_str(schedule)
                    .map_err(|e: serde_json::Error| e.to_string())
                    .and_then(|v| Schedule::from_json(&v).map_err(|e| e.to_string()))
                    .map_err(|e| {
                        let what = format!("job {}", row.name);
                        columns::bad_value(&what, "schedule", format!("`{schedule}`: {e}"))
                    })?;
                schedules.insert(schedule, parsed.clone());
                parsed
            }
        };
        row.timezone = zones[zone.as_str()].clone();
    }
    Ok(())
}

/// The query behind [`query_jobs`]: one job (`?1`) or all, with the columns `detail` needs.
fn jobs_sql(one: bool, detail: Detail) -> String {
    format!(
        "SELECT j.name, j.owner, j.active, r.number, r.content_hash, {definition}, r.source_path,
                r.enabled, r.schedule, r.timezone, r.description, r.tags, j.schedule_anchor,
                j.created_at, j.updated_at, j.removed_at, r.git_commit, r.git_dirty,
                {runs},
                {last_run},
                j.revision_id, coalesce(j.slot_cursor, j.schedule_anchor),
                p.paused_by, p.paused_at, p.reason,
                j.fires, j.completed_at, j.failure_streak, r.repeat,
                {blocked}, r.depends_on, j.last_failed_at, j.scope
         FROM jobs j
         JOIN revisions r ON r.id = j.revision_id
         LEFT JOIN pauses p ON p.job = j.name
         {runs_join}
         WHERE {filter}
         ORDER BY j.name",
        filter = if one {
            "j.name = ?1"
        } else {
            "CAST(?1 AS TEXT) IS NULL"
        },
        definition = match detail {
            Detail::Full => "r.definition",
            Detail::Summary | Detail::Bare | Detail::Listed => "''",
        },
        blocked = if matches!(detail, Detail::Bare | Detail::Listed) {
            "NULL"
        } else {
            "(SELECT group_concat(b.reason, '; ') FROM runs b WHERE b.job = j.name AND b.state = 'blocked'
                AND b.backfill_id IS NULL)"
        },
        runs = if matches!(detail, Detail::Bare | Detail::Listed) {
            "0"
        } else {
            "coalesce(rs.n, 0)"
        },
        last_run = if matches!(detail, Detail::Bare | Detail::Listed) {
            "NULL"
        } else {
            "lr.state || ' ' || coalesce(lr.finished_at, lr.started_at, lr.created_at)"
        },
        // One job: two lookups in `runs_by_job`. All jobs: one pass over it, grouped.
        runs_join = match (detail, one) {
            (Detail::Bare | Detail::Listed, _) => "",
            (_, true) => {
                "LEFT JOIN (SELECT ?1 AS job, count(*) AS n, max(id) AS last FROM runs WHERE job = ?1) rs ON rs.job = j.name
                 LEFT JOIN runs lr ON lr.id = rs.last"
            }
            (_, false) => {
                "LEFT JOIN (SELECT job, count(*) AS n, max(id) AS last FROM runs GROUP BY job) rs ON rs.job = j.name
                 LEFT JOIN runs lr ON lr.id = rs.last"
            }
        },
    )
}

/// A row of [`jobs_sql`] as a [`JobRow`]: every column converted here, once, but for the
/// schedule and the zone, which [`type_schedules`] parses.
fn job_row(row: &super::db::Row<'_>, detail: Detail) -> super::db::Result<ReadRow> {
    let name: String = row.get(0)?;
    let what = || format!("job {name}");
    let tags: String = row.get(11)?;
    let last_run = match row.get::<Option<String>>(19)? {
        None => None,
        Some(last) => {
            let (state, at) = last.split_once(' ').unwrap_or((last.as_str(), ""));
            let bad = |e: String| columns::bad(row, 19, &what(), format!("`{last}`: {e}"));
            Some(LastRun {
                state: RunState::read(state).map_err(|e| bad(e.to_string()))?,
                at: Timestamp::read(at).map_err(|e| bad(e.to_string()))?,
            })
        }
    };
    let repeat = columns::repeat(row, 28, &what)?;
    let schedule: String = row.get(8)?;
    let zone: String = row.get(9)?;
    let job = JobRow {
        name: name.clone(),
        owner: Owner::from_column(&row.get::<String>(1)?),
        active: row.get(2)?,
        revision: row.get(3)?,
        content_hash: row.get(4)?,
        definition: row.get(5)?,
        source_path: row.get(6)?,
        enabled: row.get(7)?,
        schedule: Schedule::Manual,
        timezone: TimeZone::UTC,
        description: row.get(10)?,
        tags: if detail == Detail::Bare {
            Vec::new()
        } else {
            serde_json::from_str(&tags).unwrap_or_default()
        },
        schedule_anchor: instant(row, 12, &what)?,
        created_at: instant(row, 13, &what)?,
        updated_at: instant(row, 14, &what)?,
        removed_at: instant_opt(row, 15, &what)?,
        git_commit: row.get(16)?,
        git_dirty: row.get(17)?,
        n_runs: row.get(18)?,
        revision_id: row.get(20)?,
        slot_cursor: instant(row, 21, &what)?,
        paused: match row.get::<Option<String>>(22)? {
            Some(by) => Some(Pause {
                by,
                at: instant(row, 23, &what)?,
                reason: row.get(24)?,
            }),
            None => None,
        },
        fires: row.get(25)?,
        completed_at: instant_opt(row, 26, &what)?,
        failure_streak: row.get(27)?,
        repeat,
        blocked: row.get(29)?,
        depends_on: row
            .get::<Option<String>>(30)?
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default(),
        last_run,
        last_failed_at: instant_opt(row, 31, &what)?,
        scope: row.get(32)?,
    };
    Ok((job, schedule, zone))
}

/// Records an apply of `batch` (not empty) over the jobs as they are (`current`): the apply
/// row, then its revisions and job pointers, then its removals, then the apply's counts.
fn write_apply(
    tx: &Conn,
    now: Timestamp,
    git: &GitInfo,
    current: &[JobRow],
    batch: &ApplyBatch,
) -> super::db::Result<ApplyRecord> {
    let applied = applied_stamp(now);
    let apply_id: i64 = tx.query_row(
        "INSERT INTO applies (applied_at, git_commit, git_dirty, added, changed, removed) VALUES (?1, ?2, ?3, 0, 0, 0) RETURNING id",
        params![applied, git.commit, git.dirty],
        |r| r.get(0),
    )?;
    let (added, changed) = write_upserts(tx, apply_id, now, git, current, batch)?;
    let mut remove = tx.prepare_cached(
        "UPDATE jobs SET active = 0, removed_at = ?2, updated_at = ?2 WHERE name = ?1 AND active = 1 AND owner = ?3",
    )?;
    for name in &batch.removals {
        remove.execute(params![name, applied, batch.owner.as_str()])?;
    }
    let removed = batch.removals.len();
    tx.execute(
        "UPDATE applies SET added = ?2, changed = ?3, removed = ?4 WHERE id = ?1",
        params![apply_id, added as i64, changed as i64, removed as i64],
    )?;
    Ok(ApplyRecord {
        id: apply_id,
        added,
        changed,
        removed,
    })
}

/// Inserts a revision for each upsert of `batch` and points its job at it; how many jobs
/// were added and how many changed.
fn write_upserts(
    tx: &Conn,
    apply_id: i64,
    now: Timestamp,
    git: &GitInfo,
    current: &[JobRow],
    batch: &ApplyBatch,
) -> super::db::Result<(usize, usize)> {
    // The slot cursor is a run-side instant, with milliseconds; the rest is the apply's.
    let cursor = stamp(now);
    let applied = applied_stamp(now);
    let existing: std::collections::HashMap<&str, &JobRow> =
        current.iter().map(|j| (j.name.as_str(), j)).collect();
    let (mut added, mut changed) = (0, 0);
    let mut insert_revision = tx.prepare_cached(
        "INSERT INTO revisions (job, number, apply_id, content_hash, definition, source_path, enabled, schedule, timezone, description, tags, created_at, git_commit, git_dirty, repeat, depends_on, runs_on)
         VALUES (?1, (SELECT coalesce(max(number), 0) + 1 FROM revisions WHERE job = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         RETURNING id",
    )?;
    let mut upsert_job = tx.prepare_cached(
        "INSERT INTO jobs (name, owner, revision_id, active, schedule_anchor, created_at, updated_at, removed_at, slot_cursor, scope)
         VALUES (?1, ?6, ?2, 1, ?3, ?3, ?3, NULL, ?5, ?7)
         ON CONFLICT (name) DO UPDATE SET
             owner = excluded.owner,
             scope = CASE WHEN jobs.active = 0 THEN excluded.scope ELSE jobs.scope END,
             revision_id = excluded.revision_id,
             active = 1,
             removed_at = NULL,
             updated_at = excluded.updated_at,
             fires = 0,
             completed_at = NULL,
             schedule_anchor = CASE WHEN ?4 THEN excluded.schedule_anchor ELSE jobs.schedule_anchor END,
             slot_cursor = CASE WHEN ?4 THEN excluded.slot_cursor ELSE jobs.slot_cursor END",
    )?;
    for rev in &batch.upserts {
        let tags = serde_json::to_string(&rev.tags).expect("a list of strings serialises");
        let depends_on = (!rev.depends_on.is_empty())
            .then(|| serde_json::to_string(&rev.depends_on).expect("names serialise"));
        let runs_on = (!rev.runs_on.is_empty())
            .then(|| serde_json::to_string(&rev.runs_on).expect("labels serialise"));
        let revision_id: i64 = insert_revision.query_row(
            params![
                rev.name,
                apply_id,
                rev.content_hash,
                rev.definition,
                rev.source_path,
                rev.enabled,
                rev.schedule.to_json().to_string(),
                columns::zone_text(&rev.timezone),
                rev.description,
                tags,
                applied,
                git.commit,
                git.dirty,
                rev.repeat.map(columns::repeat_text),
                depends_on,
                runs_on,
            ],
            |r| r.get(0),
        )?;
        let was_active = existing.get(rev.name.as_str()).is_some_and(|j| j.active);
        // A job coming back after removal starts its schedule afresh, like a new one.
        let reset = rev.reset_anchor || !was_active;
        upsert_job.execute(params![
            rev.name,
            revision_id,
            applied,
            reset,
            cursor,
            batch.owner.as_str(),
            batch.scope,
        ])?;
        if was_active {
            changed += 1;
        } else {
            added += 1;
        }
    }
    Ok((added, changed))
}

impl Ledger {
    /// Where each job (active or removed) is defined: its file's path in `jobs.d`, or for an
    /// API-owned job the scope it was created under. What a scoped token's view is cut by.
    ///
    /// # Errors
    ///
    /// On a database failure.
    #[allow(clippy::type_complexity)]
    pub fn job_places(&self) -> Result<Vec<(String, Option<String>, Option<String>, bool)>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT j.name, r.source_path, j.scope, j.active FROM jobs j
                 JOIN revisions r ON r.id = j.revision_id",
            )?
            .query_map(params![], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
    }

    /// [`Ledger::job_places`] for one job, `None` when there is no such job.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn job_place(&self, name: &str) -> Result<Option<(Option<String>, Option<String>)>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT r.source_path, j.scope FROM jobs j
                 JOIN revisions r ON r.id = j.revision_id WHERE j.name = ?1",
            )?
            .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
    }

    /// The job of run `id`, if there is such a run.
    ///
    /// # Errors
    ///
    /// On a database failure.
    pub fn run_job(&self, id: i64) -> Result<Option<String>> {
        self.read(|conn| {
            conn.query_row("SELECT job FROM runs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
        })
    }
}
