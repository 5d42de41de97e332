//! Reading `jobs.toml` from its parsed TOML: one function per section, every problem kept.
//!
//! The file is parsed once into toml's spanned tables (`DeTable`), so every key and value
//! knows where it was written; a [`Reader`] checks each value's type and meaning and records
//! a [`Diagnostic`] for each problem instead of stopping. Only a syntax error, which leaves no
//! table to walk, is reported alone.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::*;
use crate::diag::position_of;
use crate::size::ByteSize;

type Value<'i> = Spanned<DeValue<'i>>;

const TOP: &[&str] = &[
    "dir", "ledger", "output", "timezone", "history", "daemon", "server", "ca_cert", "smtp", "git",
    "llm",
];
const LLM: &[&str] = &[
    "base_url",
    "api_key_env",
    "api_key_file",
    "timeout",
    "idle_timeout",
    "providers",
];
const GIT: &[&str] = &[
    "url",
    "branch",
    "path",
    "interval",
    "ssh_key_file",
    "known_hosts",
    "token_file",
    "token_user",
    "workdir",
    "secret_env",
    "secret_file",
];
const HISTORY: &[&str] = &["keep_runs", "max_age"];
const DAEMON: &[&str] = &[
    "max_concurrent_runs",
    "shutdown_grace",
    "kill_grace",
    "log_format",
    "node",
    "labels",
    "apply",
];
const SERVER: &[&str] = &[
    "listen",
    "token_file",
    "public_metrics",
    "webhook_rate_limit",
    "body_limit",
    "request_timeout",
    "max_connections",
    "max_connections_per_ip",
    "public_url",
    "tls_cert",
    "tls_key",
];
const SMTP: &[&str] = &[
    "host",
    "port",
    "from",
    "username",
    "password_env",
    "starttls",
];

/// The configuration in `text`, or every problem in it.
pub(super) fn config(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let shown = path.display().to_string();
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => return Err(vec![crate::spec::toml_error(&shown, text, &e)]),
    };
    let mut r = Reader {
        shown,
        text,
        diagnostics: Vec::new(),
    };
    let top = r.section(doc.get_ref(), TOP);
    let base = path.parent().unwrap_or(Path::new(""));
    let mut defaults = Defaults::default();
    if let Some(tz) = r.string("timezone", top.get("timezone")) {
        match crate::spec::resolve_timezone(tz.get_ref()) {
            Ok(_) => defaults.timezone = tz.into_inner(),
            Err(e) => r.error(tz.span(), e.to_string()).help = e.suggestion.clone(),
        }
    }
    if let Some(table) = r.table("history", top.get("history")) {
        history(&mut r, table, &mut defaults);
    }
    let daemon = r
        .table("daemon", top.get("daemon"))
        .map(|t| self::daemon(&mut r, t))
        .unwrap_or_default();
    let (server, public_url) = r
        .table("server", top.get("server"))
        .map(|t| self::server(&mut r, t, base))
        .unwrap_or_default();
    let mut notify = NotifyConfig {
        ca_cert: r.path("ca_cert", top.get("ca_cert"), base),
        public_url,
        smtp: None,
    };
    if let Some(value) = top.get("smtp")
        && let Some(table) = r.table("smtp", Some(value))
    {
        notify.smtp = smtp(&mut r, table, value.span());
        defaults.smtp = true;
    }
    if let Some(value) = top.get("llm")
        && let Some(table) = r.table("llm", Some(value))
    {
        defaults.llm = llm(&mut r, table, value.span(), base);
    }
    let git = top
        .get("git")
        .and_then(|value| r.table("git", Some(value)).map(|t| (t, value.span())))
        .and_then(|(table, at)| git(&mut r, table, at, base));
    let output = r.one_of("output", top.get("output"), &["table", "json"]);
    let config = Config {
        file: Some(path.to_path_buf()),
        dir: r.path("dir", top.get("dir"), base),
        ledger: r.ledger(top.get("ledger"), base),
        output,
        defaults,
        daemon,
        server,
        notify,
        git,
    };
    let mut diagnostics = r.diagnostics;
    if diagnostics.is_empty() {
        return Ok(config);
    }
    diagnostics.sort_by_key(|d| d.position);
    Err(diagnostics)
}

/// `[history]`: the retention every job has unless its file says otherwise.
fn history(r: &mut Reader, table: &DeTable, defaults: &mut Defaults) {
    let s = r.section(table, HISTORY);
    if let Some(keep) = r.integer::<u32>("history.keep_runs", s.get("keep_runs")) {
        defaults.keep_runs = keep;
    }
    if let Some(age) = r.duration("history.max_age", s.get("max_age")) {
        defaults.max_age = age;
    }
}

/// `[daemon]`: how `jobctl serve` runs.
fn daemon(r: &mut Reader, table: &DeTable) -> DaemonConfig {
    let s = r.section(table, DAEMON);
    let mut daemon = DaemonConfig::default();
    let max = s.get("max_concurrent_runs");
    if let Some(n) = r.count::<usize>("daemon.max_concurrent_runs", max, "") {
        daemon.max_concurrent_runs = n;
    }
    if let Some(d) = r.duration("daemon.shutdown_grace", s.get("shutdown_grace")) {
        daemon.shutdown_grace = d;
    }
    if let Some(d) = r.duration("daemon.kill_grace", s.get("kill_grace")) {
        daemon.kill_grace = d;
    }
    daemon.log_format = r.one_of("daemon.log_format", s.get("log_format"), &["human", "json"]);
    if let Some(node) = r.string("daemon.node", s.get("node")) {
        if crate::name::is_label(node.get_ref()) {
            daemon.node = Some(node.into_inner());
        } else {
            let message = format!(
                "daemon.node `{}` is not a name; {LABEL_RULE}",
                node.get_ref()
            );
            r.error(node.span(), message);
        }
    }
    if let Some(labels) = r.labels("daemon.labels", s.get("labels")) {
        daemon.labels = labels;
    }
    if let Some(apply) = r.boolean("daemon.apply", s.get("apply")) {
        daemon.apply = apply;
    }
    daemon
}

/// `[git]`: the repository to follow. `url` is required; a URL's password and a token are
/// never in the file (`token_file`, `secret_env`, `secret_file` say where they are).
fn git(r: &mut Reader, table: &DeTable, at: Range<usize>, base: &Path) -> Option<GitConfig> {
    let s = r.section(table, GIT);
    let url = r.string("git.url", s.get("url"));
    let mut git = GitConfig::new(String::new());
    if let Some(branch) = r.string("git.branch", s.get("branch")) {
        if branch.get_ref().is_empty() || branch.get_ref().starts_with('-') {
            r.error(
                branch.span(),
                "git.branch must be a branch name, such as `main`",
            );
        } else {
            git.branch = branch.into_inner();
        }
    }
    if let Some(path) = r.string("git.path", s.get("path")) {
        match git_path(path.get_ref()) {
            Some(p) => git.path = p,
            None => {
                r.error(
                    path.span(),
                    "git.path is a folder inside the repository, such as `jobs.d`",
                );
            }
        }
    }
    if let Some(d) = r.duration("git.interval", s.get("interval")) {
        if d.as_signed() < jiff::SignedDuration::from_secs(1) {
            let at = s.get("interval").map(|v| v.span()).unwrap_or_default();
            r.error(at, "git.interval must be at least 1s");
        } else {
            git.interval = d;
        }
    }
    git.ssh_key_file = r.path("git.ssh_key_file", s.get("ssh_key_file"), base);
    git.known_hosts = r.path("git.known_hosts", s.get("known_hosts"), base);
    git.token_file = r.path("git.token_file", s.get("token_file"), base);
    git.workdir = r.path("git.workdir", s.get("workdir"), base);
    if let Some(user) = r.string("git.token_user", s.get("token_user")) {
        git.token_user = user.into_inner();
    }
    if let (Some(_), Some(token)) = (&git.ssh_key_file, s.get("token_file")) {
        r.error(
            token.span(),
            "give one of git.ssh_key_file (for SSH URLs) and git.token_file (for HTTPS), not both",
        );
    }
    let env = r.string("git.secret_env", s.get("secret_env"));
    let file = r.path("git.secret_file", s.get("secret_file"), base);
    git.secret = match (env, file) {
        (Some(env), None) => Some(crate::spec::WebhookSecret::SecretEnv(env.into_inner())),
        (None, Some(file)) => Some(crate::spec::WebhookSecret::SecretFile(
            file.display().to_string(),
        )),
        (None, None) => None,
        (Some(env), Some(_)) => {
            r.error(
                env.span(),
                "give one of git.secret_env and git.secret_file for the push webhook, not both",
            );
            None
        }
    };
    match url {
        Some(url) if url_has_password(url.get_ref()) => {
            r.error(
                url.span(),
                "never write a password in git.url: put a token in a file and name it with `token_file`",
            );
            None
        }
        Some(url) if !url.get_ref().trim().is_empty() => {
            git.url = url.into_inner();
            Some(git)
        }
        Some(url) => {
            r.error(url.span(), "git.url is empty");
            None
        }
        None => {
            r.error(
                at,
                "[git] needs `url`: the repository to follow, such as `https://github.com/org/jobs.git`",
            );
            None
        }
    }
}

/// What a node's name or label may be.
const LABEL_RULE: &str = "use 1 to 64 letters, digits, `.`, `_` or `-`";

/// `[server]`: the HTTP API, and `public_url` (which notifications link runs to).
fn server(r: &mut Reader, table: &DeTable, base: &Path) -> (ServerConfig, Option<String>) {
    let s = r.section(table, SERVER);
    let mut server = ServerConfig::default();
    if let Some(listen) = r.string("server.listen", s.get("listen")) {
        server.listen = listen.into_inner();
    }
    server.token_file = r.path("server.token_file", s.get("token_file"), base);
    if let Some(public) = r.boolean("server.public_metrics", s.get("public_metrics")) {
        server.public_metrics = public;
    }
    let note = " (requests a minute, per job)";
    let rate = s.get("webhook_rate_limit");
    if let Some(n) = r.count::<u32>("server.webhook_rate_limit", rate, note) {
        server.webhook_rate_limit = n;
    }
    if let Some(limit) = r.string("server.body_limit", s.get("body_limit")) {
        match ByteSize::parse(limit.get_ref()) {
            Ok(size) => server.body_limit = size.0,
            Err(e) => {
                r.error(limit.span(), format!("server.body_limit: {e}"));
            }
        }
    }
    if let Some(t) = r.duration("server.request_timeout", s.get("request_timeout")) {
        server.request_timeout = t;
    }
    let max = s.get("max_connections");
    server.max_connections = r.count("server.max_connections", max, "");
    let per_ip = s.get("max_connections_per_ip");
    server.max_connections_per_ip = r.count("server.max_connections_per_ip", per_ip, "");
    tls_pair(r, &s, &mut server, base);
    let public_url = r
        .string("server.public_url", s.get("public_url"))
        .and_then(|url| match crate::spec::check_http_url(url.get_ref()) {
            Ok(()) => Some(url.get_ref().trim_end_matches('/').to_string()),
            Err(problem) => {
                r.error(
                    url.span(),
                    format!(
                        "server.public_url `{}` {problem}; expected an http:// or https:// URL",
                        url.get_ref()
                    ),
                )
                .help = Some("the address users open, such as https://jobs.example.com".into());
                None
            }
        });
    (server, public_url)
}

/// `tls_cert` and `tls_key`: both or neither.
fn tls_pair(r: &mut Reader, s: &Section, server: &mut ServerConfig, base: &Path) {
    let (cert, key) = (s.get("tls_cert"), s.get("tls_key"));
    server.tls_cert = r.path("server.tls_cert", cert, base);
    server.tls_key = r.path("server.tls_key", key, base);
    match (cert, key) {
        (Some(cert), None) => {
            r.error(
                cert.span(),
                "server.tls_cert is set without server.tls_key: HTTPS needs both (or neither, for plain HTTP)",
            );
        }
        (None, Some(key)) => {
            r.error(
                key.span(),
                "server.tls_key is set without server.tls_cert: HTTPS needs both (or neither, for plain HTTP)",
            );
        }
        _ => {}
    }
}

/// `[smtp]` (written at `at`): a host, a sender address, a password only by variable name.
fn smtp(r: &mut Reader, table: &DeTable, at: Range<usize>) -> Option<SmtpConfig> {
    let s = r.section(table, SMTP);
    let failed = r.diagnostics.len();
    let host = r.string("smtp.host", s.get("host"));
    let missing_at = match &host {
        Some(h) if h.get_ref().trim().is_empty() => Some(h.span()),
        None if s.get("host").is_none() => Some(at.clone()),
        _ => None,
    };
    if let Some(span) = missing_at {
        r.error(
            span,
            "smtp.host is missing; `[smtp]` needs the mail server's name",
        )
        .help = Some("for example: host = \"smtp.example.com\"".into());
    }
    let from = r.string("smtp.from", s.get("from"));
    if from.is_none() && s.get("from").is_none() {
        r.error(at, "smtp.from is missing; mail needs a sender address")
            .help = Some("for example: from = \"jobctl@example.com\"".into());
    }
    if let Some(from) = &from
        && let Err(e) = from.get_ref().parse::<lettre::message::Mailbox>()
    {
        r.error(
            from.span(),
            format!(
                "smtp.from `{}` is not an address ({e}); expected one such as jobctl@example.com",
                from.get_ref()
            ),
        );
    }
    let port = s.get("port");
    let port = r
        .integer::<i64>("smtp.port", port)
        .map(|n| u16::try_from(n).ok().filter(|&p| p != 0).ok_or(()));
    if let Some(Err(())) = port {
        let span = s.get("port").expect("read above").span();
        r.error(span, "smtp.port must be from 1 to 65535");
    }
    let starttls = smtp_starttls(r, &s);
    let (username, password_env) = smtp_login(r, &s);
    (r.diagnostics.len() == failed).then(|| SmtpConfig {
        host: host
            .expect("no error, so a host")
            .get_ref()
            .trim()
            .to_string(),
        port: port.and_then(Result::ok).unwrap_or(587),
        from: from.expect("no error, so a sender").into_inner(),
        username,
        password_env,
        starttls,
    })
}

fn smtp_starttls(r: &mut Reader, s: &Section) -> StartTls {
    let choices = ["required", "opportunistic", "off"];
    match r
        .one_of("smtp.starttls", s.get("starttls"), &choices)
        .as_deref()
    {
        Some("opportunistic") => StartTls::Opportunistic,
        Some("off") => StartTls::Off,
        _ => StartTls::Required,
    }
}

/// `username` and `password_env`: both or neither; the password itself is never in the file.
fn smtp_login(r: &mut Reader, s: &Section) -> (Option<String>, Option<String>) {
    let username = r.string("smtp.username", s.get("username"));
    let password_env = r.string("smtp.password_env", s.get("password_env"));
    if let Some(name) = &password_env {
        let valid = name
            .get_ref()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            r.error(
                name.span(),
                format!(
                    "smtp.password_env `{}` is not a variable name; it names the variable that holds the password",
                    name.get_ref()
                ),
            )
            .help = Some("for example: password_env = \"JOBS_SMTP_PASSWORD\" (the password itself never goes in the file)".into());
        }
    }
    let given = |key| s.get(key).is_some();
    if given("username") != given("password_env") {
        let span = s
            .get("username")
            .or(s.get("password_env"))
            .expect("one is given")
            .span();
        r.error(
            span,
            "smtp.username and smtp.password_env go together: the server is logged in to with both, or not at all",
        );
    }
    (
        username.map(Spanned::into_inner),
        password_env.map(Spanned::into_inner),
    )
}

/// `[llm]`: the default provider (when it has a `base_url`) and `[llm.providers.NAME]`.
fn llm(r: &mut Reader, table: &DeTable, at: Range<usize>, base: &Path) -> crate::spec::LlmConfig {
    let s = r.section(table, LLM);
    let mut config = crate::spec::LlmConfig::default();
    let has_own = LLM.iter().any(|k| *k != "providers" && s.get(k).is_some());
    if has_own {
        config.default = provider(r, &s, "llm", base, at);
    }
    if let Some(providers) = r.table("llm.providers", s.get("providers")) {
        for (name, value) in providers.iter() {
            let field = format!("llm.providers.{}", name.get_ref());
            if !crate::name::is_label(name.get_ref()) {
                r.error(
                    name.span(),
                    format!(
                        "{field}: `{}` is not a provider name; {LABEL_RULE}",
                        name.get_ref()
                    ),
                );
                continue;
            }
            let Some(table) = r.table(&field, Some(value)) else {
                continue;
            };
            let known: Vec<&str> = LLM.iter().copied().filter(|k| *k != "providers").collect();
            let section = r.section(table, &known);
            if let Some(p) = provider(r, &section, &field, base, value.span()) {
                config.providers.insert(name.get_ref().to_string(), p);
            }
        }
    }
    config
}

/// One provider's keys, `field` naming its table in messages.
fn provider(
    r: &mut Reader,
    s: &Section,
    field: &str,
    base: &Path,
    at: Range<usize>,
) -> Option<crate::spec::Provider> {
    let failed = r.diagnostics.len();
    let url = r.string(&format!("{field}.base_url"), s.get("base_url"));
    let Some(url) = url else {
        r.error(at, format!("{field}.base_url is missing")).help =
            Some("for example: base_url = \"https://api.openai.com/v1\"".into());
        return None;
    };
    if let Err(e) = crate::spec::check_http_url(url.get_ref()) {
        r.error(
            url.span(),
            format!("{field}.base_url `{}` {e}", url.get_ref()),
        );
    }
    let key_env = r.string(&format!("{field}.api_key_env"), s.get("api_key_env"));
    let key_file = r.path(
        &format!("{field}.api_key_file"),
        s.get("api_key_file"),
        base,
    );
    let api_key = match (key_env, key_file) {
        (Some(env), None) if is_variable(env.get_ref()) => {
            Some(crate::spec::KeySource::Env(env.into_inner()))
        }
        (Some(env), None) => {
            r.error(
                env.span(),
                format!(
                    "{field}.api_key_env `{}` is not a variable name; it names the variable that holds the key",
                    env.get_ref()
                ),
            );
            None
        }
        (None, Some(file)) => Some(crate::spec::KeySource::File(file)),
        (Some(env), Some(_)) => {
            r.error(
                env.span(),
                format!(
                    "{field}: api_key_env and api_key_file are both set; the key is in one place"
                ),
            );
            None
        }
        (None, None) => None,
    };
    let timeout = |r: &mut Reader, key: &str, default| {
        let name = format!("{field}.{key}");
        match r.duration(&name, s.get(key)) {
            Some(d) if d.is_zero() => {
                let at = s.get(key).map(|v| v.span()).unwrap_or_default();
                r.error(at, format!("{name} must be longer than 0s"));
                default
            }
            Some(d) => d,
            None => default,
        }
    };
    let provider = crate::spec::Provider {
        base_url: url.get_ref().trim_end_matches('/').to_string(),
        api_key,
        timeout: timeout(r, "timeout", crate::spec::DEFAULT_LLM_TIMEOUT),
        idle_timeout: timeout(r, "idle_timeout", crate::spec::DEFAULT_LLM_IDLE),
    };
    (r.diagnostics.len() == failed).then_some(provider)
}

fn is_variable(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The keys of one table (`[section]`, or the top level).
struct Section<'t, 'i> {
    table: &'t DeTable<'i>,
}

impl<'t, 'i> Section<'t, 'i> {
    fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }
}

/// Where the problems go, with the text that turns a span into a line and column.
struct Reader<'a> {
    shown: String,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) -> &mut Diagnostic {
        let position = position_of(self.text, span.start);
        let d = Diagnostic::error(self.shown.as_str(), message).at(Some(position));
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// `table` as a section whose keys are `known`, each other key reported.
    fn section<'t, 'i>(&mut self, table: &'t DeTable<'i>, known: &[&str]) -> Section<'t, 'i> {
        for (key, _) in table.iter() {
            if !known.contains(&key.get_ref().as_ref()) {
                let position = position_of(self.text, key.span().start);
                let d = crate::spec::unknown_field(&self.shown, key.get_ref(), known);
                self.diagnostics.push(d.at(Some(position)));
            }
        }
        Section { table }
    }

    /// A value of the wrong type: what it is and what was `expected`.
    fn wrong_type(&mut self, name: &str, value: &Value, expected: &str) {
        let found = value.get_ref().type_str();
        let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        self.error(
            value.span(),
            format!("{name} is {article} {found}; expected {expected}"),
        );
    }

    fn string(&mut self, name: &str, value: Option<&Value>) -> Option<Spanned<String>> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) => Some(Spanned::new(value.span(), s.to_string())),
            _ => {
                self.wrong_type(name, value, "a string");
                None
            }
        }
    }

    /// A list of node labels, sorted, each once.
    fn labels(&mut self, name: &str, value: Option<&Value>) -> Option<Vec<String>> {
        let value = value?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(name, value, "a list of labels");
            return None;
        };
        let mut labels = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) if crate::name::is_label(s) => labels.push(s.to_string()),
                DeValue::String(s) => {
                    self.error(
                        item.span(),
                        format!("{name}: `{s}` is not a label; {LABEL_RULE}"),
                    );
                }
                _ => self.wrong_type(name, item, "a string"),
            }
        }
        labels.sort();
        labels.dedup();
        Some(labels)
    }

    fn boolean(&mut self, name: &str, value: Option<&Value>) -> Option<bool> {
        let value = value?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(name, value, "`true` or `false`");
                None
            }
        }
    }

    fn table<'t, 'i>(
        &mut self,
        name: &str,
        value: Option<&'t Value<'i>>,
    ) -> Option<&'t DeTable<'i>> {
        let value = value?;
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(name, value, &format!("a table (`[{name}]`)"));
                None
            }
        }
    }

    /// The ledger: a PostgreSQL URL as it is, or a path relative to `base`.
    fn ledger(&mut self, value: Option<&Value>, base: &Path) -> Option<PathBuf> {
        let text = self.string("ledger", value)?.into_inner();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Some(PathBuf::from(text));
        }
        Some(base.join(text))
    }

    /// A path, relative to the file's folder `base`.
    fn path(&mut self, name: &str, value: Option<&Value>, base: &Path) -> Option<PathBuf> {
        self.string(name, value).map(|p| base.join(p.into_inner()))
    }

    /// An integer that fits `T`.
    fn integer<T: TryFrom<i64>>(&mut self, name: &str, value: Option<&Value>) -> Option<T> {
        let value = value?;
        let DeValue::Integer(i) = value.get_ref() else {
            self.wrong_type(name, value, "a whole number");
            return None;
        };
        let n = i64::from_str_radix(i.as_str(), i.radix()).ok();
        match n.and_then(|n| T::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                self.error(
                    value.span(),
                    format!("{name} `{}` is out of range", i.as_str()),
                );
                None
            }
        }
    }

    /// A whole number of at least 1 that fits `T`; `note` says what it counts.
    fn count<T: TryFrom<i64>>(
        &mut self,
        name: &str,
        value: Option<&Value>,
        note: &str,
    ) -> Option<T> {
        let n = self.integer::<i64>(name, value)?;
        let span = value.expect("read above").span();
        if n < 1 {
            self.error(span, format!("{name} must be at least 1{note}"));
            return None;
        }
        let fits = T::try_from(n).ok();
        if fits.is_none() {
            self.error(span, format!("{name} `{n}` is out of range"));
        }
        fits
    }

    fn duration(&mut self, name: &str, value: Option<&Value>) -> Option<Duration> {
        let text = self.string(name, value)?;
        match Duration::parse(text.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(text.span(), format!("{name}: {e}"));
                None
            }
        }
    }

    /// A string that must be one of `choices`; a near miss is suggested.
    fn one_of(&mut self, name: &str, value: Option<&Value>, choices: &[&str]) -> Option<String> {
        let text = self.string(name, value)?;
        if choices.contains(&text.get_ref().as_str()) {
            return Some(text.into_inner());
        }
        let help = crate::diag::suggest(text.get_ref(), choices.iter().copied())
            .map(|s| format!("did you mean `{s}`?"));
        let expected: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
        self.error(
            text.span(),
            format!(
                "{name} `{}` is not one of {}",
                text.get_ref(),
                expected.join(", ")
            ),
        )
        .help = help;
        None
    }
}
