//! End-to-end benchmark of the `jobs` binary on generated job folders.
//!
//! ```text
//! cargo bench --bench cli                 # the issue's figures (N = 10,000) and scaling
//! JOBS_BENCH_SCALES=1000,10000 cargo bench --bench cli   # a quicker scaling run
//! ```
//!
//! For each N it writes N realistic job files, applies them, edits 10% of them (as a commit
//! would), then times `validate`, `plan`, `apply` (from the same ledger each time) and `list`
//! as separate processes of the release binary: medians of several runs, with the max RSS of
//! each process from `wait4`. In the same run it measures the floor: reading every file and
//! parsing it with serde-saphyr alone, in this process, on one thread and on all cores.

#[path = "../examples/generate_jobs.rs"]
mod generate_jobs;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const RUNS: usize = 7;

struct Sample {
    seconds: f64,
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
    Sample {
        seconds,
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
    for _ in 0..RUNS {
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
    for _ in 0..RUNS {
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
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_jobctl"));
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
        .map(|s| s.trim().parse().expect("JOBS_BENCH_SCALES: numbers"))
        .collect();
    println!(
        "| N | floor 1 thread | floor all cores | validate | plan | apply | list | max RSS (apply) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in scales {
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
