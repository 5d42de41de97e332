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

mod output;
mod process;
mod request;
mod spawn;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::run::Ending;
use crate::spec::Action;

use output::Budget;
use process::{WaitStatus, signal_all, wait4};
pub use process::{
    is_alive, kill_all, kill_group, process_start_time, run_tag, tagged_processes, this_process,
};
pub use request::client;
pub use spawn::Inherited;

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
    /// What the run inherits of this process's environment: all but the daemon's own
    /// settings and tokens and the webhook secrets; `env` is set after, so it wins.
    pub inherit: std::sync::Arc<Inherited>,
    /// What sends an `http` or `prompt` action's request.
    pub client: Option<reqwest::Client>,
    /// Where a `prompt` goes (from jobs.toml's `[llm]`).
    pub provider: Option<crate::spec::Provider>,
    /// Whether the process may be started on the caller's task instead of the blocking pool:
    /// for a caller whose `on_start` does not block (the daemon queues a start for its next
    /// transaction). Taken only where the process starts as `posix_spawn` would (`spawn`,
    /// which returns once the child has exec'd), and not with `fork` (the `nofile` restore of
    /// [`keep_descriptor_limit_for_runs`]), which copies the daemon's page tables first.
    pub start_inline: bool,
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
    /// The process started (or, without a pid, the request was sent).
    Started {
        pid: Option<i64>,
        start_time: i64,
        /// When `spawn` returned.
        at: Timestamp,
        /// What started: `process 123`, `request GET https://...`.
        what: String,
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
    /// What a request's answer said (an `http` or `prompt` action).
    pub reply: Option<crate::spec::Reply>,
}

/// Why a run is being stopped from outside; sent on the `stop` channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    pub reason: String,
    /// SIGKILL at once, without SIGTERM and the kill grace (a second Ctrl-C). Sent after a
    /// plain stop, it cuts that stop's grace short.
    pub now: bool,
    /// The run ends `failed` ([`Ending::Lost`], retried by its policy), not `cancelled`: its
    /// node stops it because it lost the ledger.
    pub lost: bool,
}

impl Stop {
    /// A stop that asks politely first: SIGTERM, then SIGKILL after the kill grace.
    pub fn graceful(reason: impl Into<String>) -> Stop {
        Stop {
            reason: reason.into(),
            now: false,
            lost: false,
        }
    }

    /// How a run that this stop ended, ends.
    fn ending(&self) -> Ending {
        if self.lost {
            Ending::Lost(self.reason.clone())
        } else {
            Ending::Cancelled {
                reason: self.reason.clone(),
                signal: None,
            }
        }
    }
}

/// Runs `launch` to its end, calling `on_start` with the [`Report::Started`] once the process
/// exists (on a blocking thread: it may wait for the ledger). Reports go to `reports` as they happen (the channel's capacity
/// bounds memory; a slow receiver slows the reading of output, never the child's exit).
/// Sending a [`Stop`] on `stop` terminates the run.
pub async fn execute(
    launch: Launch,
    clock: Clock,
    reports: mpsc::Sender<Report>,
    mut stop: watch::Receiver<Option<Stop>>,
    on_start: impl FnOnce(&Report) + Send + 'static,
) -> Finished {
    if !launch.action.is_process() {
        return request::execute(launch, clock, reports, stop, on_start).await;
    }
    let nofile = RUN_NOFILE.get().copied();
    // The daemon's usual way is a `posix_spawn` of its own from what is prepared for every run
    // (`spawn::Spawn`); std's `Command` starts the rest, and forks to restore `nofile`.
    let fast = nofile
        .is_none()
        .then(|| spawn::Spawn::new(&launch))
        .flatten();
    let command = fast.is_none().then(|| process::command(&launch, nofile));
    // The spawn blocks its thread until the child has exec'd (a fraction of a
    // millisecond); `fork`, and an `on_start` that writes the ledger, block for longer: those
    // go to the blocking pool, so that the runtime's few workers are not held up. `on_start`
    // (the caller's record of the pid) runs before the start is reported. Starting in place
    // saves two thread hops per run: in a burst of 200, a sixth of the daemon's CPU and a
    // third of its context switches (issue 14, BENCHMARKS.md).
    let start = move || {
        let before = process::boot_clock();
        let child = match (fast, command) {
            (Some(fast), _) => fast.spawn()?,
            (None, Some(mut command)) => command.spawn()?.into(),
            (None, None) => unreachable!("a run has a spawn or a command"),
        };
        let pid = i64::from(child.pid);
        let started = Report::Started {
            pid: Some(pid),
            // The child's own reading of the clock, when it made one, brackets its start
            // more closely than a reading after the spawn (std's) does.
            start_time: process::start_tick_between(
                before,
                child.started.or_else(process::boot_clock),
            )
            .or_else(|| process_start_time(pid))
            .unwrap_or(0),
            at: clock.now(),
            what: format!("process {pid}"),
        };
        on_start(&started);
        Ok((child, started))
    };
    let spawned = if launch.start_inline && nofile.is_none() {
        start()
    } else {
        tokio::task::spawn_blocking(start)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    };
    let (child, started) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => return spawn_failed(&launch, &e),
    };
    let pid = child.pid;
    let _ = reports.send(started).await;

    let budget = Arc::new(Budget::new(launch.output_limit));
    let mut readers = output::read_pipes(child.stdout, child.stderr, clock, &reports, &budget);
    let mut waiter = reap(pid, child.pidfd);

    let deadline_at = launch.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut why: Option<Ending> = None;
    let status = readers.alongside(async {
        tokio::select! {
            status = &mut waiter => status,
            () = until(deadline_at) => {
                why = Some(Ending::TimedOut { signal: None });
                terminate(pid, &launch, &reports, "the timeout passed", false, &mut stop, &mut waiter).await
            }
            requested = stop_requested(&mut stop) => {
                why = Some(requested.ending());
                terminate(pid, &launch, &reports, &requested.reason, requested.now, &mut stop, &mut waiter).await
            }
        }
    })
    .await;
    let (status, usage) = status;
    // A stop that escalated (a second Ctrl-C, a second SIGTERM to the daemon) is the reason
    // the run ended: record it rather than the first, polite one.
    if let Some(Ending::Cancelled { reason, .. }) = &mut why
        && let Some(urgent) = stop.borrow().clone().filter(|s| s.now)
    {
        *reason = urgent.reason;
    }
    let cut_short = drain(&launch, &mut readers, &mut why, deadline_at, &mut stop).await;
    if let Some(reason) = cut_short {
        cut_output(pid, &launch, &reports, &mut readers, reason).await;
    }
    Finished {
        ending: ending(why, status),
        usage,
        output_bytes: budget.used.load(Ordering::Relaxed),
        truncated: budget.truncated.load(Ordering::Relaxed),
        reply: None,
    }
}

/// The run that could not start: which program, in which folder, and why.
fn spawn_failed(launch: &Launch, e: &std::io::Error) -> Finished {
    let program = match &launch.action {
        Action::Command(argv) => argv[0].clone(),
        Action::Script { shell, .. } => shell.clone(),
        other => other.kind().to_string(),
    };
    let dir = launch
        .working_dir
        .as_deref()
        .map(|d| format!(" in {d}"))
        .unwrap_or_default();
    Finished {
        ending: Ending::SpawnFailed(format!("cannot start `{program}`{dir}: {e}")),
        usage: None,
        output_bytes: 0,
        truncated: false,
        reply: None,
    }
}

/// The main process has ended: its output drains, but no longer than the drain grace, the
/// run's timeout or a stop, since descendants that left the group (`setsid`, a double fork)
/// may hold the pipes open for ever and the run must still end. Returns why the output was
/// cut short, if it was (and sets `why` when the timeout or a stop is what cut it).
async fn drain(
    launch: &Launch,
    readers: &mut output::Readers,
    why: &mut Option<Ending>,
    deadline_at: Option<tokio::time::Instant>,
    stop: &mut watch::Receiver<Option<Stop>>,
) -> Option<String> {
    let drain = readers.finish();
    if why.is_some() {
        let drained = tokio::time::timeout(DRAIN_GRACE.min(launch.kill_grace), drain).await;
        return drained
            .is_err()
            .then(|| "processes of the run kept its output open after it was stopped".to_string());
    }
    tokio::select! {
        drained = tokio::time::timeout(DRAIN_GRACE, drain) => drained.is_err().then(|| {
            "processes of the run kept its output open after it exited".to_string()
        }),
        () = until(deadline_at) => {
            *why = Some(Ending::TimedOut { signal: None });
            Some("the timeout passed".to_string())
        }
        stop = stop_requested(stop) => {
            *why = Some(stop.ending());
            Some(stop.reason)
        }
    }
}

/// SIGKILL to what still holds the output open, then a last wait; what is out of reach even
/// then (it cleared its environment, or belongs to another user) is left, and the output is
/// cut there.
async fn cut_output(
    pid: i32,
    launch: &Launch,
    reports: &mpsc::Sender<Report>,
    readers: &mut output::Readers,
    reason: String,
) {
    signal_all(pid, &launch.tag, libc::SIGKILL).await;
    let _ = reports
        .send(Report::Signalled {
            signal: libc::SIGKILL,
            why: reason,
        })
        .await;
    let drained =
        tokio::time::timeout(launch.kill_grace.max(MIN_KILL_WAIT), readers.finish()).await;
    if drained.is_err() {
        readers.abandon();
        let _ = reports
            .send(Report::OutputCut {
                why: "a descendant of the run still held its output open after SIGKILL; \
                      the output was cut there and that process may survive the run"
                    .to_string(),
            })
            .await;
    }
}

/// How the run ended: a timeout or a stop is the reason whatever the status, else the status.
fn ending(why: Option<Ending>, status: WaitStatus) -> Ending {
    let signal = match status {
        WaitStatus::Signalled(s) => Some(s),
        _ => None,
    };
    match (why, status) {
        (Some(Ending::TimedOut { .. }), _) => Ending::TimedOut { signal },
        (Some(Ending::Cancelled { reason, .. }), _) => Ending::Cancelled { reason, signal },
        (Some(Ending::Lost(reason)), _) => Ending::Lost(reason),
        (_, WaitStatus::Exited(code)) => Ending::Exited(code),
        (_, WaitStatus::Signalled(s)) => Ending::Signalled(s),
        (_, WaitStatus::Unknown) => Ending::SpawnFailed("lost track of the process".to_string()),
    }
}

/// The child's end: a future polled by the run's own task (no task of its own, so the child's
/// end wakes one task, not two: issue 14).
type Waiter = std::pin::Pin<Box<dyn Future<Output = (WaitStatus, Option<Usage>)> + Send>>;

/// Waits for the child `pid` to end and reaps it with `wait4`, with its resource use. The
/// runtime polls a pidfd (Linux 5.3+), readable once the process has ended, so a running
/// child holds no thread: a burst of 200 runs does not start 200 blocking threads (issue 14).
/// Without pidfds, `wait4` blocks on a blocking thread.
fn reap(pid: i32, pidfd: Option<std::os::fd::OwnedFd>) -> Waiter {
    let registered = pidfd.or_else(|| process::pidfd(pid)).and_then(|fd| {
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd` and stays open, the same
        // descriptor, until the `AsyncFd` drops it.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .ok()
    });
    Box::pin(async move {
        if let Some(pidfd) = registered
            && pidfd.readable().await.is_ok()
        {
            // Ended: `wait4` returns at once.
            if let Some(reaped) = process::wait4_ended(pid) {
                return reaped;
            }
        }
        tokio::task::spawn_blocking(move || wait4(pid))
            .await
            .unwrap_or((WaitStatus::Unknown, None))
    })
}

/// SIGTERM to the group and the run's escaped descendants, then SIGKILL after the grace (or
/// at once: `now`, or a [`Stop`] with `now` during the grace); returns once the main process
/// is reaped.
async fn terminate(
    pid: i32,
    launch: &Launch,
    reports: &mpsc::Sender<Report>,
    why: &str,
    now: bool,
    stop: &mut watch::Receiver<Option<Stop>>,
    waiter: &mut Waiter,
) -> (WaitStatus, Option<Usage>) {
    let kill_why = if now {
        why.to_string()
    } else {
        signal_all(pid, &launch.tag, libc::SIGTERM).await;
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
    signal_all(pid, &launch.tag, libc::SIGKILL).await;
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

    #[test]
    fn a_program_is_found_where_execvp_would_run_it_or_left_to_the_child() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let d = root.path().join(name);
            std::fs::create_dir(&d).unwrap();
            d
        };
        let file = |d: &std::path::Path, mode: u32| {
            let f = d.join("tool");
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let (empty, plain, folder, exe, later) = (
            dir("empty"),
            dir("plain"),
            dir("folder"),
            dir("exe"),
            dir("later"),
        );
        file(&plain, 0o644);
        std::fs::create_dir(folder.join("tool")).unwrap();
        file(&exe, 0o755);
        file(&later, 0o755);
        let path = |dirs: &[&std::path::Path]| {
            std::env::join_paths(dirs.iter().map(|d| d.as_os_str())).unwrap()
        };
        let rel = std::path::Path::new("relative");
        let cases: [(&[&std::path::Path], Option<&std::path::Path>); 6] = [
            // Skipping what execve would refuse (no file, not executable, a folder).
            (&[&empty, &plain, &folder, &exe, &later], Some(&exe)),
            (&[&later, &exe], Some(&later)),
            (&[&empty, &plain, &folder], None),
            (&[], None),
            // An entry the child would read from its own folder: the child looks up.
            (&[rel, &exe], None),
            (&[&exe, rel], None),
        ];
        for (dirs, want) in cases {
            let found = process::find_program("tool".as_ref(), &path(dirs));
            assert_eq!(found, want.map(|d| d.join("tool")), "{dirs:?}");
        }
        // An empty entry (the current folder, to execvp) counts as relative.
        let with_empty = format!(":{}", exe.display());
        assert_eq!(
            process::find_program("tool".as_ref(), with_empty.as_ref()),
            None
        );
    }

    #[test]
    fn a_program_found_is_remembered_for_a_second_then_looked_up_again() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let (early, late) = (root.path().join("early"), root.path().join("late"));
        let tool = |dir: &std::path::Path| {
            std::fs::create_dir_all(dir).unwrap();
            let f = dir.join("lately-tool");
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        std::fs::create_dir(&early).unwrap();
        tool(&late);
        let path = std::env::join_paths([&early, &late]).unwrap();
        let t0 = std::time::Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let found = |ms| process::found_lately("lately-tool".as_ref(), path.clone(), at(ms));
        assert_eq!(found(0), Some(late.join("lately-tool")));
        // Installed in an earlier folder: the lookup of the last second stands, then not.
        tool(&early);
        assert_eq!(found(999), Some(late.join("lately-tool")));
        assert_eq!(found(1000), Some(early.join("lately-tool")));
        // Not found is not remembered: the child looks up (and fails) as before.
        assert_eq!(
            process::found_lately("no-such-tool".as_ref(), path.clone(), at(1000)),
            None
        );
    }

    #[test]
    fn a_start_time_from_the_boot_clock_is_the_one_proc_gives_or_none() {
        // Within one tick: that tick; straddling one, or backwards: none (read /proc then).
        let cases = [
            (0, 9_999_999, Some(0)),
            (20_000_000, 29_999_999, Some(2)),
            (29_999_999, 30_000_000, None),
            (25_000_000, 24_000_000, None),
        ];
        for (before, after, want) in cases {
            assert_eq!(
                process::same_tick(before, after, 10_000_000),
                want,
                "{before}..{after}"
            );
        }
        // Real children: whenever the readings around the spawn share a tick, that tick is
        // the start time /proc gives the child.
        let mut checked = 0;
        for _ in 0..200 {
            let before = process::boot_clock();
            let mut child = std::process::Command::new("sleep")
                .arg("5")
                .spawn()
                .unwrap();
            let after = process::boot_clock();
            let computed = process::start_tick_between(before, after);
            let from_proc = process_start_time(i64::from(child.id()));
            child.kill().unwrap();
            child.wait().unwrap();
            if let Some(tick) = computed {
                assert_eq!(Some(tick), from_proc, "child {}", child.id());
                checked += 1;
            }
        }
        assert!(checked > 0, "no spawn stayed within one clock tick");
    }

    #[test]
    fn a_child_is_reaped_on_its_pidfd_with_its_status_and_not_before_it_ends() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spawn = |script: &str| {
            std::process::Command::new("sh")
                .args(["-c", script])
                .spawn()
                .unwrap()
                .id() as i32
        };
        let sleeper = spawn("exec sleep 30");
        assert!(
            process::pidfd(sleeper).is_some(),
            "this kernel has pidfds (Linux 5.3+): the test covers the pidfd path"
        );
        assert_eq!(process::wait4_ended(sleeper), None, "still running");
        let exits = spawn("exit 3");
        let (status, usage) = runtime.block_on(async { reap(exits, None).await });
        assert_eq!(status, WaitStatus::Exited(3));
        assert!(usage.is_some());
        // SAFETY: signalling our own child, not reaped yet.
        unsafe { libc::kill(sleeper, libc::SIGKILL) };
        let (status, _) = runtime.block_on(async { reap(sleeper, None).await });
        assert_eq!(status, WaitStatus::Signalled(libc::SIGKILL));
    }
}
