//! Typed columns: the one place where the ledger's text becomes core types as a row is read.
//!
//! Instants are stored as RFC 3339 text ([`super::stamp`] for everything the ledger stamps
//! itself), states and triggers as their words, schedules and `repeat` as canonical JSON. Each
//! reader (`run_from_row`, `job_row`, ...) goes through these helpers, so a value that does
//! not parse is a [`super::LedgerError::BadValue`] naming the row and the column, never a
//! panic and never a silent default. Nothing here writes.

use super::db::{self, Row};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::error::BadColumn;
use crate::spec::Repeat;

/// The failure of column `idx` of `row` (a row named `what`, e.g. `run 12`), as rusqlite
/// carries it out of a row closure.
pub(super) fn bad(row: &Row<'_>, idx: usize, what: &str, detail: String) -> db::Error {
    db::Error::Column {
        idx,
        source: Box::new(BadColumn {
            what: what.to_string(),
            column: row.column_name(idx),
            detail,
        }),
    }
}

/// A value of row `what` (e.g. `job backup`) in `column` that does not read as its type, found
/// after the row was read (a schedule, a time zone), as rusqlite carries it.
pub(super) fn bad_value(what: &str, column: &str, detail: String) -> db::Error {
    db::Error::Column {
        idx: 0,
        source: Box::new(BadColumn {
            what: what.to_string(),
            column: column.to_string(),
            detail,
        }),
    }
}

/// Column `idx` parsed with `FromStr` (instants, states, triggers); `what` names the row.
pub(super) fn parsed<T>(row: &Row<'_>, idx: usize, what: &dyn Fn() -> String) -> db::Result<T>
where
    T: Column,
{
    let text = text(row, idx)?;
    T::read(text).map_err(|e| bad(row, idx, &what(), detail(text, &e)))
}

/// A text column's value, borrowed from the row (a listing of 10,000 jobs reads 70,000 of them).
fn text<'r>(row: &Row<'r>, idx: usize) -> db::Result<&'r str> {
    row.get_ref(idx)?
        .as_str()
        .map_err(|source| db::Error::Column { idx, source })
}

/// A type a text column holds.
pub(super) trait Column: Sized {
    type Err: std::fmt::Display;
    fn read(text: &str) -> Result<Self, Self::Err>;
}

impl Column for Timestamp {
    type Err = jiff::Error;

    fn read(text: &str) -> Result<Timestamp, jiff::Error> {
        stamp_fast(text).map_or_else(|| text.parse(), Ok)
    }
}

impl Column for crate::run::RunState {
    type Err = crate::run::UnknownWord;

    fn read(text: &str) -> Result<Self, Self::Err> {
        text.parse()
    }
}

/// A run's overrides as `runs.overrides` holds them: a JSON object, NULL when there are none.
pub(super) fn overrides_json(o: &crate::run::Overrides) -> Option<String> {
    let timeout = o.timeout?;
    Some(serde_json::json!({ "timeout": timeout.to_string() }).to_string())
}

/// What [`overrides_json`] wrote; a field this version cannot read is left out.
pub(super) fn overrides_from_json(text: &str) -> crate::run::Overrides {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    crate::run::Overrides {
        timeout: value["timeout"]
            .as_str()
            .and_then(|t| crate::duration::Duration::parse(t).ok()),
    }
}

impl Column for crate::run::Trigger {
    type Err = crate::run::UnknownWord;

    fn read(text: &str) -> Result<Self, Self::Err> {
        text.parse()
    }
}

/// The instants the ledger writes itself (`YYYY-MM-DDTHH:MM:SSZ`, or with 1 to 9 fractional
/// digits before the `Z`), read without jiff's general RFC 3339 parser, which cost more than
/// the rest of a job listing's row reads; `None` for anything else (another offset, a leap
/// second, an invalid date), which jiff then reads or refuses.
fn stamp_fast(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let n = num(20..b.len() - 1)?;
            n * 10i64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // jiff checks the day of the month; the days since 1970 are Howard Hinnant's
    // `days_from_civil`.
    jiff::civil::Date::new(year as i16, month as i8, day as i8).ok()?;
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Timestamp::new(seconds, nanos as i32).ok()
}

/// What was wrong with `text`, quoting it unless the parser's message already does.
fn detail(text: &str, e: &dyn std::fmt::Display) -> String {
    let message = e.to_string();
    if message.contains(&format!("`{text}`")) {
        message
    } else {
        format!("`{text}`: {message}")
    }
}

/// A nullable column parsed with `FromStr`.
pub(super) fn parsed_opt<T>(
    row: &Row<'_>,
    idx: usize,
    what: &dyn Fn() -> String,
) -> db::Result<Option<T>>
where
    T: Column,
{
    if row.get_ref(idx)? == db::Value::Null {
        return Ok(None);
    }
    parsed(row, idx, what).map(Some)
}

/// A revision's `repeat` as stored: `{"times": 5}`, `{"until": "success"}`.
pub(super) fn repeat_text(repeat: Repeat) -> String {
    match repeat {
        Repeat::Times(n) => serde_json::json!({ "times": n }),
        Repeat::UntilSuccess => serde_json::json!({ "until": "success" }),
    }
    .to_string()
}

/// A nullable `repeat` column ([`repeat_text`]'s form).
pub(super) fn repeat(
    row: &Row<'_>,
    idx: usize,
    what: &dyn Fn() -> String,
) -> db::Result<Option<Repeat>> {
    let Some(json) = row.get::<Option<String>>(idx)? else {
        return Ok(None);
    };
    repeat_from_text(&json)
        .map(Some)
        .ok_or_else(|| bad(row, idx, &what(), format!("`{json}` is not a repeat")))
}

fn repeat_from_text(json: &str) -> Option<Repeat> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    if let Some(n) = value.get("times").and_then(serde_json::Value::as_u64) {
        return u32::try_from(n).ok().map(Repeat::Times);
    }
    (value.get("until").and_then(serde_json::Value::as_str) == Some("success"))
        .then_some(Repeat::UntilSuccess)
}

/// How a time zone is stored: its IANA name (every zone a job can name has one).
pub(super) fn zone_text(tz: &TimeZone) -> &str {
    tz.iana_name().unwrap_or("UTC")
}

/// An instant column.
pub(super) fn instant(
    row: &Row<'_>,
    idx: usize,
    what: &dyn Fn() -> String,
) -> db::Result<Timestamp> {
    parsed(row, idx, what)
}

/// A nullable instant column.
pub(super) fn instant_opt(
    row: &Row<'_>,
    idx: usize,
    what: &dyn Fn() -> String,
) -> db::Result<Option<Timestamp>> {
    parsed_opt(row, idx, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_written_as_jiff_writes_them_and_read_back() {
        let mut day = jiff::civil::date(2023, 1, 1);
        let mut checked = 0;
        while day.year() < 2027 {
            for (h, m, s, ms) in [
                (0, 0, 0, 0),
                (13, 45, 7, 250),
                (23, 59, 59, 999),
                (9, 5, 3, 7),
            ] {
                let t = day
                    .at(h, m, s, ms * 1_000_000 + 123_456)
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .unwrap()
                    .timestamp();
                let text = super::super::stamp(t);
                assert_eq!(text, format!("{t:.3}"));
                assert_eq!(
                    Timestamp::read(&text).unwrap().as_millisecond(),
                    t.as_millisecond()
                );
                checked += 1;
            }
            day = day.tomorrow().unwrap();
        }
        assert!(checked > 5_000);
        for text in [
            "1970-01-01T00:00:00.000Z",
            "0001-01-01T00:00:00.000Z",
            "1600-02-29T10:00:00.001Z",
            "9999-12-30T21:59:59.999Z",
            "1969-12-31T23:59:59.999Z",
            "1960-06-01T12:00:00.000Z",
        ] {
            let t: Timestamp = text.parse().unwrap();
            assert_eq!(super::super::stamp(t), text);
        }
    }

    #[test]
    fn the_ledgers_own_stamps_read_as_jiff_reads_them() {
        let same = [
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "2000-02-29T12:00:00.5Z",
            "2026-10-31T12:00:00.000Z",
            "2026-12-31T23:59:59.123456789Z",
            "2024-02-29T00:00:00.1Z",
            "2100-03-01T01:02:03.04Z",
            "0001-01-01T00:00:00Z",
            "9999-12-30T21:59:59.999Z",
            "1600-02-29T10:00:00Z",
        ];
        for text in same {
            let jiff: Timestamp = text.parse().unwrap();
            assert_eq!(stamp_fast(text), Some(jiff), "{text}");
        }
        // Every day of four years around a leap year, at several times.
        let mut day = jiff::civil::date(2023, 1, 1);
        while day.year() < 2027 {
            for time in ["00:00:00Z", "13:45:07.250Z", "23:59:59.999Z"] {
                let text = format!("{day}T{time}");
                let jiff: Timestamp = text.parse().unwrap();
                assert_eq!(stamp_fast(&text), Some(jiff), "{text}");
            }
            day = day.tomorrow().unwrap();
        }
        // Anything else is left to jiff (which reads or refuses it).
        let other = [
            "2026-10-31T12:00:00+01:00",
            "2026-10-31T12:00:60Z",
            "2026-02-29T12:00:00Z",
            "2026-13-01T12:00:00Z",
            "2026-10-31T24:00:00Z",
            "2026-10-31T12:00:00.Z",
            "2026-10-31T12:00:00.1234567890Z",
            "2026-10-31 12:00:00Z",
            "2026-10-31T12:00Z",
            "+2026-10-31T12:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "yesterday",
            "",
        ];
        for text in other {
            assert_eq!(stamp_fast(text), None, "{text}");
        }
        assert_eq!(
            Timestamp::read("2026-10-31T12:00:00+01:00").unwrap(),
            "2026-10-31T11:00:00Z".parse::<Timestamp>().unwrap()
        );
    }
}
