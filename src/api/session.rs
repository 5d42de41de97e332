//! Dashboard sessions: a browser trades a token for a cookie, once, at `POST /v1/session`.
//!
//! The cookie is `v1.FINGERPRINT.EXPIRES.MAC`: which token (the first 8 bytes of its SHA-256,
//! in hex), until when (Unix seconds), and an HMAC-SHA256 of both keyed by the token itself.
//! Nothing is stored on the server, so a session is good on every node that has the token and
//! after a restart; removing the token from the token file ends its sessions at once. The
//! cookie is `HttpOnly` (scripts cannot read it), `SameSite=Strict` and, behind TLS, `Secure`;
//! the token never appears in a URL, a page or a log.
//!
//! Writes made with the cookie must also carry [`CSRF_HEADER`] (a page of another site cannot
//! add a custom header without a CORS preflight, which this server never grants) and, when the
//! browser sends `Origin`, come from this server's own origin.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Api;
use super::auth::{Principal, Reader, session_cookie};
use super::error::{ApiError, ApiResult};
use super::wire::{ErrorBody, LoginBody, SessionView};

/// The cookie's name.
pub const COOKIE: &str = "jobs_session";

/// The header the dashboard sends with every write made with its cookie.
pub const CSRF_HEADER: &str = "x-jobs-dashboard";

/// How long a session lasts (12 hours: a working day, then log in again).
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// A token's public fingerprint: which token a cookie was made from, revealing nothing of it.
pub fn fingerprint(secret: &[u8]) -> String {
    hex(&Sha256::digest(secret)[..8])
}

/// The cookie value for the token `secret`, good until `expires` (Unix seconds).
pub fn issue(secret: &[u8], expires: i64) -> String {
    let fp = fingerprint(secret);
    format!("v1.{fp}.{expires}.{}", mac(secret, &fp, expires))
}

/// Why a cookie is not a session.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the session cookie is malformed; log in again")]
    Malformed,
    #[error("the session has expired; log in again")]
    Expired,
    #[error("the session's token is no longer configured; log in again")]
    UnknownToken,
    #[error("the session cookie is not valid; log in again")]
    BadSignature,
}

/// When a cookie value says it expires (Unix seconds); `None` if it is not one [`issue`] makes.
/// Says nothing of whether the cookie is valid: [`verify`] does.
pub fn expiry(value: &str) -> Option<i64> {
    match value.split('.').collect::<Vec<_>>()[..] {
        ["v1", _, expires, _] => expires.parse().ok(),
        _ => None,
    }
}

/// Checks a cookie value at `now` (Unix seconds): the fingerprint names one of `secrets`, the
/// MAC is that token's, and it has not expired. Returns the index of the token in `secrets`.
///
/// # Errors
///
/// [`Invalid`]: what is wrong with it.
pub fn verify<'a>(
    value: &str,
    secrets: impl IntoIterator<Item = &'a [u8]>,
    now: i64,
) -> Result<usize, Invalid> {
    let ["v1", fp, expires, given] = value.split('.').collect::<Vec<_>>()[..] else {
        return Err(Invalid::Malformed);
    };
    let expires: i64 = expires.parse().map_err(|_| Invalid::Malformed)?;
    let (index, secret) = secrets
        .into_iter()
        .enumerate()
        .find(|(_, s)| fingerprint(s) == fp)
        .ok_or(Invalid::UnknownToken)?;
    let want = mac(secret, fp, expires);
    if !bool::from(want.as_bytes().ct_eq(given.as_bytes())) {
        return Err(Invalid::BadSignature);
    }
    if now >= expires {
        return Err(Invalid::Expired);
    }
    Ok(index)
}

/// The value of the cookie `name` in a `Cookie` request header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` header that starts a session (`secure` behind TLS).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; Max-Age={LIFETIME_SECS}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` header that ends a session.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

fn mac(secret: &[u8], fp: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("jobs-session v1|{fp}|{expires}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Logs a browser in: trades a token for a session cookie (`HttpOnly`, `SameSite=Strict`,
/// `Secure` behind TLS, 12 hours). The dashboard's login page calls it; scripts and the CLI
/// send `Authorization: Bearer TOKEN` instead.
#[utoipa::path(post, path = "/v1/session", tag = "system", security(()),
    request_body = LoginBody,
    responses((status = 200, body = SessionView, description = "Logged in; the cookie is set"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn login(
    State(api): State<Arc<Api>>,
    super::OptionalJson(body): super::OptionalJson<Option<LoginBody>>,
) -> ApiResult<Response> {
    let body = body.ok_or_else(|| ApiError::bad_request("send {\"token\": \"...\"}"))?;
    if api.tokens.is_empty() {
        return Err(super::auth::no_tokens());
    }
    let principal = api
        .tokens
        .principal_of(body.token.as_bytes())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid"))?;
    let now = api.shared.clock.now();
    let expires = now.as_second() + LIFETIME_SECS;
    let value = issue(body.token.as_bytes(), expires);
    principal.audit("logged in", "dashboard");
    let view = view(&principal, "cookie", Some(expires), now);
    Ok((
        [(header::SET_COOKIE, set_cookie(&value, api.tls))],
        Json(view),
    )
        .into_response())
}

/// Who the caller is (its role decides what the dashboard offers), or 401.
#[utoipa::path(get, path = "/v1/session", tag = "system",
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
pub async fn whoami(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Reader(principal): Reader,
) -> Json<SessionView> {
    let via = if api.insecure && api.tokens.is_empty() {
        "none"
    } else if headers.get(header::AUTHORIZATION).is_some() {
        "bearer"
    } else {
        "cookie"
    };
    let expires = (via == "cookie")
        .then(|| session_cookie(&headers))
        .flatten()
        .and_then(expiry);
    Json(view(&principal, via, expires, api.shared.clock.now()))
}

/// Logs a browser out: the session cookie is cleared.
#[utoipa::path(delete, path = "/v1/session", tag = "system", security(()),
    responses((status = 204, description = "Logged out; the cookie is cleared")))]
pub async fn logout(State(api): State<Arc<Api>>) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie(api.tls))],
    )
        .into_response()
}

fn view(
    principal: &Principal,
    via: &str,
    expires: Option<i64>,
    now: jiff::Timestamp,
) -> SessionView {
    SessionView {
        role: principal.role.as_str().to_string(),
        name: principal.name.clone(),
        scope: principal.scope.as_ref().map(crate::api::auth::Scope::text),
        via: via.to_string(),
        expires_at: expires
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(|t| t.to_string()),
        now: now.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &[u8] = b"aaaaaaaaaaaaaaaaaaaaaaaa";
    const BOB: &[u8] = b"bbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn cookies_are_checked_against_the_configured_tokens() {
        let good = issue(BOB, 1_000);
        let forged_expiry = good.replacen(".1000.", ".9000.", 1);
        let other_mac = {
            let mine = issue(ALICE, 1_000);
            let (head, _) = good.rsplit_once('.').unwrap();
            format!("{head}.{}", mine.rsplit_once('.').unwrap().1)
        };
        // (what, cookie, configured tokens, now, verdict)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a [&'a [u8]],
            i64,
            Result<usize, Invalid>,
        );
        let cases: &[Case] = &[
            ("good, second token", &good, &[ALICE, BOB], 999, Ok(1)),
            (
                "expired",
                &good,
                &[ALICE, BOB],
                1_000,
                Err(Invalid::Expired),
            ),
            (
                "token removed",
                &good,
                &[ALICE],
                999,
                Err(Invalid::UnknownToken),
            ),
            (
                "expiry moved",
                &forged_expiry,
                &[ALICE, BOB],
                999,
                Err(Invalid::BadSignature),
            ),
            (
                "another token's MAC",
                &other_mac,
                &[ALICE, BOB],
                999,
                Err(Invalid::BadSignature),
            ),
            ("empty", "", &[ALICE], 0, Err(Invalid::Malformed)),
            (
                "a bare token",
                "aaaaaaaaaaaaaaaa",
                &[ALICE],
                0,
                Err(Invalid::Malformed),
            ),
            ("v2", "v2.a.1.b", &[ALICE], 0, Err(Invalid::Malformed)),
            (
                "extra part",
                &format!("{good}.x"),
                &[BOB],
                0,
                Err(Invalid::Malformed),
            ),
            (
                "expiry not a number",
                "v1.ab.soon.cd",
                &[ALICE],
                0,
                Err(Invalid::Malformed),
            ),
        ];
        for (name, value, secrets, now, want) in cases {
            assert_eq!(
                verify(value, secrets.iter().copied(), *now),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn a_cookies_expiry_is_read_from_its_own_shape_only() {
        assert_eq!(expiry(&issue(ALICE, 1_000)), Some(1_000));
        for bad in ["", "v1.a.b", "v2.a.1.b", "v1.a.soon.b", "v1.a.1.b.c"] {
            assert_eq!(expiry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_never_holds_the_token() {
        let value = issue(ALICE, 1_000);
        assert!(!value.contains("aaaa"), "{value}");
        assert_eq!(fingerprint(ALICE).len(), 16);
    }

    #[test]
    fn cookie_headers_are_read_and_written() {
        let cases = [
            ("jobs_session=v1.x", Some("v1.x")),
            ("a=1; jobs_session=v1.y; b=2", Some("v1.y")),
            ("a=1;jobs_session=v1.z", Some("v1.z")),
            ("xjobs_session=v1.x", None),
            ("a=1", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(cookie(header, COOKIE), want, "{header:?}");
        }
        assert_eq!(
            set_cookie("v1.x", true),
            "jobs_session=v1.x; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            clear_cookie(false),
            "jobs_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }
}
