//! A job's history across its runs, over a window of time: the output lines of every run
//! (`jobctl logs --job`, `GET /v1/jobs/{name}/logs`) and one measurement per run
//! (`GET /v1/jobs/{name}/metrics`).
//!
//! Both walk the job's runs through `runs_by_job`, in the order the runs were created (their
//! ids), so a page ends at a `(run, line)` cursor that the next page starts after.

use jiff::Timestamp;

use super::db::params;
use super::{ForLedger, Ledger, OutputLine, Result, RunRow, stamp};

/// Which lines of a job's output a page holds.
#[derive(Clone, Debug)]
pub struct JobLogQuery<'a> {
    pub job: &'a str,
    /// Lines written at or after this instant…
    pub since: Timestamp,
    /// …and before this one (`None`: up to now).
    pub until: Option<Timestamp>,
    /// Only lines containing this text (as `grep -F`).
    pub contains: Option<&'a str>,
    /// Start after this `(run, line)`; `None`: from the window's first run.
    pub after: Option<(i64, i64)>,
    /// At most this many lines, and about this much text, per page.
    pub max_lines: usize,
    pub max_bytes: usize,
}

/// One line of a job's output, with its run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobLine {
    pub run_id: i64,
    pub line: OutputLine,
}

/// A page of a job's output; `next` is the cursor of the next page, `None` at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobLogPage {
    pub lines: Vec<JobLine>,
    pub next: Option<(i64, i64)>,
}

/// Runs of one job read per query: enough for a page, few enough to stay a point read.
const RUNS_PER_READ: i64 = 64;

impl Ledger {
    /// A page of the output lines of `query.job`'s runs that fall in the window, oldest run
    /// first, each run's lines in order.
    ///
    /// # Errors
    ///
    /// On a ledger failure, or a chunk that cannot be read.
    pub fn job_output(&self, query: &JobLogQuery) -> Result<JobLogPage> {
        let since = stamp(query.since);
        // Runs that started before the window's end and had not ended before its start.
        let until = query.until.map_or_else(|| "9999".to_string(), stamp);
        let (mut after_run, mut after_line) = query.after.unwrap_or((0, 0));
        let mut page = JobLogPage::default();
        let mut bytes = 0usize;
        loop {
            let runs: Vec<i64> = {
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT id FROM runs
                         WHERE job = ?1 AND id >= ?2 AND started_at IS NOT NULL
                           AND started_at < ?3 AND (finished_at IS NULL OR finished_at >= ?4)
                         ORDER BY id LIMIT ?5",
                    )
                    .for_ledger(self)?;
                stmt.query_map(
                    params![query.job, after_run, until, since, RUNS_PER_READ],
                    |r| r.get(0),
                )
                .and_then(Iterator::collect)
                .for_ledger(self)?
            };
            let exhausted = (runs.len() as i64) < RUNS_PER_READ;
            for run in runs {
                let mut line_after = if run == after_run { after_line } else { 0 };
                loop {
                    let (lines, more) = self.run_output_page(run, line_after, 4096, 512 * 1024)?;
                    for line in lines {
                        line_after = line.id;
                        let inside = line.at >= query.since
                            && query.until.is_none_or(|until| line.at < until)
                            && query.contains.is_none_or(|text| line.line.contains(text));
                        if !inside {
                            continue;
                        }
                        if page.lines.len() == query.max_lines
                            || (!page.lines.is_empty() && bytes >= query.max_bytes)
                        {
                            // The last line kept is where the next page starts after.
                            page.next = page.lines.last().map(|l| (l.run_id, l.line.id));
                            return Ok(page);
                        }
                        bytes += line.line.len();
                        page.lines.push(JobLine { run_id: run, line });
                    }
                    if !more {
                        break;
                    }
                }
                (after_run, after_line) = (run, i64::MAX);
            }
            if exhausted {
                return Ok(page);
            }
            // The next read starts with the run after the last one read.
            after_run += 1;
            after_line = 0;
        }
    }

    /// The runs of `job` that ended in `[since, until)`, oldest first, at most `limit`: the
    /// points of its metrics over time.
    ///
    /// # Errors
    ///
    /// On a ledger failure.
    pub fn ended_runs(
        &self,
        job: &str,
        since: Timestamp,
        until: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<RunRow>> {
        let until = until.map_or_else(|| "9999".to_string(), stamp);
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id FROM runs
                     WHERE job = ?1 AND finished_at IS NOT NULL
                       AND finished_at >= ?2 AND finished_at < ?3
                     ORDER BY finished_at, id LIMIT ?4",
                )
                .for_ledger(self)?;
            stmt.query_map(
                params![
                    job,
                    stamp(since),
                    until,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| r.get(0),
            )
            .and_then(Iterator::collect)
            .for_ledger(self)?
        };
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(run) = self.run(id)? {
                runs.push(run);
            }
        }
        Ok(runs)
    }
}
