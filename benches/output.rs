//! Output storage: how much the ledger grows per byte of output a run prints, and how long
//! `jobctl logs` takes to print it back. Runs the release binary in temp dirs.
//!
//! ```text
//! cargo bench --bench output                                   # 1 MiB per kind, 5 runs
//! JOBS_BENCH_BIN=/path/to/old/jobctl cargo bench --bench output  # another build, for a before/after
//! ```
//!
//! Four kinds of output, each printed by `cat` from a file the bench writes: 1 MiB of base64
//! of random bytes (the least compressible text a job prints), 1 MiB of log lines as services
//! write them, both together (2 MiB), and 1 MiB of `seq`'s short lines. Growth is the ledger
//! file's size after a WAL checkpoint, after the run minus before it (free pages included),
//! over the run's captured `output_bytes`. `logs` is the wall time of `jobctl logs RUN >
//! /dev/null`; `tail` of `jobctl logs RUN --tail 10` (a binary without `--tail` shows `-`).
//! Medians of the runs.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke test on 64 KiB.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn base64_text(bytes: usize, rng: &mut fastrand::Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes + bytes / 76 + 1);
    let mut line = 0;
    while out.len() < bytes {
        out.push(ALPHABET[rng.usize(..64)] as char);
        line += 1;
        if line == 76 {
            out.push('\n');
            line = 0;
        }
    }
    out.push('\n');
    out
}

fn log_text(bytes: usize, rng: &mut fastrand::Rng) -> String {
    const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    const PATHS: &[&str] = &[
        "/api/v1/items",
        "/api/v1/users",
        "/healthz",
        "/api/v1/orders",
    ];
    let mut out = String::with_capacity(bytes + 200);
    let mut i = 0u64;
    while out.len() < bytes {
        let level = LEVELS[rng.usize(..LEVELS.len())];
        let path = PATHS[rng.usize(..PATHS.len())];
        out.push_str(&format!(
            "2030-06-12T12:{:02}:{:02}.{:03}Z {level} worker-{} request id={:016x} path={path}/{} status={} took={}ms\n",
            i / 60_000 % 60,
            i / 1000 % 60,
            i % 1000,
            rng.u8(..8),
            rng.u64(..),
            rng.u32(..100_000),
            if rng.u8(..20) == 0 { 500 } else { 200 },
            rng.u32(..900),
        ));
        i += 37;
    }
    out
}

/// Short lines, as counters and progress reports print them: `seq`'s output.
fn short_lines(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    let mut i = 1u64;
    while out.len() < bytes {
        out.push_str(&format!("{i}\n"));
        i += 1;
    }
    out
}

fn jobctl(bin: &Path, dir: &Path, args: &[&str]) -> (bool, f64) {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for var in [
        "JOBS_DIR",
        "JOBS_LEDGER",
        "JOBS_CONFIG",
        "JOBS_OUTPUT",
        "JOBS_SERVER",
    ] {
        cmd.env_remove(var);
    }
    let start = Instant::now();
    let ok = cmd.status().expect("running jobctl").success();
    (ok, start.elapsed().as_secs_f64())
}

fn ledger_bytes(path: &Path) -> u64 {
    let conn = rusqlite::Connection::open(path).expect("opening the ledger");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    std::fs::metadata(path).expect("the ledger").len()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Figures {
    captured: u64,
    ratio: f64,
    logs_s: f64,
    tail_s: Option<f64>,
}

fn measure(bin: &Path, data: &str) -> Figures {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir_all(dir.path().join("jobs.d")).unwrap();
    std::fs::write(dir.path().join("data.txt"), data).unwrap();
    std::fs::write(
        dir.path().join("jobs.d/talk.yaml"),
        "run: cat data.txt\noutput_limit: 16MiB\n",
    )
    .unwrap();
    assert!(jobctl(bin, dir.path(), &["apply"]).0, "apply failed");
    let ledger = dir.path().join(".jobs/ledger.db");
    let before = ledger_bytes(&ledger);
    assert!(
        jobctl(bin, dir.path(), &["run", "talk"]).0,
        "the run failed"
    );
    let after = ledger_bytes(&ledger);
    let captured: u64 = rusqlite::Connection::open(&ledger)
        .unwrap()
        .query_row("SELECT output_bytes FROM runs WHERE id = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64;
    assert_eq!(captured, data.len() as u64, "every byte captured");
    let logs_s = median(
        (0..5)
            .map(|_| jobctl(bin, dir.path(), &["logs", "1"]).1)
            .collect(),
    );
    let tail: Vec<(bool, f64)> = (0..5)
        .map(|_| jobctl(bin, dir.path(), &["logs", "1", "--tail", "10"]))
        .collect();
    let tail_s = tail
        .iter()
        .all(|(ok, _)| *ok)
        .then(|| median(tail.iter().map(|t| t.1).collect()));
    Figures {
        captured,
        ratio: (after - before) as f64 / captured as f64,
        logs_s,
        tail_s,
    }
}

fn main() {
    let bin = common::bench_bin();
    let measuring = std::env::args().any(|a| a == "--bench");
    let (size, reps) = if measuring {
        (1 << 20, 5)
    } else {
        (64 << 10, 1)
    };
    println!("output storage benchmark, binary {}", bin.display());
    println!("| output | captured | ledger growth / output | logs | logs --tail 10 |");
    println!("|---|---:|---:|---:|---:|");
    let mut rng = fastrand::Rng::with_seed(7);
    let random = base64_text(size, &mut rng);
    let text = log_text(size, &mut rng);
    let mix = format!("{random}{text}");
    let short = short_lines(size);
    for (name, data) in [
        ("base64 of random bytes", &random),
        ("log lines", &text),
        ("both", &mix),
        ("short lines (`seq`)", &short),
    ] {
        let runs: Vec<Figures> = (0..reps).map(|_| measure(&bin, data)).collect();
        let captured = runs[0].captured;
        let ratio = median(runs.iter().map(|f| f.ratio).collect());
        let logs = median(runs.iter().map(|f| f.logs_s).collect());
        let tail = runs
            .iter()
            .map(|f| f.tail_s)
            .collect::<Option<Vec<f64>>>()
            .map_or("-".to_string(), |t| format!("{:.3} s", median(t)));
        println!(
            "| {name} | {:.2} MiB | {ratio:.3}× | {logs:.3} s | {tail} |",
            captured as f64 / (1 << 20) as f64
        );
    }
}
