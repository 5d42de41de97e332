//! From [`RawJob`] to [`JobSpec`]: every value checked, every problem collected.
//!
//! [`build`] only orders the work: each family of fields has its builder, a function that takes
//! its raw part and the [`Builder`] (the diagnostics sink and the file's text, for positions)
//! and returns its typed part, or `None` after recording why not:
//!
//! - `identity`: the name (from the file's stem), the time zone, `tags`;
//! - `schedule`: `schedule` (cron, `every`, `at`, `after`) and `jitter`;
//! - `action`: `command` or `run`, `env`, `working_dir`, `params` and the `{{ params.NAME }}`
//!   placeholders that must name them;
//! - `policy`: `timeout`, `starting_deadline`, `retry`, `concurrency`, `missed`, `repeat`,
//!   `history`, `output_limit`;
//! - `links`: `depends_on` and the incoming `webhook`;
//! - `notifications`: `on_failure` and `on_success`.
//!
//! The builders run in the order the file's problems have always been reported in, so the
//! diagnostics of a file read the same. Nothing here does I/O.

mod action;
mod identity;
mod links;
mod notifications;
mod policy;
mod request;
mod schedule;

use super::raw::{At, Loc, RawJob};
use super::*;
use crate::diag::{offset_of, position_of};

/// What every field builder writes to: the diagnostics and references found so far, and the
/// file's text, which turns a value's [`At`] into a line and column.
struct Builder<'a> {
    path: &'a str,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
    references: Vec<Reference>,
    limits: Limits,
    /// `[llm]` of `jobs.toml`: the providers a `prompt` may name.
    llm: &'a LlmConfig,
}

impl Builder<'_> {
    fn position(&self, at: At) -> Option<Position> {
        match at {
            At::Unknown => None,
            At::LineColumn(line, column) => Some(Position {
                line: line as usize,
                column: column as usize,
            }),
            At::Byte(offset) => Some(position_of(self.text, offset)),
        }
    }

    /// The position `chars` characters into a string value written at `at` (past its quote).
    fn position_within(&self, at: At, chars: usize) -> Option<Position> {
        let start = self.position(at)?;
        let byte = offset_of(self.text, start)?;
        let quoted = matches!(self.text[byte..].chars().next(), Some('"' | '\''));
        let skip = chars + usize::from(quoted);
        let byte = self.text[byte..]
            .char_indices()
            .nth(skip)
            .map_or(self.text.len(), |(i, _)| byte + i);
        Some(position_of(self.text, byte))
    }

    fn error(&mut self, at: At, message: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::error(self.path, message).at(self.position(at));
        self.push(d)
    }

    fn warning(&mut self, at: At, message: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::warning(self.path, message).at(self.position(at));
        self.push(d)
    }

    fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn duration(&mut self, field: &str, value: Option<Loc<String>>) -> Option<Duration> {
        let value = value?;
        match Duration::parse(&value.value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(value.at, format!("{field}: {e}"));
                None
            }
        }
    }

    fn positive_duration(&mut self, field: &str, value: Option<Loc<String>>) -> Option<Duration> {
        let at = value.as_ref().map(|v| v.at).unwrap_or_default();
        let d = self.duration(field, value)?;
        if d.is_zero() {
            self.error(at, format!("{field} must be longer than 0s"));
            return None;
        }
        Some(d)
    }

    /// A value beyond a limit: an error, or (a recorded revision) a warning, and the limit.
    fn beyond_limit<T>(&mut self, at: At, limit: T, message: String, help: &str) -> Option<T> {
        let d = match self.limits {
            Limits::Refuse => self.error(at, message),
            Limits::Clamp => self.warning(at, message),
        };
        d.help = Some(help.into());
        (self.limits == Limits::Clamp).then_some(limit)
    }

    /// `value` if it is at least `min`; see [`Builder::beyond_limit`].
    fn at_least(
        &mut self,
        field: &str,
        at: At,
        value: Duration,
        min: Duration,
        help: &str,
    ) -> Option<Duration> {
        if value >= min {
            return Some(value);
        }
        let message = format!("{field} must be at least {min} (it is {value})");
        self.beyond_limit(at, min, message, help)
    }

    fn job_name(&mut self, field: &str, value: &Loc<String>) -> Option<JobName> {
        match JobName::parse(&value.value) {
            Ok(n) => Some(n),
            Err(e) => {
                self.error(value.at, format!("{field}: {e}"));
                None
            }
        }
    }

    /// Records that `field` names the job `target` at `at`, for the checks across files.
    fn reference(&mut self, field: &'static str, target: &JobName, at: At) {
        let position = self.position(at);
        self.references.push(Reference {
            target: target.clone(),
            field,
            position,
        });
    }

    /// `value` as one of `choices` (`field` names it in the message), or the default with an
    /// error that suggests the nearest choice.
    fn one_of<T: Copy + Default>(
        &mut self,
        field: &str,
        value: Option<Loc<String>>,
        choices: &[(&str, T)],
    ) -> T {
        let Some(value) = value else {
            return T::default();
        };
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == value.value) {
            return *v;
        }
        let names = choices.iter().map(|(name, _)| *name);
        let help = crate::diag::suggest(&value.value, names.clone())
            .map(|s| format!("did you mean `{s}`?"));
        let expected = names.map(|n| format!("`{n}`")).collect::<Vec<_>>();
        self.error(
            value.at,
            format!(
                "{field} `{}` is not one of {}",
                value.value,
                expected.join(", ")
            ),
        )
        .help = help;
        T::default()
    }
}

/// Whether `url` is an http:// or https:// URL with a host.
///
/// # Errors
///
/// A [`UrlError`] that says what is wrong with it.
pub fn check_http_url(url: &str) -> Result<(), UrlError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(UrlError::NotAUrl);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(UrlError::Scheme);
    }
    if !url.chars().all(|c| c.is_ascii_graphic()) {
        return Err(UrlError::Unencoded);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => return Err(UrlError::UnclosedBracket),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err()) {
        return Err(UrlError::Port);
    }
    Ok(())
}

/// What is wrong with a URL that should be http:// or https:// (the message follows the URL:
/// "`URL` is not a URL").
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a URL")]
    NotAUrl,
    #[error("has a scheme other than http or https")]
    Scheme,
    #[error("holds spaces or characters that must be percent-encoded")]
    Unencoded,
    #[error("has an unclosed `[` in its host")]
    UnclosedBracket,
    #[error("has no host")]
    NoHost,
    #[error("has a port that is not a number from 0 to 65535")]
    Port,
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn build(
    path: &str,
    text: &str,
    raw: RawJob,
    context: Context<'_>,
    limits: Limits,
) -> Parsed {
    let mut b = Builder {
        path,
        text,
        diagnostics: Vec::new(),
        references: Vec::new(),
        limits,
        llm: &context.defaults.llm,
    };
    let name = identity::name(&mut b, raw.name.as_ref());
    let timezone = identity::timezone(&mut b, raw.timezone.as_ref(), context.defaults);
    let tz_for_times = timezone.as_ref().map_or(TimeZone::UTC, |z| z.tz.clone());
    let schedule = schedule::schedule(&mut b, raw.schedule, &tz_for_times, context.now);
    let jitter = b.duration("jitter", raw.jitter).unwrap_or(Duration::ZERO);
    let command_at = raw.command.as_ref().map(|c| c.at);
    let run_at = raw.run.as_ref().map(|r| r.at);
    let written = action::Written {
        command: raw.command,
        run: raw.run,
        shell: raw.shell,
        http: raw.http,
        prompt: raw.prompt,
    };
    let (action, request) = action::action(&mut b, written);
    let kind = action
        .as_ref()
        .filter(|a| !a.is_process())
        .map(Action::kind);
    if let (Some(kind), Some(at)) = (
        kind,
        raw.env
            .as_ref()
            .and_then(|e| e.0.first())
            .map(|(k, _)| k.at),
    ) {
        b.error(
            at,
            format!("`env` sets a process's environment; an `{kind}` action starts no process"),
        )
        .help =
            Some("a header's value can come from the daemon's environment: `{env: VAR}`".into());
    }
    if let (Some(kind), Some(dir)) = (kind, &raw.working_dir) {
        b.error(
            dir.at,
            format!(
                "`working_dir` is where a process starts; an `{kind}` action starts no process"
            ),
        );
    }
    let (env, env_at) = action::env(&mut b, raw.env);
    let working_dir = action::working_dir(&mut b, raw.working_dir);
    let timeout = b.positive_duration("timeout", raw.timeout);
    let starting_deadline = b.positive_duration("starting_deadline", raw.starting_deadline);
    let retry = policy::retry(&mut b, raw.retry);
    let concurrency = b.one_of("concurrency", raw.concurrency, policy::CONCURRENCY);
    let missed = b.one_of("missed", raw.missed, policy::MISSED);
    let depends_on = links::depends_on(&mut b, raw.depends_on, name.as_ref());
    let params = action::params(&mut b, raw.params);
    let (action_ref, env_ref) = (action.as_ref(), &env);
    let values = action::Templated {
        action: action_ref,
        command_at,
        run_at,
        env: env_ref,
        env_at,
        request,
    };
    action::check_placeholders(&mut b, values, &params);
    let webhook = links::webhook(&mut b, raw.webhook);
    let repeat = policy::repeat(&mut b, raw.repeat);
    let smtp = context.defaults.smtp;
    let on_failure = notifications::notifications(&mut b, "on_failure", raw.on_failure, smtp);
    let on_success = notifications::notifications(&mut b, "on_success", raw.on_success, smtp);
    let history = policy::history(&mut b, raw.history);
    let output_limit = policy::output_limit(&mut b, raw.output_limit);
    let tags = identity::tags(&mut b, raw.tags);
    let runs_on = identity::runs_on(&mut b, raw.runs_on);
    let success_when = policy::success_when(&mut b, raw.success_when);

    let failed = b.diagnostics.iter().any(Diagnostic::is_error);
    let spec = match (failed, name, schedule, timezone, action) {
        (false, Some(name), Some(schedule), Some(timezone), Some(action)) => Some(JobSpec {
            name,
            description: raw.description.map(|d| d.value).unwrap_or_default(),
            enabled: raw.enabled.unwrap_or(true),
            schedule,
            timezone,
            jitter,
            action,
            env,
            working_dir,
            timeout,
            retry,
            concurrency,
            missed,
            starting_deadline,
            depends_on,
            params,
            webhook,
            repeat,
            on_failure,
            on_success,
            history,
            output_limit,
            tags,
            runs_on,
            success_when,
        }),
        _ => None,
    };
    Parsed {
        spec,
        diagnostics: b.diagnostics,
        references: b.references,
    }
}
