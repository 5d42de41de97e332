//! Realistic job folders (issue 14): every job has `env`, most have `retry` and `timeout`,
//! all have tags; schedules mix cron with and without a time zone, intervals (some with
//! `start_at`), one-offs (`at`), fan-ins (`after`) and manual jobs, over twelve time zones,
//! with hundreds of distinct cron expressions (so nothing per expression is cached for free).
#![allow(dead_code)] // each bench uses part of it

use std::fmt::Write as _;
use std::path::Path;

const ZONES: &[&str] = &[
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Australia/Sydney",
    "Pacific/Auckland",
    "UTC",
];
const SERVICES: &[&str] = &[
    "billing",
    "search",
    "auth",
    "orders",
    "ledger",
    "mail",
    "media",
    "reports",
    "crm",
    "warehouse",
    "catalog",
    "payments",
    "analytics",
    "support",
    "infra",
    "ml",
    "ads",
];
const TASKS: &[&str] = &[
    "sync", "backup", "export", "cleanup", "reindex", "rollup", "digest", "probe", "rotate",
    "import", "vacuum", "refresh",
];
const TAGS: &[&str] = &[
    "nightly",
    "hourly",
    "critical",
    "pii",
    "finance",
    "ops",
    "etl",
    "oncall",
    "batch",
    "customer-facing",
    "experimental",
    "compliance",
];
/// Subfolders, one per team.
pub const FOLDERS: usize = 100;

pub fn folder(i: usize) -> String {
    let team = i % FOLDERS;
    format!("{}-{team:02}", SERVICES[team % SERVICES.len()])
}

pub fn name(i: usize) -> String {
    format!(
        "{}-{}-{i:05}",
        SERVICES[i % SERVICES.len()],
        TASKS[(i / 7) % TASKS.len()]
    )
}

/// The kind of job `i`: its schedule's family.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    CronZoned,
    CronUtc,
    Every,
    At,
    After,
    Manual,
}

fn kind(i: usize) -> Kind {
    match i % 20 {
        0..=6 => Kind::CronZoned,
        7..=10 => Kind::CronUtc,
        11..=14 => Kind::Every,
        15 => Kind::At,
        // A fan-in waits for an earlier cron job (see `upstream`).
        16..=18 if i >= 20 => Kind::After,
        16..=18 => Kind::CronUtc,
        _ => Kind::Manual,
    }
}

/// One of many cron shapes; `edit` moves its minute (a commit's schedule change).
fn cron(i: usize, edit: usize) -> String {
    let m = (i * 7 + edit * 11) % 60;
    let h = (i / 3) % 24;
    match (i / 20) % 10 {
        0 => format!("{m} {h} * * *"),
        1 => format!("{m} {h} * * mon-fri"),
        2 => format!("*/{} * * * *", [5, 10, 15, 20, 30][(i + edit) % 5]),
        3 => format!("{m} {h},{} * * *", (h + 12) % 24),
        4 => format!("{m} {h} 1,15 * *"),
        5 => format!("{m} */{} * * *", [2, 3, 4, 6][i % 4]),
        6 => format!("{m} {h} * * sun"),
        7 => format!("{m} {}-{} * * 1-5", h % 12, h % 12 + 8),
        8 => format!("{m} {h} 1 */3 *"),
        _ if edit == 0 => ["@daily", "@hourly", "@weekly"][i % 3].to_string(),
        _ => format!("{m} 0 * * *"),
    }
}

/// The text of job `i` as `.yaml` or `.toml`; `edit` > 0 is the same job after a commit.
pub fn job_file(i: usize, edit: usize) -> (String, String) {
    let job = name(i);
    let zone = ZONES[(i / 2) % ZONES.len()];
    let kind = kind(i);
    // What a commit changes: the schedule (2 in 5), the timeout, an env value or the tags.
    let (sched_edit, mut timeout_edit, env_edit, tag_edit) = match edit % 5 {
        0 if edit == 0 => (0, 0, 0, 0),
        0 | 1 => (1, 0, 0, 0),
        2 => (0, 1, 0, 0),
        3 => (0, 0, 1, 0),
        _ => (0, 0, 0, 1),
    };
    if sched_edit == 1 && matches!(kind, Kind::Manual | Kind::After) {
        // Nothing to move in these schedules: the commit changes the timeout instead.
        timeout_edit = 1;
    }
    let timeout = ["30s", "5m", "15m", "1h", "2h 30m"][(i + timeout_edit) % 5];
    let n_tags = 1 + i % 4;
    let tags: Vec<&str> = (0..n_tags)
        .map(|k| TAGS[(i + k * 5 + tag_edit) % TAGS.len()])
        .collect();
    let upstream = name(upstream(i));
    let schedule_yaml = match kind {
        Kind::CronZoned | Kind::CronUtc => format!("\"{}\"", cron(i, sched_edit)),
        Kind::Every if i.is_multiple_of(3) => format!(
            "\n  every: {}h\n  start_at: 2026-01-0{}T0{}:30:00",
            1 + (i + sched_edit) % 12,
            1 + i % 9,
            i % 10
        ),
        Kind::Every => format!("\n  every: {}m", 1 + (i + sched_edit * 7) % 240),
        Kind::At => format!(
            "\n  at: 20{}-{:02}-{:02}T{:02}:{:02}:00",
            30 + i % 5,
            1 + i % 12,
            1 + (i + sched_edit) % 28,
            i % 24,
            (i * 7) % 60
        ),
        Kind::After => format!("\n  after: [{upstream}]"),
        Kind::Manual => String::new(),
    };
    let zoned = matches!(kind, Kind::CronZoned | Kind::At | Kind::Every) && i.is_multiple_of(3)
        || kind == Kind::CronZoned;
    let description = format!(
        "{} {} for {}, owned by team {}",
        TASKS[(i / 7) % TASKS.len()],
        ["nightly", "incremental", "full", "partial"][i % 4],
        SERVICES[i % SERVICES.len()],
        i % FOLDERS
    );
    let env: Vec<(String, String)> = {
        let mut env = vec![
            (
                "SERVICE".to_string(),
                SERVICES[i % SERVICES.len()].to_string(),
            ),
            (
                "LOG_LEVEL".to_string(),
                ["info", "debug", "warn"][(i + env_edit) % 3].to_string(),
            ),
        ];
        for k in 0..(i % 5) {
            env.push((format!("OPT_{k}"), format!("value-{}-{k}", i % 97)));
        }
        env
    };
    if i % 10 == 9 {
        return (
            format!("{job}.toml"),
            toml_job(
                i,
                kind,
                &description,
                zone,
                zoned,
                &schedule_yaml,
                &env,
                timeout,
                &tags,
                sched_edit,
            ),
        );
    }
    let mut t = String::new();
    writeln!(t, "# {job}: generated by benches/cli.rs").unwrap();
    writeln!(t, "description: {description}").unwrap();
    if !schedule_yaml.is_empty() {
        writeln!(t, "schedule: {schedule_yaml}").unwrap();
    }
    if zoned {
        writeln!(t, "timezone: {zone}").unwrap();
    }
    if i.is_multiple_of(2) {
        writeln!(
            t,
            "run: |\n  set -eu\n  echo \"{job} starting\"\n  /opt/{svc}/bin/{task} --batch {} --target \"$TARGET_DB\"",
            100 * (1 + i % 9),
            svc = SERVICES[i % SERVICES.len()],
            task = TASKS[(i / 7) % TASKS.len()]
        )
        .unwrap();
    } else {
        writeln!(
            t,
            "command: [/opt/{}/bin/{}, --id, \"{i}\", --quiet]",
            SERVICES[i % SERVICES.len()],
            TASKS[(i / 7) % TASKS.len()]
        )
        .unwrap();
    }
    writeln!(t, "env:").unwrap();
    writeln!(t, "  TARGET_DB: postgres://db-{}.internal/main", i % 13).unwrap();
    for (k, v) in &env {
        writeln!(t, "  {k}: \"{v}\"").unwrap();
    }
    if i % 10 != 3 || timeout_edit == 1 {
        writeln!(t, "timeout: {timeout}").unwrap();
    }
    if i % 10 < 7 {
        writeln!(
            t,
            "retry:\n  attempts: {}\n  backoff: {}s",
            1 + i % 5,
            10 * (1 + i % 3)
        )
        .unwrap();
        if i.is_multiple_of(2) {
            writeln!(t, "  max_backoff: 10m").unwrap();
        }
    }
    writeln!(t, "concurrency: {}", ["forbid", "allow", "replace"][i % 3]).unwrap();
    writeln!(t, "missed: {}", ["run_once", "skip"][i % 2]).unwrap();
    if i.is_multiple_of(4) {
        writeln!(t, "starting_deadline: {}m", 5 + i % 55).unwrap();
    }
    if i.is_multiple_of(6) {
        writeln!(t, "jitter: {}s", 5 + i % 25).unwrap();
    }
    if kind != Kind::After && i.is_multiple_of(11) && i >= 20 {
        writeln!(t, "depends_on: [{upstream}]").unwrap();
    }
    if i.is_multiple_of(8) {
        writeln!(
            t,
            "history:\n  keep_runs: {}\n  max_age: 14d",
            50 * (1 + i % 10)
        )
        .unwrap();
    }
    if i.is_multiple_of(5) {
        writeln!(t, "output_limit: {} KiB", 64 * (1 + i % 4)).unwrap();
    }
    if i.is_multiple_of(9) {
        writeln!(
            t,
            "on_failure:\n  - webhook: http://alerts.internal/jobs/{}\n    after: 2",
            SERVICES[i % SERVICES.len()]
        )
        .unwrap();
    }
    writeln!(t, "tags: [{}]", tags.join(", ")).unwrap();
    (format!("{job}.yaml"), t)
}

/// The job that job `i` fires after (or depends on): a cron job a few places earlier.
/// Links only point backwards, so there are no cycles.
fn upstream(i: usize) -> usize {
    i.saturating_sub(9 + 3 * (i % 2))
}

#[allow(clippy::too_many_arguments)]
fn toml_job(
    i: usize,
    kind: Kind,
    description: &str,
    zone: &str,
    zoned: bool,
    schedule_yaml: &str,
    env: &[(String, String)],
    timeout: &str,
    tags: &[&str],
    sched_edit: usize,
) -> String {
    let mut t = String::new();
    writeln!(t, "# {}: generated by benches/cli.rs (TOML)", name(i)).unwrap();
    writeln!(t, "description = \"{description}\"").unwrap();
    match kind {
        Kind::CronZoned | Kind::CronUtc => {
            writeln!(t, "schedule = \"{}\"", cron(i, sched_edit)).unwrap()
        }
        Kind::Manual => {}
        _ => {
            // The YAML flow map, one `key: value` a line, as a TOML inline table.
            let fields: Vec<String> = schedule_yaml
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.trim().split_once(": ").unwrap();
                    if v.starts_with('[') {
                        let items: Vec<String> = v
                            .trim_matches(['[', ']'])
                            .split(", ")
                            .map(|x| format!("\"{x}\""))
                            .collect();
                        format!("{k} = [{}]", items.join(", "))
                    } else {
                        format!("{k} = \"{v}\"")
                    }
                })
                .collect();
            writeln!(t, "schedule = {{ {} }}", fields.join(", ")).unwrap();
        }
    }
    if zoned {
        writeln!(t, "timezone = \"{zone}\"").unwrap();
    }
    writeln!(
        t,
        "command = [\"/opt/tools/bin/report\", \"--id\", \"{i}\"]"
    )
    .unwrap();
    writeln!(t, "timeout = \"{timeout}\"").unwrap();
    writeln!(t, "concurrency = \"forbid\"").unwrap();
    let tags: Vec<String> = tags.iter().map(|x| format!("\"{x}\"")).collect();
    writeln!(t, "tags = [{}]", tags.join(", ")).unwrap();
    writeln!(t, "\n[env]").unwrap();
    for (k, v) in env {
        writeln!(t, "{k} = \"{v}\"").unwrap();
    }
    writeln!(t, "\n[retry]\nattempts = {}\nbackoff = \"30s\"", 1 + i % 4).unwrap();
    t
}

/// Writes jobs `0..n` under `dir`, in [`FOLDERS`] subfolders.
pub fn generate(dir: &Path, n: usize) {
    for i in 0..n {
        write(dir, i, 0);
    }
}

/// Jobs a commit touches: every tenth, so the edits spread over folders and kinds.
pub fn changed(n: usize, k: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by((n / k.max(1)).max(1)).take(k)
}

/// Rewrites job `i` as edit number `edit` (0 is the original).
pub fn write(dir: &Path, i: usize, edit: usize) {
    let folder = dir.join(folder(i));
    std::fs::create_dir_all(&folder).unwrap();
    let (file, text) = job_file(i, edit);
    std::fs::write(folder.join(file), text).unwrap();
}
