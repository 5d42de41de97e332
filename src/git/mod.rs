//! Where applied definitions came from: the git commit of the jobs folder, if it is in a work tree.
//!
//! This edge runs the `git` program rather than linking a git library: it is on every machine
//! that has a checkout, it honours the user's git configuration, and two short commands are all
//! we need. When `git` is missing or the folder is not in a work tree, there is simply no commit.

pub mod remote;

use std::path::Path;
use std::process::{Command, Stdio};

use crate::ledger::GitInfo;

/// The commit checked out where `dir` lives, and whether `dir` has uncommitted changes.
pub fn describe(dir: &Path) -> GitInfo {
    let run = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let Some(commit) = run(&["rev-parse", "--verify", "--quiet", "HEAD"]) else {
        return GitInfo::default();
    };
    let dirty = run(&["status", "--porcelain", "--untracked-files=all", "--", "."])
        .map(|status| !status.is_empty());
    GitInfo {
        commit: Some(commit),
        dirty,
    }
}
