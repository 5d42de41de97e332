//! Backfill: the slots of a job's schedule in a window, each with the revision that was in
//! force at it (the ledger keeps every revision and when it was applied). Pure: the caller
//! reads the revisions and the slots that already have runs.
//!
//! A revision is in force from its apply until the next one's. Its slots are its own
//! schedule's fires in that span (a change of schedule changes the slots from the apply on);
//! a disabled revision has none, and neither has the time before the job's first apply. A
//! slot that already has a run is left out: a backfill never runs a slot twice.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::schedule::Schedule;

/// One revision of a job and the time it was in force from.
#[derive(Clone, Debug)]
pub struct Span<'a> {
    pub revision_id: i64,
    /// Its number (1, 2, 3…), for people.
    pub number: i64,
    /// When it was applied.
    pub from: Timestamp,
    pub schedule: &'a Schedule,
    pub timezone: &'a TimeZone,
    pub enabled: bool,
    /// Where an `every` schedule without `start_at` counts from.
    pub anchor: Timestamp,
}

/// A slot to backfill, and the revision that was in force at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub at: Timestamp,
    pub revision_id: i64,
    pub revision: i64,
}

/// Why a window cannot be backfilled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackfillError {
    #[error("--from must be before --to")]
    EmptyWindow,
    #[error("the window has more than {limit} slots to run; backfill a shorter window at a time")]
    TooMany { limit: usize },
}

/// The slots that already have a run: each run's range of slots, first to last inclusive (a
/// run that folded missed slots into one covers them all).
#[derive(Clone, Debug, Default)]
pub struct Taken {
    ranges: Vec<(Timestamp, Timestamp)>,
}

impl Taken {
    pub fn new(mut ranges: Vec<(Timestamp, Timestamp)>) -> Taken {
        ranges.sort_unstable();
        Taken { ranges }
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        // The ranges that start at or before `at`; a long one may cover it from far back.
        let end = self.ranges.partition_point(|(first, _)| *first <= at);
        self.ranges[..end].iter().rev().any(|(_, last)| *last >= at)
    }
}

/// The slots in `[from, to)` of the job whose revisions are `spans` (in apply order) that
/// have no run yet (`taken`), oldest first, at most `limit`.
///
/// # Errors
///
/// [`BackfillError::EmptyWindow`] when `from` is not before `to`, [`BackfillError::TooMany`]
/// when more than `limit` slots are found.
pub fn slots(
    spans: &[Span<'_>],
    from: Timestamp,
    to: Timestamp,
    taken: &Taken,
    limit: usize,
) -> Result<Vec<Slot>, BackfillError> {
    if from >= to {
        return Err(BackfillError::EmptyWindow);
    }
    let mut found = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let start = span.from.max(from);
        let end = spans.get(i + 1).map_or(to, |next| next.from.min(to));
        if start >= end || !span.enabled {
            continue;
        }
        // Fires strictly after the instant just before `start`: `start` itself counts.
        let mut after = start
            .checked_sub(jiff::SignedDuration::from_nanos(1))
            .unwrap_or(start);
        'fires: loop {
            let batch = span
                .schedule
                .next_fires(span.timezone, span.anchor, after, 64);
            if batch.is_empty() {
                break;
            }
            for at in batch {
                if at >= end {
                    break 'fires;
                }
                after = at;
                if taken.contains(at) {
                    continue;
                }
                if found.len() == limit {
                    return Err(BackfillError::TooMany { limit });
                }
                found.push(Slot {
                    at,
                    revision_id: span.revision_id,
                    revision: span.number,
                });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cron(expr: &str) -> Schedule {
        Schedule::Cron(crate::cron::CronExpr::parse(expr).unwrap())
    }

    #[test]
    fn each_slot_runs_the_revision_in_force_at_it() {
        let utc = TimeZone::UTC;
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let (hourly, daily, half) = (cron("0 * * * *"), cron("0 3 * * *"), cron("30 * * * *"));
        let spans = [
            // Hourly from 10:00, then every day at 03:00 Berlin from 13:30, then disabled at
            // 15:00, then at half past from 16:10.
            Span {
                revision_id: 11,
                number: 1,
                from: at("2026-03-28T10:00:00Z"),
                schedule: &hourly,
                timezone: &utc,
                enabled: true,
                anchor: at("2026-03-28T10:00:00Z"),
            },
            Span {
                revision_id: 12,
                number: 2,
                from: at("2026-03-28T13:30:00Z"),
                schedule: &daily,
                timezone: &berlin,
                enabled: true,
                anchor: at("2026-03-28T13:30:00Z"),
            },
            Span {
                revision_id: 13,
                number: 3,
                from: at("2026-03-29T15:00:00Z"),
                schedule: &daily,
                timezone: &berlin,
                enabled: false,
                anchor: at("2026-03-29T15:00:00Z"),
            },
            Span {
                revision_id: 14,
                number: 4,
                from: at("2026-03-29T16:10:00Z"),
                schedule: &half,
                timezone: &utc,
                enabled: true,
                anchor: at("2026-03-29T16:10:00Z"),
            },
        ];
        // 12:00 ran; a run at 01:00 folded the missed 23:00 to 01:00 (Berlin's 03:00 is outside).
        let taken = Taken::new(vec![
            (at("2026-03-28T12:00:00Z"), at("2026-03-28T12:00:00Z")),
            (at("2026-03-28T23:00:00Z"), at("2026-03-29T00:00:00Z")),
        ]);
        let got = slots(
            &spans,
            at("2026-03-28T09:00:00Z"),
            at("2026-03-29T18:00:00Z"),
            &taken,
            100,
        )
        .unwrap();
        let got: Vec<(String, i64)> = got.iter().map(|s| (s.at.to_string(), s.revision)).collect();
        let want = [
            // Before the first apply (09:00) nothing; 12:00 has a run already.
            ("2026-03-28T10:00:00Z", 1),
            ("2026-03-28T11:00:00Z", 1),
            ("2026-03-28T13:00:00Z", 1),
            // 03:00 in Berlin on the night clocks go forward (CET to CEST): 01:00 UTC.
            ("2026-03-29T01:00:00Z", 2),
            // Disabled from 15:00; the new schedule from 16:10.
            ("2026-03-29T16:30:00Z", 4),
            ("2026-03-29T17:30:00Z", 4),
        ];
        let want: Vec<(String, i64)> = want.iter().map(|(t, r)| (t.to_string(), *r)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn taken_ranges_cover_their_first_and_last_slots_and_what_is_between() {
        let taken = Taken::new(vec![
            (at("2026-01-01T05:00:00Z"), at("2026-01-01T05:00:00Z")),
            (at("2026-01-01T00:00:00Z"), at("2026-01-01T03:00:00Z")),
        ]);
        for (t, want) in [
            ("2025-12-31T23:00:00Z", false),
            ("2026-01-01T00:00:00Z", true),
            ("2026-01-01T02:00:00Z", true),
            ("2026-01-01T03:00:00Z", true),
            ("2026-01-01T04:00:00Z", false),
            ("2026-01-01T05:00:00Z", true),
            ("2026-01-01T06:00:00Z", false),
        ] {
            assert_eq!(taken.contains(at(t)), want, "{t}");
        }
    }

    #[test]
    fn a_window_is_bounded_and_must_not_be_empty() {
        let utc = TimeZone::UTC;
        let minutely = cron("* * * * *");
        let spans = [Span {
            revision_id: 1,
            number: 1,
            from: at("2026-01-01T00:00:00Z"),
            schedule: &minutely,
            timezone: &utc,
            enabled: true,
            anchor: at("2026-01-01T00:00:00Z"),
        }];
        let none = Taken::default();
        for (from, to, limit, want) in [
            (
                "2026-01-02T00:00:00Z",
                "2026-01-02T00:00:00Z",
                10,
                Err(BackfillError::EmptyWindow),
            ),
            ("2026-01-02T00:00:00Z", "2026-01-02T00:10:00Z", 10, Ok(10)),
            (
                "2026-01-02T00:00:00Z",
                "2026-01-02T00:11:00Z",
                10,
                Err(BackfillError::TooMany { limit: 10 }),
            ),
        ] {
            let got = slots(&spans, at(from), at(to), &none, limit).map(|s| s.len());
            assert_eq!(got, want, "{from} {to}");
        }
        let manual = Schedule::Manual;
        let spans = [Span {
            schedule: &manual,
            ..spans[0].clone()
        }];
        assert_eq!(
            slots(
                &spans,
                at("2026-01-02T00:00:00Z"),
                at("2026-01-03T00:00:00Z"),
                &none,
                10
            ),
            Ok(Vec::new()),
            "a manual job has no slots"
        );
    }
}
