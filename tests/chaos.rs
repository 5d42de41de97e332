//! Chaos on a cluster: three `jobctl serve` on one PostgreSQL ledger with jobs firing every
//! second, while nodes are killed (SIGKILL) and restarted, the leader is frozen (SIGSTOP)
//! for longer than its lease and then continued, and PostgreSQL itself goes away for 4 s
//! (the nodes wait without spinning) and comes back. After
//! it all: no (job, slot) fired twice, no run left `running`, every started run's node
//! recorded, `forbid` held (no two runs of a job overlap), and the ticks went on throughout.
//!
//! A test binary of its own: it restarts the test server, which no other test may share.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Project, pg};

fn count(p: &Project, sql: &str) -> i64 {
    p.sql(sql).parse().unwrap()
}

/// A process's CPU time (user and system) in clock ticks (1/100 s).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

const TICKS: &str = "SELECT count(*) FROM runs WHERE job = 'tick' AND state = 'succeeded'";
const LEADER: &str = "SELECT holder FROM leases WHERE name = 'daemon'";

/// Waits until the ticks go on: `more` ticks succeeded after now.
fn ticks_go_on(p: &Project, more: i64) {
    let before = count(p, TICKS);
    p.until(TICKS, Duration::from_secs(30), |v| {
        v.parse::<i64>().unwrap() >= before + more
    });
}

#[test]
fn no_slot_twice_and_nothing_stuck_through_kills_a_freeze_and_a_database_restart() {
    let mut p = Project::new()
        .file(
            "jobs.d/tick.yaml",
            "schedule: {every: 1s}\ncommand: [\"true\"]\n",
        )
        .file(
            "jobs.d/guarded.yaml",
            "schedule: {every: 1s}\nrun: sleep 1.5\nconcurrency: forbid\n",
        )
        .file(
            "jobs.d/long.yaml",
            "run: sleep 300\nretry: {attempts: 5, backoff: 1s}\n",
        );
    p.ledger_url = Some(pg::database());
    let names = ["a", "b", "c"];
    let mut nodes: Vec<Option<Daemon>> = vec![Some(p.serve_node("a", true))];
    nodes[0].as_mut().unwrap().wait_for("reconciled", &[]);
    nodes.push(Some(p.serve_node("b", false)));
    nodes.push(Some(p.serve_node("c", false)));
    ticks_go_on(&p, 2);
    let index = |name: &str| names.iter().position(|n| *n == name).unwrap();

    // The leader killed twice, a follower once; each restarted under its name.
    for _ in 0..2 {
        let leader = index(&p.sql(LEADER));
        nodes[leader].take().unwrap().signal(libc::SIGKILL);
        p.until(LEADER, Duration::from_secs(15), |v| v != names[leader]);
        nodes[leader] = Some(p.serve_node(names[leader], false));
        ticks_go_on(&p, 2);
    }
    // The node running a long run killed: the run ends "node lost" and its retry runs on
    // another node within 15 s.
    p.run_live(&["trigger", "long"]).code(0);
    let running = "SELECT id || ' ' || node FROM runs WHERE job = 'long' AND state = 'running'
                   AND pid IS NOT NULL";
    let first = p.until(running, Duration::from_secs(20), |v| !v.is_empty());
    let (id, node) = first.split_once(' ').unwrap();
    let victim = index(node);
    nodes[victim].take().unwrap().signal(libc::SIGKILL);
    let killed = Instant::now();
    let retry = p.until(running, Duration::from_secs(15), |v| {
        !v.is_empty() && !v.starts_with(&format!("{id} "))
    });
    assert!(killed.elapsed() < Duration::from_secs(15));
    assert!(!retry.ends_with(&format!(" {node}")), "{retry}");
    assert!(
        p.sql(&format!("SELECT error FROM runs WHERE id = {id}"))
            .starts_with("node lost"),
    );
    let (retry_id, _) = retry.split_once(' ').unwrap();
    p.run_live(&["run", "cancel", retry_id]).code(0);
    ticks_go_on(&p, 2);
    nodes[victim] = Some(p.serve_node(names[victim], false));

    // The leader frozen past its lease and its heartbeat's limit, then continued: it is
    // refused and stops; restarted, it joins again.
    let leader = index(&p.sql(LEADER));
    let mut frozen = nodes[leader].take().unwrap();
    frozen.signal(libc::SIGSTOP);
    p.until(
        &format!(
            "SELECT lost_at IS NOT NULL FROM nodes WHERE name = '{}'",
            names[leader]
        ),
        Duration::from_secs(20),
        |v| v == "t",
    );
    ticks_go_on(&p, 2);
    frozen.signal(libc::SIGCONT);
    assert_eq!(frozen.wait(), Some(1));
    nodes[leader] = Some(p.serve_node(names[leader], false));
    // Settled: the restarted node's start (a reconcile, on a debug build) is behind it.
    ticks_go_on(&p, 3);

    // PostgreSQL gone for 4 s: the nodes wait without spinning (after the first second, when
    // every connection fails at once, each spends under 0.3 s of CPU in 3 s), then reconnect
    // and carry on.
    let pids: Vec<i32> = nodes.iter().flatten().map(Daemon::pid).collect();
    pg::server().stop();
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<u64> = pids.iter().map(|&pid| cpu_ticks(pid)).collect();
    std::thread::sleep(Duration::from_secs(3));
    for (pid, before) in pids.iter().zip(before) {
        let spent = cpu_ticks(*pid) - before;
        assert!(
            spent < 30,
            "node pid {pid} spent {spent} ticks in 3 s while the database was away"
        );
    }
    pg::server().restart();
    ticks_go_on(&p, 3);

    for node in nodes.into_iter().flatten() {
        assert_eq!(node.stop(), Some(0));
    }
    let doubled = "SELECT count(*) FROM (SELECT job, slot FROM runs WHERE slot IS NOT NULL
                   GROUP BY job, slot HAVING count(*) > 1) d";
    assert_eq!(count(&p, doubled), 0);
    assert_eq!(
        count(&p, "SELECT count(*) FROM runs WHERE state = 'running'"),
        0,
        "{}",
        p.sql("SELECT string_agg(id || ' ' || job || ' ' || coalesce(node, '-'), ', ') FROM runs WHERE state = 'running'")
    );
    assert_eq!(
        count(
            &p,
            "SELECT count(*) FROM runs WHERE started_at IS NOT NULL AND node IS NULL"
        ),
        0
    );
    let overlapping = "SELECT count(*) FROM runs x JOIN runs y ON x.job = y.job AND x.id < y.id
        WHERE x.job = 'guarded' AND x.started_at IS NOT NULL AND y.started_at IS NOT NULL
          AND y.started_at < coalesce(x.finished_at, '9999') AND x.started_at < coalesce(y.finished_at, '9999')";
    assert_eq!(count(&p, overlapping), 0);
    let states = p.sql("SELECT string_agg(state || coalesce(' ' || error, ''), '; ') FROM runs WHERE job = 'guarded'");
    assert!(
        count(
            &p,
            "SELECT count(*) FROM runs WHERE job = 'guarded' AND state = 'succeeded'"
        ) >= 2,
        "{states}"
    );
}
