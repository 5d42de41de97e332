//! The job spec: a job file parsed and validated into a [`JobSpec`] that is valid by construction.
//!
//! [`parse`] takes a file's name and bytes (no I/O, no clock: `now` is an argument) and returns
//! the spec or every problem it found, each a [`Diagnostic`] with line and column. Problems
//! with the file's shape (syntax, unknown or duplicate keys, wrong types) stop at the first, as
//! the parsers do; problems with values (a bad cron, an unknown time zone, both `command` and
//! `run`) are all collected. Checks that need the other jobs (unique names, `depends_on`
//! targets, cycles) live in `catalog`.

mod actions;
mod build;
pub mod normal;
pub mod raw;

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Position, position_of};
use crate::duration::Duration;
use crate::name::JobName;
use crate::schedule::Schedule;
use crate::size::ByteSize;
pub use actions::{
    DEFAULT_HTTP_TIMEOUT, DEFAULT_LLM_IDLE, DEFAULT_LLM_TIMEOUT, HeaderValue, HttpBody,
    HttpRequest, KeySource, LlmConfig, Prompt, Provider, Reply, StatusRange, unexpected_status,
};
pub use build::{UrlError, check_http_url};
pub use raw::Format;

/// A validated job definition.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub name: JobName,
    pub description: String,
    pub enabled: bool,
    pub schedule: Schedule,
    pub timezone: Zone,
    pub jitter: Duration,
    pub action: Action,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub concurrency: Concurrency,
    pub missed: Missed,
    pub starting_deadline: Option<Duration>,
    pub depends_on: Vec<JobName>,
    pub params: BTreeMap<String, Param>,
    pub webhook: Option<Webhook>,
    pub repeat: Option<Repeat>,
    /// Sent, in order, when a run fails or times out (not when it is cancelled or skipped).
    pub on_failure: Vec<Notification>,
    /// Sent, in order, when a run succeeds.
    pub on_success: Vec<Notification>,
    pub history: History,
    pub output_limit: ByteSize,
    pub tags: Vec<String>,
    /// The node labels a run of it needs: only a node with all of them runs it.
    pub runs_on: Vec<String>,
    /// What the output must say for a run that exited 0 to count as a success.
    pub success_when: Option<SuccessWhen>,
}

/// `success_when`: a run whose action succeeded succeeds only if its output (stdout and
/// stderr lines, as captured, joined by newlines) matches `pattern` (`output_matches`), or
/// does not (`output_not_matches`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessWhen {
    pub pattern: String,
    /// `output_matches` (true) or `output_not_matches` (false).
    pub matches: bool,
}

impl SuccessWhen {
    /// `None` when `output` satisfies it, else why not (the run's error).
    pub fn unmet(&self, output: &str) -> Option<String> {
        // Checked when the job was validated; a pattern that fails now matches nothing.
        let found = regex::Regex::new(&self.pattern).is_ok_and(|re| re.is_match(output));
        match (self.matches, found) {
            (true, false) => Some(format!(
                "its output did not match `{}` (success_when.output_matches)",
                self.pattern
            )),
            (false, true) => Some(format!(
                "its output matched `{}` (success_when.output_not_matches)",
                self.pattern
            )),
            _ => None,
        }
    }
}

/// A time zone by its IANA name.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub name: String,
    pub tz: TimeZone,
    /// Written in the file, rather than taken from the configuration's default.
    pub explicit: bool,
}

/// What a run executes.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// An argv, run without a shell.
    Command(Vec<String>),
    /// A script, run as `shell -c script`.
    Script { script: String, shell: String },
    /// An HTTP request: no process.
    Http(HttpRequest),
    /// A prompt to an OpenAI-compatible chat completions endpoint: no process.
    Prompt(Prompt),
}

impl Action {
    /// The action's kind, as its field is named in a job file.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Command(_) => "command",
            Action::Script { .. } => "run",
            Action::Http(_) => "http",
            Action::Prompt(_) => "prompt",
        }
    }

    /// Whether a run of it is a process (with a pid, an environment, a working directory).
    pub fn is_process(&self) -> bool {
        matches!(self, Action::Command(_) | Action::Script { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// What a fire does while a run of the same job is active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    #[default]
    Forbid,
    Allow,
    Replace,
}

/// What happens to fires missed while the daemon was down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    Skip,
    #[default]
    RunOnce,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Param {
    pub default: Option<String>,
    pub required: bool,
    pub description: String,
}

/// A job's `webhook` block: where its secret is (never the secret itself) and which
/// signatures it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub secret: WebhookSecret,
    /// Only timestamped signatures (`X-Jobs-Timestamp`, signed with the body): a request
    /// without the header is refused, so a captured one cannot be replayed as `TS.BODY`.
    pub require_timestamp: bool,
}

/// Where a webhook's secret is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookSecret {
    SecretEnv(String),
    SecretFile(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    Times(u32),
    UntilSuccess,
}

/// What to do when a run ends (an item of `on_failure` or `on_success`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub action: NotifyAction,
    /// Only when the failure streak reaches exactly this many consecutive failures (`on_failure`
    /// only; at least 1). `None`: every time.
    pub after: Option<u32>,
}

/// How a notification is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyAction {
    /// POST the run's summary as JSON to this http:// or https:// URL.
    Webhook(String),
    /// POST the run's summary as a Slack-compatible message (`{"text": …}`) to this URL.
    Slack(String),
    /// Mail the run's summary to these addresses, through the `[smtp]` server of `jobs.toml`.
    Email(Vec<String>),
    /// Run this script as `sh -c SCRIPT`, with the run's summary in `JOBS_*` variables.
    Run(String),
}

/// Retention overrides; `None` takes the configuration's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub keep_runs: Option<u32>,
    pub max_age: Option<Duration>,
}

pub const DEFAULT_SHELL: &str = "sh";
pub const DEFAULT_OUTPUT_LIMIT: ByteSize = ByteSize(1 << 20);
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs_const(10);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs_const(600);

/// The shortest `every` interval. Each fire is a run in the ledger: `every: 1ms` grew it by
/// hundreds of rows a second (issue 12).
pub const MIN_EVERY: Duration = Duration::from_secs_const(1);
/// The shortest `retry.backoff`: each retry is a run in the ledger too.
pub const MIN_BACKOFF: Duration = Duration::from_secs_const(1);
/// The most `retry.attempts`: a run retried four billion times never ends.
pub const MAX_ATTEMPTS: u32 = 100;

/// What a value beyond a limit ([`MIN_EVERY`], [`MIN_BACKOFF`], [`MAX_ATTEMPTS`]) is: an
/// error in new input, or brought within the limit (with a warning) in a revision the ledger
/// recorded before the limit existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limits {
    Refuse,
    Clamp,
}

/// Settings that apply to every job unless its file says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub timezone: String,
    pub keep_runs: u32,
    pub max_age: Duration,
    /// Whether `jobs.toml` names a mail server (`[smtp]`): an `email:` notification needs one.
    pub smtp: bool,
    /// `[llm]`: where `prompt:` jobs send their prompts.
    pub llm: LlmConfig,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timezone: "UTC".to_string(),
            keep_runs: 1000,
            max_age: Duration::from_secs(30 * 86_400),
            smtp: false,
            llm: LlmConfig::default(),
        }
    }
}

/// What [`parse`] needs besides the file itself.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub defaults: &'a Defaults,
    /// The instant to judge `at` times against (a past one is a warning).
    pub now: Timestamp,
}

/// What `at` in the past warns: the job will not fire by schedule. A job whose one-off has
/// already fired under the same definition is not warned about (see
/// `Catalog::quiet_fired_at`), since firing once is what it was for.
const PAST_AT: &str = "is in the past; the job will not fire by schedule";

pub(crate) fn past_at_message(text: &str) -> String {
    format!("`at: {text}` {PAST_AT}")
}

/// Whether `d` is the warning of [`past_at_message`].
pub fn is_past_at_warning(d: &Diagnostic) -> bool {
    !d.is_error() && d.message.starts_with("`at: ") && d.message.ends_with(PAST_AT)
}

/// The outcome of parsing one file: the spec if it is valid, and every diagnostic (warnings
/// may accompany a valid spec).
#[derive(Clone, Debug)]
pub struct Parsed {
    pub spec: Option<JobSpec>,
    pub diagnostics: Vec<Diagnostic>,
    /// Where each `depends_on` and `after` entry was written, for checks across files.
    pub references: Vec<Reference>,
}

/// A job named by another job's `depends_on` or `after`.
#[derive(Clone, Debug)]
pub struct Reference {
    pub target: JobName,
    pub field: &'static str,
    pub position: Option<Position>,
}

/// Which syntax a file is in, from its extension.
pub fn format_of(path: &str) -> Format {
    if path.ends_with(".toml") {
        Format::Toml
    } else {
        Format::Yaml
    }
}

/// Parses and validates one job file. `path` is shown in diagnostics and its stem is the job's
/// name; `bytes` is the file's content.
pub fn parse(path: &str, bytes: &[u8], context: Context<'_>) -> Parsed {
    parse_with(path, bytes, context, Limits::Refuse)
}

/// Parses a revision's definition as the ledger recorded it: as [`parse`], except that a value
/// beyond a limit added after it was applied (`every: 1ms`, `retry.attempts: 1000`) is brought
/// within the limit, with a warning, instead of refused. A job applied by an older version
/// keeps running, within the limits; its file is refused at the next apply.
pub fn parse_recorded(path: &str, bytes: &[u8], context: Context<'_>) -> Parsed {
    parse_with(path, bytes, context, Limits::Clamp)
}

fn parse_with(path: &str, bytes: &[u8], context: Context<'_>, limits: Limits) -> Parsed {
    let fail = |d: Diagnostic| Parsed {
        spec: None,
        diagnostics: vec![d],
        references: Vec::new(),
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            return fail(
                Diagnostic::error(
                    path,
                    format!(
                        "the file is not valid UTF-8 (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                )
                .at(Some(position_of(valid, valid.len())))
                .help("save the file as UTF-8"),
            );
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty()
        || text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "---"
        })
    {
        return fail(
            Diagnostic::error(path, "the file is empty").help(
                "a job file needs at least `command` (a list) or `run` (a script); `jobctl init` writes an example",
            ),
        );
    }
    let format = format_of(path);
    let raw = match deserialize(path, text, format) {
        Ok(raw) => raw,
        Err(d) => return fail(d),
    };
    build::build(path, text, raw, context, limits)
}

/// Deserializes a file's text into its raw shape.
fn deserialize(path: &str, text: &str, format: Format) -> Result<raw::RawJob, Diagnostic> {
    raw::with_format(format, || match format {
        Format::Yaml => serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| yaml_error(path, &e)),
        Format::Toml => toml::from_str(text).map_err(|e| toml_error(path, text, &e)),
        Format::Plain => unreachable!("files are YAML or TOML"),
    })
}

fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        // YAML 1.1's `yes`/`no`/`on`/`off` booleans surprise people (`country: no`).
        strict_booleans: true,
        budget: serde_saphyr::budget! { max_depth: 32, max_aliases: 200, max_nodes: 20_000 },
        // A job file needs no more than a handful of aliases; an alias bomb stops in microseconds.
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: 20_000 },
    }
}

fn yaml_error(path: &str, error: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::Error as E;
    let mut e = error;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = e {
        e = error;
    }
    let position = e.location().and_then(|l| {
        (l != serde_saphyr::Location::UNKNOWN).then(|| Position {
            line: l.line() as usize,
            column: l.column() as usize,
        })
    });
    let d = |message: String| Diagnostic::error(path, message).at(position);
    match e {
        E::SerdeUnknownField {
            field, expected, ..
        } => unknown_field(path, field, expected).at(position),
        E::DuplicateMappingKey { key, .. } => d(match key {
            Some(key) => format!("duplicate key `{key}`; each key may appear only once"),
            None => "duplicate key; each key may appear only once".to_string(),
        }),
        E::MultipleDocuments { .. } => {
            d("the file holds more than one YAML document (a second `---`)".to_string())
                .help("put one job in each file; the file's name is the job's name")
        }
        E::InvalidBooleanStrict { .. } => {
            d("expected `true` or `false`".to_string())
        }
        E::InvalidScalar { ty, .. } if *ty == "boolean" => d("expected `true` or `false`".to_string()),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => d(format!(
            "unknown value `{variant}`, expected one of {}",
            quoted_list(expected)
        )),
        E::Budget { .. } | E::AliasReplayLimitExceeded { .. } | E::AliasExpansionLimitExceeded { .. } | E::AliasReplayStackDepthExceeded { .. } => d(
            "the file expands beyond the limits for a job file (too deep, or too many aliases); is it an alias bomb?".to_string(),
        ),
        E::Eof { .. } => d("the file ends before a job definition".to_string()),
        other => {
            let text = other.without_snippet().to_string();
            let message = strip_location_suffix(&text);
            let diagnostic = d(message.to_string());
            if message.contains("cannot start any token")
                || message.contains("unexpected character: `@'")
                || message.contains("unexpected character: `*'")
            {
                diagnostic.help("a value starting with `@`, `*`, `&` or `!` must be quoted, e.g. schedule: \"@daily\"")
            } else {
                diagnostic
            }
        }
    }
}

/// serde-saphyr ends a plain message with ` at line L, column C`; the diagnostic carries the
/// position itself.
fn strip_location_suffix(text: &str) -> &str {
    if let Some(i) = text.rfind(" at line ") {
        let tail = &text[i + " at line ".len()..];
        if tail.contains(", column ")
            && tail
                .chars()
                .all(|c| c.is_ascii_digit() || ", column".contains(c))
        {
            return &text[..i];
        }
    }
    text
}

/// A TOML parser's error as a diagnostic: an unknown field with its suggestion, a duplicate
/// key with its name.
pub(crate) fn toml_error(path: &str, text: &str, error: &toml::de::Error) -> Diagnostic {
    let position = error.span().map(|s| position_of(text, s.start));
    let message = error.message().trim();
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        let expected: Vec<&str> = message
            .split("expected ")
            .nth(1)
            .map(|list| {
                list.split(['`', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "one of")
                    .collect()
            })
            .unwrap_or_default();
        return unknown_field(path, field, &expected).at(position);
    }
    if message == "duplicate key" {
        let key = error
            .span()
            .and_then(|s| text.get(s))
            .map(|k| format!(" `{}`", k.trim()))
            .unwrap_or_default();
        return Diagnostic::error(
            path,
            format!("duplicate key{key}; each key may appear only once"),
        )
        .at(position);
    }
    Diagnostic::error(path, message.to_string()).at(position)
}

/// `field` is not one of `expected`: the message, and the nearest as a suggestion (a `secret`
/// gets a word on where secrets go instead).
pub(crate) fn unknown_field(path: &str, field: &str, expected: &[&str]) -> Diagnostic {
    let mut diagnostic = Diagnostic::error(
        path,
        format!(
            "unknown field `{field}`, expected one of {}",
            quoted_list(expected)
        ),
    );
    if field == "secret" {
        diagnostic = diagnostic.help(
            "never write a secret in a job file: name where it is with `secret_env: VAR` or `secret_file: PATH`",
        );
    } else if let Some(s) = crate::diag::suggest(field, expected.iter().copied()) {
        diagnostic = diagnostic.help(format!("did you mean `{s}`?"));
    }
    diagnostic
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Looks up an IANA time zone.
///
/// # Errors
///
/// A [`TimezoneError`] with, for a near miss, a suggestion (`America/NewYork` →
/// `America/New_York`).
pub fn resolve_timezone(name: &str) -> Result<(String, TimeZone), TimezoneError> {
    if let Ok(tz) = jiff::tz::db().get(name) {
        let canonical = tz.iana_name().unwrap_or(name).to_string();
        return Ok((canonical, tz));
    }
    let names = jiff::tz::db().available();
    let lowered = name.to_ascii_lowercase().replace([' ', '-'], "_");
    let suggestion = names
        .map(|n| {
            let candidate = n.as_str().to_ascii_lowercase();
            (
                strsim::jaro_winkler(&lowered, &candidate),
                n.as_str().to_string(),
            )
        })
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| format!("did you mean `{n}`?"));
    Err(TimezoneError {
        name: name.to_string(),
        suggestion,
    })
}

/// A time zone name that is not in the time zone database.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone `{name}`; expected an IANA name such as `Europe/Berlin` or `UTC`")]
pub struct TimezoneError {
    pub name: String,
    /// "did you mean `…`?" for a near miss.
    pub suggestion: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(defaults: &Defaults) -> Context<'_> {
        Context {
            defaults,
            now: "2026-10-31T12:00:00Z".parse().unwrap(),
        }
    }

    const VALID_YAML: &str = "description: Nightly backup\nschedule: \"30 2 * * *\"\ntimezone: Europe/Berlin\nrun: |\n  pg_dump app > /tmp/app.dump\nenv:\n  PGHOST: localhost\ntimeout: 2h\nretry:\n  attempts: 2\n  backoff: 5m\nconcurrency: forbid\nparams:\n  target:\n    default: s3\non_failure:\n  - webhook: http://127.0.0.1:9000/hook?token=t\n  - run: 'echo \"$JOBS_JOB failed\" | mail ops'\n    after: 3\non_success:\n  - webhook: https://example.com/ok\ntags: [backup]\n";
    const VALID_TOML: &str = "description = \"Nightly backup\"\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\nrun = \"pg_dump app\"\ntimeout = \"2h\"\n[retry]\nattempts = 2\n[env]\nPGHOST = \"localhost\"\n[[on_failure]]\nrun = \"echo failed\"\nafter = 2\n[[on_success]]\nwebhook = \"http://[::1]:9000/ok\"\n";

    #[test]
    fn yaml_and_toml_mean_the_same() {
        let defaults = Defaults::default();
        let yaml = parse(
            "j.yaml",
            b"schedule: {every: 15m}\ncommand: [a, b]\ntimeout: 90s\n",
            context(&defaults),
        );
        let toml = parse(
            "j.toml",
            b"command = [\"a\", \"b\"]\ntimeout = \"1m 30s\"\n[schedule]\nevery = \"15m\"\n",
            context(&defaults),
        );
        assert_eq!(yaml.spec, toml.spec);
        assert!(yaml.spec.is_some());
    }

    #[test]
    fn the_normal_form_parses_back_to_the_same_spec() {
        let defaults = Defaults::default();
        for (path, text) in [("j.yaml", VALID_YAML), ("j.toml", VALID_TOML)] {
            let spec = parse(path, text.as_bytes(), context(&defaults))
                .spec
                .unwrap();
            assert!(!spec.on_failure.is_empty() && !spec.on_success.is_empty());
            let normal = normal::to_yaml(&spec);
            let again = parse("j.yaml", normal.as_bytes(), context(&defaults));
            assert_eq!(
                again.spec.as_ref(),
                Some(&spec),
                "{normal}\n{:?}",
                again.diagnostics
            );
            assert_eq!(
                normal::content_hash(&spec),
                normal::content_hash(again.spec.as_ref().unwrap())
            );
        }
    }

    #[test]
    fn notifications_are_part_of_the_content_hash() {
        let defaults = Defaults::default();
        let hash = |text: &str| {
            let parsed = parse("j.yaml", text.as_bytes(), context(&defaults));
            let spec = parsed
                .spec
                .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics));
            normal::content_hash(&spec)
        };
        let plain = hash("command: [x]\n");
        let failure = hash("command: [x]\non_failure: [{run: echo}]\n");
        let streak = hash("command: [x]\non_failure: [{run: echo, after: 2}]\n");
        let success = hash("command: [x]\non_success: [{run: echo}]\n");
        assert_eq!(plain, hash("command: [x]\non_failure: []\n"));
        assert!(plain != failure && failure != streak && failure != success);
        let spec = parse(
            "j.yaml",
            b"command: [x]\non_failure: [{webhook: 'http://h/x'}, {run: echo, after: 2}]\n",
            context(&defaults),
        )
        .spec
        .unwrap();
        assert_eq!(
            spec.on_failure,
            [
                Notification {
                    action: NotifyAction::Webhook("http://h/x".into()),
                    after: None
                },
                Notification {
                    action: NotifyAction::Run("echo".into()),
                    after: Some(2)
                },
            ]
        );
    }

    #[test]
    fn slack_and_email_items_parse_hash_and_keep_their_recorded_form() {
        let defaults = Defaults {
            smtp: true,
            ..Defaults::default()
        };
        let hash = |text: &str| {
            let parsed = parse("j.yaml", text.as_bytes(), context(&defaults));
            let spec = parsed
                .spec
                .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics));
            normal::content_hash(&spec)
        };
        let one = hash("command: [x]\non_failure: [{email: ops@example.com}]\n");
        assert_eq!(
            one,
            hash("command: [x]\non_failure: [{email: [ops@example.com]}]\n"),
            "one address is a list of one"
        );
        let slack = hash("command: [x]\non_failure: [{slack: 'http://h/x'}]\n");
        let webhook = hash("command: [x]\non_failure: [{webhook: 'http://h/x'}]\n");
        assert!(one != slack && slack != webhook);
        let text = "command = [\"x\"]\n[[on_failure]]\nslack = \"https://h/x\"\n[[on_success]]\nemail = [\"a@x.org\", \"b@y.org\"]\n";
        let spec = parse("j.toml", text.as_bytes(), context(&defaults))
            .spec
            .unwrap();
        assert_eq!(
            spec.on_failure[0].action,
            NotifyAction::Slack("https://h/x".into())
        );
        assert_eq!(
            spec.on_success[0].action,
            NotifyAction::Email(vec!["a@x.org".into(), "b@y.org".into()])
        );
        // A revision recorded while jobs.toml had `[smtp]` still runs without it.
        let normal = normal::to_yaml(&spec);
        let without = Defaults::default();
        assert!(
            parse("j.yaml", normal.as_bytes(), context(&without))
                .spec
                .is_none()
        );
        let recorded = parse_recorded("j.yaml", normal.as_bytes(), context(&without));
        assert_eq!(recorded.spec.unwrap().on_success, spec.on_success);
    }

    #[test]
    fn a_prompt_round_trips_and_a_recorded_one_keeps_its_provider() {
        let mut with = Defaults::default();
        with.llm.providers.insert(
            "local".into(),
            Provider {
                base_url: "http://127.0.0.1:1/v1".into(),
                api_key: None,
                timeout: DEFAULT_LLM_TIMEOUT,
                idle_timeout: DEFAULT_LLM_IDLE,
            },
        );
        let text = "prompt:\n  provider: local\n  model: m\n  system: s\n  prompt: p\n  max_tokens: 10\n  temperature: 0.5\n";
        let spec = parse("j.yaml", text.as_bytes(), context(&with))
            .spec
            .unwrap();
        let normal = normal::to_yaml(&spec);
        let again = parse("j.yaml", normal.as_bytes(), context(&with))
            .spec
            .unwrap();
        assert_eq!(again, spec, "the normal form parses back to the same job");
        // The provider gone from jobs.toml: new input is refused, a recorded revision stays.
        let without = Defaults::default();
        assert!(
            parse("j.yaml", normal.as_bytes(), context(&without))
                .spec
                .is_none()
        );
        let recorded = parse_recorded("j.yaml", normal.as_bytes(), context(&without));
        assert_eq!(recorded.spec.unwrap().action, spec.action);
    }

    #[test]
    fn limits_that_protect_the_ledger_refuse_new_input_and_clamp_recorded_revisions() {
        let defaults = Defaults::default();
        let secs = Duration::from_secs;
        let every = |interval| Schedule::Every {
            interval,
            start_at: None,
        };
        let retry = |attempts, backoff, max_backoff| {
            Some(Retry {
                attempts,
                backoff,
                max_backoff,
            })
        };
        for (text, schedule, retried) in [
            (
                "schedule: {every: 1ms}\ncommand: [x]\n",
                every(secs(1)),
                None,
            ),
            (
                "command: [x]\nretry: {attempts: 4000000000, backoff: 0s, max_backoff: 0s}\n",
                Schedule::Manual,
                retry(MAX_ATTEMPTS, secs(1), secs(1)),
            ),
            (
                "command: [x]\nretry: {attempts: 101, backoff: 0s}\n",
                Schedule::Manual,
                retry(MAX_ATTEMPTS, secs(1), DEFAULT_MAX_BACKOFF),
            ),
        ] {
            let new = parse("j.yaml", text.as_bytes(), context(&defaults));
            assert!(new.spec.is_none(), "{text}: refused as new input");
            let recorded = parse_recorded("j.yaml", text.as_bytes(), context(&defaults));
            assert!(
                recorded.diagnostics.iter().all(|d| !d.is_error()),
                "{text}: {:?}",
                recorded.diagnostics
            );
            let spec = recorded.spec.expect("a recorded revision still parses");
            assert_eq!((spec.schedule, spec.retry), (schedule, retried), "{text}");
        }
    }

    #[test]
    fn toml_native_date_times_are_accepted() {
        let defaults = Defaults::default();
        let parsed = parse(
            "j.toml",
            b"command = [\"x\"]\ntimezone = \"Asia/Tokyo\"\n[schedule]\nat = 2030-01-01T09:00:00\n",
            context(&defaults),
        );
        let spec = parsed
            .spec
            .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics));
        let Schedule::At(at) = spec.schedule else {
            panic!()
        };
        assert_eq!(at.instant.to_string(), "2030-01-01T00:00:00Z");
    }

    /// The diagnostics of one job file, drawn against its text as `jobctl validate` does.
    fn rendered(path: &str, text: &str) -> String {
        let defaults = Defaults::default();
        let parsed = parse(path, text.as_bytes(), context(&defaults));
        crate::diag::render(&parsed.diagnostics, |_| Some(text), false)
    }

    #[test]
    fn errors_render_with_their_source_line() {
        let yaml = "schedule: '0 25 * * *'\ntimezone: Europe/Berln\ncommand: [backup]\nrun: backup\n\
                    retry:\n  attempts: 3\n  backoff: 0s\nconcurrency: forbidd\n\
                    on_failure:\n  - webhook: hooks.example.com\n";
        let toml = "command = [\"report\"]\nschedul = \"@daily\"\n";
        insta::with_settings!({ snapshot_path => "../snapshots" }, {
            insta::assert_snapshot!("job_file_errors_yaml", rendered("jobs.d/backup.yaml", yaml));
            insta::assert_snapshot!("job_file_errors_toml", rendered("jobs.d/report.toml", toml));
        });
    }

    fn located(path: &str, bytes: &[u8]) -> Result<(), String> {
        let defaults = Defaults::default();
        let parsed = parse(path, bytes, context(&defaults));
        for d in parsed.diagnostics.iter().filter(|d| d.is_error()) {
            if d.position.is_none() && !d.message.contains("the file is empty") {
                return Err(format!(
                    "no position: {d}\n--- input\n{}",
                    String::from_utf8_lossy(bytes)
                ));
            }
        }
        if parsed.spec.is_none() && !parsed.diagnostics.iter().any(Diagnostic::is_error) {
            return Err("no spec and no error".into());
        }
        Ok(())
    }

    /// Mutations of a valid file: delete, duplicate or replace a byte range.
    fn mutate(text: &str, ops: &[(u8, usize, usize, String)]) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        for (kind, a, b, insert) in ops {
            let len = bytes.len().max(1);
            let (a, b) = ((*a % len).min(bytes.len()), (*b % len).min(bytes.len()));
            let (lo, hi) = (a.min(b), a.max(b).min(lo_hi_cap(a.min(b), bytes.len())));
            match kind % 3 {
                0 => {
                    bytes.drain(lo..hi);
                }
                1 => {
                    let copy = bytes[lo..hi].to_vec();
                    bytes.splice(hi..hi, copy);
                }
                _ => {
                    bytes.splice(lo..hi, insert.bytes());
                }
            }
        }
        bytes
    }

    fn lo_hi_cap(lo: usize, len: usize) -> usize {
        (lo + 40).min(len)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_give_a_located_error_never_a_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            toml in proptest::prelude::any::<bool>(),
        ) {
            let path = if toml { "job.toml" } else { "job.yaml" };
            if let Err(e) = located(path, &bytes) {
                proptest::prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn mutated_valid_files_give_a_located_error_never_a_panic(
            ops in proptest::collection::vec(
                (0u8..3, 0usize..2000, 0usize..2000, "[ -~\\n]{0,12}|: |- |\\{|\\[|\\*a|&a|---|\"|'|\\t|#"),
                1..4,
            ),
            toml in proptest::prelude::any::<bool>(),
        ) {
            let (path, text) = if toml { ("job.toml", VALID_TOML) } else { ("job.yaml", VALID_YAML) };
            let bytes = mutate(text, &ops);
            if let Err(e) = located(path, &bytes) {
                proptest::prop_assert!(false, "{}", e);
            }
        }
    }
}

/// A run's parameters that do not fit the job's declared `params`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("job `{job}` has no parameter `{name}`; {}", declared_text(.declared))]
    Unknown {
        job: String,
        name: String,
        declared: Vec<String>,
    },
    #[error("job `{job}` needs the parameter `{name}`")]
    Missing { job: String, name: String },
}

fn declared_text(declared: &[String]) -> String {
    if declared.is_empty() {
        "it declares none".to_string()
    } else {
        format!("it declares: {}", declared.join(", "))
    }
}

/// Checks the parameters given for a run of `job` against its declared `params`: each must be
/// declared, and each required one without a default must be given. Returns them as the JSON
/// object the ledger records (`None` for none).
///
/// # Errors
///
/// The first parameter that does not fit.
pub fn bind_params(
    job: &str,
    declared: &BTreeMap<String, Param>,
    given: BTreeMap<String, String>,
) -> Result<Option<serde_json::Value>, ParamError> {
    if let Some(name) = given.keys().find(|k| !declared.contains_key(*k)) {
        return Err(ParamError::Unknown {
            job: job.to_string(),
            name: name.clone(),
            declared: declared.keys().cloned().collect(),
        });
    }
    if let Some((name, _)) = declared
        .iter()
        .find(|(name, p)| p.required && p.default.is_none() && !given.contains_key(*name))
    {
        return Err(ParamError::Missing {
            job: job.to_string(),
            name: name.clone(),
        });
    }
    Ok((!given.is_empty()).then(|| serde_json::json!(given)))
}
