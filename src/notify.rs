//! Notifications: a job's `on_failure` and `on_success` items, sent when a run ends.
//!
//! [`due`] picks the items that apply to a finished run; [`send`] sends one: a `webhook` is a
//! JSON POST of the run's [`Outcome`] (retried with exponential backoff on a transport error
//! or a non-2xx answer), a `run` is `sh -c SCRIPT` with the outcome in `JOBS_*` variables
//! (never retried, killed after the policy's timeout). Each returns a one-line message for the
//! run's event log.
//!
//! This module does not decide when a run has ended, count failure streaks, read the ledger or
//! record anything: the caller builds the `Outcome` and records the message. It does not speak
//! TLS (ureq is built without it, as in `client`): an `https://` webhook fails with a message
//! saying so. Messages name a webhook by scheme, host and path only, since a query string or
//! user info may carry a token.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::spec::{JobSpec, Notification, NotifyAction};

/// What a notification says about a run (also the webhook's JSON body).
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub job: String,
    pub run_id: i64,
    /// `succeeded`, `failed`, `timed_out` or `cancelled`.
    pub state: String,
    pub trigger: String,
    pub attempt: i64,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: String,
    pub duration_ms: Option<i64>,
    /// Consecutive failed runs of the job, this one included (0 after a success).
    pub failure_streak: i64,
    pub params: Option<serde_json::Value>,
    /// `on_failure` or `on_success`: see [`event_for`].
    pub event: &'static str,
}

/// How hard [`send`] tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Webhook attempts in all (at least one is made); scripts are run once.
    pub attempts: u32,
    /// The wait before a webhook's second attempt; it doubles before each further one.
    pub backoff: Duration,
    /// The limit for one webhook attempt (connect, send, answer) and for a whole script.
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempts: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The list a run in `state` notifies: `on_success` after a success, `on_failure` after a
/// failure or a timeout, none after a cancel or a skip (someone chose those).
pub fn event_for(state: &str) -> Option<&'static str> {
    match state {
        "succeeded" => Some("on_success"),
        "failed" | "timed_out" => Some("on_failure"),
        _ => None,
    }
}

/// Which notifications of `spec` apply to `outcome`: `on_success` when it succeeded;
/// `on_failure` when it failed or timed out, each item whose `after` is unset or equals the
/// failure streak (so `after: 3` is sent once, when the streak reaches 3).
pub fn due<'a>(spec: &'a JobSpec, outcome: &Outcome) -> Vec<&'a Notification> {
    match event_for(&outcome.state) {
        Some("on_success") => spec.on_success.iter().collect(),
        Some(_) => spec
            .on_failure
            .iter()
            .filter(|n| {
                n.after
                    .is_none_or(|a| i64::from(a) == outcome.failure_streak)
            })
            .collect(),
        None => Vec::new(),
    }
}

/// Sends one notification.
///
/// # Errors
///
/// A one-line message for the run's event log, as is the success value: the webhook gave up
/// (with its last answer or transport error), or the script could not start, exited non-zero
/// (with the last line of its stderr) or ran past `policy.timeout`.
pub async fn send(
    notification: &Notification,
    outcome: &Outcome,
    policy: &Policy,
) -> Result<String, String> {
    match &notification.action {
        NotifyAction::Webhook(url) => webhook(url, outcome, policy).await,
        NotifyAction::Run(script) => run(script, outcome, policy).await,
    }
}

async fn webhook(url: &str, outcome: &Outcome, policy: &Policy) -> Result<String, String> {
    let event = outcome.event;
    let shown = shown_url(url);
    let fail = |detail: String| Err(format!("{event} webhook {shown}: {detail}"));
    if url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return fail(
            "https is not supported by this build (ureq without TLS); \
             use an http:// URL, e.g. a local TLS proxy"
                .into(),
        );
    }
    let body = serde_json::to_vec(outcome).expect("an outcome serialises");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(policy.timeout))
        // A redirect is an answer like any other non-2xx: a POST is not replayed elsewhere.
        .max_redirects(0)
        .user_agent(concat!("jobs/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let attempts = policy.attempts.max(1);
    let mut wait = policy.backoff;
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
        let (agent, url_owned, body) = (agent.clone(), url.to_string(), body.clone());
        let answer = tokio::task::spawn_blocking(move || {
            agent
                .post(&url_owned)
                .header("Content-Type", "application/json")
                .send(body)
                .map(|response| response.status().as_u16())
        })
        .await;
        match answer {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                return Ok(format!(
                    "{event} webhook {shown}: answered {status} after {}",
                    plural(attempt, "attempt")
                ));
            }
            Ok(Ok(status)) => last = format!("answered {status}"),
            // ureq's message may quote the URL; keep its query string out of the log.
            Ok(Err(e)) => last = e.to_string().replace(url, &shown),
            Err(e) => last = format!("the sending thread failed: {e}"),
        }
    }
    fail(format!(
        "gave up after {}: {last}",
        plural(attempts, "attempt")
    ))
}

async fn run(script: &str, outcome: &Outcome, policy: &Policy) -> Result<String, String> {
    let event = outcome.event;
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .envs(script_env(outcome))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, so a timeout reaches what the script started (`curl | mail`).
        .process_group(0)
        .kill_on_drop(true);
    for (var, value) in [
        ("JOBS_EXIT_CODE", &outcome.exit_code.map(|c| c.to_string())),
        ("JOBS_RUN_ERROR", &outcome.error),
    ] {
        // Never inherit a stale one from the daemon's own environment.
        if value.is_none() {
            command.env_remove(var);
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("{event} run: cannot start sh: {e}"))?;
    let group = child.id();
    let stderr = child.stderr.take().expect("stderr is piped");
    let ended = tokio::time::timeout(policy.timeout, async {
        tokio::join!(child.wait(), last_line(stderr))
    })
    .await;
    match ended {
        Err(_) => {
            if let Some(pid) = group.and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: killpg only sends a signal; the group is the script's own.
                unsafe { libc::killpg(pid, libc::SIGKILL) };
            }
            Err(format!(
                "{event} run: killed after {:?} (the time limit)",
                policy.timeout
            ))
        }
        Ok((Err(e), _)) => Err(format!("{event} run: cannot wait for sh: {e}")),
        Ok((Ok(status), line)) => {
            use std::os::unix::process::ExitStatusExt;
            let how = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exited {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => "ended".to_string(),
            };
            match (status.success(), line) {
                (true, _) => Ok(format!("{event} run: {how}")),
                (false, Some(line)) => Err(format!("{event} run: {how}: {line}")),
                (false, None) => Err(format!("{event} run: {how}")),
            }
        }
    }
}

/// The outcome as `JOBS_*` variables for a script.
fn script_env(outcome: &Outcome) -> Vec<(String, String)> {
    let mut env = vec![
        ("JOBS_JOB".to_string(), outcome.job.clone()),
        ("JOBS_RUN_ID".into(), outcome.run_id.to_string()),
        ("JOBS_RUN_STATE".into(), outcome.state.clone()),
        ("JOBS_TRIGGER".into(), outcome.trigger.clone()),
        ("JOBS_ATTEMPT".into(), outcome.attempt.to_string()),
        (
            "JOBS_STARTED_AT".into(),
            outcome.started_at.clone().unwrap_or_default(),
        ),
        ("JOBS_FINISHED_AT".into(), outcome.finished_at.clone()),
        (
            "JOBS_FAILURE_STREAK".into(),
            outcome.failure_streak.to_string(),
        ),
        ("JOBS_EVENT".into(), outcome.event.to_string()),
    ];
    if let Some(code) = outcome.exit_code {
        env.push(("JOBS_EXIT_CODE".into(), code.to_string()));
    }
    if let Some(error) = &outcome.error {
        env.push(("JOBS_RUN_ERROR".into(), error.clone()));
    }
    if let Some(serde_json::Value::Object(params)) = &outcome.params {
        for (name, value) in params {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.push((crate::template::param_env_var(name), value));
        }
    }
    env
}

/// The last non-empty line of what `stream` writes, reading at most the last 4 KiB of it into
/// memory, however much it writes.
async fn last_line(mut stream: impl tokio::io::AsyncRead + Unpin) -> Option<String> {
    const KEEP: usize = 4096;
    let mut tail = Vec::with_capacity(KEEP);
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > KEEP {
                    tail.drain(..tail.len() - KEEP);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

/// `scheme://host/path` of a URL: no user info, query string or fragment, which may carry a
/// token.
fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.split(['?', '#']).next().unwrap_or_default().to_string();
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::spec::{Context, Defaults, parse};

    fn spec(yaml: &str) -> JobSpec {
        let defaults = Defaults::default();
        let parsed = parse(
            "backup.yaml",
            yaml.as_bytes(),
            Context {
                defaults: &defaults,
                now: "2026-10-31T12:00:00Z".parse().unwrap(),
            },
        );
        parsed
            .spec
            .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics))
    }

    fn outcome(state: &str, failure_streak: i64) -> Outcome {
        Outcome {
            job: "backup".into(),
            run_id: 42,
            state: state.into(),
            trigger: "schedule".into(),
            attempt: 1,
            exit_code: (state == "failed").then_some(3),
            error: (state == "failed").then(|| "exited 3".into()),
            started_at: Some("2026-10-31T12:00:00Z".into()),
            finished_at: "2026-10-31T12:00:05Z".into(),
            duration_ms: Some(5000),
            failure_streak,
            params: Some(serde_json::json!({"target": "s3"})),
            event: event_for(state).unwrap_or("on_failure"),
        }
    }

    fn fast() -> Policy {
        Policy {
            attempts: 3,
            backoff: Duration::from_millis(1),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn due_picks_by_state_and_streak() {
        let job = spec(
            "command: [x]\non_failure:\n  - run: every\n  - run: third\n    after: 3\non_success:\n  - run: ok\n",
        );
        let scripts = |state: &str, streak: i64| -> Vec<&str> {
            due(&job, &outcome(state, streak))
                .into_iter()
                .map(|n| match &n.action {
                    NotifyAction::Run(s) => s.as_str(),
                    NotifyAction::Webhook(u) => u.as_str(),
                })
                .collect()
        };
        let cases: [(&str, i64, &[&str]); 8] = [
            ("succeeded", 0, &["ok"]),
            ("failed", 1, &["every"]),
            ("failed", 2, &["every"]),
            ("failed", 3, &["every", "third"]),
            ("failed", 4, &["every"]),
            ("timed_out", 3, &["every", "third"]),
            ("cancelled", 3, &[]),
            ("skipped", 0, &[]),
        ];
        for (state, streak, want) in cases {
            assert_eq!(scripts(state, streak), want, "{state} with streak {streak}");
        }
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        for (url, want) in [
            ("http://h:9000/hook?token=s3cret", "http://h:9000/hook"),
            ("http://user:s3cret@h/x#frag", "http://h/x"),
            ("https://example.com", "https://example.com"),
        ] {
            assert_eq!(shown_url(url), want);
        }
    }

    /// A one-thread HTTP server on 127.0.0.1 that answers each request with the next of
    /// `statuses` and hands back each request as received (head and body).
    fn receiver(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for status in statuses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                requests.push(head + &String::from_utf8(body).unwrap());
                write!(
                    reader.get_mut(),
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
            }
            requests
        });
        (url, handle)
    }

    fn webhook_to(url: &str) -> Notification {
        Notification {
            action: NotifyAction::Webhook(url.to_string()),
            after: None,
        }
    }

    #[tokio::test]
    async fn a_webhook_posts_the_outcome_and_retries_a_500() {
        let (url, server) = receiver(vec![500, 200]);
        let message = send(
            &webhook_to(&format!("{url}?token=s3cret")),
            &outcome("failed", 2),
            &fast(),
        )
        .await
        .unwrap();
        assert_eq!(
            message,
            format!("on_failure webhook {url}: answered 200 after 2 attempts")
        );
        let requests = server.join().unwrap();
        assert_eq!(requests.len(), 2);
        let request = &requests[1];
        assert!(
            request.starts_with("POST /hook?token=s3cret HTTP/1.1\r\n"),
            "{request}"
        );
        let lower = request.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/json\r\n"),
            "{request}"
        );
        assert!(
            lower.contains(&format!(
                "user-agent: jobs/{}\r\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{request}"
        );
        let body: serde_json::Value =
            serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["job"], "backup");
        assert_eq!(body["run_id"], 42);
        assert_eq!(body["state"], "failed");
        assert_eq!(body["failure_streak"], 2);
        assert_eq!(body["event"], "on_failure");
        assert_eq!(body["params"]["target"], "s3");
    }

    #[tokio::test]
    async fn a_webhook_gives_up_after_its_attempts() {
        let (url, server) = receiver(vec![500, 503, 502]);
        let message = send(&webhook_to(&url), &outcome("failed", 1), &fast())
            .await
            .unwrap_err();
        assert_eq!(
            message,
            format!("on_failure webhook {url}: gave up after 3 attempts: answered 502")
        );
        assert_eq!(server.join().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_https_webhook_says_this_build_has_no_tls() {
        let message = send(
            &webhook_to("https://example.com/ok?token=s3cret"),
            &outcome("succeeded", 0),
            &fast(),
        )
        .await
        .unwrap_err();
        assert!(
            message.starts_with(
                "on_success webhook https://example.com/ok: https is not supported by this build"
            ),
            "{message}"
        );
    }

    fn script(text: &str) -> Notification {
        Notification {
            action: NotifyAction::Run(text.to_string()),
            after: None,
        }
    }

    #[tokio::test]
    async fn a_script_sees_the_outcome_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        let message = send(
            &script(&format!("env > '{}'", file.display())),
            &outcome("failed", 3),
            &fast(),
        )
        .await
        .unwrap();
        assert_eq!(message, "on_failure run: exited 0");
        let env = std::fs::read_to_string(&file).unwrap();
        for line in [
            "JOBS_JOB=backup",
            "JOBS_RUN_ID=42",
            "JOBS_RUN_STATE=failed",
            "JOBS_EXIT_CODE=3",
            "JOBS_FAILURE_STREAK=3",
            "JOBS_EVENT=on_failure",
            "JOBS_PARAM_TARGET=s3",
        ] {
            assert!(env.lines().any(|l| l == line), "no {line} in\n{env}");
        }
    }

    #[tokio::test]
    async fn a_failing_script_reports_its_last_stderr_line() {
        let message = send(
            &script("echo first >&2; echo 'no mail server' >&2; exit 3"),
            &outcome("failed", 1),
            &fast(),
        )
        .await
        .unwrap_err();
        assert_eq!(message, "on_failure run: exited 3: no mail server");
    }

    #[tokio::test]
    async fn a_script_past_its_timeout_is_killed() {
        let policy = Policy {
            timeout: Duration::from_millis(200),
            ..fast()
        };
        let started = std::time::Instant::now();
        let message = send(&script("sleep 30"), &outcome("failed", 1), &policy)
            .await
            .unwrap_err();
        assert!(
            message.starts_with("on_failure run: killed after"),
            "{message}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
