//! Architecture checks: the core stays pure.
//!
//! The core modules take `now` as an argument and never touch files, processes, SQLite, the
//! network, the environment or the clock; nor do they name an edge module. The check is an
//! allow-list: each core module names what it may use, and this test reads the source and fails
//! on anything else.

use std::path::Path;

/// The core, as an allow-list: each core module (a file, or every file under a directory) and
/// what it may name: the crate's own modules (`crate::x`) and the dependencies of Cargo.toml
/// (`x::`). Anything else (an edge module, `rusqlite`, `tokio`, `axum`, `utoipa`, `ureq`...)
/// fails the test. A new core module is added here with what it needs; an edge module is never.
const CORE: &[(&str, &[&str], &[&str])] = &[
    // (path under src/, crate modules it may name, dependencies it may name)
    ("cron.rs", &[], &["croner", "jiff"]),
    ("duration.rs", &[], &["jiff", "thiserror"]),
    ("size.rs", &[], &["thiserror"]),
    ("name.rs", &[], &["serde", "thiserror"]),
    ("template.rs", &[], &["serde_json", "thiserror"]),
    ("diag.rs", &[], &["annotate_snippets", "serde", "strsim"]),
    ("webhook.rs", &[], &["hmac", "jiff", "sha2", "thiserror"]),
    (
        "saved_plan.rs",
        &[],
        &["serde", "serde_json", "sha2", "thiserror"],
    ),
    (
        "schedule.rs",
        &["cron", "duration", "name"],
        &["jiff", "serde_json", "thiserror"],
    ),
    (
        "spec",
        &[
            "cron", "diag", "duration", "name", "schedule", "size", "template",
        ],
        // lettre only parses an email address here (`Address`), which is pure.
        &[
            "jiff",
            "lettre",
            "regex",
            "serde",
            "serde_json",
            "serde_saphyr",
            "sha2",
            "strsim",
            "thiserror",
            "toml",
        ],
    ),
    ("run.rs", &["duration", "spec"], &["jiff", "thiserror"]),
    (
        "catalog.rs",
        &["diag", "name", "schedule", "spec"],
        &["rayon"],
    ),
    (
        "plan.rs",
        &["catalog", "diag", "schedule", "spec"],
        &["jiff", "serde", "similar"],
    ),
    (
        "slots.rs",
        &["cron", "duration", "rules", "run", "schedule", "spec"],
        &["jiff"],
    ),
    ("rules.rs", &["duration", "run", "spec"], &["jiff"]),
    (
        "graph.rs",
        &["duration", "run", "schedule", "spec"],
        &["jiff", "serde"],
    ),
];

/// Never in the core, whatever the allow-list says: the standard library's I/O, environment,
/// processes and clock.
const NEVER: &[&str] = &[
    "std::fs",
    "std::process",
    "std::net",
    "std::env",
    "std::io::stdin",
    "SystemTime",
    "Instant",
    "Timestamp::now",
    "Zoned::now",
];

#[test]
fn the_core_names_only_what_its_allow_list_permits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = dependencies(&root.join("Cargo.toml"));
    let crate_word = |line: &str| -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let word: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if word.is_empty() && tail.starts_with('{') {
                // `crate::{a, b::c}`: every first segment in the braces.
                let group = tail[1..].split('}').next().unwrap_or("");
                found.extend(
                    group
                        .split(',')
                        .map(|part| part.trim().split("::").next().unwrap_or("").to_string())
                        .filter(|w| !w.is_empty()),
                );
            } else {
                found.push(word);
            }
            rest = tail;
        }
        found
    };
    let mut found = Vec::new();
    for (module, modules, crates) in CORE {
        let path = root.join("src").join(module);
        assert!(
            path.exists(),
            "src/{module} is in the allow-list but does not exist"
        );
        for file in if path.is_dir() {
            walk(&path)
        } else {
            vec![path.clone()]
        } {
            let text = std::fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(root).unwrap().display().to_string();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in crate_word(code) {
                    if !modules.contains(&word.as_str()) {
                        found.push(format!("{shown}:{}: crate::{word}", n + 1));
                    }
                }
                for dep in &deps {
                    if names_path(code, dep) && !crates.contains(&dep.as_str()) {
                        found.push(format!("{shown}:{}: {dep}::", n + 1));
                    }
                }
                for word in NEVER {
                    if code.contains(word) {
                        found.push(format!("{shown}:{}: {word}", n + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core names something outside its allow-list (tests/tidy.rs `CORE`):\n{}",
        found.join("\n")
    );
}

/// Whether `code` names the path `dep::...` (as a whole word, not `foo_dep::`).
fn names_path(code: &str, dep: &str) -> bool {
    let needle = format!("{dep}::");
    code.match_indices(&needle).any(|(i, _)| {
        i == 0 || {
            let before = code[..i].chars().next_back().unwrap();
            !(before.is_ascii_alphanumeric() || before == '_' || before == ':')
        }
    })
}

/// The names of Cargo.toml's `[dependencies]`, as Rust paths (`serde-saphyr` -> `serde_saphyr`).
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if let Some((name, _)) = line
            .split_once('=')
            .filter(|_| in_deps && !line.starts_with('#'))
        {
            deps.push(name.trim().replace('-', "_"));
        }
    }
    assert!(deps.len() > 10, "read no dependencies from Cargo.toml");
    deps
}

/// A test that reads the real date breaks on the day the calendar passes its fixed one (a
/// ledger written at a fixed `JOBS_NOW` and served on the real clock ages with the calendar).
/// Tests run every command and daemon on a fixed clock (`tests/common`), and read none here.
#[test]
fn no_test_reads_the_real_date() {
    let found = uses(
        "tests",
        |file| file.ends_with("tidy.rs"),
        &[
            "Timestamp::now",
            "Zoned::now",
            "SystemTime::now",
            "env_remove(\"JOBS_NOW\")",
        ],
    );
    assert!(
        found.is_empty(),
        "tests must not read the real date:\n{}",
        found.join("\n")
    );
}

/// The API's JSON shapes are defined once, in `api::wire`: a ledger row or a core type that
/// derived `utoipa::ToSchema` again would make a SQL row (or a core rule's type) part of the
/// API's contract, and every column change a breaking change for clients.
#[test]
fn only_api_wire_defines_api_schemas() {
    let found = uses("src", |file| file == "src/api/wire.rs", &["ToSchema"]);
    assert!(
        found.is_empty(),
        "API schemas (ToSchema) belong in src/api/wire.rs, converted from rows with From:\n{}",
        found.join("\n")
    );
}

/// Issue 14: only `main` decides the exit code. A `process::exit` below it skips shutdown and
/// leaves runs and notifications behind (the daemon's lost lease did).
#[test]
fn only_main_calls_process_exit() {
    let found = uses(
        "src",
        |file| file == "src/main.rs" || file.starts_with("src/bin/"),
        &["process::exit("],
    );
    assert!(
        found.is_empty(),
        "process::exit below main: return an error instead:\n{}",
        found.join("\n")
    );
}

/// All time goes through `clock::Clock` (which `JOBS_NOW` fixes for tests and replays): no
/// module but `clock` reads the wall clock. (`Instant` measures durations and is fine.)
#[test]
fn only_the_clock_reads_the_wall_clock() {
    let found = uses(
        "src",
        |file| file == "src/clock.rs",
        &[
            "Timestamp::now",
            "Zoned::now",
            "SystemTime::now",
            "Local::now",
        ],
    );
    assert!(
        found.is_empty(),
        "read the time through clock::Clock:\n{}",
        found.join("\n")
    );
}

/// Issue 14: the ledger reads no environment. What it needs from the caller (the lock wait,
/// `JOBS_LOCK_WAIT`) comes in `ledger::OpenOptions`, read at the edge with the other `JOBS_*`
/// settings, so a second backend is configured the same way.
#[test]
fn the_ledger_reads_no_environment() {
    let found = uses("src/ledger", |_| false, &["env::var", "std::env"]);
    assert!(
        found.is_empty(),
        "pass it in ledger::OpenOptions instead:\n{}",
        found.join("\n")
    );
}

/// Issue 14: the ledger speaks core types. A run's state and trigger are `RunState` and
/// `Trigger` from the moment a row is read (`ledger::columns`) until the wire or a SQL
/// statement needs their word, so no code compares them as text: SQL, `run.rs` (which defines
/// the words) and `api::wire` (the JSON) excepted. `notify` keeps its own JSON shape of an
/// outcome (its webhook body) and is skipped too, and `diag`, whose field names share words.
#[test]
fn run_states_and_triggers_are_compared_as_types() {
    let words = [
        "blocked",
        "pending",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "skipped",
        "schedule",
        "missed",
        "manual",
        "retry",
        "webhook",
        "dependency",
    ];
    let patterns: Vec<String> = words
        .iter()
        .flat_map(|w| {
            [
                format!("== \"{w}\""),
                format!("!= \"{w}\""),
                format!("Some(\"{w}\""),
                format!("(\"{w}\" |"),
                format!("| \"{w}\""),
            ]
        })
        .collect();
    let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let found = uses(
        "src",
        |file| {
            file == "src/run.rs"
                || file == "src/api/wire.rs"
                || file == "src/diag.rs"
                || file.starts_with("src/notify/")
        },
        &patterns,
    );
    assert!(
        found.is_empty(),
        "compare RunState and Trigger values, not their words:\n{}",
        found.join("\n")
    );
}

/// Issue 14: errors are typed (`thiserror`), not `String`s a caller can only print. Each
/// `pub` function of `src/` (outside its `#[cfg(test)]` tests) that returns `Result<_, String>`
/// is named here, multi-line signatures included.
#[test]
fn no_pub_fn_returns_a_string_error() {
    // Converted by their owners in parallel (issue 14): remove each entry as it lands.
    // `src/ledger/` has none today.
    const ALLOWED: &[&str] = &["src/ledger/"];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in walk(&root.join("src")) {
        let shown = file.strip_prefix(root).unwrap().display().to_string();
        if file.extension().is_none_or(|e| e != "rs")
            || ALLOWED.iter().any(|allowed| shown.starts_with(allowed))
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, returns) in pub_fn_returns(&text) {
            if error_type(&returns).as_deref() == Some("String") {
                found.push(format!("{shown}:{line}: -> {returns}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a pub fn returns Result<_, String>: give it a thiserror enum saying what failed:\n{}",
        found.join("\n")
    );
}

/// The tidy checks' own parsers, on signatures as rustfmt writes them.
#[test]
fn pub_fn_signatures_are_read_with_their_return_types() {
    let text = "pub fn a() -> Result<(), String> {\n\
                pub(crate) async fn b(\n    f: impl FnOnce() -> Result<u8, String>,\n\
                ) -> std::result::Result<\n    Vec<String>,\n    String,\n> {\n\
                fn private() -> Result<(), String> {}\n\
                pub fn c<F: Fn() -> u8>(f: F) -> Result<String, Error>\nwhere F: Copy {}\n\
                pub fn d(x: u8) {}\n\
                #[cfg(test)]\nmod tests {\n pub fn e() -> Result<(), String> {}\n}\n";
    let got: Vec<(usize, String, Option<String>)> = pub_fn_returns(text)
        .into_iter()
        .map(|(line, returns)| (line, returns.clone(), error_type(&returns)))
        .collect();
    let want = [
        (1, "Result<(), String>", Some("String")),
        (
            2,
            "std::result::Result< Vec<String>, String, >",
            Some("String"),
        ),
        (9, "Result<String, Error>", Some("Error")),
        (11, "", None),
    ];
    let want: Vec<(usize, String, Option<String>)> = want
        .iter()
        .map(|(l, r, e)| (*l, r.to_string(), e.map(str::to_string)))
        .collect();
    assert_eq!(got, want);
}

/// Each `pub` (`pub(crate)`, `pub(super)`...) fn of `text` before its `#[cfg(test)]` module,
/// as the line of its `fn` and its return type (empty when it returns `()`), whitespace
/// folded.
fn pub_fn_returns(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !is_pub_fn(line.trim_start()) {
            continue;
        }
        // The signature: up to the body, the `where` clause or the `;` of a declaration.
        let mut signature = String::new();
        for next in &lines[i..] {
            let next = next.trim();
            if next == "where" || next.starts_with("where ") {
                break;
            }
            signature.push_str(next);
            signature.push(' ');
            if next.contains('{') || next.ends_with(';') {
                break;
            }
        }
        found.push((i + 1, return_type(&signature)));
    }
    found
}

/// Whether `head` (a trimmed line) starts a `pub` fn: `pub`, `pub(crate)`..., then `const`,
/// `async` or `unsafe`, then `fn`.
fn is_pub_fn(head: &str) -> bool {
    let Some(rest) = head.strip_prefix("pub") else {
        return false;
    };
    let mut rest = match rest.strip_prefix('(') {
        Some(scoped) => scoped.split_once(')').map_or("", |(_, r)| r),
        None => rest,
    };
    for qualifier in ["const ", "async ", "unsafe "] {
        rest = rest.trim_start();
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    rest.trim_start().starts_with("fn ")
}

/// What follows the signature's own `->` (outside its parameters and generics), up to its body.
fn return_type(signature: &str) -> String {
    let bytes = signature.as_bytes();
    let (mut parens, mut angles) = (0i32, 0i32);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'>') => {
                if parens == 0 && angles == 0 && signature[..i].contains('(') {
                    let rest = &signature[i + 2..];
                    let end = rest
                        .find('{')
                        .or_else(|| rest.find(';'))
                        .unwrap_or(rest.len());
                    return rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
                }
                i += 1;
            }
            b'(' => parens += 1,
            b')' => parens -= 1,
            b'<' => angles += 1,
            b'>' => angles -= 1,
            _ => {}
        }
        i += 1;
    }
    String::new()
}

/// The error type of a `Result<T, E>` return type (`std::result::Result` too), without spaces.
fn error_type(returns: &str) -> Option<String> {
    let args = returns
        .strip_prefix("std::result::")
        .unwrap_or(returns)
        .strip_prefix("Result<")?
        .strip_suffix('>')?;
    let mut depth = 0;
    let mut parts = vec![String::new()];
    for c in args.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().unwrap().push(c);
    }
    parts.retain(|p| !p.trim().is_empty());
    (parts.len() == 2).then(|| parts[1].split_whitespace().collect())
}

/// Every `file:line: word` where a `.rs` file under `dir` (relative to the crate) names one of
/// `words` in code (not in a `//` comment), skipping the files `skip` names (by their path
/// relative to the crate, with `/`).
fn uses(dir: &str, skip: impl Fn(&str) -> bool, words: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in walk(&root.join(dir)) {
        let shown = file.strip_prefix(root).unwrap().display().to_string();
        if skip(&shown) || file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{shown}: {e}"));
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in words {
                if code.contains(word) {
                    found.push(format!("{shown}:{}: {word}", n + 1));
                }
            }
        }
    }
    found
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
