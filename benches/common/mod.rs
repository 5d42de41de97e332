//! What several benches share: the binary under test, how to run it hermetically, and which
//! commit was measured. Included by each bench with `#[path = "common/mod.rs"] mod common;`.

#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The `jobctl` under test: the one cargo built, or `JOBS_BENCH_BIN` (another build, e.g. an
/// older commit's, for a before/after in one run).
pub fn bench_bin() -> PathBuf {
    std::env::var_os("JOBS_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_jobctl")),
        PathBuf::from,
    )
}

/// `jobctl` on the project at `root` (`jobs.d/`, `ledger.db`), with none of the caller's `JOBS_*`
/// settings leaking in.
pub fn jobctl_command(bin: &Path, root: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .arg("--dir")
        .arg(root.join("jobs.d"))
        .arg("--ledger")
        .arg(root.join("ledger.db"))
        .current_dir(root)
        .env("NO_COLOR", "1");
    for var in [
        "JOBS_NOW",
        "JOBS_CONFIG",
        "JOBS_DIR",
        "JOBS_LEDGER",
        "JOBS_OUTPUT",
        "JOBS_LOG",
        "JOBS_LOG_FORMAT",
        "JOBS_MAX_CONCURRENT_RUNS",
        "JOBS_SHUTDOWN_GRACE",
        "JOBS_KILL_GRACE",
    ] {
        command.env_remove(var);
    }
    command
}

/// The checkout's `git describe --always --dirty`, to name what a result measured.
pub fn git_describe() -> String {
    Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `jobctl serve` on a project (API on a free port), its log in `serve.log`, stopped with
/// SIGTERM when dropped.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(bin: &Path, root: &Path) -> Daemon {
        let log = root.join("serve.log");
        let child = jobctl_command(bin, root)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning jobs serve");
        Daemon { child, log }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Polls `sql` (one integer) every 2 ms until it reaches `want`; fails after 300 s or if the
/// daemon exits, with its log's tail.
pub fn wait_count(daemon: &mut Daemon, conn: &Connection, sql: &str, want: i64) {
    let started = Instant::now();
    loop {
        let n: i64 = conn.query_row(sql, [], |r| r.get(0)).unwrap_or(-1);
        if n >= want {
            return;
        }
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("jobs serve exited ({status}):\n{}", daemon.log_tail());
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "waited 300 s for `{sql}` to reach {want} (it is {n}):\n{}",
            daemon.log_tail()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
