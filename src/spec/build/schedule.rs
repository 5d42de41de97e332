//! `schedule`: a cron string, or a map with exactly one of `cron`, `every`, `at`, `after`.

use jiff::Timestamp;

use super::super::raw::{At, Loc, RawSchedule, RawScheduleMap, RawTime};
use super::*;
use crate::cron::CronExpr;
use crate::schedule::{AtTime, resolve_time};

/// The job's schedule (`Manual` when there is none). `tz` is the zone `at` and `start_at` are
/// read in; an `at` before `now` is a warning.
pub(super) fn schedule(
    b: &mut Builder,
    raw: Option<Loc<RawSchedule>>,
    tz: &TimeZone,
    now: Timestamp,
) -> Option<Schedule> {
    let Some(Loc { value, at }) = raw else {
        return Some(Schedule::Manual);
    };
    let map = match value {
        RawSchedule::Cron(expr) => return cron(b, &Loc { value: expr, at }).map(Schedule::Cron),
        RawSchedule::Map(map) => map,
    };
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
            "write exactly one of `cron: EXPR`, `every: DURATION`, `at: TIME`, `after: [JOB, ...]`"
                .into(),
        );
        return None;
    }
    if let Some(start) = map.start_at.as_ref().filter(|_| map.every.is_none()) {
        b.error(start.at, "`start_at` only applies to `every`");
        return None;
    }
    one_kind(b, map, at, tz, now)
}

/// The one kind a schedule map names (checked: exactly one is given).
fn one_kind(
    b: &mut Builder,
    map: RawScheduleMap,
    at: At,
    tz: &TimeZone,
    now: Timestamp,
) -> Option<Schedule> {
    if let Some(expr) = map.cron {
        cron(b, &expr).map(Schedule::Cron)
    } else if let Some(every) = map.every {
        self::every(b, every, map.start_at.as_ref(), tz)
    } else if let Some(at_value) = map.at {
        let at_time = time(b, "at", &at_value, tz);
        if let Some(t) = &at_time
            && t.instant <= now
        {
            b.warning(at_value.at, super::super::past_at_message(&t.text));
        }
        at_time.map(Schedule::At)
    } else {
        after(b, map.after.unwrap_or_default(), at)
    }
}

fn cron(b: &mut Builder, expr: &Loc<String>) -> Option<CronExpr> {
    match CronExpr::parse(&expr.value) {
        Ok(c) => Some(c),
        Err(e) => {
            let position = match e.offset {
                Some(o) => b.position_within(expr.at, o),
                None => b.position(expr.at),
            };
            let mut d =
                Diagnostic::error(b.path, format!("invalid cron expression: {}", e.message))
                    .at(position);
            d.help = e.help;
            b.push(d);
            None
        }
    }
}

/// `every: DURATION`, at least [`MIN_EVERY`], counted from `start_at` when given.
fn every(
    b: &mut Builder,
    every: Loc<String>,
    start_at: Option<&Loc<RawTime>>,
    tz: &TimeZone,
) -> Option<Schedule> {
    let every_at = every.at;
    let interval = b.positive_duration("every", Some(every)).and_then(|d| {
        b.at_least(
            "every",
            every_at,
            d,
            MIN_EVERY,
            "each fire is a run in the ledger; for work more often than that, loop inside one long-running run",
        )
    });
    let start_at = start_at.map(|s| time(b, "start_at", s, tz));
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
}

/// A time (`at`, `start_at`) read in the job's zone.
fn time(b: &mut Builder, field: &str, value: &Loc<RawTime>, tz: &TimeZone) -> Option<AtTime> {
    match resolve_time(&value.value.0, tz) {
        Ok(t) => Some(t),
        Err(e) => {
            b.error(value.at, format!("{field}: {e}"));
            None
        }
    }
}

/// `after: [JOB, ...]`: at least one job, each a valid name (and a reference to check).
fn after(b: &mut Builder, after: Vec<Loc<String>>, at: At) -> Option<Schedule> {
    if after.is_empty() {
        b.error(at, "`after` lists no jobs");
        return None;
    }
    let names: Vec<Option<JobName>> = after
        .iter()
        .map(|n| {
            let name = b.job_name("after", n)?;
            b.reference("after", &name, n.at);
            Some(name)
        })
        .collect();
    names
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(Schedule::After)
}
