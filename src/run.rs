//! Runs: their states, what started them, how they end, and when a failed one is retried.
//!
//! Pure vocabulary and rules shared by the scheduler, the executor, the ledger and the CLI. It
//! decides nothing about processes or SQL: the executor reports how a process ended as an
//! [`Ending`], and [`conclude`] says what state and error the run records and whether (and
//! when) it is retried.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use crate::duration::{Duration, DurationError};
use crate::spec::Retry;

/// A run's state. `Blocked`, `Pending` and `Running` are live; the rest are terminal and
/// never change. A `Blocked` run waits for its `depends_on` jobs; it becomes `Pending` when
/// they have succeeded, or `Skipped` when one fails or its starting deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunState {
    Blocked,
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        RunState::Blocked,
        RunState::Pending,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Cancelled,
        RunState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Blocked => "blocked",
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Cancelled => "cancelled",
            RunState::Skipped => "skipped",
        }
    }

    /// The state a word names (`pending`, `timed_out`, ...).
    ///
    /// # Errors
    ///
    /// [`UnknownWord`] for any other text; its message lists the states.
    pub fn parse(text: &str) -> Result<RunState, UnknownWord> {
        RunState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownWord {
                word: text.to_string(),
                what: "run state",
                expected: RunState::ALL.map(RunState::as_str).join(", "),
            })
    }

    /// Not started yet: waiting for its dependencies or for the executor.
    pub fn is_waiting(self) -> bool {
        matches!(self, RunState::Blocked | RunState::Pending)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            RunState::Blocked | RunState::Pending | RunState::Running
        )
    }
}

impl std::str::FromStr for RunState {
    type Err = UnknownWord;

    fn from_str(text: &str) -> Result<RunState, UnknownWord> {
        RunState::parse(text)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no run state or trigger: from a command line, a query, or a ledger row
/// written by a newer version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not a {what}; expected one of {expected}")]
pub struct UnknownWord {
    pub word: String,
    /// `run state` or `trigger`.
    pub what: &'static str,
    /// The words known, comma-separated.
    pub expected: String,
}

/// What created a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A slot of the job's schedule, fired on time.
    Schedule,
    /// Slots missed while the daemon was down, run once (`missed: run_once`).
    Missed,
    /// `jobctl run` or `jobctl trigger`.
    Manual,
    /// A new attempt of a failed run.
    Retry,
    Webhook,
    Dependency,
    Api,
    /// A slot of a window replayed by `jobctl backfill`, with the revision in force then.
    Backfill,
}

impl Trigger {
    pub const ALL: [Trigger; 8] = [
        Trigger::Schedule,
        Trigger::Missed,
        Trigger::Manual,
        Trigger::Retry,
        Trigger::Webhook,
        Trigger::Dependency,
        Trigger::Api,
        Trigger::Backfill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Missed => "missed",
            Trigger::Manual => "manual",
            Trigger::Retry => "retry",
            Trigger::Webhook => "webhook",
            Trigger::Dependency => "dependency",
            Trigger::Api => "api",
            Trigger::Backfill => "backfill",
        }
    }

    /// The trigger a word names (`schedule`, `manual`, ...).
    ///
    /// # Errors
    ///
    /// [`UnknownWord`] for any other text; its message lists the triggers.
    pub fn parse(text: &str) -> Result<Trigger, UnknownWord> {
        Trigger::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownWord {
                word: text.to_string(),
                what: "trigger",
                expected: Trigger::ALL.map(Trigger::as_str).join(", "),
            })
    }
}

impl std::str::FromStr for Trigger {
    type Err = UnknownWord;

    fn from_str(text: &str) -> Result<Trigger, UnknownWord> {
        Trigger::parse(text)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run changes of its revision's definition (`jobctl trigger NAME --timeout 2h`,
/// `{"timeout": "2h"}`), recorded on the run (a JSON object in `runs.overrides`) and kept by
/// its retries. Nothing else of the revision changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The run's `timeout` in place of the revision's.
    pub timeout: Option<Duration>,
}

/// Why an override was refused; the message says what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("timeout: {0}")]
    Timeout(#[from] DurationError),
    #[error("timeout: `{0}` is zero; give a duration such as `30m` or `2h`")]
    ZeroTimeout(String),
}

impl Overrides {
    /// Overrides with the `timeout` the text gives (`2h`, `90m`), if any.
    ///
    /// # Errors
    ///
    /// When the text is not a positive duration.
    pub fn with_timeout(timeout: Option<&str>) -> Result<Overrides, OverrideError> {
        let timeout = match timeout {
            None => None,
            Some(text) => {
                let d = Duration::parse(text)?;
                if d.is_zero() {
                    return Err(OverrideError::ZeroTimeout(text.to_string()));
                }
                Some(d)
            }
        };
        Ok(Overrides { timeout })
    }

    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

impl fmt::Display for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.timeout {
            Some(t) => write!(f, "timeout {t}"),
            None => f.write_str("none"),
        }
    }
}

/// How a run's process ended, as the executor saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The process exited with a status code.
    Exited(i32),
    /// The process was killed by a signal nobody here sent.
    Signalled(i32),
    /// The job's `timeout` passed; the process group was terminated.
    TimedOut { signal: Option<i32> },
    /// An operator (or `concurrency: replace`, or shutdown) cancelled the run.
    Cancelled { reason: String, signal: Option<i32> },
    /// The process could not be started at all.
    SpawnFailed(String),
    /// Its supervisor died (the daemon was killed); found at the next start.
    Interrupted,
    /// Its node was lost (it stopped heartbeating, or lost the ledger and stopped its runs),
    /// with the reason: failed, and retried by the job's policy.
    Lost(String),
    /// The process exited 0 but its output did not meet the job's `success_when`: failed
    /// (exit status 0 recorded), with why, and retried by the job's policy.
    Unmet(String),
    /// A request (`http`, `prompt`) was answered as expected.
    Completed,
    /// A request failed: no answer, an unexpected status, a stream cut or stalled. The
    /// server's `Retry-After` delays the retry (never sooner than the backoff).
    RequestFailed {
        error: String,
        retry_after: Option<SignedDuration>,
    },
}

/// What a run records when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conclusion {
    pub state: RunState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    /// When to start the next attempt, if the job retries this one.
    pub retry_at: Option<Timestamp>,
}

/// The state, error and retry of a run that ended as `ending`, on its `attempt` (1 for the first
/// run), at `now`.
pub fn conclude(ending: &Ending, retry: Option<Retry>, attempt: u32, now: Timestamp) -> Conclusion {
    let (state, exit_code, signal, error) = match ending {
        Ending::Exited(0) => (RunState::Succeeded, Some(0), None, None),
        Ending::Exited(code) => (
            RunState::Failed,
            Some(*code),
            None,
            Some(format!("exited with status {code}")),
        ),
        Ending::Signalled(sig) => (
            RunState::Failed,
            None,
            Some(*sig),
            Some(format!("killed by signal {} ({sig})", signal_name(*sig))),
        ),
        Ending::TimedOut { signal } => (
            RunState::TimedOut,
            None,
            *signal,
            Some("timed out".to_string()),
        ),
        Ending::Cancelled { reason, signal } => {
            (RunState::Cancelled, None, *signal, Some(reason.clone()))
        }
        Ending::SpawnFailed(message) => (RunState::Failed, None, None, Some(message.clone())),
        Ending::Interrupted => (
            RunState::Failed,
            None,
            None,
            Some("interrupted: the daemon supervising it stopped".to_string()),
        ),
        Ending::Lost(reason) => (RunState::Failed, None, None, Some(reason.clone())),
        Ending::Unmet(reason) => (RunState::Failed, Some(0), None, Some(reason.clone())),
        Ending::Completed => (RunState::Succeeded, None, None, None),
        Ending::RequestFailed { error, .. } => (RunState::Failed, None, None, Some(error.clone())),
    };
    let asked = match ending {
        Ending::RequestFailed {
            retry_after: Some(wait),
            ..
        } => *wait,
        _ => SignedDuration::ZERO,
    };
    let retry_at = match (state, retry) {
        (RunState::Failed | RunState::TimedOut, Some(r)) if attempt <= r.attempts => {
            let wait = backoff(r, attempt).max(asked);
            Some(now.saturating_add(wait).unwrap_or(now))
        }
        _ => None,
    };
    Conclusion {
        state,
        exit_code,
        signal,
        error,
        retry_at,
    }
}

/// The wait before attempt `attempt + 1`: `backoff`, doubled for each earlier attempt, capped
/// at `max_backoff`.
pub fn backoff(retry: Retry, attempt: u32) -> SignedDuration {
    let base = retry.backoff.as_signed();
    let cap = retry.max_backoff.as_signed();
    let factor = 1i32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(i32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// A signal's conventional name, for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_positive_durations() {
        let two_hours = Overrides::with_timeout(Some("2h")).unwrap();
        assert!(Overrides::default().is_empty() && !two_hours.is_empty());
        assert_eq!(two_hours.to_string(), "timeout 2h");
        for (text, message) in [
            (
                "0s",
                "timeout: `0s` is zero; give a duration such as `30m` or `2h`",
            ),
            (
                "soon",
                "timeout: `soon` is not a duration; expected a duration such as `90s`, `15m`, `2h 30m` or `1d`",
            ),
        ] {
            assert_eq!(
                Overrides::with_timeout(Some(text)).unwrap_err().to_string(),
                message
            );
        }
    }
    use crate::duration::Duration;

    const T0: &str = "2026-10-31T12:00:00Z";

    fn retry(attempts: u32) -> Retry {
        Retry {
            attempts,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
        }
    }

    #[test]
    fn endings_conclude_to_states() {
        let now: Timestamp = T0.parse().unwrap();
        type Case = (
            Ending,
            RunState,
            Option<i32>,
            Option<i32>,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (Ending::Exited(0), RunState::Succeeded, Some(0), None, None),
            (
                Ending::Exited(3),
                RunState::Failed,
                Some(3),
                None,
                Some("exited with status 3"),
            ),
            (
                Ending::Signalled(9),
                RunState::Failed,
                None,
                Some(9),
                Some("killed by signal SIGKILL (9)"),
            ),
            (
                Ending::TimedOut { signal: Some(15) },
                RunState::TimedOut,
                None,
                Some(15),
                Some("timed out"),
            ),
            (
                Ending::Interrupted,
                RunState::Failed,
                None,
                None,
                Some("interrupted: the daemon supervising it stopped"),
            ),
        ];
        for (ending, state, code, signal, error) in cases {
            let c = conclude(ending, None, 1, now);
            assert_eq!(c.state, *state, "{ending:?}");
            assert_eq!(c.exit_code, *code, "{ending:?}");
            assert_eq!(c.signal, *signal, "{ending:?}");
            assert_eq!(c.error.as_deref(), *error, "{ending:?}");
            assert_eq!(c.retry_at, None);
        }
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let now: Timestamp = T0.parse().unwrap();
        let at = |attempt| conclude(&Ending::Exited(1), Some(retry(5)), attempt, now).retry_at;
        let secs = |s| Some(now + SignedDuration::from_secs(s));
        assert_eq!(at(1), secs(10));
        assert_eq!(at(2), secs(20));
        assert_eq!(at(3), secs(40));
        assert_eq!(at(4), secs(60), "capped at max_backoff");
        assert_eq!(at(5), secs(60));
        assert_eq!(
            at(6),
            None,
            "5 retries after the first attempt, then no more"
        );
        assert_eq!(at(40), None);
    }

    #[test]
    fn only_failures_and_timeouts_are_retried() {
        let now: Timestamp = T0.parse().unwrap();
        let r = Some(retry(3));
        assert!(conclude(&Ending::Exited(1), r, 1, now).retry_at.is_some());
        assert!(
            conclude(&Ending::TimedOut { signal: None }, r, 1, now)
                .retry_at
                .is_some()
        );
        assert!(conclude(&Ending::Interrupted, r, 1, now).retry_at.is_some());
        assert!(conclude(&Ending::Exited(0), r, 1, now).retry_at.is_none());
        let cancelled = Ending::Cancelled {
            reason: "by operator".into(),
            signal: None,
        };
        assert!(conclude(&cancelled, r, 1, now).retry_at.is_none());
    }

    #[test]
    fn states_and_triggers_round_trip_their_names() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Ok(s));
        }
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.as_str()), Ok(t));
        }
        assert!(
            RunState::parse("done")
                .unwrap_err()
                .to_string()
                .contains("succeeded")
        );
        assert_eq!(
            Trigger::parse("cron").unwrap_err().to_string(),
            "`cron` is not a trigger; expected one of schedule, missed, manual, retry, webhook, dependency, api, backfill"
        );
    }
}
