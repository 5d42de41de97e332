//! `jobs.toml`: project-wide settings, merged with flags and `JOBS_*` variables.
//!
//! Precedence is flag, then variable (clap reads both), then this file, then the built-in
//! default. Paths in the file are relative to the file's folder, so `jobctl --config
//! /srv/app/jobs.toml` means the same from any working directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::{Diagnostic, position_of};
use crate::duration::Duration;
pub use crate::spec::Defaults;

pub const FILE_NAME: &str = "jobs.toml";

/// `jobs.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub dir: Option<PathBuf>,
    pub ledger: Option<PathBuf>,
    pub output: Option<String>,
    pub timezone: Option<String>,
    pub history: Option<RawHistoryDefaults>,
    pub daemon: Option<RawDaemon>,
    pub server: Option<RawServer>,
    pub ca_cert: Option<PathBuf>,
    pub smtp: Option<RawSmtp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub token_file: Option<PathBuf>,
    pub public_metrics: Option<bool>,
    pub webhook_rate_limit: Option<u32>,
    pub body_limit: Option<String>,
    pub request_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub public_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// `[server]`: the HTTP API of `jobctl serve`. Flags and `JOBS_*` variables override each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// `ADDR:PORT`; port 0 binds a free port.
    pub listen: String,
    /// One `ROLE TOKEN` per line (`read` or `admin`).
    pub token_file: Option<PathBuf>,
    /// Whether `/metrics` answers without a token.
    pub public_metrics: bool,
    /// Webhook requests a minute, per job.
    pub webhook_rate_limit: u32,
    /// The largest request body, in bytes.
    pub body_limit: u64,
    /// How long a request may take before it is answered 408 (log streams excepted).
    pub request_timeout: Duration,
    /// Open API connections at most; `None`: derived from the descriptor limit at start.
    pub max_connections: Option<usize>,
    /// Open API connections from one address at most; `None`: a quarter of the cap.
    pub max_connections_per_ip: Option<usize>,
    /// The server's certificate chain and key (PEM) for HTTPS; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8631";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            token_file: None,
            public_metrics: true,
            webhook_rate_limit: 60,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: None,
            max_connections_per_ip: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub max_concurrent_runs: Option<usize>,
    pub shutdown_grace: Option<String>,
    pub kill_grace: Option<String>,
    pub log_format: Option<String>,
}

/// `[daemon]`: how `jobctl serve` runs. Flags and `JOBS_*` variables override each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Runs beyond this many wait, in order.
    pub max_concurrent_runs: usize,
    /// At SIGTERM, how long active runs may finish before they are terminated.
    pub shutdown_grace: Duration,
    /// After SIGTERM to a run's process group, how long before SIGKILL.
    pub kill_grace: Duration,
    pub log_format: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            max_concurrent_runs: 16,
            shutdown_grace: Duration::from_secs(30),
            kill_grace: Duration::from_secs(10),
            log_format: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub from: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub starttls: Option<String>,
}

/// What notifications need from `jobs.toml`: whom to trust, where to send mail, and how runs
/// are linked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `ca_cert`: a CA trusted for outgoing TLS (webhooks, Slack, SMTP) besides the system's.
    pub ca_cert: Option<PathBuf>,
    /// `[smtp]`: the server for `email:` notifications.
    pub smtp: Option<SmtpConfig>,
    /// `[server] public_url`, without a trailing `/`: runs are linked as `URL/v1/runs/ID`.
    pub public_url: Option<String>,
}

/// `[smtp]`: the mail server. The password is never in the file: `password_env` names the
/// variable that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// The sender, `jobctl@example.com` or `jobctl <jobctl@example.com>`.
    pub from: String,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub starttls: StartTls,
}

/// Whether the SMTP connection is upgraded with STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartTls {
    /// Refuse a server that does not offer it (the default).
    Required,
    /// Upgrade when offered, else send in the clear.
    Opportunistic,
    /// Never: for a relay on the same machine.
    Off,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistoryDefaults {
    pub keep_runs: Option<u32>,
    pub max_age: Option<String>,
}

/// The loaded file, with paths made relative to the working directory.
#[derive(Debug, Default)]
pub struct Config {
    pub file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub ledger: Option<PathBuf>,
    pub output: Option<String>,
    pub defaults: Defaults,
    pub daemon: DaemonConfig,
    pub server: ServerConfig,
    pub notify: NotifyConfig,
}

/// Loads `path`, or `./jobs.toml` when `path` is `None` and that file exists.
///
/// # Errors
///
/// A diagnostic with the file, line and column of the problem.
pub fn load(path: Option<&Path>) -> Result<Config, Diagnostic> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(FILE_NAME), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Config::default());
        }
        Err(e) => {
            return Err(Diagnostic::error(
                path.display().to_string(),
                format!("cannot read the configuration file: {e}"),
            ));
        }
    };
    parse(&path, &text)
}

/// Parses the text of a configuration file found at `path`.
///
/// # Errors
///
/// A diagnostic with the file, line and column of the problem.
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostic> {
    let shown = path.display().to_string();
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let position = e.span().map(|s| position_of(text, s.start));
        Diagnostic::error(&shown, e.message().trim().to_string()).at(position)
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let public_url = raw.server.as_ref().and_then(|s| s.public_url.clone());
    let mut defaults = Defaults::default();
    if let Some(tz) = raw.timezone {
        crate::spec::resolve_timezone(&tz)
            .map_err(|(message, help)| Diagnostic::error(&shown, message).maybe_help(help))?;
        defaults.timezone = tz;
    }
    if let Some(history) = raw.history {
        if let Some(keep) = history.keep_runs {
            defaults.keep_runs = keep;
        }
        if let Some(age) = history.max_age {
            defaults.max_age = Duration::parse(&age)
                .map_err(|m| Diagnostic::error(&shown, format!("history.max_age: {m}")))?;
        }
    }
    let mut daemon = DaemonConfig::default();
    if let Some(d) = raw.daemon {
        if let Some(n) = d.max_concurrent_runs {
            if n == 0 {
                return Err(Diagnostic::error(
                    &shown,
                    "daemon.max_concurrent_runs must be at least 1",
                ));
            }
            daemon.max_concurrent_runs = n;
        }
        for (key, value, slot) in [
            (
                "shutdown_grace",
                d.shutdown_grace,
                &mut daemon.shutdown_grace,
            ),
            ("kill_grace", d.kill_grace, &mut daemon.kill_grace),
        ] {
            if let Some(text) = value {
                *slot = Duration::parse(&text)
                    .map_err(|m| Diagnostic::error(&shown, format!("daemon.{key}: {m}")))?;
            }
        }
        if let Some(f) = &d.log_format
            && !matches!(f.as_str(), "human" | "json")
        {
            return Err(Diagnostic::error(
                &shown,
                format!("daemon.log_format `{f}` is not one of `human`, `json`"),
            ));
        }
        daemon.log_format = d.log_format;
    }
    let mut server = ServerConfig::default();
    if let Some(sv) = raw.server {
        if let Some(listen) = sv.listen {
            server.listen = listen;
        }
        server.token_file = sv.token_file.map(|f| base.join(f));
        if let Some(public) = sv.public_metrics {
            server.public_metrics = public;
        }
        if let Some(n) = sv.webhook_rate_limit {
            if n == 0 {
                return Err(Diagnostic::error(
                    &shown,
                    "server.webhook_rate_limit must be at least 1 (requests a minute, per job)",
                ));
            }
            server.webhook_rate_limit = n;
        }
        if let Some(limit) = sv.body_limit {
            server.body_limit = crate::size::ByteSize::parse(&limit)
                .map_err(|m| Diagnostic::error(&shown, format!("server.body_limit: {m}")))?
                .0;
        }
        if let Some(t) = sv.request_timeout {
            server.request_timeout = Duration::parse(&t)
                .map_err(|m| Diagnostic::error(&shown, format!("server.request_timeout: {m}")))?;
        }
        for (key, value, slot) in [
            (
                "max_connections",
                sv.max_connections,
                &mut server.max_connections,
            ),
            (
                "max_connections_per_ip",
                sv.max_connections_per_ip,
                &mut server.max_connections_per_ip,
            ),
        ] {
            if value == Some(0) {
                return Err(Diagnostic::error(
                    &shown,
                    format!("server.{key} must be at least 1"),
                ));
            }
            *slot = value.or(*slot);
        }
        match (&sv.tls_cert, &sv.tls_key) {
            (Some(_), None) => {
                return Err(Diagnostic::error(
                    &shown,
                    "server.tls_cert is set without server.tls_key: HTTPS needs both (or neither, for plain HTTP)",
                ));
            }
            (None, Some(_)) => {
                return Err(Diagnostic::error(
                    &shown,
                    "server.tls_key is set without server.tls_cert: HTTPS needs both (or neither, for plain HTTP)",
                ));
            }
            _ => {}
        }
        server.tls_cert = sv.tls_cert.map(|f| base.join(f));
        server.tls_key = sv.tls_key.map(|f| base.join(f));
    }
    let mut notify = NotifyConfig {
        ca_cert: raw.ca_cert.map(|c| base.join(c)),
        ..NotifyConfig::default()
    };
    if let Some(url) = &public_url {
        crate::spec::check_http_url(url).map_err(|problem| {
            Diagnostic::error(
                &shown,
                format!("server.public_url `{url}` {problem}; expected an http:// or https:// URL"),
            )
            .help("the address users open, such as https://jobs.example.com")
        })?;
        notify.public_url = Some(url.trim_end_matches('/').to_string());
    }
    if let Some(smtp) = raw.smtp {
        notify.smtp = Some(smtp_config(&shown, smtp)?);
        defaults.smtp = true;
    }
    if let Some(output) = &raw.output
        && !matches!(output.as_str(), "table" | "json")
    {
        return Err(Diagnostic::error(
            &shown,
            format!("output `{output}` is not one of `table`, `json`"),
        ));
    }
    Ok(Config {
        file: Some(path.to_path_buf()),
        dir: raw.dir.map(|d| base.join(d)),
        ledger: raw.ledger.map(|l| base.join(l)),
        output: raw.output,
        defaults,
        daemon,
        server,
        notify,
    })
}

/// Checks `[smtp]`: a host, a sender address, a password only by variable name.
fn smtp_config(shown: &str, raw: RawSmtp) -> Result<SmtpConfig, Diagnostic> {
    let error = |message: String| Diagnostic::error(shown, message);
    let host = match raw.host {
        Some(h) if !h.trim().is_empty() => h.trim().to_string(),
        _ => {
            return Err(error(
                "smtp.host is missing; `[smtp]` needs the mail server's name".into(),
            )
            .help("for example: host = \"smtp.example.com\""));
        }
    };
    let from = raw.from.ok_or_else(|| {
        error("smtp.from is missing; mail needs a sender address".into())
            .help("for example: from = \"jobctl@example.com\"")
    })?;
    if let Err(e) = from.parse::<lettre::message::Mailbox>() {
        return Err(error(format!(
            "smtp.from `{from}` is not an address ({e}); expected one such as jobctl@example.com"
        )));
    }
    if raw.port == Some(0) {
        return Err(error("smtp.port must be from 1 to 65535".into()));
    }
    let starttls = match raw.starttls.as_deref() {
        None | Some("required") => StartTls::Required,
        Some("opportunistic") => StartTls::Opportunistic,
        Some("off") => StartTls::Off,
        Some(other) => {
            return Err(error(format!(
                "smtp.starttls `{other}` is not one of `required`, `opportunistic`, `off`"
            )));
        }
    };
    if let Some(name) = &raw.password_env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(error(format!(
                "smtp.password_env `{name}` is not a variable name; it names the variable that holds the password"
            ))
            .help("for example: password_env = \"JOBS_SMTP_PASSWORD\" (the password itself never goes in the file)"));
        }
    }
    if raw.username.is_some() != raw.password_env.is_some() {
        return Err(error(
            "smtp.username and smtp.password_env go together: the server is logged in to with both, or not at all".into(),
        ));
    }
    Ok(SmtpConfig {
        host,
        port: raw.port.unwrap_or(587),
        from,
        username: raw.username,
        password_env: raw.password_env,
        starttls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_settings_resolve_against_the_file() {
        let text = "ca_cert = \"certs/ca.pem\"\n[server]\npublic_url = \"https://jobs.example.com/\"\n\
                    [smtp]\nhost = \"smtp.example.com\"\nfrom = \"jobctl@example.com\"\n";
        let config = parse(Path::new("/srv/app/jobs.toml"), text).unwrap();
        assert_eq!(
            config.notify,
            NotifyConfig {
                ca_cert: Some(PathBuf::from("/srv/app/certs/ca.pem")),
                smtp: Some(SmtpConfig {
                    host: "smtp.example.com".into(),
                    port: 587,
                    from: "jobctl@example.com".into(),
                    username: None,
                    password_env: None,
                    starttls: StartTls::Required,
                }),
                public_url: Some("https://jobs.example.com".into()),
            }
        );
        assert!(config.defaults.smtp);
        let plain = parse(Path::new("jobs.toml"), "").unwrap();
        assert_eq!(plain.notify, NotifyConfig::default());
        assert!(!plain.defaults.smtp);
    }
}
