//! The processes of a run: building the command, reaping the child with its resource use,
//! signalling the group and the escaped descendants, and naming a process across pid reuse.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::{Launch, TAG_VAR, Usage};
use crate::spec::Action;

/// What a run's process executes: the file (a path, or with `lookup` a name for the child to
/// look up on its `PATH`) and its `argv`.
pub(super) struct Exec {
    pub file: OsString,
    pub lookup: bool,
    pub argv: Vec<OsString>,
}

/// The run's [`Exec`]: its program or its shell with `-c` and the script. A relative program
/// path (`./scripts/x.sh`) is relative to the run's folder, as a shell would see it there (std
/// leaves which folder unspecified); a name without a `/` is looked up here
/// ([`find_program`]) on the run's `PATH`, and the child is started from the file found, with
/// the name as its `argv[0]`. When the lookup finds nothing the child looks it up as before,
/// so that a missing program fails with the same error.
pub(super) fn exec(launch: &Launch) -> Exec {
    let (name, args): (&str, Vec<OsString>) = match &launch.action {
        Action::Command(argv) => (&argv[0], argv[1..].iter().map(OsString::from).collect()),
        Action::Script { script, shell } => (shell, vec!["-c".into(), script.into()]),
        // Requests are not processes (`runner::execute` sends them); nothing to start.
        Action::Http(_) | Action::Prompt(_) => ("/bin/false", Vec::new()),
    };
    let file = match &launch.working_dir {
        Some(dir) if name.contains('/') && !name.starts_with('/') => {
            Some(Path::new(dir).join(name).into_os_string())
        }
        _ if name.contains('/') => Some(name.into()),
        _ => run_path(launch)
            .and_then(|path| found_lately(OsStr::new(name), path, std::time::Instant::now()))
            .map(PathBuf::into_os_string),
    };
    let argv = std::iter::once(OsString::from(name)).chain(args).collect();
    match file {
        Some(file) => Exec {
            file,
            lookup: false,
            argv,
        },
        None => Exec {
            file: name.into(),
            lookup: true,
            argv,
        },
    }
}

/// The `PATH` the run's process gets: the job's own, or the one it inherits (read once with
/// the rest of the environment, not for every run).
fn run_path(launch: &Launch) -> Option<OsString> {
    match launch.env.get("PATH") {
        Some(path) => Some(path.into()),
        None => launch.inherit.path.clone(),
    }
}

/// The run's command, for std to start (see [`super::spawn`] for the daemon's usual way):
/// [`exec`], the scrubbed environment plus the run's variables and tag, stdin from /dev/null,
/// stdout and stderr piped, in a process group of its own, started with the soft
/// `RLIMIT_NOFILE` `nofile` when the daemon raised its own.
pub(super) fn command(launch: &Launch, nofile: Option<u64>) -> Command {
    let exec = exec(launch);
    let mut command = Command::new(&exec.file);
    command.arg0(&exec.argv[0]).args(&exec.argv[1..]);
    // Not `env_clear` and the inherited variables: a `PATH` set on the command makes std
    // fork to look the program up (posix_spawnp would search the daemon's PATH, not the run's).
    for name in &launch.inherit.scrubbed {
        command.env_remove(name);
    }
    command
        .envs(&launch.env)
        .env(TAG_VAR, &launch.tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &launch.working_dir {
        command.current_dir(dir);
    }
    if let Some(soft) = nofile {
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
    command
}

/// How long a program found on a `PATH` is taken as found there without looking again.
const FOUND_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// [`find_program`], remembered for [`FOUND_FOR`]: the runs of a burst share one lookup (each
/// costs a `stat` per folder before the right one), and a program installed, moved or removed
/// is seen within a second (a shell's command hash keeps a path until `hash -r`).
pub(super) fn found_lately(
    program: &OsStr,
    path: OsString,
    now: std::time::Instant,
) -> Option<PathBuf> {
    type Found = HashMap<(OsString, OsString), (std::time::Instant, PathBuf)>;
    static FOUND: Mutex<Option<Found>> = Mutex::new(None);
    let key = (path, program.to_os_string());
    let fresh = |at: std::time::Instant| now.saturating_duration_since(at) < FOUND_FOR;
    {
        let found = FOUND
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, file)) = found.as_ref().and_then(|f| f.get(&key))
            && fresh(*at)
        {
            return Some(file.clone());
        }
    }
    let file = find_program(program, &key.0)?;
    let mut found = FOUND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let found = found.get_or_insert_with(HashMap::new);
    // What is stale goes whenever something is added: as many entries as programs run lately.
    found.retain(|_, (at, _)| fresh(*at));
    found.insert(key, (now, file.clone()));
    Some(file)
}

/// The file `execvp` would run for `program` (a name without a `/`) with `path` as `PATH`:
/// in the first directory that holds a regular file of that name this process may execute.
/// `None` when no directory does, or when an entry of `path` is not absolute (the child would
/// read it from its own folder). Looking up here saves each child an `execve` for every
/// directory before the right one (8 with this machine's 11-entry `PATH`, 3% of the CPU of a
/// burst's children, issue 14) for a `stat` each in the daemon.
pub(super) fn find_program(program: &OsStr, path: &OsStr) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
    if dirs.is_empty() || dirs.iter().any(|dir| !dir.is_absolute()) {
        return None;
    }
    dirs.into_iter()
        .map(|dir| dir.join(program))
        .find(|file| std::fs::metadata(file).is_ok_and(|m| m.is_file()) && may_execute(file))
}

/// Whether this process may execute `file` (by its effective ids, as `execve` checks).
fn may_execute(file: &Path) -> bool {
    let Ok(file) = std::ffi::CString::new(file.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: faccessat reads the NUL-terminated path passed and has no other effects.
    unsafe { libc::faccessat(libc::AT_FDCWD, file.as_ptr(), libc::X_OK, libc::AT_EACCESS) == 0 }
}

/// The tag of run `run_id` supervised by `supervisor` (pid and start time): no other run on
/// this machine has it, and whoever reads the run's row can compute it, so a daemon ending a
/// run whose supervisor died finds that run's processes too.
pub fn run_tag(supervisor: (i64, i64), run_id: i64) -> String {
    format!("{}.{}.{run_id}", supervisor.0, supervisor.1)
}

/// [`kill_all`] off the runtime's threads: reading `/proc/*/environ` can block (a process
/// stuck in the kernel) and grows with the machine's process count.
pub(super) async fn signal_all(pgid: i32, tag: &str, signal: i32) {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WaitStatus {
    Exited(i32),
    Signalled(i32),
    Unknown,
}

/// A pidfd of the child `pid` (not yet reaped), which becomes readable when it ends; `None`
/// where the kernel has none (before Linux 5.3).
pub(super) fn pidfd(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor was just opened and nothing else owns it.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Waits for `pid` to end and reaps it, with its resource use.
pub(super) fn wait4(pid: i32) -> (WaitStatus, Option<Usage>) {
    reap_with(pid, 0).unwrap_or((WaitStatus::Unknown, None))
}

/// Reaps `pid`, which has ended, without blocking; `None` if it has not ended after all.
pub(super) fn wait4_ended(pid: i32) -> Option<(WaitStatus, Option<Usage>)> {
    reap_with(pid, libc::WNOHANG)
}

/// `wait4(pid, flags)`: the status and usage, `(Unknown, None)` on an error, `None` when
/// `WNOHANG` found it still running.
fn reap_with(pid: i32, flags: libc::c_int) -> Option<(WaitStatus, Option<Usage>)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child, not yet reaped; status and usage are valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            break;
        }
        if r == 0 {
            return None;
        }
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Some((WaitStatus::Unknown, None));
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
    Some((status, Some(usage)))
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
    // Read once into a buffer on the stack: every run's spawn reads it (issue 14), and
    // `read_to_string` also asks for the size and reads again to find the end.
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let n = std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read(&mut buf))
        .ok()?;
    // The command name (field 2) is in parentheses and may contain spaces (or bytes that are
    // not UTF-8): count fields after its closing parenthesis.
    let close = buf[..n].iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&buf[close + 1..n]).ok()?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The boot clock (`CLOCK_BOOTTIME`, the clock of a process's start time), in nanoseconds.
pub(super) fn boot_clock() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct passed.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    nanos(now)
}

/// A `timespec` in nanoseconds.
pub(super) fn nanos(at: libc::timespec) -> Option<u64> {
    let secs = u64::try_from(at.tv_sec).ok()?;
    let nanos = u64::try_from(at.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// The start time ([`process_start_time`]) of a process forked between two readings of
/// [`boot_clock`], without reading `/proc`: the kernel stamps a process with the boot clock
/// when it forks and `/proc/PID/stat` gives that stamp in whole clock ticks, so when both
/// readings fall in the same tick, so did the fork. `None` when they straddle a tick (a few
/// spawns in a hundred): read `/proc` then. One `open`, `read` and `close` less per run
/// (issue 14).
pub(super) fn start_tick_between(before: Option<u64>, after: Option<u64>) -> Option<i64> {
    static TICK_NS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let tick_ns = (*TICK_NS.get_or_init(|| {
        // SAFETY: sysconf has no memory effects.
        let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
        // The kernel divides exactly only when the tick divides a second.
        (per_second > 0 && 1_000_000_000 % per_second == 0).then(|| 1_000_000_000 / per_second)
    }))?;
    same_tick(before?, after?, tick_ns)
}

/// The tick (of `tick_ns` nanoseconds) both instants fall in, if they fall in one.
pub(super) fn same_tick(before: u64, after: u64, tick_ns: u64) -> Option<i64> {
    let tick = before / tick_ns;
    (after >= before && after / tick_ns == tick)
        .then(|| i64::try_from(tick).ok())
        .flatten()
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
