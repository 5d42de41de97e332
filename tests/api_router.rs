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
            ledger: ledger_path.into(),
            open: jobs::ledger::OpenOptions::default(),
            shared,
            tokens: jobs::api::auth::Tokens::load(None, Some(TOKEN), false).unwrap(),
            insecure: false,
            public_metrics: false,
            tls: false,
            public_url: None,
            webhook_rate_limit: 60,
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(30),
            daemon: handle,
            git: None,
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

/// Sends `method uri` with only `headers` (no bearer token); the status and the JSON body.
async fn call_with(
    api: &Api,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value, Option<String>) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = api
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        cookie,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_session_reads_and_writes_only_from_its_own_pages() {
    let mut api = Api::new();
    // The token is traded for a cookie that does not hold it.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/session",
            Some(&format!("{{\"token\":\"{TOKEN}\"}}")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin");
    assert_eq!(body["via"], "cookie");
    // The server's clock (started at NOW), and 12 hours later.
    assert!(
        body["now"]
            .as_str()
            .unwrap()
            .starts_with("2026-10-31T12:00:"),
        "{body}"
    );
    assert!(
        body["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-01T00:00:"),
        "{body}"
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!("{{\"token\":\"{TOKEN}\"}}")))
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let set = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    let here = "http://jobs.internal:8080";
    let trigger = "/v1/jobs/report/trigger";
    // (what, method, path, headers besides the cookie, status)
    type Case<'a> = (
        &'a str,
        Method,
        &'a str,
        &'a [(&'a str, &'a str)],
        StatusCode,
    );
    let cases: &[Case] = &[
        (
            "a read with the cookie",
            Method::GET,
            "/v1/jobs",
            &[],
            StatusCode::OK,
        ),
        ("who am I", Method::GET, "/v1/session", &[], StatusCode::OK),
        (
            "a write without the dashboard's header",
            Method::POST,
            trigger,
            &[],
            StatusCode::FORBIDDEN,
        ),
        (
            "a write from another origin",
            Method::POST,
            trigger,
            &[
                ("x-jobs-dashboard", "1"),
                ("origin", "https://evil.example"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "a write from its own pages",
            Method::POST,
            trigger,
            &[("x-jobs-dashboard", "1"), ("origin", here)],
            StatusCode::ACCEPTED,
        ),
        (
            "a write without Origin (same-origin fetches may omit it)",
            Method::POST,
            trigger,
            &[("x-jobs-dashboard", "1")],
            StatusCode::ACCEPTED,
        ),
    ];
    for (what, method, uri, extra, want) in cases {
        let mut headers = vec![("cookie", cookie.as_str()), ("host", "jobs.internal:8080")];
        headers.extend_from_slice(extra);
        let (status, body, _) = call_with(&api, method.clone(), uri, &headers).await;
        assert_eq!(status, *want, "{what}: {body}");
        if status == StatusCode::FORBIDDEN {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("cross-site request refused"),
                "{what}: {body}"
            );
        }
    }
    assert_eq!(api.commands(), [Command::RunQueued, Command::RunQueued]);

    // A forged or altered cookie is nobody; logging out clears the cookie.
    let forged = cookie.replacen("v1.", "v1.0", 1);
    let (status, body, _) = call_with(&api, Method::GET, "/v1/jobs", &[("cookie", &forged)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, cleared) = call_with(&api, Method::DELETE, "/v1/session", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(cleared.unwrap().contains("Max-Age=0"));
    // A bad token gets no cookie.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/session",
            Some("{\"token\":\"not-the-token-at-all\"}"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_endpoints_say_what_is_wrong_with_a_request() {
    let api = Api::new();
    let cases = [
        (
            "/v1/fires?from=yesterday",
            400,
            "from is not an RFC 3339 instant",
        ),
        (
            "/v1/fires?from=2026-11-01T00:00:00Z&to=2026-10-31T00:00:00Z",
            400,
            "to must be after from",
        ),
        (
            "/v1/fires?from=2026-11-01T00:00:00Z&to=2026-11-20T00:00:00Z",
            400,
            "longer than 8 days",
        ),
        (
            "/v1/fires?per_job=20000",
            400,
            "per_job must be at most 10000",
        ),
        (
            "/v1/timeline?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&limit=0",
            400,
            "limit must be between 1 and 200",
        ),
        (
            "/v1/runs/recent?jobs=backup&per_job=0",
            400,
            "per_job must be between 1 and 100",
        ),
        ("/v1/jobs/backup?fires=51", 400, "fires must be at most 50"),
        (
            "/v1/jobs?state=sleeping",
            400,
            "state `sleeping` is not one of active, paused",
        ),
        (
            "/v1/jobs?sort=soon",
            400,
            "sort `soon` is not one of name, next, failure",
        ),
        ("/v1/jobs?limit=0", 400, "limit must be between 1 and 1000"),
        (
            "/v1/jobs?limit=1001",
            400,
            "limit must be between 1 and 1000",
        ),
        ("/v1/jobs/nope/revisions", 404, "no job `nope`"),
        (
            "/v1/jobs/backup/revisions/diff?from=1&to=3",
            404,
            "job `backup` has no revision 3; it has 1 to 1",
        ),
    ];
    for (uri, status, message) in cases {
        let (got, body) = api.call(Method::GET, uri, None).await;
        assert_eq!(got.as_u16(), status, "{uri}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{uri}: {body}"
        );
    }
    // And what they answer when the request is right.
    let (status, fires) = api
        .call(
            Method::GET,
            "/v1/fires?from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fires}");
    assert_eq!(fires["jobs"][0]["job"], "backup");
    assert_eq!(fires["jobs"][0]["total"], 2);
    let (status, page) = api
        .call(
            Method::GET,
            "/v1/timeline?from=2026-10-31T00:00:00Z&to=2026-11-02T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 2);
    assert_eq!(page["rows"][0]["job"], "backup");
    // Coming fires only: from the clock (12:00 on 31 October) on, the 03:00 of 1 November.
    assert_eq!(
        page["rows"][0]["fires"],
        serde_json::json!(["2026-11-01T03:00:00+00:00"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_without_a_token_says_what_to_send() {
    let api = Api::new();
    let cases = [
        ("", 400, "send {\"token\": \"...\"}"),
        ("{\"tok\": \"x\"}", 422, "the body does not fit"),
        ("{\"token\":", 400, "the body is not valid JSON"),
    ];
    for (body, status, message) in cases {
        let (got, answer) = api.call(Method::POST, "/v1/session", Some(body)).await;
        assert_eq!(got.as_u16(), status, "{body:?}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{body:?}: {answer}"
        );
    }
}

/// One request as the admin with extra headers; the status, the headers and the body as text.
async fn raw(
    api: &Api,
    uri: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, String) {
    let mut request = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let response = api
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_list_filters_sorts_and_pages_on_the_server() {
    let api = Api::new();
    let names = |body: &str| -> Vec<String> {
        serde_json::from_str::<Value>(body)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_string())
            .collect()
    };
    // (query, names in the page, X-Total-Count): the clock is 12:00 on 31 October, backup
    // fires at 03:00, report is manual (never fires, so last by next fire).
    let cases: [(&str, &[&str], &str); 8] = [
        ("", &["backup", "report"], "2"),
        ("?sort=next", &["backup", "report"], "2"),
        ("?sort=last_failure", &["backup", "report"], "2"),
        ("?limit=1", &["backup"], "2"),
        ("?limit=1&offset=1", &["report"], "2"),
        ("?q=REP", &["report"], "1"),
        ("?schedule_kind=cron", &["backup"], "1"),
        ("?state=paused", &[], "0"),
    ];
    for (query, want, total) in cases {
        let (status, headers, body) = raw(&api, &format!("/v1/jobs{query}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(names(&body), want, "{query}");
        assert_eq!(headers["x-total-count"], total, "{query}");
    }
    let (_, tags) = api.call(Method::GET, "/v1/tags", None).await;
    assert_eq!(tags, serde_json::json!([]));
    // No links: the linked graph has no jobs, the whole one both.
    let (_, graph) = api.call(Method::GET, "/v1/graph?linked=true", None).await;
    assert_eq!(graph["jobs"], serde_json::json!([]), "{graph}");
    let (_, graph) = api.call(Method::GET, "/v1/graph", None).await;
    assert_eq!(graph["jobs"].as_array().map(Vec::len), Some(2), "{graph}");
}

/// The events stream's next `want` events (`event: NAME` then `data: ...`), awaited.
async fn next_events(body: &mut axum::body::BodyDataStream, want: usize) -> Vec<(String, String)> {
    use futures_util::StreamExt as _;
    let mut text = String::new();
    let mut out = Vec::new();
    while out.len() < want {
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("an event within 20 s")
            .expect("the stream goes on")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            if !field("event:").is_empty() {
                out.push((field("event:"), field("data:")));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_stream_tells_each_run_change_and_a_pause() {
    let api = Api::new();
    let (status, run) = api
        .call(Method::POST, "/v1/jobs/report/trigger", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let request = Request::builder()
        .uri("/v1/events?after=0")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    // Resuming (`after`): first a `jobs` event (a change to them may have been missed while
    // away), then the runs since.
    let events = next_events(&mut body, 2).await;
    assert_eq!(events[0].0, "jobs", "{events:?}");
    assert_eq!(events[1].0, "run", "{events:?}");
    let seen: Value = serde_json::from_str(&events[1].1).unwrap();
    assert_eq!(
        (
            seen["id"].clone(),
            seen["job"].clone(),
            seen["state"].clone()
        ),
        (run["id"].clone(), "report".into(), "pending".into())
    );
    // A pause changes the jobs: told as `jobs`; a cancel changes the run: told as `run`.
    api.call(Method::POST, "/v1/jobs/backup/pause", None).await;
    let events = next_events(&mut body, 1).await;
    assert_eq!(events[0].0, "jobs", "{events:?}");
    let id = run["id"].as_i64().unwrap();
    api.call(Method::POST, &format!("/v1/runs/{id}/cancel"), None)
        .await;
    let events = next_events(&mut body, 1).await;
    assert_eq!(events[0].0, "run", "{events:?}");
    assert!(
        events[0].1.contains("\"state\":\"cancelled\""),
        "{events:?}"
    );
    // A reconnect with a broken Last-Event-ID is told so.
    let (status, _, body) = raw(&api, "/v1/events", &[("last-event-id", "yesterday")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Last-Event-ID is not an event id"), "{body}");
}
