//! Typed columns: the one place where the ledger's text becomes core types as a row is read.
//!
//! Instants are stored as RFC 3339 text ([`super::stamp`] for everything the ledger stamps
//! itself), states and triggers as their words, schedules and `repeat` as canonical JSON. Each
//! reader (`run_from_row`, `job_row`, ...) goes through these helpers, so a value that does
//! not parse is a [`super::LedgerError::BadValue`] naming the row and the column, never a
//! panic and never a silent default. Nothing here writes.

use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rusqlite::Row;
use rusqlite::types::Type;

use super::error::BadColumn;
use crate::spec::Repeat;

/// The failure of column `idx` of `row` (a row named `what`, e.g. `run 12`), as rusqlite
/// carries it out of a row closure.
pub(super) fn bad(row: &Row<'_>, idx: usize, what: &str, detail: String) -> rusqlite::Error {
    let column = row
        .as_ref()
        .column_name(idx)
        .map_or_else(|_| idx.to_string(), str::to_string);
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        Box::new(BadColumn {
            what: what.to_string(),
            column,
            detail,
        }),
    )
}

/// A value of row `what` (e.g. `job backup`) in `column` that does not read as its type, found
/// after the row was read (a schedule, a time zone), as rusqlite carries it.
pub(super) fn bad_value(what: &str, column: &str, detail: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        Type::Text,
        Box::new(BadColumn {
            what: what.to_string(),
            column: column.to_string(),
            detail,
        }),
    )
}

/// Column `idx` parsed with `FromStr` (instants, states, triggers); `what` names the row.
pub(super) fn parsed<T>(row: &Row<'_>, idx: usize, what: &dyn Fn() -> String) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|e: T::Err| bad(row, idx, &what(), detail(&text, &e)))
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
) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let Some(text) = row.get::<_, Option<String>>(idx)? else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|e: T::Err| bad(row, idx, &what(), detail(&text, &e)))
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
) -> rusqlite::Result<Option<Repeat>> {
    let Some(json) = row.get::<_, Option<String>>(idx)? else {
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
) -> rusqlite::Result<Timestamp> {
    parsed(row, idx, what)
}

/// A nullable instant column.
pub(super) fn instant_opt(
    row: &Row<'_>,
    idx: usize,
    what: &dyn Fn() -> String,
) -> rusqlite::Result<Option<Timestamp>> {
    parsed_opt(row, idx, what)
}
