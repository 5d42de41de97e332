//! End-to-end benchmark of the `jobs` binary on generated job folders.
//!
//! ```text
//! cargo bench --bench cli                 # scaling (N = 1,000 to 100,000), then realistic files
//! JOBS_BENCH_SCALES=1000,10000 cargo bench --bench cli   # a quicker scaling run
//! JOBS_BENCH_SCALES= cargo bench --bench cli              # realistic files only
//! JOBS_BENCH_BASE=/path/to/old/jobctl cargo bench --bench cli   # before/after, same run
//! ```
//!
//! **Scaling.** For each N it writes N job files (`examples/generate_jobs.rs`), applies them,
//! edits 10% of them (as a commit would), then times `validate`, `plan`, `apply` (from the same
//! ledger each time) and `list` as separate processes of the release binary: medians of several
//! runs, with the max RSS of each process from `wait4`. In the same run it measures the floor:
//! reading every file and parsing it with serde-saphyr alone, in this process, on one thread
//! and on all cores.
//!
//! **Realistic files** (issue 14; `JOBS_BENCH_REALISTIC=N`, default 10,000, 0 to skip): N jobs
//! with `env`, `retry`, `timeout`, tags, cron with and without a time zone (twelve zones,
//! hundreds of distinct expressions), intervals, `at`, `after` and `depends_on`, and a commit
//! changing a tenth of them. It times `validate`, `plan`, `apply`, `list` and
//! `list --output json`, each against the floors: reading the files, `cat` of them, parsing
//! them (one thread, all cores) and starting the binary (`jobctl --version`).
//! `JOBS_BENCH_BASE` names a second binary measured on the same files in the same run, the two
//! interleaved run by run so that the machine's noise falls on both alike.
//! `JOBS_BENCH_BIN` replaces the binary under test; `JOBS_BENCH_RUNS` sets the runs per figure.

#[path = "common/mod.rs"]
mod common;

#[path = "../examples/generate_jobs.rs"]
mod generate_jobs;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const RUNS: usize = 7;

/// Runs per figure: [`RUNS`], or `JOBS_BENCH_RUNS`.
fn runs() -> usize {
    std::env::var("JOBS_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(RUNS)
}

struct Sample {
    seconds: f64,
    /// User and system CPU time of the child.
    cpu_seconds: f64,
    max_rss_kib: i64,
}

/// Runs the binary once in `dir`, returning wall time and the child's max RSS.
// The child is reaped by `wait4` below, which also gives its resource use.
#[allow(clippy::zombie_processes)]
fn run_once(bin: &Path, dir: &Path, args: &[&str]) -> Sample {
    let started = Instant::now();
    let child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning jobs");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers to locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    let code = libc::WEXITSTATUS(status);
    assert!(code == 0 || code == 2, "jobs {args:?} exited {code}");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Sample {
        seconds,
        cpu_seconds: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median time and max RSS over [`RUNS`] runs; `before` runs (untimed) before each one.
fn measure(bin: &Path, dir: &Path, args: &[&str], before: &dyn Fn()) -> (f64, i64) {
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..runs() {
        before();
        let s = run_once(bin, dir, args);
        times.push(s.seconds);
        rss = rss.max(s.max_rss_kib);
    }
    (median(times), rss)
}

/// The floor: read every job file and parse it with serde-saphyr (or toml) into a generic
/// value, without any of `jobs`' checks.
fn floor(dir: &Path, parallel: bool) -> f64 {
    use rayon::prelude::*;
    let files: Vec<PathBuf> = walk(dir);
    let parse = |p: &PathBuf| {
        let text = std::fs::read_to_string(p).unwrap();
        if p.extension().is_some_and(|e| e == "toml") {
            let _: toml::Value = toml::from_str(&text).unwrap();
        } else {
            let _: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        }
    };
    let mut times = Vec::new();
    for _ in 0..runs() {
        let started = Instant::now();
        if parallel {
            files.par_iter().for_each(parse);
        } else {
            files.iter().for_each(parse);
        }
        times.push(started.elapsed().as_secs_f64());
    }
    median(times)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn main() {
    let bin = common::bench_bin();
    // `cargo test --all-targets` runs this too, without `--bench`: then it is a quick smoke
    // test of the benchmark itself rather than a measurement.
    let measuring = std::env::args().any(|a| a == "--bench");
    let default_scales = if measuring {
        "1000,10000,100000"
    } else {
        "200"
    };
    let scales: Vec<usize> = std::env::var("JOBS_BENCH_SCALES")
        .unwrap_or_else(|_| default_scales.into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("JOBS_BENCH_SCALES: numbers"))
        .collect();
    if !scales.is_empty() {
        scaling(&bin, &scales);
    }
    let realistic_n: usize = std::env::var("JOBS_BENCH_REALISTIC")
        .ok()
        .map(|s| s.trim().parse().expect("JOBS_BENCH_REALISTIC: a number"))
        .unwrap_or(if measuring { 10_000 } else { 200 });
    if realistic_n > 0 {
        let mut bins = vec![("this build".to_string(), bin)];
        if let Some(base) = std::env::var_os("JOBS_BENCH_BASE") {
            bins.push(("base".to_string(), PathBuf::from(base)));
        }
        realistic_files(&bins, realistic_n);
    }
}

/// The scaling table: the original generator at each N.
fn scaling(bin: &Path, scales: &[usize]) {
    let bin = bin.to_path_buf();
    println!(
        "| N | floor 1 thread | floor all cores | validate | plan | apply | list | max RSS (apply) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in scales {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let jobs_d = root.join("jobs.d");
        generate_jobs::generate(&jobs_d, n, 0).unwrap();
        run_once(&bin, root, &["apply"]);
        let applied = root.join("applied.db");
        std::fs::copy(root.join(".jobs/ledger.db"), &applied).unwrap();
        // A commit that touches 10% of the jobs.
        let changed = n / 10;
        for i in 0..changed {
            let (file, text) = generate_jobs::job_file(i, true);
            std::fs::write(jobs_d.join(format!("team-{:02}", i % 100)).join(file), text).unwrap();
        }
        let restore = || {
            std::fs::copy(&applied, root.join(".jobs/ledger.db")).unwrap();
            for ext in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(root.join(format!(".jobs/ledger.db{ext}")));
            }
        };
        let nothing = || {};
        let floor_seq = floor(&jobs_d, false);
        let floor_par = floor(&jobs_d, true);
        let (validate, _) = measure(&bin, root, &["validate"], &nothing);
        let (plan, _) = measure(&bin, root, &["plan"], &restore);
        let (apply, apply_rss) = measure(&bin, root, &["apply"], &restore);
        restore();
        let (list, _) = measure(&bin, root, &["list"], &nothing);
        let ratio = |t: f64| format!("{:.3} s ({:.2}×)", t, t / floor_par);
        println!(
            "| {n} | {floor_seq:.3} s | {floor_par:.3} s | {} | {} | {} | {list:.3} s | {} MiB |",
            ratio(validate),
            ratio(plan),
            ratio(apply),
            apply_rss / 1024
        );
    }
}

/// A folder of realistic files applied by one binary, with the ledger saved after the apply
/// of the original files so that each timed run starts from it.
struct Setup {
    label: String,
    bin: PathBuf,
    root: tempfile::TempDir,
}

impl Setup {
    fn new(label: &str, bin: &Path, n: usize, changed: usize) -> Setup {
        let root = tempfile::tempdir().unwrap();
        let jobs_d = root.path().join("jobs.d");
        realistic::generate(&jobs_d, n);
        let out = Command::new(bin)
            .arg("apply")
            .current_dir(root.path())
            .output()
            .expect("spawning jobs");
        assert!(
            out.status.success(),
            "{label}: apply of the realistic files failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::copy(
            root.path().join(".jobs/ledger.db"),
            root.path().join("applied.db"),
        )
        .unwrap();
        for (edit, i) in realistic::changed(n, changed).enumerate() {
            realistic::write(&jobs_d, i, 1 + edit);
        }
        let setup = Setup {
            label: label.to_string(),
            bin: bin.to_path_buf(),
            root,
        };
        // The plan must see exactly the commit's changes, or the figures mean something else.
        let out = Command::new(bin)
            .args(["plan", "--output", "json"])
            .current_dir(setup.root.path())
            .output()
            .expect("spawning jobs");
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{label}: plan -o json: {e}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(plan["summary"]["change"], changed, "{label}: plan summary");
        assert_eq!(plan["summary"]["add"], 0, "{label}: plan summary");
        setup
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    /// Puts the ledger back as it was after applying the original files.
    fn restore(&self) {
        let root = self.path();
        std::fs::copy(root.join("applied.db"), root.join(".jobs/ledger.db")).unwrap();
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(root.join(format!(".jobs/ledger.db{ext}")));
        }
    }
}

/// Median wall and CPU time of `args` for each setup, runs interleaved across setups;
/// `restore` puts the applied ledger back before each run.
fn measure_each(setups: &[Setup], args: &[&str], restore: bool) -> Vec<(f64, f64)> {
    let mut times = vec![(Vec::new(), Vec::new()); setups.len()];
    for _ in 0..runs() {
        for (s, (wall, cpu)) in setups.iter().zip(&mut times) {
            if restore {
                s.restore();
            }
            let sample = run_once(&s.bin, s.path(), args);
            wall.push(sample.seconds);
            cpu.push(sample.cpu_seconds);
        }
    }
    times
        .into_iter()
        .map(|(wall, cpu)| (median(wall), median(cpu)))
        .collect()
}

/// Median wall time of a closure over the runs.
fn median_of(f: impl Fn()) -> f64 {
    median(
        (0..runs())
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// The realistic-files table: each binary's figures against the floors, in one run.
fn realistic_files(bins: &[(String, PathBuf)], n: usize) {
    let changed = n / 10;
    let setups: Vec<Setup> = bins
        .iter()
        .map(|(label, bin)| Setup::new(label, bin, n, changed))
        .collect();
    let jobs_d = setups[0].path().join("jobs.d");
    let files = walk(&jobs_d);
    let bytes: usize = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len() as usize)
        .sum();
    let read = median_of(|| {
        for f in &files {
            std::hint::black_box(std::fs::read(f).unwrap());
        }
    });
    let cat = median_of(|| {
        let status = Command::new("sh")
            .args(["-c", "find jobs.d -type f -exec cat {} + > /dev/null"])
            .current_dir(setups[0].path())
            .status()
            .unwrap();
        assert!(status.success());
    });
    let parse_seq = floor(&jobs_d, false);
    let parse_par = floor(&jobs_d, true);
    let start = measure_each(&setups[..1], &["--version"], false)[0].0;
    println!(
        "\nRealistic files: {n} jobs in {} files ({:.1} MiB), a commit changing {changed}; \
         medians of {} runs",
        files.len(),
        bytes as f64 / (1024.0 * 1024.0),
        runs()
    );
    println!(
        "Floors: read {read:.3} s, `cat` {cat:.3} s, parse 1 thread {parse_seq:.3} s, \
         parse all cores {parse_par:.3} s, `jobctl --version` {start:.3} s"
    );
    let validate = measure_each(&setups, &["validate"], false);
    let plan = measure_each(&setups, &["plan"], true);
    let apply = measure_each(&setups, &["apply"], true);
    for s in &setups {
        s.restore();
    }
    let list = measure_each(&setups, &["list"], false);
    let list_json = measure_each(&setups, &["list", "--output", "json"], false);
    let ratio =
        |(wall, cpu): (f64, f64)| format!("{wall:.3} s ({:.2}×; CPU {cpu:.3} s)", wall / parse_par);
    println!("\n| build | validate | plan ({changed} changed) | apply | list | list -o json |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (k, s) in setups.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            s.label,
            ratio(validate[k]),
            ratio(plan[k]),
            ratio(apply[k]),
            ratio(list[k]),
            ratio(list_json[k]),
        );
    }
    println!("(wall time, × the all-cores parse floor of {parse_par:.3} s; CPU is user + system)");
}

#[path = "common/realistic.rs"]
mod realistic;
