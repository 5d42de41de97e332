//! A run's output: stdout and stderr read line by line into reports, within the run's budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::{Line, Report};
use crate::clock::Clock;

/// A line longer than this is split, so one runaway line cannot hold the whole output.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// How much one read takes from a pipe; a longer line is gathered over several reads, up to
/// [`MAX_LINE`].
const READ_CHUNK: usize = 8 * 1024;

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
    // What was read and is not a whole line yet. It is allocated when output comes, not
    // before: most runs of a burst print nothing (issue 14).
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if pipe.readable().await.is_err() {
            break;
        }
        {
            // On the stack of this poll, not in the run's task: no await while it lives.
            let mut chunk = [0u8; READ_CHUNK];
            match pipe.try_read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            }
        }
        // Each line up to its newline, but never more than MAX_LINE bytes in one line.
        let mut from = 0;
        while let Some(n) = next_line(&pending[from..]) {
            let mut line = pending[from..from + n].to_vec();
            emit(&reports, &budget, clock, stream, &mut line, n).await;
            from += n;
        }
        pending.drain(..from);
    }
    // The last line, without its newline.
    if !pending.is_empty() {
        let n = pending.len();
        emit(&reports, &budget, clock, stream, &mut pending, n).await;
    }
}

/// The length of the first line of `bytes` (its newline included), or [`MAX_LINE`] when that
/// many bytes hold none; `None` while the line is still incomplete.
pub(super) fn next_line(bytes: &[u8]) -> Option<usize> {
    match bytes.iter().take(MAX_LINE).position(|b| *b == b'\n') {
        Some(i) => Some(i + 1),
        None => (bytes.len() >= MAX_LINE).then_some(MAX_LINE),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_ends_at_its_newline_or_after_max_line_bytes() {
        let long = |n: usize, tail: &[u8]| [vec![b'x'; n], tail.to_vec()].concat();
        let cases: [(Vec<u8>, Option<usize>); 8] = [
            (b"".to_vec(), None),
            (b"abc".to_vec(), None),
            (b"\n".to_vec(), Some(1)),
            (b"abc\ndef\n".to_vec(), Some(4)),
            (long(MAX_LINE - 1, b"\n"), Some(MAX_LINE)),
            (long(MAX_LINE, b"\n"), Some(MAX_LINE)),
            (long(MAX_LINE - 1, b""), None),
            (long(MAX_LINE + 5, b""), Some(MAX_LINE)),
        ];
        for (bytes, want) in cases {
            assert_eq!(next_line(&bytes), want, "{} bytes", bytes.len());
        }
    }

    #[test]
    fn a_pipe_is_read_into_lines_as_a_process_writes_them() {
        // Written in pieces that split lines, a long line, CRLF, a last line without its
        // newline: the lines come out as written, the long one cut at MAX_LINE.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let long = "y".repeat(MAX_LINE + 10);
        let pieces: Vec<Vec<u8>> = vec![
            b"fir".to_vec(),
            b"st\r\nsecond\n".to_vec(),
            format!("{long}\n").into_bytes(),
            b"\nlast".to_vec(),
        ];
        let lines = runtime.block_on(async {
            let (read, write) = std::io::pipe().unwrap();
            let (tx, mut rx) = mpsc::channel(16);
            let budget = Arc::new(Budget::new(u64::MAX));
            let mut readers = read_pipes(Some(read.into()), None, Clock::system(), &tx, &budget);
            drop(tx);
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                let mut write = write;
                for piece in pieces {
                    write.write_all(&piece).unwrap();
                }
            });
            let collect = async {
                let mut lines = Vec::new();
                while let Some(report) = rx.recv().await {
                    if let Report::Line(line) = report {
                        assert_eq!(line.stream, "stdout");
                        lines.push(line.text);
                    }
                }
                lines
            };
            let ((), lines) = tokio::join!(readers.finish(), collect);
            writer.join().unwrap();
            lines
        });
        let want = [
            "first".to_string(),
            "second".to_string(),
            "y".repeat(MAX_LINE),
            "y".repeat(10),
            String::new(),
            "last".to_string(),
        ];
        assert_eq!(lines, want);
    }
}
