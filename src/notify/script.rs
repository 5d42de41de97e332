//! A `run` notification: `sh -c SCRIPT` with the outcome in `JOBS_*` variables.

use super::*;

pub(super) async fn run(
    script: &str,
    outcome: &Outcome,
    policy: &Policy,
) -> Result<String, NotifyError> {
    let event = outcome.event;
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .envs(script_env(outcome))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, so a timeout reaches what the script started (`curl | mail`).
        .process_group(0)
        .kill_on_drop(true);
    for (var, value) in [
        ("JOBS_EXIT_CODE", &outcome.exit_code.map(|c| c.to_string())),
        ("JOBS_RUN_ERROR", &outcome.error),
    ] {
        // Never inherit a stale one from the daemon's own environment.
        if value.is_none() {
            command.env_remove(var);
        }
    }
    let mut child = command
        .spawn()
        .map_err(|reason| NotifyError::ScriptStart { event, reason })?;
    let group = child.id();
    let stderr = child.stderr.take().expect("stderr is piped");
    let ended = tokio::time::timeout(policy.timeout, async {
        tokio::join!(child.wait(), last_line(stderr))
    })
    .await;
    match ended {
        Err(_) => {
            if let Some(pid) = group.and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: killpg only sends a signal; the group is the script's own.
                unsafe { libc::killpg(pid, libc::SIGKILL) };
            }
            Err(NotifyError::ScriptTimedOut {
                event,
                limit: policy.timeout,
            })
        }
        Ok((Err(reason), _)) => Err(NotifyError::ScriptWait { event, reason }),
        Ok((Ok(status), line)) => {
            use std::os::unix::process::ExitStatusExt;
            let how = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exited {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => "ended".to_string(),
            };
            if status.success() {
                Ok(format!("{event} run: {how}"))
            } else {
                Err(NotifyError::ScriptFailed {
                    event,
                    how,
                    stderr: line,
                })
            }
        }
    }
}

/// The outcome as `JOBS_*` variables for a script.
pub(super) fn script_env(outcome: &Outcome) -> Vec<(String, String)> {
    let mut env = vec![
        ("JOBS_JOB".to_string(), outcome.job.clone()),
        ("JOBS_RUN_ID".into(), outcome.run_id.to_string()),
        ("JOBS_RUN_STATE".into(), outcome.state.clone()),
        ("JOBS_TRIGGER".into(), outcome.trigger.clone()),
        ("JOBS_ATTEMPT".into(), outcome.attempt.to_string()),
        (
            "JOBS_STARTED_AT".into(),
            outcome.started_at.clone().unwrap_or_default(),
        ),
        ("JOBS_FINISHED_AT".into(), outcome.finished_at.clone()),
        (
            "JOBS_FAILURE_STREAK".into(),
            outcome.failure_streak.to_string(),
        ),
        ("JOBS_EVENT".into(), outcome.event.to_string()),
    ];
    if let Some(code) = outcome.exit_code {
        env.push(("JOBS_EXIT_CODE".into(), code.to_string()));
    }
    if let Some(error) = &outcome.error {
        env.push(("JOBS_RUN_ERROR".into(), error.clone()));
    }
    if let Some(serde_json::Value::Object(params)) = &outcome.params {
        for (name, value) in params {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.push((crate::template::param_env_var(name), value));
        }
    }
    env
}

/// The last non-empty line of what `stream` writes, reading at most the last 4 KiB of it into
/// memory, however much it writes.
pub(super) async fn last_line(mut stream: impl tokio::io::AsyncRead + Unpin) -> Option<String> {
    const KEEP: usize = 4096;
    let mut tail = Vec::with_capacity(KEEP);
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > KEEP {
                    tail.drain(..tail.len() - KEEP);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}
