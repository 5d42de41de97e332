//! A cluster: several `jobctl serve --node NAME` on one PostgreSQL ledger (a throwaway server,
//! `common::pg`). One node leads (decides slots), every node claims and runs; a dead leader is
//! replaced and a dead node's runs are ended `failed` ("node lost") and retried within 15 s;
//! a frozen leader that wakes up is refused and stops; no (job, slot) ever fires twice.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Project, pg};

/// A project on a database of its own, with a job every second and a long manual one that
/// retries.
fn cluster() -> Project {
    let mut p = Project::new()
        .file(
            "jobs.d/tick.yaml",
            "schedule: {every: 1s}\ncommand: [\"true\"]\n",
        )
        .file(
            "jobs.d/long.yaml",
            "run: sleep 300\nretry: {attempts: 1, backoff: 1s}\nconcurrency: forbid\n",
        );
    p.ledger_url = Some(pg::database());
    p
}

/// Node `a`, the first and so the leader, running a run of `long`: the node and the run's pid.
fn leader_running_long(p: &Project) -> (Daemon, String) {
    let mut a = p.serve_node("a", true);
    a.wait_for("reconciled", &[]);
    p.run_live(&["trigger", "long"]).code(0);
    let pid = p.until(
        "SELECT pid FROM runs WHERE job = 'long' AND state = 'running' AND node = 'a'",
        Duration::from_secs(20),
        |v| !v.is_empty(),
    );
    (a, pid)
}

const LEADER: &str = "SELECT holder FROM leases WHERE name = 'daemon'";
const DOUBLED: &str = "SELECT count(*) FROM (SELECT job, slot FROM runs WHERE slot IS NOT NULL
                       GROUP BY job, slot HAVING count(*) > 1) d";

fn kill(d: &Daemon, signal: i32) {
    d.signal(signal);
}

fn alive(pid: &str) -> bool {
    pid.parse::<i32>().is_ok_and(common::alive)
}

#[test]
fn a_dead_leader_is_replaced_and_its_runs_are_ended_and_retried_within_15_s() {
    let p = cluster();
    let (a, pid) = leader_running_long(&p);
    let run = p.sql("SELECT id FROM runs WHERE job = 'long'");
    let mut b = p.serve_node("b", false);
    let _c = p.serve_node("c", false);
    b.wait_for("node a leads (term 1); this node follows", &[]);
    assert_eq!(p.sql(LEADER), "a");
    let ticks = p.sql("SELECT count(*) FROM runs WHERE job = 'tick'");

    kill(&a, libc::SIGKILL);
    let killed = Instant::now();
    let leader = p.until(LEADER, Duration::from_secs(15), |v| v != "a");
    let failover = killed.elapsed();
    assert!(leader == "b" || leader == "c", "{leader}");

    // The run of the dead node: failed, "node lost", with an event, its process killed, and
    // retried on a live node, all within 15 s.
    let retry = p.until(&format!(
            "SELECT node FROM runs WHERE first_run_id = {run} AND state = 'running' AND pid IS NOT NULL"
        ),
        Duration::from_secs(15).saturating_sub(killed.elapsed()),
        |v| !v.is_empty(),
    );
    let recovered = killed.elapsed();
    assert!(retry == "b" || retry == "c", "{retry}");
    // The message ends with what was killed: the group, and any of its processes that had
    // left it (`sleep` under `sh`, depending on how fast the kill came).
    let ended = p.sql(&format!(
        "SELECT state || ': ' || error FROM runs WHERE id = {run}"
    ));
    let expected = "failed: node lost: node a has not been heard from since ".to_string()
        + &p.sql("SELECT heartbeat_at FROM nodes WHERE name = 'a'")
        + "; killed its process group "
        + &pid;
    assert!(ended.starts_with(&expected), "{ended}");
    assert_eq!(
        p.sql(&format!(
            "SELECT count(*) FROM run_events WHERE run_id = {run} AND kind = 'node_lost'"
        )),
        "1"
    );
    assert!(!alive(&pid), "the dead node's run still runs: pid {pid}");
    assert!(p.sql("SELECT lost_at FROM nodes WHERE name = 'a'").len() > 10);

    // The new leader fires the ticks, and none twice.
    p.until(
        "SELECT count(*) FROM runs WHERE job = 'tick'",
        Duration::from_secs(10),
        |v| v.parse::<i64>().unwrap() > ticks.parse::<i64>().unwrap() + 2,
    );
    assert_eq!(p.sql(DOUBLED), "0");
    // Status tells it: a is lost, the leader leads in term 2.
    let status = p.run_live(&["status", "-o", "json"]).code(0).json();
    let nodes = status["nodes"].as_array().unwrap();
    let a_view = nodes.iter().find(|n| n["name"] == "a").unwrap();
    assert_eq!(a_view["alive"], false, "{status}");
    assert!(a_view["lost_at"].is_string(), "{status}");
    let lead = nodes.iter().find(|n| n["leader"] == true).unwrap();
    assert_eq!(lead["name"], leader.as_str(), "{status}");
    assert_eq!(lead["term"], 2, "{status}");
    eprintln!("failover {failover:?}, lost run retried after {recovered:?}");
}

#[test]
fn a_frozen_leader_that_wakes_up_is_refused_and_stops() {
    let p = cluster();
    let (mut a, pid) = leader_running_long(&p);
    let mut b = p.serve_node("b", false);
    b.wait_for("node a leads (term 1); this node follows", &[]);

    // Frozen (a VM pause) for longer than its lease and its heartbeat's limit.
    kill(&a, libc::SIGSTOP);
    b.wait_for("this node leads now (term 2)", &[]);
    p.until(
        "SELECT count(*) FROM runs WHERE job = 'long' AND error LIKE 'node lost%'",
        Duration::from_secs(15),
        |v| v == "1",
    );
    // Its run's processes, on this machine, were killed; the retry runs on b.
    assert!(!alive(&pid), "the frozen node's run still runs: pid {pid}");
    p.until(
        "SELECT node FROM runs WHERE job = 'long' AND state = 'running'",
        Duration::from_secs(10),
        |v| v == "b",
    );
    // Woken, it believes it leads: its heartbeat is refused, it stops; no slot twice.
    kill(&a, libc::SIGCONT);
    assert_eq!(a.wait(), Some(1));
    let said: String = a.seen.iter().map(ToString::to_string).collect();
    assert!(
        said.contains("node a was declared lost by the leader"),
        "{said}"
    );
    assert_eq!(p.sql(DOUBLED), "0");
    assert_eq!(p.sql(LEADER), "b");
}

#[test]
fn a_run_on_one_node_is_followed_live_through_another_nodes_api() {
    const TOKEN: &str = "cluster-test-admin-token-0123";
    let mut p = Project::new().file(
        "jobs.d/talk.yaml",
        "run: for i in 1 2 3 4; do echo line $i; sleep 0.4; done\nruns_on: [worker]\n",
    );
    p.ledger_url = Some(pg::database());
    let mut a = p.serve_env(&["--node", "a"], None, &[("JOBS_TOKEN", TOKEN)]);
    a.wait_for("jobs serve started", &[]);
    a.wait_for("reconciled", &[]);
    let now = p.live_now().to_string();
    let mut b = p.serve_env(
        &["--node", "b", "--labels", "worker"],
        Some(&now),
        &[("JOBS_TOKEN", TOKEN)],
    );
    b.wait_for("jobs serve started", &[]);
    let url = a.url();
    let queued = p.run_live(&["trigger", "talk"]).code(0);
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    // Followed from the start through node a's API while node b runs it.
    let started = Instant::now();
    let followed = p
        .run_live(&["logs", &id, "-f", "--server", &url, "--token", TOKEN])
        .code(0);
    assert_eq!(
        followed.stdout.lines().collect::<Vec<_>>(),
        ["line 1", "line 2", "line 3", "line 4"]
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let run = p
        .run_live(&[
            "run", "get", &id, "-o", "json", "--server", &url, "--token", TOKEN,
        ])
        .code(0)
        .json();
    assert_eq!(run["node"], "b", "{run}");
    assert_eq!(run["state"], "succeeded", "{run}");
}

/// A TCP proxy to the test server that can be cut: every connection through it closed, and
/// new ones refused, until it is mended.
struct Proxy {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn to(port: u16) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            open: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            streams: std::sync::Arc::default(),
        };
        let (open, streams) = (proxy.open.clone(), proxy.streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                if !open.load(Ordering::SeqCst) {
                    continue;
                }
                let mut all = streams.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    /// Cuts every connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_node_cut_off_from_the_database_kills_its_runs_before_another_takes_them() {
    let mut p = Project::new().file(
        "jobs.d/long.yaml",
        "run: sleep 300\nruns_on: [worker]\nretry: {attempts: 1, backoff: 1s}\n",
    );
    let url = pg::database();
    p.ledger_url = Some(url.clone());
    let mut a = p.serve_node("a", true);
    a.wait_for("reconciled", &[]);
    // Node b reaches the database through a proxy that the test cuts.
    let proxy = Proxy::to(pg::server().port);
    let through = url.replace(
        &format!(":{}/", pg::server().port),
        &format!(":{}/", proxy.port),
    );
    let now = p.live_now().to_string();
    let mut b = p.serve(
        &["--node", "b", "--labels", "worker", "--ledger", &through],
        Some(&now),
    );
    b.wait_for("jobs serve started", &[]);
    p.run_live(&["trigger", "long"]).code(0);
    let pid = p.until(
        "SELECT pid FROM runs WHERE job = 'long' AND state = 'running' AND node = 'b'",
        Duration::from_secs(20),
        |v| !v.is_empty(),
    );
    let run = p.sql("SELECT id FROM runs WHERE job = 'long'");

    proxy.cut();
    let cut = Instant::now();
    // b kills its run by itself, before the leader may declare b lost (10 s).
    b.wait_for("could not reach the ledger", &[]);
    while alive(&pid) {
        assert!(
            cut.elapsed() < Duration::from_secs(9),
            "the run still runs after {:?}",
            cut.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = cut.elapsed();
    assert!(killed < Duration::from_secs(9), "{killed:?}");
    // The leader declares b lost and ends the run; its retry waits for a worker.
    p.until(
        &format!("SELECT state || ': ' || error FROM runs WHERE id = {run}"),
        Duration::from_secs(15),
        |v| v.starts_with("failed: node lost"),
    );
    eprintln!("the cut-off node killed its run after {killed:?}");
}

/// A cluster following a repository: only the leader fetches and applies, and a push webhook
/// that reaches a follower is passed to the leader through PostgreSQL.
#[test]
fn a_push_webhook_to_a_follower_is_applied_by_the_leader() {
    use common::git;
    let root = tempfile::tempdir().unwrap();
    let (bare, work) = (root.path().join("remote.git"), root.path().join("work"));
    std::fs::create_dir_all(&bare).unwrap();
    git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    std::fs::create_dir_all(work.join("jobs.d")).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    let commit = |file: &str, message: &str| {
        std::fs::write(
            work.join("jobs.d").join(file),
            "schedule: \"0 3 * * *\"\ncommand: [\"true\"]\n",
        )
        .unwrap();
        git(&work, &["add", "--all"]);
        git(&work, &["commit", "--quiet", "-m", message]);
        git(
            &work,
            &["push", "--quiet", bare.to_str().unwrap(), "HEAD:main"],
        );
    };
    commit("first.yaml", "first");
    let mut p = Project::new().file(
        "jobs.toml",
        format!(
            "[git]\nurl = \"{}\"\ninterval = \"1h\"\nsecret_env = \"HOOK_SECRET\"\n",
            bare.display()
        ),
    );
    p.ledger_url = Some(pg::database());
    let env = [("HOOK_SECRET", "cluster-push-secret")];
    let mut a = p.serve_env(&["--node", "a", "--git-workdir", "git-a"], None, &env);
    a.wait_for("reconciled: applied 1 added", &[]);
    let now = p.live_now().to_string();
    let mut b = p.serve_env(&["--node", "b", "--git-workdir", "git-b"], Some(&now), &env);
    b.wait_for("this node follows", &[]);
    let url = b.url();

    commit("second.yaml", "second");
    let body = br#"{"ref": "refs/heads/main"}"#;
    let signature = common::hub_signature("cluster-push-secret", body);
    let reply = ureq::post(&format!("{url}/v1/hooks/git"))
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", &signature)
        .send(&body[..])
        .unwrap();
    assert_eq!(reply.status().as_u16(), 202);
    a.wait_for("reconciled: applied 1 added, 0 changed, 0 removed", &[]);
    assert_eq!(p.sql("SELECT count(*) FROM jobs WHERE active = 1"), "2");
    let follower_applied = b.drain().iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("reconciled: applied"))
    });
    assert!(!follower_applied, "only the leader applies");
    assert!(
        !p.path("git-b/trees").join("a").exists(),
        "a follower checks nothing out"
    );
}
