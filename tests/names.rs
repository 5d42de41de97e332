//! The program's names: `jobctl`, which no shell shadows, and `jobs`, the same program for
//! scripts that call it by path or through `env` (issue 13).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Project;

fn bin(name: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(name)
}

/// Runs `script` in bash with the built programs first on `PATH`, in `dir`.
fn bash(dir: &Path, script: &str) -> std::process::Output {
    let bins = bin("jobctl").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env("JOBS_NOW", common::NOW)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn jobs_is_the_same_program_as_jobctl() {
    let p = Project::new().file("jobs.d/a.yaml", common::job("@daily"));
    let run = |name: &str, args: &[&str]| {
        let out = Command::new(bin(name))
            .args(args)
            .current_dir(p.root())
            .env("JOBS_NOW", common::NOW)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for args in [&["validate"][..], &["plan"], &["--version"]] {
        assert_eq!(run("jobs", args), run("jobctl", args), "{args:?}");
    }
    assert!(run("jobctl", &["--help"]).1.contains("Usage: jobctl"));
}

/// In bash (as in dash, zsh and fish) `jobs` is a builtin: `jobctl` is what reaches the program.
#[test]
fn jobctl_works_in_bash_where_jobs_is_the_builtin() {
    let p = Project::new().file("jobs.d/a.yaml", common::job("@daily"));
    let ours = bash(p.root(), "jobctl validate");
    assert_eq!(ours.status.code(), Some(0), "{ours:?}");
    assert!(String::from_utf8_lossy(&ours.stdout).contains("1 job in 1 file"));
    let builtin = bash(p.root(), "jobs validate");
    assert!(
        !String::from_utf8_lossy(&builtin.stdout).contains("1 job in 1 file"),
        "bash's builtin should have answered: {builtin:?}"
    );
}

/// The CI example's steps run as written in bash (what GitHub Actions uses): its validate step
/// validates, and no step calls the shell's `jobs` builtin by mistake.
#[test]
fn the_ci_example_runs_in_bash() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci/plan-on-pull-request.yml"),
    )
    .unwrap();
    let validate = example
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("run: ").filter(|c| c.contains("validate")))
        .expect("a validate step");
    let p = Project::new().file("jobs.d/a.yaml", common::job("@daily"));
    let out = bash(p.root(), validate);
    assert_eq!(out.status.code(), Some(0), "{validate}: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 job in 1 file"));
    for line in example.lines().map(str::trim) {
        let command = line.strip_prefix("run: ").unwrap_or(line);
        assert!(
            !command.starts_with("jobs "),
            "a step calls the shell's builtin: {line}"
        );
    }
}

/// Every `jobctl` command the README shows in a shell block parses as typed in bash: its
/// subcommand and flags exist (each is run with `--help` appended, so nothing is served or
/// written).
#[test]
fn every_readme_command_parses_in_bash() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut commands = Vec::new();
    for block in readme.split("```sh\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let joined = block.replace("\\\n", " ");
        for line in joined.lines() {
            let line = line.trim();
            let Some(start) = line
                .find("jobctl ")
                .filter(|&i| i == 0 || line.starts_with("jobctl"))
            else {
                continue;
            };
            // The command alone: no comment, no redirection of its output.
            let command = line[start..]
                .split("  #")
                .next()
                .unwrap()
                .split(" > ")
                .next()
                .unwrap()
                .trim()
                .to_string();
            commands.push(command);
        }
    }
    assert!(commands.len() > 20, "found only {commands:?}");
    let p = Project::new();
    for command in &commands {
        let out = bash(p.root(), &format!("{command} --help"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("Usage: jobctl"),
            "`{command}` does not parse:\n{}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
