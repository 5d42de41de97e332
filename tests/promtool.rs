//! `/metrics` passes `promtool check metrics` with no lint: HELP on every family, counters
//! named `_total`, units in names. Needs `promtool` (Debian's `prometheus` package, which
//! `.ci/run` installs); without it the test says so and passes.

mod common;

use common::Project;

const ADMIN: &str = "admin-token-0123456789abcdef";

fn http(method: &str, url: &str) -> String {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {ADMIN}"))
        .body(Vec::new())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    assert!(response.status().is_success(), "{method} {url}");
    response.body_mut().read_to_string().unwrap()
}

fn promtool() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join("promtool"))
        .find(|p| p.is_file())
}

#[test]
fn metrics_pass_promtool_check_metrics() {
    let Some(promtool) = promtool() else {
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
        return;
    };
    let p = Project::new()
        .file("jobs.d/ok.yaml", "command: [\"true\"]\n")
        .file("jobs.d/bad.yaml", "command: [\"false\"]\n")
        .file("tokens", format!("admin {ADMIN}\n"));
    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    daemon.wait_for("scheduler started", &[]);
    let url = daemon.url();
    // Runs that succeed and fail, so every family (counters, histograms, the per-job gauge)
    // has samples to lint.
    for job in ["ok", "bad"] {
        let run: serde_json::Value =
            serde_json::from_str(&http("POST", &format!("{url}/v1/jobs/{job}/trigger"))).unwrap();
        daemon.wait_for("run ended", &[("run", &run["id"].to_string())]);
    }
    let text = http("GET", &format!("{url}/metrics"));
    for family in [
        "jobs_runs_finished_total{",
        "jobs_run_duration_seconds_bucket{",
        "jobs_fire_latency_seconds_count ",
        "jobs_last_success_timestamp_seconds{",
    ] {
        assert!(text.contains(family), "no {family} in:\n{text}");
    }

    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics said:\n{said}\nabout:\n{text}"
    );
    assert_eq!(daemon.stop(), Some(0));
}
