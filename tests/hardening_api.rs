//! Issue 12, "Nothing stuck, whatever the machine does": the API's defects, each with a
//! regression test named after it, against a real `jobctl serve` on a free port.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, Project};
use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "read-token-0123456789abcdef";
/// Where every daemon's clock starts.
const T0: &str = common::NOW;
const SECRET: &str = "It's a Secret to Everybody";

struct Reply {
    status: u16,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the status and the API's error shape; returns the message.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert!(
            body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "no error code: {}",
            self.text
        );
        body["error"]["message"].as_str().unwrap().to_string()
    }
}

struct Http {
    base: String,
    agent: ureq::Agent,
}

impl Http {
    fn new(daemon: &mut Daemon) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A bound on the test, far above what any answer here should take.
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .new_agent();
        Http {
            base: daemon.url(),
            agent,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(body.to_vec()).unwrap();
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Reply {
            status: response.status().as_u16(),
            text: response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .unwrap_or_default(),
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        self.call("GET", path, &headers, b"")
    }

    fn hook(&self, job: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.call("POST", &format!("/v1/hooks/{job}"), headers, body)
    }
}

fn tokens() -> String {
    format!("admin {ADMIN}\nread {READER}\n")
}

fn start(p: &Project, extra: &[&str]) -> (Daemon, Http) {
    let mut args = vec!["--token-file", "tokens"];
    args.extend_from_slice(extra);
    let mut daemon = p.serve_env(&args, Some(T0), &[("HOOK_SECRET", SECRET)]);
    daemon.wait_for("reconciled", &[]);
    let http = Http::new(&mut daemon);
    (daemon, http)
}

/// Defect 6: a request signed over `TS.BODY` an hour ago, resent with the body `TS.BODY`, the
/// same signature and no `X-Jobs-Timestamp`, passed as a plain signature of its body.
#[test]
fn the_webhook_replay_guard_cannot_be_bypassed_by_dropping_the_timestamp_header() {
    let p = Project::new().file("tokens", tokens()).file(
        "jobs.d/deploy.yaml",
        "command: [\"true\"]\nwebhook: {secret_env: HOOK_SECRET, require_timestamp: true}\n",
    );
    let (daemon, http) = start(&p, &[]);
    let now = T0.parse::<jiff::Timestamp>().unwrap().as_second();
    let body = br#"{"ref": "main"}"#;

    let captured_at = (now - 3600).to_string();
    let captured = jobs::webhook::sign(SECRET.as_bytes(), Some(&captured_at), body);
    let mut replayed = format!("{captured_at}.").into_bytes();
    replayed.extend_from_slice(body);
    for header in ["X-Jobs-Signature", "X-Hub-Signature-256"] {
        let message = http
            .hook("deploy", &[(header, &captured)], &replayed)
            .error(401);
        assert!(message.contains("X-Jobs-Timestamp"), "{header}: {message}");
    }
    // The same request with its timestamp header is too old.
    let message = http
        .hook(
            "deploy",
            &[
                ("X-Jobs-Signature", &captured),
                ("X-Jobs-Timestamp", &captured_at),
            ],
            body,
        )
        .error(401);
    assert!(message.contains("away from the server's time"), "{message}");
    // A fresh timestamped request is taken.
    let fresh = now.to_string();
    let signed = jobs::webhook::sign(SECRET.as_bytes(), Some(&fresh), body);
    let run = http.hook(
        "deploy",
        &[("X-Jobs-Signature", &signed), ("X-Jobs-Timestamp", &fresh)],
        body,
    );
    assert_eq!(run.status, 202, "{}", run.text);
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 15: `Authorization: bearer TOKEN` was refused; the scheme is case-insensitive
/// (RFC 7235).
#[test]
fn authorization_bearer_in_lower_case_is_accepted() {
    let p = Project::new()
        .file("tokens", tokens())
        .file("jobs.d/nightly.yaml", common::job("0 3 * * *"));
    let (daemon, http) = start(&p, &[]);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {READER}");
        let reply = http.call("GET", "/v1/jobs/nightly", &[("Authorization", &auth)], b"");
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text);
    }
    let basic = format!("Basic {READER}");
    http.call("GET", "/v1/jobs/nightly", &[("Authorization", &basic)], b"")
        .error(401);
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 15: a webhook's 404 told anyone whether a job of that name existed ("job `x` has no
/// webhook" against "no job `x`").
#[test]
fn webhook_404s_do_not_leak_job_names_to_unauthenticated_callers() {
    let p = Project::new()
        .file("tokens", tokens())
        .file("jobs.d/nightly.yaml", common::job("0 3 * * *"));
    let (daemon, http) = start(&p, &[]);
    let bad_token = "Bearer not-a-token-0123456789abcdef".to_string();
    for headers in [vec![], vec![("Authorization", bad_token.as_str())]] {
        let existing = http.hook("nightly", &headers, b"{}");
        let unknown = http.hook("nightlx", &headers, b"{}");
        let message = existing.error(404);
        assert_eq!(message, unknown.error(404));
        assert_eq!(existing.text, unknown.text);
        assert!(!message.contains("nightly"), "{message}");
    }
    // A reader may be told why.
    let auth = format!("Bearer {READER}");
    let message = http
        .hook("nightly", &[("Authorization", &auth)], b"{}")
        .error(404);
    assert!(message.contains("has no webhook"), "{message}");
    let message = http
        .hook("nightlx", &[("Authorization", &auth)], b"{}")
        .error(404);
    assert!(message.contains("no job `nightlx`"), "{message}");
    assert_eq!(daemon.stop(), Some(0));
}

/// `GET /healthz` on a new connection: the status line and how long the answer took.
fn healthz(addr: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let bound = Duration::from_secs(20);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, bound) else {
        return ("no connection".to_string(), started.elapsed());
    };
    stream.set_read_timeout(Some(bound)).unwrap();
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: jobs\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("no answer").to_string();
    (status, started.elapsed())
}

/// Holds `n` idle connections to `addr` (none sends a byte), reopening each one the server
/// closes, until `stop`. Sends on `ready` once the first `n` were tried.
fn hold_idle_connections(
    addr: SocketAddr,
    n: usize,
    stop: &AtomicBool,
    ready: std::sync::mpsc::Sender<usize>,
) -> usize {
    let connect = || TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok();
    let mut held: Vec<Option<TcpStream>> = Vec::with_capacity(n);
    let opening = Instant::now();
    while held.len() < n && opening.elapsed() < Duration::from_secs(15) {
        held.push(connect());
    }
    held.resize_with(n, || None);
    let _ = ready.send(held.iter().flatten().count());
    let mut reopened = 0;
    while !stop.load(Ordering::Relaxed) {
        // Wait (at most 100 ms) for the server to close some; then reopen those and the ones
        // that could not be opened.
        let mut fds: Vec<libc::pollfd> = held
            .iter()
            .flatten()
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        let closed: std::collections::HashSet<i32> = fds
            .iter()
            .filter(|f| f.revents != 0)
            .map(|f| f.fd)
            .collect();
        for slot in &mut held {
            if slot
                .as_ref()
                .is_none_or(|s| closed.contains(&s.as_raw_fd()))
            {
                *slot = connect();
                reopened += 1;
            }
        }
    }
    reopened
}

/// Defect 7: with the common 1,024-descriptor limit, 2,000 idle connections (reopened as the
/// server dropped them) made runs fail with "Too many open files" and `/healthz` time out.
#[test]
fn idle_connections_cannot_exhaust_descriptors_and_stop_every_job() {
    let have = common::raise_own_descriptors(2600);
    let n = 2000.min(have.saturating_sub(300) as usize);
    assert!(
        n >= 1200,
        "this test needs ~2,300 descriptors; the hard limit is {have}"
    );
    let p = Project::new().file("tokens", tokens()).file(
        "jobs.d/tick.yaml",
        "schedule: {every: 1s}\nrun: cat /dev/null; echo ok\n",
    );
    let mut daemon = p.serve_with(&["--token-file", "tokens"], Some(T0), &[], |cmd| {
        common::limit_descriptors(cmd, 1024)
    });
    let started = daemon.wait_for("jobs serve started", &[]);
    // 1,024 descriptors: 256 kept for runs and the ledger, a quarter of the rest per address.
    assert_eq!(started["max_connections"], 768, "{started}");
    assert_eq!(started["max_connections_per_ip"], 192, "{started}");
    daemon.wait_for("reconciled", &[]);
    let addr = Http::new(&mut daemon).addr();
    daemon.wait_for("run ended", &[("job", "tick")]);

    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || hold_idle_connections(addr, n, &stop, ready_tx))
    };
    let opened = ready.recv().unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let ended = daemon.wait_for("run ended", &[("job", "tick")]);
        assert_eq!(ended["state"], "succeeded", "{ended}");
        let (status, took) = healthz(addr);
        assert!(
            status.contains(" 200 "),
            "/healthz: {status} after {took:?}"
        );
        slowest = slowest.max(took);
    }
    stop.store(true, Ordering::Relaxed);
    let reopened = flood.join().unwrap();
    // Generous: the whole test suite shares two cores with the flood. Before the caps,
    // /healthz timed out and runs failed with "Too many open files".
    assert!(
        slowest < Duration::from_secs(5),
        "/healthz took {slowest:?} ({opened} connections held, {reopened} reopened)"
    );
    let exhausted: Vec<String> = daemon
        .seen
        .iter()
        .map(ToString::to_string)
        .filter(|l| l.contains("Too many open files"))
        .collect();
    assert!(exhausted.is_empty(), "{exhausted:#?}");
    eprintln!("{opened} connections held, {reopened} reopened; /healthz at most {slowest:?}");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn more_places_than_the_descriptor_limit_allows_is_warned_of_and_the_api_yields() {
    // 256 places keep 832 descriptors (three per place and 64) out of the API's reach: at a
    // limit of 1,024 its cap is half the limit, and the start says what to change.
    let p = Project::new().file("jobs.d/tick.yaml", "schedule: \"@daily\"\nrun: true\n");
    let mut daemon = p.serve_with(&["--max-concurrent-runs", "256"], Some(T0), &[], |cmd| {
        common::limit_descriptors(cmd, 1024)
    });
    let warned = daemon.wait_for("the API's connection cap leaves fewer than the 832", &[]);
    assert_eq!(warned["level"], "WARN", "{warned}");
    assert_eq!(warned["max_concurrent_runs"], 256, "{warned}");
    let message = warned["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("lower max_connections or max_concurrent_runs")
            && message.contains("LimitNOFILE="),
        "{warned}"
    );
    let started = daemon.wait_for("jobs serve started", &[]);
    assert_eq!(started["max_connections"], 512, "{started}");
    assert_eq!(daemon.stop(), Some(0));
}

/// Reads a run's whole log as a client would, a page at a time (or in one answer, as the API
/// did before pages), without decoding it: only the cursor is looked for. Returns the bytes.
fn read_whole_log(agent: &ureq::Agent, base: &str, id: i64) -> usize {
    let (mut after, mut total) = (0i64, 0);
    loop {
        let url = format!("{base}/v1/runs/{id}/logs?after={after}");
        let mut response = agent
            .get(&url)
            .header("Authorization", format!("Bearer {READER}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status().as_u16(), 200);
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap();
        total += body.len();
        // The cursor is the page's last field.
        let tail = String::from_utf8_lossy(&body[body.len().saturating_sub(64)..]).into_owned();
        match tail.rsplit_once("\"next_after\":") {
            Some((_, rest)) => match rest.trim_end_matches('}').parse::<i64>() {
                Ok(next) => after = next,
                Err(_) => return total,
            },
            None => return total,
        }
    }
}

/// Defect 8: `GET /v1/runs/{id}/logs` was unpaged and read on the runtime's threads: 30 readers
/// of a 1 MiB log took `/healthz` to seconds and made an every-second job skip slots.
#[test]
fn log_readers_cannot_starve_the_scheduler() {
    let p = Project::new()
        .file("tokens", tokens())
        .file("jobs.d/tick.yaml", "schedule: {every: 1s}\nrun: \"true\"\n")
        .file(
            "jobs.d/big.yaml",
            "run: yes 'a line of output, long enough to make a megabyte in 16000 lines' | head -n 16000\n",
        );
    let (mut daemon, http) = start(&p, &[]);
    let auth = format!("Bearer {ADMIN}");
    let run = http.call(
        "POST",
        "/v1/jobs/big/trigger",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(run.status, 202, "{}", run.text);
    let id = run.json()["id"].as_i64().unwrap();
    daemon.wait_for("run ended", &[("run", &id.to_string())]);
    let addr = http.addr();
    // The first tick after the log is written: from here, every slot must run.
    let first = daemon.wait_for("run ended", &[("job", "tick")]);
    let first_run = first["run"].as_i64().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..30)
        .map(|_| {
            let (stop, base) = (stop.clone(), http.base.clone());
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .new_agent();
                let (mut reads, mut bytes) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    bytes += read_whole_log(&agent, &base, id);
                    reads += 1;
                }
                (reads, bytes)
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    let mut last = first.clone();
    for _ in 0..8 {
        last = daemon.wait_for("run ended", &[("job", "tick")]);
        assert_eq!(last["state"], "succeeded", "{last}");
        let (status, took) = healthz(addr);
        assert!(
            status.contains(" 200 "),
            "/healthz: {status} after {took:?}"
        );
        slowest = slowest.max(took);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut reads, mut bytes) = (0, 0);
    for reader in readers {
        let (r, b) = reader.join().unwrap();
        reads += r;
        bytes += b;
    }
    let last_run = last["run"].as_i64().unwrap();
    let skipped: Vec<String> = daemon
        .seen
        .iter()
        .filter(|l| l["message"] == "slot skipped" || l["message"] == "slot missed")
        .map(ToString::to_string)
        .collect();
    assert!(skipped.is_empty(), "{skipped:#?}");
    // Every slot between the two ran, one after the other.
    let runs = http
        .get("/v1/runs?job=tick&limit=1000", Some(READER))
        .json();
    let states: Vec<(i64, String)> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(run, _)| (first_run..=last_run).contains(run))
        .collect();
    assert_eq!(states.len(), 9, "{states:?}");
    assert!(states.iter().all(|(_, s)| s == "succeeded"), "{states:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: unknown")
        .to_string();
    eprintln!(
        "{reads} whole-log reads ({} MiB); /healthz at most {slowest:?}; daemon {peak}",
        bytes / (1024 * 1024)
    );
    assert!(
        // Generous, for a whole test suite on two cores; the skipped slots are the sharp check.
        slowest < Duration::from_secs(3),
        "/healthz took {slowest:?} under {reads} log reads"
    );
    assert!(reads >= 30, "only {reads} whole-log reads");
    // The CLI reads the whole log, page after page, from the server and from the ledger.
    let id = id.to_string();
    let expected =
        "a line of output, long enough to make a megabyte in 16000 lines\n".repeat(16_000);
    let remote = p.run(&["--server", &http.base, "--token", READER, "logs", &id]);
    assert!(
        remote.code == 0 && remote.stdout == expected,
        "{}",
        remote.stderr
    );
    let pages = http.get(&format!("/v1/runs/{id}/logs?limit=20000"), Some(READER));
    assert!(pages.error(400).contains("between 1 and 10000"));
    assert_eq!(daemon.stop(), Some(0));
    let local = p.run(&["logs", &id]);
    assert!(
        local.code == 0 && local.stdout == expected,
        "{}",
        local.stderr
    );
}

/// The head of the answer to `request` sent on `stream` (up to the blank line), lower case;
/// its body is read and dropped.
fn answer_head(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    // The body, so the next answer on this connection starts at its status line.
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head
}

/// A request refused before its body was read (its body still on the way) closed its
/// connection after the answer without saying so: a client that sent its next request on
/// that connection got no answer at all ("peer disconnected", seen in the backfill test).
#[test]
fn a_request_answered_before_its_body_was_read_says_its_connection_closes() {
    let p = Project::new()
        .file("tokens", tokens())
        .file("jobs.d/nightly.yaml", common::job("0 3 * * *"));
    let (daemon, http) = start(&p, &[]);
    let connect = || {
        let stream = TcpStream::connect(http.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    };
    let mut stream = connect();
    // Read, with its body read: the connection stays open for the next request.
    let head = answer_head(
        &mut stream,
        &format!(
            "GET /v1/jobs/nightly HTTP/1.1\r\nHost: jobs\r\nAuthorization: Bearer {READER}\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    // A reader may not trigger: refused (403) before the 2-byte body, not sent yet, is read.
    let head = answer_head(
        &mut stream,
        &format!(
            "POST /v1/jobs/nightly/trigger HTTP/1.1\r\nHost: jobs\r\nAuthorization: Bearer {READER}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // A body declared over the limit is refused (413) unread.
    let head = answer_head(
        &mut connect(),
        &format!(
            "POST /v1/jobs/nightly/trigger HTTP/1.1\r\nHost: jobs\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // A refused request whose body was read keeps its connection.
    let mut stream = connect();
    let head = answer_head(
        &mut stream,
        &format!(
            "POST /v1/jobs/nightly/trigger HTTP/1.1\r\nHost: jobs\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: 9\r\n\r\nnot json!"
        ),
    );
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(daemon.stop(), Some(0));
}
