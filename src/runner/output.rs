//! A run's output: stdout and stderr read line by line into reports, within the run's budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::{Line, Report};
use crate::clock::Clock;

/// A line longer than this is split, so one runaway line cannot hold the whole output.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// The read buffer of each stream. A longer line is gathered over several reads, up to
/// [`MAX_LINE`]; the buffer is allocated (and zeroed) for every run, two per run, so it stays
/// small: 64 KiB buffers cost a burst of 200 silent runs 25 MiB of zeroed memory (issue 14).
const READ_BUFFER: usize = 8 * 1024;

/// How much output the run may keep, and how much it has sent (both streams together).
pub(super) struct Budget {
    limit: u64,
    pub(super) used: AtomicU64,
    pub(super) truncated: AtomicBool,
}

impl Budget {
    pub(super) fn new(limit: u64) -> Budget {
        Budget {
            limit,
            used: AtomicU64::new(0),
            truncated: AtomicBool::new(false),
        }
    }
}

/// The reading of a run's stdout and stderr: a future that the run's own task polls
/// alongside whatever it waits for, not a task of its own (a run's output, its end and its
/// reaping wake one task: issue 14). Done once both streams are at their end.
pub(super) struct Readers(Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Readers {
    /// Reads until both streams are at their end (at once if they are).
    pub(super) async fn finish(&mut self) {
        if let Some(reading) = &mut self.0 {
            reading.await;
            self.0 = None;
        }
    }

    /// Runs `work` to its end, reading the output meanwhile (a process whose pipe is full
    /// waits for it to be read).
    pub(super) async fn alongside<F: Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                () = self.finish(), if self.0.is_some() => {}
            }
        }
    }

    /// Stops reading: the read ends close, what is unread is lost.
    pub(super) fn abandon(&mut self) {
        self.0 = None;
    }
}

/// Reads the child's stdout and stderr, both in one future (see [`Readers`]).
pub(super) fn read_pipes(
    stdout: Option<std::os::fd::OwnedFd>,
    stderr: Option<std::os::fd::OwnedFd>,
    clock: Clock,
    reports: &mpsc::Sender<Report>,
    budget: &Arc<Budget>,
) -> Readers {
    let pipes = [(stdout, "stdout"), (stderr, "stderr")];
    let [stdout, stderr] = pipes.map(|(fd, stream)| {
        let pipe = receiver(fd?)?;
        Some(read_lines(
            pipe,
            stream,
            clock,
            reports.clone(),
            budget.clone(),
        ))
    });
    let read = |lines: Option<_>| async move {
        if let Some(lines) = lines {
            lines.await;
        }
    };
    Readers(Some(Box::pin(async move {
        futures_util::future::join(read(stdout), read(stderr)).await;
    })))
}

/// The read end of a child's pipe (from `runner::spawn`, or std's piped stdout and stderr),
/// made non-blocking with one call: tokio's checked `from_owned_fd` makes three (`fstat`,
/// two `fcntl`), six per run (issue 14).
fn receiver(fd: std::os::fd::OwnedFd) -> Option<tokio::net::unix::pipe::Receiver> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO reads the int passed; the descriptor is open (owned here).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &raw const on) } != 0 {
        return None;
    }
    // The unchecked form wants what the checked one would ensure: the read end of a pipe
    // (both callers give one), non-blocking (just made so).
    tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd).ok()
}

async fn read_lines(
    pipe: tokio::net::unix::pipe::Receiver,
    stream: &'static str,
    clock: Clock,
    reports: mpsc::Sender<Report>,
    budget: Arc<Budget>,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, pipe);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        // Read up to a newline, but never more than MAX_LINE bytes into one line.
        let n = {
            let mut limited = (&mut reader).take(MAX_LINE as u64);
            match limited.read_until(b'\n', &mut buf).await {
                Ok(n) => n,
                Err(_) => break,
            }
        };
        if n == 0 {
            break;
        }
        emit(&reports, &budget, clock, stream, &mut buf, n).await;
    }
}

/// Sends one line of `n` bytes read (`buf`, its newline included if it has one) as a report,
/// within the budget: past it, the line is dropped and the truncation reported once.
pub(super) async fn emit(
    reports: &mpsc::Sender<Report>,
    budget: &Budget,
    clock: Clock,
    stream: &'static str,
    buf: &mut Vec<u8>,
    n: usize,
) {
    let used = budget.used.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
    if used > budget.limit {
        if !budget.truncated.swap(true, Ordering::Relaxed) {
            let _ = reports
                .send(Report::Truncated {
                    at_bytes: budget.limit,
                })
                .await;
        }
        return;
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    let text = String::from_utf8_lossy(buf).into_owned();
    // Nobody may record the output any more; the caller keeps reading regardless.
    let _ = reports
        .send(Report::Line(Line {
            at: clock.now(),
            stream,
            text,
        }))
        .await;
}
