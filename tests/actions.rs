//! Jobs that are not processes (issue 18): `http` requests and `prompt`s to an
//! OpenAI-compatible endpoint, against servers made here: one that checks the method, headers
//! and body and answers chosen statuses, and chat completions stubs that stream an answer in
//! chunks, stall, fail mid-stream, answer 429 with `Retry-After`, or stream until the client
//! hangs up.

mod common;

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::Project;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const READER: &str = "read-token-0123456789abcdef";

/// A request as a test server read it.
#[derive(Clone, Debug, Default)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A listener on a port of its own, each connection handed to `serve` on a task of a runtime
/// on its own thread; returns the port.
fn listen<F, Fut>(serve: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    common::spawn_server(move |listener| async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    })
}

/// A server: each connection's request is read, kept, and handed with the connection to
/// `answer`, which writes what it likes (and closes it, or not).
fn server<F, Fut>(answer: F) -> (u16, Arc<Mutex<Vec<Received>>>)
where
    F: Fn(Received, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let answer = Arc::new(answer);
    let port = listen(move |tcp| {
        let (answer, kept) = (answer.clone(), kept.clone());
        async move {
            let Some((received, tcp)) = read_request(tcp).await else {
                return;
            };
            kept.lock().unwrap().push(received.clone());
            answer(received, tcp).await;
        }
    });
    (port, seen)
}

async fn read_request(tcp: TcpStream) -> Option<(Received, TcpStream)> {
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let mut received = Received {
        method: parts.next()?.to_string(),
        path: parts.next()?.to_string(),
        ..Received::default()
    };
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        received
            .headers
            .push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = received
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    received.body = body;
    Some((received, reader.into_inner()))
}

/// Writes a whole response and closes the connection.
async fn respond(mut tcp: TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut text = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let _ = tcp.write_all(text.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// Starts a stream of server-sent events (the body ends when the connection closes).
async fn start_events(tcp: &mut TcpStream) {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
}

/// One completion chunk as an event.
async fn event(tcp: &mut TcpStream, data: &Value) -> std::io::Result<()> {
    tcp.write_all(format!("data: {data}\n\n").as_bytes())
        .await?;
    tcp.flush().await
}

fn delta(text: &str) -> Value {
    serde_json::json!({"model": "stub-model-0613", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
}

fn run_json(p: &Project, id: &str) -> Value {
    p.run(&["run", "get", id, "-o", "json"]).code(0).json()
}

#[test]
fn an_http_job_sends_its_request_and_judges_the_answer() {
    let (port, seen) = server(|req, tcp| async move {
        match req.path.split('?').next().unwrap_or("") {
            "/refresh" => {
                respond(
                    tcp,
                    "200 OK",
                    &[("content-type", "text/plain")],
                    "refreshed\nall good\n",
                )
                .await;
            }
            "/down" => {
                respond(
                    tcp,
                    "503 Service Unavailable",
                    &[("retry-after", "7")],
                    "maintenance",
                )
                .await;
            }
            // Answers nothing, and holds the connection.
            "/slow" => tokio::time::sleep(Duration::from_secs(60)).await,
            "/hop" => respond(tcp, "302 Found", &[("location", "/refresh")], "").await,
            "/away" => {
                let elsewhere = req.header("x-elsewhere").unwrap_or("").to_string();
                respond(tcp, "302 Found", &[("location", &elsewhere)], "").await;
            }
            _ => respond(tcp, "404 Not Found", &[], "").await,
        }
    });
    // Another origin: a redirect there is not followed, so the secret never reaches it.
    let (other, reached) = server(|_req, tcp| async move { respond(tcp, "200 OK", &[], "").await });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let base = format!("http://127.0.0.1:{port}");
    let p = Project::new()
        .file(
            "jobs.d/refresh.yaml",
            format!(
                "params:\n  day: {{default: '2026-12-01'}}\n  note: {{default: 'say \"hi\" & bye'}}\n\
                 http:\n  method: POST\n  url: '{base}/refresh?day={{{{ params.day }}}}&note={{{{ params.note }}}}'\n\
                 \x20 headers:\n    Authorization: {{env: REFRESH_TOKEN, prefix: 'Bearer '}}\n    X-Team: {{secret_file: team.txt}}\n\
                 \x20   Content-Type: application/json\n\
                 \x20 body: {{day: '{{{{ params.day }}}}', note: '{{{{ params.note }}}}', full: true}}\n"
            ),
        )
        .file("team.txt", "blue\n")
        .file("jobs.d/down.yaml", format!("http: {{url: '{base}/down'}}\n"))
        .file("jobs.d/slow.yaml", format!("http: {{url: '{base}/slow', timeout: 1s}}\n"))
        .file("jobs.d/gone.yaml", format!("http: {{url: 'http://127.0.0.1:{closed_port}/x'}}\n"))
        .file("jobs.d/moved.yaml", format!("http: {{url: '{base}/nowhere', expect: [200, 404]}}\n"))
        .file(
            "jobs.d/watch.yaml",
            format!("http: {{url: '{base}/refresh'}}\nsuccess_when: {{output_matches: '(?m)^DONE$'}}\n"),
        )
        .file(
            "jobs.d/hop.yaml",
            format!("http: {{url: '{base}/hop', headers: {{X-Key: {{env: REFRESH_TOKEN}}}}}}\n"),
        )
        .file(
            "jobs.d/away.yaml",
            format!(
                "http:\n  url: '{base}/away'\n  expect: 3xx\n  headers:\n    X-Key: {{env: REFRESH_TOKEN}}\n    X-Elsewhere: 'http://127.0.0.1:{other}/x'\n"
            ),
        );
    p.run(&["apply"]).code(0);

    // The request as sent: method, the parameters percent-encoded in the URL and escaped in
    // the JSON body, the secrets read from the environment and a file.
    p.run_with(&["run", "refresh"], &[("REFRESH_TOKEN", "s3cret")])
        .code(0)
        .stdout_has("HTTP/1.1 200 OK")
        .stdout_has("content-type: text/plain")
        .stdout_has("all good");
    let req = seen.lock().unwrap()[0].clone();
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.path,
        "/refresh?day=2026-12-01&note=say%20%22hi%22%20%26%20bye"
    );
    assert_eq!(req.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(req.header("x-team"), Some("blue"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        serde_json::json!({"day": "2026-12-01", "note": "say \"hi\" & bye", "full": true})
    );
    let run = run_json(&p, "1");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["http_status"], 200);
    assert_eq!(
        run["exit_code"],
        Value::Null,
        "a request has no exit status"
    );
    assert_eq!(run["pid"], Value::Null);
    p.run(&["run", "get", "1"])
        .code(0)
        .stdout_has("HTTP status:  200");
    p.run(&["runs", "refresh"]).code(0).stdout_has("HTTP 200");
    p.run(&["run", "events", "1"])
        .code(0)
        .stdout_has("request POST http://127.0.0.1:");

    // A secret that is not there fails the run before anything is sent.
    p.run(&["run", "refresh"]).code(1);
    let run = run_json(&p, "2");
    assert_eq!(
        run["error"],
        "header `authorization`: the variable REFRESH_TOKEN is not set in the daemon's environment"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A status outside `expect`, with what the server asked.
    p.run(&["run", "down"]).code(1).stdout_has("maintenance");
    let run = run_json(&p, "3");
    assert_eq!(run["state"], "failed");
    assert_eq!(run["http_status"], 503);
    assert_eq!(
        run["error"],
        "the server answered 503 Service Unavailable; expected 2xx; it asks to retry after 7s"
    );
    // `expect` can take what is not 2xx.
    p.run(&["run", "moved"]).code(0);
    assert_eq!(run_json(&p, "4")["http_status"], 404);

    // A redirect within the origin is followed, with its headers; one to another origin is
    // the answer, and the secret header goes nowhere else.
    p.run_with(&["run", "hop"], &[("REFRESH_TOKEN", "s3cret")])
        .code(0)
        .stdout_has("all good");
    let followed = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (followed.path.as_str(), followed.header("x-key")),
        ("/refresh", Some("s3cret"))
    );
    p.run_with(&["run", "away"], &[("REFRESH_TOKEN", "s3cret")])
        .code(0)
        .stdout_has("HTTP/1.1 302 Found");
    assert!(
        reached.lock().unwrap().is_empty(),
        "nothing reached the other origin"
    );
    let ids = p.run(&["runs", "-o", "json"]).code(0).json();
    assert_eq!(ids[0]["http_status"], 302);

    // Success decided by the answer's text too: a 200 that does not say DONE fails.
    p.run(&["run", "watch"]).code(1).stdout_has("all good");
    let runs = p.run(&["runs", "watch", "-o", "json"]).code(0).json();
    assert_eq!(runs[0]["state"], "failed");
    assert_eq!(
        runs[0]["exit_code"],
        Value::Null,
        "a request has no exit status"
    );
    assert_eq!(
        runs[0]["error"],
        "its output did not match `(?m)^DONE$` (success_when.output_matches)"
    );

    // No answer within http.timeout; nobody listening.
    p.run(&["run", "slow"]).code(1);
    let run = run_json(&p, "8");
    assert_eq!(
        run["error"], "no complete answer within http.timeout 1s",
        "{run}"
    );
    p.run(&["run", "gone"]).code(1);
    let run = run_json(&p, "9");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("GET http://127.0.0.1:{closed_port}/x: "))
            && error.contains("onnect"),
        "{error}"
    );
}

/// jobs.toml with a provider per stub behaviour, all served by one stub on `port`.
fn llm_config(port: u16) -> String {
    let mut text =
        format!("[llm]\nbase_url = \"http://127.0.0.1:{port}/v1\"\napi_key_env = \"STUB_KEY\"\n");
    for name in ["stall", "broken", "cut", "busy", "ticking", "plain"] {
        text.push_str(&format!(
            "[llm.providers.{name}]\nbase_url = \"http://127.0.0.1:{port}/{name}/v1\"\nidle_timeout = \"1s\"\n"
        ));
    }
    text
}

#[test]
fn a_prompt_streams_its_answer_and_records_the_model_and_tokens() {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go = Arc::new(Mutex::new(go_rx));
    let (port, seen) = server(move |_req, mut tcp| {
        let go = go.clone();
        async move {
            start_events(&mut tcp).await;
            event(&mut tcp, &serde_json::json!({"model": "stub-model-0613", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})).await.unwrap();
            event(&mut tcp, &delta("Three incidents")).await.unwrap();
            event(&mut tcp, &delta(" yesterday:\n- disk"))
                .await
                .unwrap();
            // The rest only once the test has seen the first line in the run's output.
            let go = go.clone();
            tokio::task::spawn_blocking(move || {
                go.lock().unwrap().recv_timeout(Duration::from_secs(30))
            })
            .await
            .unwrap()
            .unwrap();
            event(&mut tcp, &delta(" full on db-1\n- DNS flapped"))
                .await
                .unwrap();
            event(&mut tcp, &serde_json::json!({"model": "stub-model-0613", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})).await.unwrap();
            event(&mut tcp, &serde_json::json!({"model": "stub-model-0613", "choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": 9, "total_tokens": 51}})).await.unwrap();
            tcp.write_all(b"data: [DONE]\n\n").await.unwrap();
            let _ = tcp.shutdown().await;
        }
    });
    // Where the answer is posted: a chat webhook.
    let (hook_tx, hook_rx) = mpsc::channel::<Value>();
    let hook_tx = Arc::new(Mutex::new(hook_tx));
    let (chat, _) = server(move |req, tcp| {
        let _ = hook_tx.lock().unwrap().send(req.json());
        async move { respond(tcp, "200 OK", &[], "ok").await }
    });
    let p = Project::new()
        .file("jobs.toml", llm_config(port))
        .file("tokens", format!("read {READER}\n"))
        .file(
            "jobs.d/summary.yaml",
            format!(
                "params:\n  day: {{default: yesterday}}\nprompt:\n  model: stub-model\n  system: You are an SRE. Be brief.\n\
                 \x20 prompt: 'Summarise the incidents of {{{{ params.day }}}}.'\n  max_tokens: 200\n  temperature: 0.2\n\
                 on_success:\n  - webhook: http://127.0.0.1:{chat}/hooks/incidents\n"
            ),
        );
    p.run(&["apply"]).code(0);
    p.run(&["plan"]).code(0).stdout_has("No changes");
    let mut daemon = p.serve_env(
        &["--token-file", "tokens"],
        None,
        &[("STUB_KEY", "sk-test")],
    );
    daemon.wait_for("scheduler started", &[]);
    let url = daemon.url();
    p.run_live(&["trigger", "summary"]).code(0);
    daemon.wait_for("request started", &[("job", "summary")]);
    // The answer reaches the output as it streams: its first line while the model is still
    // answering.
    let (mut follow, lines) = p.spawn(&["logs", "1", "-f"]);
    lines.until(|l| l == "Three incidents yesterday:");
    assert_eq!(
        p.run_live(&["run", "get", "1", "-o", "json"]).json()["state"],
        "running"
    );
    go_tx.send(()).unwrap();
    lines.until(|l| l == "- disk full on db-1");
    lines.until(|l| l == "- DNS flapped");
    assert!(follow.wait().unwrap().success());
    daemon.wait_for("run ended", &[("job", "summary")]);

    let run = p.run_live(&["run", "get", "1", "-o", "json"]).json();
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["model"], "stub-model-0613");
    assert_eq!(run["finish_reason"], "stop");
    assert_eq!(run["prompt_tokens"], 42);
    assert_eq!(run["completion_tokens"], 9);
    assert_eq!(run["http_status"], 200);
    p.run_live(&["run", "get", "1"])
        .code(0)
        .stdout_has("Model:        stub-model-0613 (finish reason: stop)")
        .stdout_has("Tokens:       42 prompt + 9 completion");
    // What the provider was sent.
    let req = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(req.header("authorization"), Some("Bearer sk-test"));
    let body = req.json();
    assert_eq!(body["model"], "stub-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 200);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "system", "content": "You are an SRE. Be brief."},
            {"role": "user", "content": "Summarise the incidents of yesterday."}
        ])
    );
    // The answer, posted where people read it.
    let hook = hook_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the answer was posted");
    assert_eq!(hook["state"], "succeeded");
    assert!(
        hook["output_tail"]
            .as_str()
            .unwrap()
            .ends_with("- disk full on db-1\n- DNS flapped"),
        "{hook}"
    );
    // Tokens as metrics: per job in Prometheus, per run over time in the API.
    let metrics = ureq::get(format!("{url}/metrics"))
        .header("authorization", format!("Bearer {READER}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("jobs_llm_tokens_total{job=\"summary\",kind=\"completion\"} 9"),
        "{metrics}"
    );
    assert!(metrics.contains("jobs_llm_tokens_total{job=\"summary\",kind=\"prompt\"} 42"));
    let series: Value = ureq::get(format!(
        "{url}/v1/jobs/summary/metrics?names=prompt_tokens,completion_tokens"
    ))
    .header("authorization", format!("Bearer {READER}"))
    .call()
    .unwrap()
    .body_mut()
    .read_json()
    .unwrap();
    let text = series.to_string();
    assert!(
        text.contains("\"prompt_tokens\"") && text.contains("42"),
        "{text}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_prompt_that_stalls_breaks_or_is_refused_fails_with_why() {
    let (port, _seen) = server(|req, mut tcp| async move {
        let behaviour = req.path.split('/').nth(1).unwrap_or("").to_string();
        if behaviour == "plain" {
            // A provider that ignores `stream` and answers one JSON completion.
            let body = serde_json::json!({"model": "plain-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "one\ntwo"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).to_string();
            respond(
                tcp,
                "200 OK",
                &[("content-type", "application/json")],
                &body,
            )
            .await;
            return;
        }
        if behaviour == "busy" {
            let body =
                r#"{"error": {"message": "Rate limit reached for requests", "type": "requests"}}"#;
            respond(
                tcp,
                "429 Too Many Requests",
                &[("retry-after", "30"), ("content-type", "application/json")],
                body,
            )
            .await;
            return;
        }
        start_events(&mut tcp).await;
        event(&mut tcp, &delta("partial answer\n")).await.unwrap();
        match behaviour.as_str() {
            "stall" => tokio::time::sleep(Duration::from_secs(60)).await,
            "broken" => {
                let error = serde_json::json!({"error": {"message": "model overloaded", "type": "server_error"}});
                event(&mut tcp, &error).await.unwrap();
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            _ => {
                let _ = tcp.shutdown().await;
            }
        }
    });
    let p = Project::new().file("jobs.toml", llm_config(port));
    for name in ["stall", "broken", "cut"] {
        p.write(
            &format!("jobs.d/{name}.yaml"),
            format!("prompt: {{provider: {name}, model: m, prompt: hi}}\n"),
        );
    }
    p.write(
        "jobs.d/busy.yaml",
        "prompt: {provider: busy, model: m, prompt: hi}\nretry: {attempts: 1, backoff: 1s}\n",
    );
    p.run(&["apply"]).code(0);
    for (id, name, error) in [
        (
            "1",
            "stall",
            "the provider sent nothing for 1s while streaming (its idle_timeout)",
        ),
        (
            "2",
            "broken",
            "the provider reported an error mid-stream: model overloaded",
        ),
        (
            "3",
            "cut",
            "the stream ended before the answer was finished (no finish reason, no [DONE])",
        ),
    ] {
        p.run(&["run", name]).code(1).stdout_has("partial answer");
        let run = run_json(&p, id);
        assert_eq!(
            (run["state"].as_str(), run["error"].as_str()),
            (Some("failed"), Some(error)),
            "{name}: {run}"
        );
        assert_eq!(
            run["model"], "stub-model-0613",
            "{name}: what streamed is kept"
        );
    }
    // A provider that answers one JSON completion rather than a stream is read as well.
    p.write(
        "jobs.d/plain.yaml",
        "prompt: {provider: plain, model: m, prompt: hi}\n",
    );
    p.run(&["apply"]).code(0);
    p.run(&["run", "plain"]).code(0).stdout_has("one\ntwo");
    let runs = p.run(&["runs", "plain", "-o", "json"]).code(0).json();
    assert_eq!(
        (
            &runs[0]["model"],
            &runs[0]["finish_reason"],
            &runs[0]["completion_tokens"]
        ),
        (
            &Value::from("plain-1"),
            &Value::from("stop"),
            &Value::from(2)
        )
    );
    // The default provider's key is named by jobs.toml but not set here.
    p.write("jobs.d/keyless.yaml", "prompt: {model: m, prompt: hi}\n");
    p.run(&["apply"]).code(0);
    p.run(&["run", "keyless"]).code(1);
    let runs = p.run(&["runs", "keyless", "-o", "json"]).code(0).json();
    assert_eq!(
        runs[0]["error"],
        "the provider's key variable STUB_KEY is not set in the daemon's environment"
    );
    // 429: the provider's message and its Retry-After, which delays the retry past the
    // backoff of 1s.
    p.run(&["run", "busy"]).code(1);
    let runs = p.run(&["runs", "busy", "-o", "json"]).code(0).json();
    let failed = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["attempt"] == 1)
        .unwrap();
    assert_eq!(
        failed["error"],
        "the provider answered 429 Too Many Requests: Rate limit reached for requests; it asks to retry after 30s"
    );
    assert_eq!(failed["http_status"], 429);
    let retry = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["attempt"] == 2)
        .expect("a retry");
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let wait = at(&retry["not_before"]).duration_since(at(&failed["finished_at"]));
    assert!(
        wait >= jiff::SignedDuration::from_secs(29),
        "retry after {wait:?}"
    );
}

#[test]
fn cancelling_a_prompt_closes_its_stream() {
    let (closed_tx, closed_rx) = mpsc::channel::<String>();
    let closed_tx = Arc::new(Mutex::new(closed_tx));
    let (port, _seen) = server(move |_req, mut tcp| {
        let closed_tx = closed_tx.clone();
        async move {
            start_events(&mut tcp).await;
            // A tick a tenth of a second until the client hangs up.
            for n in 0.. {
                if event(&mut tcp, &delta(&format!("tick {n}\n")))
                    .await
                    .is_err()
                {
                    let _ = closed_tx
                        .lock()
                        .unwrap()
                        .send(format!("closed after {n} ticks"));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let p = Project::new().file("jobs.toml", llm_config(port)).file(
        "jobs.d/endless.yaml",
        "prompt: {provider: ticking, model: m, prompt: go on}\n",
    );
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("scheduler started", &[]);
    p.run_live(&["trigger", "endless"]).code(0);
    let (_follow, lines) = p.spawn(&["logs", "1", "-f"]);
    lines.until(|l| l == "tick 2");
    p.run_live(&["run", "cancel", "1"]).code(0);
    daemon.wait_for("run ended", &[("job", "endless")]);
    let closed = closed_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the stream closed");
    assert!(closed.starts_with("closed after"), "{closed}");
    let run = p.run_live(&["run", "get", "1", "-o", "json"]).json();
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn an_https_request_trusts_the_ca_of_jobs_toml_as_notifications_do() {
    // A throwaway CA and a certificate it signed for `localhost`.
    let ca = common::test_ca();
    let acceptor = ca.acceptor;
    let port = listen(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let body = "secure hello";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    let p = Project::new().file("ca.pem", ca.ca_pem).file(
        "jobs.d/secure.yaml",
        format!("http: {{url: 'https://localhost:{port}/'}}\n"),
    );
    p.run(&["apply"]).code(0);
    // The system's roots alone do not know the private CA.
    p.run(&["run", "secure"]).code(1);
    let error = run_json(&p, "1")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("UnknownIssuer") || error.contains("certificate"),
        "{error}"
    );
    p.write("jobs.toml", "ca_cert = \"ca.pem\"\n");
    p.run(&["run", "secure"]).code(0).stdout_has("secure hello");
    assert_eq!(run_json(&p, "2")["http_status"], 200);
}
