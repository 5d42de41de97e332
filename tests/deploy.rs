//! The deploy story (issue 13): `Type=notify` readiness and watchdog, and the shipped unit.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::Project;

/// Reads notifications until one holds `what` (up to 20 s).
fn expect(socket: &UnixDatagram, what: &str) {
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == what)
        {
            return;
        }
    }
    panic!("the daemon never sent {what}");
}

#[test]
fn serve_tells_systemd_it_is_ready_feeds_the_watchdog_and_says_it_stops() {
    let p = Project::new().file("jobs.d/a.yaml", common::job("@daily"));
    let path = p.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let daemon = p.serve_env(
        &[],
        None,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    expect(&socket, "READY=1");
    expect(&socket, "WATCHDOG=1");
    expect(&socket, "WATCHDOG=1");
    assert_eq!(daemon.stop(), Some(0));
    expect(&socket, "STOPPING=1");
}

/// The shipped units (one daemon, a cluster's node) pass `systemd-analyze verify` where
/// systemd is installed.
#[test]
fn the_systemd_units_verify() {
    for name in ["jobctl.service", "jobctl-cluster.service"] {
        verify(name);
    }
}

fn verify(name: &str) {
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/systemd")
        .join(name);
    let text = std::fs::read_to_string(&unit).unwrap();
    // What the daemon's shutdown grace needs, whatever the machine has.
    assert!(text.lines().any(|l| l == "KillMode=mixed"), "{text}");
    assert!(text.lines().any(|l| l == "Type=notify"), "{text}");
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed here");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    // On a machine without the unit's user or binary, verify names them; nothing else.
    let real: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("/usr/local/bin/jobctl") && !l.trim().is_empty())
        .filter(|l| !l.contains("Failed to resolve") && !l.contains("User="))
        .collect();
    assert!(real.is_empty(), "systemd-analyze verify:\n{stderr}");
}
