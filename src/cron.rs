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
//! on DST days, and parses in ~20 µs where this parser takes well under one (a `jobctl list` of
//! 10,000 jobs parses every expression). croner still writes the English description, and the
//! tests use it as an independent oracle for matching.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// How far around a time-zone transition [`CronExpr::next_after`] looks for fires that the
/// transition moves: more than any real transition's size.
pub const TRANSITION_SLACK: SignedDuration = SignedDuration::from_hours(3);

/// Fires in a range (see [`CronExpr::fires_between`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FireSpan {
    pub count: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

#[cfg(test)]
thread_local! {
    /// Calls of `next_civil_after` on this thread: the work that counting tests bound.
    pub(crate) static CIVIL_SEARCHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

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
        let body = match trimmed.strip_prefix('@') {
            Some(name) => expand_macro_of(trimmed, name, lead)?,
            None => trimmed,
        };
        let from_macro = !std::ptr::eq(body, trimmed);
        // Fields with their byte offsets in `body`.
        let fields = split_fields(body);
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
        #[cfg(test)]
        CIVIL_SEARCHES.with(|n| n.set(n.get() + 1));
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
        let slack = TRANSITION_SLACK;
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
            self.fires_at(tz, civil, |t| {
                if t > after && best.is_none_or(|b| t < b) {
                    best = Some(t);
                }
            });
        }
        best
    }

    /// The instants a matching wall-clock minute `civil` fires at in `tz`, by Debian's rules:
    /// one, none (a wildcard job in a gap) or two (a wildcard job in a repeated hour).
    fn fires_at(&self, tz: &TimeZone, civil: DateTime, mut fire: impl FnMut(Timestamp)) {
        match tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                if let Ok(t) = offset.to_timestamp(civil) {
                    fire(t);
                }
            }
            AmbiguousOffset::Fold {
                before,
                after: later,
            } => {
                if let Ok(t) = before.to_timestamp(civil) {
                    fire(t);
                }
                if self.wildcard
                    && let Ok(t) = later.to_timestamp(civil)
                {
                    fire(t);
                }
            }
            AmbiguousOffset::Gap { after: later, .. } => {
                if !self.wildcard
                    && let Ok(t) = later.to_timestamp(civil)
                    && let Some(transition) = tz.following(t).next()
                {
                    fire(transition.timestamp());
                }
            }
        }
    }

    /// The fires in `(after, until]`: how many, the first and the last; exactly what calling
    /// [`CronExpr::next_after`] from `after` until past `until` finds, without the walk.
    ///
    /// Away from time-zone transitions the zone is a fixed offset and the fires are the
    /// matching wall-clock minutes, counted per day with bit counts (`next_after`'s fast path
    /// says the same thing one fire at a time). Within [`TRANSITION_SLACK`] of a transition,
    /// every wall-clock minute that could fire is mapped by Debian's rules, as `next_after`
    /// does. A century of a minutely job is thus ~36,500 day steps and ~200 short windows
    /// around transitions instead of 52 million calls (issue 12).
    pub fn fires_between(
        &self,
        tz: &TimeZone,
        after: Timestamp,
        until: Timestamp,
    ) -> Option<FireSpan> {
        let slack = TRANSITION_SLACK;
        let second = SignedDuration::from_secs(1);
        let mut span: Option<FireSpan> = None;
        let mut add = |count: u64, first: Timestamp, last: Timestamp| {
            span = Some(match span {
                None => FireSpan { count, first, last },
                Some(s) => FireSpan {
                    count: s.count + count,
                    first: s.first,
                    last,
                },
            });
        };
        let mut from = after;
        while from < until {
            let transition = tz
                .following(from.checked_sub(slack).ok()?)
                .next()
                .map(|t| t.timestamp());
            // Quiet until `slack` before the next transition: no offset change near any
            // instant up to there (next_after's fast-path condition).
            let quiet_end = match transition {
                None => until,
                Some(t) => t.checked_sub(slack + second).ok()?.min(until),
            };
            if quiet_end > from {
                let offset = tz.to_offset(from);
                let (a, b) = (offset.to_datetime(from), offset.to_datetime(quiet_end));
                let count = self.count_civil_between(a, b);
                if count > 0 {
                    let first = offset.to_timestamp(self.next_civil_after(a)?).ok()?;
                    let last = offset.to_timestamp(self.last_civil_at_or_before(b)?).ok()?;
                    add(count, first, last);
                }
                from = quiet_end;
                continue;
            }
            // Near the transition `t`: map every wall-clock minute that may fire in the window,
            // over the same civil range next_after searches.
            let t = transition.expect("only a transition ends a quiet stretch before `until`");
            let to = t.checked_add(slack + second).ok()?.min(until);
            let mut fires = Vec::new();
            let end = tz.to_datetime(to.checked_add(slack).ok()?);
            let mut civil = tz.to_datetime(from.checked_sub(slack).ok()?);
            while let Some(c) = self.next_civil_after(civil).filter(|c| *c <= end) {
                self.fires_at(tz, c, |f| {
                    if f > from && f <= to {
                        fires.push(f);
                    }
                });
                civil = c;
            }
            fires.sort_unstable();
            fires.dedup();
            if let (Some(first), Some(last)) = (fires.first(), fires.last()) {
                add(fires.len() as u64, *first, *last);
            }
            from = to;
        }
        span
    }

    /// How many wall-clock minutes in `(a, b]` match, by bit counts per day.
    fn count_civil_between(&self, a: DateTime, b: DateTime) -> u64 {
        if b <= a {
            return 0;
        }
        let per_day = u64::from(self.hours.count_ones()) * u64::from(self.minutes.count_ones());
        let day = |date: Date| if self.matches_date(date) { per_day } else { 0 };
        let (first, last) = (a.date(), b.date());
        if first == last {
            return self.count_day_until(b) - self.count_day_until(a);
        }
        let mut count = day(first) - self.count_day_until(a) + self.count_day_until(b);
        let mut date = first.tomorrow().ok();
        while let Some(d) = date.filter(|d| *d < last) {
            count += day(d);
            date = d.tomorrow().ok();
        }
        count
    }

    /// How many matching minutes the day of `at` has at or before `at`.
    fn count_day_until(&self, at: DateTime) -> u64 {
        if !self.matches_date(at.date()) {
            return 0;
        }
        let (hour, minute) = (at.hour() as u32, at.minute() as u32);
        let earlier_hours = u64::from((self.hours & ((1u32 << hour) - 1)).count_ones());
        let this_hour = if self.hours & (1 << hour) != 0 {
            u64::from((self.minutes & (u64::MAX >> (63 - minute))).count_ones())
        } else {
            0
        };
        earlier_hours * u64::from(self.minutes.count_ones()) + this_hour
    }

    /// The last matching wall-clock minute at or before `at`, ignoring time zones.
    fn last_civil_at_or_before(&self, at: DateTime) -> Option<DateTime> {
        let mut date = at.date();
        let (mut to_hour, mut to_minute) = (at.hour() as u32, at.minute() as u32);
        for _ in 0..(400 * 366) {
            if self.matches_date(date) {
                for hour in (0..=to_hour).rev() {
                    if self.hours & (1 << hour) != 0 {
                        let minutes = self.minutes & (u64::MAX >> (63 - to_minute));
                        if minutes != 0 {
                            let minute = 63 - minutes.leading_zeros();
                            let time = Time::new(hour as i8, minute as i8, 0, 0).ok()?;
                            return Some(date.to_datetime(time));
                        }
                    }
                    to_minute = 59;
                }
            }
            date = date.yesterday().ok()?;
            (to_hour, to_minute) = (23, 59);
        }
        None
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
    ///
    /// croner writes it (parsing the expression again); to describe many expressions, a
    /// [`Describer`] gives the same text for a fraction of the cost.
    pub fn describe(&self) -> String {
        let expanded = self.expanded();
        croner_describe(expanded, self.days_and).unwrap_or_else(|| expanded.to_string())
    }

    /// The five fields, a macro replaced by what it stands for.
    fn expanded(&self) -> &str {
        self.source
            .strip_prefix('@')
            .and_then(|m| expand_macro(&m.to_ascii_lowercase()))
            .unwrap_or(&self.source)
    }
}

/// croner's English description of five fields, or `None` if croner refuses them.
fn croner_describe(fields: &str, days_and: bool) -> Option<String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .dom_and_dow(days_and)
        .build()
        .parse(fields)
        .ok()
        .map(|c| c.describe())
}

/// Describes expressions exactly as [`CronExpr::describe`] does, byte for byte, paying for
/// croner once per distinct hour field and once per distinct day-and-month fields instead of
/// once per expression (a realistic folder has hundreds of distinct expressions but a few dozen
/// hour fields and a handful of day fields: `list` at 10,000 jobs spent 42% of its CPU in
/// croner).
///
/// Why it is exact: croner's description is `time, day, month` joined by `", "` with a final
/// `"."`, where the time part reads only the minute and hour fields and the day and month
/// parts read only the last three. So the description of `m h D M W` is the time part of
/// `m h * * *` followed by what `0 0 D M W`'s description has after `"At 00:00"`. And when `m`
/// is a plain number, croner's time part depends on it only through the printed value, so
/// the time part of `0 h * * *` is a template for every minute (`"At 03:00"`, `"At minute 0
/// past every hour"`, `"At minute 0, of hour 3 and 15"`). Anything else goes to croner whole.
/// The property test `describer_agrees_with_croner` checks this against croner.
#[derive(Default)]
pub struct Describer {
    /// By hour field: the time part of `0 h * * *` with the minute left out.
    hours: std::collections::HashMap<String, Option<HourTemplate>>,
    /// By minute and hour fields (a minute that is not a plain number): the time part.
    times: std::collections::HashMap<String, Option<String>>,
    /// By day-of-month, month and day-of-week fields, for `days_and` false and true: the
    /// description after its time part, final `"."` included.
    days: [std::collections::HashMap<String, Option<String>>; 2],
}

/// The time part of `m h * * *` for a plain minute `m`, by the shape croner gives `h`.
enum HourTemplate {
    /// A single hour: `"At HH:MM"`.
    Clock(u8),
    /// Every hour: `"At minute M past every hour"`.
    EveryHour,
    /// Some hours: `"At minute M"` and this (e.g. `", of hour 3 and 15"`).
    Of(String),
}

impl HourTemplate {
    /// Reads croner's time part of `0 h * * *`.
    fn of(time: &str) -> Option<HourTemplate> {
        if time == "At minute 0 past every hour" {
            return Some(HourTemplate::EveryHour);
        }
        if let Some(rest) = time.strip_prefix("At minute 0,") {
            return Some(HourTemplate::Of(format!(",{rest}")));
        }
        let clock = time.strip_prefix("At ")?.strip_suffix(":00")?;
        (clock.len() == 2 && clock.bytes().all(|b| b.is_ascii_digit()))
            .then(|| clock.parse().ok().map(HourTemplate::Clock))
            .flatten()
    }
}

impl Describer {
    /// Past this many remembered fields, forget them all (a bound, never reached by real
    /// folders).
    const KEEP: usize = 4096;

    /// The description of `cron`, equal to `cron.describe()`.
    pub fn describe(&mut self, cron: &CronExpr) -> String {
        self.fast(cron).unwrap_or_else(|| cron.describe())
    }

    fn fast(&mut self, cron: &CronExpr) -> Option<String> {
        use std::fmt::Write as _;
        if self.hours.len() + self.times.len() + self.days[0].len() + self.days[1].len()
            >= Self::KEEP
        {
            *self = Describer::default();
        }
        let expanded = cron.expanded();
        if expanded.contains('@') {
            return None;
        }
        let at = |field: &str| field.as_ptr() as usize - expanded.as_ptr() as usize;
        let mut fields = expanded.split_whitespace();
        let (Some(minute), Some(hour), Some(dom), Some(_), Some(dow), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        let day_fields = &expanded[at(dom)..at(dow) + dow.len()];
        let days = self.days[usize::from(cron.days_and)]
            .entry(day_fields.to_string())
            .or_insert_with(|| {
                croner_describe(&format!("0 0 {day_fields}"), cron.days_and)?
                    .strip_prefix("At 00:00")
                    .map(str::to_string)
            })
            .as_deref()?;
        let plain_minute = (minute.len() <= 2 && minute.bytes().all(|b| b.is_ascii_digit()))
            .then(|| minute.parse::<u8>().ok())
            .flatten()
            .filter(|m| *m < 60);
        let template = plain_minute.and_then(|m| {
            let template = self.hours.entry(hour.to_string()).or_insert_with(|| {
                let time = croner_describe(&format!("0 {hour} * * *"), false)?;
                HourTemplate::of(time.strip_suffix('.')?)
            });
            Some((m, template.as_ref()?))
        });
        let mut out = String::with_capacity(24 + days.len());
        match template {
            Some((m, HourTemplate::Clock(h))) => write!(out, "At {h:02}:{m:02}").ok()?,
            Some((m, HourTemplate::EveryHour)) => {
                write!(out, "At minute {m} past every hour").ok()?
            }
            Some((m, HourTemplate::Of(rest))) => write!(out, "At minute {m}{rest}").ok()?,
            None => {
                let time_fields = &expanded[at(minute)..at(hour) + hour.len()];
                let time = self
                    .times
                    .entry(time_fields.to_string())
                    .or_insert_with(|| {
                        croner_describe(&format!("{time_fields} * * *"), false)?
                            .strip_suffix('.')
                            .map(str::to_string)
                    })
                    .as_deref()?;
                out.push_str(time);
            }
        }
        out.push_str(days);
        Some(out)
    }
}

/// What the macro `@name` stands for (`trimmed` is the whole expression, at character
/// `lead`), or why it stands for nothing crontab(5) runs.
fn expand_macro_of(trimmed: &str, name: &str, lead: usize) -> Result<&'static str, CronError> {
    let first = name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let lower = name.to_ascii_lowercase();
    if name.split_whitespace().nth(1).is_some()
        && !lower.starts_with("every")
        && !lower.starts_with("reboot")
    {
        return Err(err(
            format!("`{trimmed}`: a macro stands alone, with nothing after it"),
            Some(lead),
        ));
    }
    if let Some(expanded) = expand_macro(&first) {
        return Ok(expanded);
    }
    Err(match first.as_str() {
        "reboot" => CronError {
            help: Some("trigger it by hand (`jobctl run`) or from your init system".into()),
            ..err(
                "`@reboot` is not supported: jobs fires on time, not on boot",
                Some(lead),
            )
        },
        "every" => CronError {
            help: Some("write `schedule: {every: 5m}` for an interval".into()),
            ..err("`@every` is not a crontab(5) macro", Some(lead))
        },
        _ => CronError {
            help: Some("the macros are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly".into()),
            ..err(format!("unknown macro `{trimmed}`"), Some(lead))
        },
    })
}

/// The whitespace-separated fields of `body`, each with its byte offset.
fn split_fields(body: &str) -> Vec<(usize, &str)> {
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
    fields
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

    /// `fires_between` against the walk it replaces: `next_after` from `from` until past
    /// `until`.
    fn walk(cron: &CronExpr, tz: &TimeZone, from: Timestamp, until: Timestamp) -> Option<FireSpan> {
        let first = cron.next_after(tz, from).filter(|t| *t <= until)?;
        let mut span = FireSpan {
            count: 1,
            first,
            last: first,
        };
        while let Some(t) = cron.next_after(tz, span.last).filter(|t| *t <= until) {
            span.count += 1;
            span.last = t;
        }
        Some(span)
    }

    #[test]
    fn counting_fires_agrees_with_the_walk_across_transitions() {
        // Windows around transitions (both directions) in zones with 1 h, 30 min and 24 h
        // changes, a quiet zone, and bounds that fall inside gaps and repeats.
        let windows = [
            (
                "Europe/Berlin",
                "2026-03-27T00:00:00Z",
                "2026-04-01T00:00:00Z",
            ),
            (
                "Europe/Berlin",
                "2026-10-24T00:00:00Z",
                "2026-10-26T12:00:00Z",
            ),
            (
                "Europe/Berlin",
                "2026-03-29T00:30:00Z",
                "2026-03-29T01:00:00Z",
            ),
            (
                "America/New_York",
                "2026-03-07T12:34:56Z",
                "2026-03-09T06:07:08Z",
            ),
            (
                "America/New_York",
                "2026-10-31T12:00:00Z",
                "2026-11-02T12:00:00Z",
            ),
            (
                "America/New_York",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "2026-04-03T00:00:00Z",
                "2026-04-06T00:00:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "2026-10-02T00:00:00Z",
                "2026-10-05T00:00:00Z",
            ),
            (
                "America/Santiago",
                "2026-04-03T00:00:00Z",
                "2026-04-06T00:00:00Z",
            ),
            (
                "America/Santiago",
                "2026-09-04T00:00:00Z",
                "2026-09-08T00:00:00Z",
            ),
            (
                "Pacific/Apia",
                "2011-12-28T00:00:00Z",
                "2012-01-02T00:00:00Z",
            ),
            ("UTC", "2026-02-26T00:00:00Z", "2026-03-03T00:00:00Z"),
        ];
        let exprs = [
            "* * * * *",
            "*/7 * * * *",
            "0 * * * *",
            "30 2 * * *",
            "0,30 0-3 * * *",
            "* 2 * * *",
            "15 1 * * 0",
            "0 0 1 * *",
            "59 23 28-31 2 *",
        ];
        for (zone, from, until) in windows {
            let tz = jiff::tz::db().get(zone).unwrap();
            let (from, until) = (from.parse().unwrap(), until.parse().unwrap());
            for expr in exprs {
                let cron = CronExpr::parse(expr).unwrap();
                assert_eq!(
                    cron.fires_between(&tz, from, until),
                    walk(&cron, &tz, from, until),
                    "{expr} in {zone}, ({from}, {until}]"
                );
            }
        }
    }

    #[test]
    fn counting_fires_over_a_year_agrees_with_the_walk() {
        let tz = jiff::tz::db().get("Europe/Berlin").unwrap();
        let (from, until) = (
            "2025-10-31T12:00:00Z".parse().unwrap(),
            "2026-10-31T12:00:00Z".parse().unwrap(),
        );
        for expr in ["17 */2 * * *", "30 2 * * *", "0 0 * * 1-5", "* 2 29 2 *"] {
            let cron = CronExpr::parse(expr).unwrap();
            assert_eq!(
                cron.fires_between(&tz, from, until),
                walk(&cron, &tz, from, until),
                "{expr}"
            );
        }
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

    /// `Describer` and croner, on each shape `Describer` treats apart and on what it hands
    /// back to croner whole.
    #[test]
    fn describer_matches_croner_on_examples() {
        let mut describer = Describer::default();
        for (expr, expected) in [
            ("15 3 * * *", "At 03:15."),
            ("0 0 * * *", "At 00:00."),
            ("@daily", "At 00:00."),
            ("@hourly", "At minute 0 past every hour."),
            ("@weekly", "At 00:00, on Sunday."),
            ("@monthly", "At 00:00, on day 1."),
            ("@yearly", "At 00:00, on day 1, in January."),
            ("*/5 * * * *", "At every 5 minutes."),
            ("* * * * *", "Every minute."),
            ("* 3 * * *", "Every minute past hour 3."),
            ("7 * * * *", "At minute 7 past every hour."),
            ("07 3 * * *", "At 03:07."),
            ("30 4,16 * * *", "At minute 30, of hour 4 and 16."),
            ("30 */6 * * *", "At minute 30, of every 6 hours."),
            (
                "5 2-10 * * 1-5",
                "At minute 5, of hour 2-10, on Monday, Tuesday, Wednesday, Thursday, and Friday.",
            ),
            (
                "45 23 * * mon-fri",
                "At 23:45, on Monday, Tuesday, Wednesday, Thursday, and Friday.",
            ),
            ("0 12 * * sun", "At 12:00, on Sunday."),
            ("0 12 1,15 * *", "At 12:00, on day 1 and 15."),
            ("10 6 1 */3 *", "At 06:10, on day 1, in every 3 months."),
            ("0 0 1 * 1", "At 00:00, on day 1 or Monday."),
            ("0 0 * * 7", "At 00:00, on Sunday."),
            (
                "*/10 8-18 * jan,jul *",
                "At every 10 minutes, of hour 8-18, in January and July.",
            ),
        ] {
            let cron = CronExpr::parse(expr).unwrap();
            let got = describer.describe(&cron);
            assert_eq!(got, cron.describe(), "{expr}");
            assert_eq!(got, expected, "{expr}");
        }
    }

    proptest::proptest! {
        /// `Describer` writes croner's description, byte for byte: plain minutes and hours,
        /// lists, ranges, steps, names, in any spacing and in any order of first use.
        #[test]
        fn describer_agrees_with_croner(
            exprs in proptest::collection::vec(
                (
                    "(\\*|[0-5]?[0-9]|0[0-9]|\\*/[1-9]|[1-5]?[0-9]/[1-9]|[0-9]-[1-5][0-9]|[0-9],[1-5][0-9]|[0-9]-[1-3][0-9]/[2-7])",
                    "(\\*|1?[0-9]|2[0-3]|0[0-9]|\\*/[1-9]|1?[0-9]/[2-5]|[0-9]-1[0-9]|[0-9],1[0-9](,2[0-3])?)",
                    "(\\*|[1-9]|[12][0-9]|3[01]|\\*/[2-9]|[1-9]-2[0-9]|1-31/2|1,15)",
                    "(\\*|[1-9]|1[0-2]|\\*/[2-4]|[1-6]-1[0-2]|jan|Feb|jan-jun|[1-9],1[0-2])",
                    "(\\*|[0-7]|\\*/[2-3]|[1-2]-[3-6]|mon-fri|sun|SAT|[0-3],[4-7])",
                    "( |  |\t)",
                ),
                1..8,
            ),
            macro_name in "(@daily|@hourly|@weekly|@monthly|@yearly|@annually|@midnight|@DAILY)",
        ) {
            let mut describer = Describer::default();
            let texts = exprs
                .iter()
                .map(|(m, h, dom, month, dow, sep)| {
                    [m.as_str(), h, dom, month, dow].join(sep.as_str())
                })
                .chain([macro_name]);
            for text in texts {
                let Ok(cron) = CronExpr::parse(&text) else { continue };
                let got = describer.describe(&cron);
                proptest::prop_assert_eq!(got, cron.describe(), "{}", text);
            }
        }

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
