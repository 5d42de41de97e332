//! Issue 12, "Nothing stuck, whatever the machine does": the API's defects, each with a
//! regression test named after it, against a real `jobs serve` on a free port.

mod common;

use std::time::Duration;

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
