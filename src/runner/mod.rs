//! The runner: starts a run's process and supervises it until it ends.
//!
//! Each run is a child process in its own process group (so a timeout or a cancel reaches a
//! shell's children too), with stdin from /dev/null and stdout and stderr captured line by line.
//! Stopping sends SIGTERM to the whole group, then SIGKILL after the kill grace. The child is
//! reaped with `wait4`, which also reports its CPU time and peak memory; until it is reaped its
//! pid cannot be reused, so signalling the group is never aimed at a stranger.
//!
//! This module knows processes, not the ledger: lines go to a channel, and the caller records
//! them and the [`Finished`] outcome.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::run::Ending;
use crate::spec::Action;

/// A line longer than this is split, so one runaway line cannot hold the whole output.
const MAX_LINE: usize = 64 * 1024;

/// After the main process exits, how long its output may take to drain before the rest of its
/// group (a background child holding the pipes open) is killed.
const DRAIN_GRACE: StdDuration = StdDuration::from_secs(2);

/// After the final SIGKILL, how long descendants out of reach may keep the output open before
/// it is cut (at least this long, or the kill grace when longer).
const MIN_KILL_WAIT: StdDuration = StdDuration::from_secs(1);

/// The variable that tags every process of a run, inherited by its descendants: a process that
/// leaves the run's group (`setsid`, a double fork) keeps it, and is found by it in `/proc`.
pub const TAG_VAR: &str = "JOBS_RUN_TAG";

/// The soft `RLIMIT_NOFILE` runs start with, when the daemon raised its own.
static RUN_NOFILE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Runs will start with this soft `RLIMIT_NOFILE` (the one this process started with), though
/// this process raised its own.
pub fn keep_descriptor_limit_for_runs(soft: u64) {
    let _ = RUN_NOFILE.set(soft);
}

/// What to start, and how to supervise it.
#[derive(Clone, Debug)]
pub struct Launch {
    pub action: Action,
    /// The job's `env`, then the `JOBS_*` variables of the run.
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub timeout: Option<StdDuration>,
    pub kill_grace: StdDuration,
    /// Output beyond this many bytes is dropped (and the truncation reported).
    pub output_limit: u64,
    /// Set as `JOBS_RUN_TAG` on the run's processes ([`run_tag`]).
    pub tag: String,
    /// Variables of this process's environment that the run must not inherit (the daemon's
    /// own settings and tokens, webhook secrets); `env` is set after, so it wins.
    pub scrub: Vec<String>,
}

/// One captured line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub at: Timestamp,
    pub stream: &'static str,
    pub text: String,
}

/// What reaches the caller while the run goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The process started.
    Started {
        pid: i64,
        start_time: i64,
        /// When `spawn` returned.
        at: Timestamp,
    },
    Line(Line),
    /// The output passed `output_limit`; later lines are dropped.
    Truncated {
        at_bytes: u64,
    },
    /// The output was cut: something still held it open after the final kill.
    OutputCut {
        why: String,
    },
    /// A signal was sent to the process group, and why.
    Signalled {
        signal: i32,
        why: String,
    },
}

/// CPU time and peak memory of the process, from `wait4`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub user_ms: i64,
    pub sys_ms: i64,
    pub max_rss_kb: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub ending: Ending,
    pub usage: Option<Usage>,
    pub output_bytes: u64,
    pub truncated: bool,
}

/// Why a run is being stopped from outside; sent on the `stop` channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    pub reason: String,
    /// SIGKILL at once, without SIGTERM and the kill grace (a second Ctrl-C). Sent after a
    /// plain stop, it cuts that stop's grace short.
    pub now: bool,
}

impl Stop {
    /// A stop that asks politely first: SIGTERM, then SIGKILL after the kill grace.
    pub fn graceful(reason: impl Into<String>) -> Stop {
        Stop {
            reason: reason.into(),
            now: false,
        }
    }
}

/// Runs `launch` to its end. Reports go to `reports` as they happen (the channel's capacity
/// bounds memory; a slow receiver slows the reading of output, never the child's exit).
/// Sending a [`Stop`] on `stop` terminates the run.
pub async fn execute(
    launch: Launch,
    clock: Clock,
    reports: mpsc::Sender<Report>,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Finished {
    let mut command = match &launch.action {
        Action::Command(argv) => {
            // A relative program path (`./scripts/x.sh`) is relative to the run's folder, as
            // a shell would see it there (std leaves which folder unspecified).
            let program = match &launch.working_dir {
                Some(dir) if argv[0].contains('/') && !argv[0].starts_with('/') => {
                    std::path::Path::new(dir).join(&argv[0]).into_os_string()
                }
                _ => argv[0].clone().into(),
            };
            let mut c = Command::new(program);
            c.args(&argv[1..]);
            c
        }
        Action::Script { script, shell } => {
            let mut c = Command::new(shell);
            c.arg("-c").arg(script);
            c
        }
    };
    let tag = launch.tag.clone();
    for name in &launch.scrub {
        command.env_remove(name);
    }
    command
        .envs(&launch.env)
        .env(TAG_VAR, &tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &launch.working_dir {
        command.current_dir(dir);
    }
    if let Some(&soft) = RUN_NOFILE.get() {
        // SAFETY: getrlimit and setrlimit are async-signal-safe and touch only the child.
        unsafe {
            command.pre_exec(move || {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                    limit.rlim_cur = soft.min(limit.rlim_max);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                }
                Ok(())
            });
        }
    }
    // fork and exec block for a millisecond or more (much more in a VM): off the runtime's
    // few worker threads, so runs start in parallel and fires are not held up.
    let spawned = tokio::task::spawn_blocking(move || command.spawn())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let program = match &launch.action {
                Action::Command(argv) => argv[0].clone(),
                Action::Script { shell, .. } => shell.clone(),
            };
            let dir = launch
                .working_dir
                .as_deref()
                .map(|d| format!(" in {d}"))
                .unwrap_or_default();
            return Finished {
                ending: Ending::SpawnFailed(format!("cannot start `{program}`{dir}: {e}")),
                usage: None,
                output_bytes: 0,
                truncated: false,
            };
        }
    };
    let spawned_at = clock.now();
    let pid = child.id() as i32;
    let _ = reports
        .send(Report::Started {
            pid: i64::from(pid),
            start_time: process_start_time(i64::from(pid)).unwrap_or(0),
            at: spawned_at,
        })
        .await;

    let budget = Arc::new(Budget {
        limit: launch.output_limit,
        used: AtomicU64::new(0),
        truncated: AtomicBool::new(false),
    });
    let mut readers = tokio::task::JoinSet::new();
    let pipes: [(Option<std::os::fd::OwnedFd>, &'static str); 2] = [
        (child.stdout.take().map(Into::into), "stdout"),
        (child.stderr.take().map(Into::into), "stderr"),
    ];
    for (fd, stream) in pipes {
        let Some(fd) = fd else { continue };
        let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
            continue;
        };
        readers.spawn(read_lines(
            pipe,
            stream,
            clock,
            reports.clone(),
            budget.clone(),
        ));
    }
    // The child is reaped by `wait4` on a blocking thread; `std::process::Child` is dropped
    // without waiting (which neither kills nor reaps it).
    drop(child);
    let mut waiter = tokio::task::spawn_blocking(move || wait4(pid));

    let deadline_at = launch.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut why: Option<Ending> = None;
    let status = tokio::select! {
        status = &mut waiter => status,
        () = until(deadline_at) => {
            why = Some(Ending::TimedOut { signal: None });
            terminate(pid, &tag, &launch, &reports, "the timeout passed", false, &mut stop, &mut waiter).await
        }
        requested = stop_requested(&mut stop) => {
            why = Some(Ending::Cancelled { reason: requested.reason.clone(), signal: None });
            terminate(pid, &tag, &launch, &reports, &requested.reason, requested.now, &mut stop, &mut waiter).await
        }
    };
    let (status, usage) = status.unwrap_or((WaitStatus::Unknown, None));
    // A stop that escalated (a second Ctrl-C, a second SIGTERM to the daemon) is the reason
    // the run ended: record it rather than the first, polite one.
    if let Some(Ending::Cancelled { reason, .. }) = &mut why
        && let Some(urgent) = stop.borrow().clone().filter(|s| s.now)
    {
        *reason = urgent.reason;
    }

    // The main process has ended. Its output drains, but no longer than the drain grace, the
    // run's timeout or a stop: descendants that left the group (`setsid`, a double fork) may
    // hold the pipes open for ever, and the run must still end.
    let drain = async { while readers.join_next().await.is_some() {} };
    let mut cut_short: Option<String> = None;
    if why.is_none() {
        tokio::select! {
            drained = tokio::time::timeout(DRAIN_GRACE, drain) => if drained.is_err() {
                cut_short = Some("processes of the run kept its output open after it exited".to_string());
            },
            () = until(deadline_at) => {
                why = Some(Ending::TimedOut { signal: None });
                cut_short = Some("the timeout passed".to_string());
            }
            stop = stop_requested(&mut stop) => {
                why = Some(Ending::Cancelled { reason: stop.reason.clone(), signal: None });
                cut_short = Some(stop.reason);
            }
        }
    } else if tokio::time::timeout(DRAIN_GRACE.min(launch.kill_grace), drain)
        .await
        .is_err()
    {
        cut_short =
            Some("processes of the run kept its output open after it was stopped".to_string());
    }
    if let Some(reason) = cut_short {
        signal_all(pid, &tag, libc::SIGKILL).await;
        let _ = reports
            .send(Report::Signalled {
                signal: libc::SIGKILL,
                why: reason,
            })
            .await;
        let drained = tokio::time::timeout(launch.kill_grace.max(MIN_KILL_WAIT), async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Something outside our reach (it cleared its environment, or belongs to
            // another user) still holds the pipes: stop reading, say so, and end the run.
            readers.abort_all();
            while readers.join_next().await.is_some() {}
            let _ = reports
                .send(Report::OutputCut {
                    why: "a descendant of the run still held its output open after SIGKILL; \
                          the output was cut there and that process may survive the run"
                        .to_string(),
                })
                .await;
        }
    }

    let signal = match status {
        WaitStatus::Signalled(s) => Some(s),
        _ => None,
    };
    let ending = match (why, status) {
        (Some(Ending::TimedOut { .. }), _) => Ending::TimedOut { signal },
        (Some(Ending::Cancelled { reason, .. }), _) => Ending::Cancelled { reason, signal },
        (_, WaitStatus::Exited(code)) => Ending::Exited(code),
        (_, WaitStatus::Signalled(s)) => Ending::Signalled(s),
        (_, WaitStatus::Unknown) => Ending::SpawnFailed("lost track of the process".to_string()),
    };
    Finished {
        ending,
        usage,
        output_bytes: budget.used.load(Ordering::Relaxed),
        truncated: budget.truncated.load(Ordering::Relaxed),
    }
}

type Waiter = tokio::task::JoinHandle<(WaitStatus, Option<Usage>)>;

/// SIGTERM to the group and the run's escaped descendants, then SIGKILL after the grace (or
/// at once: `now`, or a [`Stop`] with `now` during the grace); returns once the main process
/// is reaped.
#[allow(clippy::too_many_arguments)]
async fn terminate(
    pid: i32,
    tag: &str,
    launch: &Launch,
    reports: &mpsc::Sender<Report>,
    why: &str,
    now: bool,
    stop: &mut watch::Receiver<Option<Stop>>,
    waiter: &mut Waiter,
) -> Result<(WaitStatus, Option<Usage>), tokio::task::JoinError> {
    let kill_why = if now {
        why.to_string()
    } else {
        signal_all(pid, tag, libc::SIGTERM).await;
        let _ = reports
            .send(Report::Signalled {
                signal: libc::SIGTERM,
                why: why.to_string(),
            })
            .await;
        tokio::select! {
            status = &mut *waiter => return status,
            () = tokio::time::sleep(launch.kill_grace) => format!(
                "still running {} after SIGTERM",
                crate::duration::Duration::from_secs(launch.kill_grace.as_secs() as i64)
            ),
            urgent = kill_requested(stop) => urgent.reason,
        }
    };
    signal_all(pid, tag, libc::SIGKILL).await;
    let _ = reports
        .send(Report::Signalled {
            signal: libc::SIGKILL,
            why: kill_why,
        })
        .await;
    waiter.await
}

/// Waits for a stop that asks for SIGKILL at once (for ever once the sender is gone).
async fn kill_requested(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(stop) = stop.borrow_and_update().clone().filter(|s| s.now) {
            return stop;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits until `at`, or for ever when there is no deadline.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for a stop request (for ever once the sender is gone).
async fn stop_requested(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(stop) = stop.borrow_and_update().clone() {
            return stop;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The tag of run `run_id` supervised by `supervisor` (pid and start time): no other run on
/// this machine has it, and whoever reads the run's row can compute it, so a daemon ending a
/// run whose supervisor died finds that run's processes too.
pub fn run_tag(supervisor: (i64, i64), run_id: i64) -> String {
    format!("{}.{}.{run_id}", supervisor.0, supervisor.1)
}

/// [`kill_all`] off the runtime's threads: reading `/proc/*/environ` can block (a process
/// stuck in the kernel) and grows with the machine's process count.
async fn signal_all(pgid: i32, tag: &str, signal: i32) {
    // The group first, at once; the tagged processes after the scan.
    kill_group(pgid, signal);
    let tag = tag.to_string();
    let _ = tokio::task::spawn_blocking(move || kill_all(0, &tag, signal)).await;
}

/// Sends `signal` to the run's process group and to every process tagged with the run's tag
/// (its descendants that left the group).
pub fn kill_all(pgid: i32, tag: &str, signal: i32) {
    kill_group(pgid, signal);
    for pid in tagged_processes(tag) {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The processes whose environment holds `JOBS_RUN_TAG=tag` (those this user may read).
pub fn tagged_processes(tag: &str) -> Vec<i32> {
    let needle = format!("{TAG_VAR}={tag}\0").into_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_slice()))
        })
        .collect()
}

struct Budget {
    limit: u64,
    used: AtomicU64,
    truncated: AtomicBool,
}

async fn read_lines(
    pipe: tokio::net::unix::pipe::Receiver,
    stream: &'static str,
    clock: Clock,
    reports: mpsc::Sender<Report>,
    budget: Arc<Budget>,
) {
    let mut reader = BufReader::with_capacity(MAX_LINE, pipe);
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
        let used = budget.used.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if used > budget.limit {
            if !budget.truncated.swap(true, Ordering::Relaxed) {
                let _ = reports
                    .send(Report::Truncated {
                        at_bytes: budget.limit,
                    })
                    .await;
            }
            continue;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        if reports
            .send(Report::Line(Line {
                at: clock.now(),
                stream,
                text,
            }))
            .await
            .is_err()
        {
            // Nobody records the output any more; keep draining so the child never blocks.
            continue;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitStatus {
    Exited(i32),
    Signalled(i32),
    Unknown,
}

/// Waits for `pid` to end and reaps it, with its resource use.
fn wait4(pid: i32) -> (WaitStatus, Option<Usage>) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child, not yet reaped; status and usage are valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return (WaitStatus::Unknown, None);
    }
    let ms = |t: libc::timeval| t.tv_sec * 1000 + t.tv_usec / 1000;
    let usage = Usage {
        user_ms: ms(usage.ru_utime),
        sys_ms: ms(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
    };
    let status = if libc::WIFEXITED(status) {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        WaitStatus::Signalled(libc::WTERMSIG(status))
    } else {
        WaitStatus::Unknown
    };
    (status, Some(usage))
}

/// Sends `signal` to the process group `pgid` (a run's group has its leader's pid).
pub fn kill_group(pgid: i32, signal: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill has no memory effects; a negative pid addresses the group.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// When the process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat): with
/// the pid, it names one process across pid reuse.
pub fn process_start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count fields after
    // its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start_time` still exists (and is not a zombie).
///
/// A process whose `/proc` entry exists but cannot be read (`hidepid`) counts as alive: a
/// supervisor that cannot be seen is not declared dead and its runs are not taken over.
pub fn is_alive(pid: i64, start_time: i64) -> bool {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            tracing::warn!(
                pid,
                "cannot read /proc/{pid}/stat ({e}); taking it as alive"
            );
            return true;
        }
        Err(_) => return false,
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut fields = stat[close + 1..].split_whitespace();
    let state = fields.next();
    let start = fields.nth(18).and_then(|s| s.parse::<i64>().ok());
    state != Some("Z") && start == Some(start_time)
}

/// This process's `(pid, start time)`: how runs and the lease name their supervisor.
pub fn this_process() -> (i64, i64) {
    let pid = i64::from(std::process::id());
    (pid, process_start_time(pid).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let (pid, start) = this_process();
        assert!(start > 0);
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1));
        assert!(!is_alive(i64::from(i32::MAX), 1));
    }
}
