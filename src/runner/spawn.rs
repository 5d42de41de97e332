//! Starting a run's process the way glibc's `posix_spawn` does, from what is prepared once for
//! every run: this process's environment less what runs must not inherit, as ready
//! `NAME=value` strings, `/dev/null` held open, and a stack for the children of each thread.
//! std's `Command` reads and rebuilds the whole environment and opens `/dev/null` for every
//! child: about a tenth of the daemon's CPU in a burst of 200 runs; glibc maps a stack for
//! each child and the daemon read each child's start time from `/proc`: another tenth
//! (issue 14). std still starts what this does not ([`Spawn::new`] says when).
//!
//! The only code here that runs in a child before its `exec` is [`child_main`]: it shares
//! this process's memory, so it calls async-signal-safe functions only, on data the parent
//! prepared.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::{Arc, OnceLock};

use super::{Launch, TAG_VAR, process};

/// What runs inherit of this process's environment: every variable but those scrubbed (the
/// daemon's settings and secrets). Built once and shared by every run: the daemon never
/// changes its own environment.
#[derive(Debug, Default)]
pub struct Inherited {
    /// The names of the variables runs do not inherit.
    pub scrubbed: Vec<String>,
    /// Every other variable: its name, and `NAME=value`.
    vars: Vec<(OsString, CString)>,
    /// The `PATH` among them, where a run's program is looked up unless its job sets one.
    pub(super) path: Option<OsString>,
}

impl Inherited {
    /// This process's environment less the variables named in `scrubbed`.
    pub fn new(scrubbed: Vec<String>) -> Inherited {
        let inherited: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(name, _)| !scrubbed.iter().any(|s| name.as_bytes() == s.as_bytes()))
            .collect();
        let path = inherited
            .iter()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| value.clone());
        let vars = inherited
            .into_iter()
            .filter_map(|(name, value)| Some((name.clone(), pair(name, value)?)))
            .collect();
        Inherited {
            scrubbed,
            vars,
            path,
        }
    }
}

/// `NAME=value`; `None` if either holds a NUL byte (nothing to pass a child then).
fn pair(name: impl Into<OsString>, value: impl Into<OsString>) -> Option<CString> {
    let mut bytes = name.into().into_vec();
    bytes.push(b'=');
    bytes.extend_from_slice(value.into().as_bytes());
    CString::new(bytes).ok()
}

fn c_string(s: impl Into<OsString>) -> Option<CString> {
    CString::new(s.into().into_vec()).ok()
}

/// A run's process, ready to start: the file found, its `argv`, its own variables (the job's
/// `env`, the run's `JOBS_*` and its tag) over the inherited ones, and its folder.
pub(super) struct Spawn {
    file: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    inherited: Arc<Inherited>,
    /// The names in `env`, which the inherited variables of the same name give way to.
    own: Vec<String>,
    dir: Option<CString>,
}

/// A started process: its pid and the read ends of its stdout and stderr.
pub(super) struct Spawned {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The boot clock (nanoseconds) as the child started, when it read it.
    pub started: Option<u64>,
    /// A pidfd of the child, when the `clone` made one.
    pub pidfd: Option<OwnedFd>,
}

impl From<std::process::Child> for Spawned {
    /// Takes the child's pid and pipes; the `Child` is dropped without waiting (which
    /// neither kills nor reaps it: `runner::reap` does).
    fn from(mut child: std::process::Child) -> Spawned {
        Spawned {
            pid: child.id() as i32,
            stdout: child.stdout.take().map(Into::into),
            stderr: child.stderr.take().map(Into::into),
            started: None,
            pidfd: None,
        }
    }
}

impl Spawn {
    /// `None` when std must start the run instead: its program is a name this process did not
    /// find on the run's `PATH` (the child looks it up, and fails as before when it is
    /// missing), something holds a NUL byte (std reports that), or `/dev/null` cannot be
    /// opened.
    pub(super) fn new(launch: &Launch) -> Option<Spawn> {
        let exec = process::exec(launch);
        if exec.lookup {
            return None;
        }
        dev_null()?;
        let mut own: Vec<String> = launch.env.keys().cloned().collect();
        own.push(TAG_VAR.to_string());
        let env = launch
            .env
            .iter()
            .map(|(k, v)| pair(k, v))
            .chain(std::iter::once(pair(TAG_VAR, &launch.tag)))
            .collect::<Option<Vec<_>>>()?;
        Some(Spawn {
            file: c_string(exec.file)?,
            argv: exec
                .argv
                .into_iter()
                .map(c_string)
                .collect::<Option<Vec<_>>>()?,
            env,
            inherited: launch.inherit.clone(),
            own,
            dir: match &launch.working_dir {
                Some(dir) => Some(c_string(dir)?),
                None => None,
            },
        })
    }

    /// Starts the process: stdin from `/dev/null`, stdout and stderr to pipes, in a process
    /// group of its own, with an empty signal mask and `SIGPIPE` at its default (what std
    /// gives a child). Returns once the child has exec'd, or the error that prevented it.
    ///
    /// The way glibc's `posix_spawn` does it (a `clone` sharing this process's memory, this
    /// thread suspended until the child has exec'd: no page tables copied), with two costs
    /// less per run: the child's stack is this thread's, kept from one spawn to the next
    /// (glibc maps and unmaps one for every child, and the unmapping stops the other cores
    /// to flush their address caches), and the child reads the boot clock as it starts, so
    /// its start time is known without reading `/proc` (issue 14).
    pub(super) fn spawn(&self) -> io::Result<Spawned> {
        let null = dev_null().ok_or_else(|| io::Error::other("cannot open /dev/null"))?;
        let (stdout, stdout_w) = pipe()?;
        let (stderr, stderr_w) = pipe()?;
        let argv = null_terminated(self.argv.iter());
        let inherited = self
            .inherited
            .vars
            .iter()
            .filter(|(name, _)| !self.own.iter().any(|own| own.as_bytes() == name.as_bytes()));
        let envp = null_terminated(self.env.iter().chain(inherited.map(|(_, pair)| pair)));
        let mut child = Child {
            file: self.file.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            dir: self.dir.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
            fds: [null.as_raw_fd(), stdout_w.as_raw_fd(), stderr_w.as_raw_fd()],
            error: 0,
            started: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        let (pid, pidfd) = STACK.with(|slot| {
            let mut slot = slot.borrow_mut();
            let stack = match &mut *slot {
                Some(stack) => stack,
                None => slot.insert(Stack::new()?),
            };
            // SAFETY: see `clone_child`.
            unsafe { clone_child(&mut child, stack.top()) }
        })?;
        // SAFETY: the child has exec'd or exited (`CLONE_VFORK`): nothing writes `child` now.
        let (error, started) = unsafe {
            (
                std::ptr::read_volatile(&raw const child.error),
                std::ptr::read_volatile(&raw const child.started),
            )
        };
        if error != 0 {
            // It exited (127) without exec'ing: reap it here, nobody else knows of it.
            drop(pidfd);
            let _ = process::wait4(pid);
            return Err(io::Error::from_raw_os_error(error));
        }
        // The write ends are the child's now (`stdout_w` and `stderr_w` close here): the read
        // ends see the end of the output when it, and whatever it started, have closed them.
        Ok(Spawned {
            pid,
            stdout: Some(stdout),
            stderr: Some(stderr),
            // Zero: the child never read it.
            started: process::nanos(started).filter(|&at| at > 0),
            pidfd,
        })
    }
}

/// What the child needs, prepared by the parent (the child may not allocate, nor take a
/// lock: it runs in this process's memory, on a thread of its own), and what it reports.
#[repr(C)]
struct Child {
    file: *const libc::c_char,
    argv: *const *mut libc::c_char,
    envp: *const *mut libc::c_char,
    /// Null: this process's folder.
    dir: *const libc::c_char,
    /// What becomes the child's stdin, stdout and stderr.
    fds: [libc::c_int; 3],
    /// Written by the child: the error of the step that failed (it then exits 127).
    error: libc::c_int,
    /// Written by the child: the boot clock as it started.
    started: libc::timespec,
}

/// Clones this process into a child that runs [`child_main`] on `stack` (its top) and
/// returns its pid, with a pidfd of it (`CLONE_PIDFD`, Linux 5.2: one `pidfd_open` less per
/// run; none on an older kernel), once the child has exec'd or exited.
///
/// # Safety
///
/// `child`'s pointers are valid until this returns (the child is done with them by then:
/// `CLONE_VFORK` suspends this thread until it has exec'd or exited), and `stack` is the top
/// of memory no one else uses meanwhile (this thread's own stack for children, and this
/// thread waits).
unsafe fn clone_child(child: &mut Child, stack: *mut u8) -> io::Result<(i32, Option<OwnedFd>)> {
    // Every signal blocked, glibc's own two included (its `sigfillset` and `sigprocmask` leave
    // them out, so the raw call on a mask of all 64), so the child starts with all blocked
    // and none of this process's handlers can run in it before it has reset them; this
    // thread's mask back right after.
    let all: u64 = !0;
    let mut old: u64 = 0;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: the kernel reads and writes 8 bytes of mask (`_NSIG / 8`, the 64 signals) at
    // the pointers passed; `clone` as the caller's contract says.
    let pid = unsafe {
        set_mask(&all, &raw mut old);
        let pid = libc::clone(
            child_main,
            stack.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            std::ptr::from_mut(child).cast(),
            &raw mut pidfd,
        );
        let error = io::Error::last_os_error();
        set_mask(&old, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        pid
    };
    // SAFETY: with `CLONE_PIDFD` the kernel wrote a new descriptor (close-on-exec) that
    // nothing else owns; an older kernel ignores the flag and leaves -1.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Ok((pid, pidfd))
}

/// The child, from the `clone` to the `exec`: in this process's memory and on the spawning
/// thread's child stack, so it calls only async-signal-safe functions on what the parent
/// prepared, and reports a failure in `Child::error` before it exits 127. What glibc's
/// `posix_spawn` does with the attributes std gives a child.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` of `clone_child`, which the parent does not touch until
    // this has exec'd or exited; every call below is async-signal-safe, with pointers the
    // parent prepared (NUL-terminated strings and arrays) or on this stack.
    unsafe {
        let child = arg.cast::<Child>();
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut (*child).started);
        // The handlers this process set would run here, in its memory: each is put back to
        // its default (as exec would), `SIGPIPE` too (this process ignores it; an ignored
        // signal stays ignored across exec). glibc refuses its own two signals: left alone.
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..65 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut now: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &raw mut now) != 0 {
                continue;
            }
            let handled = now.sa_sigaction != libc::SIG_DFL && now.sa_sigaction != libc::SIG_IGN;
            if handled || (signal == libc::SIGPIPE && now.sa_sigaction != libc::SIG_DFL) {
                libc::sigaction(signal, &raw const default, std::ptr::null_mut());
            }
        }
        let failed = 'setup: {
            if libc::setpgid(0, 0) != 0 {
                break 'setup true;
            }
            for (to, from) in (0..).zip((*child).fds) {
                // A descriptor already in its place keeps it, open across the exec.
                let done = if from == to {
                    libc::fcntl(from, libc::F_SETFD, 0)
                } else {
                    libc::dup2(from, to)
                };
                if done < 0 {
                    break 'setup true;
                }
            }
            if !(*child).dir.is_null() && libc::chdir((*child).dir) != 0 {
                break 'setup true;
            }
            set_mask(&0, std::ptr::null_mut());
            libc::execve((*child).file, (*child).argv.cast(), (*child).envp.cast());
            true
        };
        if failed {
            std::ptr::write_volatile(&raw mut (*child).error, *libc::__errno_location());
        }
        libc::_exit(127)
    }
}

/// Sets this thread's signal mask to the 64 signals of `mask` (bit `n - 1`: signal `n`),
/// the old one into `old` unless it is null: the raw system call, which glibc's wrappers
/// would filter.
///
/// # Safety
///
/// `old` is null or valid for a write of 8 bytes.
unsafe fn set_mask(mask: &u64, old: *mut u64) {
    // SAFETY: the kernel reads 8 bytes at `mask` and writes 8 at `old` when it is not null.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            std::ptr::from_ref(mask),
            old,
            8usize,
        );
    }
}

/// The size of the stack children start on, before their `exec`: what the steps above
/// take, with room to spare (glibc gives its children 32 KiB and the size of their `argv`;
/// the strings here are the parent's, not copied onto it).
const STACK_SIZE: usize = 64 * 1024;

thread_local! {
    /// The stack this thread's children start on, mapped at its first spawn.
    static STACK: std::cell::RefCell<Option<Stack>> = const { std::cell::RefCell::new(None) };
}

/// A mapped stack with a guard page below it (an overflow faults rather than writing over
/// other memory); unmapped when its thread ends.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        let guard = page_size();
        let len = STACK_SIZE + guard;
        // SAFETY: a fresh anonymous mapping, owned by the `Stack` from here on.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let stack = Stack { base, len };
            if libc::mprotect(base, guard, libc::PROT_NONE) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(stack)
        }
    }

    /// The top of the stack (it grows down), 16-byte aligned.
    fn top(&self) -> *mut u8 {
        let top = self.base.cast::<u8>().wrapping_add(self.len);
        top.wrapping_sub(top as usize % 16)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: mapped in `new`, unmapped once; no child runs on it (its thread is ending).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&size| size > 0)
        .unwrap_or(4096)
}

/// The pointers of `strings`, then a null pointer: an `argv` or `envp`.
fn null_terminated<'a>(strings: impl Iterator<Item = &'a CString>) -> Vec<*mut libc::c_char> {
    strings
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// `/dev/null`, opened once for reading (every child's stdin is a copy); `None` if it cannot
/// be opened.
fn dev_null() -> Option<&'static OwnedFd> {
    static NULL: OnceLock<Option<OwnedFd>> = OnceLock::new();
    NULL.get_or_init(|| std::fs::File::open("/dev/null").ok().map(OwnedFd::from))
        .as_ref()
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array passed.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(argv: &[&str], dir: &str) -> Launch {
        Launch {
            action: crate::spec::Action::Command(argv.iter().map(|a| (*a).to_string()).collect()),
            env: std::collections::BTreeMap::new(),
            working_dir: Some(dir.to_string()),
            timeout: None,
            kill_grace: std::time::Duration::from_secs(1),
            output_limit: 1 << 20,
            tag: "test".into(),
            inherit: Arc::new(Inherited::new(Vec::new())),
            client: None,
            provider: None,
            start_inline: true,
        }
    }

    /// The children this thread started and has not reaped (`/proc` lists them by the
    /// thread that cloned them: a test's own).
    fn my_children() -> String {
        std::fs::read_to_string("/proc/thread-self/children").unwrap_or_default()
    }

    #[test]
    fn a_child_that_cannot_start_is_an_error_and_leaves_no_zombie() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().to_str().unwrap();
        let missing = dir.path().join("missing");
        let cases = [
            // (program, folder, the error)
            (
                "/bin/true",
                missing.to_str().unwrap(),
                io::ErrorKind::NotFound,
            ),
            (folder, folder, io::ErrorKind::PermissionDenied),
            ("/no/such/program", folder, io::ErrorKind::NotFound),
        ];
        for (program, at, want) in cases {
            let spawn = Spawn::new(&launch(&[program], at)).expect("a program by path");
            let error = spawn.spawn().err().expect("it cannot start");
            assert_eq!(error.kind(), want, "{program} in {at}: {error}");
            assert_eq!(my_children().trim(), "", "{program} in {at}: left unreaped");
        }
    }

    #[test]
    fn a_child_reads_the_clock_as_it_starts_and_comes_with_its_pidfd() {
        // The tick the child's own reading shares with the one before the clone is the start
        // time /proc gives it, and the bracket is narrow enough to be known almost always.
        let mut known = 0;
        let spawn = Spawn::new(&launch(&["/bin/sleep", "5"], "/")).unwrap();
        let blocked = || {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            status
                .lines()
                .find(|l| l.starts_with("SigBlk:"))
                .unwrap()
                .to_string()
        };
        let mask = blocked();
        for _ in 0..100 {
            let before = process::boot_clock();
            let child = spawn.spawn().unwrap();
            let computed = process::start_tick_between(before, child.started);
            let from_proc = process::process_start_time(i64::from(child.pid));
            assert!(
                my_children()
                    .split_whitespace()
                    .any(|p| p == child.pid.to_string())
            );
            // The clone made a pidfd of this very child.
            let pidfd = child.pidfd.as_ref().expect("CLONE_PIDFD (Linux 5.2)");
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()));
            let pid_line = format!("Pid:\t{}", child.pid);
            assert!(info.unwrap().lines().any(|l| l == pid_line));
            // SAFETY: kill has no memory effects; the pid is our child, not yet reaped.
            unsafe { libc::kill(child.pid, libc::SIGKILL) };
            let _ = process::wait4(child.pid);
            if let Some(tick) = computed {
                assert_eq!(Some(tick), from_proc, "child {}", child.pid);
                known += 1;
            }
        }
        assert!(
            known >= 50,
            "only {known} of 100 starts were known without /proc"
        );
        assert_eq!(my_children().trim(), "");
        // The spawning thread's mask, blocked for the clone, is back as it was.
        assert_eq!(blocked(), mask);
    }
}
