//! How runs are treated: `retry`, `repeat`, `history`, `output_limit` and `success_when` (`timeout`,
//! `starting_deadline`, `concurrency` and `missed` are one-liners on [`Builder`]).

use super::super::SuccessWhen;
use super::super::raw::{Loc, RawHistory, RawRepeat, RawRetry, RawSize, RawSuccessWhen};
use super::*;

/// The values of `concurrency`, by name.
pub(super) const CONCURRENCY: &[(&str, Concurrency)] = &[
    ("forbid", Concurrency::Forbid),
    ("allow", Concurrency::Allow),
    ("replace", Concurrency::Replace),
];

/// The values of `missed`, by name.
pub(super) const MISSED: &[(&str, Missed)] =
    &[("skip", Missed::Skip), ("run_once", Missed::RunOnce)];

/// `retry`: at most [`MAX_ATTEMPTS`] attempts, a backoff of at least [`MIN_BACKOFF`], and a
/// `max_backoff` no shorter than the backoff.
pub(super) fn retry(b: &mut Builder, raw: Option<Loc<RawRetry>>) -> Option<Retry> {
    let Loc { value: r, at } = raw?;
    let attempts = match r.attempts {
        None => 0,
        Some(a) if a.value > MAX_ATTEMPTS => b
            .beyond_limit(
                a.at,
                MAX_ATTEMPTS,
                format!(
                    "retry.attempts must be at most {MAX_ATTEMPTS} (it is {})",
                    a.value
                ),
                "each attempt is a run in the ledger; a job that keeps failing is retried by its next fire",
            )
            .unwrap_or(0),
        Some(a) => a.value,
    };
    let backoff_at = r.backoff.as_ref().map(|l| l.at).unwrap_or_default();
    let backoff = b
        .duration("retry.backoff", r.backoff)
        .and_then(|d| {
            b.at_least(
                "retry.backoff",
                backoff_at,
                d,
                MIN_BACKOFF,
                "each retry is a run in the ledger; write 1s or more",
            )
        })
        .unwrap_or(DEFAULT_BACKOFF);
    let mut max_backoff = b
        .duration("retry.max_backoff", r.max_backoff)
        .unwrap_or(DEFAULT_MAX_BACKOFF.max(backoff));
    if b.limits == Limits::Clamp {
        // A recorded `backoff: 0s, max_backoff: 0s` stays consistent once clamped.
        max_backoff = max_backoff.max(backoff);
    }
    if max_backoff < backoff {
        b.error(
            at,
            format!("retry.max_backoff ({max_backoff}) is shorter than retry.backoff ({backoff})"),
        );
    }
    Some(Retry {
        attempts,
        backoff,
        max_backoff,
    })
}

/// `repeat`: exactly one of `times: N` (at least 1) and `until: success`.
pub(super) fn repeat(b: &mut Builder, raw: Option<Loc<RawRepeat>>) -> Option<Repeat> {
    let r = raw?;
    match (r.value.times, r.value.until) {
        (Some(times), None) if times.value >= 1 => Some(Repeat::Times(times.value)),
        (Some(times), None) => {
            b.error(times.at, "repeat.times must be at least 1");
            None
        }
        (None, Some(until)) if until.value == "success" => Some(Repeat::UntilSuccess),
        (None, Some(until)) => {
            b.error(
                until.at,
                format!("repeat.until `{}` is not `success`", until.value),
            );
            None
        }
        _ => {
            b.error(
                r.at,
                "repeat needs exactly one of `times: N` or `until: success`",
            );
            None
        }
    }
}

/// `history`: overrides of the configuration's retention, each positive.
pub(super) fn history(b: &mut Builder, raw: Option<Loc<RawHistory>>) -> History {
    let Some(h) = raw else {
        return History::default();
    };
    let keep_runs = match h.value.keep_runs {
        Some(k) if k.value == 0 => {
            b.error(k.at, "history.keep_runs must be at least 1");
            None
        }
        other => other.map(|k| k.value),
    };
    let max_age = b.positive_duration("history.max_age", h.value.max_age);
    History { keep_runs, max_age }
}

/// `output_limit`: a positive size; the default when absent or invalid.
pub(super) fn output_limit(b: &mut Builder, raw: Option<Loc<RawSize>>) -> ByteSize {
    let Some(limit) = raw else {
        return DEFAULT_OUTPUT_LIMIT;
    };
    let parsed = match &limit.value {
        RawSize::Bytes(n) => Ok(ByteSize(*n)),
        RawSize::Text(t) => ByteSize::parse(t),
    };
    match parsed {
        Ok(size) if size.0 > 0 => size,
        Ok(_) => {
            b.error(limit.at, "output_limit must be larger than 0");
            DEFAULT_OUTPUT_LIMIT
        }
        Err(e) => {
            b.error(limit.at, format!("output_limit: {e}"));
            DEFAULT_OUTPUT_LIMIT
        }
    }
}

/// `success_when`: exactly one of `output_matches` and `output_not_matches`, a regular
/// expression (Rust's `regex` syntax) that compiles.
pub(super) fn success_when(
    b: &mut Builder,
    raw: Option<Loc<RawSuccessWhen>>,
) -> Option<SuccessWhen> {
    let raw = raw?;
    let (pattern, matches) = match (raw.value.output_matches, raw.value.output_not_matches) {
        (Some(p), None) => (p, true),
        (None, Some(p)) => (p, false),
        _ => {
            b.error(
                raw.at,
                "success_when needs exactly one of `output_matches: REGEX` or `output_not_matches: REGEX`",
            );
            return None;
        }
    };
    if let Err(e) = regex::Regex::new(&pattern.value) {
        // The regex crate's message is several lines (the pattern, a caret, the reason); its
        // last line says what is wrong.
        let text = e.to_string();
        let why = text
            .lines()
            .last()
            .unwrap_or(&text)
            .trim_start_matches("error: ");
        b.error(
            pattern.at,
            format!("`{}` is not a regular expression: {why}", pattern.value),
        );
        return None;
    }
    Some(SuccessWhen {
        pattern: pattern.value,
        matches,
    })
}
