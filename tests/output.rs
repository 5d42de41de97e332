//! Output storage (issue 13, "lean output storage"): lines in compressed chunks, numbered per
//! run; `jobctl logs --tail N` with and without `-f`, locally and with --server; paging by line
//! across chunks; old ledgers' output moved into chunks.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Project;
use serde_json::Value;

const READER: &str = "read-token-0123456789abcdef";

/// The ledger's size on disk with every commit folded into the file.
fn ledger_bytes(p: &Project) -> u64 {
    let path = p.path(".jobs/ledger.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    std::fs::metadata(&path).unwrap().len()
}

fn run_json(p: &Project, id: &str) -> Value {
    p.run(&["run", "get", id, "-o", "json"]).code(0).json()
}

#[test]
fn a_mebibyte_of_output_grows_the_ledger_by_at_most_1_2_times_it() {
    // Base64 of random bytes: 6 bits of entropy per 8, the least a text log compresses. And a
    // log as services write them.
    let log_line = r#"printf '2026-10-31T12:%02d:%02d.%03dZ INFO worker-%d request id=%d path=/api/v1/items/%d status=200 took=%dms\n' $((i/60%60)) $((i%60)) $((i%1000)) $((i%8)) $i $((i*7%1000)) $((i%97))"#;
    let p = Project::new()
        .file(
            "jobs.d/random.yaml",
            "run: head -c 786432 /dev/urandom | base64 | tee random.txt\noutput_limit: 4MiB\n",
        )
        .file(
            "jobs.d/text.yaml",
            format!("run: |\n  i=0; while [ $i -lt 11000 ]; do {log_line}; i=$((i+1)); done | tee text.txt\noutput_limit: 4MiB\n"),
        );
    p.run(&["apply"]).code(0);
    for (job, id, at_most) in [("random", "1", 1.2), ("text", "2", 0.3)] {
        let before = ledger_bytes(&p);
        p.run(&["run", job]).code(0);
        let grown = ledger_bytes(&p) - before;
        let run = run_json(&p, id);
        let captured = run["output_bytes"].as_u64().unwrap();
        let printed = std::fs::read_to_string(p.path(&format!("{job}.txt"))).unwrap();
        assert!(captured >= 1 << 20, "{job}: {captured} bytes captured");
        assert_eq!(
            captured,
            printed.len() as u64,
            "{job}: output_bytes counts what was captured"
        );
        let ratio = grown as f64 / captured as f64;
        eprintln!("{job}: {grown} bytes stored for {captured} captured ({ratio:.3}×)");
        assert!(
            ratio <= at_most,
            "{job}: the ledger grew {grown} bytes for {captured} of output ({ratio:.2}×)"
        );
        // Every line reads back as printed.
        let logs = p.run(&["logs", id]).code(0);
        assert!(logs.stdout == printed, "{job}: logs differ from the output");
    }
}

#[test]
fn logs_tail_shows_the_last_lines_locally_and_remotely() {
    let p = Project::new()
        .file("jobs.d/count.yaml", "run: seq 1 10\n")
        .file("tokens", format!("read {READER}\n"));
    p.run(&["apply"]).code(0);
    p.run(&["run", "count"]).code(0);
    let cases: [(&[&str], &str); 5] = [
        (&["--tail", "3"], "8\n9\n10\n"),
        (&["-n", "1"], "10\n"),
        (&["--tail", "0"], ""),
        (&["--tail", "99"], "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
        (&[], "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
    ];
    for (args, expected) in cases {
        let mut local = vec!["logs", "count"];
        local.extend_from_slice(args);
        assert_eq!(p.run(&local).code(0).stdout, expected, "{args:?}");
    }
    let json = p.run(&["logs", "1", "--tail", "2", "-o", "json"]).code(0);
    let ids: Vec<i64> = json
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, [9, 10], "a line's id is its number in the run");
    p.run(&["logs", "1", "--tail", "-1"]).code(2);

    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    let url = daemon.url();
    for (args, expected) in cases {
        let mut remote = vec!["--server", &url, "--token", READER, "logs", "count"];
        remote.extend_from_slice(args);
        assert_eq!(p.run_live(&remote).code(0).stdout, expected, "{args:?}");
    }
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let get = |query: &str| {
        let mut reply = agent
            .get(format!("{url}/v1/runs/1/logs?{query}"))
            .header("Authorization", format!("Bearer {READER}"))
            .call()
            .unwrap();
        let status = reply.status().as_u16();
        let body: Value =
            serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        (status, body)
    };
    let (status, page) = get("tail=3&limit=2");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["lines"][0]["id"], 8);
    assert_eq!(page["lines"][1]["line"], "9");
    assert_eq!(page["next_after"], 9, "a tail is paged like any log");
    for (query, says) in [
        ("tail=abc", "tail"),
        ("tail=-1", "tail"),
        ("tail=3&after=2", "tail and after cannot be combined"),
    ] {
        let (status, body) = get(query);
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {body}");
    }
    let doc: Value = agent
        .get(format!("{url}/v1/openapi.json"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let params = &doc["paths"]["/v1/runs/{id}/logs"]["get"]["parameters"];
    assert!(
        params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "tail" && p["schema"]["minimum"] == 0),
        "tail is documented: {params}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

/// `jobctl ARGS` started in the background with its stdout piped, on the daemon's clock.
fn spawn(p: &Project, args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("jobctl"))
        .current_dir(p.root())
        .args(args)
        .env("NO_COLOR", "1")
        .env("JOBS_NOW", p.live_now().to_string())
        .env_remove("JOBS_SERVER")
        .env_remove("JOBS_LEDGER")
        .env_remove("JOBS_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn next_line(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn logs_tail_follow_prints_the_last_lines_then_follows_a_live_run() {
    let gate = |name: &str| format!("while [ ! -e {name} ]; do sleep 0.02; done");
    let p = Project::new()
        .file(
            "jobs.d/live.yaml",
            format!(
                "run: seq 1 5; {}; echo six; {}; echo seven\n",
                gate("go1"),
                gate("go2")
            ),
        )
        .file("tokens", format!("read {READER}\n"));
    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    daemon.wait_for("scheduler started", &[]);
    let url = daemon.url();
    p.run_live(&["trigger", "live"]).code(0);
    daemon.wait_for("process started", &[("job", "live")]);
    wait_until("the first five lines in the ledger", || {
        p.run_live(&["logs", "1"]).stdout.lines().count() == 5
    });
    let (mut local, mut local_out) = spawn(&p, &["logs", "1", "--tail", "2", "-f"]);
    let (mut remote, mut remote_out) = spawn(
        &p,
        &[
            "--server", &url, "--token", READER, "logs", "live", "-n", "1", "-f",
        ],
    );
    assert_eq!(next_line(&mut local_out), "4\n");
    assert_eq!(next_line(&mut local_out), "5\n");
    assert_eq!(next_line(&mut remote_out), "5\n");
    std::fs::write(p.path("go1"), "").unwrap();
    assert_eq!(next_line(&mut local_out), "six\n");
    assert_eq!(next_line(&mut remote_out), "six\n");
    std::fs::write(p.path("go2"), "").unwrap();
    assert_eq!(next_line(&mut local_out), "seven\n");
    assert_eq!(next_line(&mut remote_out), "seven\n");
    assert_eq!(next_line(&mut local_out), "", "-f ends with the run");
    assert_eq!(next_line(&mut remote_out), "");
    assert!(local.wait().unwrap().success());
    assert!(remote.wait().unwrap().success());
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn the_api_pages_by_line_number_across_a_chunk_boundary() {
    // A chunk holds at most 4,096 lines: 5,000 lines make two.
    let p = Project::new()
        .file("jobs.d/long.yaml", "run: seq 1 5000\n")
        .file("tokens", format!("read {READER}\n"));
    p.run(&["apply"]).code(0);
    p.run(&["run", "long"]).code(0);
    let conn = rusqlite::Connection::open(p.path(".jobs/ledger.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT first_line, n_lines FROM run_output_chunks WHERE run_id = 1 ORDER BY first_line")
        .unwrap();
    let chunks: Vec<(i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(chunks, [(1, 4096), (4097, 904)]);
    drop(stmt);
    drop(conn);

    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    let url = daemon.url();
    let agent = ureq::Agent::new_with_defaults();
    let page = |query: &str| -> Value {
        agent
            .get(format!("{url}/v1/runs/1/logs?{query}"))
            .header("Authorization", format!("Bearer {READER}"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let got = page("after=4094&limit=4");
    let ids: Vec<i64> = got["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4095, 4096, 4097, 4098]);
    assert_eq!(got["lines"][2]["line"], "4097");
    assert_eq!(got["next_after"], 4098);
    // Every page, 700 lines at a time: each line once, in order, numbered densely.
    let mut after = 0;
    let mut seen = 0;
    loop {
        let got = page(&format!("after={after}&limit=700"));
        for line in got["lines"].as_array().unwrap() {
            seen += 1;
            assert_eq!(line["id"], seen);
            assert_eq!(line["line"], seen.to_string());
            assert_eq!(line["stream"], "stdout");
        }
        match got["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, 5000);
    assert_eq!(daemon.stop(), Some(0));
}

/// A ledger as schema 5 left it: output one row per line in `run_output`.
fn version_5_ledger(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    for sql in &jobs::ledger::MIGRATIONS[..5] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 5).unwrap();
    conn.execute_batch(
        "INSERT INTO runs (id, job, trigger, state, created_at, started_at, finished_at)
         VALUES (1, 'a', 'manual', 'succeeded', '2026-10-01T00:00:00.000Z',
                 '2026-10-01T00:00:00.000Z', '2026-10-01T00:00:01.000Z'),
                (2, 'a', 'manual', 'succeeded', '2026-10-01T00:00:00.000Z',
                 '2026-10-01T00:00:00.000Z', '2026-10-01T00:00:01.000Z');
         -- Other runs' lines interleave: ids are global in the old table.
         INSERT INTO run_output (id, run_id, at, stream, line) VALUES
             (10, 1, '2026-10-01T00:00:00.125Z', 'stdout', 'first'),
             (11, 2, '2026-10-01T00:00:00.200Z', 'stdout', 'other run'),
             (12, 1, '2026-10-01T00:00:00.250Z', 'stderr', 'an error'),
             (13, 1, '2026-10-01T00:00:00.250Z', 'stdout', ''),
             (14, 1, '2026-10-01T00:00:00.999Z', 'stdout', 'grüße');",
    )
    .unwrap();
    // Run 2 has more lines than a chunk holds.
    conn.execute_batch("BEGIN").unwrap();
    let mut insert = conn
        .prepare("INSERT INTO run_output (run_id, at, stream, line) VALUES (2, '2026-10-01T00:00:00.500Z', 'stdout', ?1)")
        .unwrap();
    for i in 2..=5000 {
        insert.execute([i.to_string()]).unwrap();
    }
    drop(insert);
    conn.execute_batch("COMMIT").unwrap();
}

#[test]
fn output_in_the_old_one_row_per_line_table_is_moved_into_chunks() {
    let p = Project::new().file("jobs.d/a.yaml", "run: echo new\n");
    let path = p.path(".jobs/ledger.db");
    version_5_ledger(&path);
    p.run(&["apply"]).code(0);

    let json = p.run(&["logs", "1", "-o", "json"]).code(0);
    let lines: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = [
        (1, "2026-10-01T00:00:00.125Z", "stdout", "first"),
        (2, "2026-10-01T00:00:00.250Z", "stderr", "an error"),
        (3, "2026-10-01T00:00:00.250Z", "stdout", ""),
        (4, "2026-10-01T00:00:00.999Z", "stdout", "grüße"),
    ];
    assert_eq!(lines.len(), expected.len(), "{}", json.stdout);
    for (line, (id, at, stream, text)) in lines.iter().zip(expected) {
        assert_eq!(line["id"], id);
        assert_eq!(line["at"], at);
        assert_eq!(line["stream"], stream);
        assert_eq!(line["line"], text);
    }
    let other = p.run(&["logs", "2"]).code(0).stdout;
    let want: String = std::iter::once("other run".to_string())
        .chain((2..=5000).map(|i| i.to_string()))
        .map(|l| l + "\n")
        .collect();
    assert!(other == want, "run 2's 5,000 lines come back in order");
    assert_eq!(
        p.run(&["logs", "2", "--tail", "2"]).code(0).stdout,
        "4999\n5000\n"
    );

    let conn = rusqlite::Connection::open(&path).unwrap();
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'run_output'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0, "the old table is dropped");
    drop(conn);
    p.run(&["ledger", "check"]).code(0);
    // New runs continue above the old ids and number their own lines from 1.
    p.run(&["run", "a"]).code(0);
    let new = p.run(&["logs", "a", "-o", "json"]).code(0).json();
    assert_eq!(
        (new["id"].as_i64(), new["line"].as_str()),
        (Some(1), Some("new"))
    );
}

/// `jobctl logs --job` and `GET /v1/jobs/{name}/logs`: the lines of every run of a job in a
/// window, with their runs, filtered and paged; `GET /v1/jobs/{name}/metrics`: a series per
/// metric, one point per run, an unknown name failing alone.
#[test]
fn a_jobs_logs_and_metrics_span_its_runs_in_a_window() {
    let p = Project::new()
        .file(
            "jobs.d/talk.yaml",
            "run: echo \"out $JOBS_RUN_ID\"; echo \"warn $JOBS_RUN_ID\" >&2; test \"$JOBS_RUN_ID\" != 2\n",
        )
        .file("tokens", format!("read {READER}\n"));
    p.run(&["apply"]).code(0);
    for (at, code) in [
        ("2026-10-31T12:00:00Z", 0),
        ("2026-10-31T13:00:00Z", 1),
        ("2026-10-31T14:00:00Z", 0),
    ] {
        p.run_with(&["run", "talk"], &[("JOBS_NOW", at)]).code(code);
    }
    let at = |args: &[&str]| p.run_with(args, &[("JOBS_NOW", "2026-10-31T14:30:00Z")]);
    let all = at(&["logs", "--job", "talk"]).code(0);
    let out: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(out.len(), 3, "{}", all.stdout);
    assert!(
        out[0].starts_with("run 1  2026-10-31T12:00:00."),
        "{}",
        out[0]
    );
    assert!(out[0].ends_with("  out 1"), "{}", out[0]);
    assert!(out[2].ends_with("  out 3"), "{}", out[2]);
    assert_eq!(all.stderr.lines().count(), 3, "stderr lines stay on stderr");
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--since", "2h"], &["out 2", "out 3"]),
        (&["--since", "3h", "--until", "100m"], &["out 1"]),
        (
            &["--since", "2026-10-31T12:30:00Z", "--grep", "3"],
            &["out 3"],
        ),
        (&["--since", "10m"], &[]),
    ];
    for (args, expected) in cases {
        let mut command = vec!["logs", "--job", "talk"];
        command.extend_from_slice(args);
        let run = at(&command).code(0);
        let texts: Vec<&str> = run
            .stdout
            .lines()
            .map(|l| l.rsplit("  ").next().unwrap())
            .collect();
        assert_eq!(texts, expected, "{args:?}");
    }
    let json = at(&["logs", "--job", "talk", "--grep", "warn", "-o", "json"]).code(0);
    let lines: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["run_id"], 2);
    assert_eq!(lines[1]["stream"], "stderr");
    assert_eq!(lines[1]["line"], "warn 2");
    assert!(
        matches!(lines[1]["id"].as_i64(), Some(1 | 2)),
        "its number in the run"
    );
    at(&["logs", "--job", "nope"])
        .code(1)
        .stderr_has("no job `nope`");
    at(&["logs", "--job", "talk", "--since", "soon"])
        .code(1)
        .stderr_has("--since: `soon` is neither a duration");
    at(&["logs"]).code(2);

    // The same through a server, and the API's pages and metrics.
    let mut daemon = p.serve(&["--token-file", "tokens"], Some("2026-10-31T14:30:00Z"));
    let url = daemon.url();
    let remote = p.run_live(&[
        "--server", &url, "--token", READER, "logs", "--job", "talk", "--since", "2h",
    ]);
    let remote = remote.code(0);
    let texts: Vec<&str> = remote
        .stdout
        .lines()
        .map(|l| l.rsplit("  ").next().unwrap())
        .collect();
    assert_eq!(texts, ["out 2", "out 3"]);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let get = |path: &str| {
        let mut reply = agent
            .get(format!("{url}{path}"))
            .header("Authorization", format!("Bearer {READER}"))
            .call()
            .unwrap();
        let status = reply.status().as_u16();
        let body: Value =
            serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        (status, body)
    };
    let (status, page) = get("/v1/jobs/talk/logs?since=3h&limit=4");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["lines"].as_array().unwrap().len(), 4);
    assert_eq!(page["lines"][3]["run_id"], 2);
    let next = page["next_after"].as_str().unwrap().to_string();
    assert_eq!(next, format!("2:{}", page["lines"][3]["id"]));
    let (_, rest) = get(&format!("/v1/jobs/talk/logs?since=3h&after={next}"));
    let mut rest: Vec<&str> = rest["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    // A run's two streams interleave as the process wrote them.
    rest.sort_unstable();
    assert_eq!(rest, ["out 3", "warn 3"]);
    let (_, filtered) = get("/v1/jobs/talk/logs?since=3h&filter=out%202");
    assert_eq!(filtered["lines"].as_array().unwrap().len(), 1, "{filtered}");
    for (path, status, says) in [
        ("/v1/jobs/nope/logs", 404, "no job `nope`"),
        ("/v1/jobs/talk/logs?since=soon", 400, "since"),
        ("/v1/jobs/talk/logs?after=x", 400, "cursor"),
        (
            "/v1/jobs/talk/logs?since=1h&until=2h",
            400,
            "until must be after since",
        ),
    ] {
        let (code, body) = get(path);
        assert_eq!(code, status, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    let (status, metrics) = get("/v1/jobs/talk/metrics?names=duration,cpu,memory,bogus&since=3h");
    assert_eq!(status, 200, "{metrics}");
    let series = metrics["series"].as_array().unwrap();
    assert_eq!(series.len(), 4);
    for s in &series[..3] {
        assert!(s["error"].is_null(), "{s}");
        let points = s["points"].as_array().unwrap();
        assert_eq!(points.len(), 3, "{s}");
        let states: Vec<&str> = points
            .iter()
            .map(|p| p["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["succeeded", "failed", "succeeded"], "{s}");
        assert!(
            points.iter().all(|p| p["value"].as_f64().unwrap() >= 0.0),
            "{s}"
        );
    }
    assert_eq!(series[0]["unit"], "seconds");
    assert_eq!(series[2]["unit"], "bytes");
    assert!(
        series[2]["points"][0]["value"].as_f64().unwrap() > 0.0,
        "a peak RSS"
    );
    assert!(series[3]["points"].as_array().unwrap().is_empty());
    assert!(
        series[3]["error"]
            .as_str()
            .unwrap()
            .contains("no metric `bogus`"),
        "{metrics}"
    );
    let (_, one) = get("/v1/jobs/talk/metrics?names=duration&since=2h");
    assert_eq!(one["series"][0]["points"].as_array().unwrap().len(), 2);
    assert_eq!(get("/v1/jobs/nope/metrics").0, 404);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn success_can_be_decided_by_the_output() {
    let p = Project::new()
        .file(
            "jobs.d/check.yaml",
            "run: 'echo \"status: $(cat state)\"'\nsuccess_when: {output_matches: '^status: done$'}\n",
        )
        .file(
            "jobs.d/quiet.yaml",
            "run: echo all good; echo ERROR disk full >&2\nsuccess_when: {output_not_matches: ERROR}\n",
        )
        .file("state", "pending\n");
    p.run(&["apply"]).code(0);
    p.run(&["get", "check"])
        .code(0)
        .stdout_has("output_matches: \"^status: done$\"");
    // Exit status 0, but the output says it is not done yet: a failed run, exit code 1.
    p.run(&["run", "check"])
        .code(1)
        .stdout_has("status: pending");
    let runs = p.run(&["runs", "check", "-o", "json"]).code(0).json();
    let first = &runs[0];
    assert_eq!(first["state"], "failed", "{first}");
    assert_eq!(first["exit_code"], 0);
    assert_eq!(
        first["error"],
        "its output did not match `^status: done$` (success_when.output_matches)"
    );
    p.write("state", "done\n");
    p.run(&["run", "check"]).code(0);
    let runs = p.run(&["runs", "check", "-o", "json"]).code(0).json();
    assert_eq!(runs[0]["state"], "succeeded");
    // stderr counts too.
    p.run(&["run", "quiet"]).code(1);
    let runs = p.run(&["runs", "quiet", "-o", "json"]).code(0).json();
    assert_eq!(
        runs[0]["error"],
        "its output matched `ERROR` (success_when.output_not_matches)"
    );
}
