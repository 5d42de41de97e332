//! A run's output in the ledger: lines batched into chunks (`run_output_chunks`), read back by
//! line number.
//!
//! Each line has a number in its run, 1, 2, 3…, dense and never reused: the id that paging
//! (`after`), `jobctl logs -f` and the API use. A chunk row holds consecutive lines, with its
//! first line's number and its line count as columns, so a page or a tail finds its first
//! chunk from the index and decompresses only what it returns.
//!
//! Writing while a run is live: the executor hands over a batch every 100 ms (or 256 lines).
//! A batch becomes one small *plain* (uncompressed) row, the run's open tail; once the open
//! rows hold a chunk's worth ([`chunk::CHUNK_BYTES`] or [`chunk::CHUNK_LINES`]) they are
//! rewritten as zstd chunks in the same transaction, and what remains of the run's tail at its
//! end is sealed the same way. The other way, rewriting one open compressed chunk on every
//! batch, costs a recompression and a rewrite of up to 64 KiB per 100 ms batch: a job printing
//! a line a second would write hundreds of times its output to the disk. Plain rows keep each
//! batch's write as small as the batch, compress every byte once, and are readable as they
//! are, so a crash leaves no half-written chunk behind: what was committed is whole.
//!
//! The run's open tail is kept on its `runs` row (`output_open_first`, `output_open_bytes`),
//! so an append reads no chunk to decide whether to seal.

use std::path::Path;

use super::db::{Conn, Optional, params};
use jiff::Timestamp;

use super::chunk::{self, ChunkLine, Codec};
use super::{ForLedger, Ledger, LedgerError, OutputLine, Result};

/// One chunk row as read.
struct ChunkRow {
    first_line: i64,
    at_ms: i64,
    codec: i64,
    payload: Vec<u8>,
}

impl ChunkRow {
    fn lines(self, path: &Path, run_id: i64) -> Result<Vec<ChunkLine>> {
        let damaged = |e: chunk::ChunkError| LedgerError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "run {run_id}'s output from line {} cannot be read: {e}",
                self.first_line
            ),
        };
        let codec = Codec::from_column(self.codec).map_err(damaged)?;
        let raw = chunk::unpack(codec, self.payload).map_err(damaged)?;
        chunk::decode(self.at_ms, &raw).map_err(damaged)
    }
}

fn output_line(id: i64, line: ChunkLine) -> OutputLine {
    let at = Timestamp::from_millisecond(line.at_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    OutputLine {
        id,
        at,
        stream: line.stream().to_string(),
        line: line.text,
    }
}

/// The number of the run's last line, 0 when it has none.
fn last_line(conn: &Conn, run_id: i64) -> super::db::Result<i64> {
    conn.prepare_cached(
        "SELECT first_line + n_lines - 1 FROM run_output_chunks WHERE run_id = ?1
         ORDER BY first_line DESC LIMIT 1",
    )?
    .query_row(params![run_id], |r| r.get(0))
    .optional()
    .map(|n| n.unwrap_or(0))
}

fn insert_chunk(
    conn: &Conn,
    run_id: i64,
    first_line: i64,
    lines: &[ChunkLine],
    codec: Codec,
) -> super::db::Result<usize> {
    let at_ms = lines.first().map_or(0, |l| l.at_ms);
    let raw = chunk::encode(at_ms, lines);
    let raw_bytes = raw.len();
    conn.prepare_cached(
        "INSERT INTO run_output_chunks (run_id, first_line, n_lines, at_ms, raw_bytes, codec, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        run_id,
        first_line,
        lines.len() as i64,
        at_ms,
        raw_bytes as i64,
        codec as i64,
        chunk::pack(codec, raw),
    ])?;
    Ok(raw_bytes)
}

/// A run's open tail: its first line's number and its raw bytes.
type OpenTail = (Option<i64>, i64);

fn open_tail(conn: &Conn, run_id: i64) -> super::db::Result<OpenTail> {
    conn.prepare_cached("SELECT output_open_first, output_open_bytes FROM runs WHERE id = ?1")?
        .query_row(params![run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map(|t| t.unwrap_or((None, 0)))
}

/// Rewrites the run's open rows from `open_first`, followed by `new` lines, as chunks: each
/// full one sealed (zstd), the rest left as one open row unless `seal` is set. Returns the new
/// open tail.
fn compact(
    conn: &Conn,
    path: &Path,
    run_id: i64,
    open_first: i64,
    new: Vec<ChunkLine>,
    seal: bool,
) -> Result<OpenTail> {
    let e = |e| LedgerError::from_db(path, e);
    let rows = chunks_from(conn, run_id, open_first).map_err(e)?;
    let mut lines = Vec::new();
    for row in rows {
        lines.extend(row.lines(path, run_id)?);
    }
    lines.extend(new);
    conn.prepare_cached("DELETE FROM run_output_chunks WHERE run_id = ?1 AND first_line >= ?2")
        .and_then(|mut s| s.execute(params![run_id, open_first]))
        .map_err(e)?;
    let mut first = open_first;
    let mut tail: OpenTail = (None, 0);
    let groups = chunk::split(lines);
    let n_groups = groups.len();
    for (i, group) in groups.into_iter().enumerate() {
        let bytes: usize = group.iter().map(ChunkLine::raw_len).sum();
        let last = i + 1 == n_groups;
        let codec = if seal || !last || chunk::is_full(group.len(), bytes) {
            Codec::Zstd
        } else {
            Codec::Plain
        };
        let raw_bytes = insert_chunk(conn, run_id, first, &group, codec).map_err(e)?;
        if codec == Codec::Plain {
            tail = (Some(first), raw_bytes as i64);
        }
        first += group.len() as i64;
    }
    Ok(tail)
}

fn set_open_tail(conn: &Conn, run_id: i64, tail: OpenTail) -> super::db::Result<()> {
    conn.prepare_cached(
        "UPDATE runs SET output_open_first = ?2, output_open_bytes = ?3 WHERE id = ?1",
    )?
    .execute(params![run_id, tail.0, tail.1])
    .map(drop)
}

/// Seals what is left of a run's open tail: at its end (the executor, or `finish_runs` for a
/// run whose supervisor died).
pub(super) fn seal(conn: &Conn, path: &Path, run_id: i64) -> Result<()> {
    let (open_first, _) = open_tail(conn, run_id).map_err(|e| LedgerError::from_db(path, e))?;
    if let Some(first) = open_first {
        let tail = compact(conn, path, run_id, first, Vec::new(), true)?;
        set_open_tail(conn, run_id, tail).map_err(|e| LedgerError::from_db(path, e))?;
    }
    Ok(())
}

/// The chunk rows holding line `from` and everything after it, in order.
fn chunks_from(conn: &Conn, run_id: i64, from: i64) -> super::db::Result<Vec<ChunkRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_line, at_ms, codec, payload FROM run_output_chunks
         WHERE run_id = ?1 AND first_line >= coalesce(
             (SELECT max(first_line) FROM run_output_chunks WHERE run_id = ?1 AND first_line <= ?2), 1)
         ORDER BY first_line",
    )?;
    stmt.query_map(params![run_id, from], |r| {
        Ok(ChunkRow {
            first_line: r.get(0)?,
            at_ms: r.get(1)?,
            codec: r.get(2)?,
            payload: r.get(3)?,
        })
    })?
    .collect()
}

/// Moves the lines of the old `run_output` table (one row per line, schema 2 to 5) into sealed
/// chunks, numbering each run's lines from 1 in their old order, then drops it. Runs inside the
/// migration's transaction: the ledger holds either the old rows or the chunks.
pub(super) fn move_legacy_rows(conn: &Conn, path: &Path) -> Result<()> {
    let e = |e| LedgerError::from_db(path, e);
    let mut runs = conn
        .prepare_cached("SELECT DISTINCT run_id FROM run_output ORDER BY run_id")
        .map_err(e)?;
    let run_ids: Vec<i64> = runs
        .query_map(params![], |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(e)?;
    drop(runs);
    let mut read = conn
        .prepare_cached("SELECT at, stream, line FROM run_output WHERE run_id = ?1 ORDER BY id")
        .map_err(e)?;
    for run_id in run_ids {
        let mut previous_ms = 0;
        let lines: Vec<ChunkLine> = read
            .query_map(params![run_id], |r| {
                Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get(2)?))
            })
            .and_then(Iterator::collect::<super::db::Result<Vec<(String, String, String)>>>)
            .map_err(e)?
            .into_iter()
            .map(|(at, stream, text)| {
                // A stamp that does not parse (never written by `jobs`) takes its neighbour's.
                let at_ms = at
                    .parse::<Timestamp>()
                    .map_or(previous_ms, |t| t.as_millisecond());
                previous_ms = at_ms;
                ChunkLine {
                    at_ms,
                    stderr: stream == "stderr",
                    text,
                }
            })
            .collect();
        let mut first = 1;
        for group in chunk::split(lines) {
            insert_chunk(conn, run_id, first, &group, Codec::Zstd).map_err(e)?;
            first += group.len() as i64;
        }
    }
    drop(read);
    conn.execute_batch("DROP TABLE run_output").map_err(e)
}

impl Ledger {
    /// Appends output lines and the run's running byte count, in one transaction. `stream`
    /// is `"stdout"` or `"stderr"`. The lines become the run's next line numbers.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn append_output(
        &self,
        run_id: i64,
        lines: &[(Timestamp, &'static str, String)],
        total_bytes: i64,
        truncated: bool,
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |e| LedgerError::from_db(&path, e);
        self.relaxed_result(|conn| {
            let tx = conn.transaction(super::db::Begin::Deferred).map_err(e)?;
            if !lines.is_empty() {
                let new: Vec<ChunkLine> = lines
                    .iter()
                    .map(|(at, stream, text)| ChunkLine {
                        at_ms: at.as_millisecond(),
                        stderr: *stream == "stderr",
                        text: text.clone(),
                    })
                    .collect();
                let next = last_line(&tx, run_id).map_err(e)? + 1;
                let (open_first, open_bytes) = open_tail(&tx, run_id).map_err(e)?;
                let first = open_first.unwrap_or(next);
                let n_open = (next - first) as usize + new.len();
                let bytes = open_bytes as usize + new.iter().map(ChunkLine::raw_len).sum::<usize>();
                let tail = if chunk::is_full(n_open, bytes) {
                    compact(&tx, &path, run_id, first, new, false)?
                } else {
                    let raw_bytes =
                        insert_chunk(&tx, run_id, next, &new, Codec::Plain).map_err(e)?;
                    (Some(first), open_bytes + raw_bytes as i64)
                };
                set_open_tail(&tx, run_id, tail).map_err(e)?;
            }
            tx.execute(
                "UPDATE runs SET output_bytes = ?2, output_truncated = ?3 WHERE id = ?1",
                params![run_id, total_bytes, truncated],
            )
            .map_err(e)?;
            tx.commit().map_err(e)
        })
    }

    /// Compresses what is left uncompressed of a run's output: after its last lines.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn seal_output(&self, run_id: i64) -> Result<()> {
        let path = self.path.clone();
        self.relaxed_result(|conn| {
            let tx = conn
                .transaction(super::db::Begin::Deferred)
                .map_err(|e| LedgerError::from_db(&path, e))?;
            seal(&tx, &path, run_id)?;
            tx.commit().map_err(|e| LedgerError::from_db(&path, e))
        })
    }

    /// A run's output lines after line `after`, oldest first.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn run_output(&self, run_id: i64, after: i64) -> Result<Vec<OutputLine>> {
        self.run_output_page(run_id, after, usize::MAX, usize::MAX)
            .map(|(lines, _)| lines)
    }

    /// The number of a run's last line so far (its line count), 0 when it has none.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn output_lines(&self, run_id: i64) -> Result<i64> {
        last_line(&self.conn, run_id).for_ledger(self)
    }

    /// A run's last `max_lines` lines, oldest first: what a notification quotes, or
    /// `jobctl logs --tail`. Reads only the chunks that hold them.
    ///
    /// # Errors
    ///
    /// On a SQLite failure.
    pub fn run_output_tail(&self, run_id: i64, max_lines: usize) -> Result<Vec<OutputLine>> {
        let last = self.output_lines(run_id)?;
        let after = last.saturating_sub(i64::try_from(max_lines).unwrap_or(i64::MAX));
        self.run_output(run_id, after.max(0))
    }

    /// A page of a run's output: the lines after line `after`, oldest first, at most
    /// `max_lines` of them, ending with the line that brings its text to `max_bytes` (a line
    /// is at most 64 KiB). The second value is whether the page was cut short: more follow.
    ///
    /// # Errors
    ///
    /// On a SQLite failure, or a chunk that cannot be read ([`LedgerError::Corrupt`]).
    pub fn run_output_page(
        &self,
        run_id: i64,
        after: i64,
        max_lines: usize,
        max_bytes: usize,
    ) -> Result<(Vec<OutputLine>, bool)> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT first_line, at_ms, codec, payload FROM run_output_chunks
                 WHERE run_id = ?1 AND first_line >= coalesce(
                     (SELECT max(first_line) FROM run_output_chunks
                      WHERE run_id = ?1 AND first_line <= ?2), 1)
                 ORDER BY first_line",
            )
            .for_ledger(self)?;
        let rows = stmt
            .query_map(params![run_id, after.saturating_add(1)], |r| {
                Ok(ChunkRow {
                    first_line: r.get(0)?,
                    at_ms: r.get(1)?,
                    codec: r.get(2)?,
                    payload: r.get(3)?,
                })
            })
            .for_ledger(self)?;
        let (mut lines, mut bytes) = (Vec::new(), 0usize);
        for row in rows {
            let row = row.for_ledger(self)?;
            let first = row.first_line;
            for (number, line) in (first..).zip(row.lines(&self.path, run_id)?) {
                if number <= after {
                    continue;
                }
                if lines.len() == max_lines || (!lines.is_empty() && bytes >= max_bytes) {
                    return Ok((lines, true));
                }
                bytes += line.text.len();
                lines.push(output_line(number, line));
            }
        }
        Ok((lines, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with_run() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        ledger
            .conn
            .execute_batch(
                "INSERT INTO runs (id, job, trigger, state, created_at)
                 VALUES (1, 'a', 'manual', 'running', '2026-10-31T12:00:00.000Z')",
            )
            .unwrap();
        (dir, ledger)
    }

    fn batch(from: usize, n: usize, width: usize) -> Vec<(Timestamp, &'static str, String)> {
        let at: Timestamp = "2026-10-31T12:00:00Z".parse().unwrap();
        (from..from + n)
            .map(|i| {
                let stream = if i % 3 == 0 { "stderr" } else { "stdout" };
                (at, stream, format!("{i:0width$}"))
            })
            .collect()
    }

    /// `(first_line, n_lines, codec)` of every chunk row of run 1.
    fn rows(ledger: &Ledger) -> Vec<(i64, i64, i64)> {
        let mut stmt = ledger
            .conn
            .prepare_cached("SELECT first_line, n_lines, codec FROM run_output_chunks WHERE run_id = 1 ORDER BY first_line")
            .unwrap();
        stmt.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<crate::ledger::db::Result<_>>()
            .unwrap()
    }

    #[test]
    fn small_batches_stay_plain_until_a_chunk_fills_then_the_end_seals_the_rest() {
        let (_dir, ledger) = ledger_with_run();
        // 100 batches of 50 lines: 5,000 lines, more than a chunk's 4,096.
        for b in 0..100 {
            ledger
                .append_output(1, &batch(b * 50 + 1, 50, 4), 0, false)
                .unwrap();
        }
        let before = rows(&ledger);
        assert_eq!(before[0], (1, 4096, Codec::Zstd as i64));
        assert!(
            before[1..].iter().all(|r| r.2 == Codec::Plain as i64),
            "{before:?}"
        );
        assert_eq!(ledger.output_lines(1).unwrap(), 5000);
        // Readable as they are, open rows included, by number.
        let lines = ledger.run_output(1, 0).unwrap();
        assert_eq!(lines.len(), 5000);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line.id, i as i64 + 1);
            assert_eq!(line.line, format!("{:04}", i + 1));
            assert_eq!(
                line.stream,
                if (i + 1) % 3 == 0 { "stderr" } else { "stdout" }
            );
            assert_eq!(crate::ledger::stamp(line.at), "2026-10-31T12:00:00.000Z");
        }
        ledger.seal_output(1).unwrap();
        assert_eq!(
            rows(&ledger),
            [
                (1, 4096, Codec::Zstd as i64),
                (4097, 904, Codec::Zstd as i64)
            ]
        );
        assert_eq!(
            ledger.run_output(1, 0).unwrap(),
            lines,
            "sealing changes nothing read"
        );
        // Sealing twice, or a run without output, is nothing.
        ledger.seal_output(1).unwrap();
        ledger.seal_output(2).unwrap();
        assert_eq!(rows(&ledger).len(), 2);
    }

    #[test]
    fn pages_and_tails_start_in_the_middle_of_a_chunk() {
        let (_dir, ledger) = ledger_with_run();
        ledger
            .append_output(1, &batch(1, 5000, 1), 0, false)
            .unwrap();
        ledger.seal_output(1).unwrap();
        let ids = |lines: &[OutputLine]| lines.iter().map(|l| l.id).collect::<Vec<_>>();
        for (after, max_lines, expected, more) in [
            (0, 3, vec![1, 2, 3], true),
            (4094, 4, vec![4095, 4096, 4097, 4098], true),
            (4096, 2, vec![4097, 4098], true),
            (4998, 5, vec![4999, 5000], false),
            (5000, 5, vec![], false),
            (9999, 5, vec![], false),
            (-3, 1, vec![1], true),
        ] {
            let (lines, cut) = ledger
                .run_output_page(1, after, max_lines, usize::MAX)
                .unwrap();
            assert_eq!((ids(&lines), cut), (expected, more), "after {after}");
        }
        assert_eq!(
            ids(&ledger.run_output_tail(1, 3).unwrap()),
            [4998, 4999, 5000]
        );
        assert_eq!(
            ids(&ledger.run_output_tail(1, 0).unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(ledger.run_output_tail(1, 10_000).unwrap().len(), 5000);
        assert_eq!(ledger.run_output_tail(2, 3).unwrap(), []);
        // The text budget ends a page after the line that reaches it.
        let (lines, cut) = ledger.run_output_page(1, 0, 100, 3).unwrap();
        assert_eq!((ids(&lines), cut), (vec![1, 2, 3], true));
    }

    #[test]
    fn a_damaged_chunk_is_reported_as_such() {
        let (_dir, ledger) = ledger_with_run();
        ledger.append_output(1, &batch(1, 10, 1), 0, false).unwrap();
        ledger.seal_output(1).unwrap();
        ledger
            .conn
            .execute_batch("UPDATE run_output_chunks SET payload = x'00ff'")
            .unwrap();
        let err = ledger.run_output(1, 0).unwrap_err();
        assert!(
            matches!(&err, LedgerError::Corrupt { detail, .. } if detail.contains("run 1's output from line 1")),
            "{err}"
        );
    }
}
