//! Benchmark of `http` actions (issue 18) in `jobs serve`, run as the release binary in a temp
//! dir, against a local HTTP server made here.
//!
//! ```text
//! cargo bench --bench actions   # 2,000 runs of each job, 5 rounds, medians
//! JOBS_BENCH_BIN=/path/to/old/jobctl cargo bench --bench actions   # another build
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke test on small sizes.
//!
//! 1. **Runs per second.** Two jobs, `http: {url: LOCAL}` and `command: [true]`. Each round
//!    writes N pending runs of one of them into the ledger (as `jobs trigger` does) and wakes
//!    the daemon; the figure is N over the time from the first run's creation to the last
//!    run's end (the ledger's stamps), every run recorded as usual (its start, output, end).
//!    The jobs alternate round by round, so both see the same machine.
//! 2. **Overhead per run over the raw request.** The floor, wrk-style, in the same run: the
//!    same server hammered by 16 keep-alive connections (the daemon's default
//!    `max_concurrent_runs`) with a client of the same kind (reqwest) for N requests, as
//!    requests per second; the overhead per run is 1/runs-per-second minus 1/requests-per-
//!    second, at the same concurrency. With `wrk` installed (`apt-get install wrk`), the same
//!    floor measured by it too (`wrk -t1 -c16 -d3s`).
//!
//! Stamps have millisecond resolution. Temp dirs follow `TMPDIR`.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, wait_count};
use jiff::Timestamp;
use rusqlite::{Connection, params};

/// The daemon's default `max_concurrent_runs`: the raw floor uses as many connections.
const CONCURRENCY: usize = 16;

/// A local HTTP server answering every GET `ok`, on a runtime of its own; returns its port.
fn local_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok\n" }));
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}

/// The floor: `n` GETs over `CONCURRENCY` keep-alive connections; requests per second.
fn raw_requests_per_second(port: u16, n: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let client = jobs::runner::client(&[]).unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..CONCURRENCY {
            let (client, url) = (client.clone(), url.clone());
            let share = n / CONCURRENCY + usize::from(w < n % CONCURRENCY);
            workers.spawn(async move {
                for _ in 0..share {
                    let r = client.get(&url).send().await.unwrap();
                    assert!(r.status().is_success());
                    r.bytes().await.unwrap();
                }
            });
        }
        while workers.join_next().await.is_some() {}
        n as f64 / started.elapsed().as_secs_f64()
    })
}

/// The same floor measured by `wrk` (1 thread, `CONCURRENCY` connections, 3 s), when it is
/// installed (Debian's `wrk`): requests per second.
fn wrk_requests_per_second(port: u16) -> Option<f64> {
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{CONCURRENCY}"), "-d3s"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One round: `n` pending runs of `job`, written at once; runs per second through their ends.
fn round(daemon: &mut Daemon, root: &Path, conn: &Connection, job: &str, n: usize) -> f64 {
    let before: i64 = conn
        .query_row("SELECT coalesce(max(id), 0) FROM runs", [], |r| r.get(0))
        .unwrap();
    let now = Timestamp::now().to_string();
    let tx = conn.unchecked_transaction().unwrap();
    for _ in 0..n {
        tx.execute(
            "INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at)
             SELECT name, revision_id, 'manual', ?1, 'pending', ?1 FROM jobs WHERE name = ?2",
            params![now, job],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    std::fs::write(root.join("ledger.db.wake"), &now).unwrap();
    wait_count(
        daemon,
        conn,
        &format!(
            "SELECT count(*) FROM runs WHERE id > {before} AND state IN ('succeeded', 'failed', 'timed_out', 'cancelled')"
        ),
        n as i64,
    );
    let (failed, first, last): (i64, String, String) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE state <> 'succeeded'), min(created_at), max(finished_at)
             FROM runs WHERE id > ?1",
            [before],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        failed,
        0,
        "every run of {job} succeeds:\n{}",
        daemon.log_tail()
    );
    let (a, b): (Timestamp, Timestamp) = (first.parse().unwrap(), last.parse().unwrap());
    n as f64 / b.duration_since(a).as_secs_f64()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bin = common::bench_bin();
    let measuring = std::env::args().any(|a| a == "--bench");
    let (n, reps) = if measuring { (2000, 5) } else { (20, 1) };
    println!(
        "actions benchmark ({}), {} CPUs, {} at {}",
        if measuring { "full" } else { "smoke" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bin.display(),
        common::git_describe(),
    );
    let port = local_server();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("jobs.d")).unwrap();
    std::fs::write(
        root.join("jobs.d/probe.yaml"),
        format!("http: {{url: 'http://127.0.0.1:{port}/'}}\n"),
    )
    .unwrap();
    std::fs::write(root.join("jobs.d/process.yaml"), "command: [true]\n").unwrap();
    let out = common::jobctl_command(&bin, root)
        .arg("apply")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut daemon = Daemon::start(&bin, root);
    let conn = Connection::open(root.join("ledger.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    wait_count(
        &mut daemon,
        &conn,
        "SELECT count(*) FROM leases WHERE released_at IS NULL",
        1,
    );
    // A warm-up round each (the client's first connections, the page cache).
    round(&mut daemon, root, &conn, "probe", n / 10 + 1);
    round(&mut daemon, root, &conn, "process", n / 10 + 1);
    let (mut http, mut process, mut raw, mut wrk) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        http.push(round(&mut daemon, root, &conn, "probe", n));
        process.push(round(&mut daemon, root, &conn, "process", n));
        raw.push(raw_requests_per_second(port, n));
        if measuring {
            wrk.extend(wrk_requests_per_second(port));
        }
    }
    let list = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (h, p, r) = (median(&http), median(&process), median(&raw));
    println!(
        "1. runs/s, {n} runs a round: http job median {h:.0} (rounds: {}) | command: [true] median {p:.0} (rounds: {}) | ratio {:.2}",
        list(&http),
        list(&process),
        h / p
    );
    println!(
        "2. raw requests/s, {CONCURRENCY} keep-alive connections: median {r:.0} (rounds: {}) | overhead per http run over the raw request: {:.2} ms ({:.2} ms a run, {:.3} ms a request)",
        list(&raw),
        1000.0 / h - 1000.0 / r,
        1000.0 / h,
        1000.0 / r,
    );
    if !wrk.is_empty() {
        let w = median(&wrk);
        println!(
            "3. wrk -t1 -c{CONCURRENCY} -d3s on the same server: median {w:.0} requests/s (rounds: {}) | overhead per http run over it: {:.2} ms",
            list(&wrk),
            1000.0 / h - 1000.0 / w,
        );
    }
}
