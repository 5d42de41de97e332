//! The actions that are not processes: `http` (method, URL, headers, body, expected statuses,
//! timeout) and `prompt` (provider, model, messages, limits). Each returns its action and the
//! texts that may hold `{{ params.NAME }}`, with where they were written.

use super::super::actions::MAX_TOKENS;
use super::super::raw::{At, Loc, LocMap, RawHeader, RawHttp, RawPrompt};
use super::*;

/// A text that may hold placeholders: where, what to call it, the text.
pub(super) type Template = (At, String, String);

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers whose value is a credential: never written in the file.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
];

pub(super) fn http(b: &mut Builder, raw: Loc<RawHttp>) -> Option<(Action, Vec<Template>)> {
    let failed = b.diagnostics.len();
    let mut templates = Vec::new();
    let h = raw.value;
    let method = match h.method {
        None => "GET".to_string(),
        Some(m) => {
            let upper = m.value.trim().to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                let help = crate::diag::suggest(&upper, METHODS.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"));
                let expected = METHODS.join(", ");
                b.error(
                    m.at,
                    format!("http.method `{}` is not one of {expected}", m.value),
                )
                .help = help;
            }
            upper
        }
    };
    let url = match h.url {
        None => {
            b.error(raw.at, "http needs a `url`").help =
                Some("for example: url: https://example.com/health".into());
            String::new()
        }
        Some(url) => {
            // The URL is checked with each placeholder standing for a plain value (`0`, which
            // fits a host, a port, a path and a query alike).
            let probe =
                crate::template::render_with(&url.value, &Default::default(), |_| "0".into());
            if let Err(e) = check_http_url(&probe) {
                b.error(url.at, format!("http.url `{}` {e}", url.value));
            }
            templates.push((url.at, "`http.url`".to_string(), url.value.clone()));
            url.value
        }
    };
    let headers = headers(b, h.headers, &mut templates);
    let body = h.body.map(|body| {
        if matches!(method.as_str(), "GET" | "HEAD") {
            b.warning(
                body.at,
                format!("http.body is set on a {method} request; most servers ignore it"),
            );
        }
        let at = body.at;
        match body.value {
            serde_json::Value::String(text) => {
                templates.push((at, "`http.body`".to_string(), text.clone()));
                HttpBody::Text(text)
            }
            value => {
                strings_of(&value, &mut |s| {
                    templates.push((at, "`http.body`".to_string(), s.to_string()));
                });
                HttpBody::Json(value)
            }
        }
    });
    let expect = h
        .expect
        .map_or_else(|| Some(vec![StatusRange::SUCCESS]), |e| statuses(b, e));
    let timeout = b.positive_duration("http.timeout", h.timeout);
    let request = HttpRequest {
        method,
        url,
        headers,
        body,
        expect: expect?,
        timeout,
    };
    (b.diagnostics.iter().skip(failed).all(|d| !d.is_error()))
        .then_some((Action::Http(request), templates))
}

fn headers(
    b: &mut Builder,
    raw: Option<LocMap<Loc<RawHeader>>>,
    templates: &mut Vec<Template>,
) -> Vec<(String, HeaderValue)> {
    let mut headers: Vec<(String, HeaderValue)> = Vec::new();
    for (name, value) in raw.map(|m| m.0).unwrap_or_default() {
        let lower = name.value.to_ascii_lowercase();
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if lower.is_empty() || !lower.chars().all(token) {
            b.error(name.at, format!("`{}` is not a header name", name.value));
            continue;
        }
        if headers.iter().any(|(n, _)| *n == lower) {
            b.error(
                name.at,
                format!(
                    "header `{}` is set twice (names are case-insensitive)",
                    name.value
                ),
            );
            continue;
        }
        let Some(value) = header_value(b, &name.value, &lower, value, templates) else {
            continue;
        };
        headers.push((lower, value));
    }
    // Their order means nothing to HTTP: sorted, as the normal form writes them.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    headers
}

fn header_value(
    b: &mut Builder,
    name: &str,
    lower: &str,
    value: Loc<RawHeader>,
    templates: &mut Vec<Template>,
) -> Option<HeaderValue> {
    match value.value {
        RawHeader::Text(text) => {
            if SECRET_HEADERS.contains(&lower) && !text.trim().is_empty() {
                b.error(
                    value.at,
                    format!("header `{name}` holds a credential written in the job file"),
                )
                .help = Some(format!(
                    "never write a secret in a job file: `{name}: {{env: VAR, prefix: \"Bearer \"}}` or `{{secret_file: PATH}}`"
                ));
                return None;
            }
            if text.contains(['\r', '\n']) {
                b.error(value.at, format!("header `{name}` holds a line break"));
                return None;
            }
            templates.push((value.at, format!("header `{name}`"), text.clone()));
            Some(HeaderValue::Text(text))
        }
        RawHeader::From(from) => {
            let prefix = from.prefix.map(|p| p.value).unwrap_or_default();
            match (from.env, from.secret_file) {
                (Some(var), None) if is_env_name(&var.value) => Some(HeaderValue::Env {
                    var: var.value,
                    prefix,
                }),
                (Some(var), None) => {
                    b.error(
                        var.at,
                        format!("header `{name}`: `{}` is not a variable name", var.value),
                    );
                    None
                }
                (None, Some(path)) if !path.value.trim().is_empty() => {
                    Some(HeaderValue::SecretFile {
                        path: path.value,
                        prefix,
                    })
                }
                _ => {
                    b.error(
                        value.at,
                        format!(
                            "header `{name}` needs exactly one of `env: VAR` or `secret_file: PATH`"
                        ),
                    );
                    None
                }
            }
        }
    }
}

/// Every string in a JSON value (keys are not templated).
fn strings_of(value: &serde_json::Value, f: &mut impl FnMut(&str)) {
    match value {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_of(v, f)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings_of(v, f)),
        _ => {}
    }
}

/// `expect`: one status, class or range, or a list of them.
fn statuses(b: &mut Builder, raw: Loc<serde_json::Value>) -> Option<Vec<StatusRange>> {
    let items = match raw.value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    let mut ranges = Vec::new();
    for item in &items {
        let text = match item {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        match StatusRange::parse(&text) {
            Some(r) => ranges.push(r),
            None => {
                b.error(
                    raw.at,
                    format!("http.expect `{text}` is not a status, a class or a range"),
                )
                .help = Some("for example: expect: [200, 204, \"3xx\", \"400-404\"]".into());
                return None;
            }
        }
    }
    if ranges.is_empty() {
        b.error(raw.at, "http.expect is empty; it needs at least one status");
        return None;
    }
    Some(ranges)
}

pub(super) fn prompt(b: &mut Builder, raw: Loc<RawPrompt>) -> Option<(Action, Vec<Template>)> {
    let failed = b.diagnostics.len();
    let mut templates = Vec::new();
    let p = raw.value;
    // A recorded revision keeps its provider when jobs.toml no longer has it: its runs fail,
    // saying so, rather than the job losing its definition.
    let checked = b.limits == Limits::Refuse;
    let provider = p.provider.map(|name| {
        if checked && b.llm.provider(Some(&name.value)).is_none() {
            let known: Vec<&str> = b.llm.providers.keys().map(String::as_str).collect();
            let help = crate::diag::suggest(&name.value, known.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| {
                    Some(format!(
                        "add `[llm.providers.{}]` with its `base_url` to jobs.toml",
                        name.value
                    ))
                });
            b.error(
                name.at,
                format!(
                    "prompt.provider `{}` is not a provider of jobs.toml",
                    name.value
                ),
            )
            .help = help;
        }
        name.value
    });
    if checked && provider.is_none() && b.llm.default.is_none() {
        b.error(
            raw.at,
            "a prompt needs a provider, and jobs.toml has no `[llm]` with a `base_url`",
        )
        .help = Some(
            "add to jobs.toml: [llm] base_url = \"https://api.openai.com/v1\" and api_key_env = \"OPENAI_API_KEY\"".into(),
        );
    }
    let model = required(
        b,
        raw.at,
        "model",
        p.model,
        "for example: model: gpt-4o-mini",
    );
    let text = required(
        b,
        raw.at,
        "prompt",
        p.prompt,
        "the message to send, for example: prompt: Summarise yesterday's incidents",
    );
    if let Some(t) = &text {
        templates.push((t.at, "`prompt.prompt`".to_string(), t.value.clone()));
    }
    if let Some(s) = &p.system {
        templates.push((s.at, "`prompt.system`".to_string(), s.value.clone()));
    }
    let max_tokens = p.max_tokens.and_then(|m| match u32::try_from(m.value) {
        Ok(n) if (1..=MAX_TOKENS).contains(&n) => Some(n),
        _ => {
            b.error(
                m.at,
                format!(
                    "prompt.max_tokens must be from 1 to {MAX_TOKENS} (it is {})",
                    m.value
                ),
            );
            None
        }
    });
    let temperature = p.temperature.and_then(|t| {
        if (0.0..=2.0).contains(&t.value) {
            Some(t.value)
        } else {
            b.error(
                t.at,
                format!("prompt.temperature must be from 0 to 2 (it is {})", t.value),
            );
            None
        }
    });
    if b.diagnostics.iter().skip(failed).any(Diagnostic::is_error) {
        return None;
    }
    let prompt = Prompt {
        provider,
        model: model?.value,
        system: p.system.map(|s| s.value),
        prompt: text?.value,
        max_tokens,
        temperature,
    };
    Some((Action::Prompt(prompt), templates))
}

/// A non-empty text field of `prompt`.
fn required(
    b: &mut Builder,
    block: At,
    field: &str,
    value: Option<Loc<String>>,
    help: &str,
) -> Option<Loc<String>> {
    match value {
        Some(v) if !v.value.trim().is_empty() => Some(v),
        Some(v) => {
            b.error(v.at, format!("prompt.{field} is empty"));
            None
        }
        None => {
            b.error(block, format!("prompt needs `{field}`")).help = Some(help.into());
            None
        }
    }
}
