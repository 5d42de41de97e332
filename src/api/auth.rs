//! Bearer tokens, their roles, names and scopes. Tokens come from a token file (`ROLE NAME
//! TOKEN` per line, or the older `ROLE TOKEN`) or `JOBS_TOKEN` (admin, named `JOBS_TOKEN`),
//! never from a job file; each is compared in constant time. The name is who the ledger and
//! the log record as the actor of a write (`alice (api)`); a token without one is recorded as
//! `api`. A scope (`read team-a/ TOKEN`, `admin alice team-a/,shared/ TOKEN`) limits a token
//! to the jobs of those folders of `jobs.d` (and the API-owned jobs tokens of that scope
//! created): every other job is, to it, not there.

use std::path::{Path, PathBuf};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use subtle::ConstantTimeEq;

use super::Api;
use super::error::ApiError;

/// What a token may do. `Admin` includes everything `Read` may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// Who made a request: its token's role and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// The token's name; `None` for a token written `ROLE TOKEN`, and for every caller of a
    /// server without tokens (`--insecure`).
    pub name: Option<String>,
    /// The folders of `jobs.d` the token is limited to; `None`: every job.
    pub scope: Option<Scope>,
}

/// Folders of `jobs.d` (`team-a/`, `shared/tools/`), each relative and ending in `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Parses `team-a/,shared/`.
    ///
    /// # Errors
    ///
    /// [`EntryError::Scope`] naming the folder that is not relative, not ending in `/`, or
    /// holds `.`, `..` or an empty part.
    pub fn parse(text: &str) -> Result<Scope, EntryError> {
        let mut folders = Vec::new();
        for folder in text.split(',') {
            let bad = || EntryError::Scope(folder.to_string());
            let inner = folder.strip_suffix('/').ok_or_else(bad)?;
            if inner.is_empty()
                || inner
                    .split('/')
                    .any(|part| part.is_empty() || part == "." || part == "..")
            {
                return Err(bad());
            }
            if !folders.iter().any(|f: &String| f == folder) {
                folders.push(folder.to_string());
            }
        }
        Ok(Scope(folders))
    }

    /// [`Scope::covers`] for a job's ledger row.
    pub fn covers_job(&self, row: &crate::ledger::JobRow) -> bool {
        self.covers(row.source_path.as_deref(), row.scope.as_deref())
    }

    /// `team-a/,shared/`: what an API-owned job created under this scope records.
    pub fn text(&self) -> String {
        self.0.join(",")
    }

    /// Whether a job is inside: a file's job when its path (relative to `jobs.d`) is under one
    /// of the folders; an API-owned job when a folder of the scope it was created under is.
    pub fn covers(&self, source_path: Option<&str>, created_in: Option<&str>) -> bool {
        let under = |path: &str| self.0.iter().any(|f| path.starts_with(f.as_str()));
        match (source_path, created_in) {
            (Some(path), _) => under(path),
            (None, Some(scope)) => scope.split(',').any(under),
            (None, None) => false,
        }
    }
}

impl Principal {
    /// How the ledger records this caller's writes: `alice (api)`, or `api` without a name.
    pub fn actor(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} (api)"),
            None => "api".to_string(),
        }
    }

    /// The audit log: an INFO line for a write this caller made, after it landed.
    /// `object` is what was written: `job deploy`, `run 7`.
    pub(crate) fn audit(&self, action: &str, object: &str) {
        let actor = self.actor();
        tracing::info!(
            actor = %actor,
            role = self.role.as_str(),
            action,
            object,
            "{object} {action} by {actor}"
        );
    }
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Token>);

#[derive(Clone)]
struct Token {
    principal: Principal,
    secret: Vec<u8>,
}

/// What `JOBS_TOKEN` is recorded as: where it came from.
pub const ENV_TOKEN_NAME: &str = "JOBS_TOKEN";

/// The longest token name.
pub const MAX_NAME_LEN: usize = 64;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

/// Shorter tokens are refused: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the tokens cannot be loaded. Each message names the file (and line) or `JOBS_TOKEN`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "{}, or pass --insecure to accept it",
        loose_permissions(.path, *.mode)
    )]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("cannot read the token file {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Entry {
        path: PathBuf,
        line: usize,
        problem: EntryError,
    },
    #[error("JOBS_TOKEN: {0}")]
    EnvToken(EntryError),
    #[error(
        "JOBS_TOKEN is also a token in the token file ({actor}); give each caller its own token"
    )]
    EnvTokenInFile { actor: String },
    #[error(
        "the token file names a {} token `{ENV_TOKEN_NAME}`, the name JOBS_TOKEN is recorded as; rename it",
        .role.as_str()
    )]
    EnvNameInFile { role: Role },
}

/// What is wrong with one entry of a token file (or with `JOBS_TOKEN`'s token).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error(
        "expected `ROLE NAME TOKEN` or `ROLE [NAME] FOLDERS TOKEN` (ROLE is `read` or `admin`; NAME is who the token's actions are recorded as; FOLDERS, such as `team-a/,shared/`, limit it to the jobs in those folders of jobs.d)"
    )]
    Shape,
    #[error(
        "the folder `{0}` of a scope must be relative to jobs.d and end in `/` (`team-a/`), without `.` or `..`"
    )]
    Scope(String),
    #[error("role `{0}` is not `read` or `admin`")]
    Role(String),
    #[error("the token name `{0}` is longer than {MAX_NAME_LEN} characters")]
    NameTooLong(String),
    #[error(
        "the token name `{name}` holds {bad:?}; a name may hold only letters, digits, `.`, `_`, `@` and `-`"
    )]
    NameCharacter { name: String, bad: char },
    #[error("the token name `{name}` is already given on line {first}; names must be unique")]
    NameRepeated { name: String, first: usize },
    #[error("a token must be at least {MIN_TOKEN_LEN} characters (try `openssl rand -hex 32`)")]
    TokenTooShort,
    #[error("a token may hold only visible ASCII characters")]
    TokenCharacters,
    #[error("this token is already given on line {first}; give each caller its own token")]
    TokenRepeated { first: usize },
}

/// What a token file that others may read or write is told, refused or (with `--insecure`)
/// accepted.
fn loose_permissions(path: &Path, mode: u32) -> String {
    format!(
        "the token file {} can be read or written by others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )
}

impl Tokens {
    /// Reads a token file and adds `JOBS_TOKEN` (admin, named `JOBS_TOKEN`), if given. A token
    /// file that others may read or write is refused, unless `insecure` (then it is accepted
    /// with a warning).
    ///
    /// # Errors
    ///
    /// [`TokenError`]: the file's loose permissions, or the file and line of a bad entry (a
    /// bad role, token or name, a name or token given twice), or a bad `JOBS_TOKEN`.
    pub fn load(
        file: Option<&Path>,
        env_admin: Option<&str>,
        insecure: bool,
    ) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        if let Some(path) = file {
            check_permissions(path, insecure)?;
            let text = std::fs::read_to_string(path).map_err(|reason| TokenError::Read {
                path: path.to_path_buf(),
                reason,
            })?;
            tokens.extend(parse(&text).map_err(|(line, problem)| TokenError::Entry {
                path: path.to_path_buf(),
                line,
                problem,
            })?);
        }
        if let Some(token) = env_admin.filter(|t| !t.is_empty()) {
            check_token(token).map_err(TokenError::EnvToken)?;
            if let Some(other) = tokens.iter().find(|t| t.secret == token.as_bytes()) {
                return Err(TokenError::EnvTokenInFile {
                    actor: other.principal.actor(),
                });
            }
            if let Some(other) = tokens
                .iter()
                .find(|t| t.principal.name.as_deref() == Some(ENV_TOKEN_NAME))
            {
                return Err(TokenError::EnvNameInFile {
                    role: other.principal.role,
                });
            }
            tokens.push(Token {
                principal: Principal {
                    role: Role::Admin,
                    name: Some(ENV_TOKEN_NAME.to_string()),
                    scope: None,
                },
                secret: token.as_bytes().to_vec(),
            });
        }
        Ok(Tokens(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Who a dashboard session cookie (see [`super::session`]) belongs to, at `now`.
    ///
    /// # Errors
    ///
    /// Why the cookie is not a session.
    pub fn principal_of_session(
        &self,
        cookie: &str,
        now: i64,
    ) -> Result<Principal, super::session::Invalid> {
        let index =
            super::session::verify(cookie, self.0.iter().map(|t| t.secret.as_slice()), now)?;
        Ok(self.0[index].principal.clone())
    }

    /// Who holds `token`. Every configured token is compared, each in constant time, so the
    /// time taken says nothing about which one (or how much of one) matched.
    pub fn principal_of(&self, token: &[u8]) -> Option<Principal> {
        let mut found = None;
        for known in &self.0 {
            // Tokens are unique (`load` refuses a repeat), so at most one matches.
            if bool::from(known.secret.as_slice().ct_eq(token)) {
                found = Some(&known.principal);
            }
        }
        found.cloned()
    }
}

/// A token file must be the owner's alone: tokens in a file others can read are everyone's.
fn check_permissions(path: &Path, insecure: bool) -> Result<(), TokenError> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // reading it says what is wrong
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if insecure {
        eprintln!(
            "warning: {} (accepted because of --insecure)",
            loose_permissions(path, mode)
        );
        Ok(())
    } else {
        Err(TokenError::LoosePermissions {
            path: path.to_path_buf(),
            mode,
        })
    }
}

fn check_token(token: &str) -> Result<(), EntryError> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(EntryError::TokenTooShort);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EntryError::TokenCharacters);
    }
    Ok(())
}

/// A token's name: 1 to 64 of `A-Z a-z 0-9 . _ @ -`, so it reads plainly in a log line or an
/// event (`paused by alice (api)`) and cannot pass for something else.
fn check_name(name: &str) -> Result<(), EntryError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if name.len() > MAX_NAME_LEN {
        return Err(EntryError::NameTooLong(name.to_string()));
    }
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(EntryError::NameCharacter {
            name: name.to_string(),
            bad,
        });
    }
    Ok(())
}

/// Parses a token file: `ROLE NAME TOKEN` (or `ROLE TOKEN`, unnamed) per line; blank lines and
/// `#` comments are skipped. Names and tokens are unique.
fn parse(text: &str) -> Result<Vec<Token>, (usize, EntryError)> {
    let mut out: Vec<(usize, Token)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        // A word ending in `/` is a scope (a name cannot hold one).
        let (role, name, scope, token) = match words[..] {
            [role, name, scope, token] if scope.ends_with('/') => {
                (role, Some(name), Some(scope), token)
            }
            [role, scope, token] if scope.ends_with('/') => (role, None, Some(scope), token),
            [role, name, token] => (role, Some(name), None, token),
            [role, token] => (role, None, None, token),
            _ => return Err((at, EntryError::Shape)),
        };
        let scope = scope.map(Scope::parse).transpose().map_err(|m| (at, m))?;
        let role = match role {
            "read" => Role::Read,
            "admin" => Role::Admin,
            other => return Err((at, EntryError::Role(other.to_string()))),
        };
        if let Some(name) = name {
            check_name(name).map_err(|m| (at, m))?;
            if let Some((first, _)) = out
                .iter()
                .find(|(_, t)| t.principal.name.as_deref() == Some(name))
            {
                return Err((
                    at,
                    EntryError::NameRepeated {
                        name: name.to_string(),
                        first: *first,
                    },
                ));
            }
        }
        check_token(token).map_err(|m| (at, m))?;
        if let Some((first, _)) = out.iter().find(|(_, t)| t.secret == token.as_bytes()) {
            return Err((at, EntryError::TokenRepeated { first: *first }));
        }
        out.push((
            at,
            Token {
                principal: Principal {
                    role,
                    name: name.map(str::to_string),
                    scope,
                },
                secret: token.as_bytes().to_vec(),
            },
        ));
    }
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// A caller allowed to read: the extractor answers 401 or 403 otherwise.
#[derive(Clone, Debug)]
pub struct Reader(pub Principal);

/// A caller allowed to change things (trigger, pause, cancel, create, delete): who, for the
/// ledger and the audit log.
#[derive(Clone, Debug)]
pub struct Admin(pub Principal);

/// The token of an `Authorization: Bearer TOKEN` header. The scheme is case-insensitive
/// (RFC 7235, section 2.1), and one or more spaces may follow it.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// Who made a request: its bearer token's holder, or (without an `Authorization` header) its
/// dashboard session's, checked against cross-site forgery for anything but a read.
pub(crate) fn caller(
    method: &Method,
    headers: &HeaderMap,
    api: &Api,
) -> Result<Principal, ApiError> {
    if api.insecure && api.tokens.is_empty() {
        return Ok(Principal {
            role: Role::Admin,
            name: None,
            scope: None,
        });
    }
    if api.tokens.is_empty() {
        return Err(no_tokens());
    }
    if headers.get(AUTHORIZATION).is_none()
        && let Some(value) = session_cookie(headers)
    {
        let principal = api
            .tokens
            .principal_of_session(value, api.shared.clock.now().as_second())
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
        if !matches!(*method, Method::GET | Method::HEAD) {
            same_site(headers)?;
        }
        return Ok(principal);
    }
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs `Authorization: Bearer TOKEN`",
        )
    })?;
    let token = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not `Bearer TOKEN`",
        )
    })?;
    api.tokens
        .principal_of(token.as_bytes())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid"))
}

/// What every caller of a server without tokens (and without `--insecure`) is told.
pub(crate) fn no_tokens() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "the server has no tokens configured: start it with --token-file or JOBS_TOKEN",
    )
}

/// The dashboard's session cookie, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| super::session::cookie(h, super::session::COOKIE))
        .filter(|v| !v.is_empty())
}

/// A write made with a session cookie must carry the dashboard's header (which a page of
/// another site cannot add without a CORS preflight, never granted here) and, if the browser
/// names its `Origin`, come from this server's own.
fn same_site(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("cross-site request refused: {why}"),
        )
    };
    if headers.get(super::session::CSRF_HEADER).is_none() {
        return Err(refused(&format!(
            "a write made with the dashboard's cookie needs the `{}` header",
            super::session::CSRF_HEADER
        )));
    }
    if let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Err(refused(&format!("its origin {origin} is not this server")));
        }
    }
    Ok(())
}

impl FromRequestParts<std::sync::Arc<Api>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &std::sync::Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        caller(&parts.method, &parts.headers, api).map(Reader)
    }
}

impl FromRequestParts<std::sync::Arc<Api>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &std::sync::Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        let principal = caller(&parts.method, &parts.headers, api)?;
        match principal.role {
            Role::Admin => Ok(Admin(principal)),
            Role::Read => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this token may only read; triggering, pausing and cancelling need an admin token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_parsed_with_line_numbers() {
        let good = "# ops\nread  rrrrrrrrrrrrrrrrrrrr\n\nadmin alice aaaaaaaaaaaaaaaaaaaa\n";
        let parsed = parse(good).unwrap();
        let principals: Vec<_> = parsed.iter().map(|t| t.principal.actor()).collect();
        assert_eq!(principals, ["api", "alice (api)"]);
        let cases = [
            ("writer wwwwwwwwwwwwwwwwwwww\n", 1, "role `writer` is not"),
            ("read\n", 1, "expected `ROLE NAME TOKEN`"),
            ("\nread short\n", 2, "at least 16 characters"),
            ("read a b\n", 1, "at least 16 characters"),
            ("read a b c d\n", 1, "expected `ROLE NAME TOKEN`"),
            ("read al/ice rrrrrrrrrrrrrrrrrrrr\n", 1, "holds '/'"),
            (
                "read a b/ c/ rrrrrrrrrrrrrrrrrrrr\n",
                1,
                "expected `ROLE NAME TOKEN`",
            ),
            ("read /etc/ rrrrrrrrrrrrrrrrrrrr\n", 1, "the folder `/etc/`"),
            ("read a/../ rrrrrrrrrrrrrrrrrrrr\n", 1, "the folder `a/../`"),
            ("read a/,,b/ rrrrrrrrrrrrrrrrrrrr\n", 1, "the folder ``"),
            ("read team-a/,bob rrrrrrrrrrrrrrrrrrrr\n", 1, "holds '/'"),
            (
                "read team-a,bob/ rrrrrrrrrrrrrrrrrrrr\n",
                1,
                "the folder `team-a`",
            ),
            ("read alice(api) rrrrrrrrrrrrrrrrrrrr\n", 1, "holds '('"),
            (
                &format!("read {} rrrrrrrrrrrrrrrrrrrr\n", "n".repeat(65)),
                1,
                "longer than 64",
            ),
            (
                "read alice rrrrrrrrrrrrrrrrrrrr\n# x\nadmin alice aaaaaaaaaaaaaaaaaaaa\n",
                3,
                "`alice` is already given on line 1",
            ),
            (
                "read alice rrrrrrrrrrrrrrrrrrrr\nadmin bob rrrrrrrrrrrrrrrrrrrr\n",
                2,
                "already given on line 1",
            ),
        ];
        for (text, line, message) in cases {
            let (at, m) = parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} parsed"));
            assert_eq!(at, line, "{text:?}");
            let m = m.to_string();
            assert!(m.contains(message), "{text:?}: {m}");
        }
    }

    /// `JOBS_TOKEN` is checked like a file's token, and may not repeat one of the file's
    /// tokens or take the name it is recorded as.
    #[test]
    fn jobs_token_is_refused_with_what_to_change() {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().unwrap(); // mode 600
        writeln!(file, "admin alice aaaaaaaaaaaaaaaaaaaa").unwrap();
        writeln!(file, "read JOBS_TOKEN rrrrrrrrrrrrrrrrrrrr").unwrap();
        let cases = [
            (
                None,
                "short",
                "JOBS_TOKEN: a token must be at least 16 characters (try `openssl rand -hex 32`)",
            ),
            (
                Some(file.path()),
                "aaaaaaaaaaaaaaaaaaaa",
                "JOBS_TOKEN is also a token in the token file (alice (api)); give each caller its own token",
            ),
            (
                Some(file.path()),
                "zzzzzzzzzzzzzzzzzzzz",
                "the token file names a read token `JOBS_TOKEN`, the name JOBS_TOKEN is recorded as; rename it",
            ),
        ];
        for (path, token, want) in cases {
            let error = Tokens::load(path, Some(token), false).expect_err(token);
            assert_eq!(error.to_string(), want);
        }
    }

    #[test]
    fn a_scope_covers_the_jobs_under_its_folders() {
        let parsed = parse(
            "read team-a/ rrrrrrrrrrrrrrrrrrrr\nadmin alice team-a/,shared/x/ aaaaaaaaaaaaaaaaaaaa\n",
        )
        .unwrap();
        let scope = |i: usize| parsed[i].principal.scope.clone().unwrap();
        assert_eq!(parsed[0].principal.name, None);
        assert_eq!(parsed[1].principal.actor(), "alice (api)");
        assert_eq!(scope(1).text(), "team-a/,shared/x/");
        let a = scope(0);
        let both = scope(1);
        for (path, created, a_sees, both_see) in [
            (Some("team-a/x.yaml"), None, true, true),
            (Some("team-a/deep/x.yaml"), None, true, true),
            (Some("team-ab/x.yaml"), None, false, false),
            (Some("shared/x/y.toml"), None, false, true),
            (Some("top.yaml"), None, false, false),
            (None, Some("team-a/"), true, true),
            (None, Some("shared/x/"), false, true),
            (None, Some("team-b/,team-a/"), true, true),
            (None, None, false, false),
        ] {
            assert_eq!(a.covers(path, created), a_sees, "{path:?} {created:?}");
            assert_eq!(both.covers(path, created), both_see, "{path:?} {created:?}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("Bearer", None),
        ];
        for (header, want) in cases {
            assert_eq!(bearer_token(header), want, "{header:?}");
        }
    }

    #[test]
    fn principals_are_found_by_exact_token() {
        let tokens = Tokens(
            parse("read rrrrrrrrrrrrrrrrrrrr\nadmin bob.ops aaaaaaaaaaaaaaaaaaaa\n").unwrap(),
        );
        let who = |t: &[u8]| tokens.principal_of(t).map(|p| (p.role, p.actor()));
        assert_eq!(
            who(b"rrrrrrrrrrrrrrrrrrrr"),
            Some((Role::Read, "api".into()))
        );
        assert_eq!(
            who(b"aaaaaaaaaaaaaaaaaaaa"),
            Some((Role::Admin, "bob.ops (api)".into()))
        );
        assert_eq!(who(b"aaaaaaaaaaaaaaaaaaa"), None, "a prefix is not a token");
        assert_eq!(who(b""), None);
    }
}
