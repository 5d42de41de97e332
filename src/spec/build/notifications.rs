//! `on_failure` and `on_success`: each item exactly one of `webhook`, `slack`, `email`, `run`;
//! `after: N` (a failure streak) only in `on_failure`.

use super::super::raw::{At, Loc, RawEmail, RawNotification};
use super::*;

/// The items of `on_failure` or `on_success` (`field`). `smtp`: whether `jobs.toml` names a
/// mail server, which `email` needs.
pub(super) fn notifications(
    b: &mut Builder,
    field: &str,
    items: Option<Vec<Loc<RawNotification>>>,
    smtp: bool,
) -> Vec<Notification> {
    let mut valid = Vec::new();
    for (i, item) in items.unwrap_or_default().into_iter().enumerate() {
        let what = format!("{field} item {}", i + 1);
        let Loc { mut value, at } = item;
        let after = value.after.take();
        let action = notify_action(b, &what, value, at, smtp);
        let after = match after {
            Some(n) if field != "on_failure" => {
                b.error(
                    n.at,
                    format!("{what}: `after` is only allowed in `on_failure`, not in `{field}`"),
                )
                .help = Some(
                    "`after: N` waits for the N-th consecutive failure; remove it here".into(),
                );
                None
            }
            Some(n) if n.value == 0 => {
                b.error(n.at, format!("{what}: `after` must be at least 1"));
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

/// The one action of an item written at `at` (`what` names it in messages).
fn notify_action(
    b: &mut Builder,
    what: &str,
    item: RawNotification,
    at: At,
    smtp: bool,
) -> Option<NotifyAction> {
    let RawNotification {
        webhook,
        slack,
        email,
        run,
        after: _,
    } = item;
    let given: Vec<&str> = [
        ("webhook", webhook.is_some()),
        ("slack", slack.is_some()),
        ("email", email.is_some()),
        ("run", run.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, present)| present.then_some(key))
    .collect();
    match (webhook, slack, email, run) {
        (Some(url), None, None, None) => {
            notify_url(b, what, "webhook", &url).then_some(NotifyAction::Webhook(url.value))
        }
        (None, Some(url), None, None) => {
            notify_url(b, what, "slack", &url).then_some(NotifyAction::Slack(url.value))
        }
        (None, None, Some(to), None) => self::email(b, what, to, smtp),
        (None, None, None, Some(script)) if script.value.trim().is_empty() => {
            b.error(script.at, format!("{what}: `run` is empty"));
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
            b.error(at, format!("{what} {has}; it needs exactly one"))
                .help = Some(
                "write `- webhook: URL` (a JSON POST), `- slack: URL` (a Slack-compatible \
                 message), `- email: ADDRESS` or `- run: SCRIPT` (run with `sh -c`)"
                    .into(),
            );
            None
        }
    }
}

/// Whether the URL of a `webhook` or `slack` item (`key`) can be posted to; says why not.
fn notify_url(b: &mut Builder, what: &str, key: &str, url: &Loc<String>) -> bool {
    let Err(problem) = check_http_url(&url.value) else {
        return true;
    };
    let example = match key {
        "slack" => "https://hooks.slack.com/services/T000/B000/XXXX",
        _ => "http://127.0.0.1:9000/hook",
    };
    b.error(
        url.at,
        format!(
            "{what}: {key} `{}` {problem}; expected an http:// or https:// URL",
            url.value
        ),
    )
    .help = Some(format!("write a URL such as {example}"));
    false
}

/// The addresses of an `email` item: each must be an address, and `jobs.toml` must name a
/// mail server (`smtp`).
fn email(b: &mut Builder, what: &str, to: Loc<RawEmail>, smtp: bool) -> Option<NotifyAction> {
    let addresses: Vec<Loc<String>> = match to.value {
        RawEmail::One(address) => vec![Loc {
            value: address,
            at: to.at,
        }],
        RawEmail::List(list) if list.is_empty() => {
            b.error(to.at, format!("{what}: `email` is an empty list"))
                .help = Some("write `email: ops@example.com` or a list of addresses".into());
            return None;
        }
        RawEmail::List(list) => list,
    };
    let mut ok = true;
    for address in &addresses {
        if let Err(e) = address.value.trim().parse::<lettre::Address>() {
            ok = false;
            b.error(
                address.at,
                format!(
                    "{what}: email `{}` is not an address ({e}); expected one such as ops@example.com",
                    address.value
                ),
            );
        }
    }
    // A recorded revision keeps its `email` when `[smtp]` is gone: sending it fails, loudly.
    if ok && !smtp && b.limits == Limits::Refuse {
        b.error(
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
