//! From [`RawJob`] to [`JobSpec`]: every value checked, every problem collected.

use std::collections::BTreeMap;

use super::raw::{At, Loc, RawCommand, RawEmail, RawJob, RawNotification, RawSchedule, RawSize};
use super::*;
use crate::cron::CronExpr;
use crate::diag::{offset_of, position_of};
use crate::schedule::{AtTime, resolve_time};

struct Builder<'a> {
    path: &'a str,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
    references: Vec<Reference>,
    limits: Limits,
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
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn warning(&mut self, at: At, message: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::warning(self.path, message).at(self.position(at));
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn duration(&mut self, field: &str, value: Option<Loc<String>>) -> Option<Duration> {
        let value = value?;
        match Duration::parse(&value.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(value.at, format!("{field}: {message}"));
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

    fn cron(&mut self, expr: &Loc<String>) -> Option<CronExpr> {
        match CronExpr::parse(&expr.value) {
            Ok(c) => Some(c),
            Err(e) => {
                let position = match e.offset {
                    Some(o) => self.position_within(expr.at, o),
                    None => self.position(expr.at),
                };
                let mut d =
                    Diagnostic::error(self.path, format!("invalid cron expression: {}", e.message))
                        .at(position);
                d.help = e.help;
                self.diagnostics.push(d);
                None
            }
        }
    }

    /// The items of `on_failure` or `on_success` (`field`); `after` is only allowed in the first.
    /// `smtp`: whether `jobs.toml` names a mail server, which `email` needs.
    fn notifications(
        &mut self,
        field: &str,
        items: Option<Vec<Loc<RawNotification>>>,
        smtp: bool,
    ) -> Vec<Notification> {
        let mut valid = Vec::new();
        for (i, item) in items.unwrap_or_default().into_iter().enumerate() {
            let what = format!("{field} item {}", i + 1);
            let RawNotification {
                webhook,
                slack,
                email,
                run,
                after,
            } = item.value;
            let given: Vec<&str> = [
                ("webhook", webhook.is_some()),
                ("slack", slack.is_some()),
                ("email", email.is_some()),
                ("run", run.is_some()),
            ]
            .into_iter()
            .filter_map(|(key, present)| present.then_some(key))
            .collect();
            let action = match (webhook, slack, email, run) {
                (Some(url), None, None, None) => self
                    .notify_url(&what, "webhook", &url)
                    .then_some(NotifyAction::Webhook(url.value)),
                (None, Some(url), None, None) => self
                    .notify_url(&what, "slack", &url)
                    .then_some(NotifyAction::Slack(url.value)),
                (None, None, Some(to), None) => self.email(&what, to, smtp),
                (None, None, None, Some(script)) if script.value.trim().is_empty() => {
                    self.error(script.at, format!("{what}: `run` is empty"));
                    None
                }
                (None, None, None, Some(script)) => Some(NotifyAction::Run(script.value)),
                _ => {
                    let has = match given.as_slice() {
                        [] => "has none of `webhook`, `slack`, `email`, `run`".to_string(),
                        [a, b] => format!("has both `{a}` and `{b}`"),
                        many => format!(
                            "has {}",
                            many.iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.error(item.at, format!("{what} {has}; it needs exactly one"))
                        .help = Some(
                        "write `- webhook: URL` (a JSON POST), `- slack: URL` (a Slack-compatible \
                         message), `- email: ADDRESS` or `- run: SCRIPT` (run with `sh -c`)"
                            .into(),
                    );
                    None
                }
            };
            let after = match after {
                Some(n) if field != "on_failure" => {
                    self.error(
                        n.at,
                        format!(
                            "{what}: `after` is only allowed in `on_failure`, not in `{field}`"
                        ),
                    )
                    .help = Some(
                        "`after: N` waits for the N-th consecutive failure; remove it here".into(),
                    );
                    None
                }
                Some(n) if n.value == 0 => {
                    self.error(n.at, format!("{what}: `after` must be at least 1"));
                    None
                }
                other => other.map(|n| n.value),
            };
            if let Some(action) = action {
                valid.push(Notification { action, after });
            }
        }
        valid
    }

    /// Whether the URL of a `webhook` or `slack` item (`key`) can be posted to; says why not.
    fn notify_url(&mut self, what: &str, key: &str, url: &Loc<String>) -> bool {
        match check_http_url(&url.value) {
            Ok(()) => true,
            Err(problem) => {
                let example = match key {
                    "slack" => "https://hooks.slack.com/services/T000/B000/XXXX",
                    _ => "http://127.0.0.1:9000/hook",
                };
                self.error(
                    url.at,
                    format!(
                        "{what}: {key} `{}` {problem}; expected an http:// or https:// URL",
                        url.value
                    ),
                )
                .help = Some(format!("write a URL such as {example}"));
                false
            }
        }
    }

    /// The addresses of an `email` item: each must be an address, and `jobs.toml` must name a
    /// mail server (`smtp`).
    fn email(&mut self, what: &str, to: Loc<RawEmail>, smtp: bool) -> Option<NotifyAction> {
        let addresses: Vec<Loc<String>> = match to.value {
            RawEmail::One(address) => vec![Loc {
                value: address,
                at: to.at,
            }],
            RawEmail::List(list) if list.is_empty() => {
                self.error(to.at, format!("{what}: `email` is an empty list"))
                    .help = Some("write `email: ops@example.com` or a list of addresses".into());
                return None;
            }
            RawEmail::List(list) => list,
        };
        let mut ok = true;
        for address in &addresses {
            if let Err(e) = address.value.trim().parse::<lettre::Address>() {
                ok = false;
                self.error(
                    address.at,
                    format!(
                        "{what}: email `{}` is not an address ({e}); expected one such as ops@example.com",
                        address.value
                    ),
                );
            }
        }
        // A recorded revision keeps its `email` when `[smtp]` is gone: sending it fails, loudly.
        if ok && !smtp && self.limits == Limits::Refuse {
            self.error(
                to.at,
                format!("{what}: `email` needs a mail server, and jobs.toml has no `[smtp]` section"),
            )
            .help = Some(
                "add `[smtp]` with `host` and `from` to jobs.toml (see the README's jobs.toml reference)"
                    .into(),
            );
            ok = false;
        }
        ok.then(|| {
            NotifyAction::Email(
                addresses
                    .into_iter()
                    .map(|a| a.value.trim().to_string())
                    .collect(),
            )
        })
    }

    fn job_name(&mut self, field: &str, value: &Loc<String>) -> Option<JobName> {
        match JobName::parse(&value.value) {
            Ok(n) => Some(n),
            Err(message) => {
                self.error(value.at, format!("{field}: {message}"));
                None
            }
        }
    }
}

/// Whether `url` is an http:// or https:// URL with a host; `Err` says what is wrong with it.
pub fn check_http_url(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("is not a URL");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("has a scheme other than http or https");
    }
    if !url.chars().all(|c| c.is_ascii_graphic()) {
        return Err("holds spaces or characters that must be percent-encoded");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => return Err("has an unclosed `[` in its host"),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err()) {
        return Err("has a port that is not a number from 0 to 65535");
    }
    Ok(())
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
    };
    let file_name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem);

    // Name: the file's stem; `name:` may repeat it.
    let name = match JobName::parse(stem) {
        Ok(n) => Some(n),
        Err(message) => {
            b.diagnostics.push(
                Diagnostic::error(
                    path,
                    format!("the file name gives the job its name, and {message}"),
                )
                .help("rename the file"),
            );
            None
        }
    };
    if let Some(written) = &raw.name
        && written.value != stem
    {
        b.error(
            written.at,
            format!(
                "`name: {}` does not match the file's name `{stem}`",
                written.value
            ),
        )
        .help = Some(format!(
            "a job's name is its file's name: rename the file to `{}.{}` or remove `name:`",
            written.value,
            file_name.rsplit_once('.').map_or("yaml", |(_, e)| e)
        ));
    }

    // Time zone first: `at` and `start_at` are read in it.
    let timezone = match &raw.timezone {
        Some(tz) => match resolve_timezone(&tz.value) {
            Ok((name, tz_value)) => Some(Zone {
                name,
                tz: tz_value,
                explicit: true,
            }),
            Err((message, help)) => {
                b.error(tz.at, message).help = help;
                None
            }
        },
        None => resolve_timezone(&context.defaults.timezone)
            .ok()
            .map(|(name, tz)| Zone {
                name,
                tz,
                explicit: false,
            }),
    };
    let tz_for_times = timezone.as_ref().map_or(TimeZone::UTC, |z| z.tz.clone());

    let resolve = |b: &mut Builder, field: &str, value: &Loc<raw::RawTime>| -> Option<AtTime> {
        match resolve_time(&value.value.0, &tz_for_times) {
            Ok(t) => Some(t),
            Err(message) => {
                b.error(value.at, format!("{field}: {message}"));
                None
            }
        }
    };

    let schedule = match raw.schedule {
        None => Some(Schedule::Manual),
        Some(Loc {
            value: RawSchedule::Cron(expr),
            at,
        }) => b.cron(&Loc { value: expr, at }).map(Schedule::Cron),
        Some(Loc {
            value: RawSchedule::Map(map),
            at,
        }) => {
            let given: Vec<&str> = [
                map.cron.as_ref().map(|_| "cron"),
                map.every.as_ref().map(|_| "every"),
                map.at.as_ref().map(|_| "at"),
                map.after.as_ref().map(|_| "after"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if given.len() != 1 {
                let what = if given.is_empty() {
                    "the schedule map has none of `cron`, `every`, `at`, `after`".to_string()
                } else {
                    format!(
                        "the schedule map has {}; a schedule is one of them",
                        given.join(" and ")
                    )
                };
                b.error(at, what).help = Some(
                    "write exactly one of `cron: EXPR`, `every: DURATION`, `at: TIME`, `after: [JOB, ...]`".into(),
                );
                None
            } else if map.start_at.is_some() && map.every.is_none() {
                let start = map.start_at.as_ref().expect("checked");
                b.error(start.at, "`start_at` only applies to `every`");
                None
            } else if let Some(expr) = map.cron {
                b.cron(&expr).map(Schedule::Cron)
            } else if let Some(every) = map.every {
                let every_at = every.at;
                let interval = b
                    .positive_duration("every", Some(every))
                    .and_then(|d| {
                        b.at_least(
                            "every",
                            every_at,
                            d,
                            MIN_EVERY,
                            "each fire is a run in the ledger; for work more often than that, loop inside one long-running run",
                        )
                    });
                let start_at = map
                    .start_at
                    .as_ref()
                    .map(|s| resolve(&mut b, "start_at", s));
                match (interval, start_at) {
                    (Some(interval), None) => Some(Schedule::Every {
                        interval,
                        start_at: None,
                    }),
                    (Some(interval), Some(Some(start))) => Some(Schedule::Every {
                        interval,
                        start_at: Some(start),
                    }),
                    _ => None,
                }
            } else if let Some(at_value) = map.at {
                let at_time = resolve(&mut b, "at", &at_value);
                if let Some(t) = &at_time
                    && t.instant <= context.now
                {
                    b.warning(at_value.at, super::past_at_message(&t.text));
                }
                at_time.map(Schedule::At)
            } else {
                let after = map.after.unwrap_or_default();
                if after.is_empty() {
                    b.error(at, "`after` lists no jobs");
                    None
                } else {
                    let names: Vec<Option<JobName>> = after
                        .iter()
                        .map(|n| {
                            let name = b.job_name("after", n)?;
                            let position = b.position(n.at);
                            b.references.push(Reference {
                                target: name.clone(),
                                field: "after",
                                position,
                            });
                            Some(name)
                        })
                        .collect();
                    names
                        .into_iter()
                        .collect::<Option<Vec<_>>>()
                        .map(Schedule::After)
                }
            }
        }
    };

    let jitter = b.duration("jitter", raw.jitter).unwrap_or(Duration::ZERO);

    let command_at = raw.command.as_ref().map(|c| c.at);
    let run_at = raw.run.as_ref().map(|r| r.at);
    let action = match (raw.command, raw.run) {
        (Some(_), Some(run)) => {
            b.error(
                run.at,
                "both `command` and `run` are set; a job has exactly one",
            )
            .help = Some(
                "`command` is a list run without a shell; `run` is a script run with `shell -c`"
                    .into(),
            );
            None
        }
        (None, None) => {
            b.diagnostics.push(
                Diagnostic::error(
                    path,
                    "the job has neither `command` nor `run`; it needs exactly one",
                )
                .at(Some(Position { line: 1, column: 1 }))
                .help("add `command: [program, arg, ...]` or `run: script`"),
            );
            None
        }
        (Some(command), None) => match command.value {
            RawCommand::String(s) => {
                b.error(command.at, "`command` is a list of arguments, not a string")
                    .help = Some(format!(
                    "write `command: [{}]`, or `run: {s}` to run it with a shell",
                    s.split_whitespace().collect::<Vec<_>>().join(", ")
                ));
                None
            }
            RawCommand::List(argv) if argv.is_empty() || argv[0].is_empty() => {
                b.error(
                    command.at,
                    "`command` is empty; it needs at least the program to run",
                );
                None
            }
            RawCommand::List(argv) => {
                if let Some(shell) = &raw.shell {
                    b.error(shell.at, "`shell` only applies to `run`, not to `command`");
                }
                Some(Action::Command(argv))
            }
        },
        (None, Some(run)) => {
            if run.value.trim().is_empty() {
                b.error(run.at, "`run` is empty");
                None
            } else {
                let shell = raw.shell.map_or(DEFAULT_SHELL.to_string(), |s| s.value);
                Some(Action::Script {
                    script: run.value,
                    shell,
                })
            }
        }
    };

    let mut env = BTreeMap::new();
    let mut env_at = Vec::new();
    for (key, value) in raw.env.map(|m| m.0).unwrap_or_default() {
        if !is_env_name(&key.value) {
            b.error(
                key.at,
                format!("`{}` is not a valid environment variable name", key.value),
            )
            .help = Some("use letters, digits and `_`, not starting with a digit".into());
        } else if key.value.starts_with("JOBS_") {
            b.error(
                key.at,
                format!(
                    "`{}`: names starting with `JOBS_` are reserved for jobs",
                    key.value
                ),
            );
        } else {
            env_at.push((value.at, key.value.clone()));
            env.insert(key.value, value.value);
        }
    }

    let working_dir = match raw.working_dir {
        Some(dir) if dir.value.trim().is_empty() => {
            b.error(dir.at, "`working_dir` is empty");
            None
        }
        other => other.map(|d| d.value),
    };

    let timeout = b.positive_duration("timeout", raw.timeout);
    let starting_deadline = b.positive_duration("starting_deadline", raw.starting_deadline);

    let retry = raw.retry.map(|r| {
        let at = r.at;
        let r = r.value;
        let attempts = match r.attempts {
            None => 0,
            Some(a) if a.value > MAX_ATTEMPTS => b
                .beyond_limit(
                    a.at,
                    MAX_ATTEMPTS,
                    format!(
                        "retry.attempts must be at most {MAX_ATTEMPTS} (it is {})",
                        a.value
                    ),
                    "each attempt is a run in the ledger; a job that keeps failing is retried by its next fire",
                )
                .unwrap_or(0),
            Some(a) => a.value,
        };
        let backoff_at = r.backoff.as_ref().map(|l| l.at).unwrap_or_default();
        let backoff = b
            .duration("retry.backoff", r.backoff)
            .and_then(|d| {
                b.at_least(
                    "retry.backoff",
                    backoff_at,
                    d,
                    MIN_BACKOFF,
                    "each retry is a run in the ledger; write 1s or more",
                )
            })
            .unwrap_or(DEFAULT_BACKOFF);
        let mut max_backoff = b
            .duration("retry.max_backoff", r.max_backoff)
            .unwrap_or(DEFAULT_MAX_BACKOFF.max(backoff));
        if b.limits == Limits::Clamp {
            // A recorded `backoff: 0s, max_backoff: 0s` stays consistent once clamped.
            max_backoff = max_backoff.max(backoff);
        }
        if max_backoff < backoff {
            b.error(
                at,
                format!(
                    "retry.max_backoff ({max_backoff}) is shorter than retry.backoff ({backoff})"
                ),
            );
        }
        Retry {
            attempts,
            backoff,
            max_backoff,
        }
    });

    let concurrency = match raw.concurrency {
        None => Concurrency::default(),
        Some(c) => match c.value.as_str() {
            "forbid" => Concurrency::Forbid,
            "allow" => Concurrency::Allow,
            "replace" => Concurrency::Replace,
            other => {
                let help = crate::diag::suggest(other, ["forbid", "allow", "replace"])
                    .map(|s| format!("did you mean `{s}`?"));
                b.error(
                    c.at,
                    format!("concurrency `{other}` is not one of `forbid`, `allow`, `replace`"),
                )
                .help = help;
                Concurrency::default()
            }
        },
    };
    let missed = match raw.missed {
        None => Missed::default(),
        Some(m) => match m.value.as_str() {
            "skip" => Missed::Skip,
            "run_once" => Missed::RunOnce,
            other => {
                let help = crate::diag::suggest(other, ["skip", "run_once"])
                    .map(|s| format!("did you mean `{s}`?"));
                b.error(
                    m.at,
                    format!("missed `{other}` is not one of `skip`, `run_once`"),
                )
                .help = help;
                Missed::default()
            }
        },
    };

    let mut depends_on = Vec::new();
    for dep in raw.depends_on.unwrap_or_default() {
        if let Some(n) = b.job_name("depends_on", &dep) {
            if Some(&n) == name.as_ref() {
                b.error(dep.at, "a job cannot depend on itself");
            } else if depends_on.contains(&n) {
                b.error(dep.at, format!("`{n}` is listed twice in depends_on"));
            } else {
                let position = b.position(dep.at);
                b.references.push(Reference {
                    target: n.clone(),
                    field: "depends_on",
                    position,
                });
                depends_on.push(n);
            }
        }
    }

    let mut params = BTreeMap::new();
    for (key, param) in raw.params.map(|m| m.0).unwrap_or_default() {
        if !is_env_name(&key.value) {
            b.error(key.at, format!("parameter name `{}` is not valid", key.value)).help = Some(
                "use letters, digits and `_`, not starting with a digit (it becomes JOBS_PARAM_NAME)".into(),
            );
            continue;
        }
        let at = param.at;
        let p = param.value;
        let required = p.required.unwrap_or(false);
        if required && p.default.is_some() {
            b.error(
                at,
                format!(
                    "parameter `{}` is required and has a default; choose one",
                    key.value
                ),
            );
        }
        params.insert(
            key.value,
            Param {
                default: p.default.map(|d| d.value),
                required,
                description: p.description.unwrap_or_default(),
            },
        );
    }

    // `{{ params.NAME }}` in `command` elements and `env` values must name declared
    // parameters; `run` scripts are never templated.
    let declared = || {
        if params.is_empty() {
            "the job declares no `params`".to_string()
        } else {
            format!(
                "declared: {}",
                params.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    };
    let mut templates: Vec<(At, String, String)> = Vec::new();
    match (&action, command_at, run_at) {
        (Some(Action::Command(argv)), Some(at), _) => {
            for (i, element) in argv.iter().enumerate() {
                templates.push((at, format!("`command` element {}", i + 1), element.clone()));
            }
        }
        (Some(Action::Script { script, .. }), _, Some(at)) if script.contains("{{") => {
            b.error(at, "`run` scripts are not templated: `{{ }}` is not substituted here")
                .help = Some(
                "use the parameter as \"$JOBS_PARAM_NAME\" in the script, or `{{ params.NAME }}` in a `command` element or an `env` value".into(),
            );
        }
        _ => {}
    }
    for (at, key) in env_at {
        if let Some(value) = env.get(&key) {
            templates.push((at, format!("`env.{key}`"), value.clone()));
        }
    }
    for (at, what, text) in templates {
        match crate::template::placeholders(&text) {
            Err(e) => {
                b.error(at, format!("{what}: {}", e.message));
            }
            Ok(found) => {
                for p in found.iter().filter(|p| !params.contains_key(&p.name)) {
                    b.error(
                        at,
                        format!(
                            "{what} uses `{{{{ params.{} }}}}`, which is not a declared parameter ({})",
                            p.name,
                            declared()
                        ),
                    );
                }
            }
        }
    }

    let webhook = raw.webhook.and_then(|w| {
        let require_timestamp = w.value.require_timestamp.unwrap_or(false);
        let secret = match (w.value.secret_env, w.value.secret_file) {
            (Some(env), None) => {
                if is_env_name(&env.value) {
                    Some(WebhookSecret::SecretEnv(env.value))
                } else {
                    b.error(
                        env.at,
                        format!(
                            "webhook.secret_env `{}` is not a valid environment variable name",
                            env.value
                        ),
                    );
                    None
                }
            }
            (None, Some(file)) if !file.value.trim().is_empty() => {
                Some(WebhookSecret::SecretFile(file.value))
            }
            (None, Some(file)) => {
                b.error(file.at, "webhook.secret_file is empty");
                None
            }
            _ => {
                b.error(
                    w.at,
                    "a webhook needs exactly one of `secret_env: VAR` or `secret_file: PATH`",
                );
                None
            }
        }?;
        Some(Webhook {
            secret,
            require_timestamp,
        })
    });

    let repeat = raw
        .repeat
        .and_then(|r| match (r.value.times, r.value.until) {
            (Some(times), None) if times.value >= 1 => Some(Repeat::Times(times.value)),
            (Some(times), None) => {
                b.error(times.at, "repeat.times must be at least 1");
                None
            }
            (None, Some(until)) if until.value == "success" => Some(Repeat::UntilSuccess),
            (None, Some(until)) => {
                b.error(
                    until.at,
                    format!("repeat.until `{}` is not `success`", until.value),
                );
                None
            }
            _ => {
                b.error(
                    r.at,
                    "repeat needs exactly one of `times: N` or `until: success`",
                );
                None
            }
        });

    let smtp = context.defaults.smtp;
    let on_failure = b.notifications("on_failure", raw.on_failure, smtp);
    let on_success = b.notifications("on_success", raw.on_success, smtp);

    let history = match raw.history {
        None => History::default(),
        Some(h) => {
            let keep_runs = match h.value.keep_runs {
                Some(k) if k.value == 0 => {
                    b.error(k.at, "history.keep_runs must be at least 1");
                    None
                }
                other => other.map(|k| k.value),
            };
            let max_age = b.positive_duration("history.max_age", h.value.max_age);
            History { keep_runs, max_age }
        }
    };

    let output_limit = match raw.output_limit {
        None => DEFAULT_OUTPUT_LIMIT,
        Some(limit) => {
            let parsed = match &limit.value {
                RawSize::Bytes(n) => Ok(ByteSize(*n)),
                RawSize::Text(t) => ByteSize::parse(t),
            };
            match parsed {
                Ok(size) if size.0 > 0 => size,
                Ok(_) => {
                    b.error(limit.at, "output_limit must be larger than 0");
                    DEFAULT_OUTPUT_LIMIT
                }
                Err(message) => {
                    b.error(limit.at, format!("output_limit: {message}"));
                    DEFAULT_OUTPUT_LIMIT
                }
            }
        }
    };

    let mut tags = Vec::new();
    for tag in raw.tags.unwrap_or_default() {
        if tag.value.is_empty() || tag.value.chars().any(|c| c.is_whitespace() || c == ',') {
            b.error(
                tag.at,
                format!(
                    "tag `{}` must be non-empty, without spaces or commas",
                    tag.value
                ),
            );
        } else if !tags.contains(&tag.value) {
            tags.push(tag.value);
        }
    }

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
        }),
        _ => None,
    };
    Parsed {
        spec,
        diagnostics: b.diagnostics,
        references: b.references,
    }
}
