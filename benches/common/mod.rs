//! What several benches share: the binary under test, how to run it hermetically, and which
//! commit was measured. Included by each bench with `#[path = "common/mod.rs"] mod common;`.

#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

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
