//! The actions that are not processes: an HTTP request (`http:`) and a prompt to a chat
//! completions endpoint (`prompt:`), as validated. Pure: what to send, and how to judge the
//! answer's status; the runner sends it.

use std::collections::BTreeMap;

use crate::duration::Duration;

/// `http:` a request, sent once per run.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// Upper case: `GET`, `POST`...
    pub method: String,
    /// An http:// or https:// URL; `{{ params.NAME }}` is substituted percent-encoded.
    pub url: String,
    /// Lower-case names (as HTTP/2 and hyper send them), in order.
    pub headers: Vec<(String, HeaderValue)>,
    pub body: Option<HttpBody>,
    /// The statuses that are a success; never empty (2xx when the file says nothing).
    pub expect: Vec<StatusRange>,
    /// The request's own limit, from connecting to the end of the body.
    pub timeout: Option<Duration>,
}

/// The default `http.timeout`: a request never waits for ever.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs_const(30);

/// A header's value: written in the file, or read at each run from where a secret is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    /// The daemon's environment variable, with a prefix (`Bearer `).
    Env {
        var: String,
        prefix: String,
    },
    /// A file's content (trimmed), with a prefix; relative to the jobs folder's parent.
    SecretFile {
        path: String,
        prefix: String,
    },
}

/// `http.body`: text sent as written, or a structure sent as JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpBody {
    Text(String),
    Json(serde_json::Value),
}

/// Statuses `from..=to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRange {
    pub from: u16,
    pub to: u16,
}

impl StatusRange {
    pub const SUCCESS: StatusRange = StatusRange { from: 200, to: 299 };

    /// `200`, `2xx` or `200-204`.
    pub fn parse(text: &str) -> Option<StatusRange> {
        let text = text.trim();
        let code = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
        };
        if let Some(hundreds) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            let h = hundreds
                .parse::<u16>()
                .ok()
                .filter(|h| (1..=5).contains(h))?;
            return Some(StatusRange {
                from: h * 100,
                to: h * 100 + 99,
            });
        }
        if let Some((from, to)) = text.split_once('-') {
            let (from, to) = (code(from)?, code(to)?);
            return (from <= to).then_some(StatusRange { from, to });
        }
        code(text).map(|c| StatusRange { from: c, to: c })
    }

    pub fn contains(self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else if self.from.is_multiple_of(100) && self.to == self.from + 99 {
            write!(f, "{}xx", self.from / 100)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// `None` when `status` is expected, else the run's error.
pub fn unexpected_status(expect: &[StatusRange], status: u16, reason: &str) -> Option<String> {
    if expect.iter().any(|r| r.contains(status)) {
        return None;
    }
    let expected: Vec<String> = expect.iter().map(ToString::to_string).collect();
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    };
    Some(format!(
        "the server answered {status}{reason}; expected {}",
        expected.join(", ")
    ))
}

/// `prompt:` a chat completion, streamed.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    /// A provider of `jobs.toml` (`[llm.providers.NAME]`); `None` is `[llm]` itself.
    pub provider: Option<String>,
    pub model: String,
    pub system: Option<String>,
    /// The user message; `{{ params.NAME }}` substituted.
    pub prompt: String,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
}

/// The most `prompt.max_tokens` (a larger one is surely a typo).
pub const MAX_TOKENS: u32 = 1_000_000;

/// `[llm]` of `jobs.toml`: where prompts go. The key is never in the file: the variable or
/// the file that holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LlmConfig {
    /// `[llm]` itself, when it has a `base_url`.
    pub default: Option<Provider>,
    /// `[llm.providers.NAME]`.
    pub providers: BTreeMap<String, Provider>,
}

impl LlmConfig {
    pub fn provider(&self, name: Option<&str>) -> Option<&Provider> {
        match name {
            None => self.default.as_ref(),
            Some(name) => self.providers.get(name),
        }
    }
}

/// One OpenAI-compatible endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// Up to the API's version, without a trailing `/`: `https://api.openai.com/v1`;
    /// requests go to `BASE/chat/completions`.
    pub base_url: String,
    pub api_key: Option<KeySource>,
    /// The whole request, from connecting to the last token.
    pub timeout: Duration,
    /// The longest silence while streaming: a provider that stalls fails the run.
    pub idle_timeout: Duration,
}

/// Where an API key is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Env(String),
    File(std::path::PathBuf),
}

pub const DEFAULT_LLM_TIMEOUT: Duration = Duration::from_secs_const(600);
pub const DEFAULT_LLM_IDLE: Duration = Duration::from_secs_const(60);

/// What a request's answer was, recorded on the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub http_status: Option<u16>,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_codes_classes_and_ranges() {
        let cases: &[(&str, Option<(u16, u16)>)] = &[
            ("200", Some((200, 200))),
            ("2xx", Some((200, 299))),
            ("5XX", Some((500, 599))),
            ("200-204", Some((200, 204))),
            (" 301 - 302 ", Some((301, 302))),
            ("204-200", None),
            ("600", None),
            ("6xx", None),
            ("99", None),
            ("ok", None),
        ];
        for (text, want) in cases {
            let got = StatusRange::parse(text).map(|r| (r.from, r.to));
            assert_eq!(got, *want, "{text}");
            if let Some(r) = StatusRange::parse(text) {
                assert_eq!(
                    StatusRange::parse(&r.to_string()),
                    Some(r),
                    "round trip {text}"
                );
            }
        }
    }

    #[test]
    fn an_unexpected_status_says_what_was_expected() {
        let expect = [StatusRange::SUCCESS, StatusRange::parse("304").unwrap()];
        assert_eq!(unexpected_status(&expect, 204, "No Content"), None);
        assert_eq!(unexpected_status(&expect, 304, ""), None);
        assert_eq!(
            unexpected_status(&expect, 503, "Service Unavailable").as_deref(),
            Some("the server answered 503 Service Unavailable; expected 2xx, 304")
        );
    }
}
