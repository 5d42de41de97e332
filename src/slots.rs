//! Slots: which scheduled instants of a job are due, and what becomes of each.
//!
//! Every instant a job's schedule names is a *slot*. The scheduler keeps, per job, a cursor:
//! the instant up to which every slot has been accounted for in the ledger. [`decide`] takes
//! the job, its cursor and `now`, and returns the rows to write for the slots in
//! `(cursor, now]`: one fired, or skipped (paused, overlap), or missed, always with a reason,
//! and ranges of slots folded into one row when there are many (a daemon that was down a
//! year). The ledger keys rows by (job, slot), so a slot can never be written, or fired, twice.
//!
//! Pure: no clock (`now` is an argument), no I/O. Counting is arithmetic for `every`, and for
//! `cron` bit counts per day plus a short walk around each time-zone transition
//! (`CronExpr::fires_between`), so a century-long outage is decided in milliseconds.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::duration::Duration;
use crate::rules::{self, Admission, SkipReason};
use crate::run::Trigger;
use crate::schedule::Schedule;
use crate::spec::{Concurrency, Missed};

/// A slot later than this, when the scheduler gets to it, was missed (the daemon was down or
/// the machine asleep) rather than fired on time.
pub const LATE_AFTER: SignedDuration = SignedDuration::from_secs(60);

/// What the scheduler knows about one job when it decides its due slots.
#[derive(Clone, Copy, Debug)]
pub struct JobClock<'a> {
    pub schedule: &'a Schedule,
    pub tz: &'a TimeZone,
    /// When an `every` schedule without `start_at` started counting.
    pub anchor: Timestamp,
    /// Every slot up to and including this instant is already accounted for.
    pub cursor: Timestamp,
    pub missed: Missed,
    pub starting_deadline: Option<Duration>,
    pub concurrency: Concurrency,
    /// The operator paused the job (`jobctl pause`).
    pub paused: bool,
    /// A run of this job is pending or running.
    pub active: bool,
}

/// One ledger row: a slot, or a range of slots folded together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRow {
    /// The row's key: the latest slot it accounts for.
    pub slot: Timestamp,
    /// The earliest slot it accounts for (equal to `slot` for a single one).
    pub first: Timestamp,
    /// How many slots it accounts for.
    pub count: u64,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Start a run. `replace` cancels the job's active run first (`concurrency: replace`).
    Fire { trigger: Trigger, replace: bool },
    /// Recorded as a skipped run, with the reason.
    Skipped { reason: String },
    /// Recorded as missed (never run), with the reason.
    Missed { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Rows to write, oldest first.
    pub rows: Vec<SlotRow>,
    /// The new cursor: every slot up to it is accounted for by `rows` or earlier ones.
    pub cursor: Timestamp,
    /// The next slot after `now`, when the scheduler should look again.
    pub next: Option<Timestamp>,
}

/// Slots in a half-open range `(after, until]`: how many, the first and the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    count: u64,
    first: Timestamp,
    last: Timestamp,
}

/// Decides the slots of `job` due in `(job.cursor, now]`.
pub fn decide(job: &JobClock<'_>, now: Timestamp) -> Decision {
    let next = job
        .schedule
        .next_fires(job.tz, job.anchor, now.max(job.cursor), 1)
        .first()
        .copied();
    let mut rows = Vec::new();
    if job.cursor >= now {
        return Decision {
            rows,
            cursor: job.cursor,
            next,
        };
    }
    if job.paused {
        if let Some(span) = slots_between(job, job.cursor, now) {
            rows.push(row(
                span,
                Outcome::Skipped {
                    reason: SkipReason::Paused.to_string(),
                },
            ));
        }
        return Decision {
            rows,
            cursor: now,
            next,
        };
    }
    let from = missed_by_deadline(job, now, &mut rows);
    if let Some((span, trigger)) = due(job, from, now, &mut rows) {
        // Paused was decided above, for every slot.
        let outcome = match rules::admit(false, job.concurrency, job.active) {
            Admission::Skip(reason) => Outcome::Skipped {
                reason: reason.to_string(),
            },
            Admission::Run { replace } => Outcome::Fire { trigger, replace },
        };
        rows.push(row(span, outcome));
    }
    Decision {
        rows,
        cursor: now,
        next,
    }
}

/// Records as missed the slots older than the job's `starting_deadline` allows; where the
/// slots still to decide start.
fn missed_by_deadline(job: &JobClock<'_>, now: Timestamp, rows: &mut Vec<SlotRow>) -> Timestamp {
    let Some(deadline) = job.starting_deadline else {
        return job.cursor;
    };
    let cut = now.saturating_sub(deadline.as_signed()).unwrap_or(now);
    if cut <= job.cursor {
        return job.cursor;
    }
    if let Some(span) = slots_between(job, job.cursor, cut) {
        rows.push(row(
            span,
            Outcome::Missed {
                reason: format!("not started within its starting_deadline ({deadline})"),
            },
        ));
    }
    cut
}

/// The slots in `(from, now]` to fire as one run, and how it was triggered: slots later than
/// [`LATE_AFTER`] were missed (the daemon was down) and, by the job's `missed` policy, are
/// recorded as missed or folded into the run.
fn due(
    job: &JobClock<'_>,
    from: Timestamp,
    now: Timestamp,
    rows: &mut Vec<SlotRow>,
) -> Option<(Span, Trigger)> {
    let late_cut = now.saturating_sub(LATE_AFTER).unwrap_or(now);
    let late = if late_cut > from {
        slots_between(job, from, late_cut)
    } else {
        None
    };
    let on_time = slots_between(job, from.max(late_cut), now);
    match (late, on_time, job.missed) {
        (None, None, _) => None,
        (Some(late), None, Missed::RunOnce) => Some((late, Trigger::Missed)),
        (Some(late), on_time, Missed::Skip) => {
            rows.push(row(
                late,
                Outcome::Missed {
                    reason: "missed while the daemon was not running (missed: skip)".to_string(),
                },
            ));
            on_time.map(|s| (s, Trigger::Schedule))
        }
        (Some(late), Some(on_time), Missed::RunOnce) => Some((
            Span {
                count: late.count + on_time.count,
                first: late.first,
                last: on_time.last,
            },
            Trigger::Schedule,
        )),
        (None, Some(on_time), _) => Some((on_time, Trigger::Schedule)),
    }
}

fn row(span: Span, outcome: Outcome) -> SlotRow {
    SlotRow {
        slot: span.last,
        first: span.first,
        count: span.count,
        outcome,
    }
}

/// The slots of `job` in `(after, until]`, if any.
fn slots_between(job: &JobClock<'_>, after: Timestamp, until: Timestamp) -> Option<Span> {
    if until <= after {
        return None;
    }
    match job.schedule {
        Schedule::Manual | Schedule::After(_) => None,
        Schedule::At(at) => (at.instant > after && at.instant <= until).then_some(Span {
            count: 1,
            first: at.instant,
            last: at.instant,
        }),
        Schedule::Every { interval, start_at } => {
            let step = interval.as_signed().as_nanos();
            if step <= 0 {
                return None;
            }
            let origin = match start_at {
                Some(s) => s.instant,
                None => job.anchor.checked_add(interval.as_signed()).ok()?,
            };
            // Slots are origin + k·step for k ≥ 0.
            let index_after = |t: Timestamp| -> i128 {
                // The smallest k whose slot is strictly after t.
                let d = t.as_nanosecond() - origin.as_nanosecond();
                if d < 0 { 0 } else { d / step + 1 }
            };
            let first_k = index_after(after);
            let end_k = index_after(until); // slots with k < end_k are ≤ until
            if end_k <= first_k {
                return None;
            }
            let at = |k: i128| Timestamp::from_nanosecond(origin.as_nanosecond() + k * step).ok();
            Some(Span {
                count: u64::try_from(end_k - first_k).unwrap_or(u64::MAX),
                first: at(first_k)?,
                last: at(end_k - 1)?,
            })
        }
        Schedule::Cron(cron) => cron.fires_between(job.tz, after, until).map(|fires| Span {
            count: fires.count,
            first: fires.first,
            last: fires.last,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::CronExpr;
    use crate::schedule::AtTime;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn every(secs: i64) -> Schedule {
        Schedule::Every {
            interval: Duration::from_secs(secs),
            start_at: None,
        }
    }

    fn cron(expr: &str) -> Schedule {
        Schedule::Cron(CronExpr::parse(expr).unwrap())
    }

    struct Case {
        schedule: Schedule,
        tz: &'static str,
        cursor: &'static str,
        now: &'static str,
        missed: Missed,
        deadline: Option<i64>,
        paused: bool,
        active: bool,
        concurrency: Concurrency,
    }

    impl Case {
        fn new(schedule: Schedule, cursor: &'static str, now: &'static str) -> Case {
            Case {
                schedule,
                tz: "UTC",
                cursor,
                now,
                missed: Missed::RunOnce,
                deadline: None,
                paused: false,
                active: false,
                concurrency: Concurrency::Forbid,
            }
        }

        fn decide(&self) -> Decision {
            let tz = jiff::tz::db().get(self.tz).unwrap();
            let job = JobClock {
                schedule: &self.schedule,
                tz: &tz,
                anchor: ts(self.cursor),
                cursor: ts(self.cursor),
                missed: self.missed,
                starting_deadline: self.deadline.map(Duration::from_secs),
                concurrency: self.concurrency,
                paused: self.paused,
                active: self.active,
            };
            decide(&job, ts(self.now))
        }

        /// The rows as `(first, slot, count, outcome)` text, for compact expectations.
        fn rows(&self) -> Vec<String> {
            self.decide()
                .rows
                .iter()
                .map(|r| {
                    let outcome = match &r.outcome {
                        Outcome::Fire { trigger, replace } => {
                            format!("fire {trigger}{}", if *replace { " replace" } else { "" })
                        }
                        Outcome::Skipped { reason } => format!("skipped: {reason}"),
                        Outcome::Missed { reason } => format!("missed: {reason}"),
                    };
                    format!("{} {} x{} {outcome}", r.first, r.slot, r.count)
                })
                .collect()
        }
    }

    #[test]
    fn a_slot_due_now_fires_once_and_moves_the_cursor() {
        let case = Case::new(
            every(60),
            "2026-10-31T12:00:00Z",
            "2026-10-31T12:01:00.002Z",
        );
        assert_eq!(
            case.rows(),
            ["2026-10-31T12:01:00Z 2026-10-31T12:01:00Z x1 fire schedule"]
        );
        let d = case.decide();
        assert_eq!(d.cursor, ts("2026-10-31T12:01:00.002Z"));
        assert_eq!(d.next, Some(ts("2026-10-31T12:02:00Z")));
    }

    #[test]
    fn nothing_is_due_before_the_first_slot_and_never_early() {
        let case = Case::new(
            every(60),
            "2026-10-31T12:00:00Z",
            "2026-10-31T12:00:59.999Z",
        );
        assert!(case.rows().is_empty());
        assert_eq!(case.decide().next, Some(ts("2026-10-31T12:01:00Z")));
    }

    #[test]
    fn deciding_again_at_the_new_cursor_writes_nothing() {
        let first = Case::new(every(60), "2026-10-31T12:00:00Z", "2026-10-31T12:01:00Z");
        assert_eq!(first.rows().len(), 1);
        let again = Case {
            cursor: "2026-10-31T12:01:00Z",
            ..Case::new(every(60), "2026-10-31T12:00:00Z", "2026-10-31T12:01:00Z")
        };
        assert!(again.rows().is_empty(), "a slot is never decided twice");
    }

    #[test]
    fn missed_slots_run_once_with_the_count() {
        // Down from 12:00 to 15:00:30 with an hourly job: 13:00, 14:00 and 15:00 were missed,
        // and 15:00 is 30 s late, still on time: one run for all three.
        let case = Case::new(
            cron("0 * * * *"),
            "2026-10-31T12:00:00Z",
            "2026-10-31T15:00:30Z",
        );
        assert_eq!(
            case.rows(),
            ["2026-10-31T13:00:00Z 2026-10-31T15:00:00Z x3 fire schedule"]
        );
        // At 15:05 even the last one is late: the run is a `missed` one.
        let late = Case::new(
            cron("0 * * * *"),
            "2026-10-31T12:00:00Z",
            "2026-10-31T15:05:00Z",
        );
        assert_eq!(
            late.rows(),
            ["2026-10-31T13:00:00Z 2026-10-31T15:00:00Z x3 fire missed"]
        );
    }

    #[test]
    fn missed_skip_records_them_and_fires_only_on_time_slots() {
        let case = Case {
            missed: Missed::Skip,
            ..Case::new(
                cron("0 * * * *"),
                "2026-10-31T12:00:00Z",
                "2026-10-31T15:00:00.5Z",
            )
        };
        assert_eq!(
            case.rows(),
            [
                "2026-10-31T13:00:00Z 2026-10-31T14:00:00Z x2 missed: missed while the daemon was not running (missed: skip)",
                "2026-10-31T15:00:00Z 2026-10-31T15:00:00Z x1 fire schedule",
            ]
        );
    }

    #[test]
    fn starting_deadline_drops_old_slots_whatever_the_policy() {
        let case = Case {
            deadline: Some(30 * 60),
            ..Case::new(
                cron("*/15 * * * *"),
                "2026-10-31T12:00:00Z",
                "2026-10-31T13:10:00Z",
            )
        };
        // Slots 12:15 .. 12:30 are older than 30 min; 12:45 and 13:00 are late but within it.
        assert_eq!(
            case.rows(),
            [
                "2026-10-31T12:15:00Z 2026-10-31T12:30:00Z x2 missed: not started within its starting_deadline (30m)",
                "2026-10-31T12:45:00Z 2026-10-31T13:00:00Z x2 fire missed",
            ]
        );
    }

    #[test]
    fn a_year_down_is_counted_exactly() {
        // The speed is measured by the daemon benchmark; here, the counts must be exact.
        let every_second = Case::new(every(1), "2025-10-31T12:00:00Z", "2026-10-31T12:00:00Z");
        assert_eq!(
            every_second.rows(),
            ["2025-10-31T12:00:01Z 2026-10-31T12:00:00Z x31536000 fire schedule"]
        );
        let every_minute = Case::new(
            cron("* * * * *"),
            "2025-10-31T12:00:00Z",
            "2026-10-31T12:00:00Z",
        );
        assert_eq!(
            every_minute.rows(),
            ["2025-10-31T12:01:00Z 2026-10-31T12:00:00Z x525600 fire schedule"]
        );
    }

    #[test]
    fn a_century_down_is_decided_with_little_work() {
        // Issue 12: a minutely cron job 100 years behind took 52 million `next_after` calls
        // (19 s). A wildcard job fires at every real minute whatever DST does, so the count is
        // the minutes in the range; a fixed-time daily one fires once each day.
        let (from, to) = ("2026-10-31T12:00:00Z", "2126-10-31T12:00:00Z");
        let minutes = (ts(to).as_second() - ts(from).as_second()) / 60;
        let days = jiff::civil::date(2026, 11, 1)
            .until((jiff::Unit::Day, jiff::civil::date(2126, 10, 31)))
            .unwrap()
            .get_days()
            + 1;
        for (expr, expected) in [
            (
                "* * * * *",
                format!("2026-10-31T12:01:00Z 2126-10-31T12:00:00Z x{minutes} fire schedule"),
            ),
            (
                "30 2 * * *",
                format!("2026-11-01T01:30:00Z 2126-10-31T01:30:00Z x{days} fire missed"),
            ),
        ] {
            let case = Case {
                tz: "Europe/Berlin",
                ..Case::new(cron(expr), from, to)
            };
            crate::cron::CIVIL_SEARCHES.with(|n| n.set(0));
            assert_eq!(case.rows(), [expected], "{expr}");
            let work = crate::cron::CIVIL_SEARCHES.with(std::cell::Cell::get);
            assert!(work < 1_000_000, "{expr}: {work} wall-clock searches");
        }
    }

    #[test]
    fn overlap_and_pause_skip_with_a_reason() {
        let forbid = Case {
            active: true,
            ..Case::new(every(60), "2026-10-31T12:00:00Z", "2026-10-31T12:01:00Z")
        };
        assert_eq!(
            forbid.rows(),
            [
                "2026-10-31T12:01:00Z 2026-10-31T12:01:00Z x1 skipped: the previous run is still active (concurrency: forbid)"
            ]
        );
        let replace = Case {
            active: true,
            concurrency: Concurrency::Replace,
            ..Case::new(every(60), "2026-10-31T12:00:00Z", "2026-10-31T12:01:00Z")
        };
        assert_eq!(
            replace.rows(),
            ["2026-10-31T12:01:00Z 2026-10-31T12:01:00Z x1 fire schedule replace"]
        );
        let allow = Case {
            active: true,
            concurrency: Concurrency::Allow,
            ..Case::new(every(60), "2026-10-31T12:00:00Z", "2026-10-31T12:01:00Z")
        };
        assert_eq!(
            allow.rows(),
            ["2026-10-31T12:01:00Z 2026-10-31T12:01:00Z x1 fire schedule"]
        );
        let paused = Case {
            paused: true,
            ..Case::new(every(60), "2026-10-31T12:00:00Z", "2026-10-31T12:03:00Z")
        };
        assert_eq!(
            paused.rows(),
            ["2026-10-31T12:01:00Z 2026-10-31T12:03:00Z x3 skipped: the job is paused"]
        );
    }

    #[test]
    fn at_fires_once_and_then_never() {
        let at = Schedule::At(AtTime {
            text: "2026-10-31T13:00:00Z".into(),
            instant: ts("2026-10-31T13:00:00Z"),
        });
        let due = Case::new(
            at.clone(),
            "2026-10-31T12:00:00Z",
            "2026-10-31T13:00:00.001Z",
        );
        assert_eq!(
            due.rows(),
            ["2026-10-31T13:00:00Z 2026-10-31T13:00:00Z x1 fire schedule"]
        );
        assert_eq!(due.decide().next, None);
        let after = Case::new(at, "2026-10-31T13:00:00.001Z", "2026-10-31T14:00:00Z");
        assert!(after.rows().is_empty());
    }

    #[test]
    fn manual_and_after_schedules_have_no_slots() {
        for schedule in [Schedule::Manual, Schedule::After(vec![])] {
            let case = Case::new(schedule, "2026-10-31T12:00:00Z", "2027-10-31T12:00:00Z");
            assert!(case.rows().is_empty());
            assert_eq!(case.decide().next, None);
        }
    }

    #[test]
    fn cron_slots_follow_dst_in_the_jobs_zone() {
        // Berlin springs forward on 2026-03-29 at 02:00 local: a 02:30 job fires at 03:00
        // local (01:00 UTC) that day, once.
        let spring = Case {
            tz: "Europe/Berlin",
            ..Case::new(
                cron("30 2 * * *"),
                "2026-03-28T12:00:00Z",
                "2026-03-29T01:00:00.5Z",
            )
        };
        assert_eq!(
            spring.rows(),
            ["2026-03-29T01:00:00Z 2026-03-29T01:00:00Z x1 fire schedule"]
        );
        // On 2026-10-25 02:30 happens twice; a fixed-time job fires only at the first.
        let autumn = Case {
            tz: "Europe/Berlin",
            ..Case::new(
                cron("30 2 * * *"),
                "2026-10-24T12:00:00Z",
                "2026-10-25T01:31:00Z",
            )
        };
        assert_eq!(
            autumn.rows(),
            ["2026-10-25T00:30:00Z 2026-10-25T00:30:00Z x1 fire missed"]
        );
        assert_eq!(autumn.decide().next, Some(ts("2026-10-26T01:30:00Z")));
    }
}
