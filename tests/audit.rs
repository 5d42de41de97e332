//! Named tokens: every write through the API records its token's name as the actor
//! (`paused by alice (api)`), in the ledger and in the daemon's INFO log.

mod common;

use common::{Daemon, Project};
use serde_json::{Value, json};

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef";
const CAROL: &str = "carol-token-0123456789abcdef";

/// One HTTP call; the status and the JSON body (`null` when there is none).
fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<(&str, &str)>,
) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    if !token.is_empty() {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let (content_type, bytes) = body.unwrap_or(("", ""));
    if !content_type.is_empty() {
        request = request.header("Content-Type", content_type);
    }
    let mut response = agent
        .run(request.body(bytes.as_bytes().to_vec()).unwrap())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (response.status().as_u16(), value)
}

fn project(tokens: &str) -> Project {
    Project::new()
        .file(
            "jobs.d/nightly.yaml",
            "schedule: \"0 3 * * *\"\ncommand: [\"true\"]\n",
        )
        .file("jobs.d/slow.yaml", "command: [\"sleep\", \"30\"]\n")
        .file(
            "jobs.d/hook.yaml",
            "command: [\"true\"]\nwebhook: {secret_env: HOOK_SECRET}\n",
        )
        .file("tokens", tokens)
}

fn start(p: &Project, env: &[(&str, &str)]) -> (Daemon, String) {
    let mut daemon = p.serve_env(&["--token-file", "tokens"], None, env);
    daemon.wait_for("scheduler started", &[]);
    let url = daemon.url();
    (daemon, url)
}

/// The messages of a run's events, one per line.
fn events(p: &Project, id: &Value) -> String {
    let out = p
        .run(&["run", "events", &id.to_string(), "-o", "json"])
        .code(0);
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_named_token_is_recorded_as_the_actor_of_its_writes() {
    let p = project(&format!(
        "# ops\nadmin alice {ALICE}\nadmin bob {BOB}\nread carol {CAROL}\n"
    ));
    let (mut daemon, url) = start(&p, &[("HOOK_SECRET", "s3cret")]);

    // Pause: the pause row, `jobctl get` (local and remote), the JSON, the audit log.
    let (status, paused) = call(&url, "POST", "/v1/jobs/nightly/pause", ALICE, None);
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"]["by"], "alice (api)");
    daemon.wait_for(
        "job nightly paused by alice (api)",
        &[("actor", "alice (api)"), ("role", "admin")],
    );
    p.run(&["get", "nightly"])
        .code(0)
        .stdout_has("paused by alice (api)");
    p.run(&["--server", &url, "--token", CAROL, "get", "nightly"])
        .code(0)
        .stdout_has("paused by alice (api)");
    let (_, listed) = call(&url, "GET", "/v1/jobs", CAROL, None);
    let nightly = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "nightly")
        .unwrap();
    assert_eq!(nightly["paused"]["by"], "alice (api)");

    // Resume through the CLI with bob's token.
    p.run(&["--server", &url, "--token", BOB, "resume", "nightly"])
        .code(0);
    daemon.wait_for(
        "job nightly resumed by bob (api)",
        &[("actor", "bob (api)")],
    );

    // Trigger by bob, cancel by alice: the run's events name each.
    p.run(&["--server", &url, "--token", BOB, "trigger", "slow"])
        .code(0);
    let line = daemon.wait_for("triggered by bob (api)", &[("actor", "bob (api)")]);
    let object = line["object"].as_str().unwrap().to_string();
    let id: i64 = object
        .trim_start_matches("job slow (run ")
        .trim_end_matches(')')
        .parse()
        .unwrap_or_else(|_| panic!("{object}"));
    daemon.wait_for("process started", &[("run", &id.to_string())]);
    let (status, cancel) = call(&url, "POST", &format!("/v1/runs/{id}/cancel"), ALICE, None);
    assert_eq!(status, 200, "{cancel}");
    daemon.wait_for(&format!("run {id} asked to stop by alice (api)"), &[]);
    daemon.wait_for("run ended", &[("run", &id.to_string())]);
    let said = events(&p, &json!(id));
    assert!(said.contains("created (manual) by bob (api)"), "{said}");
    assert!(
        said.contains("cancellation requested by alice (api)"),
        "{said}"
    );
    p.run(&[
        "--server",
        &url,
        "--token",
        CAROL,
        "run",
        "events",
        &id.to_string(),
    ])
    .code(0)
    .stdout_has("created (manual) by bob (api)")
    .stdout_has("cancellation requested by alice (api)");

    // API-owned jobs: created by bob, changed and removed by alice.
    let yaml = (
        "application/yaml",
        "name: report\nschedule: \"0 6 * * *\"\ncommand: [\"true\"]\n",
    );
    assert_eq!(call(&url, "POST", "/v1/jobs", BOB, Some(yaml)).0, 201);
    daemon.wait_for("job report created by bob (api)", &[("actor", "bob (api)")]);
    let patch = ("application/json", r#"{"schedule": "0 7 * * *"}"#);
    assert_eq!(
        call(&url, "PATCH", "/v1/jobs/report", ALICE, Some(patch)).0,
        200
    );
    daemon.wait_for("job report changed by alice (api)", &[]);
    assert_eq!(call(&url, "DELETE", "/v1/jobs/report", ALICE, None).0, 200);
    daemon.wait_for("job report removed by alice (api)", &[]);

    // A read token writes nothing, and is refused before anything is recorded.
    assert_eq!(
        call(&url, "POST", "/v1/jobs/nightly/pause", CAROL, None).0,
        403
    );

    // A signed webhook has no token: its run is the webhook's, as before.
    let body = "{}";
    let signature = jobs::webhook::sign(b"s3cret", None, body.as_bytes());
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{url}/v1/hooks/hook"))
        .header("Content-Type", "application/json")
        .header("X-Jobs-Signature", &signature)
        .body(body.as_bytes().to_vec())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let run: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(run["trigger"], "webhook");
    daemon.wait_for("run ended", &[("run", &run["id"].to_string())]);
    let said = events(&p, &run["id"]);
    assert!(
        said.contains("created (webhook)") && !said.contains(" by "),
        "{said}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn unnamed_tokens_are_recorded_as_api_and_jobs_token_by_its_name() {
    let p = project(&format!("admin {ALICE}\nread {CAROL}\n"));
    let (mut daemon, url) = start(&p, &[("JOBS_TOKEN", BOB)]);
    let cases = [(ALICE, "api"), (BOB, "JOBS_TOKEN (api)")];
    for (token, actor) in cases {
        let (status, paused) = call(&url, "POST", "/v1/jobs/nightly/pause", token, None);
        assert_eq!(
            (status, paused["paused"]["by"].clone()),
            (200, json!(actor)),
            "{paused}"
        );
        daemon.wait_for("job nightly paused", &[("actor", actor)]);
        p.run(&["get", "nightly"])
            .code(0)
            .stdout_has(&format!("paused by {actor} at"));
        assert_eq!(
            call(&url, "POST", "/v1/jobs/nightly/resume", token, None).0,
            200
        );
    }
    assert_eq!(call(&url, "GET", "/v1/jobs", CAROL, None).0, 200);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn bad_token_names_stop_the_server_naming_the_file_and_line() {
    let cases = [
        (
            format!("admin alice {ALICE}\nadmin al/ice {BOB}\n"),
            vec![],
            "tokens:2: the token name `al/ice` holds '/'",
        ),
        (
            format!("admin alice {ALICE}\n\n# again\nread alice {BOB}\n"),
            vec![],
            "tokens:4: the token name `alice` is already given on line 1",
        ),
        (
            format!("admin alice {ALICE}\nread bob {ALICE}\n"),
            vec![],
            "tokens:2: this token is already given on line 1",
        ),
        (
            format!("admin alice {ALICE}\nread bob {BOB} extra\n"),
            vec![],
            "tokens:2: expected `ROLE NAME TOKEN`",
        ),
        (
            format!("admin JOBS_TOKEN {ALICE}\n"),
            vec![("JOBS_TOKEN", BOB)],
            "the token file names a admin token `JOBS_TOKEN`",
        ),
    ];
    for (tokens, env, message) in cases {
        let p = project(&tokens);
        let args = ["serve", "--listen", "127.0.0.1:0", "--token-file", "tokens"];
        p.run_with(&args, &env).code(1).stderr_has(message);
    }
}
