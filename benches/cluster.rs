//! The PostgreSQL ledger and the cluster, measured: `cargo bench --bench cluster` (release
//! build, about 10 minutes; needs PostgreSQL's server programs and `wrk`). Without `--bench`
//! (as `cargo test --all-targets` runs it) it is a quick smoke check of the bench itself.
//!
//! One run, one machine, one PostgreSQL server started by the bench (`initdb` in a temp dir,
//! `fsync` on, as in production), and in the same run:
//! 1. **Throughput**: M pending runs of `true` written to the ledger, run by one node on
//!    SQLite, one node on PostgreSQL and three nodes on PostgreSQL (16 at a time per node);
//!    runs/s = M over the span from the first start to the last end (ledger stamps). Median
//!    of 3.
//! 2. **Fire latency**: K jobs due at one instant (`at`), fired by the leader and run by the
//!    nodes; latency = each run's `started` event minus its slot. p50 and p99 over 3 rounds.
//! 3. **Failover**: three nodes, a job every second; the leader is killed (SIGKILL): the time
//!    until another node holds the lease, and until the next tick is recorded. Median of 10.
//! 4. **Lost-node recovery**: a long run on a follower, the follower killed: the time until
//!    its run is ended `failed` ("node lost"), and until its retry runs on the other node.
//!    Median of 10.
//! 5. **API**: `GET /v1/runs/{id}` (random ids) with wrk, 8 connections, 10 s, on a node
//!    serving SQLite and one serving PostgreSQL.
//! 6. **Baseline**: `pgbench`'s simple-update TPS (`-N`) on the same server, 1 and 16
//!    clients: what one commit costs there.

#[path = "common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;

/// The API's admin token.
const TOKEN: &str = "cluster-bench-token-0123456789";

/// Where the clocks of the fire-latency daemons start.
const T0: &str = "2030-06-12T12:00:00Z";

struct Sizes {
    runs: usize,
    reps: usize,
    due: usize,
    trials: usize,
    api_seconds: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A project folder and its ledger (a SQLite file or a PostgreSQL database of its own).
struct Project {
    dir: tempfile::TempDir,
    ledger: String,
    backend: Backend,
}

impl Project {
    fn new(backend: Backend) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let ledger = match backend {
            Backend::Sqlite => dir.path().join("ledger.db").display().to_string(),
            Backend::Postgres => pg::database(),
        };
        std::fs::create_dir_all(dir.path().join("jobs.d")).unwrap();
        Project {
            dir,
            ledger,
            backend,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.root().join("jobs.d").join(name), text).unwrap();
    }

    fn command(&self, bin: &Path, now: Option<&str>) -> Command {
        let mut c = Command::new(bin);
        c.arg("--dir")
            .arg(self.root().join("jobs.d"))
            .arg("--ledger")
            .arg(&self.ledger)
            .current_dir(self.root())
            .env("NO_COLOR", "1");
        for var in [
            "JOBS_NOW",
            "JOBS_CONFIG",
            "JOBS_DIR",
            "JOBS_LEDGER",
            "JOBS_LOG",
        ] {
            c.env_remove(var);
        }
        if let Some(now) = now {
            c.env("JOBS_NOW", now);
        }
        c
    }

    /// Runs statements that return nothing.
    fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Postgres => {
                pg::psql(&self.ledger, sql);
            }
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&self.ledger).unwrap();
                conn.execute_batch(sql).unwrap();
            }
        }
    }

    fn jobctl(&self, bin: &Path, now: Option<&str>, args: &[&str]) -> String {
        let out = self.command(bin, now).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "jobctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The first column of the first row of `sql`, as text.
    fn sql(&self, sql: &str) -> String {
        match self.backend {
            Backend::Postgres => pg::psql(&self.ledger, sql),
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&self.ledger).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.query_row(sql, [], |r| {
                    Ok(match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(f) => f.to_string(),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    })
                })
                .unwrap_or_default()
            }
        }
    }

    fn count(&self, sql: &str) -> i64 {
        self.sql(sql).parse().unwrap_or(0)
    }

    /// `jobctl serve --node NAME` with its API on a free port, quiet.
    fn serve(&self, bin: &Path, name: &str, now: Option<&str>, extra: &[&str]) -> Child {
        self.command(bin, now)
            .args(["serve", "--node", name, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("JOBS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Waits until node `name` has joined (its row, alive, not lost).
    fn joined(&self, name: &str) {
        self.until(
            &format!(
                "SELECT count(*) FROM nodes WHERE name = '{name}' AND stopped_at IS NULL
                 AND lost_at IS NULL"
            ),
            Duration::from_secs(30),
            |v| v == "1",
        );
    }

    fn until(&self, sql: &str, limit: Duration, done: impl Fn(&str) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            if done(&self.sql(sql)) {
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "{sql}: not done in {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn stop(mut child: Child) {
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

fn stamp(text: &str) -> Timestamp {
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writes `n` pending runs of job `job` into the ledger, as `jobctl trigger` would.
fn queue_runs(p: &Project, job: &str, n: usize) {
    p.exec(&format!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n})
         INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at, attempt)
         SELECT '{job}', (SELECT revision_id FROM jobs WHERE name = '{job}'), 'manual',
                '2030-06-12T12:00:00.000Z', 'pending', '2030-06-12T12:00:00.000Z', 1 FROM s"
    ));
}

/// 1: runs/s of `true` on `nodes` nodes.
fn throughput(bin: &Path, backend: Backend, nodes: usize, m: usize) -> (f64, Project) {
    let p = Project::new(backend);
    // Every run kept (the API phase reads them by id; retention would keep 1,000).
    p.write(
        "t.yaml",
        "command: [\"true\"]\nconcurrency: allow\nhistory: {keep_runs: 1000000}\n",
    );
    p.jobctl(bin, None, &["apply"]);
    queue_runs(&p, "t", m);
    let children: Vec<Child> = (0..nodes)
        .map(|i| p.serve(bin, &format!("n{i}"), None, &[]))
        .collect();
    p.until(
        "SELECT count(*) FROM runs WHERE state = 'succeeded'",
        Duration::from_secs(600),
        |v| v.parse::<usize>().unwrap_or(0) >= m,
    );
    let first = stamp(&p.sql("SELECT min(started_at) FROM runs"));
    let last = stamp(&p.sql("SELECT max(finished_at) FROM runs"));
    for c in children {
        stop(c);
    }
    let span = last.duration_since(first).as_secs_f64();
    (m as f64 / span, p)
}

/// 2: fire latencies (ms) of `due` jobs due at once, on `nodes` nodes.
fn fire_latency(bin: &Path, backend: Backend, nodes: usize, due: usize) -> Vec<f64> {
    let p = Project::new(backend);
    let at: Timestamp = T0.parse().unwrap();
    let due_at = at.checked_add(jiff::SignedDuration::from_secs(6)).unwrap();
    for i in 0..due {
        p.write(
            &format!("f{i}.yaml"),
            &format!("schedule: {{at: \"{due_at}\"}}\ncommand: [\"true\"]\n"),
        );
    }
    p.jobctl(bin, Some(T0), &["apply"]);
    // Every node's clock starts at T0 as it starts: they start together.
    let children: Vec<Child> = (0..nodes)
        .map(|i| p.serve(bin, &format!("n{i}"), Some(T0), &[]))
        .collect();
    p.until(
        "SELECT count(*) FROM runs WHERE state = 'succeeded'",
        Duration::from_secs(120),
        |v| v.parse::<usize>().unwrap_or(0) >= due,
    );
    // `group_concat`: SQLite's, and the ledger's own aggregate on PostgreSQL.
    let rows = p.sql(
        "SELECT group_concat(e.at || ' ' || r.slot, ',') FROM runs r
         JOIN run_events e ON e.run_id = r.id AND e.kind = 'started'",
    );
    for c in children {
        stop(c);
    }
    rows.split(',')
        .map(|pair| {
            let (started, slot) = pair.split_once(' ').unwrap();
            stamp(started).duration_since(stamp(slot)).as_secs_f64() * 1000.0
        })
        .collect()
}

/// 3: leader failover, `trials` times: (until the lease is taken, until the next tick) in s.
fn failover(bin: &Path, trials: usize) -> (Vec<f64>, Vec<f64>) {
    let p = Project::new(Backend::Postgres);
    p.write("tick.yaml", "schedule: {every: 1s}\ncommand: [\"true\"]\n");
    p.jobctl(bin, None, &["apply"]);
    let names = ["a", "b", "c"];
    let mut nodes: Vec<Child> = Vec::new();
    for name in names {
        nodes.push(p.serve(bin, name, None, &[]));
        p.joined(name);
    }
    let (mut lease, mut tick) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        p.until(
            "SELECT count(*) FROM runs WHERE job = 'tick' AND state = 'succeeded'",
            Duration::from_secs(30),
            |v| v.parse::<i64>().unwrap_or(0) > 0,
        );
        let holder = p.sql("SELECT holder || ' ' || epoch FROM leases WHERE name = 'daemon'");
        let (name, term) = holder.split_once(' ').unwrap();
        let i = names.iter().position(|n| *n == name).unwrap();
        let ticks = p.count("SELECT count(*) FROM runs WHERE job = 'tick'");
        nodes[i].kill().unwrap();
        let _ = nodes[i].wait();
        let killed = Instant::now();
        p.until(
            "SELECT epoch FROM leases WHERE name = 'daemon'",
            Duration::from_secs(30),
            |v| v != term,
        );
        lease.push(killed.elapsed().as_secs_f64());
        // The dead leader may have recorded a tick as it died: the next one is the new
        // leader's.
        p.until(
            "SELECT count(*) FROM runs WHERE job = 'tick'",
            Duration::from_secs(30),
            |v| v.parse::<i64>().unwrap_or(0) > ticks + 1,
        );
        tick.push(killed.elapsed().as_secs_f64());
        nodes[i] = p.serve(bin, name, None, &[]);
        p.joined(name);
    }
    for c in nodes {
        stop(c);
    }
    (lease, tick)
}

/// 4: lost-node recovery, `trials` times: (until the run is ended "node lost", until its
/// retry runs) in s.
fn recovery(bin: &Path, trials: usize) -> (Vec<f64>, Vec<f64>) {
    let p = Project::new(Backend::Postgres);
    p.write(
        "long.yaml",
        "run: sleep 600\nruns_on: [worker]\nretry: {attempts: 100, backoff: 1s}\nconcurrency: allow\n",
    );
    p.jobctl(bin, None, &["apply"]);
    let names = ["a", "b", "c"];
    let mut nodes: Vec<Child> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let labels: &[&str] = if i == 0 { &[] } else { &["--labels", "worker"] };
        nodes.push(p.serve(bin, name, None, labels));
        p.joined(name);
    }
    let (mut ended, mut retried) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        let out = p.jobctl(bin, None, &["trigger", "long"]);
        let id: String = out.split_whitespace().nth(1).unwrap().to_string();
        let node = {
            p.until(
                &format!("SELECT count(*) FROM runs WHERE id = {id} AND pid IS NOT NULL"),
                Duration::from_secs(30),
                |v| v == "1",
            );
            p.sql(&format!("SELECT node FROM runs WHERE id = {id}"))
        };
        let i = names.iter().position(|n| *n == node).unwrap();
        nodes[i].kill().unwrap();
        let _ = nodes[i].wait();
        let killed = Instant::now();
        p.until(
            &format!("SELECT state FROM runs WHERE id = {id}"),
            Duration::from_secs(60),
            |v| v == "failed",
        );
        ended.push(killed.elapsed().as_secs_f64());
        p.until(
            &format!(
                "SELECT count(*) FROM runs WHERE first_run_id = {id} AND state = 'running'
                 AND pid IS NOT NULL"
            ),
            Duration::from_secs(60),
            |v| v == "1",
        );
        retried.push(killed.elapsed().as_secs_f64());
        let retry = p.sql(&format!("SELECT id FROM runs WHERE first_run_id = {id}"));
        p.jobctl(bin, None, &["run", "cancel", &retry]);
        nodes[i] = p.serve(bin, &node, None, &["--labels", "worker"]);
        p.joined(&node);
    }
    for c in nodes {
        stop(c);
    }
    (ended, retried)
}

/// 5: `GET /v1/runs/{id}` req/s with wrk on a node serving `p` (runs 1..=`runs`).
fn api(bin: &Path, p: &Project, runs: usize, seconds: u32) -> f64 {
    let child = p
        .command(bin, None)
        .args(["serve", "--node", "api", "--listen", "127.0.0.1:0"])
        .env("JOBS_LOG", "info")
        .env("JOBS_LOG_FORMAT", "json")
        .env("JOBS_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let stderr = child.stderr.take().unwrap();
    let url = {
        use std::io::BufRead;
        let mut url = None;
        let mut lines = std::io::BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(i) = line.find("\"url\":\"") {
                let rest = &line[i + 7..];
                url = Some(rest[..rest.find('"').unwrap()].to_string());
                break;
            }
        }
        // The rest of its log is read (and dropped) for as long as it runs.
        std::thread::spawn(move || lines.for_each(drop));
        url.expect("the daemon's URL")
    };
    wait_ready(&url);
    let script = p.root().join("runs.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(7)\nlocal auth = {{[\"Authorization\"] = \"Bearer {TOKEN}\"}}\nrequest = function()\n  return wrk.format(\"GET\", \"/v1/runs/\" .. math.random(1, {runs}), auth)\nend\n"
        ),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(&url)
        .output()
        .expect("wrk runs");
    stop(child);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx")
            && !text.contains("Socket errors")
            && !text.contains(" 0 requests"),
        "wrk: {text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk said: {text}"))
}

/// Waits until the API at `url` answers `GET /healthz` (it serves once the start's reconcile
/// is done).
fn wait_ready(url: &str) {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let _ =
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} never answered /healthz");
}

/// 6: pgbench's simple-update TPS with `clients` clients on the bench's server.
fn pgbench(clients: u32, seconds: u32) -> f64 {
    let server = pg::server();
    let db = pg::database();
    let name = db.rsplit('/').next().unwrap().to_string();
    let port = server.port.to_string();
    let run = |args: &[&str]| {
        let out = server
            .command("pgbench")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "jobs"])
            .args(args)
            .arg(&name)
            .output()
            .expect("pgbench runs");
        assert!(
            out.status.success(),
            "pgbench {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["-i", "-q", "-s", "1"]);
    let out = run(&[
        "-N",
        "-c",
        &clients.to_string(),
        "-j",
        "2",
        "-T",
        &seconds.to_string(),
    ]);
    out.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("pgbench said: {out}"))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // Durable, as in production: the tests' server skips fsync.
    // SAFETY: set before any thread starts.
    unsafe { std::env::set_var("JOBS_TEST_PG_FSYNC", "on") };
    let sizes = if full {
        Sizes {
            runs: 2_000,
            reps: 3,
            due: 100,
            trials: 10,
            api_seconds: 10,
        }
    } else {
        Sizes {
            runs: 20,
            reps: 1,
            due: 5,
            trials: 0,
            api_seconds: 1,
        }
    };
    let bin = common::bench_bin();
    println!(
        "cluster bench: {} ({}), {} runs, {} due at once, {} trials",
        common::git_describe(),
        bin.display(),
        sizes.runs,
        sizes.due,
        sizes.trials
    );
    let configs = [
        ("SQLite, 1 node", Backend::Sqlite, 1),
        ("PostgreSQL, 1 node", Backend::Postgres, 1),
        ("PostgreSQL, 3 nodes", Backend::Postgres, 3),
    ];
    let mut kept: Vec<Option<Project>> = vec![None, None];
    println!(
        "| setup | runs/s (median of {}) | fire p50 | fire p99 |",
        sizes.reps
    );
    println!("|---|---:|---:|---:|");
    let mut sqlite_rate = 0.0;
    for (label, backend, nodes) in configs {
        let mut rates = Vec::new();
        for _ in 0..sizes.reps {
            let (rate, p) = throughput(&bin, backend, nodes, sizes.runs);
            rates.push(rate);
            if nodes == 1 {
                kept[usize::from(backend == Backend::Postgres)] = Some(p);
            }
        }
        let mut latencies = Vec::new();
        for _ in 0..sizes.reps {
            latencies.extend(fire_latency(&bin, backend, nodes, sizes.due));
        }
        latencies.sort_by(f64::total_cmp);
        let rate = median(rates);
        if backend == Backend::Sqlite {
            sqlite_rate = rate;
        }
        println!(
            "| {label} | {rate:.0} ({:.2}× SQLite) | {:.0} ms | {:.0} ms |",
            rate / sqlite_rate,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    if sizes.trials > 0 {
        let (lease, tick) = failover(&bin, sizes.trials);
        println!(
            "failover (median of {}): lease taken after {:.2} s (max {:.2}), next tick after {:.2} s (max {:.2})",
            sizes.trials,
            median(lease.clone()),
            lease.iter().copied().fold(0.0, f64::max),
            median(tick.clone()),
            tick.iter().copied().fold(0.0, f64::max)
        );
        let (ended, retried) = recovery(&bin, sizes.trials);
        println!(
            "lost-node recovery (median of {}): run ended \"node lost\" after {:.2} s (max {:.2}), retry running after {:.2} s (max {:.2})",
            sizes.trials,
            median(ended.clone()),
            ended.iter().copied().fold(0.0, f64::max),
            median(retried.clone()),
            retried.iter().copied().fold(0.0, f64::max)
        );
    }
    let has_wrk = Command::new("wrk").arg("--version").output().is_ok();
    if has_wrk {
        let sqlite = api(
            &bin,
            kept[0].as_ref().unwrap(),
            sizes.runs,
            sizes.api_seconds,
        );
        let postgres = api(
            &bin,
            kept[1].as_ref().unwrap(),
            sizes.runs,
            sizes.api_seconds,
        );
        println!(
            "GET /v1/runs/{{id}}: SQLite {sqlite:.0} req/s, PostgreSQL {postgres:.0} req/s ({:.2}× SQLite)",
            postgres / sqlite
        );
    } else {
        println!("GET /v1/runs/{{id}}: skipped (no wrk)");
    }
    let one = pgbench(1, sizes.api_seconds);
    let many = pgbench(16, sizes.api_seconds);
    println!("pgbench -N (simple update): {one:.0} TPS with 1 client, {many:.0} with 16");
}
