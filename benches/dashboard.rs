//! The dashboard on a big ledger: `cargo bench --bench dashboard` (release build). Without
//! `--bench` (as `cargo test --all-targets` runs it) it is a seconds-long smoke check with small
//! sizes.
//!
//! A ledger with 10,000 jobs (mixed cron schedules and time zones) and 1,000,000 finished runs
//! of the last day is served by `jobctl serve`. Each API call behind the pages is timed alone,
//! one request after another (median and slowest of 15, after 2 warm-ups): the jobs page's list
//! page (100 rows by next fire, a search, the failing ones, the tags) and the strips of its
//! rows, a page of the timeline's rows (runs and fires over
//! 24 hours), every job's fires for a day, the week's heat map, a job's page, the graph, the
//! page shell itself. Then headless Chromium (when
//! `chromedriver` is installed) loads the jobs page and the timeline after logging in, and the
//! time from navigation to the first rows drawn is read from the page's own clock
//! (`performance.now()`), median of 5.
//!
//! `JOBS_BENCH_BIN=/path/to/jobctl cargo bench --bench dashboard` measures another build;
//! `JOBS_BENCH_DIR=/some/dir` keeps the fixture there and reuses it on the next run (its runs
//! were "the last day" when it was made).

#[path = "common/mod.rs"]
mod common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

const ADMIN: &str = "bench-admin-token-0123456789";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn serve(bin: &Path, root: &Path) -> Server {
    let mut child = Command::new(bin)
        .current_dir(root)
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file", "tokens"])
        .args(["--log-format", "json"])
        .env_remove("JOBS_NOW")
        .env("JOBS_LOG", "warn,jobs::daemon=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning jobs serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
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
    let wait = Duration::from_secs(300);
    let addr = rx.recv_timeout(wait).ok().flatten().expect("the address");
    rx.recv_timeout(wait).expect("the scheduler starts");
    Server {
        child,
        url: format!("http://{addr}"),
    }
}

/// 10,000 realistic jobs (the `cli` bench's mix of zones and hours) and 1,000,000 finished
/// runs spread over the last day, some failed.
fn fixture(bin: &Path, root: &Path, jobs: usize, runs: usize) {
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];
    for i in 0..jobs {
        let dir = root.join("jobs.d").join(format!("team-{:02}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "description: job {i}\nschedule: \"{} {} * * *\"\ntimezone: {}\ntags: [team-{:02}]\n\
             command: [\"true\"]\nhistory: {{keep_runs: 100000}}\n",
            i % 60,
            i % 24,
            zones[i % zones.len()],
            i % 50
        );
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
                 SELECT name, revision_id, 'schedule', ?2, ?4, ?2, ?2, ?3, ?5, 1, 0
                 FROM jobs WHERE name = ?1",
            )
            .unwrap();
        for k in 0..runs {
            let at = now - jiff::SignedDuration::from_millis((k as i64 * 37) % 86_400_000);
            let ms = 10 + (k as i64 * 7919) % 5000;
            let end = at + jiff::SignedDuration::from_millis(ms);
            let failed = k % 17 == 0;
            insert
                .execute(params![
                    format!("job-{:05}", k % jobs),
                    format!("{at:.3}"),
                    format!("{end:.3}"),
                    if failed { "failed" } else { "succeeded" },
                    i32::from(failed),
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Median and slowest of 15 requests (after 2 warm-ups), in ms; the body's size of the last.
fn time(url: &str) -> (f64, f64, usize) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(true)
            .build(),
    );
    let mut ms = Vec::new();
    let mut size = 0;
    for i in 0..17 {
        let start = Instant::now();
        let mut response = agent
            .get(url)
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("accept-encoding", "identity")
            .call()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        if i >= 2 {
            ms.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        size = body.len();
    }
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1], size)
}

/// Milliseconds from navigation to the first element `css` drawn, by the page's clock, median
/// of 5 loads; `None` without chromedriver.
async fn first_render(base: &str, pages: &[(&str, &str)]) -> Option<Vec<f64>> {
    use fantoccini::{ClientBuilder, Locator};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut lines = std::io::BufReader::new(driver.stdout.take()?).lines();
    while !lines.next()?.ok()?.contains("started successfully") {}
    std::thread::spawn(move || for _ in lines {});
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,900"] }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .ok()?;
    client.goto(&format!("{base}/login")).await.ok()?;
    let field = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("token"))
        .await
        .ok()?;
    field.send_keys(ADMIN).await.ok()?;
    client
        .find(Locator::Css("form button"))
        .await
        .ok()?
        .click()
        .await
        .ok()?;
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("table.jobs"))
        .await
        .ok()?;
    let mut out = Vec::new();
    for (path, css) in pages {
        let mut ms = Vec::new();
        for _ in 0..5 {
            client.goto(&format!("{base}{path}")).await.ok()?;
            client
                .wait()
                .at_most(Duration::from_secs(60))
                .for_element(Locator::Css(css))
                .await
                .ok()?;
            // The page's clock at the moment the element is found, from the navigation's start.
            let at = client
                .execute("return performance.now()", vec![])
                .await
                .ok()?;
            ms.push(at.as_f64()?);
        }
        ms.sort_by(f64::total_cmp);
        out.push(ms[ms.len() / 2]);
    }
    let _ = client.close().await;
    let _ = driver.kill();
    let _ = driver.wait();
    Some(out)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (jobs, runs) = if full {
        (10_000, 1_000_000)
    } else {
        (40, 2_000)
    };
    let bin = common::bench_bin();
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("JOBS_BENCH_DIR").map(std::path::PathBuf::from);
    let root = kept.as_deref().unwrap_or(tmp.path());
    let started = Instant::now();
    if !root.join(".jobs/ledger.db").exists() {
        std::fs::create_dir_all(root).unwrap();
        fixture(&bin, root, jobs, runs);
    }
    println!(
        "dashboard benchmark ({}): {jobs} jobs, {runs} runs; fixture in {:.1} s; binary {}",
        if full { "full" } else { "smoke" },
        started.elapsed().as_secs_f64(),
        bin.display()
    );
    let server = serve(&bin, root);
    let url = &server.url;
    let names: Vec<String> = (0..100.min(jobs)).map(|i| format!("job-{i:05}")).collect();
    let now = jiff::Timestamp::now();
    let calls = [
        ("the page shell, `GET /`", format!("{url}/")),
        (
            "jobs page: its first 100 rows by next fire, `GET /v1/jobs?sort=next&limit=100`",
            format!("{url}/v1/jobs?sort=next&limit=100"),
        ),
        (
            "jobs page: a search, `GET /v1/jobs?q=job-0042&sort=failure&limit=100`",
            format!("{url}/v1/jobs?q=job-0042&sort=failure&limit=100"),
        ),
        (
            "jobs page: the latest failures first, `GET /v1/jobs?sort=last_failure&limit=100`",
            format!("{url}/v1/jobs?sort=last_failure&limit=100"),
        ),
        (
            "jobs page: the failing ones, `GET /v1/jobs?state=failing&limit=100`",
            format!("{url}/v1/jobs?state=failing&limit=100"),
        ),
        (
            "jobs page: its tag filter, `GET /v1/tags`",
            format!("{url}/v1/tags"),
        ),
        (
            "jobs page: strips of its 100 rows, `GET /v1/runs/recent`",
            format!("{url}/v1/runs/recent?per_job=20&jobs={}", names.join(",")),
        ),
        (
            "timeline: 50 rows of runs and fires over now ± 12 h, `GET /v1/timeline`",
            format!(
                "{url}/v1/timeline?from={}&to={}&limit=50",
                now - jiff::SignedDuration::from_hours(12),
                now + jiff::SignedDuration::from_hours(12)
            ),
        ),
        (
            "timeline: a week of load, `GET /v1/fires?to=+7d&per_job=0`",
            format!(
                "{url}/v1/fires?per_job=0&to={}",
                now + jiff::SignedDuration::from_hours(24 * 7)
            ),
        ),
        (
            "every job's fires for 24 h, `GET /v1/fires?per_job=500` (no page asks for it)",
            format!("{url}/v1/fires?per_job=500"),
        ),
        (
            "job page: `GET /v1/jobs/{name}?fires=10`",
            format!("{url}/v1/jobs/job-00007?fires=10"),
        ),
        (
            "job page: its runs, `GET /v1/runs?job=…&limit=50`",
            format!("{url}/v1/runs?job=job-00007&limit=50"),
        ),
        (
            "job page: `GET /v1/jobs/{name}/revisions`",
            format!("{url}/v1/jobs/job-00007/revisions"),
        ),
        (
            "graph page: `GET /v1/graph?linked=true`",
            format!("{url}/v1/graph?linked=true"),
        ),
        (
            "graph page: the count, `GET /v1/jobs?limit=1`",
            format!("{url}/v1/jobs?limit=1"),
        ),
        ("status page: `GET /v1/status`", format!("{url}/v1/status")),
        (
            "every job in one document, `GET /v1/jobs` (`jobctl list --server`; no page asks for it)",
            format!("{url}/v1/jobs"),
        ),
    ];
    println!();
    println!("| call | target | median | slowest of 15 | body | verdict |");
    println!("|---|---|---|---|---|---|");
    for (what, call) in &calls {
        let (median, slowest, size) = time(call);
        println!(
            "| {what} | < 100 ms | {median:.1} ms | {slowest:.1} ms | {:.0} KB | {} |",
            size as f64 / 1000.0,
            if median < 100.0 { "met" } else { "**missed**" }
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pages = [
        ("/", "table.jobs tbody tr"),
        ("/timeline", "svg.timeline rect.bar"),
    ];
    match runtime.block_on(first_render(url, &pages)) {
        Some(ms) => {
            for ((path, _), ms) in pages.iter().zip(ms) {
                println!(
                    "| first render of `{path}` in headless Chromium, navigation to rows drawn | < 1 s | {ms:.0} ms | — | — | {} |",
                    if ms < 1000.0 { "met" } else { "**missed**" }
                );
            }
        }
        None => println!("(chromedriver is not installed: the browser figures are skipped)"),
    }
    drop(server);
}
