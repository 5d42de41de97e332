//! Runs that are requests, not processes: `http` (one request, its status, headers and body as
//! the output) and `prompt` (a streamed chat completion, the answer as the output).
//!
//! A request is a future: a timeout or a stop drops it, which closes its connection at once
//! (a stalled stream included). What the answer said (status, model, finish reason, tokens)
//! is gathered as it arrives, so a run stopped midway still records what was known.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use bytes::Bytes;
use jiff::SignedDuration;
use tokio::sync::{mpsc, watch};

use super::output::{self, Budget, emit};
use super::{Finished, Launch, Report, Stop, stop_requested, until};
use crate::clock::Clock;
use crate::run::Ending;
use crate::spec::{
    Action, HeaderValue, HttpBody, HttpRequest, KeySource, Prompt, Provider, Reply,
    unexpected_status,
};

/// How much of an error answer's body is read for its message.
const ERROR_BODY: usize = 64 * 1024;

/// The most a prompt's answer may hold in one piece (an event of the stream, or a whole JSON
/// answer): a provider sending more is broken, and the daemon's memory is not its to take.
const MAX_ANSWER: usize = 4 << 20;

const NO_CLIENT: &str =
    "the HTTP client could not be set up (the daemon's log says why when it started)";

fn too_large() -> String {
    format!(
        "the provider sent more than {} in one piece (an event, or the whole answer)",
        crate::size::ByteSize(MAX_ANSWER as u64)
    )
}

/// Why the requests' client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Client(String),
}

/// The client every request of this process shares (its connections are kept for the next
/// run), trusting the system's roots, `SSL_CERT_FILE`'s and `extra_roots` (jobs.toml's
/// `ca_cert`): the same rustls configuration as the binary's other clients.
///
/// # Errors
///
/// The client cannot be set up (its TLS configuration).
pub fn client(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<reqwest::Client, ClientError> {
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(
        crate::tls::environment_roots()
            .iter()
            .chain(extra_roots)
            .cloned(),
    );
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(store)
    .with_no_client_auth();
    // Redirects are followed within the origin the job named (scheme, host and port), at most
    // 10: a header filled from a secret never goes to a host the file did not name, nor from
    // https to http. A redirect elsewhere is the answer (`expect: 3xx` can take it).
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(redirects)
        .user_agent(concat!("jobs/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(StdDuration::from_secs(10))
        .build()
        .map_err(|e| ClientError::Client(chain(&e)))
}

/// Runs a request action to its end, as [`super::execute`] runs a process.
pub(super) async fn execute(
    launch: Launch,
    clock: Clock,
    reports: mpsc::Sender<Report>,
    mut stop: watch::Receiver<Option<Stop>>,
    on_start: impl FnOnce(&Report) + Send + 'static,
) -> Finished {
    let started = Report::Started {
        pid: None,
        start_time: 0,
        at: clock.now(),
        what: describe(&launch),
    };
    let report = started.clone();
    let _ = tokio::task::spawn_blocking(move || on_start(&report)).await;
    let _ = reports.send(started).await;

    let budget = Budget::new(launch.output_limit);
    let reply = Arc::new(Mutex::new(Reply::default()));
    let mut out = Sink {
        reports: &reports,
        budget: &budget,
        clock,
        partial: Vec::new(),
    };
    let deadline_at = launch.timeout.map(|t| tokio::time::Instant::now() + t);
    let ending = {
        // Dropped at the timeout or a stop: the request's connection closes with it.
        let work = async {
            match &launch.action {
                Action::Http(request) => http(&launch, request, &reply, &mut out).await,
                Action::Prompt(prompt) => self::prompt(&launch, prompt, &reply, &mut out).await,
                _ => unreachable!("execute only takes requests"),
            }
        };
        tokio::select! {
            ending = work => ending,
            () = until(deadline_at) => Ending::TimedOut { signal: None },
            requested = stop_requested(&mut stop) => requested.ending(),
        }
    };
    // The last line, however the request ended.
    out.finish().await;
    let reply = reply.lock().map(|r| r.clone()).unwrap_or_default();
    Finished {
        ending,
        usage: None,
        output_bytes: budget.used.load(std::sync::atomic::Ordering::Relaxed),
        truncated: budget.truncated.load(std::sync::atomic::Ordering::Relaxed),
        reply: Some(reply),
    }
}

/// What the `started` event says the run started.
fn describe(launch: &Launch) -> String {
    match &launch.action {
        Action::Http(r) => format!("request {} {}", r.method, r.url),
        Action::Prompt(p) => {
            let at = launch.provider.as_ref().map_or("", |p| p.base_url.as_str());
            format!("prompt to {} at {at}", p.model)
        }
        _ => String::new(),
    }
}

/// Output lines, from bytes as they arrive.
struct Sink<'a> {
    reports: &'a mpsc::Sender<Report>,
    budget: &'a Budget,
    clock: Clock,
    partial: Vec<u8>,
}

impl Sink<'_> {
    /// Sends one line (`line`, its newline included if it has one) within the budget.
    async fn send(&self, mut line: Vec<u8>) {
        let n = line.len();
        emit(
            self.reports,
            self.budget,
            self.clock,
            "stdout",
            &mut line,
            n,
        )
        .await;
    }

    /// Takes bytes; each complete line is sent, cut as a process's output is
    /// ([`output::next_line`]: at its newline, or after [`output::MAX_LINE`] bytes).
    async fn push(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let mut from = 0;
        while let Some(n) = output::next_line(&self.partial[from..]) {
            self.send(self.partial[from..from + n].to_vec()).await;
            from += n;
        }
        self.partial.drain(..from);
    }

    /// One whole line.
    async fn line(&mut self, text: &str) {
        self.send(format!("{text}\n").into_bytes()).await;
    }

    /// Sends what is left of the last line.
    async fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.send(line).await;
        }
    }
}

fn failed(error: impl Into<String>) -> Ending {
    Ending::RequestFailed {
        error: error.into(),
        retry_after: None,
    }
}

/// An error and its causes, as one line (reqwest's own message names only the outermost).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// Why a request got no answer.
fn unanswered(what: &str, e: &reqwest::Error) -> String {
    let mut text = chain(e);
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    format!("{what}: {text}")
}

/// A header's value at this run: as written, or read from where the secret is.
fn header_value(name: &str, value: &HeaderValue, dir: Option<&str>) -> Result<String, String> {
    let (text, from) = match value {
        HeaderValue::Text(text) => (text.clone(), "its value".to_string()),
        HeaderValue::Env { var, prefix } => match std::env::var(var) {
            Ok(v) => (
                format!("{prefix}{}", v.trim()),
                format!("the variable {var}"),
            ),
            Err(_) => {
                return Err(format!(
                    "header `{name}`: the variable {var} is not set in the daemon's environment"
                ));
            }
        },
        HeaderValue::SecretFile { path, prefix } => {
            let full = dir.map_or_else(
                || std::path::PathBuf::from(path),
                |d| std::path::Path::new(d).join(path),
            );
            match std::fs::read_to_string(&full) {
                Ok(v) => (format!("{prefix}{}", v.trim()), full.display().to_string()),
                Err(e) => {
                    return Err(format!(
                        "header `{name}`: cannot read {}: {e}",
                        full.display()
                    ));
                }
            }
        }
    };
    // Never the value itself in the message: it may be a secret.
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "header `{name}`: {from} holds a control character (a line break?), which a header cannot"
        ));
    }
    Ok(text)
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now: jiff::Timestamp,
) -> Option<SignedDuration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(SignedDuration::from_secs(secs.clamp(0, 86_400)));
    }
    let at = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
    Some(
        at.duration_since(now)
            .clamp(SignedDuration::ZERO, SignedDuration::from_hours(24)),
    )
}

fn record(reply: &Mutex<Reply>, f: impl FnOnce(&mut Reply)) {
    if let Ok(mut r) = reply.lock() {
        f(&mut r);
    }
}

async fn http(
    launch: &Launch,
    request: &HttpRequest,
    reply: &Mutex<Reply>,
    out: &mut Sink<'_>,
) -> Ending {
    let Some(client) = &launch.client else {
        return failed(NO_CLIENT);
    };
    let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
        return failed(format!("`{}` is not an HTTP method", request.method));
    };
    let mut builder = client.request(method, &request.url);
    for (name, value) in &request.headers {
        match header_value(name, value, launch.working_dir.as_deref()) {
            Ok(v) => builder = builder.header(name.as_str(), v),
            Err(e) => return failed(e),
        }
    }
    let typed = request.headers.iter().any(|(n, _)| n == "content-type");
    builder = match &request.body {
        None => builder,
        Some(HttpBody::Text(text)) => builder.body(text.clone()),
        Some(HttpBody::Json(value)) => {
            let builder = if typed {
                builder
            } else {
                builder.header("content-type", "application/json")
            };
            builder.body(value.to_string())
        }
    };
    let limit = request.timeout.unwrap_or(crate::spec::DEFAULT_HTTP_TIMEOUT);
    let limit = StdDuration::try_from(limit.as_signed()).unwrap_or(StdDuration::from_secs(30));
    let exchange = async {
        let mut response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                return failed(unanswered(
                    &format!("{} {}", request.method, request.url),
                    &e,
                ));
            }
        };
        let status = response.status();
        record(reply, |r| r.http_status = Some(status.as_u16()));
        out.line(&format!(
            "{:?} {} {}",
            response.version(),
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ))
        .await;
        for (name, value) in response.headers() {
            out.line(&format!(
                "{name}: {}",
                String::from_utf8_lossy(value.as_bytes())
            ))
            .await;
        }
        out.line("").await;
        let wait = retry_after(response.headers(), out.clock.now());
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => out.push(&chunk).await,
                Ok(None) => break,
                Err(e) => return failed(unanswered("reading the answer", &e)),
            }
        }
        let reason = status.canonical_reason().unwrap_or("");
        match unexpected_status(&request.expect, status.as_u16(), reason) {
            None => Ending::Completed,
            Some(error) => Ending::RequestFailed {
                error: with_wait(error, wait),
                retry_after: wait,
            },
        }
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(ending) => ending,
        Err(_) => failed(format!(
            "no complete answer within http.timeout {}",
            crate::duration::Duration::from_std(limit)
        )),
    }
}

fn with_wait(error: String, wait: Option<SignedDuration>) -> String {
    match wait {
        Some(w) => format!(
            "{error}; it asks to retry after {}",
            crate::duration::Duration::from_secs(w.as_secs())
        ),
        None => error,
    }
}

/// The key of a provider, read at each run.
fn api_key(provider: &Provider) -> Result<Option<String>, String> {
    match &provider.api_key {
        None => Ok(None),
        Some(KeySource::Env(var)) => std::env::var(var).map(Some).map_err(|_| {
            format!("the provider's key variable {var} is not set in the daemon's environment")
        }),
        Some(KeySource::File(path)) => std::fs::read_to_string(path)
            .map(|k| Some(k.trim().to_string()))
            .map_err(|e| {
                format!(
                    "cannot read the provider's key from {}: {e}",
                    path.display()
                )
            }),
    }
}

/// The chat completions request.
fn completion_body(prompt: &Prompt) -> serde_json::Value {
    let mut messages = Vec::new();
    if let Some(system) = &prompt.system {
        messages.push(serde_json::json!({"role": "system", "content": system}));
    }
    messages.push(serde_json::json!({"role": "user", "content": prompt.prompt}));
    let mut body = serde_json::json!({
        "model": prompt.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(n) = prompt.max_tokens {
        body["max_tokens"] = n.into();
    }
    if let Some(t) = prompt.temperature {
        body["temperature"] = t.into();
    }
    body
}

async fn prompt(
    launch: &Launch,
    prompt: &Prompt,
    reply: &Mutex<Reply>,
    out: &mut Sink<'_>,
) -> Ending {
    let Some(provider) = &launch.provider else {
        return failed(match &prompt.provider {
            Some(name) => format!("jobs.toml has no provider `{name}` (`[llm.providers.{name}]`)"),
            None => "jobs.toml has no `[llm]` provider".to_string(),
        });
    };
    let Some(client) = &launch.client else {
        return failed(NO_CLIENT);
    };
    record(reply, |r| r.model = Some(prompt.model.clone()));
    let key = match api_key(provider) {
        Ok(k) => k,
        Err(e) => return failed(e),
    };
    let url = format!("{}/chat/completions", provider.base_url);
    let mut builder = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(completion_body(prompt).to_string());
    if let Some(key) = &key {
        builder = builder.bearer_auth(key);
    }
    let idle = StdDuration::try_from(provider.idle_timeout.as_signed())
        .unwrap_or(StdDuration::from_secs(60));
    let limit =
        StdDuration::try_from(provider.timeout.as_signed()).unwrap_or(StdDuration::from_secs(600));
    let exchange = async {
        let response = match tokio::time::timeout(idle, builder.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return failed(unanswered(&format!("POST {url}"), &e)),
            Err(_) => return failed(stalled(idle, "before answering")),
        };
        let status = response.status();
        record(reply, |r| r.http_status = Some(status.as_u16()));
        if !status.is_success() {
            return refused(response, out.clock.now(), idle, key.as_deref()).await;
        }
        let streamed = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if streamed {
            stream(response, idle, reply, out).await
        } else {
            whole(response, idle, reply, out).await
        }
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(ending) => ending,
        Err(_) => failed(format!(
            "the provider did not finish within its timeout {}",
            provider.timeout
        )),
    }
}

fn stalled(idle: StdDuration, when: &str) -> String {
    format!(
        "the provider sent nothing for {} {when} (its idle_timeout)",
        crate::duration::Duration::from_std(idle)
    )
}

/// A provider's refusal (an error status): its message, and when it asks to be retried.
async fn refused(
    mut response: reqwest::Response,
    now: jiff::Timestamp,
    idle: StdDuration,
    key: Option<&str>,
) -> Ending {
    let status = response.status();
    let wait = retry_after(response.headers(), now);
    let body = read_some(&mut response, ERROR_BODY, idle)
        .await
        .map(|(b, _)| b)
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| error_message(&v))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(500)
                .collect()
        });
    let mut error = format!(
        "the provider answered {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if !message.is_empty() {
        error = format!("{}: {}", error.trim_end(), redact(&message, key));
    }
    Ending::RequestFailed {
        error: with_wait(error, wait),
        retry_after: wait,
    }
}

/// Up to `limit` bytes of a body, each read waiting at most `idle`; `None` if it stalled or
/// broke, else the bytes and whether there was more.
async fn read_some(
    response: &mut reqwest::Response,
    limit: usize,
    idle: StdDuration,
) -> Option<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            Ok(Ok(None)) => return Some((body, false)),
            _ => return None,
        }
        if body.len() > limit {
            body.truncate(limit);
            return Some((body, true));
        }
    }
}

/// `message` without the key, nor what looks like a key (a provider quoting part of it, as
/// OpenAI's 401 does): it goes to the ledger.
fn redact(message: &str, key: Option<&str>) -> String {
    let mut text = message.to_string();
    if let Some(key) = key.filter(|k| k.len() >= 8) {
        text = text.replace(key, "***");
    }
    static KEYLIKE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    match KEYLIKE.get_or_init(|| regex::Regex::new(r"\b(sk|key|pk)-[A-Za-z0-9_*\-]{6,}").ok()) {
        Some(re) => re.replace_all(&text, "$1-***").into_owned(),
        None => text,
    }
}

/// `{"error": {"message": ...}}` (or `{"error": "..."}`), as OpenAI and its peers send.
fn error_message(value: &serde_json::Value) -> Option<String> {
    let error = value.get("error")?;
    error
        .get("message")
        .and_then(|m| m.as_str())
        .or_else(|| error.as_str())
        .map(str::to_string)
}

/// Reads the stream of server-sent events: each `data:` a chunk of the completion, until
/// `data: [DONE]`.
async fn stream(
    mut response: reqwest::Response,
    idle: StdDuration,
    reply: &Mutex<Reply>,
    out: &mut Sink<'_>,
) -> Ending {
    let mut events = Events::default();
    let mut finished = false;
    loop {
        let chunk: Option<Bytes> = match tokio::time::timeout(idle, response.chunk()).await {
            Err(_) => return failed(stalled(idle, "while streaming")),
            Ok(Err(e)) => return failed(unanswered("the stream broke", &e)),
            Ok(Ok(chunk)) => chunk,
        };
        let Some(chunk) = chunk else { break };
        let Some(complete) = events.push(&chunk) else {
            return failed(too_large());
        };
        for data in complete {
            if data == "[DONE]" {
                return done(finished, reply);
            }
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&data) else {
                return failed(format!(
                    "the provider sent an event that is not JSON: {}",
                    data.chars().take(200).collect::<String>()
                ));
            };
            if let Some(message) = error_message(&value) {
                return failed(format!(
                    "the provider reported an error mid-stream: {message}"
                ));
            }
            finished |= take_chunk(&value, reply, out).await;
        }
    }
    // An event the server closed the connection on, without the blank line that ends it.
    if let Some(data) = events.finish() {
        if data == "[DONE]" {
            return done(finished, reply);
        }
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&data) {
            if let Some(message) = error_message(&value) {
                return failed(format!(
                    "the provider reported an error mid-stream: {message}"
                ));
            }
            finished |= take_chunk(&value, reply, out).await;
        }
    }
    if finished {
        // Some servers close the stream after the last chunk without `[DONE]`.
        return done(true, reply);
    }
    failed("the stream ended before the answer was finished (no finish reason, no [DONE])")
}

fn done(finished: bool, reply: &Mutex<Reply>) -> Ending {
    let reason = reply.lock().ok().and_then(|r| r.finish_reason.clone());
    match reason.as_deref() {
        Some("content_filter") => {
            failed("the provider withheld the answer (finish reason content_filter)")
        }
        _ if !finished => {
            failed("the stream ended before the answer was finished (no finish reason)")
        }
        _ => Ending::Completed,
    }
}

/// One completion chunk: its text to the output, its model, finish reason and usage to the
/// reply. Returns whether it carried a finish reason.
async fn take_chunk(value: &serde_json::Value, reply: &Mutex<Reply>, out: &mut Sink<'_>) -> bool {
    let choice = value.get("choices").and_then(|c| c.get(0));
    let text = choice
        .and_then(|c| c.get("delta").or_else(|| c.get("message")))
        .and_then(|d| d.get("content"))
        .and_then(|t| t.as_str());
    if let Some(text) = text {
        out.push(text.as_bytes()).await;
    }
    let reason = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(|r| r.as_str());
    record(reply, |r| {
        if let Some(model) = value.get("model").and_then(|m| m.as_str()) {
            r.model = Some(model.to_string());
        }
        if let Some(reason) = reason {
            r.finish_reason = Some(reason.to_string());
        }
        if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
            let count = |k: &str| usage.get(k).and_then(serde_json::Value::as_i64);
            r.prompt_tokens = count("prompt_tokens").or(r.prompt_tokens);
            r.completion_tokens = count("completion_tokens").or(r.completion_tokens);
        }
    });
    reason.is_some()
}

/// A provider that answered with one JSON completion rather than a stream.
async fn whole(
    mut response: reqwest::Response,
    idle: StdDuration,
    reply: &Mutex<Reply>,
    out: &mut Sink<'_>,
) -> Ending {
    let body = match read_some(&mut response, MAX_ANSWER, idle).await {
        Some((body, false)) => body,
        Some((_, true)) => return failed(too_large()),
        None => return failed(stalled(idle, "while answering")),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return failed("the provider's answer is neither a stream of events nor JSON");
    };
    if let Some(message) = error_message(&value) {
        return failed(format!("the provider reported an error: {message}"));
    }
    let finished = take_chunk(&value, reply, out).await;
    done(finished, reply)
}

/// Server-sent events from bytes: the `data` of each event, as events complete (a blank
/// line ends one; several `data:` lines join with newlines).
#[derive(Default)]
struct Events {
    buffer: Vec<u8>,
    data: Vec<String>,
}

impl Events {
    /// The events `bytes` completed; `None` when an event grew past [`MAX_ANSWER`].
    fn push(&mut self, bytes: &[u8]) -> Option<Vec<String>> {
        self.buffer.extend_from_slice(bytes);
        let mut complete = Vec::new();
        while let Some(i) = self.buffer.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buffer.drain(..=i).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    complete.push(std::mem::take(&mut self.data).join("\n"));
                }
            } else if let Some(data) = line.strip_prefix("data:") {
                self.data
                    .push(data.strip_prefix(' ').unwrap_or(data).to_string());
            }
            // Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing we use.
        }
        let held = self.buffer.len() + self.data.iter().map(String::len).sum::<usize>();
        (held <= MAX_ANSWER).then_some(complete)
    }

    /// What is left when the stream ends: an event without its closing blank line.
    fn finish(&mut self) -> Option<String> {
        let last = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
        if let Some(data) = last.trim_end().strip_prefix("data:") {
            self.data
                .push(data.strip_prefix(' ').unwrap_or(data).to_string());
        }
        (!self.data.is_empty()).then(|| std::mem::take(&mut self.data).join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_cut_into_lines_as_a_process_output_is() {
        // A line longer than MAX_LINE is cut there even when its newline follows (the
        // answer's lines and a process's follow one rule: output::next_line).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let lines = runtime.block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            let budget = Budget::new(u64::MAX);
            let mut sink = Sink {
                reports: &tx,
                budget: &budget,
                clock: Clock::system(),
                partial: Vec::new(),
            };
            let long = "z".repeat(output::MAX_LINE + 3);
            for piece in ["a\nb".to_string(), format!("{long}\n"), "tail".to_string()] {
                sink.push(piece.as_bytes()).await;
            }
            sink.finish().await;
            drop(tx);
            let mut lines = Vec::new();
            while let Some(Report::Line(line)) = rx.recv().await {
                lines.push(line.text);
            }
            lines
        });
        let want = [
            "a".to_string(),
            format!("b{}", "z".repeat(output::MAX_LINE - 1)),
            "zzzz".to_string(),
            "tail".to_string(),
        ];
        assert_eq!(lines, want);
    }

    #[test]
    fn events_are_read_across_chunk_boundaries() {
        let mut events = Events::default();
        let mut got = events.push(b"data: {\"a\":1}\n\nda").unwrap();
        got.extend(
            events
                .push(b"ta: one\r\ndata: two\r\n\r\n: keep-alive\n\n")
                .unwrap(),
        );
        got.extend(events.push(b"event: x\ndata: [DONE]\n\n").unwrap());
        assert_eq!(got, ["{\"a\":1}", "one\ntwo", "[DONE]"]);
        // The last event, cut off without its blank line (or its newline).
        assert_eq!(events.push(b"data: last\n").unwrap(), Vec::<String>::new());
        assert_eq!(events.finish().as_deref(), Some("last"));
        assert_eq!(events.push(b"data: tail").unwrap(), Vec::<String>::new());
        assert_eq!(events.finish().as_deref(), Some("tail"));
        assert_eq!(events.finish(), None);
        // An event that never ends is refused past the limit.
        assert!(events.push(&vec![b'x'; MAX_ANSWER + 1]).is_none());
    }

    #[test]
    fn keys_never_reach_the_ledger_in_a_providers_message() {
        let message = "Incorrect API key provided: sk-proj-abc1********wxyz. You can find your API key at https://x";
        assert_eq!(
            redact(message, Some("sk-proj-abc1secretwxyz")),
            "Incorrect API key provided: sk-***. You can find your API key at https://x"
        );
        assert_eq!(
            redact("bad key s3cretvalue!", Some("s3cretvalue!")),
            "bad key ***"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "20".parse().unwrap());
        assert_eq!(
            retry_after(&headers, now),
            Some(SignedDuration::from_secs(20))
        );
        headers.insert(
            "retry-after",
            "Fri, 04 Dec 2026 10:01:30 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers, now),
            Some(SignedDuration::from_secs(90))
        );
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn a_completion_request_streams_and_asks_for_usage() {
        let prompt = Prompt {
            provider: None,
            model: "m".into(),
            system: Some("be brief".into()),
            prompt: "hi".into(),
            max_tokens: Some(50),
            temperature: None,
        };
        let body = completion_body(&prompt);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "hi");
        assert_eq!(body["max_tokens"], 50);
        assert!(body.get("temperature").is_none());
    }
}
