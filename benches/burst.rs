//! A burst: 200 jobs due at the same minute, `jobctl serve` side by side with Debian's `cron`
//! and APScheduler 3.11, on the real clock (issue 14, "Ahead of the peers on a burst").
//!
//! ```text
//! cargo bench --bench burst                                 # 3 minute boundaries per system
//! BURST_MINUTES=5 cargo bench --bench burst                 # more boundaries
//! BURST_SYSTEMS=jobctl cargo bench --bench burst            # only some (jobctl,apscheduler,cron)
//! JOBS_BENCH_BIN=/path/to/old/jobctl cargo bench --bench burst   # another build
//! JOBS_BENCH_BIN_BEFORE=/path/to/old/jobctl cargo bench --bench burst  # both builds, one run
//! ```
//!
//! Every system runs the same 200 jobs, `* * * * *`, each `sh -c 'date +%s%N > FILE'` with a
//! file of its own. Lateness is the stamp minus the minute boundary it fired for. The systems
//! run one at a time, each for `BURST_MINUTES` boundaries (3 by default); a boundary's stamps
//! are read 3 s after it (later if some are missing, up to 40 s), so reading never competes
//! with the runs. Each boundary gives a p50, p99 and max over its 200 stamps; the table shows
//! the median of those over the boundaries.
//!
//! The peers, installed by the bench when missing (skipped with a message when that fails):
//! - Debian `cron` (`apt-get install -y cron`, needs root): a file in `/etc/cron.d` with the
//!   200 lines, `cron -f` in the foreground, stopped and the file removed after.
//! - APScheduler 3.11 from PyPI in a venv (kept in the temp dir for the next time): a
//!   `BackgroundScheduler` with its defaults (a 10-thread pool) and 200
//!   `CronTrigger(minute="*")` jobs calling `subprocess.call`.
//!
//! `jobctl serve` runs with its defaults (the concurrency limit included), with the ledger in
//! the temp dir (`TMPDIR`), like a daemon's on a disk.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke test of jobctl
//! alone: 5 jobs, a clock started 5 s before a minute (`JOBS_NOW`), checking that every job
//! fired once; no peers, no figures.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long after a boundary its stamps are first read.
const SETTLE: Duration = Duration::from_secs(3);
/// How long after a boundary a missing stamp is given up on.
const GIVE_UP: Duration = Duration::from_secs(40);
/// A system must be ready this long before the first boundary it is measured at.
const LEAD: Duration = Duration::from_secs(5);

const APSCHEDULER_SCRIPT: &str = r#"
import signal, subprocess, sys, threading
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

folder, n = sys.argv[1], int(sys.argv[2])
scheduler = BackgroundScheduler()  # its defaults: a 10-thread pool executor
for i in range(n):
    scheduler.add_job(
        subprocess.call,
        CronTrigger(minute="*"),
        args=[["sh", "-c", f"date +%s%N > {folder}/job-{i:03}"]],
        id=f"job-{i:03}",
    )
scheduler.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
scheduler.shutdown(wait=False)
"#;

/// A system under test, running; dropping it stops it.
struct Running {
    name: &'static str,
    child: Child,
    /// Removed when the system stops (the cron.d file).
    cleanup: Option<PathBuf>,
}

impl Running {
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.child.try_wait().ok().flatten().is_none() {
                eprintln!("{} ignored SIGTERM for 20 s; killing it", self.name);
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if let Some(path) = self.cleanup.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    fn check_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited early ({status})", self.name);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lateness of one boundary's runs, in ms, and how many never stamped.
struct Boundary {
    late_ms: Vec<f64>,
    missing: usize,
}

struct Report {
    name: &'static str,
    note: String,
    boundaries: Vec<Boundary>,
}

fn unix_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos() as i128
}

const MINUTE_NS: i128 = 60_000_000_000;

/// The first minute boundary at least `lead` from now (real clock), in ns since the epoch.
fn next_boundary(lead: Duration) -> i128 {
    let earliest = unix_ns() + lead.as_nanos() as i128;
    (earliest / MINUTE_NS + 1) * MINUTE_NS
}

fn sleep_until_ns(at: i128) {
    let left = at - unix_ns();
    if left > 0 {
        std::thread::sleep(Duration::from_nanos(left as u64));
    }
}

/// Reads the stamps of `jobs` files written for the boundary `at` (a stamp in `[at, at + 60 s)`).
fn read_stamps(folder: &Path, jobs: usize, at: i128) -> Vec<Option<i128>> {
    (0..jobs)
        .map(|i| {
            let text = std::fs::read_to_string(folder.join(format!("job-{i:03}"))).ok()?;
            let stamp: i128 = text.trim().parse().ok()?;
            (stamp >= at && stamp < at + MINUTE_NS).then_some(stamp)
        })
        .collect()
}

/// Waits for the boundary `at` and collects its stamps.
fn measure_boundary(system: &mut Running, folder: &Path, jobs: usize, at: i128) -> Boundary {
    sleep_until_ns(at + SETTLE.as_nanos() as i128);
    let give_up = at + GIVE_UP.as_nanos() as i128;
    loop {
        system.check_alive();
        let stamps = read_stamps(folder, jobs, at);
        let missing = stamps.iter().filter(|s| s.is_none()).count();
        if missing == 0 || unix_ns() >= give_up {
            let late_ms = stamps
                .into_iter()
                .flatten()
                .map(|s| (s - at) as f64 / 1e6)
                .collect();
            return Boundary { late_ms, missing };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Measures `minutes` boundaries of a system that is ready now.
fn measure(system: &mut Running, folder: &Path, jobs: usize, minutes: usize) -> Vec<Boundary> {
    let mut boundaries = Vec::new();
    for _ in 0..minutes {
        let at = next_boundary(LEAD);
        let b = measure_boundary(system, folder, jobs, at);
        println!(
            "  {}: boundary {}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, {} missing",
            system.name,
            at / 1_000_000_000,
            percentile(&b.late_ms, 50.0),
            percentile(&b.late_ms, 99.0),
            max(&b.late_ms),
            b.missing
        );
        boundaries.push(b);
    }
    boundaries
}

// ---------------------------------------------------------------------------------------------
// jobctl

/// Starts `jobctl serve` on 200 (or `jobs`) minute jobs; returns once its scheduler runs.
fn start_jobctl(
    name: &'static str,
    bin: &Path,
    root: &Path,
    stamps: &Path,
    jobs: usize,
    now: Option<&str>,
) -> Running {
    let jobs_d = root.join("jobs.d");
    std::fs::create_dir_all(&jobs_d).unwrap();
    for i in 0..jobs {
        let file = stamps.join(format!("job-{i:03}"));
        std::fs::write(
            jobs_d.join(format!("burst-{i:03}.yaml")),
            format!(
                "description: Burst job {i}\nschedule: \"* * * * *\"\ncommand: [\"sh\", \"-c\", \"date +%s%N > {}\"]\n",
                file.display()
            ),
        )
        .unwrap();
    }
    let log = root.join("serve.log");
    let mut command = common::jobctl_command(bin, root);
    if let Some(now) = now {
        command.env("JOBS_NOW", now);
    }
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--shutdown-grace", "5s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut running = Running {
        name,
        child: command.spawn().expect("spawning jobctl serve"),
        cleanup: None,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        running.check_alive();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("scheduler started") {
            return running;
        }
        assert!(
            Instant::now() < deadline,
            "jobctl serve did not start in 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_jobctl(name: &'static str, bin: &Path, jobs: usize, minutes: usize) -> Report {
    let temp = tempfile::tempdir().unwrap();
    let stamps = temp.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let mut system = start_jobctl(name, bin, temp.path(), &stamps, jobs, None);
    let boundaries = measure(&mut system, &stamps, jobs, minutes);
    system.stop();
    Report {
        name,
        note: format!("{}, default settings", bin.display()),
        boundaries,
    }
}

// ---------------------------------------------------------------------------------------------
// APScheduler

/// A Python with APScheduler 3.11 importable: a venv kept in the temp dir, made on first use.
fn apscheduler_python() -> Result<(PathBuf, String), String> {
    let venv = std::env::temp_dir().join("jobs-burst-apscheduler");
    let python = venv.join("bin/python3");
    let version = |python: &Path| {
        Command::new(python)
            .args(["-c", "import apscheduler; print(apscheduler.__version__)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(v) = version(&python).filter(|v| v.starts_with("3.11")) {
        return Ok((python, v));
    }
    println!("installing APScheduler 3.11 into {}", venv.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("running python3 -m venv: {e}"))?;
    if !made.success() {
        return Err("python3 -m venv failed".into());
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "apscheduler>=3.11,<4"])
        .status()
        .map_err(|e| format!("running pip: {e}"))?;
    if !pip.success() {
        return Err("pip install 'apscheduler>=3.11,<4' failed (no network?)".into());
    }
    let v = version(&python).ok_or("APScheduler does not import after pip install")?;
    Ok((python, v))
}

fn run_apscheduler(jobs: usize, minutes: usize) -> Result<Report, String> {
    let (python, version) = apscheduler_python()?;
    let temp = tempfile::tempdir().unwrap();
    let stamps = temp.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let script = temp.path().join("burst.py");
    std::fs::write(&script, APSCHEDULER_SCRIPT).unwrap();
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&stamps)
        .arg(jobs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting APScheduler: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut system = Running {
        name: "apscheduler",
        child,
        cleanup: None,
    };
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .map_err(|e| format!("reading APScheduler: {e}"))?;
    if line.trim() != "ready" {
        return Err(format!("APScheduler did not start: {line:?}"));
    }
    let boundaries = measure(&mut system, &stamps, jobs, minutes);
    system.stop();
    Ok(Report {
        name: "APScheduler",
        note: format!("{version}, BackgroundScheduler defaults (10 threads)"),
        boundaries,
    })
}

// ---------------------------------------------------------------------------------------------
// Debian cron

fn cron_binary() -> Result<PathBuf, String> {
    let find = || {
        ["/usr/sbin/cron", "/usr/bin/cron", "/sbin/cron"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    // SAFETY: geteuid has no memory effects.
    if unsafe { libc::geteuid() } != 0 {
        return Err("cron is not installed and installing it needs root".into());
    }
    println!("installing cron (apt-get install -y cron)");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-q", "cron"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err("apt-get install -y cron failed (no network?)".into());
    }
    find().ok_or_else(|| "cron is still missing after apt-get install".into())
}

fn cron_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "cron"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| "unknown version".into())
}

/// Whether a cron daemon already runs here (it would run our file too, and a second one
/// cannot start): looked up by name in /proc, never signalled.
fn cron_running() -> bool {
    std::fs::read_dir("/proc").is_ok_and(|entries| {
        entries.flatten().any(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| matches!(c.trim(), "cron" | "crond"))
        })
    })
}

fn run_cron(jobs: usize, minutes: usize) -> Result<Report, String> {
    let cron = cron_binary()?;
    // SAFETY: geteuid has no memory effects.
    if unsafe { libc::geteuid() } != 0 {
        return Err("running cron with a file in /etc/cron.d needs root".into());
    }
    if cron_running() {
        return Err("a cron daemon already runs on this machine; stop it to measure cron".into());
    }
    let temp = tempfile::tempdir().unwrap();
    let stamps = temp.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    // `%` is a newline in a crontab unless escaped.
    let table: String = (0..jobs)
        .map(|i| {
            format!(
                "* * * * * root sh -c 'date +\\%s\\%N > {}/job-{i:03}'\n",
                stamps.display()
            )
        })
        .collect();
    // cron.d names may hold only letters, digits, `-` and `_`; the file must not be writable
    // by group or others.
    let file = PathBuf::from("/etc/cron.d/jobs-burst-bench");
    std::fs::create_dir_all("/etc/cron.d").map_err(|e| format!("creating /etc/cron.d: {e}"))?;
    std::fs::write(&file, table).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let child = Command::new(&cron)
        .arg("-f")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            return Err(format!("starting {}: {e}", cron.display()));
        }
    };
    let mut system = Running {
        name: "cron",
        child,
        cleanup: Some(file),
    };
    // cron reads its tables at start; give it a moment before the lead time counts.
    std::thread::sleep(Duration::from_millis(500));
    let boundaries = measure(&mut system, &stamps, jobs, minutes);
    system.stop();
    Ok(Report {
        name: "Debian cron",
        note: format!("{} {}, `cron -f`", cron.display(), cron_version()),
        boundaries,
    })
}

// ---------------------------------------------------------------------------------------------
// Figures

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

fn summary_row(report: &Report) {
    let per =
        |f: &dyn Fn(&Boundary) -> f64| median(&report.boundaries.iter().map(f).collect::<Vec<_>>());
    let missing: usize = report.boundaries.iter().map(|b| b.missing).sum();
    println!(
        "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} | {} |",
        report.name,
        per(&|b| percentile(&b.late_ms, 50.0)),
        per(&|b| percentile(&b.late_ms, 99.0)),
        per(&|b| max(&b.late_ms)),
        report.boundaries.len(),
        missing,
        report.note
    );
}

/// Without `--bench`: 5 jobs under a clock started 5 s before a minute; each fires once.
fn smoke(bin: &Path) {
    let jobs = 5;
    let temp = tempfile::tempdir().unwrap();
    let stamps = temp.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let mut system = start_jobctl(
        "jobctl",
        bin,
        temp.path(),
        &stamps,
        jobs,
        Some("2030-06-12T12:00:55Z"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        system.check_alive();
        let written = (0..jobs)
            .filter(|i| stamps.join(format!("job-{i:03}")).exists())
            .count();
        if written == jobs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {written} of {jobs} jobs fired in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    system.stop();
    println!("smoke: {jobs} minute jobs fired once each");
}

fn main() {
    // `cargo bench` builds the release binary and passes `--bench`; `cargo test --all-targets`
    // runs this with the debug binary and no `--bench`: then it is a quick smoke test.
    let bin = common::bench_bin();
    if !std::env::args().any(|a| a == "--bench") {
        smoke(&bin);
        return;
    }
    let minutes: usize = std::env::var("BURST_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(3)
        .max(1);
    let jobs: usize = std::env::var("BURST_JOBS")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(200)
        .clamp(1, 1000);
    let systems =
        std::env::var("BURST_SYSTEMS").unwrap_or_else(|_| "cron,apscheduler,jobctl".into());
    let wanted = |name: &str| systems.split(',').any(|s| s.trim() == name);
    println!(
        "burst benchmark: {jobs} jobs due each minute, {minutes} boundaries per system, jobctl {} at {}, {} CPUs, temp dirs in {}",
        bin.display(),
        common::git_describe(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::temp_dir().display()
    );
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    if wanted("cron") {
        match run_cron(jobs, minutes) {
            Ok(r) => reports.push(r),
            Err(why) => skipped.push(format!("Debian cron skipped: {why}")),
        }
    }
    if wanted("apscheduler") {
        match run_apscheduler(jobs, minutes) {
            Ok(r) => reports.push(r),
            Err(why) => skipped.push(format!("APScheduler skipped: {why}")),
        }
    }
    if let Some(before) = std::env::var_os("JOBS_BENCH_BIN_BEFORE") {
        let before = PathBuf::from(before);
        reports.push(run_jobctl("jobctl serve (before)", &before, jobs, minutes));
    }
    if wanted("jobctl") {
        reports.push(run_jobctl("jobctl serve", &bin, jobs, minutes));
    }
    println!();
    println!("| system | p50 | p99 | max | boundaries | missing | version |");
    println!("|---|---|---|---|---|---|---|");
    for r in &reports {
        summary_row(r);
    }
    for s in &skipped {
        println!("{s}");
    }
    println!();
    println!(
        "Lateness = the run's `date +%s%N` stamp minus the minute boundary; per boundary p50, \
         p99 and max over its {jobs} stamps, then the median over the boundaries."
    );
}
