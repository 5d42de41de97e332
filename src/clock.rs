//! The wall clock, injected: the one place the program reads the time.
//!
//! The core never reads a clock; it takes `now` as an argument. Commands get `now` from here.
//! `JOBS_NOW` (an RFC 3339 instant) fixes the clock, for tests and for reproducing a plan as it
//! would have looked at a given time.

use jiff::Timestamp;

/// # Errors
///
/// When `JOBS_NOW` is set but is not an RFC 3339 instant.
pub fn now() -> Result<Timestamp, String> {
    match std::env::var("JOBS_NOW") {
        Ok(text) if !text.is_empty() => text.parse::<Timestamp>().map_err(|e| {
            format!(
                "JOBS_NOW=`{text}` is not an RFC 3339 instant such as 2026-03-08T06:00:00Z: {e}"
            )
        }),
        _ => Ok(Timestamp::now()),
    }
}
