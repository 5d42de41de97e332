//! Benchmark of dependency hand-offs in `jobs serve`, run as the release binary in temp dirs.
//!
//! ```text
//! cargo bench --bench workflows   # a chain of 100 jobs, a fan-in of 1,000 into one
//! JOBS_BENCH_BIN=/path/to/old/jobctl cargo bench --bench workflows   # another build
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke test on small sizes.
//!
//! 1. **Chain**: jobs `c000 → c001 → … → c099`, each `true`, each `schedule: {after: [prev]}`
//!    but the first (manual). `jobs trigger c000`; the figure is the first run's creation to the
//!    last run's end, from the ledger's stamps. Baseline in the same run: spawning and waiting
//!    for `true` 100 times back to back, no daemon at all (the floor of any chain of processes).
//! 2. **Fan-in**: 1,000 manual upstream jobs and one `schedule: {after: [all of them]}`. Each
//!    round writes 1,000 pending runs of the upstream jobs (as `jobs trigger` does) and wakes
//!    the daemon; the figure is from the last upstream run's end to the sink's run: its
//!    creation (the decision, written in the transaction of that end) and its process start
//!    (decision, claim and spawn).
//!
//! Stamps have millisecond resolution. Temp dirs follow `TMPDIR`.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, wait_count};
use jiff::Timestamp;
use rusqlite::{Connection, params};

struct Sizes {
    chain: usize,
    chain_reps: usize,
    fan_in: usize,
    fan_in_reps: usize,
}

fn jobs(bin: &Path, root: &Path, args: &[&str]) {
    let out = common::jobctl_command(bin, root)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jobs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ledger(root: &Path) -> Connection {
    let conn = Connection::open(root.join("ledger.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn ms_between(from: &str, to: &str) -> f64 {
    let (a, b): (Timestamp, Timestamp) = (from.parse().unwrap(), to.parse().unwrap());
    b.duration_since(a).as_secs_f64() * 1000.0
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn chain(bin: &Path, sizes: &Sizes) -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("jobs.d")).unwrap();
    for i in 0..sizes.chain {
        let schedule = match i {
            0 => String::new(),
            _ => format!("schedule: {{after: [c{:03}]}}\n", i - 1),
        };
        std::fs::write(
            root.join(format!("jobs.d/c{i:03}.yaml")),
            format!("{schedule}command: [true]\n"),
        )
        .unwrap();
    }
    jobs(bin, root, &["apply"]);
    let mut daemon = Daemon::start(bin, root);
    let conn = ledger(root);
    let last = format!("c{:03}", sizes.chain - 1);
    let mut chain_ms = Vec::new();
    for rep in 1..=sizes.chain_reps {
        jobs(bin, root, &["trigger", "c000"]);
        wait_count(
            &mut daemon,
            &conn,
            &format!("SELECT count(*) FROM runs WHERE job = '{last}' AND state = 'succeeded'"),
            rep as i64,
        );
        let (first, end): (String, String) = conn
            .query_row(
                "SELECT (SELECT created_at FROM runs WHERE job = 'c000' ORDER BY id DESC LIMIT 1),
                        (SELECT finished_at FROM runs WHERE job = ?1 ORDER BY id DESC LIMIT 1)",
                [&last],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        chain_ms.push(ms_between(&first, &end));
    }
    let failed: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs WHERE state <> 'succeeded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 0, "every run of the chain succeeds");
    // The floor: the same number of processes, one after another, no daemon.
    let mut floor = Vec::new();
    for _ in 0..sizes.chain_reps {
        let t = Instant::now();
        for _ in 0..sizes.chain {
            Command::new("true").status().unwrap();
        }
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (chain_ms, floor)
}

fn fan_in(bin: &Path, sizes: &Sizes) -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("jobs.d")).unwrap();
    let names: Vec<String> = (0..sizes.fan_in).map(|i| format!("u{i:04}")).collect();
    for name in &names {
        std::fs::write(
            root.join(format!("jobs.d/{name}.yaml")),
            "command: [true]\n",
        )
        .unwrap();
    }
    std::fs::write(
        root.join("jobs.d/sink.yaml"),
        format!(
            "schedule: {{after: [{}]}}\ncommand: [true]\n",
            names.join(", ")
        ),
    )
    .unwrap();
    jobs(bin, root, &["apply"]);
    let mut daemon = Daemon::start(bin, root);
    let conn = ledger(root);
    wait_count(
        &mut daemon,
        &conn,
        "SELECT count(*) FROM leases WHERE released_at IS NULL",
        1,
    );
    let (mut decided, mut started) = (Vec::new(), Vec::new());
    for rep in 1..=sizes.fan_in_reps {
        let now = Timestamp::now().to_string();
        conn.execute(
            "INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at)
             SELECT name, revision_id, 'manual', ?1, 'pending', ?1 FROM jobs WHERE name LIKE 'u%'",
            params![now],
        )
        .unwrap();
        std::fs::write(root.join("ledger.db.wake"), &now).unwrap();
        wait_count(
            &mut daemon,
            &conn,
            "SELECT count(*) FROM runs WHERE job = 'sink' AND state = 'succeeded'",
            rep as i64,
        );
        let (last_end, created, spawned): (String, String, String) = conn
            .query_row(
                "SELECT (SELECT max(finished_at) FROM runs WHERE job LIKE 'u%'),
                        r.created_at,
                        (SELECT at FROM run_events WHERE run_id = r.id AND kind = 'started')
                 FROM runs r WHERE r.job = 'sink' ORDER BY r.id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        decided.push(ms_between(&last_end, &created));
        started.push(ms_between(&last_end, &spawned));
    }
    (decided, started)
}

fn main() {
    let bin = common::bench_bin();
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes = if measuring {
        Sizes {
            chain: 100,
            chain_reps: 7,
            fan_in: 1000,
            fan_in_reps: 5,
        }
    } else {
        Sizes {
            chain: 5,
            chain_reps: 2,
            fan_in: 20,
            fan_in_reps: 2,
        }
    };
    println!(
        "workflows benchmark ({}), {} CPUs",
        if measuring { "full" } else { "smoke" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (chain_ms, floor) = chain(&bin, &sizes);
    let (decided, started) = fan_in(&bin, &sizes);
    let ms = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "1. chain of {} jobs, trigger to last end: median {:.0} ms (runs: {}) | target < 1000 ms | \
         baseline, {} sequential spawns of `true`: median {:.0} ms (runs: {})",
        sizes.chain,
        median(&chain_ms),
        ms(&chain_ms),
        sizes.chain,
        median(&floor),
        ms(&floor),
    );
    println!(
        "2. fan-in of {} into one, last upstream end to the decision (sink run created): median {:.0} ms (runs: {}) | target < 50 ms; \
         to the sink's process start: median {:.0} ms (runs: {})",
        sizes.fan_in,
        median(&decided),
        ms(&decided),
        median(&started),
        ms(&started),
    );
}
