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
