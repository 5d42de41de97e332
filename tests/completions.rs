//! `jobctl completions SHELL`: scripts that ask `jobctl` for the words to offer, job names
//! included (read from the jobs folder's file names, no ledger or daemon needed).

mod common;

use std::process::Command;

use common::Project;

fn project() -> Project {
    Project::new()
        .file("jobs.d/backup.yaml", "command: [\"true\"]\n")
        .file("jobs.d/nightly/report.toml", "command = [\"true\"]\n")
        .file("jobs.d/beta.yml", "command: [\"true\"]\n")
        .file("jobs.d/.hidden.yaml", "command: [\"true\"]\n")
        .file("jobs.d/notes.txt", "not a job\n")
        .file("elsewhere/other.yaml", "command: [\"true\"]\n")
}

/// What the completion engine offers for `words`, the last one being completed, as the
/// generated scripts ask for it.
fn offered(p: &Project, words: &[&str], env: &[(&str, &str)]) -> (Vec<String>, String) {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("jobctl"));
    cmd.current_dir(p.root())
        .env_remove("JOBS_DIR")
        .env("JOBS_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_IFS", "\n")
        .arg("--")
        .args(words);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{words:?}: {out:?}");
    let words = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|w| !w.starts_with('-'))
        .map(str::to_string)
        .collect();
    (words, String::from_utf8(out.stderr).unwrap())
}

#[test]
fn commands_taking_a_job_complete_the_job_files_names() {
    let p = project();
    let jobs = ["backup", "beta", "report"];
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["jobctl", "get", ""], jobs.to_vec()),
        (vec!["jobctl", "pause", "b"], vec!["backup", "beta"]),
        (vec!["jobctl", "resume", "re"], vec!["report"]),
        (vec!["jobctl", "trigger", ""], jobs.to_vec()),
        (vec!["jobctl", "run", "ba"], vec!["backup"]),
        (vec!["jobctl", "logs", ""], jobs.to_vec()),
        (vec!["jobctl", "runs", ""], jobs.to_vec()),
        (vec!["jobctl", "next", "be"], vec!["beta"]),
        (
            vec!["jobctl", "--dir", "elsewhere", "get", ""],
            vec!["other"],
        ),
        (vec!["jobctl", "get", "--dir=elsewhere", ""], vec!["other"]),
        (vec!["jobctl", "get", "zzz"], vec![]),
        (vec!["jobctl", "paus"], vec!["pause"]),
    ];
    for (words, want) in cases {
        let (got, stderr) = offered(&p, &words, &[]);
        assert_eq!(got, want, "{words:?}");
        assert_eq!(stderr, "", "{words:?}");
    }
    // JOBS_DIR, as the commands themselves read it.
    let (got, _) = offered(&p, &["jobctl", "get", ""], &[("JOBS_DIR", "elsewhere")]);
    assert_eq!(got, ["other"]);
}

#[test]
fn a_missing_jobs_folder_offers_no_names_and_says_nothing() {
    let p = Project::new();
    let (got, stderr) = offered(&p, &["jobctl", "get", ""], &[]);
    assert_eq!((got, stderr), (Vec::<String>::new(), String::new()));
}

#[test]
fn every_shell_gets_a_script_that_calls_jobctl_back() {
    let p = project();
    for (shell, registers) in [
        ("bash", "-F _clap_complete_jobctl jobctl"),
        ("zsh", "compdef _clap_dynamic_completer_jobctl jobctl"),
        ("fish", "complete --keep-order --exclusive --command jobctl"),
    ] {
        p.run(&["completions", shell])
            .code(0)
            .stdout_has("JOBS_COMPLETE")
            .stdout_has(registers);
    }
}

/// Sources the bash script and runs its completion function as bash would on TAB.
#[test]
fn the_bash_script_completes_job_names_in_bash() {
    if Command::new("bash").arg("--version").output().is_err() {
        eprintln!("skipped: no bash");
        return;
    }
    let p = project();
    let script = p.run(&["completions", "bash"]).code(0).stdout;
    p.write("jobctl.bash", &script);
    let bin = assert_cmd::cargo::cargo_bin!("jobctl");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cases = [
        ("jobctl pause b", "backup beta"),
        ("jobctl get ", "backup beta report"),
        ("jobctl --dir elsewhere trigger ", "other"),
    ];
    for (line, want) in cases {
        let shell = format!(
            r#"source ./jobctl.bash
COMP_LINE='{line}'
read -r -a COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_POINT=${{#COMP_LINE}}
_clap_complete_jobctl jobctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
for w in "${{COMPREPLY[@]}}"; do [[ $w == -* ]] || printf '%s\n' "$w"; done"#
        );
        let out = Command::new("bash")
            .current_dir(p.root())
            .env("PATH", &path)
            .env_remove("JOBS_DIR")
            .args(["--norc", "--noprofile", "-c", &shell])
            .output()
            .unwrap();
        let got = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            got.split_whitespace().collect::<Vec<_>>().join(" "),
            want,
            "{line:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
