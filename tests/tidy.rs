//! Architecture checks: the core stays pure.
//!
//! The core modules take `now` as an argument and never touch files, processes, SQLite, the
//! network, the environment or the clock; nor do they name an edge module. This test reads
//! their source and fails on any such use.

use std::path::Path;

const CORE: &[&str] = &[
    "cron.rs",
    "schedule.rs",
    "spec/mod.rs",
    "spec/raw.rs",
    "spec/build.rs",
    "spec/normal.rs",
    "catalog.rs",
    "graph.rs",
    "plan.rs",
    "run.rs",
    "rules.rs",
    "slots.rs",
    "duration.rs",
    "size.rs",
    "name.rs",
    "diag.rs",
    "template.rs",
    "webhook.rs",
];

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::process",
    "std::net",
    "std::env",
    "std::time::SystemTime",
    "std::time::Instant",
    "Timestamp::now",
    "Zoned::now",
    "SystemTime",
    "rusqlite",
    "tokio",
    "crate::ledger",
    "crate::source",
    "crate::config",
    "crate::clock",
    "crate::git",
    "crate::cli",
    "crate::notify",
];

#[test]
fn the_core_reads_no_clock_and_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in CORE {
        let text =
            std::fs::read_to_string(src.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    found.push(format!("src/{file}:{}: {word}", n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core must stay pure:\n{}",
        found.join("\n")
    );
}

/// A test that reads the real date breaks on the day the calendar passes its fixed one (a
/// ledger written at a fixed `JOBS_NOW` and served on the real clock ages with the calendar).
/// Tests run every command and daemon on a fixed clock (`tests/common`), and read none here.
#[test]
fn no_test_reads_the_real_date() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut found = Vec::new();
    for entry in walk(&tests) {
        if entry.ends_with("tidy.rs") || entry.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in [
                "Timestamp::now",
                "Zoned::now",
                "SystemTime::now",
                "env_remove(\"JOBS_NOW\")",
            ] {
                if code.contains(word) {
                    found.push(format!("{}:{}: {word}", entry.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "tests must not read the real date:\n{}",
        found.join("\n")
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
