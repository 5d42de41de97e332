//! The job listing's filters, sort and page (`GET /v1/jobs`, the dashboard's jobs page),
//! decided on ledger rows without I/O. The API reads the runs (counts, last run) of the rows
//! a page shows only, so a page costs the same on a ledger of any size.

use std::collections::HashMap;
use std::str::FromStr;

use jiff::{Timestamp, Zoned};

use super::{next_fires_in, schedule_kind, state_of};
use crate::ledger::JobRow;
use crate::schedule::Schedule;

/// The states a listing can be filtered on: the ledger's, and `failing`.
pub const STATES: [&str; 7] = [
    "active",
    "paused",
    "disabled",
    "blocked",
    "completed",
    "failing",
    "removed",
];

/// Which jobs a listing keeps: every condition given must hold. Removed jobs are kept only
/// when `state` asks for them.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub tag: Option<String>,
    pub enabled: Option<bool>,
    /// `cron`, `every`, `at`, `after` or `manual`.
    pub kind: Option<String>,
    /// One of [`STATES`], as [`shown_state`] tells it.
    pub state: Option<String>,
    /// Found, ignoring case, in the name, description, schedule, a tag, or the command's
    /// words (in `commands`).
    pub text: Option<String>,
    /// Each job's command text (from [`command_text`]), by name: what `text` also searches.
    /// Read only when `text` is given.
    pub commands: HashMap<String, String>,
}

/// A listing's order; ties are broken by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Name,
    /// Soonest next fire first; jobs that will not fire last.
    Next,
    /// Longest failure streak first.
    Failure,
    /// The most recent failure first (`JobRow::last_failed_at`); jobs that never failed last.
    LastFailure,
    /// The best match of the filter's text first ([`Rank`]): name hits, then tags, then the
    /// description, the schedule, the command.
    Relevance,
}

/// Where a search's text was found, best first: what orders a search's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// The whole name.
    Name,
    /// The name's beginning.
    NamePrefix,
    /// Inside the name.
    NameContains,
    Tag,
    Description,
    Schedule,
    Command,
}

/// Where `text` (lower case) is found in a job, best place first; `None` when nowhere.
pub fn rank(row: &JobRow, text: &str, command: Option<&str>) -> Option<Rank> {
    let has = |s: &str| s.to_lowercase().contains(text);
    let name = row.name.to_lowercase();
    if name == text {
        Some(Rank::Name)
    } else if name.starts_with(text) {
        Some(Rank::NamePrefix)
    } else if name.contains(text) {
        Some(Rank::NameContains)
    } else if row.tags.iter().any(|t| has(t)) {
        Some(Rank::Tag)
    } else if has(&row.description) {
        Some(Rank::Description)
    } else if has(&row.schedule.to_string()) {
        Some(Rank::Schedule)
    } else if command.is_some_and(has) {
        Some(Rank::Command)
    } else {
        None
    }
}

/// Each active job's command text ([`command_text`]), by name, for a search.
///
/// # Errors
///
/// On a ledger failure.
pub fn command_texts(l: &crate::ledger::Ledger) -> crate::ledger::Result<HashMap<String, String>> {
    Ok(l.active_definitions()?
        .into_iter()
        .map(|(name, definition)| (name, command_text(&definition)))
        .collect())
}

/// The command of a recorded definition (its normal form, [`crate::spec::normal`]): the
/// `command:` list's words, the `run:` script, or the lines of an `http:` request (method,
/// URL, headers, body) or a `prompt:` (model, messages), as one line of text to search.
pub fn command_text(definition: &str) -> String {
    let mut words = Vec::new();
    let mut inside = false;
    for line in definition.lines() {
        let top = line.starts_with(|c: char| c.is_ascii_alphabetic());
        if top {
            inside = false;
            if let Some(rest) = line
                .strip_prefix("command:")
                .or_else(|| line.strip_prefix("run:"))
                .or_else(|| line.strip_prefix("http:"))
                .or_else(|| line.strip_prefix("prompt:"))
            {
                inside = true;
                let rest = rest.trim();
                if !rest.is_empty() && rest != "|" && rest != "|-" && rest != ">" {
                    words.push(rest.trim_matches(['\'', '"']).to_string());
                }
            }
            continue;
        }
        if inside {
            let item = line.trim().trim_start_matches("- ");
            words.push(item.trim_matches(['\'', '"']).to_string());
        }
    }
    words.join(" ")
}

impl FromStr for Sort {
    type Err = String;

    fn from_str(s: &str) -> Result<Sort, String> {
        match s {
            "name" => Ok(Sort::Name),
            "next" => Ok(Sort::Next),
            "failure" => Ok(Sort::Failure),
            "last_failure" => Ok(Sort::LastFailure),
            "relevance" => Ok(Sort::Relevance),
            other => Err(format!(
                "sort `{other}` is not one of name, next, failure, last_failure, relevance"
            )),
        }
    }
}

/// The state an operator is shown: the ledger's ([`state_of`]), or `failing` for an active job
/// whose last final runs failed.
pub fn shown_state(row: &JobRow) -> &'static str {
    match state_of(row) {
        "active" if row.failure_streak > 0 => "failing",
        state => state,
    }
}

impl Filter {
    /// Whether `row` is kept.
    pub fn keeps(&self, row: &JobRow) -> bool {
        let state = shown_state(row);
        if !row.active && self.state.as_deref() != Some("removed") {
            return false;
        }
        self.state.as_deref().is_none_or(|s| s == state)
            && self.tag.as_ref().is_none_or(|t| row.tags.contains(t))
            && self.enabled.is_none_or(|e| row.enabled == e)
            && self
                .kind
                .as_deref()
                .is_none_or(|k| k == schedule_kind(&row.schedule))
            && self
                .text
                .as_deref()
                .is_none_or(|t| self.rank(row, t).is_some())
    }

    /// Where the filter's text is found in `row`.
    fn rank(&self, row: &JobRow, text: &str) -> Option<Rank> {
        rank(
            row,
            &text.to_lowercase(),
            self.commands.get(&row.name).map(String::as_str),
        )
    }
}

/// Next fires at one instant, each distinct cron expression in each zone computed once: of
/// 10,000 jobs most share a few hundred (`0 3 * * *` in `UTC`), and sorting by next fire
/// needs every kept job's.
pub struct NextFires {
    now: Timestamp,
    cron: HashMap<(String, String), Option<Zoned>>,
}

impl NextFires {
    pub fn new(now: Timestamp) -> NextFires {
        NextFires {
            now,
            cron: HashMap::new(),
        }
    }

    /// `row`'s next fire after the instant, in its zone.
    pub fn of(&mut self, row: &JobRow) -> Option<Zoned> {
        let compute = || next_fires_in(row, self.now, 1).into_iter().next();
        match &row.schedule {
            // A cron job's fires depend on its expression and zone alone (not its anchor),
            // once it is active, enabled and not completed.
            Schedule::Cron(cron) if row.active && row.enabled && row.completed_at.is_none() => {
                let zone = super::zone_name(&row.timezone).to_string();
                let key = (cron.as_str().to_string(), zone);
                if let Some(next) = self.cron.get(&key) {
                    return next.clone();
                }
                let next = compute();
                self.cron.insert(key, next.clone());
                next
            }
            _ => compute(),
        }
    }
}

/// The indexes of the rows `filter` keeps, in `sort`'s order.
pub fn select(rows: &[JobRow], filter: &Filter, sort: Sort, next: &mut NextFires) -> Vec<usize> {
    let mut kept: Vec<usize> = (0..rows.len())
        .filter(|&i| filter.keeps(&rows[i]))
        .collect();
    let by_name = |a: &usize, b: &usize| rows[*a].name.cmp(&rows[*b].name);
    match sort {
        Sort::Name => kept.sort_by(by_name),
        Sort::Relevance => {
            let text = filter.text.as_deref().unwrap_or_default();
            let ranks: HashMap<usize, Option<Rank>> = kept
                .iter()
                .map(|&i| (i, filter.rank(&rows[i], text)))
                .collect();
            kept.sort_by(|a, b| ranks[a].cmp(&ranks[b]).then_with(|| by_name(a, b)));
        }
        Sort::LastFailure => kept.sort_by(|a, b| {
            // Newest first; `None` (never failed) after every instant.
            rows[*b]
                .last_failed_at
                .cmp(&rows[*a].last_failed_at)
                .then_with(|| by_name(a, b))
        }),
        Sort::Failure => kept.sort_by(|a, b| {
            rows[*b]
                .failure_streak
                .cmp(&rows[*a].failure_streak)
                .then_with(|| by_name(a, b))
        }),
        Sort::Next => {
            let at: HashMap<usize, Option<Timestamp>> = kept
                .iter()
                .map(|&i| (i, next.of(&rows[i]).map(|z| z.timestamp())))
                .collect();
            // `None` (never fires again) after every instant.
            kept.sort_by(|a, b| {
                match (at[a], at[b]) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
                .then_with(|| by_name(a, b))
            });
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commands_text_is_read_from_the_normal_form() {
        for (definition, text) in [
            (
                "schedule:\n  cron: 0 3 * * *\ncommand:\n- pg_dump\n- --format=custom\n- app\ntags:\n- db\n",
                "pg_dump --format=custom app",
            ),
            (
                "run: |\n  rsync -a /src /dst\n  echo done\n",
                "rsync -a /src /dst echo done",
            ),
            ("run: 'true'\ntimeout: 1m\n", "true"),
            (
                "http:\n  method: POST\n  url: https://warehouse.internal/refresh\nretry:\n  attempts: 2\n",
                "method: POST url: https://warehouse.internal/refresh",
            ),
            (
                "prompt:\n  model: gpt-4o-mini\n  prompt: Summarise the incidents\n",
                "model: gpt-4o-mini prompt: Summarise the incidents",
            ),
            ("schedule: manual\n", ""),
        ] {
            assert_eq!(command_text(definition), text, "{definition}");
        }
    }
    use crate::views::tests::row;
    use serde_json::json;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rows() -> Vec<JobRow> {
        let mut daily = row("daily", json!({"cron": "0 3 * * *"}), "Europe/Berlin");
        daily.tags = vec!["etl".into()];
        daily.description = "Nightly Export".into();
        let mut hourly = row("hourly", json!({"cron": "0 * * * *"}), "UTC");
        hourly.failure_streak = 2;
        let mut paused = row("paused", json!({"cron": "0 * * * *"}), "UTC");
        paused.paused = Some(crate::ledger::Pause {
            by: "ops".into(),
            at: t("2026-03-01T00:00:00Z"),
            reason: None,
        });
        let mut gone = row("gone", json!({"cron": "0 * * * *"}), "UTC");
        gone.active = false;
        let manual = row("manual", json!({"manual": true}), "UTC");
        let mut off = row("off", json!({"every": "5m"}), "UTC");
        off.enabled = false;
        vec![daily, hourly, paused, gone, manual, off]
    }

    fn names<'a>(rows: &'a [JobRow], filter: &Filter, sort: Sort) -> Vec<&'a str> {
        let mut next = NextFires::new(t("2026-03-10T12:30:00Z"));
        select(rows, filter, sort, &mut next)
            .into_iter()
            .map(|i| rows[i].name.as_str())
            .collect()
    }

    #[test]
    fn filters_read_as_a_table() {
        let rows = rows();
        let state = |s: &str| Filter {
            state: Some(s.into()),
            ..Filter::default()
        };
        let cases: [(&str, Filter, &[&str]); 9] = [
            (
                "none",
                Filter::default(),
                &["daily", "hourly", "manual", "off", "paused"],
            ),
            ("failing", state("failing"), &["hourly"]),
            ("paused", state("paused"), &["paused"]),
            ("removed only on asking", state("removed"), &["gone"]),
            ("disabled", state("disabled"), &["off"]),
            (
                "active is not failing",
                state("active"),
                &["daily", "manual"],
            ),
            (
                "tag",
                Filter {
                    tag: Some("etl".into()),
                    ..Filter::default()
                },
                &["daily"],
            ),
            (
                "text in the description, any case",
                Filter {
                    text: Some("nightly".into()),
                    ..Filter::default()
                },
                &["daily"],
            ),
            (
                "kind",
                Filter {
                    kind: Some("every".into()),
                    ..Filter::default()
                },
                &["off"],
            ),
        ];
        for (what, filter, want) in cases {
            assert_eq!(names(&rows, &filter, Sort::Name), want, "{what}");
        }
    }

    #[test]
    fn sorts_by_next_fire_then_name_and_by_streak() {
        let rows = rows();
        // At 12:30 UTC: the hourly ones (a paused job keeps its schedule) fire at 13:00, the
        // Berlin daily at 02:00 UTC tomorrow; the manual and the disabled ones never, last.
        assert_eq!(
            names(&rows, &Filter::default(), Sort::Next),
            ["hourly", "paused", "daily", "manual", "off"]
        );
        assert_eq!(
            names(&rows, &Filter::default(), Sort::Failure),
            ["hourly", "daily", "manual", "off", "paused"]
        );
        assert_eq!("next".parse::<Sort>(), Ok(Sort::Next));
        assert!(
            "soon"
                .parse::<Sort>()
                .unwrap_err()
                .contains("name, next, failure, last_failure")
        );
        // The last failure, newest first, then the jobs that never failed, by name.
        let mut rows = rows;
        rows[5].last_failed_at = Some(t("2026-03-09T00:00:00Z")); // off
        rows[4].last_failed_at = Some(t("2026-03-10T00:00:00Z")); // manual
        assert_eq!(
            names(&rows, &Filter::default(), Sort::LastFailure),
            ["manual", "off", "daily", "hourly", "paused"]
        );
    }

    #[test]
    fn one_cron_and_zone_is_computed_once_and_agrees() {
        let rows = rows();
        let now = t("2026-03-10T12:30:00Z");
        let mut next = NextFires::new(now);
        for r in &rows {
            assert_eq!(
                next.of(r),
                next_fires_in(r, now, 1).into_iter().next(),
                "{}",
                r.name
            );
        }
        // hourly and paused share `0 * * * *` in UTC.
        assert_eq!(next.cron.len(), 2);
    }
}
