//! Notifications people use (issue: "https notifications silently never arrive"): a webhook
//! and a Slack message over https to a receiver signed by a private CA (`ca_cert`), a mail
//! through an SMTP server with STARTTLS, each saying job, state, exit code, host, the last
//! lines of output and the run's link; a notification that cannot be delivered is a WARN
//! line, a `notify_failed` event of the run and a metric; `validate` refuses what can never
//! work. Every receiver here is local and made by the test, with a throwaway CA.

mod common;

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use common::{Daemon, Project, spawn_server, test_ca};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// An HTTPS server answering every POST 200; hands over each request's path and JSON body.
fn https_receiver(acceptor: tokio_rustls::TlsAcceptor) -> (u16, mpsc::Receiver<(String, Value)>) {
    let (tx, rx) = mpsc::channel();
    let port = spawn_server(move |listener| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                // A client that refuses our certificate ends the handshake: nothing to read.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut reader = BufReader::new(tls);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).await.unwrap();
                let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                reader.get_mut().shutdown().await.ok();
                let _ = tx.send((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
            });
        }
    });
    (port, rx)
}

/// A mail as an SMTP server received it.
#[derive(Debug, Default)]
struct Mail {
    auth: Option<String>,
    from: String,
    to: Vec<String>,
    data: String,
}

/// Reads one CRLF line; `None` at the end of the stream.
async fn line<S: tokio::io::AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// An SMTP server that offers STARTTLS, then (over TLS) AUTH PLAIN, and takes mail: enough
/// of RFC 5321 for lettre. Refuses everything but EHLO, STARTTLS and QUIT in the clear.
fn smtp_sink(acceptor: tokio_rustls::TlsAcceptor) -> (u16, mpsc::Receiver<Mail>) {
    let (tx, rx) = mpsc::channel();
    let port = spawn_server(move |listener| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let mut plain = BufReader::new(tcp);
                plain
                    .get_mut()
                    .write_all(b"220 sink ESMTP\r\n")
                    .await
                    .unwrap();
                loop {
                    let Some(command) = line(&mut plain).await else {
                        return;
                    };
                    let verb = command.to_ascii_uppercase();
                    let reply: &[u8] = if verb.starts_with("EHLO") {
                        b"250-sink\r\n250 STARTTLS\r\n"
                    } else if verb == "STARTTLS" {
                        b"220 go ahead\r\n"
                    } else if verb == "QUIT" {
                        b"221 bye\r\n"
                    } else {
                        b"530 STARTTLS first\r\n"
                    };
                    plain.get_mut().write_all(reply).await.unwrap();
                    if verb == "STARTTLS" {
                        break;
                    }
                    if verb == "QUIT" {
                        return;
                    }
                }
                let Ok(tls) = acceptor.accept(plain.into_inner()).await else {
                    return;
                };
                let mut secure = BufReader::new(tls);
                let mut mail = Mail::default();
                loop {
                    let Some(command) = line(&mut secure).await else {
                        return;
                    };
                    let verb = command.to_ascii_uppercase();
                    let reply: &[u8] = if verb.starts_with("EHLO") {
                        b"250-sink\r\n250 AUTH PLAIN\r\n"
                    } else if verb.starts_with("AUTH PLAIN ") {
                        mail.auth = Some(command["AUTH PLAIN ".len()..].to_string());
                        b"235 2.7.0 accepted\r\n"
                    } else if verb.starts_with("MAIL FROM:") {
                        mail.from = command["MAIL FROM:".len()..].to_string();
                        b"250 ok\r\n"
                    } else if verb.starts_with("RCPT TO:") {
                        mail.to.push(command["RCPT TO:".len()..].to_string());
                        b"250 ok\r\n"
                    } else if verb == "DATA" {
                        secure.get_mut().write_all(b"354 go on\r\n").await.unwrap();
                        while let Some(l) = line(&mut secure).await {
                            if l == "." {
                                break;
                            }
                            mail.data.push_str(&l);
                            mail.data.push('\n');
                        }
                        b"250 queued\r\n"
                    } else if verb == "QUIT" {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    secure.get_mut().write_all(reply).await.unwrap();
                    if verb == "QUIT" {
                        break;
                    }
                }
                let _ = tx.send(mail);
            });
        }
    });
    (port, rx)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

fn started(p: &Project, env: &[(&str, &str)]) -> Daemon {
    let mut daemon = p.serve_env(&[], None, env);
    daemon.wait_for("scheduler started", &[]);
    daemon
}

fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no {what} arrived"))
}

#[test]
fn webhook_slack_and_mail_arrive_over_tls_with_the_runs_summary() {
    let ca = test_ca();
    let (https, requests) = https_receiver(ca.acceptor.clone());
    let (smtp, mails) = smtp_sink(ca.acceptor.clone());
    let p = Project::new()
        .file("ca.pem", &ca.ca_pem)
        .file(
            "jobs.toml",
            format!(
                "ca_cert = \"ca.pem\"\n\
                 [server]\npublic_url = \"https://jobs.example.com/\"\n\
                 [smtp]\nhost = \"localhost\"\nport = {smtp}\nfrom = \"jobctl <jobctl@example.com>\"\n\
                 username = \"jobctl\"\npassword_env = \"TEST_SMTP_PASSWORD\"\n"
            ),
        )
        .file(
            "jobs.d/backup.yaml",
            format!(
                "run: |\n  echo \"password=$TEST_SMTP_PASSWORD.\"\n  for i in $(seq 1 30); do echo \"step $i\"; done\n  echo 'disk full'\n  exit 2\n\
                 on_failure:\n\
                 \x20 - webhook: https://127.0.0.1:{https}/hook?token=s3cret\n\
                 \x20 - slack: https://localhost:{https}/services/T0/B0/XXXX\n\
                 \x20 - email: [ops@example.com, dba@example.com]\n"
            ),
        );
    p.run(&["validate"]).code(0);
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p, &[("TEST_SMTP_PASSWORD", "s3cret")]);
    p.run(&["trigger", "backup"]).code(0);
    daemon.wait_for("on_failure webhook", &[("job", "backup"), ("run", "1")]);
    daemon.wait_for("on_failure slack", &[("job", "backup"), ("run", "1")]);
    daemon.wait_for("on_failure email", &[("job", "backup"), ("run", "1")]);
    let host = host();

    let mut got: Vec<(String, Value)> = vec![
        recv(&requests, "webhook or Slack POST"),
        recv(&requests, "webhook or Slack POST"),
    ];
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let (hook_path, hook) = &got[0];
    assert_eq!(hook_path, "/hook?token=s3cret");
    assert_eq!(hook["job"], "backup");
    assert_eq!(hook["run_id"], 1);
    assert_eq!(hook["state"], "failed");
    assert_eq!(hook["exit_code"], 2);
    assert_eq!(hook["host"], host.as_str());
    assert_eq!(hook["url"], "https://jobs.example.com/runs/1");
    let tail = hook["output_tail"].as_str().unwrap();
    assert_eq!(tail.lines().count(), 20, "{tail}");
    assert!(tail.ends_with("step 30\ndisk full"), "{tail}");
    assert!(
        tail.starts_with("step 12\n"),
        "only the last 20 lines: {tail}"
    );

    let (slack_path, slack) = &got[1];
    assert_eq!(slack_path, "/services/T0/B0/XXXX");
    let text = slack["text"].as_str().unwrap();
    for part in [
        format!("*backup failed on {host} (exit 2)*"),
        "State: failed".to_string(),
        "Exit code: 2".to_string(),
        format!("Host: {host}"),
        "Link: <https://jobs.example.com/runs/1|run 1>".to_string(),
        "step 30\ndisk full\n```".to_string(),
    ] {
        assert!(text.contains(&part), "no {part:?} in\n{text}");
    }

    let mail = recv(&mails, "mail");
    // "\0jobctl\0s3cret" in base64: the password came from the variable password_env names.
    assert_eq!(mail.auth.as_deref(), Some("AGpvYmN0bABzM2NyZXQ="));
    assert_eq!(mail.from, "<jobctl@example.com>");
    assert_eq!(mail.to, ["<ops@example.com>", "<dba@example.com>"]);
    // Headers may be folded onto several lines.
    let (head, body) = mail.data.split_once("\n\n").unwrap();
    let data = format!("{}\n\n{body}", head.replace("\n ", " "));
    for part in [
        format!("Subject: [jobctl] backup failed on {host} (exit 2)\n"),
        "Content-Type: text/plain".to_string(),
        "Date: Sat, 31 Oct 2026 12:".to_string(),
        "State:     failed\n".to_string(),
        "Exit code: 2\n".to_string(),
        format!("Host:      {host}\n"),
        "Link:      https://jobs.example.com/runs/1\n".to_string(),
        "    step 30\n    disk full\n".to_string(),
    ] {
        assert!(data.contains(&part), "no {part:?} in\n{data}");
    }
    // The SMTP password is the daemon's, never a run's.
    assert!(!data.contains("s3cret"), "{data}");
    let output = p.run(&["logs", "backup"]).code(0);
    assert!(
        output.stdout.contains("password=.") && !output.stdout.contains("s3cret"),
        "{}",
        output.stdout
    );
    assert_eq!(daemon.stop(), Some(0));
    let events = p.run(&["run", "events", "1"]).code(0);
    assert_eq!(
        events.stdout.matches("notified").count(),
        3,
        "{}",
        events.stdout
    );
    assert!(!events.stdout.contains("s3cret"), "{}", events.stdout);
}

#[test]
fn an_undelivered_notification_is_a_warning_an_event_and_a_metric() {
    let ca = test_ca();
    // A port nothing listens on: bound, then let go.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A receiver whose CA this daemon does not trust (no `ca_cert`).
    let (untrusted, requests) = https_receiver(ca.acceptor.clone());
    let p = Project::new().file(
        "jobs.d/backup.yaml",
        format!(
            "command: [\"false\"]\non_failure:\n\
             \x20 - webhook: http://127.0.0.1:{refused}/hook?token=s3cret\n\
             \x20 - slack: https://localhost:{untrusted}/services/T0/B0/s3cret\n"
        ),
    );
    p.run(&["apply"]).code(0);
    let mut daemon = started(&p, &[]);
    p.run(&["trigger", "backup"]).code(0);
    let webhook = daemon.wait_for(
        "notification not delivered",
        &[("job", "backup"), ("run", "1"), ("kind", "webhook")],
    );
    let slack = daemon.wait_for(
        "notification not delivered",
        &[("job", "backup"), ("run", "1"), ("kind", "slack")],
    );
    for (line, target) in [
        (&webhook, format!("http://127.0.0.1:{refused}/hook")),
        (
            &slack,
            format!("https://localhost:{untrusted}/services/T0/B0/s3cret"),
        ),
    ] {
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["to"], target.as_str(), "{line}");
        assert!(
            line["message"]
                .as_str()
                .unwrap()
                .contains("gave up after 4 attempts"),
            "{line}"
        );
        assert!(
            !line["message"].as_str().unwrap().contains("token"),
            "{line}"
        );
    }
    assert!(
        slack["message"].as_str().unwrap().contains("certificate"),
        "{slack}"
    );

    let metrics = get_text(&format!("{}/metrics", daemon.url()));
    for kind in ["webhook", "slack"] {
        let line = format!("jobs_notifications_failed_total{{kind=\"{kind}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("# HELP jobs_notifications_failed_total Notifications not delivered"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "jobs_notifications_sent_total{kind=\"webhook\"} 0"),
        "{metrics}"
    );
    assert!(
        requests.try_recv().is_err(),
        "an untrusted server got a POST"
    );
    assert_eq!(daemon.stop(), Some(0));

    let events = p
        .run(&["run", "events", "1", "--output", "json"])
        .code(0)
        .json();
    let failed: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "notify_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{events}");
    assert!(
        failed[0]["message"].as_str().unwrap().starts_with(&format!(
            "on_failure webhook http://127.0.0.1:{refused}/hook: gave up"
        )),
        "{events}"
    );
}

fn get_text(url: &str) -> String {
    let mut body = String::new();
    ureq::get(url)
        .call()
        .unwrap()
        .into_body()
        .into_reader()
        .read_to_string(&mut body)
        .unwrap();
    body
}

/// `jobctl validate` in a project with `jobs.toml` (if any) and one job file.
fn validate(config: Option<&str>, file: &str, content: &str) -> common::Run {
    let mut p = Project::new().file(&format!("jobs.d/{file}"), content);
    if let Some(config) = config {
        p = p.file("jobs.toml", config);
    }
    p.run(&["validate"])
}

const SMTP: &str = "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"jobctl@example.com\"\n";

#[test]
fn validate_refuses_notifications_that_can_never_be_sent() {
    let cases: &[(Option<&str>, &str, &str, &str, &str)] = &[
        (
            None,
            "a.yaml",
            "command: [x]\non_failure:\n  - slack: hooks.slack.com/services/T/B/X\n",
            "3:12",
            "on_failure item 1: slack `hooks.slack.com/services/T/B/X` is not a URL; expected an http:// or https:// URL",
        ),
        (
            None,
            "a.yaml",
            "command: [x]\non_failure:\n  - slack: 'https:///services'\n",
            "3:12",
            "has no host",
        ),
        (
            None,
            "a.yaml",
            "command: [x]\non_failure:\n  - webhook: mailto:ops@example.com\n",
            "3:14",
            "is not a URL",
        ),
        (
            Some(SMTP),
            "a.yaml",
            "command: [x]\non_failure:\n  - email: ops.example.com\n",
            "3:12",
            "on_failure item 1: email `ops.example.com` is not an address",
        ),
        (
            Some(SMTP),
            "a.yaml",
            "command: [x]\non_failure:\n  - email: [ops@example.com, 'not an address']\n",
            "3:30",
            "email `not an address` is not an address",
        ),
        (
            Some(SMTP),
            "a.yaml",
            "command: [x]\non_failure:\n  - email: []\n",
            "3:12",
            "`email` is an empty list",
        ),
        (
            None,
            "a.yaml",
            "command: [x]\non_failure:\n  - email: ops@example.com\n",
            "3:12",
            "on_failure item 1: `email` needs a mail server, and jobs.toml has no `[smtp]` section",
        ),
        (
            None,
            "a.toml",
            "command = [\"x\"]\n[[on_success]]\nemail = \"ops@example.com\"\n",
            "3:9",
            "`email` needs a mail server",
        ),
        (
            Some(SMTP),
            "a.yaml",
            "command: [x]\non_failure:\n  - {slack: 'https://h/x', email: ops@example.com}\n",
            "3:5",
            "on_failure item 1 has both `slack` and `email`; it needs exactly one",
        ),
        (
            Some(SMTP),
            "a.yaml",
            "command: [x]\non_success:\n  - email: ops@example.com\n    after: 2\n",
            "4:12",
            "on_success item 1: `after` is only allowed in `on_failure`",
        ),
    ];
    for (config, file, content, location, message) in cases {
        let run = validate(*config, file, content);
        assert_eq!(run.code, 1, "{content}: expected exit 1\n{}", run.stderr);
        let at = format!("jobs.d/{file}:{location}");
        assert!(
            run.stderr.contains(&at),
            "{content}: no {at:?} in\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(message),
            "{content}: no {message:?} in\n{}",
            run.stderr
        );
    }
}

#[test]
fn validate_accepts_slack_and_email_with_a_mail_server() {
    validate(
        Some(SMTP),
        "a.yaml",
        "command: [x]\non_failure:\n  - slack: https://hooks.slack.com/services/T/B/X\n  - email: ops@example.com\n    after: 3\non_success:\n  - email: [ops@example.com, 'Dev Ops <dev@example.com>']\n",
    )
    .code(1)
    .stderr_has("email `Dev Ops <dev@example.com>` is not an address");
    validate(
        Some(SMTP),
        "a.yaml",
        "command: [x]\non_failure:\n  - slack: https://hooks.slack.com/services/T/B/X\n  - email: ops@example.com\n    after: 3\non_success:\n  - email: [ops@example.com, dev@example.com]\n",
    )
    .code(0);
    validate(
        Some(SMTP),
        "b.toml",
        "command = [\"x\"]\n[[on_failure]]\nslack = \"https://chat.example.com/hooks/abc\"\n[[on_failure]]\nemail = [\"ops@example.com\"]\n",
    )
    .code(0);
}

#[test]
fn jobs_toml_refuses_a_broken_mail_server_or_public_url() {
    for (config, message) in [
        (
            "[smtp]\nfrom = \"jobctl@example.com\"\n",
            "smtp.host is missing",
        ),
        (
            "[smtp]\nhost = \"smtp.example.com\"\n",
            "smtp.from is missing",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"jobctl\"\n",
            "smtp.from `jobctl` is not an address",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nstarttls = \"maybe\"\n",
            "smtp.starttls `maybe` is not one of `required`, `opportunistic`, `off`",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\n",
            "smtp.username and smtp.password_env go together",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\npassword_env = \"hunter2 is my password\"\n",
            "smtp.password_env `hunter2 is my password` is not a variable name",
        ),
        (
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword = \"hunter2\"\n",
            "unknown field `password`",
        ),
        (
            "[server]\npublic_url = \"jobs.example.com\"\n",
            "server.public_url `jobs.example.com` is not a URL; expected an http:// or https:// URL",
        ),
    ] {
        validate(Some(config), "a.yaml", "command: [x]\n")
            .code(1)
            .stderr_has(message);
    }
}

#[test]
fn an_unreadable_ca_cert_stops_the_daemon_at_start() {
    let p = Project::new()
        .file("jobs.toml", "ca_cert = \"missing.pem\"\n")
        .file("jobs.d/a.yaml", "command: [\"true\"]\n");
    let run = p.run_within(
        Duration::from_secs(30),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("setting up notifications: ca_cert: cannot read the CA certificate file")
            && run.stderr.contains("missing.pem"),
        "{}",
        run.stderr
    );
}
