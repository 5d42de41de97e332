//! Writes N realistic job files, for benchmarks and for trying `jobs` at scale.
//!
//! ```text
//! cargo run --release --example generate_jobs -- DIR N [--change K]
//! ```
//!
//! Files are spread over 100 subfolders and mix cron (in several time zones), interval,
//! one-off and manual jobs, in YAML and TOML. `--change K` rewrites the first K jobs with a
//! different schedule and timeout, as a commit touching K jobs would.

use std::path::Path;

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
];

/// The text of job `i`; `changed` gives it an edited definition.
pub fn job_file(i: usize, changed: bool) -> (String, String) {
    let zone = ZONES[i % ZONES.len()];
    let minute = (i * 7 + usize::from(changed) * 13) % 60;
    let hour = (i / 60) % 24;
    let timeout = if changed { "45m" } else { "30m" };
    let name = format!("job-{i:06}");
    if i % 10 == 9 {
        let text = format!(
            "# Generated job {i} (TOML)\ndescription = \"Synthetic report {i}\"\nschedule = \"{minute} {hour} * * 1-5\"\ntimezone = \"{zone}\"\ncommand = [\"/usr/local/bin/report\", \"--id\", \"{i}\"]\ntimeout = \"{timeout}\"\ntags = [\"generated\", \"team-{}\"]\n\n[retry]\nattempts = 2\nbackoff = \"30s\"\n",
            i % 17
        );
        return (format!("{name}.toml"), text);
    }
    let schedule = match i % 4 {
        0 => format!("\"{minute} {hour} * * *\""),
        1 => format!("{{every: {}m}}", 5 + i % 55 + usize::from(changed)),
        2 => format!("\"{minute} */2 * * mon-fri\""),
        _ => format!("\"{minute} {hour} 1 * *\""),
    };
    let text = format!(
        "# Generated job {i}\ndescription: Synthetic job {i} that copies data between systems\nschedule: {schedule}\ntimezone: {zone}\nrun: |\n  set -eu\n  echo \"starting {i}\"\n  /usr/local/bin/sync --source db-{src} --target warehouse --batch 500\nenv:\n  SYNC_ID: \"{i}\"\n  LOG_LEVEL: info\ntimeout: {timeout}\nretry:\n  attempts: 3\n  backoff: 10s\n  max_backoff: 5m\nconcurrency: forbid\nmissed: run_once\ntags: [generated, team-{team}]\n",
        src = i % 13,
        team = i % 17
    );
    (format!("{name}.yaml"), text)
}

/// Writes jobs `0..n` under `dir` (spread over subfolders); the first `changed` are edited.
pub fn generate(dir: &Path, n: usize, changed: usize) -> std::io::Result<()> {
    for i in 0..n {
        let folder = dir.join(format!("team-{:02}", i % 100));
        std::fs::create_dir_all(&folder)?;
        let (file, text) = job_file(i, i < changed);
        std::fs::write(folder.join(file), text)?;
    }
    Ok(())
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: generate_jobs DIR N [--change K]";
    let dir = args.first().expect(usage);
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let changed = match args.get(2).map(String::as_str) {
        Some("--change") => args.get(3).and_then(|s| s.parse().ok()).expect(usage),
        _ => 0,
    };
    generate(Path::new(dir), n, changed)?;
    println!("wrote {n} job files to {dir} ({changed} changed)");
    Ok(())
}
