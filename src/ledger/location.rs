//! Where a ledger is: a SQLite file, or a PostgreSQL database named by a URL.
//!
//! `--ledger`, `JOBS_LEDGER` and `ledger =` in `jobs.toml` take either; a value starting with
//! `postgres://` or `postgresql://` is PostgreSQL, anything else a path. What libpq would take
//! from the environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`,
//! `PGPASSFILE`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`) fills what the URL leaves out; the caller
//! hands the variables in, so the ledger still reads no environment.

use std::fmt;
use std::path::{Path, PathBuf};

use super::db::PgTarget;

/// A ledger's place.
#[derive(Clone, Debug)]
pub enum Location {
    File(PathBuf),
    Postgres(Box<PgTarget>),
}

impl PartialEq for Location {
    fn eq(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::File(a), Location::File(b)) => a == b,
            (Location::Postgres(a), Location::Postgres(b)) => a.shown == b.shown,
            _ => false,
        }
    }
}

/// What the environment says, for [`Location::parse`]: a variable's value by name.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Location {
    /// Reads `text` as a PostgreSQL URL or a path, taking libpq's defaults from `env`.
    ///
    /// # Errors
    ///
    /// A URL that does not parse, with what was wrong.
    pub fn parse(text: &str, env: Env<'_>) -> Result<Location, String> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Ok(Location::File(PathBuf::from(text)));
        }
        let (url, tls) = tls_options(text);
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("the ledger URL {} does not parse: {e}", redact(text)))?;
        fill_from_env(&mut config, env)?;
        match tls.mode.or_else(|| env("PGSSLMODE")).as_deref() {
            None => {}
            Some("disable") => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            }
            Some("allow" | "prefer") => {
                config.ssl_mode(tokio_postgres::config::SslMode::Prefer);
            }
            Some("require" | "verify-ca" | "verify-full") => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
            }
            Some(other) => {
                return Err(format!(
                    "sslmode `{other}` is not disable, allow, prefer, require, verify-ca or verify-full"
                ));
            }
        }
        Ok(Location::Postgres(Box::new(PgTarget {
            shown: redact(text),
            config,
            ca: tls
                .root_cert
                .or_else(|| env("PGSSLROOTCERT"))
                .map(PathBuf::from),
        })))
    }

    /// A SQLite ledger's file.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::File(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }

    /// How messages name it: the path, or the URL without its password.
    pub fn display(&self) -> impl fmt::Display + '_ {
        struct Shown<'a>(&'a Location);
        impl fmt::Display for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Location::File(p) => p.display().fmt(f),
                    Location::Postgres(t) => f.write_str(&t.shown),
                }
            }
        }
        Shown(self)
    }

    /// The name errors carry (`LedgerError`'s `path`): the file, or the shown URL.
    pub fn name(&self) -> PathBuf {
        match self {
            Location::File(p) => p.clone(),
            Location::Postgres(t) => PathBuf::from(&t.shown),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::File(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::File(p.to_path_buf())
    }
}

/// The TLS options of a URL's query, which libpq knows and tokio-postgres does not all know.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsOptions {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// `text` without its `sslmode` and `sslrootcert` parameters, and their values.
fn tls_options(text: &str) -> (String, TlsOptions) {
    let Some((base, query)) = text.split_once('?') else {
        return (text.to_string(), TlsOptions::default());
    };
    let mut options = TlsOptions::default();
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", v)) => options.mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => options.root_cert = Some(v.to_string()),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, options)
}

/// `text` with the password of a URL's user part replaced by `***`.
fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}

fn fill_from_env(config: &mut tokio_postgres::Config, env: Env<'_>) -> Result<(), String> {
    if config.get_hosts().is_empty() {
        let host = env("PGHOST").unwrap_or_else(|| "localhost".to_string());
        for h in host.split(',') {
            config.host(h);
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = env("PGPORT")
    {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("PGPORT={port} is not a port number"))?;
        config.port(port);
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        config.user(&user);
    }
    if config.get_dbname().is_none()
        && let Some(db) = env("PGDATABASE")
    {
        config.dbname(&db);
    }
    if config.get_connect_timeout().is_none() {
        let seconds = env("PGCONNECT_TIMEOUT")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(10);
        config.connect_timeout(std::time::Duration::from_secs(seconds.max(2)));
    }
    if config.get_application_name().is_none() {
        config.application_name(env("PGAPPNAME").unwrap_or_else(|| "jobs".to_string()));
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        } else if let Some(password) = passfile_password(config, env) {
            config.password(password);
        }
    }
    Ok(())
}

/// The password `PGPASSFILE` (default `~/.pgpass`) holds for this host, port, database and
/// user, as libpq finds it: the first matching line, `*` matching anything. A file that
/// others may read is ignored, as libpq ignores it.
fn passfile_password(config: &tokio_postgres::Config, env: Env<'_>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(_) => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user()?.to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    passfile_lookup(&text, [&host, &port, &db, &user])
}

/// The password of the first line of a `.pgpass` text matching host, port, database, user.
fn passfile_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_escaped(line);
            if fields.len() != 5 {
                return None;
            }
            fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w)
                .then(|| fields[4].clone())
        })
}

/// A `.pgpass` line's fields: split at `:`, with `\:` and `\\` escaped.
fn split_escaped(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let cases = [
            ("postgres://h/db", "postgres://h/db", None, None),
            (
                "postgres://h/db?sslmode=require&sslrootcert=/ca.pem",
                "postgres://h/db",
                Some("require"),
                Some("/ca.pem"),
            ),
            (
                "postgres://h/db?application_name=x&sslmode=verify-full",
                "postgres://h/db?application_name=x",
                Some("verify-full"),
                None,
            ),
        ];
        for (text, url, mode, root_cert) in cases {
            let (rest, options) = tls_options(text);
            assert_eq!(rest, url, "{text}");
            assert_eq!(options.mode.as_deref(), mode, "{text}");
            assert_eq!(options.root_cert.as_deref(), root_cert, "{text}");
        }
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn a_path_is_a_file_and_a_url_is_postgres() {
        let none = env(&[]);
        assert_eq!(
            Location::parse(".jobs/ledger.db", &none).unwrap(),
            Location::File(".jobs/ledger.db".into())
        );
        let pg = Location::parse("postgres://jobs:s3cret@db.example:6432/ledger", &none).unwrap();
        assert_eq!(
            pg.display().to_string(),
            "postgres://jobs:***@db.example:6432/ledger"
        );
        let Location::Postgres(t) = pg else {
            panic!("not postgres")
        };
        assert_eq!(t.config.get_user(), Some("jobs"));
        assert_eq!(t.config.get_dbname(), Some("ledger"));
        assert_eq!(t.config.get_ports(), &[6432]);
        assert_eq!(t.config.get_password(), Some(&b"s3cret"[..]));
    }

    #[test]
    fn libpq_variables_fill_what_the_url_leaves_out() {
        let vars = env(&[
            ("PGHOST", "10.0.0.5"),
            ("PGPORT", "5433"),
            ("PGUSER", "ops"),
            ("PGPASSWORD", "pw"),
            ("PGDATABASE", "jobsdb"),
        ]);
        let Location::Postgres(t) = Location::parse("postgresql://", &vars).unwrap() else {
            panic!("not postgres")
        };
        assert_eq!(
            t.config.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("10.0.0.5".into())]
        );
        assert_eq!(t.config.get_ports(), &[5433]);
        assert_eq!(t.config.get_user(), Some("ops"));
        assert_eq!(t.config.get_dbname(), Some("jobsdb"));
        assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
        let bad = Location::parse("postgres://", &env(&[("PGPORT", "x")])).unwrap_err();
        assert_eq!(bad, "PGPORT=x is not a port number");
        let bad = Location::parse("postgres://a:b@h:notaport/db", &env(&[])).unwrap_err();
        assert!(
            bad.starts_with("the ledger URL postgres://a:***@h:notaport/db does not parse"),
            "{bad}"
        );
    }

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let text =
            "# comment\nother:5432:*:ops:no\n10.0.0.5:*:jobsdb:ops:yes\\:colon\n*:*:*:*:fallback\n";
        for (want, found) in [
            (["10.0.0.5", "5432", "jobsdb", "ops"], Some("yes:colon")),
            (["other", "5432", "x", "ops"], Some("no")),
            (["elsewhere", "1", "d", "u"], Some("fallback")),
        ] {
            assert_eq!(passfile_lookup(text, want).as_deref(), found, "{want:?}");
        }
        assert_eq!(passfile_lookup("h:1:d:u:p\n", ["h", "2", "d", "u"]), None);
    }
}
