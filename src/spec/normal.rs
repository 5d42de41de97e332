//! The normal form of a definition: what `plan` compares and the ledger stores.
//!
//! Two files that mean the same job have the same normal form: comments, key order, quoting,
//! `90m` versus `1h 30m`, and fields set to their defaults make no difference. The form is
//! itself a valid job file (YAML), so the ledger's copy of a revision can be parsed back with
//! `spec::parse`. Its SHA-256 (over canonical JSON) is the revision's content hash.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::*;

#[derive(Serialize)]
struct NormalJob<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "is_true")]
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<NormalSchedule<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jitter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shell: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<NormalHttp<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<NormalPrompt<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<NormalRetry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<Concurrency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<Missed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_deadline: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    depends_on: &'a [JobName],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    runs_on: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    params: BTreeMap<&'a str, NormalParam<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook: Option<NormalWebhook<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repeat: Option<NormalRepeat>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    on_failure: Vec<NormalNotification<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    on_success: Vec<NormalNotification<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<NormalHistory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_limit: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    success_when: Option<NormalSuccessWhen<'a>>,
}

/// `http`: `method` only when not GET, `expect` only when not 2xx, header names in lower
/// case (as they are sent).
#[derive(Serialize)]
struct NormalHttp<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    url: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'a str, NormalHeader<'a>>,
    /// Text is a JSON string, as a file writes it (`body: text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum NormalHeader<'a> {
    Text(&'a str),
    Env {
        env: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        prefix: &'a str,
    },
    File {
        secret_file: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        prefix: &'a str,
    },
}

#[derive(Serialize)]
struct NormalPrompt<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

fn normal_http(h: &HttpRequest) -> NormalHttp<'_> {
    let body = h.body.as_ref().map(|b| match b {
        HttpBody::Json(v) => v.clone(),
        HttpBody::Text(t) => serde_json::Value::String(t.clone()),
    });
    NormalHttp {
        method: (h.method != "GET").then_some(h.method.as_str()),
        url: &h.url,
        headers: h
            .headers
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    HeaderValue::Text(t) => NormalHeader::Text(t),
                    HeaderValue::Env { var, prefix } => NormalHeader::Env { env: var, prefix },
                    HeaderValue::SecretFile { path, prefix } => NormalHeader::File {
                        secret_file: path,
                        prefix,
                    },
                };
                (name.as_str(), value)
            })
            .collect(),
        body,
        // A single status as a number (`200`), a class or range as text (`3xx`, `200-204`).
        expect: (h.expect != [StatusRange::SUCCESS]).then(|| {
            h.expect
                .iter()
                .map(|r| match r.from == r.to {
                    true => serde_json::Value::from(r.from),
                    false => serde_json::Value::from(r.to_string()),
                })
                .collect()
        }),
        timeout: h.timeout.map(|d| d.to_string()),
    }
}

fn normal_prompt(p: &Prompt) -> NormalPrompt<'_> {
    NormalPrompt {
        provider: p.provider.as_deref(),
        model: &p.model,
        system: p.system.as_deref(),
        prompt: &p.prompt,
        max_tokens: p.max_tokens,
        temperature: p.temperature,
    }
}

#[derive(Serialize)]
struct NormalSuccessWhen<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    output_matches: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_not_matches: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum NormalSchedule<'a> {
    Cron {
        cron: &'a str,
    },
    Every {
        every: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_at: Option<&'a str>,
    },
    At {
        at: &'a str,
    },
    After {
        after: &'a [JobName],
    },
}

#[derive(Serialize)]
struct NormalRetry {
    attempts: u32,
    backoff: String,
    max_backoff: String,
}

#[derive(Serialize)]
struct NormalParam<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    required: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
}

#[derive(Serialize)]
struct NormalWebhook<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_file: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    require_timestamp: bool,
}

#[derive(Serialize)]
struct NormalRepeat {
    #[serde(skip_serializing_if = "Option::is_none")]
    times: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<&'static str>,
}

/// An item of `on_failure` or `on_success`, in the order written (the order they are sent).
#[derive(Serialize)]
struct NormalNotification<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slack: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u32>,
}

fn normal_notifications(list: &[Notification]) -> Vec<NormalNotification<'_>> {
    list.iter()
        .map(|n| {
            let mut normal = NormalNotification {
                webhook: None,
                slack: None,
                email: None,
                run: None,
                after: n.after,
            };
            match &n.action {
                NotifyAction::Webhook(url) => normal.webhook = Some(url),
                NotifyAction::Slack(url) => normal.slack = Some(url),
                NotifyAction::Email(to) => normal.email = Some(to),
                NotifyAction::Run(script) => normal.run = Some(script),
            }
            normal
        })
        .collect()
}

#[derive(Serialize)]
struct NormalHistory {
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_runs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn normal(spec: &JobSpec) -> NormalJob<'_> {
    let schedule = match &spec.schedule {
        Schedule::Manual => None,
        Schedule::Cron(c) => Some(NormalSchedule::Cron { cron: c.as_str() }),
        Schedule::Every { interval, start_at } => Some(NormalSchedule::Every {
            every: interval.to_string(),
            start_at: start_at.as_ref().map(|s| s.text.as_str()),
        }),
        Schedule::At(at) => Some(NormalSchedule::At { at: &at.text }),
        Schedule::After(jobs) => Some(NormalSchedule::After { after: jobs }),
    };
    let uses_timezone = spec.schedule.uses_timezone()
        || matches!(
            &spec.schedule,
            Schedule::Every {
                start_at: Some(_),
                ..
            }
        );
    let (command, run, shell) = match &spec.action {
        Action::Command(argv) => (Some(argv.as_slice()), None, None),
        Action::Script { script, shell } => (
            None,
            Some(script.as_str()),
            (shell != DEFAULT_SHELL).then_some(shell.as_str()),
        ),
        Action::Http(_) | Action::Prompt(_) => (None, None, None),
    };
    let http = match &spec.action {
        Action::Http(h) => Some(normal_http(h)),
        _ => None,
    };
    let prompt = match &spec.action {
        Action::Prompt(p) => Some(normal_prompt(p)),
        _ => None,
    };
    NormalJob {
        description: &spec.description,
        enabled: spec.enabled,
        schedule,
        // The zone matters for fire times; where it does not, only an explicit one is kept.
        timezone: (uses_timezone || spec.timezone.explicit).then_some(spec.timezone.name.as_str()),
        jitter: (!spec.jitter.is_zero()).then(|| spec.jitter.to_string()),
        command,
        run,
        shell,
        http,
        prompt,
        env: &spec.env,
        working_dir: spec.working_dir.as_deref(),
        timeout: spec.timeout.map(|d| d.to_string()),
        retry: spec.retry.map(|r| NormalRetry {
            attempts: r.attempts,
            backoff: r.backoff.to_string(),
            max_backoff: r.max_backoff.to_string(),
        }),
        concurrency: (spec.concurrency != Concurrency::default()).then_some(spec.concurrency),
        missed: (spec.missed != Missed::default()).then_some(spec.missed),
        starting_deadline: spec.starting_deadline.map(|d| d.to_string()),
        depends_on: &spec.depends_on,
        runs_on: &spec.runs_on,
        params: spec
            .params
            .iter()
            .map(|(k, p)| {
                (
                    k.as_str(),
                    NormalParam {
                        default: p.default.as_deref(),
                        required: p.required,
                        description: &p.description,
                    },
                )
            })
            .collect(),
        webhook: spec.webhook.as_ref().map(|w| match &w.secret {
            WebhookSecret::SecretEnv(v) => NormalWebhook {
                secret_env: Some(v),
                secret_file: None,
                require_timestamp: w.require_timestamp,
            },
            WebhookSecret::SecretFile(f) => NormalWebhook {
                secret_env: None,
                secret_file: Some(f),
                require_timestamp: w.require_timestamp,
            },
        }),
        repeat: spec.repeat.map(|r| match r {
            Repeat::Times(n) => NormalRepeat {
                times: Some(n),
                until: None,
            },
            Repeat::UntilSuccess => NormalRepeat {
                times: None,
                until: Some("success"),
            },
        }),
        on_failure: normal_notifications(&spec.on_failure),
        on_success: normal_notifications(&spec.on_success),
        history: (spec.history != History::default()).then(|| NormalHistory {
            keep_runs: spec.history.keep_runs,
            max_age: spec.history.max_age.map(|d| d.to_string()),
        }),
        output_limit: (spec.output_limit != DEFAULT_OUTPUT_LIMIT)
            .then(|| spec.output_limit.to_string()),
        tags: &spec.tags,
        success_when: spec.success_when.as_ref().map(|s| NormalSuccessWhen {
            output_matches: s.matches.then_some(s.pattern.as_str()),
            output_not_matches: (!s.matches).then_some(s.pattern.as_str()),
        }),
    }
}

/// The content hash of a definition: hex SHA-256 of its normal form as compact JSON.
pub fn content_hash(spec: &JobSpec) -> String {
    let json = serde_json::to_vec(&normal(spec)).expect("the normal form serialises");
    let digest = Sha256::digest(&json);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        use std::fmt::Write;
        write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
    }
    hex
}

/// The normal form as YAML: what diffs show and the ledger keeps.
pub fn to_yaml(spec: &JobSpec) -> String {
    serde_saphyr::to_string(&normal(spec)).expect("the normal form serialises")
}
