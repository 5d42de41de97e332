//! The wall clock, injected: the one place the program reads the time.
//!
//! The core never reads a clock; it takes `now` as an argument. Commands and the daemon get
//! `now` from a [`Clock`]. `JOBS_NOW` (an RFC 3339 instant) sets the clock's start: a one-shot
//! command sees exactly that instant (for tests, and for reproducing a plan as it would have
//! looked then), and a daemon's clock starts there and runs at real speed, so a test can put a
//! daemon just before a DST change or a year after its last run without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// `JOBS_NOW` is set but is not an instant.
///
/// The parser's reason is part of the message rather than a `source`, so a chain printed
/// with `{:#}` (the CLI's errors) shows it once.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("JOBS_NOW=`{value}` is not an RFC 3339 instant such as 2026-03-08T06:00:00Z: {reason}")]
    NotAnInstant { value: String, reason: jiff::Error },
}

/// How far the system clock is behind the database's, in microseconds: a daemon on a
/// PostgreSQL ledger measures it with each heartbeat ([`set_skew`]), so that every node of a
/// cluster keeps the database's time; 0 elsewhere. A clock started at `JOBS_NOW` ignores it.
static SKEW_MICROS: AtomicI64 = AtomicI64::new(0);

/// The system clock as it reads, without the skew towards the database's: what the skew is
/// measured against.
pub fn uncorrected_now() -> Timestamp {
    Timestamp::now()
}

/// Sets how far the system clock is behind the database's (see [`SKEW_MICROS`]).
pub fn set_skew(skew: SignedDuration) {
    let micros = i64::try_from(skew.as_micros()).unwrap_or(0);
    SKEW_MICROS.store(micros, Ordering::Relaxed);
}

/// The wall clock, or a clock started at a fixed instant that runs at real speed.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Option<(Timestamp, Instant)>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { start: None }
    }

    /// A clock reading `at` now, and advancing in real time.
    pub fn starting_at(at: Timestamp) -> Clock {
        Clock {
            start: Some((at, Instant::now())),
        }
    }

    /// `JOBS_NOW` when set, else the system clock.
    ///
    /// # Errors
    ///
    /// When `JOBS_NOW` is set but is not an RFC 3339 instant.
    pub fn from_env() -> Result<Clock, ClockError> {
        match std::env::var("JOBS_NOW") {
            Ok(value) if !value.is_empty() => match value.parse::<Timestamp>() {
                Ok(at) => Ok(Clock::starting_at(at)),
                Err(reason) => Err(ClockError::NotAnInstant { value, reason }),
            },
            _ => Ok(Clock::system()),
        }
    }

    pub fn now(&self) -> Timestamp {
        match self.start {
            None => {
                let now = Timestamp::now();
                match SKEW_MICROS.load(Ordering::Relaxed) {
                    0 => now,
                    skew => now
                        .saturating_add(SignedDuration::from_micros(skew))
                        .unwrap_or(now),
                }
            }
            Some((at, started)) => {
                let elapsed = SignedDuration::try_from(started.elapsed()).unwrap_or_default();
                at.saturating_add(elapsed).unwrap_or(at)
            }
        }
    }

    /// How long until `at` by this clock (zero when it has passed).
    pub fn until(&self, at: Timestamp) -> std::time::Duration {
        let d = at.duration_since(self.now());
        std::time::Duration::try_from(d).unwrap_or_default()
    }
}

/// The current instant by `JOBS_NOW` or the system clock.
///
/// # Errors
///
/// When `JOBS_NOW` is set but is not an RFC 3339 instant.
pub fn now() -> Result<Timestamp, ClockError> {
    Clock::from_env().map(|c| match c.start {
        Some((at, _)) => at,
        None => Timestamp::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::ClockError;

    #[test]
    fn a_bad_jobs_now_is_quoted_with_an_example() {
        let value = "2026-03-08 06:00".to_string();
        let reason = value.parse::<jiff::Timestamp>().unwrap_err();
        let message = ClockError::NotAnInstant { value, reason }.to_string();
        assert!(
            message.starts_with(
                "JOBS_NOW=`2026-03-08 06:00` is not an RFC 3339 instant such as 2026-03-08T06:00:00Z: "
            ),
            "{message}"
        );
    }
}
