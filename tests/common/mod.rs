//! A builder for running the `jobs` binary in a temporary project folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

pub mod pg;

/// The fixed "now" every test runs at (a Sunday, before a New York fall-back).
pub const NOW: &str = "2026-10-31T12:00:00Z";

pub struct Project {
    pub dir: TempDir,
    /// The clock of the last daemon started here: where it started, and when (monotonic).
    /// Commands that race that daemon read the same clock ([`Project::run_live`]), so no test
    /// ever mixes the fixed [`NOW`] with the real date.
    daemon_clock: std::cell::Cell<Option<(jiff::Timestamp, std::time::Instant)>>,
    /// With `JOBS_TEST_LEDGER=postgres`, this project's database on the test server, given
    /// to every command as `JOBS_LEDGER`.
    pub ledger_url: Option<String>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code and returns self, printing both streams on failure.
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn stdout_has(self, text: &str) -> Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stderr_has(self, text: &str) -> Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn stdout_lacks(self, text: &str) -> Run {
        assert!(
            !self.stdout.contains(text),
            "stdout has {text:?}:\n{}",
            self.stdout
        );
        self
    }

    pub fn stderr_lacks(self, text: &str) -> Run {
        assert!(
            !self.stderr.contains(text),
            "stderr has {text:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
            daemon_clock: std::cell::Cell::new(None),
            ledger_url: pg::enabled().then(pg::database),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file (creating folders) and returns the project for chaining.
    pub fn file(self, relative: &str, content: impl AsRef<[u8]>) -> Project {
        self.write(relative, content);
        self
    }

    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        // A token file is the owner's alone, as `jobctl serve` demands.
        if path.file_name().is_some_and(|n| n == "tokens") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.path(relative)).unwrap();
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// How commands name this project's ledger: the default file, or its PostgreSQL URL.
    pub fn ledger_name(&self) -> String {
        self.ledger_url
            .clone()
            .unwrap_or_else(|| ".jobs/ledger.db".to_string())
    }

    /// Runs `sql` on this project's ledger, SQLite or PostgreSQL, and returns the first
    /// column of the first row as text (empty when there is none): how a test reaches under
    /// the binary (to play another daemon, or to read what was written).
    pub fn sql(&self, sql: &str) -> String {
        match &self.ledger_url {
            Some(url) => pg::psql(url, sql),
            None => {
                let conn = rusqlite::Connection::open(self.path(".jobs/ledger.db")).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let mut rows = stmt.query([]).unwrap();
                match rows.next().unwrap() {
                    Some(row) => match row.get_ref(0).unwrap() {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(r) => r.to_string(),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    },
                    None => String::new(),
                }
            }
        }
    }

    /// Runs `jobs ARGS` in the project folder at the fixed [`NOW`].
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_at(Some(NOW), args, env)
    }

    /// Runs `jobs ARGS` on the clock of the daemon started last (for commands racing it): its
    /// start plus the time since, never the real date. [`NOW`] when no daemon was started.
    pub fn run_live(&self, args: &[&str]) -> Run {
        let now = self.live_now().to_string();
        self.run_at(Some(&now), args, &[])
    }

    /// Starts `jobctl ARGS` on the last daemon's clock with stdout piped, for commands that
    /// keep running (`--watch`, `-f`); read it with [`Lines`].
    pub fn spawn(&self, args: &[&str]) -> (std::process::Child, Lines) {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("jobctl"));
        cmd.current_dir(self.root())
            .args(args)
            .env("NO_COLOR", "1")
            .env("JOBS_NOW", self.live_now().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for var in [
            "JOBS_DIR",
            "JOBS_LEDGER",
            "JOBS_CONFIG",
            "JOBS_SERVER",
            "JOBS_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        if let Some(url) = &self.ledger_url {
            cmd.env("JOBS_LEDGER", url);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, Lines(rx))
    }

    /// The instant the last daemon's clock reads now (by the test's monotonic clock).
    pub fn live_now(&self) -> jiff::Timestamp {
        match self.daemon_clock.get() {
            Some((at, started)) => {
                let elapsed = jiff::SignedDuration::try_from(started.elapsed()).unwrap();
                at.checked_add(elapsed).unwrap()
            }
            None => NOW.parse().unwrap(),
        }
    }

    fn run_at(&self, now: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(now, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        finish(&mut cmd)
    }

    /// `jobs ARGS` in the project folder, on the fixed clock `now` (default [`NOW`]: a test
    /// never depends on the day it runs), with no `JOBS_*` settings from the test's own
    /// environment.
    fn command(&self, now: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("jobctl").unwrap();
        cmd.current_dir(self.root())
            .args(args)
            .env("NO_COLOR", "1")
            .env("JOBS_NOW", now.unwrap_or(NOW));
        for var in [
            "JOBS_DIR",
            "JOBS_LEDGER",
            "JOBS_CONFIG",
            "JOBS_OUTPUT",
            "JOBS_LOCK_WAIT",
            "JOBS_TOKEN",
            "JOBS_TOKEN_FILE",
            "JOBS_LISTEN",
            "JOBS_SERVER",
            "JOBS_CA_CERT",
            "JOBS_TLS_CERT",
            "JOBS_TLS_KEY",
        ] {
            cmd.env_remove(var);
        }
        if let Some(url) = &self.ledger_url {
            cmd.env("JOBS_LEDGER", url);
        }
        cmd
    }
}

/// Runs `cmd` to its end and collects what it printed.
fn finish(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// A small valid job file.
pub fn job(schedule: &str) -> String {
    format!("schedule: \"{schedule}\"\ncommand: [echo, hi]\n")
}

/// A `jobs serve` started in a project, with its JSON log read line by line, so a test waits
/// for what the daemon says it did instead of sleeping.
pub struct Daemon {
    child: Option<std::process::Child>,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    pub seen: Vec<serde_json::Value>,
}

impl Project {
    /// Starts `jobs serve ARGS` with a JSON log, its clock starting at `now` (default [`NOW`])
    /// and running at real speed. Never the real date: a ledger written at the fixed [`NOW`]
    /// and served on the real clock would age with the calendar (retention, catch-up).
    pub fn serve(&self, args: &[&str], now: Option<&str>) -> Daemon {
        self.serve_env(args, now, &[])
    }

    /// `jobs serve` with extra environment variables. The API listens on a free port unless
    /// `args` say otherwise; [`Daemon::url`] tells which.
    pub fn serve_env(&self, args: &[&str], now: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        self.serve_with(args, now, env, |_| {})
    }

    /// [`Project::serve_env`], with `configure` applied to the command before it is spawned
    /// (resource limits, say).
    pub fn serve_with(
        &self,
        args: &[&str],
        now: Option<&str>,
        env: &[(&str, &str)],
        configure: impl FnOnce(&mut std::process::Command),
    ) -> Daemon {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("jobctl"));
        cmd.current_dir(self.root())
            .arg("serve")
            .arg("--log-format")
            .arg("json")
            .args(args)
            .env("NO_COLOR", "1")
            .env("JOBS_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for var in [
            "JOBS_DIR",
            "JOBS_LEDGER",
            "JOBS_CONFIG",
            "JOBS_OUTPUT",
            "JOBS_NOW",
            "JOBS_TOKEN",
            "JOBS_TOKEN_FILE",
            "JOBS_LISTEN",
            "JOBS_SERVER",
            "JOBS_CA_CERT",
            "JOBS_TLS_CERT",
            "JOBS_TLS_KEY",
        ] {
            cmd.env_remove(var);
        }
        if let Some(url) = &self.ledger_url {
            cmd.env("JOBS_LEDGER", url);
        }
        if !args.iter().any(|a| a.starts_with("--listen")) {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let start = now.unwrap_or(NOW);
        cmd.env("JOBS_NOW", start);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Anchored before the spawn, so a command's clock is never behind the daemon's.
        self.daemon_clock
            .set(Some((start.parse().unwrap(), std::time::Instant::now())));
        configure(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "message": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
        }
    }
}

impl Project {
    /// Polls `sql` on the ledger (its first column, as text) until `done` holds, at most
    /// `limit`; the value. For what another process writes (a node of a cluster), which no
    /// log of the test's own daemon announces.
    pub fn until(
        &self,
        sql: &str,
        limit: std::time::Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let value = self.sql(sql);
            if done(&value) {
                return value;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql}: still {value:?} after {limit:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Starts `jobs serve --node NAME` and waits for its start line. Its clock starts at
    /// [`NOW`] for the first node of a project, else in step with the nodes already started
    /// (each daemon's clock runs at real speed from the instant it is given).
    pub fn serve_node(&self, name: &str, first: bool) -> Daemon {
        let now = (!first).then(|| self.live_now().to_string());
        let mut d = self.serve(&["--node", name], now.as_deref());
        d.wait_for("jobs serve started", &[]);
        d
    }
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Waits (up to 30 s) for a log line whose message contains `message` and whose fields
    /// match `fields` (`("job", "tick")` compares the field's text).
    pub fn wait_for(&mut self, message: &str, fields: &[(&str, &str)]) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!(
                    "the daemon never logged {message:?} {fields:?}; it logged:\n{}",
                    self.seen
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            };
            self.seen.push(line.clone());
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let matches = line
                .get("message")
                .is_some_and(|m| text(m).contains(message))
                && fields
                    .iter()
                    .all(|(k, v)| line.get(*k).is_some_and(|x| text(x) == *v));
            if matches {
                return line;
            }
        }
    }

    /// The API's base URL, `http://127.0.0.1:PORT` (`https://` when it serves TLS), from the
    /// daemon's first log line.
    pub fn url(&mut self) -> String {
        let started = self
            .seen
            .iter()
            .find(|l| {
                l.get("message")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|m| m.contains("jobs serve started"))
            })
            .cloned();
        let started = started.unwrap_or_else(|| self.wait_for("jobs serve started", &[]));
        match started["url"].as_str() {
            Some(url) => url.to_string(),
            None => format!(
                "http://{}",
                started["listen"].as_str().expect("the listen field")
            ),
        }
    }

    /// The log lines it wrote so far that no `wait_for` read yet.
    pub fn drain(&mut self) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line.clone());
            lines.push(line);
        }
        lines
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the daemon to exit and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let status = self.child.take().unwrap().wait().unwrap();
        // Drain what is left of the log.
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status.code()
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sets the soft and hard `RLIMIT_NOFILE` of a command's process to `n` (as `ulimit -n`).
pub fn limit_descriptors(cmd: &mut std::process::Command, n: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `n` (within the hard limit), for a
/// test that holds many sockets; returns the soft limit now in force.
pub fn raise_own_descriptors(n: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < n {
            limit.rlim_cur = n.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

impl Project {
    /// Runs `jobs ARGS` at [`NOW`] like [`Project::run`], but kills it if it has not finished
    /// within `limit` (its exit code is then -1): for commands that must not hang.
    pub fn run_within(&self, limit: std::time::Duration, args: &[&str]) -> Run {
        let mut cmd = self.command(None, args);
        cmd.timeout(limit);
        finish(&mut cmd)
    }
}

/// Makes a FIFO (named pipe) at `path`.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// The lines a spawned command prints, as they come.
pub struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    /// Reads lines until one satisfies `done` (returned), failing after 30 s with what was read.
    pub fn until(&self, mut done: impl FnMut(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if done(&line) => return line,
                Ok(line) => read.push(line),
                Err(_) => panic!("no such line; read:\n{}", read.join("\n")),
            }
        }
    }
}

/// Runs git in `dir` as a committer would (a fixed author, so no test depends on the
/// machine's git configuration); its standard output, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// GitHub's `X-Hub-Signature-256` of `body` with `secret`: `sha256=HEX`.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A throwaway CA and a server certificate it signed for `localhost` and `127.0.0.1`.
pub struct TestCa {
    pub ca_pem: String,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

pub fn test_ca() -> TestCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jobctl test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    TestCa {
        ca_pem: ca.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
    }
}

/// Runs `serve` on a listener bound now (before the daemon starts, so nothing waits for it)
/// in a thread of its own; returns the port.
pub fn spawn_server<F, Fut>(serve: F) -> u16
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            serve(tokio::net::TcpListener::from_std(listener).unwrap()).await;
        });
    });
    port
}
