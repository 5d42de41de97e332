//! Issue 12, "Nothing stuck, whatever the machine does": one regression test per defect,
//! through the binary. Each names the defect it guards against.
//!
//! Daemons run on a clock that starts at a fixed instant and runs at real speed; tests wait
//! for what the daemon logs, never by sleeping.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Project, alive};
use serde_json::Value;

fn runs(p: &Project, job: &str) -> Vec<Value> {
    p.run_live(&["runs", job, "-o", "json", "--limit", "1000"])
        .code(0)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_run_end(daemon: &mut Daemon, job: &str) -> Value {
    daemon.wait_for("run ended", &[("job", job)])
}

/// Waits (up to 10 s, on a pidfd: no polling) for `pid` to end; whether it did.
fn gone(pid: i32) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return !alive(pid);
    }
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; the descriptor is ours and closed after.
    let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
    unsafe { libc::close(fd) };
    ready == 1 || !alive(pid)
}

fn read_pid(p: &Project, file: &str) -> i32 {
    std::fs::read_to_string(p.path(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

/// Defect 1: `exec setsid sleep 40` leaves the run's group at once and holds its output open.
/// The run ends by the drain grace, and the escaped process is killed.
#[test]
fn an_escaped_child_does_not_hang_its_run() {
    let p = Project::new().file(
        "jobs.d/escape.yaml",
        "run: \"setsid sh -c 'echo $$ > escaped.pid; exec sleep 40' &\"\ntimeout: 3s\n",
    );
    let mut daemon = p.serve(&["--kill-grace", "1s"], None);
    daemon.wait_for("reconciled", &[]);
    let asked = Instant::now();
    p.run_live(&["trigger", "escape"]).code(0);
    let ended = wait_run_end(&mut daemon, "escape");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the run took {:?}",
        asked.elapsed()
    );
    assert_eq!(ended["state"], "succeeded");
    let escaped = read_pid(&p, "escaped.pid");
    assert!(gone(escaped), "the escaped process {escaped} survived");
    let id = runs(&p, "escape")[0]["id"].to_string();
    p.run_live(&["run", "events", &id])
        .code(0)
        .stdout_has("kept its output open after it exited");
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 1: the issue's own case, `exec setsid sleep 40` with a 3 s timeout, ends in seconds.
#[test]
fn an_exec_setsid_run_ends_within_its_timeout() {
    let p = Project::new().file(
        "jobs.d/escape.yaml",
        "run: exec setsid sleep 40\ntimeout: 3s\n",
    );
    let mut daemon = p.serve(&["--kill-grace", "1s"], None);
    daemon.wait_for("reconciled", &[]);
    let asked = Instant::now();
    p.run_live(&["trigger", "escape"]).code(0);
    wait_run_end(&mut daemon, "escape");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the run took {:?}",
        asked.elapsed()
    );
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 1: a cancel reaches a descendant in another session, and the run ends at once.
#[test]
fn cancel_ends_a_run_whose_descendant_escaped() {
    let p = Project::new().file(
        "jobs.d/escape.yaml",
        "run: \"setsid sh -c 'echo $$ > escaped.fifo; exec sleep 60' & sleep 60\"\n",
    );
    common::mkfifo(&p.path("escaped.fifo"));
    let mut daemon = p.serve(&["--kill-grace", "1s"], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "escape"]).code(0);
    let started = daemon.wait_for("process started", &[("job", "escape")]);
    let id = started["run"].to_string();
    let escaped: i32 = read_fifo(&p, "escaped.fifo").parse().unwrap();
    let asked = Instant::now();
    p.run_live(&["run", "cancel", &id]).code(0);
    let ended = wait_run_end(&mut daemon, "escape");
    assert_eq!(ended["state"], "cancelled");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the cancel took {:?}",
        asked.elapsed()
    );
    assert!(gone(escaped), "the escaped process {escaped} survived");
    assert_eq!(daemon.stop(), Some(0));
}

/// Waits (up to 30 s) for a job to write a line into the FIFO `name` (made with
/// [`common::mkfifo`]), and returns it.
fn read_fifo(p: &Project, name: &str) -> String {
    let path = p.path(name);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(path));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the job never wrote to the FIFO")
        .unwrap()
        .trim()
        .to_string()
}

/// Defect 1: a stopping daemon ends a run whose descendant escaped and ignores SIGTERM, within
/// its shutdown grace plus the kill grace, and leaves nothing behind.
#[test]
fn shutdown_ends_a_run_whose_descendant_escaped() {
    let p = Project::new().file(
        "jobs.d/escape.yaml",
        "run: \"setsid sh -c 'trap \\\"\\\" TERM; echo $$ > escaped.fifo; while :; do sleep 1; done' & sleep 600\"\n",
    );
    common::mkfifo(&p.path("escaped.fifo"));
    let mut daemon = p.serve(&["--kill-grace", "1s", "--shutdown-grace", "1s"], None);
    daemon.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "escape"]).code(0);
    let escaped: i32 = read_fifo(&p, "escaped.fifo").parse().unwrap();
    let asked = Instant::now();
    assert_eq!(daemon.stop(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the daemon took {:?} to stop",
        asked.elapsed()
    );
    assert!(gone(escaped), "the escaped process {escaped} survived");
}

/// A tmpfs of `size` mounted at `dir` for the test, unmounted (lazily) when dropped; `None`,
/// with the reason printed, where this machine forbids mounts.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: std::path::PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(dir)),
            Ok(out) => {
                eprintln!(
                    "skipped: this machine forbids mounting a tmpfs: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// GETs `path` from the daemon; the status and the JSON body.
fn get(daemon: &mut Daemon, path: &str) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut reply = agent.get(format!("{}{path}", daemon.url())).call().unwrap();
    let status = reply.status().as_u16();
    let text = reply.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Defect 2 (and 13): a run that ends while the ledger's disk is full is recorded once space
/// returns, not left `running`; readiness says the ledger cannot be written meanwhile; and
/// slots go on firing afterwards.
#[test]
fn a_full_disk_does_not_leave_a_run_running() {
    let p = Project::new()
        .file("jobs.d/gate.yaml", "run: read line < go.fifo; echo ended\n")
        .file("jobs.d/tick.yaml", "schedule: {every: 1s}\nrun: \"true\"\n")
        .file("tokens", "admin admin-token-0123456789abcdef\n");
    let Some(disk) = Tmpfs::mount(p.path("disk"), "4m") else {
        return;
    };
    common::mkfifo(&p.path("go.fifo"));
    let ledger = ["--ledger", "disk/ledger.db", "--token-file", "tokens"];
    let mut daemon = p.serve(&ledger, None);
    daemon.wait_for("scheduler started", &[]);
    let (status, ready) = get(&mut daemon, "/readyz");
    assert_eq!(status, 200, "{ready}");
    p.run_live(&["--ledger", "disk/ledger.db", "trigger", "gate"])
        .code(0);
    daemon.wait_for("process started", &[("job", "gate")]);

    let filler = disk.fill();
    std::fs::write(p.path("go.fifo"), "go\n").unwrap();
    daemon.wait_for("recording the run's end", &[("job", "gate")]);
    let (status, ready) = get(&mut daemon, "/readyz");
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["ledger"]
            .as_str()
            .unwrap()
            .contains("cannot be written"),
        "{ready}"
    );
    // A trigger meanwhile is refused as unavailable (retry later), not an internal error.
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let refused = agent
        .post(format!("{}/v1/jobs/tick/trigger", daemon.url()))
        .header("Authorization", "Bearer admin-token-0123456789abcdef")
        .send_empty()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));

    std::fs::remove_file(filler).unwrap();
    let ended = wait_run_end(&mut daemon, "gate");
    assert_eq!(ended["state"], "succeeded");
    // Slots fire again, and the daemon is ready again.
    wait_run_end(&mut daemon, "tick");
    let (status, ready) = get(&mut daemon, "/readyz");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(daemon.stop(), Some(0));

    let gate = p
        .run_live(&["--ledger", "disk/ledger.db", "runs", "gate", "-o", "json"])
        .code(0)
        .json();
    let gate = gate.as_array().unwrap();
    assert_eq!(gate.len(), 1, "one run, never a second execution: {gate:?}");
    assert_eq!(gate[0]["state"], "succeeded");
}

/// Starts `jobs ARGS` in the project on the running daemon's clock, without waiting for it.
fn spawn_jobs(p: &Project, args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("jobctl"));
    cmd.current_dir(p.root())
        .args(args)
        .env("NO_COLOR", "1")
        .env("JOBS_NOW", p.live_now().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for var in ["JOBS_DIR", "JOBS_LEDGER", "JOBS_CONFIG", "JOBS_SERVER"] {
        cmd.env_remove(var);
    }
    cmd.spawn().unwrap()
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Defect 3: a foreground `jobctl run` killed with SIGKILL leaves its run `running`; a daemon
/// that is up notices the dead supervisor within seconds, ends the run and kills its process.
#[test]
fn a_killed_foreground_run_does_not_block_its_job() {
    let p = Project::new().file(
        "jobs.d/long.yaml",
        "run: echo $$ > started.fifo; exec sleep 60\n",
    );
    common::mkfifo(&p.path("started.fifo"));
    let mut daemon = p.serve(&["--shutdown-grace", "0s", "--kill-grace", "1s"], None);
    daemon.wait_for("scheduler started", &[]);
    let mut foreground = spawn_jobs(&p, &["run", "long"]);
    let child: i32 = read_fifo(&p, "started.fifo").parse().unwrap();
    let asked = Instant::now();
    signal(foreground.id(), libc::SIGKILL);
    foreground.wait().unwrap();
    let ended = daemon.wait_for("its supervisor had stopped", &[("job", "long")]);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "noticed after {:?}: {ended}",
        asked.elapsed()
    );
    let all = runs(&p, "long");
    assert_eq!(all[0]["state"], "failed", "{all:?}");
    assert!(gone(child), "the run's process {child} survived");
    // The job is free again: a trigger runs.
    p.run_live(&["trigger", "long"]).code(0);
    daemon.wait_for("process started", &[("job", "long")]);
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 3: a foreground `jobctl run` whose session drops (SIGHUP) or that is asked to stop
/// (SIGTERM) cancels its run and records it, like Ctrl-C.
#[test]
fn a_hung_up_foreground_run_is_cancelled_and_recorded() {
    for (sig, why) in [(libc::SIGHUP, "SIGHUP"), (libc::SIGTERM, "SIGTERM")] {
        let p = Project::new().file(
            "jobs.d/long.yaml",
            "run: echo go > started.fifo; sleep 60\n",
        );
        common::mkfifo(&p.path("started.fifo"));
        p.run(&["apply"]).code(0);
        let mut foreground = spawn_jobs(&p, &["run", "long"]);
        read_fifo(&p, "started.fifo");
        signal(foreground.id(), sig);
        let status = foreground.wait().unwrap();
        assert_ne!(status.code(), Some(0), "{why}");
        let all = runs(&p, "long");
        assert_eq!(all[0]["state"], "cancelled", "{why}: {all:?}");
        assert!(
            all[0]["error"].as_str().unwrap_or("").contains(why),
            "{why}: {all:?}"
        );
    }
}

fn job_names(p: &Project) -> Vec<String> {
    let list = p.run_live(&["list", "-o", "json"]).code(0).json();
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Points the symlink `link` at `target`, atomically (a new link renamed over the old one, as
/// deploy tools do).
fn switch_link(p: &Project, link: &str, target: &str) {
    let tmp = p.path(&format!("{link}.new"));
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, p.path(link)).unwrap();
}

/// Defect 4: switching a `jobs.d` symlink to a new release is followed: the new release is
/// applied, its later edits are seen, and edits in the old release are not.
#[test]
fn replacing_the_jobs_folder_keeps_reconciling() {
    let p = Project::new()
        .file("releases/v1/a.yaml", common::job("@daily"))
        .file("releases/v2/b.yaml", common::job("@daily"));
    std::os::unix::fs::symlink("releases/v1", p.path("jobs.d")).unwrap();
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("scheduler started", &[]);
    assert_eq!(job_names(&p), ["a"]);

    switch_link(&p, "jobs.d", "releases/v2");
    daemon.wait_for("reconciled: applied 1 added, 0 changed, 1 removed", &[]);
    assert_eq!(job_names(&p), ["b"]);

    // An edit in the old release is not applied; one in the new release is.
    p.write("releases/v1/old.yaml", common::job("@daily"));
    p.write("releases/v2/c.yaml", common::job("@daily"));
    daemon.wait_for("reconciled: applied 1 added", &[]);
    assert_eq!(job_names(&p), ["b", "c"]);

    // A mv-swap of a real folder, then `rm -rf` and re-create.
    std::fs::remove_file(p.path("jobs.d")).unwrap();
    std::fs::create_dir(p.path("jobs.d.next")).unwrap();
    p.write("jobs.d.next/d.yaml", common::job("@daily"));
    std::fs::rename(p.path("jobs.d.next"), p.path("jobs.d")).unwrap();
    daemon.wait_for("reconciled: applied 1 added, 0 changed, 2 removed", &[]);
    assert_eq!(job_names(&p), ["d"]);
    std::fs::remove_dir_all(p.path("jobs.d")).unwrap();
    std::fs::create_dir(p.path("jobs.d")).unwrap();
    p.write("jobs.d/e.yaml", common::job("@daily"));
    // The empty folder may be applied on its own before `e` is written: wait for `e`.
    while job_names(&p) != ["e"] {
        daemon.wait_for("reconciled: applied", &[]);
    }
    p.write("jobs.d/f.yaml", common::job("@daily"));
    daemon.wait_for("reconciled: applied 1 added, 0 changed, 0 removed", &[]);
    assert_eq!(job_names(&p), ["e", "f"]);
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 5: a file named like an API-owned job is an error of that file alone: the rest of
/// the folder applies, status and readiness say so, and once the API job is deleted the file
/// takes the name.
#[test]
fn a_name_collision_with_an_api_job_blocks_only_its_file() {
    let p = Project::new()
        .file("jobs.d/other.yaml", common::job("@daily"))
        .file("defs/hello.yaml", common::job("@hourly"))
        .file("tokens", "admin admin-token-0123456789abcdef\n");
    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    daemon.wait_for("scheduler started", &[]);
    let url = daemon.url();
    let remote = |args: &[&str]| {
        let token = "admin-token-0123456789abcdef";
        let mut all = vec!["--server", url.as_str(), "--token", token];
        all.extend_from_slice(args);
        p.run_live(&all)
    };
    remote(&["create", "--file", "defs/hello.yaml"]).code(0);

    p.write("jobs.d/hello.yaml", common::job("@daily"));
    p.write("jobs.d/new.yaml", common::job("@daily"));
    daemon.wait_for("reconciled: applied 1 added", &[]);
    assert_eq!(job_names(&p), ["hello", "new", "other"]);
    p.run_live(&["status"])
        .stdout_has("jobs.d/hello.yaml")
        .stdout_has("was created through the API");
    // Reported by readiness, without making the daemon unready: the rest fires.
    let (status, ready) = get(&mut daemon, "/readyz");
    assert_eq!(status, 200, "{ready}");
    assert!(ready["jobs_dir"].as_str().unwrap().contains("hello.yaml"));
    p.run_live(&["apply"])
        .code(1)
        .stderr_has("jobs.d/hello.yaml")
        .stderr_has("was created through the API");

    // Deleted through the API, the name is free: the file takes it.
    remote(&["delete", "hello"]).code(0);
    daemon.wait_for("the jobs folder is valid again", &[]);
    daemon.wait_for("reconciled: applied 1 added", &[]);
    let hello = p.run_live(&["get", "hello", "-o", "json"]).code(0).json();
    assert_eq!(hello["owner"], "file", "{hello}");
    assert_eq!(get(&mut daemon, "/readyz").0, 200);
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 10: jobs run in the folder holding `jobs.d` and a relative `working_dir` is
/// relative to it, whatever the daemon's current directory (`/` under systemd).
#[test]
fn working_dir_defaults_to_the_folder_holding_the_jobs_folder() {
    let p = Project::new()
        .file("app/jobs.d/rel.yaml", "command: [./scripts/hello.sh]\n")
        .file("app/jobs.d/wd.yaml", "working_dir: scripts\nrun: pwd\n")
        .file("app/scripts/hello.sh", "#!/bin/sh\necho the app script\n")
        .file("scripts/hello.sh", "#!/bin/sh\necho the wrong script\n");
    for script in ["app/scripts/hello.sh", "scripts/hello.sh"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.path(script), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The daemon's current directory is the project, not the folder holding `jobs.d`.
    let dir = ["--dir", "app/jobs.d"];
    let mut daemon = p.serve(&dir, None);
    daemon.wait_for("scheduler started", &[]);
    for job in ["rel", "wd"] {
        p.run_live(&["--dir", "app/jobs.d", "trigger", job]).code(0);
        let ended = wait_run_end(&mut daemon, job);
        assert_eq!(ended["state"], "succeeded", "{job}: {ended}");
    }
    let logs = |job: &str| {
        let id = p
            .run_live(&["--dir", "app/jobs.d", "runs", job, "-o", "json"])
            .json()[0]["id"]
            .to_string();
        p.run_live(&["--dir", "app/jobs.d", "logs", &id]).stdout
    };
    assert!(logs("rel").contains("the app script"));
    let app = std::fs::canonicalize(p.path("app/scripts")).unwrap();
    assert_eq!(logs("wd").trim(), app.to_str().unwrap());
    assert_eq!(daemon.stop(), Some(0));
}

/// Defect 9: after a daemon ran with its clock a day ahead, a daemon on the corrected clock
/// does not stay silent until real time catches up: it says what it moved and fires now.
#[test]
fn a_clock_moved_back_does_not_silence_schedules() {
    let p = Project::new()
        .file("jobs.d/tick.yaml", "schedule: {every: 1s}\nrun: \"true\"\n")
        .file(
            "jobs.d/flaky.yaml",
            "run: exit 1\nretry: {attempts: 1, backoff: 1s}\n",
        )
        .file(
            "jobs.d/minutely.yaml",
            "schedule: \"* * * * *\"\nrun: \"true\"\n",
        )
        .file("jobs.d/up.yaml", "run: \"true\"\n")
        .file(
            "jobs.d/fan.yaml",
            "schedule: {after: [up]}\nrun: \"true\"\n",
        );
    let ahead = "2026-11-01T12:00:00Z";
    let mut daemon = p.serve(&[], Some(ahead));
    daemon.wait_for("scheduler started", &[]);
    wait_run_end(&mut daemon, "tick");
    // An `after` job fired by an upstream success stamped a day ahead.
    p.run_live(&["trigger", "up"]).code(0);
    wait_run_end(&mut daemon, "fan");
    // A retry due a second after its failure, decided on the clock that is ahead.
    p.run_live(&["trigger", "flaky"]).code(0);
    daemon.wait_for("run ended; retrying", &[("job", "flaky")]);
    let mut daemon = {
        daemon.signal(libc::SIGKILL);
        daemon.wait();
        // A day behind, two seconds before a minute starts.
        p.serve(&[], Some("2026-10-31T12:00:58Z"))
    };
    let warned = daemon.wait_for("the clock is behind what the ledger recorded", &[]);
    let said = warned["message"].as_str().unwrap();
    assert!(said.contains("23h 59m"), "{warned}");
    assert!(
        said.contains("were recorded early while the clock was ahead"),
        "{warned}"
    );
    // Each resumes from now, not from a day later.
    let mut ended = std::collections::BTreeSet::new();
    while ended.len() < 3 {
        let line = daemon.wait_for("run ended", &[]);
        let job = line["job"].as_str().unwrap().to_string();
        assert_ne!(
            job, "fan",
            "the fan-in fired again for an old success: {line}"
        );
        ended.insert(job);
    }
    // The fan-in fires once for a new upstream success, not for the old one.
    p.run_live(&["trigger", "up"]).code(0);
    wait_run_end(&mut daemon, "fan");
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(runs(&p, "fan").len(), 2);
}

/// Defect 13: a ledger whose pages are corrupt, on which nothing can be scheduled, is not
/// ready, and says why.
#[test]
fn readiness_is_false_on_a_ledger_with_corrupt_pages() {
    let p = Project::new().file("jobs.d/daily.yaml", common::job("@daily"));
    // A first start prepares the ledger (retention's vacuum mode), so the second one reads
    // no more of it than it must.
    let mut first = p.serve(&[], None);
    first.wait_for("scheduler started", &[]);
    assert_eq!(first.stop(), Some(0));
    let ledger = p.path(".jobs/ledger.db");
    let (root, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(&ledger).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'jobs'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, size)
    };
    {
        use std::io::{Seek, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&ledger)
            .unwrap();
        file.seek(std::io::SeekFrom::Start(((root - 1) * page_size) as u64))
            .unwrap();
        file.write_all(&vec![0xA5; page_size as usize]).unwrap();
    }
    let mut daemon = p.serve(&[], None);
    daemon.wait_for("loading jobs for the scheduler", &[]);
    let (status, ready) = get(&mut daemon, "/readyz");
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["scheduler"].as_str().unwrap().contains("malformed"),
        "{ready}"
    );
    daemon.stop();
}

/// Defect 7's other side: the daemon raises its own descriptor limit, but its runs start with
/// the limit it was given (programs that close every descriptor up to the limit, or use
/// select(), expect the usual one).
#[test]
fn runs_keep_the_descriptor_limit_the_daemon_was_started_with() {
    let p = Project::new().file("jobs.d/limit.yaml", "run: ulimit -n\n");
    let mut daemon = p.serve_with(&[], None, &[], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 1024,
                    rlim_max: 4096,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
    });
    daemon.wait_for("scheduler started", &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some("4096"),
        "{open_files}"
    );
    p.run_live(&["trigger", "limit"]).code(0);
    wait_run_end(&mut daemon, "limit");
    let id = runs(&p, "limit")[0]["id"].to_string();
    assert_eq!(p.run_live(&["logs", &id]).stdout.trim(), "1024");
    assert_eq!(daemon.stop(), Some(0));
}

/// Found in review: a fan-in released by the daemon's start sweep (its upstream succeeded in a
/// foreground `jobctl run` while no daemon ran) deadlocked the daemon on its own ledger lock.
#[test]
fn a_fan_in_released_at_start_runs_without_deadlock() {
    let p = Project::new()
        .file("jobs.d/up.yaml", "run: \"true\"\n")
        .file(
            "jobs.d/fan.yaml",
            "schedule: {after: [up]}\nrun: \"true\"\n",
        );
    p.run(&["apply"]).code(0);
    p.run_with(&["run", "up"], &[("JOBS_NOW", "2026-10-31T12:00:05Z")])
        .code(0);
    let mut daemon = p.serve(&[], Some("2026-10-31T12:00:10Z"));
    wait_run_end(&mut daemon, "fan");
    assert_eq!(get(&mut daemon, "/readyz").0, 200);
    assert_eq!(daemon.stop(), Some(0));
}
