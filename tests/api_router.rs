//! API handlers through `router(state).oneshot(...)`: a temporary ledger (applied by the
//! binary) and a daemon [`Handle`] whose commands the test reads, without starting
//! `jobctl serve`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{NOW, Project};
use jobs::handle::{Command, Handle, Inbox};
use serde_json::Value;
use tower::ServiceExt as _;

const TOKEN: &str = "router-test-admin-token";

/// A project with two jobs applied, and the API's router on its ledger.
struct Api {
    _project: Project,
    router: axum::Router,
    inbox: Inbox,
}

impl Api {
    fn new() -> Api {
        let p = Project::new()
            .file(
                "jobs.d/backup.yaml",
                "schedule: {cron: \"0 3 * * *\"}\nrun: \"true\"\n",
            )
            .file("jobs.d/report.yaml", "run: \"true\"\n");
        p.run(&["apply"]).code(0);
        let ledger_path = p.path(".jobs/ledger.db");
        let ledger = jobs::ledger::Ledger::open(&ledger_path).unwrap();
        let clock = jobs::clock::Clock::starting_at(NOW.parse().unwrap());
        let shared = Arc::new(jobs::executor::Shared::new(
            ledger,
            clock,
            None,
            Duration::from_secs(1),
            jobs::spec::Defaults::default(),
            &p.path("jobs.d"),
        ));
        let (handle, inbox) = Handle::new();
        let router = jobs::api::router(jobs::api::Options {
            ledger: ledger_path,
            open: jobs::ledger::OpenOptions::default(),
            shared,
            tokens: jobs::api::auth::Tokens::load(None, Some(TOKEN), false).unwrap(),
            insecure: false,
            public_metrics: false,
            webhook_rate_limit: 60,
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(30),
            daemon: handle,
        });
        Api {
            _project: p,
            router,
            inbox,
        }
    }

    /// Sends one request as the admin; the status and the JSON body.
    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    /// The commands the handlers sent the daemon so far.
    fn commands(&mut self) -> Vec<Command> {
        std::iter::from_fn(|| self.inbox.commands.try_recv().ok()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_names_the_applied_jobs() {
    let mut api = Api::new();
    let (status, body) = api.call(Method::GET, "/v1/jobs", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["backup", "report"]);
    assert_eq!(api.commands(), [], "a read tells the daemon nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_job_is_a_404_in_the_error_shape() {
    let mut api = Api::new();
    let (status, body) = api.call(Method::GET, "/v1/jobs/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no job `nope`"),
        "{body}"
    );
    assert_eq!(api.commands(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_queues_a_pending_run_and_tells_the_executor() {
    let mut api = Api::new();
    let (status, body) = api
        .call(Method::POST, "/v1/jobs/report/trigger", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["job"], "report");
    assert_eq!(body["state"], "pending");
    assert_eq!(body["trigger"], "manual");
    assert_eq!(api.commands(), [Command::RunQueued]);
    let (_, runs) = api.call(Method::GET, "/v1/runs?job=report", None).await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_change_the_job_and_tell_the_scheduler() {
    let mut api = Api::new();
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/jobs/backup/pause",
            Some(r#"{"reason": "disk swap"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true, "{body}");
    assert_eq!(body["paused"]["reason"], "disk swap", "{body}");
    let (status, body) = api.call(Method::POST, "/v1/jobs/backup/resume", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true, "{body}");
    assert!(body["paused"].is_null(), "{body}");
    assert_eq!(api.commands(), [Command::JobsChanged, Command::JobsChanged]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_is_a_400_in_the_error_shape_and_changes_nothing() {
    let mut api = Api::new();
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/jobs/report/trigger",
            Some("{\"params\": "),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );
    assert_eq!(api.commands(), []);
    let (_, runs) = api.call(Method::GET, "/v1/runs?job=report", None).await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_shows_the_problems_the_daemon_published() {
    let api = Api::new();
    api.inbox
        .problems
        .send_replace(Some(jobs::handle::Problems {
            count: 1,
            rendered: "error: jobs.d/x.yaml: unknown field `shedule`".to_string(),
        }));
    let (status, body) = api.call(Method::GET, "/readyz", None).await;
    // No scheduler runs here: not ready for that reason, not for the broken file.
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ledger"], "ok", "{body}");
    assert!(
        body["jobs_dir"].as_str().unwrap().contains("unknown field"),
        "{body}"
    );
}
