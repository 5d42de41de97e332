//! Notifications: a job's `on_failure` and `on_success` items, sent when a run ends.
//!
//! [`due`] picks the items that apply to a finished run; a [`Notifier`] (one per process,
//! holding the HTTP agent and the mail transport with the trusted CAs) sends one:
//! - a `webhook` is a JSON POST of the run's [`Outcome`];
//! - a `slack` item is a POST of a Slack-compatible `{"text": …}` message (also understood by
//!   Mattermost and Rocket.Chat incoming webhooks);
//! - an `email` is a plain-text mail through the `[smtp]` server of `jobs.toml` (STARTTLS
//!   required unless configured otherwise);
//! - a `run` is `sh -c SCRIPT` with the outcome in `JOBS_*` variables (never retried, killed
//!   after the policy's timeout).
//!
//! The first three are retried with exponential backoff on a transport error, a non-2xx
//! answer or a transient SMTP refusal. Each returns a one-line message for the run's event
//! log. https and STARTTLS trust the system's roots, `SSL_CERT_FILE` and `ca_cert` (`tls`).
//!
//! This module does not decide when a run has ended, count failure streaks, read the ledger,
//! count metrics or record anything: the caller builds the `Outcome` (with the output's last
//! lines), and logs, counts and records the message. Messages name a URL by scheme, host and
//! path only ([`target`]), since a query string or user info may carry a token; an SMTP
//! password is read from the variable `password_env` names, and never shown.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::config::{NotifyConfig, SmtpConfig, StartTls};
use crate::spec::{JobSpec, Notification, NotifyAction};

mod mail;
mod script;
mod text;

use mail::Mail;
pub use mail::MailError;
use script::run;
pub use text::{headline, slack_text, subject, tail, text};

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
    /// The machine the run ran on.
    pub host: String,
    /// The last lines of the run's output (at most [`TAIL_LINES`] lines and [`TAIL_BYTES`]).
    pub output_tail: String,
    /// The run's page in the dashboard, `PUBLIC_URL/runs/ID`, when `[server] public_url` is set.
    pub url: Option<String>,
}

/// How many of the output's last lines a notification carries, and at most how many bytes.
pub const TAIL_LINES: usize = 20;
pub const TAIL_BYTES: usize = 2048;

/// How hard [`Notifier::send`] tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all for a webhook, Slack message or mail (at least one is made); scripts
    /// are run once.
    pub attempts: u32,
    /// The wait before a second attempt; it doubles before each further one.
    pub backoff: Duration,
    /// The limit for one attempt (connect, send, answer) and for a whole script.
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

/// The kind of a notification, as logs and metrics label it: `webhook`, `slack`, `email`
/// or `run`.
pub fn kind(action: &NotifyAction) -> &'static str {
    match action {
        NotifyAction::Webhook(_) => "webhook",
        NotifyAction::Slack(_) => "slack",
        NotifyAction::Email(_) => "email",
        NotifyAction::Run(_) => "run",
    }
}

/// Where a notification goes, without secrets: a URL without its user info, query string or
/// fragment; the addresses; `sh -c` for a script (its text may hold anything).
pub fn target(action: &NotifyAction) -> String {
    match action {
        NotifyAction::Webhook(url) | NotifyAction::Slack(url) => shown_url(url),
        NotifyAction::Email(to) => to.join(", "),
        NotifyAction::Run(_) => "sh -c".to_string(),
    }
}

/// Why a [`Notifier`] could not be built.
///
/// Each cause is part of the message rather than a `source`, so a chain printed with `{:#}`
/// shows it once.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("ca_cert: {0}")]
    CaCert(crate::tls::TlsError),
    #[error("smtp.from `{from}`: {reason}")]
    SmtpFrom {
        from: String,
        reason: lettre::address::AddressError,
    },
    #[error("smtp: setting up TLS for {host}: {reason}")]
    SmtpTls {
        host: String,
        reason: lettre::transport::smtp::Error,
    },
}

/// Why a notification was not delivered. Its text is the one-line message the run's event log
/// records (`notify_failed`), like the success message: it starts with the run's event and
/// the kind (and for a webhook, Slack message or mail, the target without secrets).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A webhook or Slack message was not answered with a 2xx after every attempt.
    #[error("{event} {kind} {target}: gave up after {}: {last}", plural(*.attempts, "attempt"))]
    PostGaveUp {
        event: &'static str,
        kind: &'static str,
        target: String,
        attempts: u32,
        /// The last answer (`answered 500`) or transport error.
        last: String,
    },
    #[error("{event} email {to}: no mail server: jobs.toml has no `[smtp]` section")]
    NoMailServer { event: &'static str, to: String },
    #[error(
        "{event} email {to}: the SMTP password variable {variable} (smtp.password_env) is not set in the daemon's environment"
    )]
    NoSmtpPassword {
        event: &'static str,
        to: String,
        variable: String,
    },
    #[error("{event} email {to}: cannot build the mail: {problem}")]
    BadMail {
        event: &'static str,
        to: String,
        problem: MailError,
    },
    /// A permanent SMTP refusal: not retried.
    #[error("{event} email {to}: refused by {server}: {reason}")]
    MailRefused {
        event: &'static str,
        to: String,
        server: String,
        reason: lettre::transport::smtp::Error,
    },
    #[error(
        "{event} email {to}: gave up after {} with {server}: {last}",
        plural(*.attempts, "attempt")
    )]
    MailGaveUp {
        event: &'static str,
        to: String,
        server: String,
        attempts: u32,
        last: String,
    },
    #[error("{event} run: cannot start sh: {reason}")]
    ScriptStart {
        event: &'static str,
        reason: std::io::Error,
    },
    #[error("{event} run: cannot wait for sh: {reason}")]
    ScriptWait {
        event: &'static str,
        reason: std::io::Error,
    },
    #[error("{event} run: killed after {limit:?} (the time limit)")]
    ScriptTimedOut {
        event: &'static str,
        limit: Duration,
    },
    /// The script exited non-zero or was killed: how, and the last line of its stderr.
    #[error("{event} run: {how}{}", .stderr.as_deref().map(|line| format!(": {line}")).unwrap_or_default())]
    ScriptFailed {
        event: &'static str,
        how: String,
        stderr: Option<String>,
    },
}

/// Sends notifications: the HTTP agent and the mail transport, each built once per process
/// with the trust set, the host's name and the run link's base.
pub struct Notifier {
    /// Built at the first webhook or Slack message: loading and parsing the system's roots
    /// and setting up TLS costs an idle daemon memory it may never need.
    agent: std::sync::OnceLock<ureq::Agent>,
    /// `ca_cert`'s certificates, read (and so checked) at start.
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    mail: Option<Mail>,
    policy: Policy,
    host: String,
    public_url: Option<String>,
}

impl Notifier {
    /// A notifier for `config`, naming the machine `host`.
    ///
    /// # Errors
    ///
    /// [`SetupError`]: the `ca_cert` file cannot be read or holds no certificate, or
    /// `[smtp]` cannot be set up.
    pub fn new(
        config: &NotifyConfig,
        host: String,
        policy: Policy,
    ) -> Result<Notifier, SetupError> {
        let extra_roots = match config.ca_cert.as_deref() {
            Some(path) => crate::tls::read_pem_certs(path).map_err(SetupError::CaCert)?,
            None => Vec::new(),
        };
        let mail = match &config.smtp {
            Some(smtp) => {
                let roots = crate::tls::root_certs(config.ca_cert.as_deref())
                    .map_err(SetupError::CaCert)?;
                Some(Mail::new(smtp, &roots, policy)?)
            }
            None => None,
        };
        Ok(Notifier {
            agent: std::sync::OnceLock::new(),
            extra_roots,
            mail,
            policy,
            host,
            public_url: config.public_url.clone(),
        })
    }

    /// `ca_cert`'s certificates: trusted by every outgoing connection besides the system's.
    pub fn extra_roots(&self) -> &[rustls::pki_types::CertificateDer<'static>] {
        &self.extra_roots
    }

    /// The HTTP agent for webhooks and Slack, trusting the system's roots, `SSL_CERT_FILE`'s
    /// and `ca_cert`'s.
    fn agent(&self) -> &ureq::Agent {
        self.agent.get_or_init(|| {
            let certs: Vec<ureq::tls::Certificate<'static>> = crate::tls::environment_roots()
                .iter()
                .chain(&self.extra_roots)
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                .build();
            ureq::Agent::config_builder()
                .tls_config(tls)
                .http_status_as_error(false)
                .timeout_global(Some(self.policy.timeout))
                // A redirect is an answer like any other non-2xx: a POST is not replayed
                // elsewhere.
                .max_redirects(0)
                .user_agent(concat!("jobs/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent()
        })
    }

    /// The machine's name, as notifications show it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The run's page in the dashboard, when `[server] public_url` is set.
    pub fn run_url(&self, run_id: i64) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}/runs/{run_id}"))
    }

    /// The variable holding the SMTP password, which runs must not inherit.
    pub fn secret_var(&self) -> Option<&str> {
        self.mail.as_ref().and_then(|m| m.password_env.as_deref())
    }

    /// Sends one notification.
    ///
    /// # Errors
    ///
    /// [`NotifyError`], whose text is a one-line message for the run's event log, as is the
    /// success value: the webhook, Slack message or mail gave up (with its last answer or
    /// error), or the script could not start, exited non-zero (with the last line of its
    /// stderr) or ran past the timeout.
    pub async fn send(
        &self,
        notification: &Notification,
        outcome: &Outcome,
    ) -> Result<String, NotifyError> {
        match &notification.action {
            NotifyAction::Webhook(url) => {
                let body = serde_json::to_vec(outcome).expect("an outcome serialises");
                self.post("webhook", url, body, outcome).await
            }
            NotifyAction::Slack(url) => {
                let body = serde_json::to_vec(&serde_json::json!({ "text": slack_text(outcome) }))
                    .expect("a message serialises");
                self.post("slack", url, body, outcome).await
            }
            NotifyAction::Email(to) => self.email(to, outcome).await,
            NotifyAction::Run(script) => run(script, outcome, &self.policy).await,
        }
    }

    /// POSTs `body` (JSON) to `url`, with the policy's retries.
    async fn post(
        &self,
        what: &'static str,
        url: &str,
        body: Vec<u8>,
        outcome: &Outcome,
    ) -> Result<String, NotifyError> {
        let event = outcome.event;
        let shown = shown_url(url);
        let attempts = self.policy.attempts.max(1);
        let mut wait = self.policy.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            back_off(attempt, &mut wait).await;
            let (agent, url_owned, body) = (self.agent().clone(), url.to_string(), body.clone());
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
                        "{event} {what} {shown}: answered {status} after {}",
                        plural(attempt, "attempt")
                    ));
                }
                Ok(Ok(status)) => last = format!("answered {status}"),
                // ureq's message may quote the URL; keep its query string out of the log.
                Ok(Err(e)) => last = e.to_string().replace(url, &shown),
                Err(e) => last = format!("the sending thread failed: {e}"),
            }
        }
        Err(NotifyError::PostGaveUp {
            event,
            kind: what,
            target: shown,
            attempts,
            last,
        })
    }

    /// Mails the outcome to `to`, with the policy's retries (a permanent refusal is final).
    async fn email(&self, to: &[String], outcome: &Outcome) -> Result<String, NotifyError> {
        let event = outcome.event;
        let shown = to.join(", ");
        let Some(mail) = &self.mail else {
            return Err(NotifyError::NoMailServer { event, to: shown });
        };
        if let Some(variable) = &mail.missing_password {
            return Err(NotifyError::NoSmtpPassword {
                event,
                to: shown,
                variable: variable.clone(),
            });
        }
        let message = match mail.message(to, outcome) {
            Ok(message) => message,
            Err(problem) => {
                return Err(NotifyError::BadMail {
                    event,
                    to: shown,
                    problem,
                });
            }
        };
        let attempts = self.policy.attempts.max(1);
        let mut wait = self.policy.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            back_off(attempt, &mut wait).await;
            let (transport, message) = (mail.transport.clone(), message.clone());
            let answer = tokio::task::spawn_blocking(move || {
                use lettre::Transport as _;
                transport.send(&message)
            })
            .await;
            match answer {
                Ok(Ok(response)) => {
                    return Ok(format!(
                        "{event} email {shown}: accepted by {} ({}) after {}",
                        mail.server,
                        response.code(),
                        plural(attempt, "attempt")
                    ));
                }
                Ok(Err(reason)) if reason.is_permanent() => {
                    return Err(NotifyError::MailRefused {
                        event,
                        to: shown,
                        server: mail.server.clone(),
                        reason,
                    });
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(e) => last = format!("the sending thread failed: {e}"),
            }
        }
        Err(NotifyError::MailGaveUp {
            event,
            to: shown,
            server: mail.server.clone(),
            attempts,
            last,
        })
    }
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

/// Waits before attempt `attempt` (not before the first) and doubles the wait for the next:
/// the one retry policy of webhooks, Slack and mail.
async fn back_off(attempt: u32, wait: &mut Duration) {
    if attempt > 1 {
        tokio::time::sleep(*wait).await;
        *wait = wait.saturating_mul(2);
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
            host: "web-1".into(),
            output_tail: "copying\nno space left on device".into(),
            url: Some("https://jobs.example.com/runs/42".into()),
        }
    }

    fn fast() -> Policy {
        Policy {
            attempts: 3,
            backoff: Duration::from_millis(1),
            timeout: Duration::from_secs(5),
        }
    }

    fn notifier(policy: Policy) -> Notifier {
        Notifier::new(&NotifyConfig::default(), "web-1".into(), policy).unwrap()
    }

    /// Sends `n`, its message (delivered or not) as the run's event log records it.
    async fn send(n: &Notification, outcome: &Outcome, policy: &Policy) -> Result<String, String> {
        notifier(*policy)
            .send(n, outcome)
            .await
            .map_err(|e| e.to_string())
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
                    other => unreachable!("{other:?}"),
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

    #[test]
    fn headlines_say_job_state_host_and_exit_code() {
        let with = |state: &str, exit_code: Option<i32>| Outcome {
            exit_code,
            ..outcome(state, 1)
        };
        for (o, want) in [
            (with("failed", Some(2)), "backup failed on web-1 (exit 2)"),
            (with("failed", None), "backup failed on web-1"),
            (with("timed_out", None), "backup timed out on web-1"),
            (with("succeeded", Some(0)), "backup succeeded on web-1"),
        ] {
            assert_eq!(headline(&o), want);
        }
        assert_eq!(
            subject(&with("failed", Some(2))),
            "[jobctl] backup failed on web-1 (exit 2)"
        );
    }

    #[test]
    fn a_mail_body_lists_the_run_and_its_last_lines() {
        let body = text(&outcome("failed", 3));
        for line in [
            "backup failed on web-1 (exit 3).",
            "Job:       backup",
            "Run:       42 (attempt 1, trigger schedule)",
            "State:     failed",
            "Exit code: 3",
            "Error:     exited 3",
            "Duration:  5s",
            "Host:      web-1",
            "Streak:    3 consecutive failures",
            "Link:      https://jobs.example.com/runs/42",
            "Last lines of output:",
            "    no space left on device",
        ] {
            assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
        }
        let quiet = Outcome {
            output_tail: String::new(),
            url: None,
            ..outcome("succeeded", 0)
        };
        let body = text(&quiet);
        assert!(body.contains("The run wrote no output."), "{body}");
        assert!(!body.contains("Link:"), "{body}");
    }

    #[test]
    fn a_slack_message_escapes_markup_and_fences_the_output() {
        let o = Outcome {
            output_tail: "a <b> & c\n```".into(),
            ..outcome("failed", 1)
        };
        let message = slack_text(&o);
        assert!(
            message.starts_with("*backup failed on web-1 (exit 3)*\n"),
            "{message}"
        );
        assert!(
            message.contains("Link: <https://jobs.example.com/runs/42|run 42>\n"),
            "{message}"
        );
        assert!(
            message.contains("```\na &lt;b&gt; &amp; c\n`\u{200b}``\n```\n"),
            "{message}"
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_its_budget() {
        let many: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
        let got = tail(many.iter().map(String::as_str));
        assert_eq!(got.lines().count(), TAIL_LINES);
        assert!(
            got.starts_with("line 11\n") && got.ends_with("line 30"),
            "{got}"
        );
        let wide: Vec<String> = (0..5).map(|i| format!("{i}{}", "x".repeat(900))).collect();
        let got = tail(wide.iter().map(String::as_str));
        assert_eq!(got.lines().count(), 2, "two 901-byte lines fit in 2 KiB");
        assert!(got.starts_with('3'), "{got}");
        let huge = "é".repeat(5000);
        let got = tail([huge.as_str()]);
        assert!(got.len() <= TAIL_BYTES && got.chars().all(|c| c == 'é'));
        assert_eq!(tail([]), "");
    }

    #[tokio::test]
    async fn a_webhook_body_carries_host_output_and_link() {
        let (url, server) = receiver(vec![200]);
        send(&webhook_to(&url), &outcome("failed", 1), &fast())
            .await
            .unwrap();
        let request = &server.join().unwrap()[0];
        let body: serde_json::Value =
            serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["host"], "web-1");
        assert_eq!(body["output_tail"], "copying\nno space left on device");
        assert_eq!(body["url"], "https://jobs.example.com/runs/42");
    }

    #[tokio::test]
    async fn a_slack_item_posts_a_text_message() {
        let (url, server) = receiver(vec![200]);
        let n = Notification {
            action: NotifyAction::Slack(url.clone()),
            after: None,
        };
        let message = send(&n, &outcome("failed", 1), &fast()).await.unwrap();
        assert_eq!(
            message,
            format!("on_failure slack {url}: answered 200 after 1 attempt")
        );
        let request = &server.join().unwrap()[0];
        let body: serde_json::Value =
            serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["text"], slack_text(&outcome("failed", 1)));
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }

    #[tokio::test]
    async fn an_email_without_a_mail_server_fails_saying_so() {
        let n = Notification {
            action: NotifyAction::Email(vec!["ops@example.com".into()]),
            after: None,
        };
        let message = send(&n, &outcome("failed", 1), &fast()).await.unwrap_err();
        assert_eq!(
            message,
            "on_failure email ops@example.com: no mail server: jobs.toml has no `[smtp]` section"
        );
    }

    #[test]
    fn targets_name_no_secrets() {
        for (action, want) in [
            (
                NotifyAction::Slack("https://hooks.slack.com/services/T/B/SECRET?x=1".into()),
                "https://hooks.slack.com/services/T/B/SECRET",
            ),
            (
                NotifyAction::Webhook("http://u:pw@h/x?token=t".into()),
                "http://h/x",
            ),
            (
                NotifyAction::Email(vec!["a@x.org".into(), "b@y.org".into()]),
                "a@x.org, b@y.org",
            ),
            (NotifyAction::Run("curl -u me:pw".into()), "sh -c"),
        ] {
            assert_eq!(target(&action), want);
        }
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
