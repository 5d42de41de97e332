//! Fault soak of `jobs serve` (issue 12, "Nothing stuck, whatever the machine does"): the
//! release binary runs a small project for 10 minutes while faults hit it one at a time and
//! API clients load it; then the ledger is read to check that no run is stuck, no slot was
//! written or executed twice, no slot was silently missed, and the daemon's memory stayed flat.
//!
//! ```text
//! cargo bench --bench soak                                # 600 s
//! JOBS_SOAK_SECS=120 JOBS_SOAK_SEED=42 cargo bench --bench soak
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a ~16 s smoke run on the
//! debug binary that injects every fault once. Where mounting is forbidden (CI), the ledger is
//! on disk and the full-disk fault is skipped, saying why.
//!
//! **The project.** `jobs.d` is a symlink to `releases/vN`; the ledger is on a 32 MiB tmpfs
//! (`disk/`). Jobs: `tick` (every 1 s), `minutely` (`* * * * *`), `overlap` (every 5 s, runs
//! 7 s: every other slot is skipped by `concurrency: forbid`), `escape` (every 15 s, leaves a
//! `setsid sleep 30` holding its output and times out at 5 s), `flaky` (every 20 s, fails,
//! retried twice), `bigout` (every 30 s, ~200 KiB of output) and `manual` (triggered through
//! the API; each release changes its description). Every run appends
//! `job run attempt scheduled_at` to `exec.log`, so an execution is seen by the process
//! itself, not only by the ledger.
//!
//! **Faults**, one at a time, 3 to 10 s apart, in shuffled rounds (a seeded RNG; the seed is
//! printed, `JOBS_SOAK_SEED` replays it): `kill -9` of the daemon and a restart (twice per
//! round); the ledger's disk filled to ENOSPC for 2 to 5 s; a clock jump (the daemon killed and
//! restarted with `JOBS_NOW` one hour ahead for 10 s, then killed and restarted on the real
//! clock, which must log "the clock is behind what the ledger recorded"); a folder swap (a new
//! release, the link renamed over the old one, the release before the previous one deleted);
//! SIGHUP. Kill-type faults (kill -9, clock jump) stop 4 minutes before the end, so the last
//! daemon lives at least 3 minutes; the last minute has no fault at all.
//!
//! **Load**, all the time after a 10 s baseline: 3 clients reading `bigout` logs a page at a
//! time, one listing jobs, runs and status, one triggering `manual` every 300 ms, 200 idle
//! connections held (half of them after one keep-alive request). `/healthz` is timed every
//! second on a new connection; the load stops for the last 20 s, so the no-load figure (the
//! floor) comes from the same run. VmRSS of the daemon is sampled every second.
//!
//! **Checks** (exit 1 if one fails), while the last daemon is up and after its SIGTERM:
//! 1. no run stuck: none `running` past its timeout + kill grace + drain grace + 10 s, none
//!    `pending` due more than 10 s ago; after the stop none `running`, and the exit code is 0;
//! 2. no slot twice: no (job, slot) in two rows, no two real rows covering one slot, no run
//!    started twice (ledger events, and `exec.log`), no scheduled slot executed twice;
//! 3. no slot silently missed: each scheduled job's grid of slots, from its first to its last,
//!    is covered by rows (fired, skipped or missed; ranges count), on-grid and with consistent
//!    `slot_count`; and it was still firing at the end. Rows the daemon wrote while its clock was
//!    an hour ahead name slots after the soak's end (a real clock never writes a slot after
//!    now; their stamps may have been brought back): they are left out of the overlap check
//!    and cover only the real slots of their jump, from the cursor the killed daemon left to
//!    the corrected daemon's start;
//! 4. memory flat: the longest-lived daemon's VmRSS 30 s after its start and at the end differ
//!    by at most 10 MiB (judged only if it lived 90 s or more).
//!
//! Also: every accepted trigger is a run, the applied description is the last release's, and
//! each clock jump was reported.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

const TOKEN: &str = "soak-admin-token-0123456789abcdef";
/// `--kill-grace` of every daemon.
const KILL_GRACE_S: i64 = 2;
/// The daemon's fixed grace for leftovers holding a run's output.
const DRAIN_GRACE_S: i64 = 2;
/// Beyond timeout and graces, how late a run may end before it counts as stuck.
const STUCK_MARGIN_S: i64 = 10;
/// How late a pending run may still be waiting.
const PENDING_LATE_S: i64 = 10;
const TMPFS_SIZE: &str = "32m";
const IDLE_CONNECTIONS: usize = 200;
const LOG_READERS: usize = 3;
const RSS_LIMIT_KB: i64 = 10 * 1024;

/// One job of the project.
struct Job {
    name: &'static str,
    schedule: Option<&'static str>,
    /// The slot interval in seconds (cron `* * * * *`: 60).
    interval_s: Option<i64>,
    timeout_s: i64,
    keep_runs: u32,
    extra: &'static str,
    /// Shell text after the line that records the execution.
    script: &'static str,
}

/// A pending, running or blocked run: id, job, state, started_at, created_at, not_before.
type ActiveRun = (i64, String, String, Option<String>, String, Option<String>);

const JOBS: &[Job] = &[
    Job {
        name: "tick",
        schedule: Some("{every: 1s}"),
        interval_s: Some(1),
        timeout_s: 10,
        keep_runs: 100_000,
        extra: "",
        script: "",
    },
    Job {
        name: "minutely",
        schedule: Some("\"* * * * *\""),
        interval_s: Some(60),
        timeout_s: 10,
        keep_runs: 100_000,
        extra: "",
        script: "",
    },
    Job {
        name: "overlap",
        schedule: Some("{every: 5s}"),
        interval_s: Some(5),
        timeout_s: 10,
        keep_runs: 100_000,
        extra: "",
        script: "; sleep 7",
    },
    Job {
        name: "escape",
        schedule: Some("{every: 15s}"),
        interval_s: Some(15),
        timeout_s: 5,
        keep_runs: 100_000,
        extra: "",
        script: "; setsid sleep 30 & sleep 8",
    },
    Job {
        name: "flaky",
        schedule: Some("{every: 20s}"),
        interval_s: Some(20),
        timeout_s: 10,
        keep_runs: 100_000,
        extra: "retry: {attempts: 2, backoff: 1s}\n",
        script: "; exit 1",
    },
    Job {
        name: "bigout",
        schedule: Some("{every: 30s}"),
        interval_s: Some(30),
        timeout_s: 20,
        keep_runs: 10,
        extra: "",
        script: "; i=0; while [ $i -lt 2200 ]; do echo \"line $i of the soak output: abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\"; i=$((i+1)); done",
    },
    Job {
        name: "manual",
        schedule: None,
        interval_s: None,
        timeout_s: 10,
        keep_runs: 100_000,
        extra: "",
        script: "",
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    DiskFull,
    ClockJump,
    Swap,
    Sighup,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9 + restart",
            Fault::DiskFull => "disk full",
            Fault::ClockJump => "clock jump (+1 h)",
            Fault::Swap => "folder swap",
            Fault::Sighup => "SIGHUP",
        }
    }

    fn kills(self) -> bool {
        matches!(self, Fault::Kill | Fault::ClockJump)
    }
}

/// What the soak's durations are.
struct Plan {
    measuring: bool,
    secs: u64,
    seed: u64,
    /// No fault in the last `quiet` seconds.
    quiet: u64,
    /// No kill-type fault in the last `hold_kills` seconds.
    hold_kills: u64,
    baseline: u64,
    /// No API load in the last `load_off` seconds.
    load_off: u64,
    jump_hold: Duration,
}

#[derive(Clone)]
struct Current {
    idx: usize,
    pid: u32,
    addr: SocketAddr,
    started: Instant,
}

#[derive(Default)]
struct Stat {
    ok: u64,
    statuses: BTreeMap<u16, u64>,
    transport: u64,
    lat_ms: Vec<f64>,
}

struct Health {
    loaded: bool,
    /// None: no daemon to ask (between a kill and the restart).
    ms: Option<f64>,
    ok: bool,
}

struct RssSample {
    idx: usize,
    age: f64,
    rss_kb: i64,
    anon_kb: i64,
}

#[derive(Default)]
struct Shared {
    current: Mutex<Option<Current>>,
    stop: AtomicBool,
    load: AtomicBool,
    rss: Mutex<Vec<RssSample>>,
    health: Mutex<Vec<Health>>,
    stats: Mutex<BTreeMap<&'static str, Stat>>,
    triggers_accepted: AtomicU64,
    triggers_refused: AtomicU64,
    triggers_unknown: AtomicU64,
    log_lines: AtomicU64,
    log_pages: AtomicU64,
    idle_opened: AtomicU64,
    idle_closed: AtomicU64,
    ledger_max_bytes: AtomicU64,
}

impl Shared {
    fn current(&self) -> Option<Current> {
        self.current.lock().unwrap().clone()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn record(&self, kind: &'static str, status: Option<u16>, ms: f64) {
        let mut stats = self.stats.lock().unwrap();
        let stat = stats.entry(kind).or_default();
        match status {
            Some(s) if (200..300).contains(&s) => {
                stat.ok += 1;
                stat.lat_ms.push(ms);
            }
            Some(s) => *stat.statuses.entry(s).or_default() += 1,
            None => stat.transport += 1,
        }
    }
}

/// A tmpfs mounted for the soak, unmounted (lazily) when dropped, even on a panic.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(format!(
                "mounting a tmpfs is forbidden here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Writes a file until the file system is full; its path and size.
    fn fill(&self) -> (PathBuf, u64) {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // The last few pages.
        let small = [0u8; 512];
        while let Ok(n) = file.write(&small) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        let _ = file.sync_all();
        (path, written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct DaemonInfo {
    pid: u32,
    ahead: bool,
    started: Instant,
    ended: Option<Instant>,
    log: PathBuf,
}

/// A clock jump: per job, the cursor the killed daemon left, and the real instant by which the
/// corrected daemon had resumed.
struct Jump {
    cursors: HashMap<String, i64>,
    end_ms: i64,
    warned: bool,
}

struct Soak {
    bin: PathBuf,
    root: PathBuf,
    ledger: PathBuf,
    mark: String,
    plan: Plan,
    rng: fastrand::Rng,
    shared: Arc<Shared>,
    child: Option<Child>,
    daemons: Vec<DaemonInfo>,
    release: u32,
    faults: BTreeMap<Fault, u32>,
    disk_note: Option<String>,
    filled_bytes: Vec<u64>,
    jumps: Vec<Jump>,
    started: Instant,
    // Dropped after the daemon is killed (Drop below), the tmpfs before the temp dir.
    disk: Option<Tmpfs>,
    _dir: tempfile::TempDir,
}

impl Drop for Soak {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in marked_processes(&self.mark) {
            // SAFETY: kill has no memory effects; these are the soak's own jobs' processes.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        self.disk.take();
    }
}

/// Processes (other than this one) whose environment carries the soak's mark: the daemons'
/// runs and whatever they left behind.
fn marked_processes(mark: &str) -> Vec<i32> {
    let needle = format!("SOAK_MARK={mark}");
    let me = std::process::id() as i32;
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn parse_ms(text: &str) -> i64 {
    ms(text.parse::<Timestamp>().unwrap())
}

fn stamp_ms(t: i64) -> String {
    Timestamp::from_millisecond(t).unwrap().to_string()
}

fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NAN, f64::max)
}

/// The JSON log lines of a daemon (non-JSON lines, a panic say, as `{"message": line}`).
fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|_| serde_json::json!({"message": l, "level": "RAW"}))
        })
        .collect()
}

fn message(line: &Value) -> &str {
    line["message"].as_str().unwrap_or("")
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits for a log line whose message contains `needle`.
fn wait_log(child: &mut Child, log: &Path, needle: &str, timeout: Duration) -> Value {
    let started = Instant::now();
    loop {
        if let Some(line) = log_lines(log)
            .into_iter()
            .find(|l| message(l).contains(needle))
        {
            return line;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "jobs serve exited ({status}) before logging {needle:?}:\n{}",
                log_tail(log)
            );
        }
        assert!(
            started.elapsed() < timeout,
            "jobs serve did not log {needle:?} within {timeout:?}:\n{}",
            log_tail(log)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn job_file(root: &Path, job: &Job, release: u32) -> String {
    let exec = root.join("exec.log");
    let description = if job.name == "manual" {
        format!("release v{release}")
    } else {
        format!("the soak's {} job", job.name)
    };
    let mut text = format!("description: \"{description}\"\n");
    if let Some(schedule) = job.schedule {
        text.push_str(&format!("schedule: {schedule}\n"));
    }
    text.push_str(&format!(
        "timeout: {}s\nhistory: {{keep_runs: {}}}\n{}",
        job.timeout_s, job.keep_runs, job.extra
    ));
    text.push_str(&format!(
        "run: 'echo \"$JOBS_JOB $JOBS_RUN_ID $JOBS_ATTEMPT $JOBS_SCHEDULED_AT\" >> {}{}'\n",
        exec.display(),
        job.script
    ));
    text
}

impl Soak {
    fn new(plan: Plan) -> Soak {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (disk, disk_note) = match Tmpfs::mount(&root.join("disk")) {
            Ok(t) => (Some(t), None),
            Err(why) => (None, Some(why)),
        };
        let rng = fastrand::Rng::with_seed(plan.seed);
        let mut soak = Soak {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_jobctl")),
            ledger: root.join("disk/ledger.db"),
            mark: format!("{}-{}", std::process::id(), plan.seed),
            root,
            plan,
            rng,
            shared: Arc::new(Shared::default()),
            child: None,
            daemons: Vec::new(),
            release: 0,
            faults: BTreeMap::new(),
            disk_note,
            filled_bytes: Vec::new(),
            jumps: Vec::new(),
            started: Instant::now(),
            disk,
            _dir: dir,
        };
        soak.write_release();
        soak
    }

    /// Writes the next release and points `jobs.d` at it: a new link renamed over the old one.
    /// The release before the previous one is deleted, as deploy tools do.
    fn write_release(&mut self) {
        self.release += 1;
        let n = self.release;
        let dir = self.root.join(format!("releases/v{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        for job in JOBS {
            std::fs::write(
                dir.join(format!("{}.yaml", job.name)),
                job_file(&self.root, job, n),
            )
            .unwrap();
        }
        let tmp = self.root.join("jobs.d.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("releases/v{n}"), &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("jobs.d")).unwrap();
        if n > 2 {
            std::fs::remove_dir_all(self.root.join(format!("releases/v{}", n - 2))).unwrap();
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--dir")
            .arg(self.root.join("jobs.d"))
            .arg("--ledger")
            .arg(&self.ledger)
            .current_dir(&self.root)
            .env("NO_COLOR", "1");
        for var in [
            "JOBS_CONFIG",
            "JOBS_DIR",
            "JOBS_LEDGER",
            "JOBS_OUTPUT",
            "JOBS_NOW",
            "JOBS_LOG",
            "JOBS_TOKEN",
            "JOBS_TOKEN_FILE",
            "JOBS_LISTEN",
            "JOBS_SERVER",
            "JOBS_LOG_FORMAT",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Starts a daemon (its clock `ahead` of the real one, if asked) and waits until its
    /// scheduler runs.
    fn start(&mut self, ahead: Option<SignedDuration>) {
        assert!(self.child.is_none());
        let idx = self.daemons.len();
        let log = self.root.join(format!("serve-{idx:03}.log"));
        let mut cmd = self.command();
        cmd.args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--kill-grace",
            &format!("{KILL_GRACE_S}s"),
            "--shutdown-grace",
            "3s",
        ])
        .env("JOBS_LOG", "info")
        .env("JOBS_TOKEN", TOKEN)
        .env("SOAK_MARK", &self.mark)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
        if let Some(ahead) = ahead {
            cmd.env("JOBS_NOW", (Timestamp::now() + ahead).to_string());
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawning jobs serve");
        let pid = child.id();
        let line = wait_log(
            &mut child,
            &log,
            "jobs serve started",
            Duration::from_secs(60),
        );
        let addr: SocketAddr = line["listen"]
            .as_str()
            .expect("the listen field")
            .parse()
            .unwrap();
        wait_log(
            &mut child,
            &log,
            "scheduler started",
            Duration::from_secs(60),
        );
        self.daemons.push(DaemonInfo {
            pid,
            ahead: ahead.is_some(),
            started,
            ended: None,
            log,
        });
        self.child = Some(child);
        *self.shared.current.lock().unwrap() = Some(Current {
            idx,
            pid,
            addr,
            started,
        });
    }

    fn kill9(&mut self) {
        *self.shared.current.lock().unwrap() = None;
        let mut child = self.child.take().expect("a daemon runs");
        child.kill().unwrap();
        child.wait().unwrap();
        self.daemons.last_mut().unwrap().ended = Some(Instant::now());
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("a daemon runs").id();
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(pid as i32, signal) };
    }

    fn read_only(&self) -> Connection {
        let conn = Connection::open_with_flags(
            &self.ledger,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn
    }

    fn cursors(&self) -> Option<HashMap<String, i64>> {
        let conn = self.read_only();
        let mut stmt = conn
            .prepare("SELECT name, coalesce(slot_cursor, schedule_anchor) FROM jobs")
            .ok()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .ok()?;
        rows.map(|r| r.ok().map(|(n, c)| (n, parse_ms(&c))))
            .collect()
    }

    fn elapsed(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn sleep_until(&self, secs: u64) {
        let at = self.started + Duration::from_secs(secs);
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
    }

    fn inject(&mut self, fault: Fault) {
        let t = self.elapsed();
        let mut note = String::new();
        match fault {
            Fault::Kill => {
                self.kill9();
                self.start(None);
            }
            Fault::DiskFull => {
                let hold = if self.plan.measuring {
                    Duration::from_millis(self.rng.u64(2000..=5000))
                } else {
                    Duration::from_millis(1500)
                };
                let (filler, bytes) = self.disk.as_ref().unwrap().fill();
                thread::sleep(hold);
                std::fs::remove_file(filler).unwrap();
                self.filled_bytes.push(bytes);
                note = format!("{bytes} bytes for {hold:?}");
            }
            Fault::ClockJump => {
                self.kill9();
                let cursors = self.cursors().unwrap_or_default();
                self.start(Some(SignedDuration::from_hours(1)));
                thread::sleep(self.plan.jump_hold);
                self.kill9();
                self.start(None);
                let end_ms = ms(Timestamp::now()) + 2000;
                let idx = self.daemons.len() - 1;
                let log = self.daemons[idx].log.clone();
                let deadline = Instant::now() + Duration::from_secs(10);
                let warned = loop {
                    let found = log_lines(&log).iter().any(|l| {
                        message(l).contains("the clock is behind what the ledger recorded")
                    });
                    if found || Instant::now() > deadline {
                        break found;
                    }
                    thread::sleep(Duration::from_millis(50));
                };
                note = format!("corrected daemon warned: {warned}");
                self.jumps.push(Jump {
                    cursors,
                    end_ms,
                    warned,
                });
            }
            Fault::Swap => {
                self.write_release();
                note = format!("to v{}", self.release);
            }
            Fault::Sighup => self.signal(libc::SIGHUP),
        }
        *self.faults.entry(fault).or_default() += 1;
        println!("  {t:>4} s  {} {note}", fault.name());
    }

    fn run_faults(&mut self) {
        let fault_end = self.plan.secs - self.plan.quiet;
        let kill_end = self.plan.secs - self.plan.hold_kills.max(self.plan.quiet);
        let expected = |f: Fault| match f {
            Fault::Kill => 3,
            Fault::DiskFull => 7,
            Fault::ClockJump => 16,
            Fault::Swap | Fault::Sighup => 1,
        };
        let round = [
            Fault::Kill,
            Fault::Kill,
            Fault::DiskFull,
            Fault::ClockJump,
            Fault::Swap,
            Fault::Sighup,
        ];
        loop {
            let mut bag = round.to_vec();
            if !self.plan.measuring {
                bag.dedup();
            }
            self.rng.shuffle(&mut bag);
            let mut any = false;
            for fault in bag {
                if fault == Fault::DiskFull && self.disk.is_none() {
                    continue;
                }
                let gap = if self.plan.measuring {
                    self.rng.u64(3000..=10_000)
                } else {
                    500
                };
                if self.plan.measuring {
                    let at = self.elapsed() + gap / 1000;
                    if at + expected(fault) > fault_end || (fault.kills() && at > kill_end) {
                        continue;
                    }
                }
                thread::sleep(Duration::from_millis(gap));
                self.inject(fault);
                any = true;
            }
            if !self.plan.measuring || !any {
                return;
            }
        }
    }

    fn run(&mut self) -> bool {
        println!(
            "soak ({}): {} s, seed {} (JOBS_SOAK_SEED={} replays it), {} CPUs, binary {}",
            if self.plan.measuring { "full" } else { "smoke" },
            self.plan.secs,
            self.plan.seed,
            self.plan.seed,
            thread::available_parallelism().map_or(0, |n| n.get()),
            self.bin.display(),
        );
        match &self.disk_note {
            None => println!("ledger on a {TMPFS_SIZE} tmpfs: {}", self.ledger.display()),
            Some(why) => println!(
                "ledger on disk; the full-disk fault is skipped: {why} ({})",
                self.ledger.display()
            ),
        }
        self.started = Instant::now();
        self.start(None);
        let threads = spawn_load(&self.shared, &self.ledger, self.plan.seed);
        self.sleep_until(self.plan.baseline);
        self.shared.load.store(true, Ordering::Relaxed);
        println!("faults:");
        self.run_faults();
        let fault_end = self.elapsed();
        println!(
            "  {fault_end:>4} s  faults over; quiet until {} s",
            self.plan.secs
        );
        self.sleep_until(self.plan.secs - self.plan.load_off);
        self.shared.load.store(false, Ordering::Relaxed);
        self.sleep_until(self.plan.secs);
        // The samplers stop with the load: what follows is checks and the stop.
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        self.finish()
    }

    /// The checks, the stop, the figures; whether every invariant holds.
    fn finish(&mut self) -> bool {
        let mut verdicts: Vec<(String, bool, String)> = Vec::new();
        // 1. Nothing stuck, with the daemon up.
        let now = ms(Timestamp::now());
        let timeouts: HashMap<&str, i64> = JOBS.iter().map(|j| (j.name, j.timeout_s)).collect();
        let conn = self.read_only();
        let active: Vec<ActiveRun> = conn
            .prepare(
                "SELECT id, job, state, started_at, created_at, not_before FROM runs
                 WHERE state IN ('pending', 'running', 'blocked') ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut stuck = Vec::new();
        for (id, job, state, started, created, not_before) in &active {
            let bad = match state.as_str() {
                "running" => {
                    let limit = (timeouts.get(job.as_str()).copied().unwrap_or(0)
                        + KILL_GRACE_S
                        + DRAIN_GRACE_S
                        + STUCK_MARGIN_S)
                        * 1000;
                    started.as_deref().is_none_or(|s| now - parse_ms(s) > limit)
                }
                _ => {
                    let due = parse_ms(created).max(not_before.as_deref().map_or(0, parse_ms));
                    now - due > PENDING_LATE_S * 1000 || due - now > 60_000
                }
            };
            if bad {
                stuck.push(format!(
                    "run {id} ({job}) {state}, created {created}, started {started:?}, not before {not_before:?}"
                ));
            }
        }
        verdicts.push((
            "1. no run stuck while the daemon is up".into(),
            stuck.is_empty(),
            format!(
                "{} active runs at the end, {} stuck{}",
                active.len(),
                stuck.len(),
                if stuck.is_empty() {
                    String::new()
                } else {
                    format!(": {}", stuck.join("; "))
                }
            ),
        ));
        // The description applied is the last release's, through the API and the CLI.
        let want = format!("release v{}", self.release);
        let api_description = {
            let cur = self.shared.current().unwrap();
            let (status, body) = get_json(cur.addr, "/v1/jobs/manual");
            format!("{status} {}", body["description"].as_str().unwrap_or("?"))
        };
        let cli = self
            .command()
            .args(["list", "-o", "json"])
            .output()
            .unwrap();
        let listed: Value = serde_json::from_slice(&cli.stdout).unwrap_or(Value::Null);
        let cli_description = listed
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["name"] == "manual"))
            .and_then(|j| j["description"].as_str())
            .unwrap_or("?")
            .to_string();
        verdicts.push((
            "applied description is the last release's".into(),
            api_description == format!("200 {want}") && cli_description == want,
            format!("want `{want}`; API: `{api_description}`, CLI: `{cli_description}`"),
        ));
        // Memory at the end, then the graceful stop.
        let last_idx = self.daemons.len() - 1;
        *self.shared.current.lock().unwrap() = None;
        let stop_asked = Instant::now();
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if stop_asked.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.daemons[last_idx].ended = Some(Instant::now());
        let stop_ms = ms(Timestamp::now());
        let stop_took = stop_asked.elapsed();
        thread::sleep(Duration::from_millis(2500));
        let leftovers = marked_processes(&self.mark);
        let running: i64 = conn
            .query_row(
                "SELECT count(*) FROM runs WHERE state = 'running'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        verdicts.push((
            "1. after SIGTERM: exit 0, no run running".into(),
            status.is_some_and(|s| s.success()) && running == 0,
            format!(
                "exit {status:?} after {:.1} s; {running} running; {} processes of runs left 2.5 s later",
                stop_took.as_secs_f64(),
                leftovers.len()
            ),
        ));

        // 2 and 3: slots.
        let slot_report = self.check_slots(&conn, stop_ms, &mut verdicts);
        // 2: executions, from the ledger's events and from the processes themselves.
        let twice_started: Vec<(i64, i64)> = conn
            .prepare(
                "SELECT run_id, count(*) FROM run_events WHERE kind = 'started'
                 GROUP BY run_id HAVING count(*) > 1",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let bad_attempts: i64 = conn
            .query_row(
                "SELECT count(*) FROM runs WHERE (slot IS NOT NULL AND attempt <> 1)
                    OR (trigger = 'retry' AND (slot IS NOT NULL OR first_run_id IS NULL OR attempt < 2))",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let exec = std::fs::read_to_string(self.root.join("exec.log")).unwrap_or_default();
        let mut by_run: HashMap<&str, u32> = HashMap::new();
        let mut by_slot: HashMap<(&str, &str), u32> = HashMap::new();
        let mut executions = 0;
        for line in exec.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 4 {
                continue;
            }
            executions += 1;
            *by_run.entry(f[1]).or_default() += 1;
            if f[0] != "manual" && f[2] == "1" {
                *by_slot.entry((f[0], f[3])).or_default() += 1;
            }
        }
        let runs_twice: Vec<&str> = by_run
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(r, _)| *r)
            .collect();
        let slots_twice: Vec<String> = by_slot
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|((j, s), n)| format!("{j} {s} ×{n}"))
            .collect();
        verdicts.push((
            "2. no run or slot executed twice".into(),
            twice_started.is_empty()
                && bad_attempts == 0
                && runs_twice.is_empty()
                && slots_twice.is_empty(),
            format!(
                "{executions} executions in exec.log; runs started twice (events): {twice_started:?}; \
                 runs executed twice (exec.log): {runs_twice:?}; scheduled slots executed twice: {slots_twice:?}; \
                 scheduled rows with attempt ≠ 1 or unlinked retries: {bad_attempts}"
            ),
        ));
        // Triggers accepted through the API are runs.
        let manual_runs: i64 = conn
            .query_row(
                "SELECT count(*) FROM runs WHERE job = 'manual' AND trigger = 'manual'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let accepted = self.shared.triggers_accepted.load(Ordering::Relaxed) as i64;
        let unknown = self.shared.triggers_unknown.load(Ordering::Relaxed) as i64;
        verdicts.push((
            "every accepted trigger is a run".into(),
            manual_runs >= accepted && manual_runs <= accepted + unknown,
            format!(
                "{accepted} triggers answered 202, {} refused, {unknown} without an answer; {manual_runs} manual runs",
                self.shared.triggers_refused.load(Ordering::Relaxed)
            ),
        ));
        let warned = self.jumps.iter().filter(|j| j.warned).count();
        verdicts.push((
            "each clock jump reported by the corrected daemon".into(),
            warned == self.jumps.len(),
            format!("{warned} of {}", self.jumps.len()),
        ));
        // 4. Memory.
        let memory = self.memory(&mut verdicts);

        self.print_figures(&conn, &slot_report, &memory);
        println!("\nverdicts:");
        let mut all = true;
        for (name, ok, detail) in &verdicts {
            all &= ok;
            println!("  [{}] {name}: {detail}", if *ok { "pass" } else { "FAIL" });
        }
        println!(
            "\nsoak {}: seed {}, {} s",
            if all { "passed" } else { "FAILED" },
            self.plan.seed,
            self.plan.secs
        );
        all
    }

    /// Checks 2 and 3 on the slot rows of every scheduled job; returns a figures table.
    fn check_slots(
        &self,
        conn: &Connection,
        stop_ms: i64,
        verdicts: &mut Vec<(String, bool, String)>,
    ) -> Vec<String> {
        let dup: Vec<(String, String, i64)> = conn
            .prepare(
                "SELECT job, slot, count(*) FROM runs WHERE slot IS NOT NULL
                 GROUP BY job, slot HAVING count(*) > 1",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        struct Row {
            id: i64,
            trigger: String,
            state: String,
            first: i64,
            last: i64,
            count: i64,
            future: bool,
        }
        let mut table = vec![
            "| job | interval | rows | slots fired on time | fired late (run once) | skipped (overlap) | missed | rows from the clock +1 h | uncovered | overlapping |".to_string(),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_string(),
        ];
        let mut overlaps_all = Vec::new();
        let mut gaps_all = Vec::new();
        let mut inconsistent = Vec::new();
        let mut stale = Vec::new();
        for job in JOBS {
            let Some(interval_s) = job.interval_s else {
                continue;
            };
            let step = interval_s * 1000;
            let rows: Vec<Row> = conn
                .prepare(
                    "SELECT id, trigger, state, NULL, slot_first, slot, slot_count FROM runs
                     WHERE job = ?1 AND slot IS NOT NULL ORDER BY slot_first",
                )
                .unwrap()
                .query_map([job.name], |r| {
                    let first: String = r.get(4)?;
                    let last: String = r.get(5)?;
                    Ok(Row {
                        id: r.get(0)?,
                        trigger: r.get(1)?,
                        state: r.get(2)?,
                        // Only a clock that was ahead writes a slot after now.
                        future: parse_ms(&last) > stop_ms,
                        first: parse_ms(&first),
                        last: parse_ms(&last),
                        count: r.get(6)?,
                    })
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let real: Vec<&Row> = rows.iter().filter(|r| !r.future).collect();
            let Some(origin) = real.first().map(|r| r.first) else {
                // Its first slot comes one interval after the first apply.
                if self.started.elapsed().as_secs() as i64 > interval_s + 10 {
                    stale.push(format!("{}: no slot at all", job.name));
                }
                continue;
            };
            for r in &rows {
                let on_grid = (r.first - origin) % step == 0 && (r.last - origin) % step == 0;
                if !on_grid || r.count != (r.last - r.first) / step + 1 || r.last < r.first {
                    inconsistent.push(format!(
                        "{} run {}: {}..{} count {}",
                        job.name,
                        r.id,
                        stamp_ms(r.first),
                        stamp_ms(r.last),
                        r.count
                    ));
                }
            }
            let mut overlaps = 0;
            for pair in real.windows(2) {
                if pair[1].first <= pair[0].last {
                    overlaps += 1;
                    overlaps_all.push(format!(
                        "{} runs {} ({}..{}) and {} ({}..{})",
                        job.name,
                        pair[0].id,
                        stamp_ms(pair[0].first),
                        stamp_ms(pair[0].last),
                        pair[1].id,
                        stamp_ms(pair[1].first),
                        stamp_ms(pair[1].last)
                    ));
                }
            }
            // Every slot of the grid, from the first to the last a real row accounts for.
            let hi = real.iter().map(|r| r.last).max().unwrap();
            let windows: Vec<(i64, i64)> = self
                .jumps
                .iter()
                .filter_map(|j| j.cursors.get(job.name).map(|c| (*c, j.end_ms)))
                .collect();
            let mut uncovered = 0i64;
            let mut gap_start: Option<i64> = None;
            let mut t = origin;
            let mut gaps = Vec::new();
            while t <= hi {
                let covered = real.iter().any(|r| r.first <= t && t <= r.last)
                    || (windows.iter().any(|(a, b)| *a < t && t <= *b)
                        && rows.iter().any(|r| r.future && r.first <= t && t <= r.last));
                if covered {
                    if let Some(g) = gap_start.take() {
                        gaps.push(format!(
                            "{}: {}..{}",
                            job.name,
                            stamp_ms(g),
                            stamp_ms(t - step)
                        ));
                    }
                } else {
                    uncovered += 1;
                    gap_start.get_or_insert(t);
                }
                t += step;
            }
            gaps_all.extend(gaps);
            if hi < stop_ms - step - 5000 {
                stale.push(format!(
                    "{}: last slot {} but the daemon stopped at {}",
                    job.name,
                    stamp_ms(hi),
                    stamp_ms(stop_ms)
                ));
            }
            let sum = |f: &dyn Fn(&Row) -> bool| -> i64 {
                real.iter().filter(|r| f(r)).map(|r| r.count).sum()
            };
            let on_time = sum(&|r| r.trigger == "schedule" && r.state != "skipped");
            let late = sum(&|r| r.trigger == "missed" && r.state != "skipped");
            let skipped = sum(&|r| r.trigger == "schedule" && r.state == "skipped");
            let missed = sum(&|r| r.trigger == "missed" && r.state == "skipped");
            let future = rows.iter().filter(|r| r.future).count();
            table.push(format!(
                "| {} | {} s | {} | {on_time} | {late} | {skipped} | {missed} | {future} | {uncovered} | {overlaps} |",
                job.name,
                interval_s,
                real.len(),
            ));
        }
        verdicts.push((
            "2. no slot twice".into(),
            dup.is_empty() && overlaps_all.is_empty(),
            format!(
                "(job, slot) keys in two rows: {dup:?}; real rows covering one slot twice: {overlaps_all:?}"
            ),
        ));
        verdicts.push((
            "3. no slot silently missed".into(),
            gaps_all.is_empty() && inconsistent.is_empty() && stale.is_empty(),
            format!(
                "uncovered slots: {gaps_all:?}; off-grid or miscounted rows: {inconsistent:?}; \
                 jobs not firing at the end: {stale:?}"
            ),
        ));
        table
    }

    fn memory(&self, verdicts: &mut Vec<(String, bool, String)>) -> Vec<String> {
        let rss = self.shared.rss.lock().unwrap();
        let mut table = vec![
            "| daemon | clock | lived | VmRSS at 30 s | at the end | max | RssAnon at 30 s → end |"
                .to_string(),
            "|---:|---|---:|---:|---:|---:|---:|".to_string(),
        ];
        let mut longest: Option<(usize, f64)> = None;
        for (idx, d) in self.daemons.iter().enumerate() {
            let samples: Vec<&RssSample> = rss.iter().filter(|s| s.idx == idx).collect();
            let lived = d
                .ended
                .unwrap_or_else(Instant::now)
                .duration_since(d.started)
                .as_secs_f64();
            if samples.is_empty() {
                continue;
            }
            let at30 = samples.iter().find(|s| s.age >= 30.0);
            let end = samples.last().unwrap();
            let top = samples.iter().map(|s| s.rss_kb).max().unwrap();
            let mib = |kb: i64| format!("{:.1} MiB", kb as f64 / 1024.0);
            table.push(format!(
                "| {idx} (pid {}) | {} | {lived:.0} s | {} | {} | {} | {} |",
                d.pid,
                if d.ahead { "+1 h" } else { "real" },
                at30.map_or("—".into(), |s| mib(s.rss_kb)),
                mib(end.rss_kb),
                mib(top),
                at30.map_or("—".into(), |s| format!(
                    "{} → {}",
                    mib(s.anon_kb),
                    mib(end.anon_kb)
                )),
            ));
            if longest.is_none_or(|(_, l)| lived > l) {
                longest = Some((idx, lived));
            }
        }
        let (idx, lived) = longest.unwrap();
        let samples: Vec<&RssSample> = rss.iter().filter(|s| s.idx == idx).collect();
        let at30 = samples.iter().find(|s| s.age >= 30.0);
        let end = samples.last().unwrap();
        match at30 {
            Some(at30) if lived >= 90.0 => {
                let growth = end.rss_kb - at30.rss_kb;
                verdicts.push((
                    "4. memory flat (longest-lived daemon)".into(),
                    growth <= RSS_LIMIT_KB,
                    format!(
                        "daemon {idx}, lived {lived:.0} s: VmRSS {:.1} MiB at 30 s, {:.1} MiB at the end ({:+.1} MiB; limit +10 MiB)",
                        at30.rss_kb as f64 / 1024.0,
                        end.rss_kb as f64 / 1024.0,
                        growth as f64 / 1024.0
                    ),
                ));
            }
            _ => verdicts.push((
                "4. memory flat".into(),
                true,
                format!(
                    "not judged: the longest-lived daemon lived {lived:.0} s (< 90 s); VmRSS at the end {:.1} MiB",
                    end.rss_kb as f64 / 1024.0
                ),
            )),
        }
        table
    }

    fn print_figures(&self, conn: &Connection, slots: &[String], memory: &[String]) {
        println!("\nfaults injected:");
        for (fault, n) in &self.faults {
            println!("  {}: {n}", fault.name());
        }
        if let Some(why) = &self.disk_note {
            println!("  disk full: skipped ({why})");
        }
        if !self.filled_bytes.is_empty() {
            println!(
                "  disk filled with {:.1}–{:.1} MiB each time",
                *self.filled_bytes.iter().min().unwrap() as f64 / 1048576.0,
                *self.filled_bytes.iter().max().unwrap() as f64 / 1048576.0
            );
        }
        println!("  daemons started: {}", self.daemons.len());
        let states: Vec<(String, i64)> = conn
            .prepare("SELECT state, count(*) FROM runs GROUP BY state ORDER BY 2 DESC")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let triggers: Vec<(String, i64)> = conn
            .prepare("SELECT trigger, count(*) FROM runs GROUP BY trigger ORDER BY 2 DESC")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let total: i64 = states.iter().map(|(_, n)| n).sum();
        println!("\nruns recorded: {total}");
        println!(
            "  by state: {}",
            states
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  by trigger: {}",
            triggers
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let interrupted: i64 = conn
            .query_row(
                "SELECT count(*) FROM runs WHERE error LIKE '%interrupted%'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        println!("  ended as interrupted (their daemon was killed): {interrupted}");
        println!("\nslots (rows written on the real clock; ranges count every slot they cover):");
        for line in slots {
            println!("  {line}");
        }
        println!("\nAPI load:");
        let stats = self.shared.stats.lock().unwrap();
        for (kind, s) in stats.iter() {
            println!(
                "  {kind}: {} ok, p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms; other statuses {:?}; no answer {}",
                s.ok,
                percentile(&s.lat_ms, 0.5),
                percentile(&s.lat_ms, 0.99),
                max(&s.lat_ms),
                s.statuses,
                s.transport
            );
        }
        println!(
            "  log lines read: {} in {} pages; idle connections: {} opened, {} found closed by the server",
            self.shared.log_lines.load(Ordering::Relaxed),
            self.shared.log_pages.load(Ordering::Relaxed),
            self.shared.idle_opened.load(Ordering::Relaxed),
            self.shared.idle_closed.load(Ordering::Relaxed),
        );
        let health = self.shared.health.lock().unwrap();
        let loaded: Vec<f64> = health
            .iter()
            .filter(|h| h.loaded && h.ok)
            .filter_map(|h| h.ms)
            .collect();
        let quiet: Vec<f64> = health
            .iter()
            .filter(|h| !h.loaded && h.ok)
            .filter_map(|h| h.ms)
            .collect();
        let down = health.iter().filter(|h| h.ms.is_none()).count();
        let failed = health.iter().filter(|h| h.ms.is_some() && !h.ok).count();
        println!(
            "\n/healthz every second: under load {} samples, median {:.2} ms, p99 {:.1} ms, max {:.0} ms; \
             without load (floor) {} samples, median {:.2} ms, max {:.1} ms; \
             {down} seconds with no daemon up, {failed} failed while one was",
            loaded.len(),
            percentile(&loaded, 0.5),
            percentile(&loaded, 0.99),
            max(&loaded),
            quiet.len(),
            percentile(&quiet, 0.5),
            max(&quiet),
        );
        println!("\nmemory per daemon (VmRSS sampled every second):");
        for line in memory {
            println!("  {line}");
        }
        println!(
            "  ledger + WAL at most {:.1} MiB",
            self.shared.ledger_max_bytes.load(Ordering::Relaxed) as f64 / 1048576.0
        );
        // What the daemons said.
        let mut levels: BTreeMap<String, u64> = BTreeMap::new();
        let mut notable: BTreeMap<String, u64> = BTreeMap::new();
        for d in &self.daemons {
            for line in log_lines(&d.log) {
                let level = line["level"].as_str().unwrap_or("?").to_string();
                if level != "INFO" && level != "DEBUG" {
                    let mut text = message(&line).to_string();
                    // Numbers and stamps vary: group by the words.
                    text = text
                        .split(' ')
                        .map(|w| {
                            if w.chars().any(|c| c.is_ascii_digit()) {
                                "#"
                            } else {
                                w
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    text.truncate(150);
                    *notable.entry(format!("{level} {text}")).or_default() += 1;
                }
                *levels.entry(level).or_default() += 1;
            }
        }
        println!("\ndaemon log lines by level: {levels:?}");
        println!("warnings and errors (numbers as #):");
        for (text, n) in &notable {
            println!("  {n:>5} × {text}");
        }
    }
}

fn auth() -> String {
    format!("Bearer {TOKEN}")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// One request through the load's agent, timed and counted; the status and body if answered.
fn call(
    shared: &Shared,
    agent: &ureq::Agent,
    kind: &'static str,
    post: bool,
    url: &str,
) -> Option<(u16, Vec<u8>)> {
    let t = Instant::now();
    let reply = if post {
        agent.post(url).header("Authorization", auth()).send_empty()
    } else {
        agent.get(url).header("Authorization", auth()).call()
    };
    let answer = reply.ok().and_then(|mut r| {
        let status = r.status().as_u16();
        r.body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .ok()
            .map(|b| (status, b))
    });
    shared.record(
        kind,
        answer.as_ref().map(|(s, _)| *s),
        t.elapsed().as_secs_f64() * 1000.0,
    );
    answer
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let mut reply = agent()
        .get(format!("http://{addr}{path}"))
        .header("Authorization", auth())
        .call()
        .unwrap();
    let status = reply.status().as_u16();
    let text = reply.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits while the load is off or no daemon is up; the daemon to load, or None to stop.
fn wait_for_load(shared: &Shared) -> Option<Current> {
    loop {
        if shared.stopping() {
            return None;
        }
        if shared.load.load(Ordering::Relaxed)
            && let Some(cur) = shared.current()
        {
            return Some(cur);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_load(shared: &Arc<Shared>, ledger: &Path, seed: u64) -> Vec<thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    for i in 0..LOG_READERS {
        let shared = shared.clone();
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(i as u64 + 1));
        threads.push(thread::spawn(move || {
            let agent = agent();
            while let Some(cur) = wait_for_load(&shared) {
                let base = format!("http://{}", cur.addr);
                let Some((200, body)) = call(
                    &shared,
                    &agent,
                    "GET /v1/runs?job=bigout",
                    false,
                    &format!("{base}/v1/runs?job=bigout&limit=10"),
                ) else {
                    thread::sleep(Duration::from_millis(200));
                    continue;
                };
                let page: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let ids: Vec<i64> = page["runs"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|r| r["id"].as_i64()).collect())
                    .unwrap_or_default();
                if ids.is_empty() {
                    thread::sleep(Duration::from_millis(500));
                    continue;
                }
                let id = ids[rng.usize(..ids.len())];
                let mut after = 0;
                while let Some((200, body)) = call(
                    &shared,
                    &agent,
                    "GET /v1/runs/{id}/logs (pages of 250)",
                    false,
                    &format!("{base}/v1/runs/{id}/logs?after={after}&limit=250"),
                ) {
                    let page: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let n = page["lines"].as_array().map_or(0, Vec::len);
                    shared.log_lines.fetch_add(n as u64, Ordering::Relaxed);
                    shared.log_pages.fetch_add(1, Ordering::Relaxed);
                    match page["next_after"].as_i64() {
                        Some(next) if !shared.stopping() => after = next,
                        _ => break,
                    }
                }
                thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    {
        let shared = shared.clone();
        threads.push(thread::spawn(move || {
            let agent = agent();
            while let Some(cur) = wait_for_load(&shared) {
                let base = format!("http://{}", cur.addr);
                call(
                    &shared,
                    &agent,
                    "GET /v1/jobs",
                    false,
                    &format!("{base}/v1/jobs"),
                );
                call(
                    &shared,
                    &agent,
                    "GET /v1/runs?limit=100",
                    false,
                    &format!("{base}/v1/runs?limit=100"),
                );
                call(
                    &shared,
                    &agent,
                    "GET /v1/status",
                    false,
                    &format!("{base}/v1/status"),
                );
                thread::sleep(Duration::from_millis(50));
            }
        }));
    }
    {
        let shared = shared.clone();
        threads.push(thread::spawn(move || {
            let agent = agent();
            while let Some(cur) = wait_for_load(&shared) {
                let url = format!("http://{}/v1/jobs/manual/trigger", cur.addr);
                match call(&shared, &agent, "POST /v1/jobs/manual/trigger", true, &url) {
                    Some((202, _)) => &shared.triggers_accepted,
                    Some(_) => &shared.triggers_refused,
                    None => &shared.triggers_unknown,
                }
                .fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(300));
            }
        }));
    }
    {
        // Idle connections: held open, replaced when the server closes them.
        let shared = shared.clone();
        threads.push(thread::spawn(move || {
            let mut conns: Vec<(usize, TcpStream)> = Vec::new();
            while !shared.stopping() {
                let cur = shared.current();
                let loaded = shared.load.load(Ordering::Relaxed);
                let before = conns.len();
                conns.retain_mut(|(idx, s)| {
                    loaded && cur.as_ref().is_some_and(|c| c.idx == *idx) && still_open(s)
                });
                if loaded {
                    shared
                        .idle_closed
                        .fetch_add((before - conns.len()) as u64, Ordering::Relaxed);
                }
                if let (true, Some(cur)) = (loaded, cur) {
                    while conns.len() < IDLE_CONNECTIONS {
                        let Ok(mut s) =
                            TcpStream::connect_timeout(&cur.addr, Duration::from_secs(1))
                        else {
                            break;
                        };
                        if conns.len().is_multiple_of(2) {
                            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: soak\r\n\r\n");
                        }
                        let _ = s.set_nonblocking(true);
                        shared.idle_opened.fetch_add(1, Ordering::Relaxed);
                        conns.push((cur.idx, s));
                    }
                }
                thread::sleep(Duration::from_millis(500));
            }
        }));
    }
    {
        // /healthz every second, on a new connection.
        let shared = shared.clone();
        threads.push(thread::spawn(move || {
            let mut next = Instant::now();
            while !shared.stopping() {
                let loaded = shared.load.load(Ordering::Relaxed);
                let sample = match shared.current() {
                    None => Health {
                        loaded,
                        ms: None,
                        ok: false,
                    },
                    Some(cur) => {
                        let t = Instant::now();
                        let ok = healthz(cur.addr);
                        Health {
                            loaded,
                            ms: Some(t.elapsed().as_secs_f64() * 1000.0),
                            ok,
                        }
                    }
                };
                shared.health.lock().unwrap().push(sample);
                next += Duration::from_secs(1);
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        }));
    }
    {
        // The daemon's memory and the ledger's size, every second.
        let shared = shared.clone();
        let files: Vec<PathBuf> = ["", "-wal", "-shm"]
            .iter()
            .map(|s| PathBuf::from(format!("{}{s}", ledger.display())))
            .collect();
        threads.push(thread::spawn(move || {
            while !shared.stopping() {
                if let Some(cur) = shared.current()
                    && let Some((rss_kb, anon_kb)) = rss_of(cur.pid)
                {
                    shared.rss.lock().unwrap().push(RssSample {
                        idx: cur.idx,
                        age: cur.started.elapsed().as_secs_f64(),
                        rss_kb,
                        anon_kb,
                    });
                }
                let bytes: u64 = files
                    .iter()
                    .filter_map(|f| std::fs::metadata(f).ok())
                    .map(|m| m.len())
                    .sum();
                shared.ledger_max_bytes.fetch_max(bytes, Ordering::Relaxed);
                thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    threads
}

/// Whether the server keeps the connection open (what it sent, an answer, is drained).
fn still_open(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200")
}

fn rss_of(pid: u32) -> Option<(i64, i64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<i64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("JOBS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if measuring { 600 } else { 16 });
    let seed: u64 = std::env::var("JOBS_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let quiet = (secs / 10).clamp(5, 60);
    let plan = Plan {
        measuring,
        secs,
        seed,
        quiet,
        hold_kills: if secs >= 360 { 240 } else { quiet },
        baseline: if measuring { 10 } else { 1 },
        load_off: (quiet / 3).clamp(2, 20),
        jump_hold: Duration::from_secs(if measuring { 10 } else { 2 }),
    };
    let mut soak = Soak::new(plan);
    let passed = soak.run();
    drop(soak);
    if !passed {
        std::process::exit(1);
    }
}
