//! Cron expressions with exactly the semantics of Vixie/Debian cron (crontab(5)).
//!
//! Five fields (minute, hour, day of month, month, day of week); `*`, ranges, steps, lists,
//! month and weekday names in any case (in their own field only); weekday 0 and 7 are both
//! Sunday; the macros `@yearly @annually @monthly @weekly @daily @midnight @hourly`. Seconds,
//! years and Quartz extensions (`L W # ?`) are refused with a message saying so.
//!
//! Two rules that other libraries get wrong, and that this module implements on purpose:
//! - Day matching: when the day-of-month or day-of-week field *starts with* `*`, a day must
//!   match both; otherwise a day matching either fires (`0 0 1 * 1` is the 1st and Mondays).
//! - Time-zone transitions, as Debian cron does them: an expression whose minute or hour field
//!   starts with `*` is a *wildcard* job and fires at every real instant whose local time
//!   matches (nothing in a spring-forward gap, twice in a repeated hour). Any other expression
//!   is *fixed-time*: a time skipped by a gap fires once at the first instant after the gap,
//!   and a repeated time fires once, at its first occurrence.
//!
//! Why not croner for matching: it accepts syntax crontab(5) does not (names across fields,
//! `L`, `#`, years), reports errors without a position, classifies wildcard jobs differently
//! on DST days, and parses in ~20 µs where this parser takes well under one (a `jobs list` of
//! 10,000 jobs parses every expression). croner still writes the English description, and the
//! tests use it as an independent oracle for matching.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// A parsed, valid cron expression that fires at least once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    /// The day-of-month or day-of-week field starts with `*`: a day must match both.
    days_and: bool,
    /// The minute or hour field starts with `*`: fires at every matching real instant.
    wildcard: bool,
}

/// Why an expression is invalid, and where (a character offset into the expression).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    pub message: String,
    pub offset: Option<usize>,
    pub help: Option<String>,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for CronError {}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values from `min` (months) or 0 (weekdays).
    names: &'static [&'static str],
}

const SHAPE: &str = "five fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * 1-5\"";

fn err(message: impl Into<String>, offset: Option<usize>) -> CronError {
    CronError {
        message: message.into(),
        offset,
        help: None,
    }
}

impl CronExpr {
    /// Parses a crontab(5) expression or macro.
    ///
    /// # Errors
    ///
    /// [`CronError`] saying what is wrong, at which character, and what is expected; also for
    /// an expression that can never fire (`0 0 30 2 *`).
    ///
    /// # Example
    ///
    /// ```
    /// let cron = jobs::cron::CronExpr::parse("0 0 1 * mon").unwrap();
    /// let from: jiff::Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
    /// let next = cron.next_after(&jiff::tz::TimeZone::UTC, from).unwrap();
    /// assert_eq!(next.to_string(), "2026-06-08T00:00:00Z"); // a Monday; the 1st ORs with Mondays
    /// ```
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        let trimmed = text.trim();
        let lead = text.len() - text.trim_start().len();
        if trimmed.is_empty() {
            return Err(err(
                format!("empty cron expression; expected {SHAPE}"),
                None,
            ));
        }
        let body = if let Some(name) = trimmed.strip_prefix('@') {
            match name
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .as_str()
            {
                _ if name.split_whitespace().nth(1).is_some()
                    && !name.to_ascii_lowercase().starts_with("every")
                    && !name.to_ascii_lowercase().starts_with("reboot") =>
                {
                    return Err(err(
                        format!("`{trimmed}`: a macro stands alone, with nothing after it"),
                        Some(lead),
                    ));
                }
                m if expand_macro(m).is_some() => expand_macro(m).expect("checked"),
                "reboot" => {
                    return Err(CronError {
                        help: Some(
                            "trigger it by hand (`jobs run`) or from your init system".into(),
                        ),
                        ..err(
                            "`@reboot` is not supported: jobs fires on time, not on boot",
                            Some(lead),
                        )
                    });
                }
                "every" => {
                    return Err(CronError {
                        help: Some("write `schedule: {every: 5m}` for an interval".into()),
                        ..err("`@every` is not a crontab(5) macro", Some(lead))
                    });
                }
                _ => {
                    return Err(CronError {
                        help: Some("the macros are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly".into()),
                        ..err(format!("unknown macro `{trimmed}`"), Some(lead))
                    });
                }
            }
        } else {
            trimmed
        };
        let from_macro = !std::ptr::eq(body, trimmed);
        // Fields with their character offsets in `text`.
        let mut fields: Vec<(usize, &str)> = Vec::with_capacity(5);
        let mut start = None;
        for (i, c) in body.char_indices() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    fields.push((s, &body[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            fields.push((s, &body[s..]));
        }
        let offset_of = |byte: usize| {
            if from_macro {
                Some(lead)
            } else {
                Some(text[..lead + byte].chars().count())
            }
        };
        if fields.len() != 5 {
            let mut e = err(
                format!("{} fields; expected {SHAPE}", fields.len()),
                fields.get(5).map_or(Some(lead), |(o, _)| offset_of(*o)),
            );
            if fields.len() == 6 {
                e.help = Some(
                    "crontab(5) has no seconds or year field; drop the first (seconds) or last (year) field".into(),
                );
            }
            return Err(e);
        }
        let mut sets = [0u64; 5];
        for (index, ((at, field_text), field)) in fields.iter().zip(FIELDS.iter()).enumerate() {
            sets[index] =
                parse_field(field_text, field).map_err(|(message, rel, help)| CronError {
                    message: format!("{} field `{field_text}`: {message}", field.name),
                    offset: offset_of(at + rel),
                    help,
                })?;
        }
        let mut days_of_week = sets[4] as u8;
        if sets[4] & (1 << 7) != 0 {
            days_of_week |= 1; // 7 is Sunday too
        }
        let expr = CronExpr {
            source: text.trim().to_string(),
            minutes: sets[0],
            hours: sets[1] as u32,
            days_of_month: sets[2] as u32,
            months: sets[3] as u16,
            days_of_week: days_of_week & 0x7f,
            days_and: fields[2].1.starts_with('*') || fields[4].1.starts_with('*'),
            wildcard: fields[0].1.starts_with('*') || fields[1].1.starts_with('*'),
        };
        if !expr.fires_ever() {
            return Err(CronError {
                help: Some(
                    "check the day-of-month against the month (April has 30 days, February 29)"
                        .into(),
                ),
                ..err(
                    format!("`{}` can never fire: no month has that day", expr.source),
                    Some(lead),
                )
            });
        }
        Ok(expr)
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether this is a wildcard job in Debian's sense (minute or hour field starts with `*`).
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    fn fires_ever(&self) -> bool {
        // Month and weekday line up again every 28 years; 2000 starts a leap cycle.
        let start = Date::constant(2000, 1, 1);
        (0..28 * 366).any(|d| {
            start
                .checked_add(d.days())
                .is_ok_and(|date| self.matches_date(date))
        })
    }

    fn matches_date(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.days_and {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether a local (wall-clock) time matches, to the minute.
    pub fn matches(&self, at: DateTime) -> bool {
        self.matches_date(at.date())
            && self.hours & (1 << at.hour()) != 0
            && self.minutes & (1 << at.minute()) != 0
    }

    /// The first wall-clock minute strictly after `after` that matches, ignoring time zones.
    pub fn next_civil_after(&self, after: DateTime) -> Option<DateTime> {
        let mut date = after.date();
        let mut from_hour = after.hour() as u32;
        let mut from_minute = after.minute() as u32 + 1;
        // Bounded by the Gregorian cycle: dates and weekdays repeat every 400 years, so an
        // expression that fires at all fires within it. Eight years was not enough: "the 1st of
        // February when it is a Monday" (`* * */7 2 1`) can be eleven years away.
        for _ in 0..(400 * 366) {
            if self.matches_date(date) {
                let mut hour = from_hour;
                while hour < 24 {
                    if self.hours & (1 << hour) != 0 {
                        let minutes = if from_minute >= 60 {
                            0
                        } else {
                            self.minutes & (!0u64 << from_minute)
                        };
                        if minutes != 0 {
                            let minute = minutes.trailing_zeros();
                            let time = Time::new(hour as i8, minute as i8, 0, 0).ok()?;
                            return Some(date.to_datetime(time));
                        }
                    }
                    hour += 1;
                    from_minute = 0;
                }
            }
            date = date.tomorrow().ok()?;
            from_hour = 0;
            from_minute = 0;
        }
        None
    }

    /// The first fire strictly after the instant `after`, in time zone `tz`, with Debian's
    /// rules for DST gaps and repeats (see the module's documentation).
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        // Candidates may come from wall times up to one transition before `after` (a fixed
        // time skipped by a gap fires just after it), so the search starts a little earlier and
        // stops once wall times are past the best candidate by more than any real transition.
        let slack = SignedDuration::from_hours(3);
        // Fast path: far from any transition the zone is a fixed offset, and the next matching
        // wall-clock minute is the answer. This keeps counting a year of minutes (a daemon
        // that was down that long) well under a second.
        let offset = tz.to_offset(after);
        let civil_after = offset.to_datetime(after);
        if let Some(candidate) = self
            .next_civil_after(civil_after)
            .and_then(|c| offset.to_timestamp(c).ok())
        {
            let window_start = after.checked_sub(slack).ok()?;
            let quiet = match tz.following(window_start).next() {
                None => true,
                Some(t) => candidate
                    .checked_add(slack)
                    .is_ok_and(|end| t.timestamp() > end),
            };
            if quiet {
                return Some(candidate);
            }
        }
        let mut civil = tz.to_datetime(after.checked_sub(slack).ok()?);
        let mut best: Option<Timestamp> = None;
        loop {
            civil = self.next_civil_after(civil)?;
            if let Some(b) = best
                && civil > tz.to_datetime(b.checked_add(slack).ok()?)
            {
                break;
            }
            let mut consider = |t: Timestamp| {
                if t > after && best.is_none_or(|b| t < b) {
                    best = Some(t);
                }
            };
            match tz.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => {
                    if let Ok(t) = offset.to_timestamp(civil) {
                        consider(t);
                    }
                }
                AmbiguousOffset::Fold {
                    before,
                    after: later,
                } => {
                    if let Ok(t) = before.to_timestamp(civil) {
                        consider(t);
                    }
                    if self.wildcard
                        && let Ok(t) = later.to_timestamp(civil)
                    {
                        consider(t);
                    }
                }
                AmbiguousOffset::Gap { after: later, .. } => {
                    if !self.wildcard
                        && let Ok(t) = later.to_timestamp(civil)
                        && let Some(transition) = tz.following(t).next()
                    {
                        consider(transition.timestamp());
                    }
                }
            }
        }
        best
    }

    /// The next `n` fires strictly after `after`.
    pub fn upcoming(&self, tz: &TimeZone, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut from = after;
        while out.len() < n {
            match self.next_after(tz, from) {
                Some(t) => {
                    out.push(t);
                    from = t;
                }
                None => break,
            }
        }
        out
    }

    /// A plain-English description, e.g. "At 02:00, on Monday, Tuesday, ... and Friday.".
    pub fn describe(&self) -> String {
        let expanded = self
            .source
            .strip_prefix('@')
            .and_then(|m| expand_macro(&m.to_ascii_lowercase()))
            .map_or_else(|| self.source.clone(), str::to_string);
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .dom_and_dow(self.days_and)
            .build()
            .parse(&expanded)
            .map(|c| c.describe())
            .unwrap_or(expanded)
    }
}

/// The five fields a macro stands for (`name` without `@`, lower case).
fn expand_macro(name: &str) -> Option<&'static str> {
    Some(match name {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Parses one field into a bit set. Errors carry a byte offset into the field and a help.
fn parse_field(text: &str, field: &Field) -> Result<u64, (String, usize, Option<String>)> {
    let mut set = 0u64;
    let mut offset = 0;
    for part in text.split(',') {
        if part.is_empty() {
            return Err((
                "empty list element".into(),
                offset,
                Some("remove the extra `,`".into()),
            ));
        }
        set |= parse_range(part, field).map_err(|(m, rel, help)| (m, offset + rel, help))?;
        offset += part.len() + 1;
    }
    Ok(set)
}

fn parse_range(part: &str, field: &Field) -> Result<u64, (String, usize, Option<String>)> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => {
            let step_at = range.len() + 1;
            let step: u32 = step
                .parse()
                .map_err(|_| (format!("step `{step}` is not a number"), step_at, None))?;
            if step == 0 {
                return Err(("a step of 0 never advances".into(), step_at, None));
            }
            (range, Some(step))
        }
        None => (part, None),
    };
    let (low, high) = if range == "*" {
        (
            field.min,
            if field.name == "day-of-week" {
                6
            } else {
                field.max
            },
        )
    } else if let Some((a, b)) = range.split_once('-') {
        let low = parse_value(a, field).map_err(|(m, h)| (m, 0, h))?;
        let high = parse_value(b, field).map_err(|(m, h)| (m, a.len() + 1, h))?;
        if low > high {
            return Err((
                format!("range `{range}` runs backwards"),
                0,
                Some(format!(
                    "write the smaller value first, e.g. `{b}-{a}` is not allowed but `{high}-{}` is",
                    field.max
                )),
            ));
        }
        (low, high)
    } else {
        let value = parse_value(range, field).map_err(|(m, h)| (m, 0, h))?;
        if step.is_some() {
            return Err((
                format!("a step needs a range: `{value}/…` is not crontab(5)"),
                0,
                Some(format!(
                    "write `{value}-{}/{}` or `*/{}`",
                    field.max,
                    step.unwrap_or(1),
                    step.unwrap_or(1)
                )),
            ));
        }
        (value, value)
    };
    let step = step.unwrap_or(1);
    let mut set = 0u64;
    let mut v = low;
    while v <= high {
        set |= 1 << v;
        v += step;
    }
    Ok(set)
}

fn parse_value(text: &str, field: &Field) -> Result<u32, (String, Option<String>)> {
    if text.is_empty() {
        return Err(("missing value".into(), None));
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        let value: u32 = text
            .parse()
            .map_err(|_| (format!("`{text}` is too large"), None))?;
        if value < field.min || value > field.max {
            return Err((
                format!(
                    "{value} is out of range; expected {}-{}",
                    field.min, field.max
                ),
                None,
            ));
        }
        return Ok(value);
    }
    let lower = text.to_ascii_lowercase();
    if text.contains(['#', '?'])
        || text == "L"
        || text == "LW"
        || (text.len() > 1
            && (text.ends_with('L') || text.ends_with('W'))
            && text[..text.len() - 1].chars().all(|c| c.is_ascii_digit()))
    {
        return Err((
            format!(
                "`{text}` is a Quartz extension (`L`, `W`, `#`, `?`) that crontab(5) does not have"
            ),
            Some("use numbers, names, `*`, `-`, `/` and `,` only".into()),
        ));
    }
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        let base = if field.name == "month" { 1 } else { 0 };
        return Ok(i as u32 + base);
    }
    let other = FIELDS
        .iter()
        .find(|f| f.names.contains(&lower.as_str()))
        .map(|f| format!("`{text}` is a {} name, not a {} value", f.name, field.name));
    let expected = if field.names.is_empty() {
        format!("expected a number {}-{}", field.min, field.max)
    } else {
        format!(
            "expected a number {}-{} or a name ({})",
            field.min,
            field.max,
            field.names.join(", ")
        )
    };
    Err((
        other.unwrap_or_else(|| format!("`{text}` is not a valid {} value", field.name)),
        Some(expected),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next `n` fires of `expr` in `zone` strictly after `from`, as RFC 3339 with offsets.
    fn fires(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let tz = jiff::tz::db().get(zone).unwrap();
        let from: Timestamp = from.parse().unwrap();
        CronExpr::parse(expr)
            .unwrap()
            .upcoming(&tz, from, n)
            .into_iter()
            .map(|t| {
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%dT%H:%M%:z")
                    .to_string()
            })
            .collect()
    }

    fn check(expr: &str, zone: &str, from: &str, expected: &[&str]) {
        assert_eq!(
            fires(expr, zone, from, expected.len()),
            expected,
            "{expr} in {zone} after {from}"
        );
    }

    #[test]
    fn a_day_that_comes_round_once_in_years_is_found() {
        // Found by the croner property test: days 1, 8, 15, 22, 29 of February that are also
        // Mondays; after 2027-02-24 the next is 2038-02-01.
        check(
            "0 0 */7 2 1",
            "UTC",
            "2027-02-24T12:00:00Z",
            &["2038-02-01T00:00+00:00", "2038-02-08T00:00+00:00"],
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_follow_crontab5() {
        // Neither field starts with `*`: either matches (the 1st, and every Monday).
        check(
            "0 0 1 * 1",
            "UTC",
            "2026-05-31T00:00:00Z",
            &[
                "2026-06-01T00:00+00:00",
                "2026-06-08T00:00+00:00",
                "2026-06-15T00:00+00:00",
            ],
        );
        check(
            "0 0 1 * 1",
            "UTC",
            "2026-06-29T12:00:00Z",
            &["2026-07-01T00:00+00:00", "2026-07-06T00:00+00:00"],
        );
        // The day-of-month field starts with `*`: both must match (odd-dated Mondays).
        check(
            "0 0 */2 * 1",
            "UTC",
            "2026-05-31T00:00:00Z",
            &[
                "2026-06-01T00:00+00:00",
                "2026-06-15T00:00+00:00",
                "2026-06-29T00:00+00:00",
                "2026-07-13T00:00+00:00",
            ],
        );
        // `1-31/2` does not start with `*`: either.
        check(
            "0 0 1-31/2 * 1",
            "UTC",
            "2026-05-31T00:00:00Z",
            &[
                "2026-06-01T00:00+00:00",
                "2026-06-03T00:00+00:00",
                "2026-06-05T00:00+00:00",
                "2026-06-07T00:00+00:00",
                "2026-06-08T00:00+00:00",
            ],
        );
        // The day-of-week field starts with `*`: both.
        check(
            "0 0 1 * */3",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-02-01T00:00+00:00",
                "2026-03-01T00:00+00:00",
                "2026-04-01T00:00+00:00",
            ],
        );
        check(
            "0 0 * * 1",
            "UTC",
            "2026-05-31T00:00:00Z",
            &["2026-06-01T00:00+00:00", "2026-06-08T00:00+00:00"],
        );
    }

    #[test]
    fn names_numbers_and_macros() {
        check(
            "0 9 * jan-mar MON-fri",
            "UTC",
            "2026-03-30T12:00:00Z",
            &["2026-03-31T09:00+00:00", "2027-01-01T09:00+00:00"],
        );
        check(
            "0 0 * * 7",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2026-06-07T00:00+00:00"],
        );
        check(
            "0 0 * * 5-7",
            "UTC",
            "2026-06-01T00:00:00Z",
            &[
                "2026-06-05T00:00+00:00",
                "2026-06-06T00:00+00:00",
                "2026-06-07T00:00+00:00",
            ],
        );
        check(
            "@midnight",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2026-06-02T00:00+00:00"],
        );
        check(
            "@weekly",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2026-06-07T00:00+00:00"],
        );
        check(
            "@hourly",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2026-06-01T01:00+00:00"],
        );
        check(
            "@yearly",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2027-01-01T00:00+00:00"],
        );
        check(
            "@ANNUALLY",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2027-01-01T00:00+00:00"],
        );
        check(
            "@monthly",
            "UTC",
            "2026-06-01T00:00:00Z",
            &["2026-07-01T00:00+00:00"],
        );
        check(
            "0 0 29 2 *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00+00:00"],
        );
        check(
            "*/70 * * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-01T01:00+00:00"],
        );
    }

    #[test]
    fn fires_are_strictly_after_from() {
        check(
            "0 2 * * *",
            "UTC",
            "2026-06-01T02:00:00Z",
            &["2026-06-02T02:00+00:00"],
        );
        check(
            "0 2 * * *",
            "UTC",
            "2026-06-01T01:59:59.999Z",
            &["2026-06-01T02:00+00:00"],
        );
    }

    #[test]
    fn fixed_times_in_a_spring_forward_gap_fire_once_after_it() {
        check(
            "30 2 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            &["2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00"],
        );
        check(
            "0,30 2 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            &["2026-03-08T03:00-04:00", "2026-03-09T02:00-04:00"],
        );
        check(
            "30 2-3 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            &[
                "2026-03-08T03:00-04:00",
                "2026-03-08T03:30-04:00",
                "2026-03-09T02:30-04:00",
            ],
        );
        check(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T23:00:00Z",
            &["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"],
        );
        // Lord Howe moves by 30 minutes: 02:00 becomes 02:30.
        check(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T01:30:00Z",
            &["2026-10-04T02:30+11:00", "2026-10-05T02:15+11:00"],
        );
        // Santiago skips midnight: the daily midnight job runs at 01:00.
        check(
            "0 0 * * *",
            "America/Santiago",
            "2026-09-05T16:00:00Z",
            &["2026-09-06T01:00-03:00", "2026-09-07T00:00-03:00"],
        );
        check(
            "0 0 * * 0",
            "America/Santiago",
            "2026-09-05T16:00:00Z",
            &["2026-09-06T01:00-03:00", "2026-09-13T00:00-03:00"],
        );
    }

    #[test]
    fn fixed_times_in_a_fall_back_repeat_fire_once_at_the_first() {
        check(
            "30 1 * * *",
            "America/New_York",
            "2026-11-01T04:00:00Z",
            &["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"],
        );
        check(
            "0,30 1 * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            &[
                "2026-11-01T01:00-04:00",
                "2026-11-01T01:30-04:00",
                "2026-11-02T01:00-05:00",
            ],
        );
        check(
            "30 1-3 * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            &[
                "2026-11-01T01:30-04:00",
                "2026-11-01T02:30-05:00",
                "2026-11-01T03:30-05:00",
            ],
        );
        // From inside the second pass, the first has gone: the next is tomorrow's.
        check(
            "30 1 * * *",
            "America/New_York",
            "2026-11-01T06:10:00Z",
            &["2026-11-02T01:30-05:00"],
        );
        check(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T22:00:00Z",
            &["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
        );
        check(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T01:00:00Z",
            &["2026-04-05T01:45+11:00", "2026-04-06T01:45+10:30"],
        );
        // Santiago repeats 23:00-23:59 on 2026-04-04.
        check(
            "30 23 * * *",
            "America/Santiago",
            "2026-04-04T15:00:00Z",
            &["2026-04-04T23:30-03:00", "2026-04-05T23:30-04:00"],
        );
    }

    #[test]
    fn wildcard_jobs_fire_at_every_real_matching_instant() {
        // Nothing in the gap.
        check(
            "*/15 * * * *",
            "America/New_York",
            "2026-03-08T06:20:00Z",
            &[
                "2026-03-08T01:30-05:00",
                "2026-03-08T01:45-05:00",
                "2026-03-08T03:00-04:00",
            ],
        );
        check(
            "30 * * * *",
            "America/New_York",
            "2026-03-08T06:00:00Z",
            &["2026-03-08T01:30-05:00", "2026-03-08T03:30-04:00"],
        );
        // Twice in the repeat.
        check(
            "*/15 * * * *",
            "America/New_York",
            "2026-11-01T05:20:00Z",
            &[
                "2026-11-01T01:30-04:00",
                "2026-11-01T01:45-04:00",
                "2026-11-01T01:00-05:00",
                "2026-11-01T01:15-05:00",
            ],
        );
        check(
            "30 * * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            &[
                "2026-11-01T01:30-04:00",
                "2026-11-01T01:30-05:00",
                "2026-11-01T02:30-05:00",
            ],
        );
        check(
            "*/30 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:50:00Z",
            &[
                "2026-10-25T02:00+02:00",
                "2026-10-25T02:30+02:00",
                "2026-10-25T02:00+01:00",
            ],
        );
        check(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T14:20:00Z",
            &[
                "2026-04-05T01:30+11:00",
                "2026-04-05T01:45+11:00",
                "2026-04-05T01:30+10:30",
            ],
        );
        check(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-10-03T15:10:00Z",
            &["2026-10-04T01:45+10:30", "2026-10-04T02:30+11:00"],
        );
        check(
            "* 0 * * *",
            "America/Santiago",
            "2026-09-06T03:58:00Z",
            &["2026-09-07T00:00-03:00"],
        );
    }

    fn rejects(expr: &str, message: &str, offset: Option<usize>) {
        let e = CronExpr::parse(expr).unwrap_err();
        assert!(
            e.message.contains(message) || e.help.as_deref().is_some_and(|h| h.contains(message)),
            "{expr}: {e:?}"
        );
        assert_eq!(e.offset, offset, "{expr}: {e:?}");
    }

    #[test]
    fn invalid_expressions_are_rejected_with_a_position() {
        rejects("", "empty cron expression", None);
        rejects("0 2 * *", "4 fields", Some(0));
        rejects("0 0 2 * * *", "no seconds or year field", Some(10));
        rejects("60 * * * *", "60 is out of range; expected 0-59", Some(0));
        rejects("0 24 * * *", "out of range; expected 0-23", Some(2));
        rejects("0 0 0 * *", "out of range; expected 1-31", Some(4));
        rejects("0 0 * 13 *", "expected 1-12", Some(6));
        rejects("0 0 * * 8", "expected 0-7", Some(8));
        rejects("0 0 L * *", "Quartz extension", Some(4));
        rejects("0 0 15W * *", "Quartz extension", Some(4));
        rejects("0 0 * * 5#2", "Quartz extension", Some(8));
        rejects("0 0 ? * 1", "Quartz extension", Some(4));
        rejects("0 0 * * 5L", "Quartz extension", Some(8));
        rejects("*/0 * * * *", "step of 0", Some(2));
        rejects("5/10 * * * *", "a step needs a range", Some(0));
        rejects("0 5-1 * * *", "runs backwards", Some(2));
        rejects("0 0 1,,2 * *", "empty list element", Some(6));
        rejects("0 0 * * jan", "month name, not a day-of-week", Some(8));
        rejects("0 0 * mon *", "day-of-week name, not a month", Some(6));
        rejects("0 0 * * monday", "not a valid day-of-week", Some(8));
        rejects("0 0 30 2 *", "can never fire", Some(0));
        rejects("0 0 31 4,6,9,11 *", "can never fire", Some(0));
        rejects("@reboot", "not supported", Some(0));
        rejects("@every 5m", "interval", Some(0));
        rejects("@fortnightly", "unknown macro", Some(0));
        rejects("  0 0 * * x", "not a valid day-of-week", Some(10));
    }

    #[test]
    fn descriptions_are_plain_english() {
        let d = CronExpr::parse("0 2 * * 1-5").unwrap().describe();
        assert!(d.starts_with("At 02:00"), "{d}");
        assert!(d.contains("Monday") && d.contains("Friday"), "{d}");
        let d = CronExpr::parse("@daily").unwrap().describe();
        assert!(d.contains("00:00"), "{d}");
    }

    proptest::proptest! {
        /// croner, used as an independent oracle, agrees on wall-clock matching (UTC, so no
        /// DST rule is involved) for expressions both accept.
        #[test]
        fn matching_agrees_with_croner(
            minute in "(\\*|[0-5]?[0-9]|\\*/[1-9]|[0-9]-[1-5][0-9])",
            hour in "(\\*|1?[0-9]|\\*/[1-5]|[0-9]-1[0-9])",
            dom in "(\\*|[1-9]|1[0-9]|\\*/[2-9]|[1-9]-2[0-9]|1-31/2)",
            month in "(\\*|[1-9]|1[0-2]|\\*/[2-4])",
            dow in "(\\*|[0-6]|\\*/[2-3]|[1-2]-[3-5])",
            start in 1_700_000_000i64..1_900_000_000i64,
        ) {
            let expr = format!("{minute} {hour} {dom} {month} {dow}");
            let Ok(ours) = CronExpr::parse(&expr) else { return Ok(()); };
            let theirs = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .year(croner::parser::Year::Disallowed)
                .dom_and_dow(dom.starts_with('*') || dow.starts_with('*'))
                .build()
                .parse(&expr)
                .unwrap();
            let from = Timestamp::from_second(start).unwrap();
            let civil = TimeZone::UTC.to_datetime(from);
            let want = theirs.find_next_occurrence(&civil, false).ok();
            let got = ours.next_civil_after(civil);
            proptest::prop_assert_eq!(got, want, "{}", expr);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
            let _ = CronExpr::parse(&text);
        }

        #[test]
        fn cron_like_text_never_panics(text in "[0-9*/,@a-zA-Z#?LW -]{0,30}") {
            if let Ok(c) = CronExpr::parse(&text) {
                proptest::prop_assert!(c.next_after(&TimeZone::UTC, Timestamp::UNIX_EPOCH).is_some());
            }
        }
    }
}
