//! `jobctl serve` following a git repository (`[git]`): real repositories made with `git init
//! --bare` in temp dirs, pushed to as a team would, the daemon's log and status read back.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Project, git};

const SECRET: &str = "push-secret";

/// A bare repository and a clone of it to commit and push from.
struct Repo {
    bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn new(root: &Path) -> Repo {
        let bare = root.join("remote.git");
        let work = root.join("work");
        std::fs::create_dir_all(&bare).unwrap();
        git(
            &bare,
            &["init", "--quiet", "--bare", "--initial-branch=main"],
        );
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Repo { bare, work }
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.work.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Commits everything and pushes (`--force` when asked); the commit.
    fn commit(&self, message: &str, force: bool) -> String {
        git(&self.work, &["add", "--all"]);
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        let mut push = vec!["push", "--quiet", "origin", "HEAD:main"];
        if force {
            push.push("--force");
        }
        git(&self.work, &push);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn job(word: &str) -> String {
    format!("schedule: \"0 3 * * *\"\ncommand: [echo, {word}]\n")
}

/// A project whose `jobs.toml` follows `url`, fetching hourly (so only the webhook and the
/// start fetch in these tests).
fn project(url: &str, extra: &str) -> Project {
    Project::new().file(
        "jobs.toml",
        format!(
            "[git]\nurl = \"{url}\"\nbranch = \"main\"\npath = \"jobs.d\"\ninterval = \"1h\"\nsecret_env = \"HOOK_SECRET\"\n{extra}"
        ),
    )
}

fn status(p: &Project) -> serde_json::Value {
    p.run_live(&["status", "--output", "json"]).json()
}

/// POSTs a GitHub-style push event for `branch`; the status and JSON body.
fn push_hook(url: &str, branch: &str, signature: Option<&str>) -> (u16, serde_json::Value) {
    let body =
        serde_json::json!({ "ref": format!("refs/heads/{branch}"), "after": "0" }).to_string();
    let signature = signature.map_or_else(
        || common::hub_signature(SECRET, body.as_bytes()),
        str::to_string,
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut reply = agent
        .post(&format!("{url}/v1/hooks/git"))
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", &signature)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .unwrap();
    let status = reply.status().as_u16();
    let json = reply
        .body_mut()
        .read_json()
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn schedule_of(p: &Project, name: &str) -> String {
    p.sql(&format!(
        "SELECT r.schedule FROM jobs j JOIN revisions r ON r.id = j.revision_id WHERE j.name = '{name}' AND j.active = 1"
    ))
}

#[test]
fn a_followed_branch_applies_good_commits_holds_bad_ones_and_takes_a_force_push() {
    let root = tempfile::tempdir().unwrap();
    let repo = Repo::new(root.path());
    repo.write("jobs.d/report.yaml", &job("v1"));
    repo.write("scripts/note", "note v1\n");
    // Runs work in the applied commit's tree, the folder holding `jobs.d`.
    repo.write("jobs.d/note.yaml", "run: cat scripts/note\n");
    let first = repo.commit("first", false);
    let p = project(repo.bare.to_str().unwrap(), "");
    let mut d = p.serve_env(&[], None, &[("HOOK_SECRET", SECRET)]);
    d.wait_for("reconciled: applied 2 added", &[]);
    let url = d.url();

    // The commit is recorded with the apply, and status says where the jobs come from.
    assert_eq!(
        p.sql("SELECT git_commit FROM applies ORDER BY id DESC LIMIT 1"),
        first
    );
    let s = status(&p);
    let g = &s["git"];
    assert_eq!(g["url"], repo.bare.to_str().unwrap());
    assert_eq!(g["branch"], "main");
    assert_eq!(g["path"], "jobs.d");
    assert_eq!(g["applied_commit"], first.as_str());
    assert_eq!(g["remote_commit"], first.as_str());
    assert_eq!(g["behind"], false);
    assert!(g["held"].is_null() && g["fetch_error"].is_null(), "{g}");

    // A commit with one good change and one broken file: nothing of it is applied.
    repo.write("jobs.d/report.yaml", &job("v2"));
    repo.write(
        "jobs.d/broken.yaml",
        "schedule: \"61 * * * *\"\ncommand: [echo, never]\n",
    );
    let bad = repo.commit("bad", false);
    let (code, answer) = push_hook(&url, "main", None);
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["fetching"], true);
    d.wait_for("is held back", &[]);
    let s = p.run_live(&["status"]);
    assert_eq!(s.code, 4, "{}", s.stdout);
    assert!(s.stdout.contains("held back"), "{}", s.stdout);
    assert!(s.stdout.contains("jobs.d/broken.yaml:1:"), "{}", s.stdout);
    let g = status(&p)["git"].clone();
    assert_eq!(g["applied_commit"], first.as_str());
    assert_eq!(g["remote_commit"], bad.as_str());
    assert_eq!(g["behind"], true);
    assert_eq!(g["held"]["commit"], bad.as_str());
    assert_eq!(g["held"]["errors"], 1, "{g}");
    assert!(
        g["held"]["rendered"]
            .as_str()
            .unwrap()
            .contains("jobs.d/broken.yaml:1:"),
        "{g}"
    );
    assert_eq!(
        p.sql("SELECT count(*) FROM jobs WHERE name = 'broken'"),
        "0"
    );
    // The previous revision keeps running.
    p.run_live(&["trigger", "report", "--wait"])
        .code(0)
        .stdout_has("v1");
    p.run_live(&["trigger", "note", "--wait"])
        .code(0)
        .stdout_has("note v1");
    let metrics = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(metrics.contains("jobs_git_commit_held 1"), "{metrics}");
    assert!(metrics.contains("jobs_definition_errors 1"), "{metrics}");

    // A push to another branch is acknowledged and ignored; a bad signature is refused.
    let (code, answer) = push_hook(&url, "feature", None);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["fetching"], false);
    let (code, _) = push_hook(&url, "main", Some("sha256=00"));
    assert_eq!(code, 401);

    // The fix applies, whole, within a second of the push webhook.
    std::fs::remove_file(repo.work.join("jobs.d/broken.yaml")).unwrap();
    repo.write("jobs.d/extra.yaml", &job("extra"));
    repo.write("scripts/note", "note v2\n");
    let fixed = repo.commit("fix", false);
    let pushed = Instant::now();
    let (code, _) = push_hook(&url, "main", None);
    assert_eq!(code, 202);
    d.wait_for("reconciled: applied 1 added, 1 changed, 0 removed", &[]);
    let took = pushed.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "applied {took:?} after the push"
    );
    assert_eq!(
        p.sql("SELECT git_commit FROM applies ORDER BY id DESC LIMIT 1"),
        fixed
    );
    let g = status(&p)["git"].clone();
    assert_eq!(g["applied_commit"], fixed.as_str());
    assert!(g["held"].is_null(), "{g}");
    assert_eq!(g["behind"], false);
    p.run_live(&["status"]).code(0);
    p.run_live(&["trigger", "report", "--wait"])
        .code(0)
        .stdout_has("v2");
    p.run_live(&["trigger", "note", "--wait"])
        .code(0)
        .stdout_has("note v2");

    // History rewritten: the fix is replaced by another commit on top of the first.
    git(&repo.work, &["reset", "--quiet", "--hard", &first]);
    repo.write("jobs.d/other.yaml", &job("other"));
    let rewritten = repo.commit("rewritten", true);
    let (code, _) = push_hook(&url, "main", None);
    assert_eq!(code, 202);
    d.wait_for("was rewritten", &[]);
    // report goes back to v1, other is added, extra removed.
    d.wait_for("reconciled: applied 1 added, 1 changed, 1 removed", &[]);
    let g = status(&p)["git"].clone();
    assert_eq!(g["applied_commit"], rewritten.as_str());
    assert!(
        g["rewritten"].as_str().unwrap().contains(&fixed[..12]),
        "{g}"
    );
    assert_eq!(
        p.sql("SELECT count(*) FROM jobs WHERE active = 1"),
        "3",
        "report, note and other; extra is removed"
    );
    assert_eq!(schedule_of(&p, "report"), schedule_of(&p, "other"));
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn an_unreachable_remote_is_reported_and_retried_until_it_answers() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("later.git");
    let p = project(missing.to_str().unwrap(), "");
    let mut d = p.serve_env(&[], None, &[("HOOK_SECRET", SECRET)]);
    d.wait_for("fetching the jobs repository", &[]);
    let g = status(&p)["git"].clone();
    assert!(g["applied_commit"].is_null(), "{g}");
    let error = g["fetch_error"].as_str().unwrap();
    assert!(error.contains("git fetch"), "{error}");
    assert!(error.contains("later.git"), "{error}");
    assert!(p.run_live(&["status"]).stdout.contains("failed"));

    // The remote appears: a retry (1 s, then 2 s, ...) applies it without a push or restart.
    let repo = Repo::new(root.path());
    let bare = repo.bare.clone();
    std::fs::rename(&bare, &missing).unwrap();
    git(
        &repo.work,
        &["remote", "set-url", "origin", missing.to_str().unwrap()],
    );
    repo.write("jobs.d/late.yaml", &job("late"));
    let commit = repo.commit("late", false);
    d.wait_for("the jobs repository can be fetched again", &[]);
    d.wait_for("reconciled: applied 1 added", &[]);
    let g = status(&p)["git"].clone();
    assert_eq!(g["applied_commit"], commit.as_str());
    assert!(g["fetch_error"].is_null(), "{g}");
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_token_is_sent_as_basic_authentication_and_never_shown() {
    use std::io::{Read as _, Write as _};
    // A server that records the first request's headers and refuses it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let Ok(n) = stream.read(&mut buf) else { break };
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
            let _ = stream.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/org/jobs.git");
    let p = project(&url, "token_file = \"token\"\n").file("token", "t0ps3cret\n");
    let mut d = p.serve_env(&[], None, &[("HOOK_SECRET", SECRET)]);
    let request = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        request.starts_with("GET /org/jobs.git/info/refs?service=git-upload-pack"),
        "{request}"
    );
    // base64("x-access-token:t0ps3cret")
    assert!(
        request.contains("Authorization: Basic eC1hY2Nlc3MtdG9rZW46dDBwczNjcmV0"),
        "{request}"
    );
    d.wait_for("fetching the jobs repository", &[]);
    let g = status(&p)["git"].clone();
    assert!(g["fetch_error"].as_str().unwrap().contains("403"), "{g}");
    let shown = format!("{g} {}", p.run_live(&["status"]).stdout);
    assert!(
        !shown.contains("t0ps3cret") && !shown.contains("eC1hY2Nlc3"),
        "{shown}"
    );
    let log: String = d.drain().iter().map(ToString::to_string).collect();
    assert!(!log.contains("t0ps3cret"), "{log}");
    drop(d);
}

#[test]
fn a_git_section_is_checked_like_a_job_file() {
    let p = Project::new().file(
        "jobs.toml",
        "[git]\nbranch = \"main\"\ninterval = \"0s\"\nurl_typo = 1\n",
    );
    p.run(&["validate"])
        .code(1)
        .stderr_has("jobs.toml:1:1")
        .stderr_has("[git] needs `url`")
        .stderr_has("git.interval must be at least 1s")
        .stderr_has("url_typo");
    let p = Project::new().file(
        "jobs.toml",
        "[git]\nurl = \"https://bot:hunter2@example.com/r.git\"\n",
    );
    p.run(&["validate"])
        .code(1)
        .stderr_has("never write a password in git.url");
    // The same rules for the flags, before anything starts.
    let p = Project::new();
    p.run(&[
        "serve",
        "--git-url",
        "https://bot:hunter2@example.com/r.git",
    ])
    .code(1)
    .stderr_has("--git-url: never put a password in the URL")
    .stderr_lacks("hunter2");
    p.run(&["serve", "--git-url", "/srv/r.git", "--git-path", "../etc"])
        .code(1)
        .stderr_has("--git-path: `../etc` is not a folder inside the repository");
}
