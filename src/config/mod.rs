//! `jobs.toml`: project-wide settings, merged with flags and `JOBS_*` variables.
//!
//! Precedence is flag, then variable (clap reads both), then this file, then the built-in
//! default. Paths in the file are relative to the file's folder, so `jobctl --config
//! /srv/app/jobs.toml` means the same from any working directory.
//!
//! Like a job file, the whole file is checked and every problem is collected as a
//! [`Diagnostic`] with its line and column ([`parse`]); only a syntax error stops at the first.
//! `read` walks the parsed TOML, each section by its own function; this module does not merge
//! flags or variables (the CLI does).

mod read;

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::duration::Duration;
pub use crate::spec::Defaults;

pub const FILE_NAME: &str = "jobs.toml";

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
    /// This daemon's node name (`--node`); resolved at start to `HOST-PID` when not given.
    pub node: Option<String>,
    /// Its node's labels (`--labels`): what jobs' `runs_on` may require.
    pub labels: Vec<String>,
    /// Whether it applies its jobs folder while it leads (`--no-apply`: another applies,
    /// `jobctl apply` from CI).
    pub apply: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            max_concurrent_runs: 64,
            shutdown_grace: Duration::from_secs(30),
            kill_grace: Duration::from_secs(10),
            log_format: None,
            node: None,
            labels: Vec::new(),
            apply: true,
        }
    }
}

/// `[git]`: the repository `jobctl serve` follows instead of a jobs folder on disk. Flags
/// and `JOBS_GIT_*` variables override each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitConfig {
    /// Where to fetch from: `https://`, `ssh://`, `user@host:path`, or a local path.
    pub url: String,
    pub branch: String,
    /// The jobs folder inside the repository.
    pub path: String,
    /// How often to fetch.
    pub interval: Duration,
    /// A private key for SSH URLs.
    pub ssh_key_file: Option<PathBuf>,
    /// SSH's known hosts; without it, a host is trusted the first time and remembered.
    pub known_hosts: Option<PathBuf>,
    /// A file holding a token for HTTPS URLs.
    pub token_file: Option<PathBuf>,
    /// The user name sent with the token.
    pub token_user: String,
    /// Where the mirror and its work trees live; `None`: beside the ledger.
    pub workdir: Option<PathBuf>,
    /// The push webhook's secret (`secret_env` or `secret_file`); `None`: no webhook.
    pub secret: Option<crate::spec::WebhookSecret>,
}

impl GitConfig {
    /// The settings for `url`, everything else at its default.
    pub fn new(url: String) -> GitConfig {
        GitConfig {
            url,
            branch: "main".to_string(),
            path: "jobs.d".to_string(),
            interval: Duration::from_secs(60),
            ssh_key_file: None,
            known_hosts: None,
            token_file: None,
            token_user: "x-access-token".to_string(),
            workdir: None,
            secret: None,
        }
    }
}

/// A `[git] path` (or `--git-path`) as stored: inside the repository, without surrounding
/// `/`, `.` for its root; `None` when it points outside (absolute, or through `..`).
pub fn git_path(text: &str) -> Option<String> {
    let p = text.trim_matches('/');
    if text.starts_with('/') || p.split('/').any(|part| part == "..") {
        return None;
    }
    Some(if p.is_empty() {
        ".".to_string()
    } else {
        p.to_string()
    })
}

/// Whether a URL carries `user:password@` (refused in `[git] url` and `--git-url`: a token
/// belongs in `token_file`).
pub fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// What notifications need from `jobs.toml`: whom to trust, where to send mail, and how runs
/// are linked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `ca_cert`: a CA trusted for outgoing TLS (webhooks, Slack, SMTP) besides the system's.
    pub ca_cert: Option<PathBuf>,
    /// `[smtp]`: the server for `email:` notifications.
    pub smtp: Option<SmtpConfig>,
    /// `[server] public_url`, without a trailing `/`: runs are linked to their dashboard pages,
    /// `URL/runs/ID`.
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
    pub git: Option<GitConfig>,
}

/// Why `jobs.toml` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Every problem in the file, and its text to draw them against.
    #[error("{}", invalid_text(.diagnostics))]
    Invalid {
        diagnostics: Vec<Diagnostic>,
        text: String,
    },
}

fn invalid_text(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems as diagnostics (a read error is one, without a position).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Read { path, source } => vec![Diagnostic::error(
                path.as_str(),
                format!("cannot read the configuration file: {source}"),
            )],
            ConfigError::Invalid { diagnostics, .. } => diagnostics.clone(),
        }
    }

    /// The problems drawn for a terminal, each with its line of the file.
    pub fn render(&self, color: bool) -> String {
        let text = match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { text, .. } => Some(text.as_str()),
        };
        crate::diag::render(&self.diagnostics(), |_| text, color)
    }
}

/// Loads `path`, or `./jobs.toml` when `path` is `None` and that file exists.
///
/// # Errors
///
/// [`ConfigError::Read`] when the file cannot be read, or [`ConfigError::Invalid`] with every
/// problem in it.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(FILE_NAME), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Config::default());
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    parse(&path, &text).map_err(|diagnostics| ConfigError::Invalid { diagnostics, text })
}

/// Parses the text of a configuration file found at `path`.
///
/// # Errors
///
/// Every problem, each a diagnostic with the file, line and column, in the file's order.
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    read::config(path, text)
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

#[cfg(test)]
mod problems {
    use super::*;

    /// Every problem in `text`, one line each (`error: FILE:LINE:COL: MESSAGE (help: ...)`).
    fn errors(text: &str) -> Vec<String> {
        match parse(Path::new("jobs.toml"), text) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn llm_providers_are_read_with_their_keys_and_timeouts() {
        let text = "[llm]\nbase_url = \"https://api.openai.com/v1/\"\napi_key_env = \"OPENAI_API_KEY\"\n\
                    [llm.providers.local]\nbase_url = \"http://127.0.0.1:11434/v1\"\n\
                    api_key_file = \"key.txt\"\ntimeout = \"2m\"\nidle_timeout = \"5s\"\n";
        let config = parse(Path::new("jobs.toml"), text).expect("valid");
        let llm = &config.defaults.llm;
        let default = llm.provider(None).unwrap();
        assert_eq!(default.base_url, "https://api.openai.com/v1");
        assert_eq!(
            default.api_key,
            Some(crate::spec::KeySource::Env("OPENAI_API_KEY".into()))
        );
        assert_eq!(default.timeout, crate::spec::DEFAULT_LLM_TIMEOUT);
        let local = llm.provider(Some("local")).unwrap();
        assert_eq!(local.timeout, Duration::from_secs(120));
        assert_eq!(local.idle_timeout, Duration::from_secs(5));
        assert!(
            matches!(&local.api_key, Some(crate::spec::KeySource::File(p)) if p.ends_with("key.txt"))
        );
        assert!(llm.provider(Some("other")).is_none());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_line_and_column() {
        let text = "timezon = \"UTC\"\noutput = \"yaml\"\n[daemon]\nmax_concurrent_runs = 0\n\
                    kill_grace = \"soon\"\nlog_format = \"jsn\"\n[server]\ntls_cert = \"c.pem\"\n\
                    webhook_rate_limit = -1\npublic_metrics = \"yes\"\n[smtp]\nport = 70000\n";
        assert_eq!(
            errors(text),
            [
                "error: jobs.toml:1:1: unknown field `timezon`, expected one of `dir`, `ledger`, `output`, `timezone`, `history`, `daemon`, `server`, `ca_cert`, `smtp`, `git`, `llm` (help: did you mean `timezone`?)",
                "error: jobs.toml:2:10: output `yaml` is not one of `table`, `json`",
                "error: jobs.toml:4:23: daemon.max_concurrent_runs must be at least 1",
                "error: jobs.toml:5:14: daemon.kill_grace: `soon` is not a duration; expected a duration such as `90s`, `15m`, `2h 30m` or `1d`",
                "error: jobs.toml:6:14: daemon.log_format `jsn` is not one of `human`, `json` (help: did you mean `json`?)",
                "error: jobs.toml:8:12: server.tls_cert is set without server.tls_key: HTTPS needs both (or neither, for plain HTTP)",
                "error: jobs.toml:9:22: server.webhook_rate_limit must be at least 1 (requests a minute, per job)",
                "error: jobs.toml:10:18: server.public_metrics is a string; expected `true` or `false`",
                "error: jobs.toml:11:1: smtp.host is missing; `[smtp]` needs the mail server's name (help: for example: host = \"smtp.example.com\")",
                "error: jobs.toml:11:1: smtp.from is missing; mail needs a sender address (help: for example: from = \"jobctl@example.com\")",
                "error: jobs.toml:12:8: smtp.port must be from 1 to 65535",
            ]
        );
    }

    #[test]
    fn each_value_is_checked_for_its_type_and_meaning() {
        for (text, expected) in [
            (
                "server = 3\n",
                "1:10: server is an integer; expected a table (`[server]`)",
            ),
            ("dir = 1\n", "1:7: dir is an integer; expected a string"),
            (
                "timezone = \"Europe/Berln\"\n",
                "1:12: unknown time zone `Europe/Berln`; expected an IANA name such as `Europe/Berlin` or `UTC` (help: did you mean `Europe/Berlin`?)",
            ),
            (
                "[history]\nkeep_runs = -3\n",
                "2:13: history.keep_runs `-3` is out of range",
            ),
            (
                "[history]\nmax_age = \"1 month\"\n",
                "2:11: history.max_age: `1 month` uses months or years",
            ),
            (
                "[server]\nbody_limit = \"4 XB\"\n",
                "2:14: server.body_limit: unknown size unit `XB` in `4 XB`",
            ),
            (
                "[server]\nmax_connections = 99999999999999999999\n",
                "2:19: server.max_connections `99999999999999999999` is out of range",
            ),
            (
                "[server]\npublic_url = \"jobs\"\n",
                "2:14: server.public_url `jobs` is not a URL; expected an http:// or https:// URL",
            ),
            (
                "[server]\ntls_key = \"k.pem\"\n",
                "2:11: server.tls_key is set without server.tls_cert",
            ),
            (
                "[server]\nrequest_timeout = 5\n",
                "2:19: server.request_timeout is an integer; expected a string",
            ),
            (
                "[daemon]\nnode = \"web 1\"\n",
                "2:8: daemon.node `web 1` is not a name; use 1 to 64 letters, digits, `.`, `_` or `-`",
            ),
            (
                "[daemon]\nlabels = [\"gpu\", \"e/u\"]\n",
                "2:18: daemon.labels: `e/u` is not a label; use 1 to 64 letters, digits, `.`, `_` or `-`",
            ),
            (
                "[daemon]\nlabels = \"gpu\"\n",
                "2:10: daemon.labels is a string; expected a list of labels",
            ),
            (
                "[smtp]\nhost = \" \"\nfrom = \"a@b.c\"\n",
                "2:8: smtp.host is missing",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword_env = \"a b\"\nusername = \"u\"\n",
                "4:16: smtp.password_env `a b` is not a variable name",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword = \"hunter2\"\n",
                "4:1: unknown field `password`, expected one of `host`, `port`, `from`, `username`, `password_env`, `starttls` (help: did you mean `password_env`?)",
            ),
            (
                "[llm]\napi_key_env = \"K\"\n",
                "1:1: llm.base_url is missing",
            ),
            (
                "[llm]\nbase_url = \"api.openai.com\"\n",
                "2:12: llm.base_url `api.openai.com` is not a URL",
            ),
            (
                "[llm]\nbase_url = \"http://h/v1\"\napi_key = \"sk-1\"\n",
                "3:1: unknown field `api_key`, expected one of `base_url`, `api_key_env`, `api_key_file`, `timeout`, `idle_timeout`, `providers` (help: did you mean `api_key_env`?)",
            ),
            (
                "[llm.providers.local]\nbase_url = \"http://h/v1\"\nidle_timeout = \"0s\"\n",
                "3:16: llm.providers.local.idle_timeout must be longer than 0s",
            ),
            (
                "[llm.providers.\"a b\"]\nbase_url = \"http://h/v1\"\n",
                "1:16: llm.providers.a b: `a b` is not a provider name",
            ),
            ("dir = [\n", "1:8: unclosed array, expected `]`"),
            (
                "dir = \"a\"\ndir = \"b\"\n",
                "2:1: duplicate key `dir`; each key may appear only once",
            ),
        ] {
            let found = errors(text);
            let want = format!("error: jobs.toml:{expected}");
            assert!(
                found.len() == 1 && found[0].starts_with(&want),
                "{text:?}: want {want:?}, found {found:#?}"
            );
        }
    }

    /// The README's `jobs.toml` reference is a file this version reads without a problem.
    #[test]
    fn the_readme_reference_is_valid() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### `jobs.toml`")
            .nth(1)
            .expect("the README has a jobs.toml section");
        let blocks: Vec<&str> = section
            .split("```toml\n")
            .skip(1)
            .take(2)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        assert_eq!(blocks.len(), 2);
        for block in blocks {
            if let Err(found) = parse(Path::new("jobs.toml"), block) {
                panic!("{found:#?}\n{block}");
            }
        }
    }

    #[test]
    fn a_valid_file_has_no_problems() {
        let text = "dir = \"jobs.d\"\nledger = \"state/ledger.db\"\noutput = \"json\"\n\
                    timezone = \"Europe/Berlin\"\n[history]\nkeep_runs = 0\nmax_age = \"7d\"\n\
                    [daemon]\nmax_concurrent_runs = 4\nshutdown_grace = \"1m\"\nlog_format = \"json\"\n\
                    [server]\nlisten = \"0.0.0.0:9000\"\nwebhook_rate_limit = 5\nbody_limit = \"4 KiB\"\n\
                    max_connections = 100\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n\
                    [smtp]\nhost = \" smtp.example.com \"\nport = 25\nfrom = \"a@b.c\"\nstarttls = \"off\"\n\
                    username = \"u\"\npassword_env = \"SMTP_PASSWORD\"\n";
        let config = parse(Path::new("/srv/jobs.toml"), text).unwrap();
        assert_eq!(config.dir, Some(PathBuf::from("/srv/jobs.d")));
        assert_eq!(config.ledger, Some(PathBuf::from("/srv/state/ledger.db")));
        assert_eq!(config.output.as_deref(), Some("json"));
        assert_eq!(config.defaults.timezone, "Europe/Berlin");
        assert_eq!(
            (config.defaults.keep_runs, config.defaults.max_age),
            (0, Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            config.daemon,
            DaemonConfig {
                max_concurrent_runs: 4,
                shutdown_grace: Duration::from_secs(60),
                log_format: Some("json".into()),
                ..DaemonConfig::default()
            }
        );
        assert_eq!(config.server.listen, "0.0.0.0:9000");
        assert_eq!(config.server.body_limit, 4096);
        assert_eq!(config.server.max_connections, Some(100));
        assert_eq!(config.server.tls_key, Some(PathBuf::from("/srv/k.pem")));
        let smtp = config.notify.smtp.unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 25));
        assert_eq!(smtp.starttls, StartTls::Off);
    }

    #[test]
    fn problems_render_with_the_line_they_are_on() {
        let text = "dir = \"jobs.d\"\n[daemon]\nlog_format = \"jsn\"\nkill_grace = \"soon\"\n";
        let e = ConfigError::Invalid {
            diagnostics: parse(Path::new("jobs.toml"), text).unwrap_err(),
            text: text.to_string(),
        };
        insta::with_settings!({ snapshot_path => "../snapshots" }, {
            insta::assert_snapshot!("config_errors", e.render(false));
        });
    }
}
