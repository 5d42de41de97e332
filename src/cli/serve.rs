//! `jobctl serve`: the flags and settings turned into the daemon's options, logging set up,
//! and the daemon started. The daemon itself is `crate::daemon`; this file stays a thin call.

use std::process::ExitCode;

use anyhow::{Result, bail};

use super::args::ServeFlags;
use super::{Settings, clock};
use crate::config::{DaemonConfig, ServerConfig};
use crate::daemon;

pub fn serve(settings: &Settings, flags: ServeFlags) -> Result<ExitCode> {
    let config = daemon_config(settings, &flags)?;
    let format = flags
        .log_format
        .clone()
        .or_else(|| config.log_format.clone())
        .unwrap_or_else(|| "human".to_string());
    init_logging(&format)?;
    let git = git_config(settings, &flags)?;
    let dir = match &git {
        // The daemon's jobs folder is the applied commit's: `WORKDIR/current/PATH`.
        Some(git) => {
            let current = git.workdir.clone().unwrap_or_default().join("current");
            if git.path == "." {
                current
            } else {
                current.join(&git.path)
            }
        }
        None => settings.dir.clone(),
    };
    if git.is_none() && !settings.dir.is_dir() {
        bail!(
            "the jobs folder {} does not exist; create it (`jobctl init`) or pass --dir",
            settings.dir.display()
        );
    }
    let insecure = flags.insecure;
    let server = server_config(settings, flags, config.max_concurrent_runs)?;
    let admin = std::env::var("JOBS_TOKEN").ok();
    let tokens =
        crate::api::auth::Tokens::load(server.token_file.as_deref(), admin.as_deref(), insecure)
            .map_err(anyhow::Error::msg)?;
    daemon::serve(daemon::Options {
        dir,
        git,
        ledger: settings.ledger.clone(),
        open: settings.open,
        defaults: settings.config.defaults.clone(),
        daemon: config,
        server,
        notify: settings.config.notify.clone(),
        tokens,
        insecure,
        clock: clock()?,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `jobs.toml`'s `[daemon]` with the flags that override it.
fn daemon_config(settings: &Settings, flags: &ServeFlags) -> Result<DaemonConfig> {
    let mut config = settings.config.daemon.clone();
    if let Some(n) = flags.max_concurrent_runs {
        if n == 0 {
            bail!("--max-concurrent-runs must be at least 1");
        }
        config.max_concurrent_runs = n;
    }
    if flags.no_apply {
        config.apply = false;
    }
    if let Some(node) = &flags.node {
        check_name("--node", node)?;
        config.node = Some(node.clone());
    }
    if !flags.labels.is_empty() {
        for label in &flags.labels {
            check_name("--labels", label)?;
        }
        let mut labels = flags.labels.clone();
        labels.sort();
        labels.dedup();
        config.labels = labels;
    }
    for (flag, value, slot) in [
        (
            "--shutdown-grace",
            &flags.shutdown_grace,
            &mut config.shutdown_grace,
        ),
        ("--kill-grace", &flags.kill_grace, &mut config.kill_grace),
    ] {
        if let Some(text) = value {
            *slot = crate::duration::Duration::parse(text)
                .map_err(|m| anyhow::anyhow!("{flag}: {m}"))?;
        }
    }
    Ok(config)
}

/// `jobs.toml`'s `[git]` with the flags that override it (a `--git-url` alone is enough), its
/// work directory resolved: as given, else beside a SQLite ledger (`LEDGER_FOLDER/git`), else
/// under systemd's `$STATE_DIRECTORY`, else `.jobs/git` beside the jobs folder.
fn git_config(settings: &Settings, flags: &ServeFlags) -> Result<Option<crate::config::GitConfig>> {
    let mut git = match (&flags.git_url, &settings.config.git) {
        (Some(url), Some(config)) => crate::config::GitConfig {
            url: url.clone(),
            ..config.clone()
        },
        (Some(url), None) => crate::config::GitConfig::new(url.clone()),
        (None, Some(config)) => config.clone(),
        (None, None) => return Ok(None),
    };
    if crate::config::url_has_password(&git.url) {
        bail!(
            "--git-url: never put a password in the URL (it shows in the process list): put a token in a file and pass --git-token-file"
        );
    }
    if let Some(branch) = &flags.git_branch {
        git.branch = branch.clone();
    }
    if let Some(path) = &flags.git_path {
        git.path = crate::config::git_path(path).ok_or_else(|| {
            anyhow::anyhow!(
                "--git-path: `{path}` is not a folder inside the repository, such as `jobs.d`"
            )
        })?;
    }
    if let Some(text) = &flags.git_interval {
        let d = crate::duration::Duration::parse(text)
            .map_err(|m| anyhow::anyhow!("--git-interval: {m}"))?;
        if d.as_signed() < jiff::SignedDuration::from_secs(1) {
            bail!("--git-interval must be at least 1s");
        }
        git.interval = d;
    }
    if let Some(key) = &flags.git_ssh_key_file {
        git.ssh_key_file = Some(key.clone());
        git.token_file = None;
    }
    if let Some(token) = &flags.git_token_file {
        git.token_file = Some(token.clone());
        git.ssh_key_file = None;
    }
    if let Some(dir) = &flags.git_workdir {
        git.workdir = Some(dir.clone());
    }
    if git.workdir.is_none() {
        git.workdir = Some(match settings.ledger.file() {
            Some(file) => file
                .parent()
                .unwrap_or(std::path::Path::new(""))
                .join("git"),
            None => match std::env::var_os("STATE_DIRECTORY") {
                // systemd may give several, `:`-separated: the first.
                Some(dirs) => std::path::PathBuf::from(
                    dirs.to_string_lossy().split(':').next().unwrap_or_default(),
                )
                .join("git"),
                None => settings
                    .dir
                    .parent()
                    .unwrap_or(std::path::Path::new(""))
                    .join(".jobs")
                    .join("git"),
            },
        });
    }
    Ok(Some(git))
}

/// A node's name or label: 1 to 64 letters, digits, `.`, `_` or `-`.
fn check_name(flag: &str, name: &str) -> Result<()> {
    if !crate::name::is_label(name) {
        bail!("{flag}: `{name}` is not a name; use 1 to 64 letters, digits, `.`, `_` or `-`");
    }
    Ok(())
}

/// `jobs.toml`'s `[server]` with the flags that override it, and the connection caps derived
/// from the descriptor limit (raised here, before anything opens descriptors: runs, the
/// ledger and the API share it): what it leaves once `runs` places for runs are provided for.
fn server_config(settings: &Settings, flags: ServeFlags, runs: usize) -> Result<ServerConfig> {
    let mut server = settings.config.server.clone();
    if let Some(listen) = flags.listen {
        server.listen = listen;
    }
    if let Some(file) = flags.token_file {
        server.token_file = Some(file);
    }
    if let (Some(cert), Some(key)) = (flags.tls_cert, flags.tls_key) {
        server.tls_cert = Some(cert);
        server.tls_key = Some(key);
    }
    let nofile = crate::api::conns::raise_descriptor_limit();
    let reserve = crate::api::conns::reserve_for(runs);
    let derived = crate::api::conns::Limits::keeping(nofile, reserve);
    for (flag, value) in [
        ("--max-connections", flags.max_connections),
        ("--max-connections-per-ip", flags.max_connections_per_ip),
    ] {
        if value == Some(0) {
            bail!("{flag} must be at least 1");
        }
    }
    let max = flags
        .max_connections
        .or(server.max_connections)
        .unwrap_or(derived.max);
    let per_ip = flags
        .max_connections_per_ip
        .or(server.max_connections_per_ip)
        .unwrap_or((max / 4).max(1))
        .min(max);
    server.max_connections = Some(max);
    server.max_connections_per_ip = Some(per_ip);
    if max as u64 + reserve > nofile {
        tracing::warn!(
            max_connections = max,
            max_concurrent_runs = runs,
            descriptors = nofile,
            "the API's connection cap leaves fewer than the {reserve} descriptors that runs and \
             the ledger may need: lower max_connections or max_concurrent_runs, or raise the \
             descriptor limit (LimitNOFILE=)"
        );
    }
    Ok(server)
}

fn init_logging(format: &str) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    // memory-serve logs each embedded asset at INFO as the dashboard's router is built: noise
    // in an operator's log, kept to its warnings unless JOBS_LOG names it.
    let filter = EnvFilter::try_from_env("JOBS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("memory_serve=warn".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(super::stderr_color());
    match format {
        "json" => builder.json().flatten_event(true).init(),
        "human" => builder.init(),
        other => bail!("--log-format `{other}` is not one of `human`, `json`"),
    }
    Ok(())
}
