//! The shipped `jobs.d/` is what a newcomer serves first (`jobctl --dir jobs.d serve`): every
//! job must run harmlessly on any machine, with no network and nothing written outside the
//! project's `.jobs/` folder, while showing the file format's main features.

mod common;

use std::path::{Path, PathBuf};

use common::Project;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.d")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `root` but those in `.jobs/`, relative.
fn files_outside_jobs(root: &Path) -> Vec<String> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if relative == ".jobs" || relative == "home" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                all.push(relative);
            }
        }
    }
    all.sort();
    all
}

#[test]
fn every_example_job_runs_harmlessly_inside_the_project() {
    let p = Project::new();
    copy_dir(&examples(), &p.path("jobs.d"));
    std::fs::create_dir(p.path("home")).unwrap();
    let before = files_outside_jobs(p.root());
    p.run(&["apply"]).code(0);
    let home = p.path("home");
    let env = [("HOME", home.to_str().unwrap())];
    // The HTTP example asks a local daemon whether it is ready: one answers on a free port.
    let ready = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!("port={}", ready.local_addr().unwrap().port());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in ready.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nready\n",
            );
        }
    });
    for (job, extra, says) in [
        ("nightly-backup", &[][..], "jobs.d-"),
        // The real disk may be fuller than the example's limit: this checks that it runs.
        (
            "health-check",
            &["--param", "max_percent=100"][..],
            "% used",
        ),
        (
            "deploy",
            &["--param", "branch=main"][..],
            "deploying main to staging",
        ),
        ("rotate-certificates", &[][..], "time to switch"),
        ("weekly-report", &[][..], "Weekly report"),
        ("publish-report", &[][..], "published"),
        ("daemon-ready", &["--param", &port][..], "HTTP/1.1 200 OK"),
    ] {
        let mut args = vec!["run", job];
        args.extend_from_slice(extra);
        p.run_with(&args, &env).code(0).stdout_has(says);
    }
    assert_eq!(
        files_outside_jobs(p.root()),
        before,
        "a job wrote outside .jobs/"
    );
    assert!(
        std::fs::read_dir(&home).unwrap().next().is_none(),
        "a job wrote to $HOME"
    );
    assert!(p.path(".jobs/example/published").is_dir());
}

/// No example reaches the network or a real database: they would fail, or worse, work.
#[test]
fn no_example_reaches_outside_the_machine() {
    let mut stack = vec![examples()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for word in ["curl", "wget", "ssh ", "pg_dump", "rclone", "psql", "mail "] {
                assert!(!text.contains(word), "{} uses {word}", path.display());
            }
            for url in text
                .match_indices("http://")
                .chain(text.match_indices("https://"))
            {
                let rest = &text[url.0..];
                assert!(
                    rest.contains("127.0.0.1") && rest.find("127.0.0.1") < rest.find('\n'),
                    "{} names a URL off this machine",
                    path.display()
                );
            }
        }
    }
}

/// The examples show what the README promises: cron with a time zone, an interval, a one-off,
/// parameters, a dependency chain, retries and a notification.
#[test]
fn the_examples_show_the_main_features() {
    let p = Project::new();
    copy_dir(&examples(), &p.path("jobs.d"));
    p.run(&["apply"]).code(0);
    let list = p.run(&["list", "-o", "json"]).code(0).json();
    let text = list.to_string();
    for feature in ["Europe/Berlin", "every 5m", "2030-03-01"] {
        assert!(text.contains(feature), "no {feature} in {text}");
    }
    p.run(&["graph"])
        .code(0)
        .stdout_has("nightly-backup")
        .stdout_has("weekly-report")
        .stdout_has("publish-report");
    p.run(&["get", "nightly-backup"])
        .code(0)
        .stdout_has("on_failure")
        .stdout_has("attempts");
    p.run(&["get", "deploy"]).code(0).stdout_has("branch");
}
