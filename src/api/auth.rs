//! Bearer tokens and their roles. Tokens come from a token file (`ROLE TOKEN` per line) or
//! `JOBS_TOKEN` (admin), never from a job file; each is compared in constant time.

use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
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

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Token>);

type Token = (Role, Vec<u8>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

/// Shorter tokens are refused: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

impl Tokens {
    /// Reads a token file and adds `JOBS_TOKEN` (admin), if given. A token file that others
    /// may read or write is refused, unless `insecure` (then it is accepted with a warning).
    ///
    /// # Errors
    ///
    /// A message naming the file and line of a bad entry, or its loose permissions.
    pub fn load(
        file: Option<&Path>,
        env_admin: Option<&str>,
        insecure: bool,
    ) -> Result<Tokens, String> {
        let mut tokens = Vec::new();
        if let Some(path) = file {
            check_permissions(path, insecure)?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
            tokens.extend(
                parse(&text).map_err(|(line, m)| format!("{}:{line}: {m}", path.display()))?,
            );
        }
        if let Some(token) = env_admin.filter(|t| !t.is_empty()) {
            check_token(token).map_err(|m| format!("JOBS_TOKEN: {m}"))?;
            tokens.push((Role::Admin, token.as_bytes().to_vec()));
        }
        Ok(Tokens(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The role of `token`. Every configured token is compared, each in constant time, so
    /// the time taken says nothing about which one (or how much of one) matched.
    pub fn role_of(&self, token: &[u8]) -> Option<Role> {
        let mut found = None;
        for (role, known) in &self.0 {
            if bool::from(known.as_slice().ct_eq(token)) {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

/// A token file must be the owner's alone: tokens in a file others can read are everyone's.
fn check_permissions(path: &Path, insecure: bool) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // reading it says what is wrong
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let message = format!(
        "the token file {} can be read or written by others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    );
    if insecure {
        eprintln!("warning: {message} (accepted because of --insecure)");
        Ok(())
    } else {
        Err(format!("{message}, or pass --insecure to accept it"))
    }
}

fn check_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "a token must be at least {MIN_TOKEN_LEN} characters (try `openssl rand -hex 32`)"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token may hold only visible ASCII characters".to_string());
    }
    Ok(())
}

/// Parses a token file: `ROLE TOKEN` per line; blank lines and `#` comments are skipped.
fn parse(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(role), Some(token), None) = (words.next(), words.next(), words.next()) else {
            return Err((
                i + 1,
                "expected `ROLE TOKEN` (ROLE is `read` or `admin`)".to_string(),
            ));
        };
        let role = match role {
            "read" => Role::Read,
            "admin" => Role::Admin,
            other => {
                return Err((i + 1, format!("role `{other}` is not `read` or `admin`")));
            }
        };
        check_token(token).map_err(|m| (i + 1, m))?;
        out.push((role, token.as_bytes().to_vec()));
    }
    Ok(out)
}

/// A caller allowed to read: the extractor answers 401 or 403 otherwise.
#[derive(Clone, Copy, Debug)]
pub struct Reader(pub Role);

/// A caller allowed to change things (trigger, pause, cancel, create, delete).
#[derive(Clone, Copy, Debug)]
pub struct Admin;

/// Whether the request's token (if any) may read jobs: what an answer may reveal to it.
pub(crate) fn can_read(headers: &HeaderMap, api: &Api) -> bool {
    caller(headers, api).is_ok()
}

/// The token of an `Authorization: Bearer TOKEN` header. The scheme is case-insensitive
/// (RFC 7235, section 2.1), and one or more spaces may follow it.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

fn caller(headers: &HeaderMap, api: &Api) -> Result<Role, ApiError> {
    if api.insecure && api.tokens.is_empty() {
        return Ok(Role::Admin);
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
    if api.tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the server has no tokens configured: start it with --token-file or JOBS_TOKEN",
        ));
    }
    api.tokens
        .role_of(token.as_bytes())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid"))
}

impl FromRequestParts<std::sync::Arc<Api>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &std::sync::Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        caller(&parts.headers, api).map(Reader)
    }
}

impl FromRequestParts<std::sync::Arc<Api>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &std::sync::Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        match caller(&parts.headers, api)? {
            Role::Admin => Ok(Admin),
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
        let good = "# ops\nread  rrrrrrrrrrrrrrrrrrrr\n\nadmin aaaaaaaaaaaaaaaaaaaa\n";
        let parsed = parse(good).unwrap();
        assert_eq!(parsed.len(), 2);
        let cases = [
            ("writer wwwwwwwwwwwwwwwwwwww\n", 1, "role `writer` is not"),
            ("read\n", 1, "expected `ROLE TOKEN`"),
            ("\nread short\n", 2, "at least 16 characters"),
            ("read a b\n", 1, "expected `ROLE TOKEN`"),
        ];
        for (text, line, message) in cases {
            let (at, m) = parse(text).unwrap_err();
            assert_eq!(at, line, "{text:?}");
            assert!(m.contains(message), "{text:?}: {m}");
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
    fn roles_are_found_by_exact_token() {
        let tokens =
            Tokens(parse("read rrrrrrrrrrrrrrrrrrrr\nadmin aaaaaaaaaaaaaaaaaaaa\n").unwrap());
        assert_eq!(tokens.role_of(b"rrrrrrrrrrrrrrrrrrrr"), Some(Role::Read));
        assert_eq!(tokens.role_of(b"aaaaaaaaaaaaaaaaaaaa"), Some(Role::Admin));
        assert_eq!(
            tokens.role_of(b"aaaaaaaaaaaaaaaaaaa"),
            None,
            "a prefix is not a token"
        );
        assert_eq!(tokens.role_of(b""), None);
    }
}
