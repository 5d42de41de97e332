//! Following a git repository (issue 17): what an idle `jobctl serve --git-url` costs between
//! commits, and how soon a commit changing 1,000 of 10,000 realistic job files is applied after
//! its push webhook, against `jobctl plan` of the same change and the file-reading floor,
//! measured in the same run.
//!
//! `cargo bench --bench git` (release). `JOBS_BENCH_JOBS` sets the number of jobs (10,000),
//! `JOBS_BENCH_IDLE` the seconds each idle daemon is watched (60), `JOBS_BENCH_ROUNDS` the
//! pushed commits (5). Without `--bench` (as `cargo test --all-targets` runs it) it is a
//! seconds-long smoke check: 50 jobs, 1 s idle, one commit.

#[path = "common/mod.rs"]
mod common;
#[path = "common/realistic.rs"]
mod realistic;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};

const SECRET: &str = "bench-secret";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU seconds (user + system) the process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the state.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // Children git ran and waited for: cutime and cstime.
    let children: f64 = fields[13].parse::<f64>().unwrap() + fields[14].parse::<f64>().unwrap();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks + children) / hz
}

/// A daemon with its JSON log read line by line.
struct Daemon {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Daemon {
    fn start(bin: &Path, root: &Path, args: &[&str]) -> Daemon {
        let mut command = Command::new(bin);
        command
            .current_dir(root)
            .arg("serve")
            .args(["--log-format", "json", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("HOOK_SECRET", SECRET)
            .env(
                "JOBS_LOG",
                std::env::var("JOBS_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("JOBS_NOW")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "message": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines: rx }
    }

    /// Waits for a log line containing `text`; the line and when it was read.
    fn wait_for(&self, text: &str, limit: Duration) -> (serde_json::Value, Instant) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the daemon never logged {text:?}"));
            if line["message"].as_str().is_some_and(|m| m.contains(text)) {
                return (line, Instant::now());
            }
        }
    }

    fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn push_hook(url: &str) {
    let body = br#"{"ref":"refs/heads/main"}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let reply = ureq::post(&format!("{url}/v1/hooks/git"))
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", &format!("sha256={hex}"))
        .send(&body[..])
        .unwrap();
    assert_eq!(reply.status().as_u16(), 202);
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin = common::bench_bin();
    // Without `--bench` (as `cargo test --all-targets` runs it): a seconds-long smoke check.
    let full = std::env::args().any(|a| a == "--bench");
    let (jobs, idle, rounds) = if full { (10_000, 60, 5) } else { (50, 1, 1) };
    let n = env_or("JOBS_BENCH_JOBS", jobs) as usize;
    let idle = Duration::from_secs(env_or("JOBS_BENCH_IDLE", idle));
    let rounds = env_or("JOBS_BENCH_ROUNDS", rounds) as usize;
    let changed = n / 10;
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let bare = root.join("remote.git");
    let work = root.join("work");
    std::fs::create_dir_all(&bare).unwrap();
    git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    realistic::generate(&work.join("jobs.d"), n);
    git(&work, &["add", "--all"]);
    git(&work, &["commit", "--quiet", "-m", "jobs"]);
    git(&work, &["push", "--quiet", "origin", "HEAD:main"]);
    println!(
        "git following: {n} realistic jobs, commits changing {changed}; {} on {}",
        bin.display(),
        common::git_describe()
    );

    // The floor: reading every file once.
    let files = files_under(&work.join("jobs.d"));
    let read = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for f in &files {
                    std::hint::black_box(std::fs::read(f).unwrap());
                }
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );

    // The daemon following the repository; the first apply is a clone and 10,000 adds.
    let serve_dir = root.join("serve");
    std::fs::create_dir_all(&serve_dir).unwrap();
    std::fs::write(
        serve_dir.join("jobs.toml"),
        format!(
            "ledger = \"ledger.db\"\n[git]\nurl = \"{}\"\ninterval = \"5s\"\nsecret_env = \"HOOK_SECRET\"\n",
            bare.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let daemon = Daemon::start(&bin, &serve_dir, &[]);
    let (line, _) = daemon.wait_for("jobs serve started", Duration::from_secs(60));
    let url = line["url"].as_str().unwrap().to_string();
    daemon.wait_for("scheduler started", Duration::from_secs(300));
    let first = started.elapsed().as_secs_f64();
    daemon.drain();

    // Idle: the daemon's CPU (its git children included) over `idle`, fetching every 5 s,
    // against a daemon serving the same 10,000 jobs from a folder, watched as long.
    let pid = daemon.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(idle);
    let git_idle = cpu_seconds(pid) - before;
    let fetches = (idle.as_secs() / 5).max(1);
    let folder_root = root.join("folder");
    std::fs::create_dir_all(&folder_root).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(work.join("jobs.d"))
        .arg(&folder_root)
        .status()
        .unwrap();
    assert!(status.success());
    let folder = Daemon::start(
        &bin,
        &folder_root,
        &["--dir", "jobs.d", "--ledger", "ledger.db"],
    );
    folder.wait_for("scheduler started", Duration::from_secs(300));
    let fpid = folder.child.id();
    let before = cpu_seconds(fpid);
    std::thread::sleep(idle);
    let folder_idle = cpu_seconds(fpid) - before;
    drop(folder);

    // `jobctl plan` of the same change, on a ledger with the first commit applied.
    let plan_ledger = root.join("plan.db");
    let jobctl = |args: &[&str]| {
        let out = Command::new(&bin)
            .arg("--dir")
            .arg(work.join("jobs.d"))
            .arg("--ledger")
            .arg(&plan_ledger)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() || out.status.code() == Some(2),
            "{out:?}"
        );
    };
    jobctl(&["apply"]);

    // Commits pushed, each changing `changed` files; from the webhook to the apply logged.
    let mut pushed_to_applied = Vec::new();
    let mut daemon_took = Vec::new();
    let mut plans = Vec::new();
    for round in 1..=rounds {
        for i in realistic::changed(n, changed) {
            realistic::write(&work.join("jobs.d"), i, round);
        }
        let t = Instant::now();
        jobctl(&["plan"]);
        plans.push(t.elapsed().as_secs_f64());
        git(&work, &["add", "--all"]);
        git(
            &work,
            &["commit", "--quiet", "-m", &format!("edit {round}")],
        );
        git(&work, &["push", "--quiet", "origin", "HEAD:main"]);
        daemon.drain();
        let t = Instant::now();
        push_hook(&url);
        if std::env::var("JOBS_BENCH_LOG").is_ok() {
            let (fetch, _) = daemon.wait_for("git fetch", Duration::from_secs(60));
            let (phases, _) = daemon.wait_for("git sync phases", Duration::from_secs(60));
            println!("round {round}: fetch {} {phases}", fetch["fetch_ms"]);
        }
        let (line, at) = daemon.wait_for("reconciled: applied", Duration::from_secs(60));
        pushed_to_applied.push(at.duration_since(t).as_secs_f64());
        daemon_took.push(line["took_ms"].as_f64().unwrap_or(0.0) / 1000.0);
        // The plan's ledger follows the same commits.
        jobctl(&["apply"]);
    }
    let applied = median(pushed_to_applied.clone());
    let plan = median(plans.clone());
    println!("\nfirst start (clone, check out, read and apply {n} jobs): {first:.2} s");
    println!(
        "idle over {} s: following git (a fetch every 5 s, {fetches} fetches) {:.0} ms of CPU ({:.2}% of one core, {:.1} ms a fetch); \
         the same jobs from a folder {:.0} ms ({:.2}%)",
        idle.as_secs(),
        git_idle * 1000.0,
        git_idle * 100.0 / idle.as_secs_f64(),
        (git_idle - folder_idle).max(0.0) * 1000.0 / fetches as f64,
        folder_idle * 1000.0,
        folder_idle * 100.0 / idle.as_secs_f64()
    );
    println!(
        "a commit of {changed} changed files, push webhook to applied: median {applied:.3} s of {rounds} ({}), \
         the daemon's own apply {:.3} s",
        pushed_to_applied
            .iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        median(daemon_took)
    );
    println!(
        "same change, `jobctl plan`: median {plan:.3} s (budget 0.5 s); reading the {} files: {read:.3} s; \
         applied = {:.2}× plan, {:.1}× the read floor",
        files.len(),
        applied / plan,
        applied / read
    );
}
