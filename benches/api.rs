//! The HTTP API under load: `cargo bench --bench api` (release build; needs `wrk`, from
//! Debian's packages). Without `--bench` (as `cargo test --all-targets` runs it) it is a
//! seconds-long smoke check with small sizes, skipped when wrk is not installed.
//!
//! A ledger with 10,000 jobs and 1,000,000 finished runs is served by the release binary on
//! loopback while 100 of the jobs fire every second (100 runs/s of `true`). wrk measures, in
//! this order, each for a fixed time: `GET /healthz` (the hello-world baseline: no ledger, no
//! token), `GET /v1/runs/{id}` and `GET /v1/jobs/{name}` with random ids and names, then
//! `POST /v1/jobs/{name}/trigger` paced at 1,000 requests a second; every triggered run must
//! then be recorded and end. Each figure is also given as a ratio to the baseline.
//!
//! `JOBS_BENCH_BIN=/path/to/old/jobctl cargo bench --bench api` measures another build (an
//! older commit's), for a before/after through the same bench code.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

const ADMIN: &str = "bench-admin-token-0123456789";

struct Sizes {
    jobs: usize,
    firing: usize,
    runs: usize,
    seconds: u32,
    connections: u32,
    trigger_rate: u32,
}

impl Sizes {
    fn new(full: bool) -> Sizes {
        if full {
            Sizes {
                jobs: 10_000,
                firing: 100,
                runs: 1_000_000,
                seconds: 10,
                connections: 8,
                trigger_rate: 1_000,
            }
        } else {
            Sizes {
                jobs: 50,
                firing: 2,
                runs: 2_000,
                seconds: 1,
                connections: 4,
                trigger_rate: 50,
            }
        }
    }
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(bin: &Path, root: &Path, concurrency: &str) -> Server {
        let log = root.join("serve.log");
        let mut child = Command::new(bin)
            .current_dir(root)
            .args(["serve", "--listen", "127.0.0.1:0", "--token-file", "tokens"])
            .args(["--log-format", "json", "--max-concurrent-runs", concurrency])
            .env_remove("JOBS_NOW")
            .env("JOBS_LOG", "warn,jobs::daemon=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning jobs serve");
        let stderr = child.stderr.take().unwrap();
        // The log goes to a file; the address (first line) and readiness come back here.
        let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(log).unwrap();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                let addr = line
                    .split("\"listen\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next());
                if let Some(addr) = addr {
                    let _ = tx.send(Some(addr.to_string()));
                } else if line.contains("scheduler started") {
                    let _ = tx.send(None);
                }
            }
        });
        let wait = Duration::from_secs(120);
        let addr = rx
            .recv_timeout(wait)
            .ok()
            .flatten()
            .expect("jobs serve names its address first");
        rx.recv_timeout(wait)
            .expect("jobs serve starts its scheduler");
        Server {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// (anonymous resident memory, file-backed resident memory: the mapped ledger), KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("RssAnon:"), field("RssFile:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Writes the jobs folder, applies it, and inserts the finished runs straight into the ledger.
fn fixture(bin: &Path, root: &Path, sizes: &Sizes) {
    let jobs_d = root.join("jobs.d");
    for i in 0..sizes.jobs {
        let dir = jobs_d.join(format!("team-{:02}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        let text = if i < sizes.firing {
            "schedule: {every: 1s}\ncommand: [\"true\"]\nconcurrency: allow\nhistory: {keep_runs: 100000}\n".to_string()
        } else {
            format!(
                "description: job {i}\nschedule: \"{} {} * * *\"\ntimezone: Europe/Berlin\ncommand: [\"true\"]\nconcurrency: allow\nhistory: {{keep_runs: 100000}}\n",
                i % 60,
                i % 24
            )
        };
        std::fs::write(dir.join(format!("job-{i:05}.yaml")), text).unwrap();
    }
    std::fs::write(root.join("tokens"), format!("admin {ADMIN}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("tokens"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let out = Command::new(bin)
        .current_dir(root)
        .arg("apply")
        .env_remove("JOBS_NOW")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = Connection::open(root.join(".jobs/ledger.db")).unwrap();
    let now = jiff::Timestamp::now();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO runs (job, revision_id, trigger, scheduled_at, state, created_at,
                                   started_at, finished_at, exit_code, attempt, output_bytes)
                 SELECT name, revision_id, 'schedule', ?2, 'succeeded', ?2, ?2, ?3, 0, 1, 0
                 FROM jobs WHERE name = ?1",
            )
            .unwrap();
        for k in 0..sizes.runs {
            // Within the last day, so the default retention (30 days) keeps them.
            let at = now - jiff::SignedDuration::from_millis((k as i64 * 37) % 86_400_000);
            let end = at + jiff::SignedDuration::from_millis(12);
            insert
                .execute(params![
                    format!("job-{:05}", k % sizes.jobs),
                    format!("{at:.3}"),
                    format!("{end:.3}")
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A wrk Lua script: random ids or names, the token, and an optional pace per connection.
fn script(root: &Path, name: &str, body: &str) -> PathBuf {
    let path = root.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
}

fn wrk(url: &str, script: &Path, sizes: &Sizes, connections: u32) -> Load {
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &connections.to_string()])
        .args(["-d", &format!("{}s", sizes.seconds), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let number = |prefix: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
    };
    let ms = |v: Option<String>| -> f64 {
        let v = v.unwrap_or_default();
        if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
        } else if let Some(x) = v.strip_suffix("ms") {
            x.parse().unwrap_or(f64::NAN)
        } else if let Some(x) = v.strip_suffix('s') {
            x.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
        } else {
            f64::NAN
        }
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let non_2xx = number("Non-2xx or 3xx responses:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Load {
        rps: number("Requests/sec:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0),
        p50_ms: ms(number("50%")),
        p99_ms: ms(number("99%")),
        requests,
        non_2xx,
    }
}

const TRIGGER_THREADS: u32 = 32;

/// An open-loop load: each request has its own send time (`rate` a second in all, spread over
/// the threads), so a slow server shows as a lower rate and higher latency, not as a gentler
/// load (which a closed loop, such as wrk pacing each connection, would give it).
fn paced_triggers(url: &str, rate: u32, seconds: u32) -> Load {
    let total = u64::from(rate) * u64::from(seconds);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..u64::from(TRIGGER_THREADS))
        .map(|t| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                let mut latencies = Vec::new();
                let mut non_2xx = 0u64;
                let mut k = t;
                while k < total {
                    let due = start + interval * u32::try_from(k).unwrap();
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let status = agent
                        .post(&url)
                        .header("Authorization", &format!("Bearer {ADMIN}"))
                        .send_empty()
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    // From the due time: a send held up by a slow server counts too.
                    latencies.push(due.elapsed().as_secs_f64() * 1000.0);
                    if !(200..300).contains(&status) {
                        non_2xx += 1;
                    }
                    k += u64::from(TRIGGER_THREADS);
                }
                (latencies, non_2xx)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut non_2xx = 0;
    for t in threads {
        let (l, n) = t.join().unwrap();
        latencies.extend(l);
        non_2xx += n;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Load {
        rps: latencies.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        requests: latencies.len() as u64,
        non_2xx,
    }
}

fn count(ledger: &Path, sql: &str) -> i64 {
    let conn =
        Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("wrk is not installed (apt-get install wrk): skipping the API benchmark");
        return;
    }
    let sizes = Sizes::new(full);
    // JOBS_BENCH_BIN measures another build (an older commit's, for a before/after).
    let bin = common::bench_bin();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let started = Instant::now();
    fixture(&bin, root, &sizes);
    println!(
        "API benchmark ({}): {} jobs ({} firing every second), {} runs; fixture in {:.1} s",
        if full { "full" } else { "smoke" },
        sizes.jobs,
        sizes.firing,
        sizes.runs,
        started.elapsed().as_secs_f64()
    );
    let ledger = root.join(".jobs/ledger.db");
    let max_id = count(&ledger, "SELECT max(id) FROM runs");
    let server = Server::start(&bin, root, "64");
    let auth = format!("wrk.headers[\"Authorization\"] = \"Bearer {ADMIN}\"\n");
    let hello = script(root, "hello.lua", "");
    let runs = script(
        root,
        "runs.lua",
        &format!(
            "{auth}math.randomseed(7)\nrequest = function()\n  return wrk.format(\"GET\", \"/v1/runs/\" .. math.random(1, {max_id}))\nend\n"
        ),
    );
    let jobs = script(
        root,
        "jobs.lua",
        &format!(
            "{auth}math.randomseed(11)\nrequest = function()\n  return wrk.format(\"GET\", string.format(\"/v1/jobs/job-%05d\", math.random(0, {})))\nend\n",
            sizes.jobs - 1
        ),
    );
    let firing_before = count(
        &ledger,
        "SELECT count(*) FROM runs WHERE trigger = 'schedule' AND state = 'succeeded'",
    );
    let base = wrk(
        &format!("{}/healthz", server.url),
        &hello,
        &sizes,
        sizes.connections,
    );
    let run = wrk(&server.url, &runs, &sizes, sizes.connections);
    let job = wrk(&server.url, &jobs, &sizes, sizes.connections);
    let firing_after = count(
        &ledger,
        "SELECT count(*) FROM runs WHERE trigger = 'schedule' AND state = 'succeeded'",
    );
    let load_seconds = f64::from(sizes.seconds) * 3.0;
    let trig = paced_triggers(
        &format!("{}/v1/jobs/job-{:05}/trigger", server.url, sizes.jobs - 1),
        sizes.trigger_rate,
        sizes.seconds,
    );
    // Every accepted trigger must be recorded and end.
    let accepted = trig.requests - trig.non_2xx;
    let deadline = Instant::now() + Duration::from_secs(120);
    let ended = loop {
        let ended = count(
            &ledger,
            "SELECT count(*) FROM runs WHERE trigger = 'manual' AND state NOT IN ('pending', 'running')",
        );
        let recorded = count(
            &ledger,
            "SELECT count(*) FROM runs WHERE trigger = 'manual'",
        );
        if (ended as u64 >= accepted && ended == recorded) || Instant::now() > deadline {
            break ended;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let recorded = count(
        &ledger,
        "SELECT count(*) FROM runs WHERE trigger = 'manual'",
    );
    let (anon, file) = server.rss_kib();
    drop(server);
    // The API alone: the same open-loop triggers while the daemon runs one run at a time, so
    // spawning `true` 1,000 times a second (this machine's spawn floor is ~1,200/s) does not
    // compete for the two cores; the runs queue up as pending.
    let held = Server::start(&bin, root, "1");
    let accept = paced_triggers(
        &format!("{}/v1/jobs/job-{:05}/trigger", held.url, sizes.jobs - 2),
        sizes.trigger_rate,
        sizes.seconds,
    );
    drop(held);

    let ratio = |x: f64| x / base.rps;
    println!();
    println!("| figure | target | result | ratio to hello world | verdict |");
    println!("|---|---|---|---|---|");
    println!(
        "| hello world, `GET /healthz` ({} connections, {} s) | baseline | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms | 1.00 | — |",
        sizes.connections, sizes.seconds, base.rps, base.p50_ms, base.p99_ms
    );
    println!(
        "| `GET /v1/runs/{{id}}`, random ids among {} runs, while {:.0} runs/s fire | ≥ 20,000 req/s, p99 ≤ 10 ms | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} non-2xx) | {:.2} | {} |",
        max_id,
        (firing_after - firing_before) as f64 / (load_seconds * 2.0 / 3.0),
        run.rps,
        run.p50_ms,
        run.p99_ms,
        run.non_2xx,
        ratio(run.rps),
        if run.rps >= 20_000.0 && run.p99_ms <= 10.0 {
            "met"
        } else {
            "**missed**"
        }
    );
    println!(
        "| `GET /v1/jobs/{{name}}`, random names among {} jobs | ≥ 10,000 req/s | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} non-2xx) | {:.2} | {} |",
        sizes.jobs,
        job.rps,
        job.p50_ms,
        job.p99_ms,
        job.non_2xx,
        ratio(job.rps),
        if job.rps >= 10_000.0 {
            "met"
        } else {
            "**missed**"
        }
    );
    println!(
        "| `POST …/trigger` sent open-loop at {}/s for {} s ({} threads), runs of `true` | 1,000/s sustained, all recorded | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; {} accepted, {} recorded, {} ended ({} non-2xx) | {:.2} | {} |",
        sizes.trigger_rate,
        sizes.seconds,
        TRIGGER_THREADS,
        trig.rps,
        trig.p50_ms,
        trig.p99_ms,
        accepted,
        recorded,
        ended,
        trig.non_2xx,
        ratio(trig.rps),
        if trig.rps >= 0.95 * f64::from(sizes.trigger_rate)
            && recorded as u64 >= accepted
            && ended == recorded
        {
            "met"
        } else {
            "**missed**"
        }
    );
    println!(
        "| the API alone: `POST …/trigger` open-loop at {}/s for {} s, runs held back (`--max-concurrent-runs 1`) | 1,000/s | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} non-2xx) | {:.2} | {} |",
        sizes.trigger_rate,
        sizes.seconds,
        accept.rps,
        accept.p50_ms,
        accept.p99_ms,
        accept.non_2xx,
        ratio(accept.rps),
        if accept.rps >= 0.95 * f64::from(sizes.trigger_rate) && accept.non_2xx == 0 {
            "met"
        } else {
            "**missed**"
        }
    );
    println!(
        "| daemon memory after the load | — | {:.1} MiB anonymous (heap, stacks); {:.1} MiB of mapped ledger pages (page cache, shared) | — | — |",
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    // wrk counts only the requests it saw answered; a request cut off at the end may still
    // have been recorded, so the ledger may hold a few more.
    assert!(
        recorded as u64 >= accepted,
        "every accepted trigger is recorded"
    );
    assert_eq!(ended, recorded, "every recorded run ends");
}
