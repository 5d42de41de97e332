//! Schedules: when a job fires, as pure functions of the definition, an anchor and `now`.
//!
//! A job fires by cron (see `cron`), at a fixed interval (`every`, counted from `start_at` or
//! from the moment the schedule was applied: its anchor), once (`at`), after other jobs
//! (`after`, run by the daemon), or only when triggered (manual). This module computes next
//! fires and explains DST effects for the plan; it never reads the clock.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::cron::CronExpr;
use crate::duration::Duration;
use crate::name::JobName;

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// Fires only when triggered.
    Manual,
    Cron(CronExpr),
    Every {
        interval: Duration,
        start_at: Option<AtTime>,
    },
    At(AtTime),
    After(Vec<JobName>),
}

/// A moment as written (kept for display and normalisation) and the instant it denotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtTime {
    /// RFC 3339 with an offset, or a local date-time read in the job's time zone.
    pub text: String,
    pub instant: Timestamp,
}

impl Schedule {
    /// The kind, as the API and `--output json` name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::Manual => "manual",
            Schedule::Cron(_) => "cron",
            Schedule::Every { .. } => "every",
            Schedule::At(_) => "at",
            Schedule::After(_) => "after",
        }
    }

    /// Whether the fire times depend on the job's time zone.
    pub fn uses_timezone(&self) -> bool {
        matches!(self, Schedule::Cron(_) | Schedule::At(_))
    }

    /// The next `n` fires strictly after `after`. `anchor` is when an `every` schedule without
    /// `start_at` started counting (when it was applied).
    pub fn next_fires(
        &self,
        tz: &TimeZone,
        anchor: Timestamp,
        after: Timestamp,
        n: usize,
    ) -> Vec<Timestamp> {
        match self {
            Schedule::Manual | Schedule::After(_) => Vec::new(),
            Schedule::Cron(cron) => cron.upcoming(tz, after, n),
            Schedule::At(at) => {
                if at.instant > after && n > 0 {
                    vec![at.instant]
                } else {
                    Vec::new()
                }
            }
            Schedule::Every { interval, start_at } => {
                let step = interval.as_signed();
                let first = match start_at {
                    Some(start) => start.instant,
                    None => match anchor.checked_add(step) {
                        Ok(t) => t,
                        Err(_) => return Vec::new(),
                    },
                };
                let step_ns = step.as_nanos();
                let skipped = if first > after {
                    0
                } else {
                    after.duration_since(first).as_nanos() / step_ns + 1
                };
                (0..n as i128)
                    .map_while(|k| {
                        let offset = SignedDuration::try_from_nanos_i128(step_ns * (skipped + k))?;
                        first.checked_add(offset).ok()
                    })
                    .collect()
            }
        }
    }

    /// Plain-English notes on how DST transitions in `[from, until)` change this schedule's
    /// fires, e.g. a fixed time that does not exist on the day clocks go forward.
    pub fn dst_notes(&self, tz: &TimeZone, from: Timestamp, until: Timestamp) -> Vec<String> {
        let Schedule::Cron(cron) = self else {
            return Vec::new();
        };
        let mut notes = Vec::new();
        for transition in tz.following(from).take_while(|t| t.timestamp() < until) {
            let at = transition.timestamp();
            let Ok(before) = at.checked_sub(SignedDuration::from_nanos(1)) else {
                continue;
            };
            let old = tz.to_offset(before);
            let new = transition.offset();
            let shift = new.duration_since(old);
            let minutes = shift.as_mins().abs();
            // Wall-clock minutes that are skipped (gap) or repeated (fold).
            let (start, kind): (DateTime, _) = if shift.is_positive() {
                (old.to_datetime(at), "gap")
            } else {
                (new.to_datetime(at), "fold")
            };
            let affected: Vec<DateTime> = (0..minutes)
                .filter_map(|m| start.checked_add(m.minutes()).ok())
                .filter(|dt| cron.matches(*dt))
                .collect();
            let Some(first) = affected.first() else {
                continue;
            };
            let day = first.date();
            let time = first.time().strftime("%H:%M");
            let more = if affected.len() > 1 {
                format!(" (and {} more)", affected.len() - 1)
            } else {
                String::new()
            };
            let note = match (kind, cron.is_wildcard()) {
                ("gap", false) => {
                    let fire = at.to_zoned(tz.clone());
                    format!(
                        "{day}: {time}{more} does not exist (clocks go forward); fires once at {}",
                        fire.strftime("%H:%M %Z")
                    )
                }
                ("gap", true) => format!(
                    "{day}: {time}{more} does not exist (clocks go forward); those fires are skipped"
                ),
                (_, false) => format!(
                    "{day}: {time}{more} happens twice (clocks go back); fires once, at the first"
                ),
                (_, true) => {
                    format!("{day}: {time}{more} happens twice (clocks go back); fires at both")
                }
            };
            notes.push(note);
        }
        notes
    }

    /// The canonical JSON form stored in the ledger.
    pub fn to_json(&self) -> Value {
        match self {
            Schedule::Manual => json!({ "manual": true }),
            Schedule::Cron(c) => json!({ "cron": c.as_str() }),
            Schedule::Every { interval, start_at } => match start_at {
                Some(s) => {
                    json!({ "every": interval.to_string(), "start_at": s.text, "start_instant": s.instant })
                }
                None => json!({ "every": interval.to_string() }),
            },
            Schedule::At(at) => json!({ "at": at.text, "instant": at.instant }),
            Schedule::After(jobs) => json!({ "after": jobs }),
        }
    }

    /// Reads [`Schedule::to_json`]'s form back.
    ///
    /// # Errors
    ///
    /// When the stored form is not one this version wrote.
    pub fn from_json(value: &Value) -> Result<Schedule, StoredScheduleError> {
        use StoredScheduleError as E;
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        let instant = |key: &'static str| -> Result<Timestamp, StoredScheduleError> {
            text(key)
                .ok_or(E::Missing(key))?
                .parse()
                .map_err(|e| E::BadTime(key, e))
        };
        if let Some(expr) = text("cron") {
            return CronExpr::parse(expr).map(Schedule::Cron).map_err(E::Cron);
        }
        if let Some(every) = text("every") {
            let interval = Duration::parse(every)?;
            let start_at = match text("start_at") {
                Some(t) => Some(AtTime {
                    text: t.to_string(),
                    instant: instant("start_instant")?,
                }),
                None => None,
            };
            return Ok(Schedule::Every { interval, start_at });
        }
        if let Some(at) = text("at") {
            return Ok(Schedule::At(AtTime {
                text: at.to_string(),
                instant: instant("instant")?,
            }));
        }
        if let Some(after) = value.get("after") {
            return serde_json::from_value(after.clone())
                .map(Schedule::After)
                .map_err(|e| E::After(e.to_string()));
        }
        if value.get("manual").is_some() {
            return Ok(Schedule::Manual);
        }
        Err(E::Unknown(value.to_string()))
    }
}

/// Why a stored schedule (the ledger's JSON form) cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoredScheduleError {
    #[error(transparent)]
    Cron(#[from] crate::cron::CronError),
    #[error(transparent)]
    Every(#[from] crate::duration::DurationError),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{0}: {1}")]
    BadTime(&'static str, jiff::Error),
    #[error("{0}")]
    After(String),
    #[error("unknown stored schedule {0}")]
    Unknown(String),
}

impl fmt::Display for Schedule {
    /// The short form shown in lists: `0 2 * * *`, `every 5m`, `at …`, `after a, b`, `manual`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Manual => f.write_str("manual"),
            Schedule::Cron(c) => f.write_str(c.as_str()),
            Schedule::Every {
                interval,
                start_at: None,
            } => write!(f, "every {interval}"),
            Schedule::Every {
                interval,
                start_at: Some(s),
            } => write!(f, "every {interval} from {}", s.text),
            Schedule::At(at) => write!(f, "at {}", at.text),
            Schedule::After(jobs) => {
                f.write_str("after ")?;
                for (i, j) in jobs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(j.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// Resolves a time as written: RFC 3339 with an offset, or a local date-time in `tz` (a local
/// time in a DST gap resolves to the instant after the gap, in a repeat to the first).
///
/// # Errors
///
/// A [`TimeError`]: the forms accepted, or a time jiff cannot place.
pub fn resolve_time(text: &str, tz: &TimeZone) -> Result<AtTime, TimeError> {
    let trimmed = text.trim();
    let instant = if let Ok(ts) = trimmed.parse::<Timestamp>() {
        ts
    } else {
        let civil: DateTime = trimmed
            .replacen(' ', "T", 1)
            .parse()
            .map_err(|_| TimeError::NotADateTime(text.to_string()))?;
        match tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Gap { after, .. } => {
                let t = after.to_timestamp(civil)?;
                tz.following(t).next().map_or(t, |tr| tr.timestamp())
            }
            _ => tz.to_ambiguous_timestamp(civil).compatible()?,
        }
    };
    Ok(AtTime {
        text: trimmed.to_string(),
        instant,
    })
}

/// Why a time as written cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    #[error(
        "`{0}` is not a date-time; expected RFC 3339 such as 2026-12-24T18:00:00+01:00, or a local time such as 2026-12-24T18:00:00"
    )]
    NotADateTime(String),
    /// Out of jiff's range (the year 9999 and a zone's offset, say).
    #[error("{0}")]
    OutOfRange(#[from] jiff::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn cron(expr: &str) -> Schedule {
        Schedule::Cron(CronExpr::parse(expr).unwrap())
    }

    fn every(interval: &str, start_at: Option<&str>) -> Schedule {
        Schedule::Every {
            interval: Duration::parse(interval).unwrap(),
            start_at: start_at.map(|t| AtTime {
                text: t.to_string(),
                instant: ts(t),
            }),
        }
    }

    fn at(instant: &str) -> Schedule {
        Schedule::At(AtTime {
            text: instant.to_string(),
            instant: ts(instant),
        })
    }

    /// The next three fires of `schedule` in `zone` strictly after `after`, as UTC instants.
    fn check(schedule: &Schedule, zone: &str, anchor: &str, after: &str, expected: &[&str]) {
        let got: Vec<String> = schedule
            .next_fires(&tz(zone), ts(anchor), ts(after), 3)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "{schedule} in {zone} after {after}");
    }

    #[test]
    fn cron_fires_follow_the_zone_across_real_dst_transitions() {
        let anchor = "2026-01-01T00:00:00Z";
        // Berlin springs forward on 2026-03-29 at 02:00 → 03:00: a fixed 02:30 does not exist
        // that day and fires once, right after the gap; the offset changes from +1 to +2.
        check(
            &cron("30 2 * * *"),
            "Europe/Berlin",
            anchor,
            "2026-03-28T12:00:00Z",
            &[
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
                "2026-03-31T00:30:00Z",
            ],
        );
        // New York falls back on 2026-11-01 at 02:00 EDT → 01:00 EST: a fixed 01:30 happens
        // twice and fires once, at the first (EDT).
        check(
            &cron("30 1 * * *"),
            "America/New_York",
            anchor,
            "2026-10-31T12:00:00Z",
            &[
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-03T06:30:00Z",
            ],
        );
        // A wildcard-hour job fires at both 01:30s of the repeated hour.
        check(
            &cron("30 * * * *"),
            "America/New_York",
            anchor,
            "2026-11-01T04:45:00Z",
            &[
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T07:30:00Z",
            ],
        );
        // UTC has no transitions; the instant `after` itself never fires.
        check(
            &cron("0 0 * * *"),
            "UTC",
            anchor,
            "2026-06-01T00:00:00Z",
            &[
                "2026-06-02T00:00:00Z",
                "2026-06-03T00:00:00Z",
                "2026-06-04T00:00:00Z",
            ],
        );
    }

    #[test]
    fn intervals_count_from_the_anchor_or_start_at_and_ignore_the_zone() {
        let anchor = "2026-03-29T00:10:00Z";
        // From the anchor (when it was applied): the first fire is one interval later.
        check(
            &every("15m", None),
            "Europe/Berlin",
            anchor,
            "2026-03-29T00:00:00Z",
            &[
                "2026-03-29T00:25:00Z",
                "2026-03-29T00:40:00Z",
                "2026-03-29T00:55:00Z",
            ],
        );
        // Across Berlin's gap an interval is elapsed time, not wall-clock time.
        check(
            &every("1h", None),
            "Europe/Berlin",
            anchor,
            "2026-03-29T00:30:00Z",
            &[
                "2026-03-29T01:10:00Z",
                "2026-03-29T02:10:00Z",
                "2026-03-29T03:10:00Z",
            ],
        );
        // A fire exactly at `after` is excluded.
        check(
            &every("1h", None),
            "UTC",
            anchor,
            "2026-03-29T01:10:00Z",
            &[
                "2026-03-29T02:10:00Z",
                "2026-03-29T03:10:00Z",
                "2026-03-29T04:10:00Z",
            ],
        );
        // `start_at` in the future is the first fire; in the past it sets the phase.
        let start = Some("2026-04-01T09:00:00Z");
        check(
            &every("1d", start),
            "UTC",
            anchor,
            "2026-03-29T00:30:00Z",
            &[
                "2026-04-01T09:00:00Z",
                "2026-04-02T09:00:00Z",
                "2026-04-03T09:00:00Z",
            ],
        );
        check(
            &every("1d", start),
            "UTC",
            anchor,
            "2026-05-10T10:00:00Z",
            &[
                "2026-05-11T09:00:00Z",
                "2026-05-12T09:00:00Z",
                "2026-05-13T09:00:00Z",
            ],
        );
    }

    #[test]
    fn at_fires_once_if_still_ahead_and_manual_and_after_never_by_time() {
        let anchor = "2026-01-01T00:00:00Z";
        let once = at("2026-12-24T17:00:00Z");
        check(
            &once,
            "UTC",
            anchor,
            "2026-12-01T00:00:00Z",
            &["2026-12-24T17:00:00Z"],
        );
        check(&once, "UTC", anchor, "2026-12-24T17:00:00Z", &[]);
        check(&once, "UTC", anchor, "2027-01-01T00:00:00Z", &[]);
        check(&Schedule::Manual, "UTC", anchor, anchor, &[]);
        let after = Schedule::After(vec![JobName::parse("a").unwrap()]);
        check(&after, "UTC", anchor, anchor, &[]);
    }

    #[test]
    fn local_times_resolve_in_the_zone_with_gaps_moved_forward() {
        let berlin = tz("Europe/Berlin");
        for (text, expected) in [
            ("2026-12-24T18:00:00+01:00", "2026-12-24T17:00:00Z"),
            ("2026-12-24T18:00:00", "2026-12-24T17:00:00Z"),
            ("2026-12-24 18:00:00", "2026-12-24T17:00:00Z"),
            // In the spring gap: the instant the gap ends.
            ("2026-03-29T02:30:00", "2026-03-29T01:00:00Z"),
            // In the autumn fold: the first.
            ("2026-10-25T02:30:00", "2026-10-25T00:30:00Z"),
        ] {
            let t = resolve_time(text, &berlin).unwrap();
            assert_eq!(t.instant.to_string(), expected, "{text}");
        }
        let e = resolve_time("Christmas", &berlin).unwrap_err();
        assert!(matches!(e, TimeError::NotADateTime(_)));
        assert!(
            e.to_string()
                .starts_with("`Christmas` is not a date-time; expected RFC 3339")
        );
    }

    #[test]
    fn the_stored_form_reads_back_and_unknown_forms_say_what_is_missing() {
        for schedule in [
            Schedule::Manual,
            cron("*/5 9-17 * * 1-5"),
            every("90m", None),
            every("1d", Some("2026-04-01T09:00:00Z")),
            at("2026-12-24T17:00:00Z"),
            Schedule::After(vec![
                JobName::parse("a").unwrap(),
                JobName::parse("b").unwrap(),
            ]),
        ] {
            let json = schedule.to_json();
            assert_eq!(Schedule::from_json(&json).unwrap(), schedule, "{json}");
        }
        for (json, message) in [
            (json!({"cron": "61 * * * *"}), "minute"),
            (json!({"every": "soon"}), "`soon` is not a duration"),
            (json!({"at": "x"}), "missing instant"),
            (json!({"at": "x", "instant": "y"}), "instant: "),
            (json!({"after": [1]}), "invalid type"),
            (json!({"hourly": true}), "unknown stored schedule"),
        ] {
            let e = Schedule::from_json(&json).unwrap_err();
            assert!(e.to_string().contains(message), "{json}: {e}");
        }
    }

    #[test]
    fn dst_notes_name_the_day_and_what_happens() {
        let berlin = tz("Europe/Berlin");
        let year = (ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z"));
        let notes = |s: &Schedule| s.dst_notes(&berlin, year.0, year.1);
        assert_eq!(
            notes(&cron("30 2 * * *")),
            [
                "2026-03-29: 02:30 does not exist (clocks go forward); fires once at 03:00 CEST",
                "2026-10-25: 02:30 happens twice (clocks go back); fires once, at the first",
            ]
        );
        assert_eq!(
            notes(&cron("*/30 * * * *")),
            [
                "2026-03-29: 02:00 (and 1 more) does not exist (clocks go forward); those fires are skipped",
                "2026-10-25: 02:00 (and 1 more) happens twice (clocks go back); fires at both",
            ]
        );
        assert!(notes(&cron("0 12 * * *")).is_empty());
        assert!(notes(&every("1h", None)).is_empty());
    }
}
