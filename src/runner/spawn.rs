//! Starting a run's process with `posix_spawn` from what is prepared once for every run: this
//! process's environment less what runs must not inherit, as ready `NAME=value` strings, and
//! `/dev/null` held open. std's `Command` reads and rebuilds the whole environment and opens
//! `/dev/null` for every child: about a tenth of the daemon's CPU in a burst of 200 runs
//! (issue 14). std still starts what this does not ([`Spawn::new`] says when).

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
}

impl From<std::process::Child> for Spawned {
    /// Takes the child's pid and pipes; the `Child` is dropped without waiting (which
    /// neither kills nor reaps it: `runner::reap` does).
    fn from(mut child: std::process::Child) -> Spawned {
        Spawned {
            pid: child.id() as i32,
            stdout: child.stdout.take().map(Into::into),
            stderr: child.stderr.take().map(Into::into),
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
    /// gives a child). Returns once the child has exec'd (glibc's `posix_spawn` waits for
    /// it), or the error that prevented it.
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
        let mut actions = FileActions::new()?;
        actions.dup2(null.as_raw_fd(), 0)?;
        actions.dup2(stdout_w.as_raw_fd(), 1)?;
        actions.dup2(stderr_w.as_raw_fd(), 2)?;
        if let Some(dir) = &self.dir {
            actions.chdir(dir)?;
        }
        let attr = Attributes::new()?;
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call: the file and the NUL-terminated arrays
        // of C strings borrow from `self`, and the file actions and attributes are initialised
        // (and destroyed when dropped, after the call).
        let status = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.file.as_ptr(),
                &actions.0,
                &attr.0,
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        if status != 0 {
            return Err(io::Error::from_raw_os_error(status));
        }
        // The write ends are the child's now (`stdout_w` and `stderr_w` close here): the read
        // ends see the end of the output when it, and whatever it started, have closed them.
        Ok(Spawned {
            pid,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }
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

/// `posix_spawn_file_actions_t`, destroyed when dropped.
struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        // SAFETY: init writes the (zeroed) struct passed; it is used only after it succeeded.
        unsafe {
            let mut raw = std::mem::zeroed();
            check(libc::posix_spawn_file_actions_init(&mut raw))?;
            Ok(FileActions(raw))
        }
    }

    fn dup2(&mut self, fd: i32, to: i32) -> io::Result<()> {
        // SAFETY: the actions are initialised; glibc copies what it needs.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, fd, to) })
    }

    fn chdir(&mut self, dir: &CString) -> io::Result<()> {
        // SAFETY: the actions are initialised; glibc copies the path.
        check(unsafe { libc::posix_spawn_file_actions_addchdir_np(&mut self.0, dir.as_ptr()) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// `posix_spawnattr_t` for a run: a process group of its own, an empty signal mask, `SIGPIPE`
/// at its default (this process ignores it); destroyed when dropped.
struct Attributes(libc::posix_spawnattr_t);

impl Attributes {
    fn new() -> io::Result<Attributes> {
        // SAFETY: init writes the (zeroed) struct passed, and the calls after it take the
        // initialised struct and a signal set on the stack that sigemptyset initialises.
        unsafe {
            let mut raw = std::mem::zeroed();
            check(libc::posix_spawnattr_init(&mut raw))?;
            let mut attr = Attributes(raw);
            check(libc::posix_spawnattr_setpgroup(&mut attr.0, 0))?;
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::posix_spawnattr_setsigmask(&mut attr.0, &set))?;
            libc::sigaddset(&mut set, libc::SIGPIPE);
            check(libc::posix_spawnattr_setsigdefault(&mut attr.0, &set))?;
            let flags = libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF;
            check(libc::posix_spawnattr_setflags(
                &mut attr.0,
                flags as libc::c_short,
            ))?;
            Ok(attr)
        }
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// The `posix_spawn*` functions return an error number rather than setting `errno`.
fn check(status: i32) -> io::Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(status))
    }
}
