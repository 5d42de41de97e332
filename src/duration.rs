//! Human durations (`90s`, `15m`, `2h 30m`, `1d`) as they appear in job files.
//!
//! Parsing is jiff's "friendly" format; this module only adds the contract's rules on top: days
//! are 24 hours (a job's `timeout` does not stretch over a DST change), months and years are
//! refused because they have no fixed length, and negative values are refused. It prints one
//! canonical form (`1d 2h 30m`) so that `90m` and `1h 30m` normalise to the same definition.

use std::fmt;

use jiff::{SignedDuration, Span, SpanRelativeTo};

/// A non-negative, fixed-length duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(SignedDuration);

impl Duration {
    pub const ZERO: Duration = Duration(SignedDuration::ZERO);

    pub fn from_secs(secs: i64) -> Duration {
        Duration(SignedDuration::from_secs(secs.max(0)))
    }

    pub const fn from_secs_const(secs: i64) -> Duration {
        Duration(SignedDuration::from_secs(secs))
    }

    /// A standard duration (sub-second precision kept), saturating.
    pub fn from_std(d: std::time::Duration) -> Duration {
        Duration(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
    }

    pub fn as_signed(self) -> SignedDuration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Parses a human duration.
    ///
    /// # Errors
    ///
    /// A [`DurationError`] (its message has no location) saying what was wrong and what is
    /// expected.
    ///
    /// # Example
    ///
    /// ```
    /// let d = jobs::duration::Duration::parse("2h 30m").unwrap();
    /// assert_eq!(d.to_string(), "2h 30m");
    /// assert_eq!(jobs::duration::Duration::parse("150m").unwrap(), d);
    /// ```
    pub fn parse(text: &str) -> Result<Duration, DurationError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(DurationError::Empty);
        }
        let text = || text.to_string();
        let span: Span = trimmed
            .parse()
            .map_err(|_| DurationError::NotADuration(text()))?;
        if span.get_years() != 0 || span.get_months() != 0 {
            return Err(DurationError::Calendar(text()));
        }
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| DurationError::OutOfRange(text()))?;
        if duration.is_negative() {
            return Err(DurationError::Negative(text()));
        }
        Ok(Duration(duration))
    }
}

/// Why a text is not a [`Duration`]; each message ends with what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; {EXPECTED}")]
    Empty,
    #[error("`{0}` is not a duration; {EXPECTED}")]
    NotADuration(String),
    #[error("`{0}` uses months or years, which have no fixed length; use days, e.g. `30d`")]
    Calendar(String),
    #[error("`{0}` is out of range; {EXPECTED}")]
    OutOfRange(String),
    #[error("`{0}` is negative; {EXPECTED}")]
    Negative(String),
}

const EXPECTED: &str = "expected a duration such as `90s`, `15m`, `2h 30m` or `1d`";

/// An instant given as a duration back from `now` (`30m`, `24h`, `7d`), an RFC 3339 instant
/// (`2026-10-31T12:00:00Z`) or a date (`2026-10-31`, its midnight UTC): what `--since` and
/// `--until` take, and the API's `since` and `until`. The error says what was expected.
///
/// # Errors
///
/// When `text` is none of those.
pub fn instant_or_ago(text: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, WhenError> {
    if let Ok(d) = Duration::parse(text) {
        return now
            .checked_sub(d.as_signed())
            .map_err(|e| WhenError::OutOfRange(e.to_string()));
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && let Ok(zoned) = date.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(zoned.timestamp());
    }
    Err(WhenError::Unreadable(text.to_string()))
}

/// Why text is not an instant for [`instant_or_ago`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error(
        "`{0}` is neither a duration back from now (`30m`, `2h`, `1d`) nor an instant (`2026-10-31T12:00:00Z`, `2026-10-31`)"
    )]
    Unreadable(String),
    #[error("that is too long ago: {0}")]
    OutOfRange(String),
}

impl fmt::Display for Duration {
    /// The canonical form: largest units first, `d h m s ms`, zero parts omitted, `0s` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.as_millis();
        if total_ms == 0 {
            return f.write_str("0s");
        }
        let units: [(i128, &str); 5] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        let mut rest = total_ms;
        let mut first = true;
        for (size, suffix) in units {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{n}{suffix}")?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = Duration::parse(input)
            .map(|d| d.to_string())
            .map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "input {input:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "input {input:?}: {got}"),
            (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn durations_parse_to_one_canonical_form() {
        check("90s", Ok("1m 30s"));
        check("15m", Ok("15m"));
        check("2h 30m", Ok("2h 30m"));
        check("150m", Ok("2h 30m"));
        check("1d", Ok("1d"));
        check("1 day", Ok("1d"));
        check("2d 3h", Ok("2d 3h"));
        check("1w", Ok("7d"));
        check("1.5h", Ok("1h 30m"));
        check("500ms", Ok("500ms"));
        check("0s", Ok("0s"));
        check("10 minutes", Ok("10m"));
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        check("", Err("empty duration"));
        check("5", Err("is not a duration"));
        check("soon", Err("expected a duration such as"));
        check("1 month", Err("no fixed length"));
        check("1y", Err("no fixed length"));
        check("-5m", Err("negative"));
    }
}
