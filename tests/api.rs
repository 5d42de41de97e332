//! The HTTP API end to end: `jobctl serve` on a free port, driven over HTTP with ureq.

mod common;

use common::{Daemon, Project};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "read-token-0123456789abcdef";

struct Http {
    base: String,
    agent: ureq::Agent,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and that the body is the API's error shape; returns its message.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        let code = body["error"]["code"].as_str().unwrap_or("");
        assert!(!code.is_empty(), "no error code: {}", self.text);
        body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {}", self.text))
            .to_string()
    }
}

impl Http {
    fn new(daemon: &mut Daemon) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Http {
            base: daemon.url(),
            agent,
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let (content_type, bytes) = body.unwrap_or(("", b""));
        if !content_type.is_empty() {
            request = request.header("Content-Type", content_type);
        }
        let request = request.body(bytes.to_vec()).unwrap();
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Reply {
            status: response.status().as_u16(),
            headers,
            text: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, None, &[])
    }

    /// Waits (at most 10 s) until `/healthz` answers 200: a connection the server drops
    /// before answering is tried again. On PostgreSQL, under CI's load, the first request
    /// after a command-line client used the same ledger has twice found its connection
    /// closed, not reproduced since (session 31's note); the requests that follow are
    /// checked as usual.
    fn wait_healthy(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let request = ureq::http::Request::builder()
                .method("GET")
                .uri(format!("{}/healthz", self.base))
                .body(Vec::new())
                .unwrap();
            match self.agent.run(request) {
                Ok(response) if response.status() == 200 => return,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "/healthz: {:?}",
                    other.map(|r| r.status())
                ),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.call(
            "POST",
            path,
            token,
            bytes.as_deref().map(|b| ("application/json", b)),
            &[],
        )
    }
}

fn project() -> Project {
    Project::new()
        .file(
            "jobs.d/deploy.yaml",
            "description: Ship it\nrun: echo \"deploying $JOBS_PARAM_BRANCH\"; echo done >&2\nparams:\n  branch: {required: true}\ntags: [ops]\n",
        )
        .file(
            "jobs.d/nightly.yaml",
            "schedule: \"0 3 * * *\"\ntimezone: Europe/Berlin\ncommand: [\"true\"]\ntags: [batch]\n",
        )
        .file(
            "jobs.d/hook.yaml",
            "command: [\"sh\", \"-c\", \"echo ref=$JOBS_PARAM_REF\"]\nparams:\n  ref: {default: main}\nwebhook: {secret_env: HOOK_SECRET}\n",
        )
        .file(
            "tokens",
            format!("# test tokens\nadmin {ADMIN}\nread {READER}\n"),
        )
}

const T0: &str = common::NOW;

fn start(p: &Project, extra: &[&str]) -> (Daemon, Http) {
    let mut args = vec!["--token-file", "tokens"];
    args.extend_from_slice(extra);
    let env = [("HOOK_SECRET", "It's a Secret to Everybody")];
    let mut daemon = p.serve_env(&args, Some(T0), &env);
    daemon.wait_for("scheduler started", &[]);
    let http = Http::new(&mut daemon);
    (daemon, http)
}

#[test]
fn tokens_and_roles_guard_every_endpoint_but_health_and_hooks() {
    let p = project();
    let (daemon, http) = start(&p, &[]);
    assert_eq!(http.get("/healthz", None).json()["status"], "ok");
    assert_eq!(http.get("/readyz", None).json()["status"], "ready");
    assert_eq!(http.get("/metrics", None).status, 200);

    let missing = http.get("/v1/jobs", None);
    assert!(missing.error(401).contains("Authorization: Bearer"));
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"jobs\"")
    );
    let wrong = http.get("/v1/jobs", Some("not-a-valid-token-at-all"));
    assert!(wrong.error(401).contains("not valid"));
    let not_bearer = http.call(
        "GET",
        "/v1/jobs",
        None,
        None,
        &[("Authorization", "Basic abc")],
    );
    assert!(not_bearer.error(401).contains("Bearer TOKEN"));

    assert_eq!(http.get("/v1/jobs", Some(READER)).status, 200);
    let forbidden = http.post("/v1/jobs/deploy/trigger", Some(READER), None);
    assert!(forbidden.error(403).contains("admin token"));
    assert!(
        http.post("/v1/jobs/nightly/pause", Some(READER), None)
            .error(403)
            .contains("admin")
    );
    assert!(
        http.post("/v1/runs/1/cancel", Some(READER), None)
            .error(403)
            .contains("admin")
    );
    assert_eq!(
        http.post("/v1/jobs/nightly/pause", Some(ADMIN), None)
            .status,
        200
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn every_error_is_json_with_the_right_status() {
    // A small body limit, so the oversized body fits in the socket's buffer and the client
    // reads the 413 instead of failing to write.
    let p = project().file("jobs.toml", "[server]\nbody_limit = \"4 KiB\"\n");
    let (daemon, http) = start(&p, &[]);
    let a = Some(ADMIN);
    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "unknown route",
            http.get("/v1/nothing", a),
            404,
            "no such endpoint",
        ),
        (
            "unknown job",
            http.get("/v1/jobs/nope", a),
            404,
            "no job `nope`",
        ),
        (
            "unknown run",
            http.get("/v1/runs/999999", a),
            404,
            "no run 999999",
        ),
        (
            "run id not a number",
            http.get("/v1/runs/abc", a),
            400,
            "abc",
        ),
        (
            "wrong method",
            http.call("DELETE", "/v1/runs", a, None, &[]),
            405,
            "does not take DELETE",
        ),
        (
            "malformed JSON",
            http.call(
                "POST",
                "/v1/jobs/deploy/trigger",
                a,
                Some(("application/json", b"{\"params\":")),
                &[],
            ),
            400,
            "not valid JSON",
        ),
        (
            "JSON of the wrong shape",
            http.post(
                "/v1/jobs/deploy/trigger",
                a,
                Some(json!({"params": ["main"]})),
            ),
            422,
            "does not fit",
        ),
        (
            "unknown field",
            http.post("/v1/jobs/deploy/trigger", a, Some(json!({"parms": {}}))),
            422,
            "unknown field",
        ),
        (
            "not JSON",
            http.call(
                "POST",
                "/v1/jobs/deploy/trigger",
                a,
                Some(("text/plain", b"branch=main")),
                &[],
            ),
            415,
            "application/json",
        ),
        (
            "too large",
            http.call(
                "POST",
                "/v1/jobs/deploy/trigger",
                a,
                Some(("application/json", &vec![b' '; 8 * 1024])),
                &[],
            ),
            413,
            "larger than the limit",
        ),
        (
            "unknown parameter",
            http.post(
                "/v1/jobs/deploy/trigger",
                a,
                Some(json!({"params": {"branch": "x", "color": "red"}})),
            ),
            400,
            "has no parameter `color`; it declares: branch",
        ),
        (
            "missing parameter",
            http.post("/v1/jobs/deploy/trigger", a, None),
            400,
            "needs the parameter `branch`",
        ),
        (
            "bad state filter",
            http.get("/v1/runs?state=done", a),
            400,
            "done",
        ),
        (
            "bad limit",
            http.get("/v1/runs?limit=0", a),
            400,
            "between 1 and 1000",
        ),
        (
            "bad since",
            http.get("/v1/runs?since=yesterday", a),
            400,
            "RFC 3339",
        ),
        (
            "bad schedule kind",
            http.get("/v1/jobs?schedule_kind=hourly", a),
            400,
            "not one of",
        ),
        (
            "bad query type",
            http.get("/v1/jobs?enabled=maybe", a),
            400,
            "enabled",
        ),
        (
            "hook of a job without one",
            http.post("/v1/hooks/nightly", Some(READER), None),
            404,
            "has no webhook",
        ),
    ];
    for (name, reply, status, message) in cases {
        let text = reply.error(status);
        assert!(text.contains(message), "{name}: {text}");
        if status == 413 {
            // The refused body is left unread: the server closes the connection and says so,
            // so a pooling client does not send its next request into a closed socket.
            assert_eq!(reply.header("connection"), Some("close"), "{name}");
        }
    }
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn jobs_are_listed_filtered_and_shown_with_their_next_fires() {
    let p = project();
    let (daemon, http) = start(&p, &[]);
    let r = Some(READER);
    let all = http.get("/v1/jobs", r).json();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deploy", "hook", "nightly"]);
    let nightly = &all[2];
    assert_eq!(nightly["schedule"], "0 3 * * *");
    assert_eq!(nightly["schedule_kind"], "cron");
    assert_eq!(nightly["timezone"], "Europe/Berlin");
    assert_eq!(nightly["owner"], "file");
    assert_eq!(nightly["file"], "nightly.yaml");
    assert!(
        nightly["schedule_description"]
            .as_str()
            .unwrap()
            .contains("03:00"),
        "{nightly}"
    );
    assert!(
        nightly["next_fire"]
            .as_str()
            .unwrap()
            .contains("T03:00:00+0"),
        "{nightly}"
    );

    let filtered = |q: &str| -> Vec<String> {
        http.get(&format!("/v1/jobs?{q}"), r)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(filtered("tag=ops"), ["deploy"]);
    assert_eq!(filtered("schedule_kind=cron"), ["nightly"]);
    assert_eq!(filtered("schedule_kind=manual"), ["deploy", "hook"]);
    assert_eq!(filtered("enabled=false"), Vec::<String>::new());

    let one = http.get("/v1/jobs/nightly", r).json();
    assert_eq!(one["next_fires"].as_array().unwrap().len(), 5);
    assert!(one["definition"].as_str().unwrap().contains("0 3 * * *"));
    assert_eq!(one["revisions"], 1);

    let paused = http
        .post(
            "/v1/jobs/nightly/pause",
            Some(ADMIN),
            Some(json!({"reason": "db migration"})),
        )
        .json();
    assert_eq!(paused["changed"], true);
    assert_eq!(paused["paused"]["reason"], "db migration");
    assert_eq!(paused["paused"]["by"], "api");
    assert_eq!(http.get("/v1/jobs/nightly", r).json()["state"], "paused");
    let again = http
        .post("/v1/jobs/nightly/pause", Some(ADMIN), None)
        .json();
    assert_eq!(again["changed"], false);
    let resumed = http
        .post("/v1/jobs/nightly/resume", Some(ADMIN), None)
        .json();
    assert_eq!(
        (resumed["changed"].clone(), resumed["paused"].clone()),
        (json!(true), Value::Null)
    );
    assert_eq!(http.get("/v1/jobs/nightly", r).json()["state"], "active");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_triggered_run_is_read_back_with_events_logs_and_pages() {
    let p = project();
    let (mut daemon, http) = start(&p, &[]);
    let run = http.post(
        "/v1/jobs/deploy/trigger",
        Some(ADMIN),
        Some(json!({"params": {"branch": "main; rm -rf /"}})),
    );
    assert_eq!(run.status, 202, "{}", run.text);
    let run = run.json();
    assert_eq!(run["state"], "pending");
    assert_eq!(run["trigger"], "manual");
    let id = run["id"].as_i64().unwrap();
    daemon.wait_for("run ended", &[("run", &id.to_string())]);

    let got = http.get(&format!("/v1/runs/{id}"), Some(READER)).json();
    assert_eq!(got["state"], "succeeded");
    assert_eq!(got["exit_code"], 0);
    assert_eq!(got["params"]["branch"], "main; rm -rf /");
    let events = http
        .get(&format!("/v1/runs/{id}/events"), Some(READER))
        .json();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"finished"), "{kinds:?}");
    let logs = http
        .get(&format!("/v1/runs/{id}/logs"), Some(READER))
        .json();
    assert_eq!(logs["next_after"], Value::Null, "one page: {logs}");
    let lines: Vec<(&str, &str)> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["stream"].as_str().unwrap(), l["line"].as_str().unwrap()))
        .collect();
    assert!(
        lines.contains(&("stdout", "deploying main; rm -rf /")),
        "{lines:?}"
    );
    assert!(lines.contains(&("stderr", "done")), "{lines:?}");
    assert!(
        http.post(&format!("/v1/runs/{id}/cancel"), Some(ADMIN), None)
            .error(409)
            .contains("already ended")
    );

    // Pages: three more runs, two per page, newest first, each run once.
    for _ in 0..3 {
        let r = http.post(
            "/v1/jobs/deploy/trigger",
            Some(ADMIN),
            Some(json!({"params": {"branch": "b"}})),
        );
        assert_eq!(r.status, 202);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/v1/runs?job=deploy&limit=2&cursor={c}"),
            None => "/v1/runs?job=deploy&limit=2".to_string(),
        };
        let page = http.get(&path, Some(READER)).json();
        seen.extend(
            page["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no repeats");
    assert_eq!(seen.len(), 4);
    let manual = http
        .get(
            "/v1/runs?trigger=manual&since=2000-01-01T00:00:00Z",
            Some(READER),
        )
        .json();
    assert_eq!(manual["runs"].as_array().unwrap().len(), 4);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_trigger_overrides_the_timeout_for_that_run_only() {
    let p = project().file(
        "jobs.d/slow.yaml",
        "run: echo started; sleep 30\ntimeout: 1h\nretry: {attempts: 1, backoff: 1s}\n",
    );
    let (mut daemon, http) = start(&p, &[]);
    let bad = http.post(
        "/v1/jobs/slow/trigger",
        Some(ADMIN),
        Some(json!({"timeout": "soon"})),
    );
    assert!(bad.error(400).contains("timeout: `soon` is not a duration"));
    // Through the API: the run and its retry stop after one second, not an hour.
    let run = http.post(
        "/v1/jobs/slow/trigger",
        Some(ADMIN),
        Some(json!({"timeout": "1s"})),
    );
    assert_eq!(run.status, 202, "{}", run.text);
    let run = run.json();
    assert_eq!(run["overrides"], json!({"timeout": "1s"}));
    let id = run["id"].as_i64().unwrap();
    let ended = daemon.wait_for("run ended; retrying", &[("run", &id.to_string())]);
    assert_eq!(ended["state"], "timed_out");
    let retry = daemon.wait_for("run ended", &[("job", "slow")]);
    assert_eq!(retry["state"], "timed_out");
    let retry = http
        .get(&format!("/v1/runs/{}", retry["run"]), Some(READER))
        .json();
    assert_eq!(retry["overrides"]["timeout"], "1s", "the retry keeps it");
    // Through the CLI: recorded on the run and shown by `run get`; other runs keep the hour.
    p.run(&["trigger", "slow", "--timeout", "0s"])
        .code(1)
        .stderr_has("--timeout: `0s` is zero");
    let queued = p.run_live(&["trigger", "slow", "--timeout", "1s"]).code(0);
    let cli = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    let ended = daemon.wait_for("run ended; retrying", &[("run", &cli)]);
    assert_eq!(ended["state"], "timed_out");
    p.run_live(&["run", "get", &cli])
        .code(0)
        .stdout_has("timeout 1s (this run only)");
    p.run_live(&["run", "events", &cli])
        .code(0)
        .stdout_has("for this run only: timeout 1s");
    let plain = http.post("/v1/jobs/slow/trigger", Some(ADMIN), None).json();
    assert_eq!(plain["overrides"], Value::Null, "{plain}");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_backfill_runs_each_missing_slot_with_the_revision_in_force_then() {
    let job = |word: &str| {
        format!(
            "schedule: \"0 * * * *\"\ntimezone: UTC\nmissed: skip\nconcurrency: allow\nrun: echo {word} $JOBS_SCHEDULED_AT; sleep 0.3\n"
        )
    };
    let p = project().file("jobs.d/hourly.yaml", job("one"));
    p.run_with(&["apply"], &[("JOBS_NOW", "2026-11-20T00:30:00Z")])
        .code(0);
    p.write("jobs.d/hourly.yaml", job("two"));
    p.run_with(&["apply"], &[("JOBS_NOW", "2026-11-20T03:30:00Z")])
        .code(0);
    // The daemon was down until 06:30: it records the slots 01:00 to 06:00 as missed.
    let env = [("HOOK_SECRET", "s")];
    let mut daemon = p.serve_env(
        &["--token-file", "tokens"],
        Some("2026-11-20T06:30:00Z"),
        &env,
    );
    daemon.wait_for("scheduler started", &[]);
    p.until(
        "SELECT count(*) FROM runs WHERE job = 'hourly' AND trigger = 'missed'",
        std::time::Duration::from_secs(10),
        |n| n == "1",
    );
    let http = Http::new(&mut daemon);
    let window = [
        "--from",
        "2026-11-20T00:00:00Z",
        "--to",
        "2026-11-20T07:00:00Z",
    ];
    let dry = p
        .run_live(&[&["backfill", "hourly", "--dry-run"][..], &window[..]].concat())
        .code(0)
        .stdout_has(
            "Would backfill 6 slots of hourly from 2026-11-20T00:00:00.000Z to 2026-11-20T06:30:",
        )
        .stdout_has("the scheduler's");
    let listed: Vec<(String, String)> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("2026-"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    let want: Vec<(String, String)> = [(1, "1"), (2, "1"), (3, "1"), (4, "2"), (5, "2"), (6, "2")]
        .iter()
        .map(|(h, r)| (format!("2026-11-20T0{h}:00:00.000Z"), r.to_string()))
        .collect();
    assert_eq!(
        listed, want,
        "each slot with the revision applied before it"
    );
    assert_eq!(
        p.sql("SELECT count(*) FROM runs WHERE trigger = 'backfill'"),
        "0",
        "a dry run creates nothing"
    );
    http.wait_healthy();

    let bad = |body: Value| {
        http.post("/v1/jobs/hourly/backfill", Some(ADMIN), Some(body))
            .error(400)
    };
    assert!(bad(json!({"from": "1d", "to": "2d"})).contains("--from must be before --to"));
    assert!(bad(json!({"from": "1d", "to": "0s", "parallel": 0})).contains("between 1 and 64"));
    assert!(bad(json!({"from": "yesterday", "to": "0s"})).starts_with("from: "));
    http.post(
        "/v1/jobs/deploy/backfill",
        Some(ADMIN),
        Some(json!({"from": "1d", "to": "0s"})),
    )
    .error(400)
    .contains("has no schedule");
    http.post(
        "/v1/jobs/nope/backfill",
        Some(ADMIN),
        Some(json!({"from": "1d", "to": "0s"})),
    )
    .error(404);
    http.post(
        "/v1/jobs/hourly/backfill",
        Some(READER),
        Some(json!({"from": "1d", "to": "0s"})),
    )
    .error(403);

    let body = json!({"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T07:00:00Z", "parallel": 2});
    let queued = http.post("/v1/jobs/hourly/backfill", Some(ADMIN), Some(body.clone()));
    assert_eq!(queued.status, 202, "{}", queued.text);
    let queued = queued.json();
    assert_eq!(queued["parallel"], 2);
    let ids: Vec<i64> = queued["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    for _ in &ids {
        daemon.wait_for("run ended", &[("job", "hourly")]);
    }
    let mut spans = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let run = http.get(&format!("/v1/runs/{id}"), Some(READER)).json();
        assert_eq!(run["trigger"], "backfill");
        assert_eq!(run["state"], "succeeded", "{run}");
        assert_eq!(run["scheduled_at"], want[i].0.as_str());
        assert_eq!(run["revision"].to_string(), want[i].1);
        assert_eq!(run["backfill_id"], queued["backfill_id"]);
        let word = if i < 3 { "one" } else { "two" };
        p.run_live(&["logs", &id.to_string()])
            .code(0)
            .stdout_has(&format!("{word} {}", &want[i].0[..19]));
        let at = |f: &str| run[f].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
        spans.push((at("started_at"), at("finished_at")));
    }
    for (start, _) in &spans {
        let at_once = spans
            .iter()
            .filter(|(s, f)| s <= start && start < f)
            .count();
        assert!(at_once <= 2, "at most 2 at a time: {spans:?}");
    }
    // Every slot has a run now: a second backfill finds nothing, and creates nothing.
    let again = http.post("/v1/jobs/hourly/backfill", Some(ADMIN), Some(body));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["slots"], json!([]));
    p.run_live(&[&["backfill", "hourly"][..], &window[..]].concat())
        .code(0)
        .stdout_has("Nothing to backfill for hourly");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn logs_follow_streams_lines_then_the_end_as_server_sent_events() {
    let p = project().file(
        "jobs.d/slow.yaml",
        "run: for i in 1 2 3; do echo line $i; sleep 0.2; done\n",
    );
    let (mut daemon, http) = start(&p, &[]);
    let run = http.post("/v1/jobs/slow/trigger", Some(ADMIN), None).json();
    let id = run["id"].as_i64().unwrap();
    daemon.wait_for("process started", &[("run", &id.to_string())]);
    let reply = http.get(&format!("/v1/runs/{id}/logs?follow=true"), Some(READER));
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events: Vec<(String, Value)> = Vec::new();
    let mut kind = String::new();
    for line in reply.text.lines() {
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((kind.clone(), serde_json::from_str(data).unwrap()));
        }
    }
    let lines: Vec<&str> = events
        .iter()
        .filter(|(k, _)| k == "line")
        .map(|(_, v)| v["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["line 1", "line 2", "line 3"]);
    let (last_kind, last) = events.last().unwrap();
    assert_eq!(last_kind, "end");
    assert_eq!(last["state"], "succeeded");
    assert_eq!(daemon.stop(), Some(0));
}

fn hook(http: &Http, body: &str, headers: &[(&str, &str)]) -> Reply {
    hook_of(http, "hook", body, headers)
}

fn hook_of(http: &Http, job: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    http.call(
        "POST",
        &format!("/v1/hooks/{job}"),
        None,
        Some(("application/json", body.as_bytes())),
        headers,
    )
}
#[test]
fn webhooks_need_a_valid_fresh_signature_and_are_rate_limited() {
    let p = project()
        .file("jobs.toml", "[server]\nwebhook_rate_limit = 3\n")
        .file(
            "jobs.d/unset.yaml",
            "command: [\"true\"]\nwebhook: {secret_env: NOT_SET_ANYWHERE}\n",
        );
    let (mut daemon, http) = start(&p, &[]);
    let secret = b"It's a Secret to Everybody";
    // GitHub's own example delivery: its exact header format.
    let body = "Hello, World!";
    let github = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let ok = hook(&http, body, &[("X-Hub-Signature-256", github)]);
    assert_eq!(ok.status, 202, "{}", ok.text);
    let run = ok.json();
    assert_eq!(run["trigger"], "webhook");
    assert_eq!(run["params"], Value::Null);

    let with_params = r#"{"params": {"ref": "v1.2"}}"#;
    let signed = jobs::webhook::sign(secret, None, with_params.as_bytes());
    let run = hook(&http, with_params, &[("X-Jobs-Signature", &signed)]).json();
    let id = run["id"].as_i64().unwrap().to_string();
    daemon.wait_for("run ended", &[("run", &id)]);
    let logs = http
        .get(&format!("/v1/runs/{id}/logs"), Some(READER))
        .json();
    assert_eq!(logs["lines"][0]["line"], "ref=v1.2");

    // The daemon's clock starts at T0 (JOBS_NOW).
    let now = T0.parse::<jiff::Timestamp>().unwrap().as_second();
    let fresh = now.to_string();
    let stale = (now - 600).to_string();
    let zeros = format!("sha256={}", "0".repeat(64));
    let replayed = jobs::webhook::sign(secret, Some(&stale), body.as_bytes());
    let refusals = [
        ("unsigned", vec![], "not signed"),
        (
            "bad format",
            vec![("X-Hub-Signature-256", "sha1=abc")],
            "sha256=",
        ),
        (
            "wrong",
            vec![("X-Hub-Signature-256", &*zeros)],
            "does not match",
        ),
        (
            "replayed",
            vec![
                ("X-Jobs-Signature", &*replayed),
                ("X-Jobs-Timestamp", &*stale),
            ],
            "away from the server's time",
        ),
        (
            "timestamp not signed",
            vec![("X-Jobs-Signature", github), ("X-Jobs-Timestamp", &*fresh)],
            "does not match",
        ),
    ];
    for (name, headers, message) in &refusals {
        let text = hook(&http, body, headers).error(401);
        assert!(text.contains(message), "{name}: {text}");
    }
    let timestamped = jobs::webhook::sign(secret, Some(&fresh), body.as_bytes());
    let fresh_ok = hook(
        &http,
        body,
        &[
            ("X-Jobs-Signature", &timestamped),
            ("X-Jobs-Timestamp", &fresh),
        ],
    );
    assert_eq!(fresh_ok.status, 202, "{}", fresh_ok.text);

    // Three a minute: the fourth valid call is refused with Retry-After.
    let limited = hook(&http, body, &[("X-Hub-Signature-256", github)]);
    assert!(limited.error(429).contains("retry in"));
    assert!(limited.header("retry-after").is_some());

    // A secret the server does not have is the operator's problem: 503, and the log says why.
    let unset = hook_of(&http, "unset", body, &[("X-Hub-Signature-256", github)]);
    assert!(unset.error(503).contains("not available on the server"));
    daemon.wait_for("webhook secret", &[("job", "unset")]);

    let runs = http.get("/v1/runs?job=hook", Some(READER)).json();
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        3,
        "refused calls start nothing"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn metrics_count_runs_and_can_require_a_token() {
    let p = project()
        .file("jobs.toml", "[server]\npublic_metrics = false\n")
        .file("jobs.d/slow.yaml", "command: [\"sleep\", \"30\"]\n");
    let (mut daemon, http) = start(&p, &[]);
    http.get("/metrics", None).error(401);
    let slow = http.post("/v1/jobs/slow/trigger", Some(ADMIN), None).json();
    daemon.wait_for("process started", &[("run", &slow["id"].to_string())]);
    let during = http.get("/metrics", Some(READER)).text;
    assert!(during.contains("jobs_runs_active 1"), "{during}");
    http.post(
        &format!("/v1/runs/{}/cancel", slow["id"]),
        Some(ADMIN),
        None,
    );
    daemon.wait_for("run ended", &[("run", &slow["id"].to_string())]);
    let run = http
        .post(
            "/v1/jobs/deploy/trigger",
            Some(ADMIN),
            Some(json!({"params": {"branch": "x"}})),
        )
        .json();
    daemon.wait_for("run ended", &[("run", &run["id"].to_string())]);
    let text = http.get("/metrics", Some(READER)).text;
    for needle in [
        "jobs_runs_finished_total{job=\"deploy\",state=\"succeeded\"} 1",
        "jobs_run_duration_seconds_count{job=\"deploy\"} 1",
        "jobs_fire_latency_seconds_count 2",
        "jobs_runs_pending 0",
        "jobs_runs_active 0",
        "jobs_jobs 4",
        "jobs_definition_errors 0",
        "jobs_last_success_timestamp_seconds{job=\"deploy\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn the_openapi_document_describes_every_endpoint() {
    let p = project();
    let (daemon, http) = start(&p, &[]);
    let doc = http.get("/v1/openapi.json", None).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/jobs",
        "/v1/jobs/{name}",
        "/v1/jobs/{name}/trigger",
        "/v1/jobs/{name}/pause",
        "/v1/jobs/{name}/resume",
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/events",
        "/v1/runs/{id}/logs",
        "/v1/runs/{id}/cancel",
        "/v1/hooks/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is not in the document"
        );
    }
    assert!(doc["components"]["schemas"].get("RunRow").is_some());
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_public_address_without_tokens_is_refused_and_readyz_reports_bad_files() {
    let p = project();
    let out = p.run(&["serve", "--listen", "0.0.0.0:0"]).code(1);
    out.stderr_has("not loopback, with no token configured");
    // Bad tokens stop the server before it starts, naming the file and line.
    let bad_tokens = project().file("tokens", "# ops\nwriter wwwwwwwwwwwwwwwwwwww\n");
    bad_tokens
        .run(&["serve", "--listen", "127.0.0.1:0", "--token-file", "tokens"])
        .code(1)
        .stderr_has("tokens:2: role `writer` is not `read` or `admin`");
    p.run_with(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("JOBS_TOKEN", "short")],
    )
    .code(1)
    .stderr_has("JOBS_TOKEN: a token must be at least 16 characters");
    p.run(&["serve", "--listen", "nowhere"])
        .code(1)
        .stderr_has("--listen `nowhere` is not ADDRESS:PORT");
    // A daemon that could not listen gave its lease back (SQLite takes it first, to refuse a
    // second daemon; a node on PostgreSQL asks for it once it has joined).
    let status = p.run(&["status"]).code(3);
    if p.ledger_url.is_none() {
        status
            .stdout_has("Daemon:   not running (last: pid")
            .stdout_has("until 2026-10-31");
    } else {
        status.stdout_has("Daemon:   never started");
    }
    let bad = project().file(
        "jobs.d/broken.yaml",
        "schedule: \"61 * * * *\"\ncommand: [\"true\"]\n",
    );
    let (daemon, http) = start(&bad, &[]);
    // Reported, but not unready: the other jobs fire (issue 13).
    let ready = http.get("/readyz", None);
    assert_eq!(ready.status, 200);
    assert!(
        ready.json()["jobs_dir"]
            .as_str()
            .unwrap()
            .contains("broken.yaml")
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn the_cli_talks_to_a_server_with_the_same_output() {
    let p = project()
        .file("jobs.d/fails.yaml", "run: echo about to fail; exit 7\n")
        .file(
            "jobs.d/announce.yaml",
            "schedule: {after: [deploy]}\ndepends_on: [nightly]\ncommand: [\"true\"]\n",
        );
    let (daemon, http) = start(&p, &[]);
    let url = http.base.clone();
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["--server", url.as_str(), "--token", token];
        all.extend_from_slice(args);
        // At the same fixed instant as the local commands (the client only uses it to say
        // how far away a fire is).
        p.run(&all)
    };
    // The same JSON from the API as from the local ledger.
    for args in [
        &["list", "-o", "json"][..],
        &["get", "nightly", "-o", "json"],
        &["list"],
        &["get", "nightly"],
        &["graph"],
        &["graph", "-o", "json"],
        &["graph", "-o", "dot"],
    ] {
        let local = p.run(args).code(0).stdout.clone();
        let over_http = remote(READER, args).code(0).stdout.clone();
        assert_eq!(over_http, local, "jobs {args:?}");
    }
    let graph = http.get("/v1/graph", Some(READER)).json();
    assert_eq!(
        graph["edges"],
        json!([
            {"from": "deploy", "to": "announce", "kind": "after"},
            {"from": "nightly", "to": "announce", "kind": "depends_on"},
        ])
    );
    assert_eq!(http.get("/v1/graph", None).status, 401);

    // trigger --wait follows the output and passes the exit code through.
    let waited = remote(ADMIN, &["trigger", "fails", "--wait"]);
    waited
        .code(7)
        .stdout_has("about to fail")
        .stderr_has("queued");
    let ok = remote(
        ADMIN,
        &["trigger", "deploy", "--param", "branch=main", "--wait"],
    );
    ok.code(0).stdout_has("deploying main");
    remote(READER, &["trigger", "deploy", "--param", "branch=x"])
        .code(1)
        .stderr_has("the server answered 403")
        .stderr_has("admin token");
    remote(ADMIN, &["trigger", "deploy"])
        .code(1)
        .stderr_has("needs the parameter `branch`");

    let runs = remote(READER, &["runs", "fails", "-o", "json"])
        .code(0)
        .json();
    let id = runs[0]["id"].to_string();
    assert_eq!(runs[0]["exit_code"], 7);
    assert_eq!(
        remote(READER, &["runs", "-o", "json"]).code(0).stdout,
        p.run(&["runs", "-o", "json"]).code(0).stdout
    );
    assert_eq!(
        remote(READER, &["run", "get", &id]).code(0).stdout,
        p.run(&["run", "get", &id]).code(0).stdout
    );
    remote(READER, &["run", "events", &id])
        .code(0)
        .stdout_has("finished");
    remote(READER, &["logs", &id])
        .code(0)
        .stdout_has("about to fail");
    remote(READER, &["logs", &id, "-f"])
        .code(0)
        .stdout_has("about to fail");
    remote(ADMIN, &["run", "cancel", &id])
        .code(1)
        .stderr_has("the server answered 409")
        .stderr_has("already ended");

    remote(ADMIN, &["pause", "nightly", "--reason", "maintenance"])
        .code(0)
        .stdout_has("nightly paused");
    remote(READER, &["status"])
        .code(0)
        .stdout_has("Daemon:   running")
        .stdout_has("Files:    valid");
    remote(ADMIN, &["resume", "nightly"])
        .code(0)
        .stdout_has("nightly resumed");

    remote(READER, &["list", "--all"])
        .code(1)
        .stderr_has("--all is not available with --server");
    remote(READER, &["validate"])
        .code(1)
        .stderr_has("not with --server");
    p.run_live(&["--server", &url, "list"])
        .code(1)
        .stderr_has("Authorization: Bearer");
    p.run_live(&["--server", "http://127.0.0.1:1", "list"])
        .code(1)
        .stderr_has("cannot reach the server at http://127.0.0.1:1");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_remote_plan_shows_what_merging_files_would_change_on_the_server() {
    let p = project()
        .file("pr/deploy.yaml", "description: Ship it faster\nrun: echo \"deploying $JOBS_PARAM_BRANCH\"; echo done >&2\nparams:\n  branch: {required: true}\ntags: [ops]\n")
        .file("pr/nightly.yaml", "schedule: \"0 4 * * *\"\ntimezone: Europe/Berlin\ncommand: [\"true\"]\ntags: [batch]\n")
        .file("pr/weekly.yaml", "schedule: \"0 5 * * 1\"\ncommand: [\"true\"]\n")
        .file("bad/broken.yaml", "schedule: \"0 25 * * *\"\ncommand: [\"true\"]\n");
    let (daemon, http) = start(&p, &[]);
    let url = http.base.clone();
    // The daemon's ledger: the file, or this test's PostgreSQL database.
    let ledger = p
        .ledger_url
        .clone()
        .unwrap_or_else(|| ".jobs/ledger.db".to_string());
    let ledger = ledger.as_str();
    for format in ["table", "json"] {
        let local = p
            .run(&[
                "--dir",
                "pr",
                "--ledger",
                ledger,
                "plan",
                "--detailed-exitcode",
                "-o",
                format,
            ])
            .code(2)
            .stdout
            .clone();
        let remote = p
            .run(&[
                "--server",
                &url,
                "--token",
                READER,
                "--dir",
                "pr",
                "plan",
                "--detailed-exitcode",
                "-o",
                format,
            ])
            .code(2)
            .stdout
            .clone();
        assert_eq!(remote, local, "plan -o {format}");
    }
    let text = p
        .run(&["--server", &url, "--token", READER, "--dir", "pr", "plan"])
        .code(0)
        .stdout
        .clone();
    for needle in [
        "+ weekly",
        "~ deploy",
        "~ nightly",
        "- hook",
        "Plan: 1 to add, 2 to change, 1 to remove",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
    p.run(&["--server", &url, "--token", READER, "--dir", "bad", "plan"])
        .code(1)
        .stderr_has("bad/broken.yaml:1:")
        .stderr_has("cannot plan these files");
    let bad_path = http.post(
        "/v1/plan",
        Some(READER),
        Some(json!({"files": {"../etc/passwd.yaml": ""}})),
    );
    assert!(bad_path.error(400).contains("not a job file path"));
    // Nothing was applied: the server still has its own files' revisions.
    assert_eq!(
        http.get("/v1/jobs/nightly", Some(READER)).json()["revision"],
        1
    );
    assert_eq!(daemon.stop(), Some(0));
}

fn send(http: &Http, method: &str, path: &str, kind: &str, body: &str) -> Reply {
    http.call(
        method,
        path,
        Some(ADMIN),
        Some((kind, body.as_bytes())),
        &[],
    )
}

#[test]
fn api_owned_jobs_are_created_patched_and_deleted_while_files_stay_in_git() {
    let p = project();
    let (mut daemon, http) = start(&p, &[]);
    let yaml = "name: adhoc\nschedule: \"0 6 * * *\"\ncommand: [\"sh\", \"-c\", \"sleep 30\"]\nconcurrency: allow\n";
    let created = send(&http, "POST", "/v1/jobs", "application/yaml", yaml);
    assert_eq!(created.status, 201, "{}", created.text);
    let job = created.json();
    assert_eq!(
        (
            job["owner"].clone(),
            job["revision"].clone(),
            job["file"].clone()
        ),
        (json!("api"), json!(1), Value::Null)
    );
    assert_eq!(job["schedule"], "0 6 * * *");

    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "again",
            send(&http, "POST", "/v1/jobs", "application/yaml", yaml),
            409,
            "already exists",
        ),
        (
            "a file's name",
            send(
                &http,
                "POST",
                "/v1/jobs",
                "application/json",
                r#"{"name": "nightly", "command": ["true"]}"#,
            ),
            409,
            "defined by the file nightly.yaml",
        ),
        (
            "invalid",
            send(
                &http,
                "POST",
                "/v1/jobs",
                "application/yaml",
                "name: broken\nschedule: \"0 25 * * *\"\ncommand: [\"true\"]\n",
            ),
            422,
            "broken.yaml:2:",
        ),
        (
            "no name",
            send(
                &http,
                "POST",
                "/v1/jobs",
                "application/yaml",
                "command: [\"true\"]\n",
            ),
            422,
            "needs `name: NAME`",
        ),
        (
            "not a definition type",
            send(&http, "POST", "/v1/jobs", "text/plain", yaml),
            415,
            "application/yaml",
        ),
        (
            "patch a file's job",
            send(
                &http,
                "PATCH",
                "/v1/jobs/nightly",
                "application/json",
                r#"{"schedule": "0 1 * * *"}"#,
            ),
            409,
            "defined by the file nightly.yaml",
        ),
        (
            "delete a file's job",
            http.call("DELETE", "/v1/jobs/nightly", Some(ADMIN), None, &[]),
            409,
            "change it there",
        ),
        (
            "patch a missing job",
            send(&http, "PATCH", "/v1/jobs/ghost", "application/json", "{}"),
            404,
            "no API-owned job `ghost`",
        ),
        (
            "read token",
            http.call("DELETE", "/v1/jobs/adhoc", Some(READER), None, &[]),
            403,
            "admin",
        ),
    ];
    for (name, reply, status, message) in cases {
        let text = reply.error(status);
        assert!(text.contains(message), "{name}: {text}");
    }

    // A patch changes the fields it gives and keeps the rest.
    let patched = send(
        &http,
        "PATCH",
        "/v1/jobs/adhoc",
        "application/json",
        r#"{"schedule": "*/5 * * * *", "description": "every five"}"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let job = patched.json();
    assert_eq!(
        (job["revision"].clone(), job["schedule"].clone()),
        (json!(2), json!("*/5 * * * *"))
    );
    assert!(
        job["definition"].as_str().unwrap().contains("sleep 30"),
        "{job}"
    );
    assert_eq!(job["description"], "every five");

    // Git's jobs and the API's live side by side: a reconcile of the files keeps it, and the
    // plan lists it apart.
    daemon.signal(libc::SIGHUP);
    daemon.wait_for("reconciled", &[]);
    assert_eq!(
        http.get("/v1/jobs/adhoc", Some(READER)).json()["state"],
        "active"
    );
    p.run(&["plan"]).code(0).stdout_has("adhoc");

    let run = http
        .post("/v1/jobs/adhoc/trigger", Some(ADMIN), None)
        .json();
    let id = run["id"].to_string();
    daemon.wait_for("process started", &[("run", &id)]);
    let deleted = http.call(
        "DELETE",
        "/v1/jobs/adhoc?cancel_active=true",
        Some(ADMIN),
        None,
        &[],
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json()["cancelled_runs"], json!([run["id"]]));
    daemon.wait_for("run ended", &[("run", &id)]);
    assert_eq!(
        http.get(&format!("/v1/runs/{id}"), Some(READER)).json()["state"],
        "cancelled"
    );
    assert_eq!(
        http.get("/v1/jobs/adhoc", Some(READER)).json()["state"],
        "removed"
    );
    assert!(
        http.get("/v1/jobs", Some(READER))
            .json()
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["name"] != "adhoc")
    );

    // The CLI does the same with --server.
    let url = http.base.clone();
    let p2 = p
        .file(
            "defs/report.yaml",
            "schedule: \"0 7 * * *\"\ncommand: [\"true\"]\n",
        )
        .file(
            "defs/report-8.toml",
            "schedule = \"0 8 * * *\"\ncommand = [\"true\"]\n",
        )
        .file(
            "defs/broken.yaml",
            "# a comment first\nschedule: \"0 8 * * *\"\ncommand: [\"true\"]\ntimeout: soon\n",
        )
        .file(
            "defs/broken.toml",
            "schedule = \"0 8 * * *\"\ncommand = [\"true\"]\ntimeout = \"soon\"\n",
        );
    let cli = |args: &[&str]| {
        let mut all = vec!["--server", url.as_str(), "--token", ADMIN];
        all.extend_from_slice(args);
        p2.run(&all)
    };
    cli(&["create", "--file", "defs/report.yaml"])
        .code(0)
        .stdout_has("report created (revision 1)");
    cli(&["update", "report", "--file", "defs/report-8.toml"])
        .code(0)
        .stdout_has("report updated (revision 2)");
    // A mistake is shown at the line of the user's own file, YAML or TOML, and changes nothing.
    for (file, at) in [
        ("defs/broken.yaml", "defs/broken.yaml:4:10"),
        ("defs/broken.toml", "defs/broken.toml:3:11"),
    ] {
        cli(&["update", "report", "--file", file])
            .code(1)
            .stderr_has(at)
            .stderr_has("timeout")
            .stderr_has("the server changed nothing");
    }
    cli(&["create", "--file", "defs/broken.yaml"])
        .code(1)
        .stderr_has("defs/broken.yaml:4:10");
    cli(&["get", "report"])
        .code(0)
        .stdout_has("0 8 * * *")
        .stdout_has("api");
    cli(&["delete", "report"])
        .code(0)
        .stdout_has("report removed");
    p2.run(&["delete", "report"])
        .code(1)
        .stderr_has("pass --server URL");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_client_too_slow_to_send_its_request_is_cut_off() {
    use std::io::{Read, Write};
    let p = project().file("jobs.toml", "[server]\nrequest_timeout = \"1s\"\n");
    let (daemon, http) = start(&p, &[]);
    let addr = http.base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    // A bound on the test itself, far above the 1 s the server allows.
    slow.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    // The server closes the connection (perhaps after a 408): read returns end of stream.
    let closed = slow.read_to_end(&mut rest).is_ok();
    assert!(closed, "the server kept a half-sent request open");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    // Other clients are served meanwhile and after.
    assert_eq!(http.get("/healthz", None).status, 200);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn runs_link_to_their_dashboard_pages_when_the_public_address_is_known() {
    let p = project().file(
        "jobs.toml",
        "[server]\npublic_url = \"https://jobs.example.com/\"\n",
    );
    let (daemon, http) = start(&p, &[]);
    let url = http.base.clone();
    let page = "https://jobs.example.com/runs/1";
    // Through the server (which read `public_url` from the same jobs.toml) and locally.
    let queued = p
        .run(&["--server", &url, "--token", ADMIN, "trigger", "nightly"])
        .code(0)
        .stdout_has(page);
    let _ = queued;
    let json = p
        .run(&[
            "--server", &url, "--token", READER, "run", "get", "1", "-o", "json",
        ])
        .code(0)
        .json();
    assert_eq!(json["url"], page);
    p.run(&["--server", &url, "--token", READER, "run", "get", "1"])
        .code(0)
        .stdout_has(&format!("Page:         {page}"));
    p.run(&["run", "get", "1"])
        .code(0)
        .stdout_has(&format!("Page:         {page}"));
    p.run(&["trigger", "nightly"])
        .code(0)
        .stdout_has("https://jobs.example.com/runs/2");
    drop(daemon);
}

#[test]
fn a_scoped_token_sees_and_acts_on_its_folders_only() {
    const TEAM_A: &str = "team-a-read-0123456789abcdef";
    const ALICE: &str = "team-a-admin-0123456789abcdef";
    const TEAM_B: &str = "team-b-read-0123456789abcdef";
    let p = Project::new()
        .file(
            "jobs.d/team-a/a.yaml",
            "schedule: \"0 * * * *\"\ncommand: [echo, a]\ntags: [alpha]\n",
        )
        .file(
            "jobs.d/team-b/b.yaml",
            "schedule: {after: [a]}\ncommand: [echo, b]\ntags: [beta]\n",
        )
        .file("jobs.d/shared/s.yaml", "command: [echo, s]\n")
        .file("jobs.d/top.yaml", "command: [echo, top]\n")
        .file("jobs.d/team-a/bad.yaml", "schedule: nope\ncommand: [x]\n")
        .file("jobs.d/team-b/broken.yaml", "commandd: [x]\n")
        .file("jobs.toml", "[server]\npublic_metrics = false\n")
        .file(
            "tokens",
            format!(
                "admin {ADMIN}\nread {READER}\nread team-a/ {TEAM_A}\nadmin alice team-a/,shared/ {ALICE}\nread team-b/ {TEAM_B}\n"
            ),
        );
    let (mut daemon, http) = start(&p, &[]);
    let names = |token: &str| -> Vec<String> {
        let jobs = http.get("/v1/jobs", Some(token)).json();
        jobs.as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(ADMIN), ["a", "b", "s", "top"]);
    assert_eq!(names(TEAM_A), ["a"]);
    assert_eq!(names(ALICE), ["a", "s"]);
    let who = http.get("/v1/session", Some(ALICE)).json();
    assert_eq!(who["scope"], "team-a/,shared/");

    // Another team's job is not there: the same 404 as a job that does not exist.
    let missing = http.get("/v1/jobs/nope", Some(TEAM_A)).error(404);
    let hidden = http.get("/v1/jobs/b", Some(TEAM_A)).error(404);
    assert_eq!(hidden, missing.replace("nope", "b"));
    for path in [
        "/v1/jobs/b/revisions",
        "/v1/jobs/b/logs",
        "/v1/jobs/b/metrics",
        "/v1/runs?job=b",
    ] {
        http.get(path, Some(TEAM_A)).error(404);
    }
    for path in [
        "/v1/jobs/b/trigger",
        "/v1/jobs/b/pause",
        "/v1/jobs/top/trigger",
    ] {
        http.post(path, Some(ALICE), None).error(404);
    }
    http.post(
        "/v1/jobs/b/backfill",
        Some(ALICE),
        Some(json!({"from": "1d", "to": "0s"})),
    )
    .error(404);

    // Its own jobs: triggered, listed, read; the others' runs are not there.
    let mine = http.post("/v1/jobs/a/trigger", Some(ALICE), None);
    assert_eq!(mine.status, 202, "{}", mine.text);
    let mine = mine.json()["id"].as_i64().unwrap();
    let theirs = http.post("/v1/jobs/top/trigger", Some(ADMIN), None).json()["id"]
        .as_i64()
        .unwrap();
    for _ in 0..2 {
        daemon.wait_for("run ended", &[]);
    }
    let runs = http.get("/v1/runs", Some(TEAM_A)).json();
    let jobs: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert!(
        !jobs.is_empty() && jobs.iter().all(|j| *j == "a"),
        "{jobs:?}"
    );
    http.get(&format!("/v1/runs/{mine}"), Some(TEAM_A)).json()["state"]
        .as_str()
        .unwrap();
    let gone = http
        .get(&format!("/v1/runs/{theirs}"), Some(TEAM_A))
        .error(404);
    assert_eq!(gone, format!("no run {theirs}; GET /v1/runs lists them"));
    http.get(&format!("/v1/runs/{theirs}/logs"), Some(TEAM_A))
        .error(404);
    http.post(&format!("/v1/runs/{theirs}/cancel"), Some(ALICE), None)
        .error(404);
    let recent = http.get("/v1/runs/recent?jobs=a,top", Some(TEAM_A)).json();
    assert_eq!(recent["jobs"]["top"], json!([]));
    assert_eq!(recent["jobs"]["a"].as_array().unwrap().len(), 1);

    // The graph without the other team's job or the link to it; tags, fires, status alike.
    let graph = http.get("/v1/graph", Some(TEAM_A)).json();
    assert_eq!(graph["jobs"].as_array().unwrap().len(), 1, "{graph}");
    assert_eq!(graph["edges"], json!([]));
    let tags = http.get("/v1/tags", Some(TEAM_A)).json();
    assert_eq!(tags, json!([{"tag": "alpha", "jobs": 1}]));
    let fires = http.get("/v1/fires", Some(TEAM_B)).json();
    assert!(fires["jobs"].as_array().unwrap().is_empty(), "{fires}");
    let status = http.get("/v1/status", Some(TEAM_A)).json();
    assert_eq!(status["jobs"], 1);
    assert_eq!(status["files"]["errors"], 1, "{status}");
    let errors = status["files"]["rendered"].as_str().unwrap();
    assert!(
        errors.contains("team-a/bad.yaml") && !errors.contains("team-b"),
        "{errors}"
    );
    assert_eq!(
        http.get("/v1/status", Some(ADMIN)).json()["files"]["errors"],
        2
    );
    http.get("/metrics", Some(TEAM_A)).error(403);

    // API-owned jobs belong to the scope of the token that made them.
    let create = |token: &str, body: &str| {
        http.call(
            "POST",
            "/v1/jobs",
            Some(token),
            Some(("application/yaml", body.as_bytes())),
            &[],
        )
    };
    let created = create(ALICE, "name: a-api\ncommand: [echo, made by alice]\n");
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(names(TEAM_A), ["a", "a-api"]);
    assert_eq!(names(TEAM_B), ["b"]);
    assert!(names(ADMIN).contains(&"a-api".to_string()));
    let taken = create(ALICE, "name: b\ncommand: [x]\n");
    assert!(taken.error(409).contains("taken by another team's job"));

    // A plan of its folders: its files only, and the other jobs are not removed by it.
    let plan = http.post(
        "/v1/plan",
        Some(TEAM_A),
        Some(json!({"files": {"team-b/b.yaml": "command: [x]\n"}})),
    );
    assert!(
        plan.error(403)
            .contains("outside this token's folders (team-a/)")
    );
    let plan = http.post(
        "/v1/plan",
        Some(TEAM_A),
        Some(json!({"files": {"team-a/a.yaml": "schedule: \"0 * * * *\"\ncommand: [echo, a2]\ntags: [alpha]\n"}})),
    );
    assert_eq!(plan.status, 200, "{}", plan.text);
    let plan = plan.json();
    assert_eq!(plan["has_changes"], true, "{plan}");
    let text = plan["text"].as_str().unwrap().to_string();
    assert!(text.contains("a2"), "{text}");
    assert!(!text.contains("top") && !text.contains("s.yaml"), "{text}");

    // The CLI, through the server, sees what its token sees.
    let url = daemon.url();
    p.run(&["--server", &url, "--token", TEAM_A, "list"])
        .code(0)
        .stdout_has("a-api")
        .stdout_lacks("top");
    assert_eq!(daemon.stop(), Some(0));
}
