//! What the CLI prints and the HTTP API answers about jobs, built from ledger rows: one shape
//! for both (defined in `api::wire`), so `jobctl list` and `jobctl list --server URL` say the
//! same thing.

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::api::wire::{
    DaemonView, FilesView, FiresView, GraphJob, GraphView, JobDetail, JobFires, JobSummary,
    LastRunView, NextFire, NodeView, ParamView, PauseView, StatusView,
};
use crate::ledger::{JobRow, applied_stamp, stamp};
use crate::schedule::Schedule;
use crate::spec::Repeat;

pub mod listing;

/// RFC 3339 with the zone's offset, to the second.
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The job's state: `removed`, then `disabled`, `paused`, `completed`, `blocked`, `active`,
/// the first that holds.
pub fn state_of(row: &JobRow) -> &'static str {
    let completed = || row.completed_at.is_some() || at_has_fired(row);
    match (row.active, row.enabled) {
        (false, _) => "removed",
        (true, false) => "disabled",
        (true, true) if row.paused.is_some() => "paused",
        (true, true) if completed() => "completed",
        (true, true) if row.blocked.is_some() => "blocked",
        (true, true) => "active",
    }
}

/// Whether `row` is an `at` job whose one-off has fired (its slot is accounted for).
pub fn at_has_fired(row: &JobRow) -> bool {
    match &row.schedule {
        Schedule::At(at) => row.completed_at.is_some() || at.instant <= row.slot_cursor,
        _ => false,
    }
}

/// Whether the files' `at` job `name` (content `hash`) is the ledger's and has fired: its
/// "in the past" warning is then noise (see `Catalog::quiet_fired_at`).
pub fn fired_unchanged(rows: &[JobRow], name: &str, hash: &str) -> bool {
    rows.iter()
        .any(|r| r.name == name && r.active && r.content_hash == hash && at_has_fired(r))
}

/// A `repeat` job's count, from the revision's stored `repeat`.
fn progress_of(row: &JobRow) -> Option<String> {
    if let Repeat::Times(times) = row.repeat? {
        let times = i64::from(times);
        return Some(format!("{} of {times}", row.fires.min(times)));
    }
    let runs = if row.fires == 1 { "run" } else { "runs" };
    Some(match &row.completed_at {
        Some(_) => format!("succeeded after {} {runs}", row.fires),
        None => format!("until success, {} {runs} so far", row.fires),
    })
}

/// The next `n` fires of a job's stored schedule after `now`, in its time zone.
pub fn next_fires_in(row: &JobRow, now: Timestamp, n: usize) -> Vec<Zoned> {
    if !row.active || !row.enabled || row.completed_at.is_some() {
        return Vec::new();
    }
    let tz = &row.timezone;
    row.schedule
        .next_fires(tz, row.schedule_anchor, now, n)
        .into_iter()
        .map(|t| t.to_zoned(tz.clone()))
        .collect()
}

/// The most fires counted for one job in a window: a job firing every second for a week
/// is counted up to here (its hourly buckets then fall short, and it is `truncated`).
pub const MAX_FIRES_COUNTED: usize = 50_000;

/// The fires of `rows` in `[from, to)` (at most `per_job` listed per job, all counted up to
/// [`MAX_FIRES_COUNTED`]), with the number per hour from `from`: the timeline's coming fires
/// and its heat map of load.
pub fn fires_in(rows: &[JobRow], from: Timestamp, to: Timestamp, per_job: usize) -> FiresView {
    let hours = usize::try_from(to.duration_since(from).as_secs().max(0) / 3600 + 1).unwrap_or(1);
    let mut hourly = vec![0u64; hours];
    let mut jobs = Vec::new();
    // A cron job's fires depend on its expression and zone alone: of 10,000 jobs most share
    // a few hundred, each computed once.
    let mut by_cron: HashMap<(&str, &str), Fires> = HashMap::new();
    for row in rows {
        if !row.active || !row.enabled || row.completed_at.is_some() {
            continue;
        }
        let own;
        let fires = match &row.schedule {
            Schedule::Cron(cron) => by_cron
                .entry((cron.as_str(), zone_name(&row.timezone)))
                .or_insert_with(|| fires_of(row, from, to, per_job)),
            _ => {
                own = fires_of(row, from, to, per_job);
                &own
            }
        };
        for &(hour, n) in &fires.hours {
            if let Some(bucket) = hourly.get_mut(hour) {
                *bucket += n;
            }
        }
        if fires.total > 0 {
            jobs.push(JobFires {
                job: row.name.clone(),
                timezone: zone_name(&row.timezone).to_string(),
                truncated: fires.total > fires.listed.len() as u64,
                fires: fires.listed.clone(),
                total: fires.total,
            });
        }
    }
    jobs.sort_by(|a, b| a.job.cmp(&b.job));
    FiresView {
        from: stamp(from),
        to: stamp(to),
        jobs,
        hourly,
    }
}

/// One job's fires in a window: the first `per_job` listed, all counted, and how many fall
/// in each hour from the window's start (hour, count; the hours that have any).
struct Fires {
    listed: Vec<String>,
    total: u64,
    hours: Vec<(usize, u64)>,
}

fn fires_of(row: &JobRow, from: Timestamp, to: Timestamp, per_job: usize) -> Fires {
    // Strictly after `from` minus a nanosecond: a fire at `from` itself is in.
    let start = from
        .checked_sub(jiff::SignedDuration::from_nanos(1))
        .unwrap_or(from);
    let mut out = Fires {
        listed: Vec::new(),
        total: 0,
        hours: Vec::new(),
    };
    let mut after = start;
    // Batches that double from 2: a daily job costs a fire past the window, not a
    // thousand; a job firing every second still takes big steps.
    let mut size = 2;
    'batches: while out.total < MAX_FIRES_COUNTED as u64 {
        let batch = row
            .schedule
            .next_fires(&row.timezone, row.schedule_anchor, after, size);
        let full = batch.len() == size;
        size = (size * 2).min(4096);
        for t in batch {
            if t >= to {
                break 'batches;
            }
            out.total += 1;
            let hour = usize::try_from(t.duration_since(from).as_secs() / 3600).unwrap_or(0);
            match out.hours.last_mut() {
                Some((h, n)) if *h == hour => *n += 1,
                _ => out.hours.push((hour, 1)),
            }
            if out.listed.len() < per_job {
                out.listed.push(rfc3339(&t.to_zoned(row.timezone.clone())));
            }
            after = t;
        }
        if !full {
            break;
        }
    }
    out
}

/// A cron expression in English. One [`crate::cron::Describer`] per thread remembers what
/// croner wrote for each hour field and each set of day fields: croner's description cost more
/// than the rest of a `GET /v1/jobs/{name}`, and `list` at 10,000 jobs spent 42% of its CPU in
/// it, re-parsing hundreds of distinct expressions.
fn describe(cron: &crate::cron::CronExpr) -> String {
    thread_local! {
        static DESCRIBER: std::cell::RefCell<crate::cron::Describer> =
            std::cell::RefCell::default();
    }
    DESCRIBER.with(|describer| describer.borrow_mut().describe(cron))
}

fn schedule_kind(schedule: &Schedule) -> &'static str {
    match schedule {
        Schedule::Cron(_) => "cron",
        Schedule::Every { .. } => "every",
        Schedule::At(_) => "at",
        Schedule::After(_) => "after",
        Schedule::Manual => "manual",
    }
}

/// A zone's IANA name, as the ledger stores it (every zone a job can name has one).
pub fn zone_name(tz: &TimeZone) -> &str {
    tz.iana_name().unwrap_or("UTC")
}

/// The list views of `rows` at `now`, each with its run counts (`runs`, by job name; taken
/// out of the map), built on all cores: `list` at 10,000 jobs is this.
pub fn summaries(
    rows: &[JobRow],
    runs: &mut HashMap<String, BTreeMap<String, i64>>,
    now: Timestamp,
) -> Vec<JobSummary> {
    use rayon::prelude::*;
    let counts: Vec<BTreeMap<String, i64>> = rows
        .iter()
        .map(|r| runs.remove(&r.name).unwrap_or_default())
        .collect();
    rows.par_iter()
        .zip(counts)
        .map(|(row, counts)| {
            let next = next_fires_in(row, now, 1).into_iter().next();
            summary(row, next.as_ref(), counts)
        })
        .collect()
}

/// The list view of a job, given its next fire and run counts.
pub fn summary(row: &JobRow, next_fire: Option<&Zoned>, runs: BTreeMap<String, i64>) -> JobSummary {
    let schedule = &row.schedule;
    JobSummary {
        name: row.name.clone(),
        description: row.description.clone(),
        state: state_of(row).to_string(),
        progress: progress_of(row),
        blocked: row.blocked.clone(),
        failure_streak: row.failure_streak,
        enabled: row.enabled,
        paused: row.paused.as_ref().map(PauseView::from),
        owner: row.owner.as_str().to_string(),
        schedule: schedule.to_string(),
        schedule_kind: schedule_kind(schedule).to_string(),
        schedule_description: Some(match schedule {
            Schedule::Cron(c) => describe(c),
            other => other.to_string(),
        }),
        timezone: zone_name(&row.timezone).to_string(),
        next_fire: next_fire.map(rfc3339),
        file: row.source_path.clone(),
        revision: row.revision,
        git_commit: row.git_commit.clone(),
        tags: row.tags.clone(),
        last_run: row.last_run.as_ref().map(LastRunView::from),
        last_failure_at: row.last_failed_at.map(stamp),
        runs,
    }
}

/// The full view of a job.
pub fn detail(
    row: &JobRow,
    fires: &[Zoned],
    runs: BTreeMap<String, i64>,
    revisions: i64,
    now: Timestamp,
) -> JobDetail {
    let year = now
        .checked_add(jiff::SignedDuration::from_hours(24 * 366))
        .unwrap_or(now);
    let dst_notes = if fires.is_empty() {
        Vec::new()
    } else {
        row.schedule.dst_notes(&row.timezone, now, year)
    };
    JobDetail {
        summary: summary(row, fires.first(), runs),
        next_fires: fires.iter().map(rfc3339).collect(),
        revisions,
        content_hash: row.content_hash.clone(),
        git_dirty: row.git_dirty,
        applied_at: applied_stamp(row.updated_at),
        created_at: applied_stamp(row.created_at),
        removed_at: row.removed_at.map(applied_stamp),
        definition: row.definition.clone(),
        params: params_of(&row.definition),
        dst_notes,
    }
}

/// The `params` a normalized definition declares, in order. The definition was validated
/// when it was applied; one that cannot be read here declares none.
fn params_of(definition: &str) -> Vec<ParamView> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Decl {
        required: bool,
        default: Option<serde_json::Value>,
        description: Option<String>,
    }
    // Read in order: serde_json's map keeps it.
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        params: serde_json::Map<String, serde_json::Value>,
    }
    let Ok(doc) = serde_saphyr::from_str::<Doc>(definition) else {
        return Vec::new();
    };
    doc.params
        .into_iter()
        .map(|(name, decl)| {
            let decl: Decl = serde_json::from_value(decl).unwrap_or_default();
            ParamView {
                name,
                required: decl.required,
                default: decl.default.map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
                description: decl.description,
            }
        })
        .collect()
}

/// Builds the status of the ledger at `path`; `alive` says whether a lease's pid (and its
/// start time) is a live process.
///
/// # Errors
///
/// On a ledger failure.
/// The errors of the jobs folder that are in `scope`'s folders: the daemon records each with
/// its file's path in the folder (`files` of the `source` status).
fn scoped_files(source: Option<&serde_json::Value>, scope: &crate::api::auth::Scope) -> FilesView {
    let kept: Vec<&str> = source
        .and_then(|s| s.get("files"))
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| scope.covers(f["relative"].as_str(), None))
        .filter_map(|f| f["rendered"].as_str())
        .collect();
    FilesView {
        errors: kept.len() as u64,
        rendered: (!kept.is_empty()).then(|| kept.join("\n")),
    }
}

/// The blocks of rendered diagnostics (one per error, separated by a blank line) whose file,
/// ` --> PREFIX/PATH:LINE:COL`, is in `scope`'s folders, and how many are errors.
fn scoped_blocks(rendered: &str, prefix: &str, scope: &crate::api::auth::Scope) -> (u64, String) {
    let kept: Vec<&str> = rendered
        .split("\n\n")
        .filter(|block| {
            block.lines().any(|line| {
                line.trim_start()
                    .strip_prefix("--> ")
                    .and_then(|place| place.strip_prefix(prefix))
                    .and_then(|place| place.split(':').next())
                    .is_some_and(|path| scope.covers(Some(path), None))
            })
        })
        .collect();
    let errors = kept.iter().filter(|b| b.starts_with("error")).count() as u64;
    (errors, kept.join("\n\n"))
}

/// The status as `scope` sees it (`None`: everything): a scoped token's jobs, their runs and
/// next fires, and the errors of files in its folders only.
pub fn status(
    ledger: &crate::ledger::Ledger,
    path: &crate::ledger::Location,
    now: Timestamp,
    alive: impl Fn(i64, i64) -> bool,
    scope: Option<&crate::api::auth::Scope>,
) -> crate::ledger::Result<StatusView> {
    let lease = ledger.lease()?;
    // On PostgreSQL the leader may be on another machine: it runs while it renews its lease
    // (by the database's clock); on SQLite, while its process lives.
    let db_now = ledger.db_now(now)?;
    let pg = ledger.is_postgres();
    let running = lease.as_ref().is_some_and(|l| {
        l.released_at.is_none()
            && if pg {
                db_now.duration_since(l.renewed_at) < crate::rules::LEADER_LEASE
            } else {
                matches!((l.pid, l.pid_start), (Some(pid), Some(start)) if alive(pid, start))
            }
    });
    let source: Option<serde_json::Value> = ledger
        .status("source")?
        .and_then(|s| serde_json::from_str(&s).ok());
    let mut rows = ledger.jobs_listed()?;
    if let Some(scope) = scope {
        rows.retain(|r| scope.covers_job(r));
    }
    let seen: std::collections::HashSet<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let mut next: Vec<(Timestamp, String)> = rows
        .iter()
        .filter(|r| r.active && r.paused.is_none())
        .filter_map(|r| {
            next_fires_in(r, now, 1)
                .first()
                .map(|z| (z.timestamp(), r.name.clone()))
        })
        .collect();
    next.sort();
    next.truncate(10);
    let hour_ago = db_now
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap_or(now);
    let nodes = ledger
        .nodes(hour_ago)?
        .into_iter()
        .map(|n| {
            // The lease's holder: its node (its host, before clusters) and pid.
            let leader = running
                && n.stopped_at.is_none()
                && lease.as_ref().is_some_and(|l| {
                    (l.holder == n.name || l.holder == n.host) && l.pid == Some(n.pid)
                });
            NodeView {
                alive: n.lost_at.is_none()
                    && crate::rules::node_alive(n.stopped_at, n.heartbeat_at, db_now),
                lost_at: n.lost_at.map(stamp),
                leader,
                term: lease.as_ref().filter(|_| leader).map(|l| l.epoch),
                name: n.name,
                labels: n.labels,
                address: n.address,
                host: n.host,
                pid: n.pid,
                started_at: stamp(n.started_at),
                heartbeat_at: stamp(n.heartbeat_at),
                stopped_at: n.stopped_at.map(stamp),
                running: n.running,
            }
        })
        .collect();
    let mut git: Option<crate::api::wire::GitView> = ledger
        .status("git")?
        .and_then(|s| serde_json::from_str(&s).ok());
    let mut files = FilesView {
        errors: source
            .as_ref()
            .and_then(|s| s.get("errors"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        rendered: source
            .as_ref()
            .and_then(|s| s.get("rendered"))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    if let Some(scope) = scope {
        files = scoped_files(source.as_ref(), scope);
        if let Some(git) = git.as_mut() {
            let prefix = format!("{}/", git.path.trim_end_matches('/'));
            if let Some(held) = git.held.as_mut() {
                let (errors, rendered) = scoped_blocks(&held.rendered, &prefix, scope);
                held.errors = errors;
                held.rendered = rendered;
            }
        }
    }
    Ok(StatusView {
        git,
        nodes,
        daemon: DaemonView {
            running,
            pid: lease.as_ref().and_then(|l| l.pid),
            holder: lease.as_ref().map(|l| l.holder.clone()),
            since: lease
                .as_ref()
                .filter(|_| running)
                .map(|l| stamp(l.acquired_at)),
            epoch: lease.as_ref().map(|l| l.epoch),
            stopped_at: lease
                .as_ref()
                .filter(|_| !running)
                .and_then(|l| l.released_at.map(stamp)),
        },
        ledger: path.display().to_string(),
        jobs: rows.iter().filter(|r| r.active).count(),
        files,
        // A backfill's waiting runs (up to thousands) are not listed; its started ones are.
        active_runs: crate::api::wire::runs(
            ledger
                .active_runs()?
                .into_iter()
                .filter(|r| !(r.state == crate::run::RunState::Blocked && r.backfill_id.is_some()))
                .filter(|r| scope.is_none() || seen.contains(r.job.as_str()))
                .collect(),
        ),
        next_fires: next
            .into_iter()
            .map(|(t, job)| NextFire {
                job,
                at: crate::ledger::stamp(t),
            })
            .collect(),
    })
}

/// The dependency graph of the active jobs, from their stored schedules and `depends_on`.
pub fn graph(rows: &[JobRow]) -> GraphView {
    let mut jobs = Vec::new();
    let mut edges = Vec::new();
    for row in rows.iter().filter(|r| r.active) {
        if let Schedule::After(upstream) = &row.schedule {
            for up in upstream {
                edges.push(crate::api::wire::Edge {
                    from: up.to_string(),
                    to: row.name.clone(),
                    kind: crate::api::wire::EdgeKind::After,
                });
            }
        }
        for up in &row.depends_on {
            edges.push(crate::api::wire::Edge {
                from: up.clone(),
                to: row.name.clone(),
                kind: crate::api::wire::EdgeKind::DependsOn,
            });
        }
        jobs.push(GraphJob {
            name: row.name.clone(),
            schedule: row.schedule.to_string(),
            state: state_of(row).to_string(),
            last_run: row.last_run.as_ref().map(LastRunView::from),
        });
    }
    GraphView { jobs, edges }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn row(name: &str, schedule: serde_json::Value, zone: &str) -> JobRow {
        let t: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        JobRow {
            name: name.to_string(),
            owner: crate::ledger::Owner::File,
            active: true,
            revision: 1,
            content_hash: String::new(),
            definition: String::new(),
            source_path: None,
            enabled: true,
            schedule: Schedule::from_json(&schedule).unwrap(),
            timezone: TimeZone::get(zone).unwrap(),
            description: String::new(),
            tags: Vec::new(),
            schedule_anchor: t,
            created_at: t,
            updated_at: t,
            removed_at: None,
            git_commit: None,
            git_dirty: None,
            n_runs: 0,
            last_run: None,
            last_failed_at: None,
            scope: None,
            revision_id: 1,
            slot_cursor: t,
            paused: None,
            fires: 0,
            completed_at: None,
            failure_streak: 0,
            repeat: None,
            blocked: None,
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn fires_in_a_window_are_listed_counted_and_bucketed_by_hour() {
        let rows = [
            // 02:30 in Berlin does not exist on 29 March 2026 (clocks go forward at 02:00):
            // Vixie cron fires it at 03:00 CEST, 01:00 UTC.
            row(
                "nightly",
                serde_json::json!({"cron": "30 2 * * *"}),
                "Europe/Berlin",
            ),
            row("often", serde_json::json!({"cron": "*/10 * * * *"}), "UTC"),
            row("manual", serde_json::json!({"manual": true}), "UTC"),
            row(
                "once",
                serde_json::json!({"at": "2026-03-29T05:00:00Z", "instant": "2026-03-29T05:00:00Z"}),
                "UTC",
            ),
        ];
        let from: Timestamp = "2026-03-29T00:00:00Z".parse().unwrap();
        let to: Timestamp = "2026-03-29T06:00:00Z".parse().unwrap();
        let view = fires_in(&rows, from, to, 3);
        let listed: Vec<(&str, Vec<&str>, u64, bool)> = view
            .jobs
            .iter()
            .map(|j| {
                (
                    j.job.as_str(),
                    j.fires.iter().map(String::as_str).collect(),
                    j.total,
                    j.truncated,
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("nightly", vec!["2026-03-29T03:00:00+02:00"], 1, false),
                (
                    "often",
                    vec![
                        "2026-03-29T00:00:00+00:00",
                        "2026-03-29T00:10:00+00:00",
                        "2026-03-29T00:20:00+00:00"
                    ],
                    36,
                    true
                ),
                ("once", vec!["2026-03-29T05:00:00+00:00"], 1, false),
            ]
        );
        // Seven buckets: the six hours, and the one `to` opens (empty: `to` is excluded).
        assert_eq!(view.hourly, [6, 7, 6, 6, 6, 7, 0]);
    }
}
