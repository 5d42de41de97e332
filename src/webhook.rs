//! Webhook checks: HMAC-SHA256 signatures, replay windows and per-job rate limits. Pure: the
//! caller passes the secret, the headers and the time.
//!
//! A sender signs the raw body with the job's secret and sends the digest as
//! `X-Hub-Signature-256: sha256=HEX` (what GitHub sends) or `X-Jobs-Signature: sha256=HEX`.
//! With `X-Jobs-Timestamp: UNIX_SECONDS`, the signed message is `TIMESTAMP.BODY` instead, and
//! a timestamp more than [`REPLAY_WINDOW`] away from now is refused, so a captured request
//! cannot be replayed later.
//!
//! The timestamp is only a defence if the server insists on it: a request signed over
//! `TS.BODY` and resent with the body `TS.BODY` and no timestamp header carries a valid plain
//! signature. So a job opts into the scheme (`require_timestamp`), and then a request without
//! `X-Jobs-Timestamp` is refused, whatever its signature.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;

/// How far a signed timestamp may be from now, either way.
pub const REPLAY_WINDOW: SignedDuration = SignedDuration::from_secs(300);

/// The signature headers of a request, as sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Signed<'a> {
    /// `X-Hub-Signature-256`.
    pub hub: Option<&'a str>,
    /// `X-Jobs-Signature`.
    pub jobs: Option<&'a str>,
    /// `X-Jobs-Timestamp`.
    pub timestamp: Option<&'a str>,
}

/// Why a webhook request is refused. Each is a 401: nothing starts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request is not signed: send X-Hub-Signature-256 or X-Jobs-Signature")]
    Unsigned,
    #[error("the signature header is not `sha256=` followed by 64 hex digits")]
    Malformed,
    #[error("the signature does not match the body and the job's secret")]
    Mismatch,
    #[error("X-Jobs-Timestamp is not a number of seconds since 1970")]
    BadTimestamp,
    #[error("X-Jobs-Timestamp is {0} s away from the server's time; at most 300 s is accepted")]
    Stale(i64),
    #[error(
        "this job takes only timestamped signatures: send X-Jobs-Timestamp and sign `TIMESTAMP.BODY`"
    )]
    TimestampRequired,
}

/// Which signatures a job takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// A plain signature of the body, or a timestamped one (GitHub's deliveries have none).
    #[default]
    Any,
    /// Only `TIMESTAMP.BODY` with `X-Jobs-Timestamp`: replays are refused.
    Timestamped,
}

/// Checks the signature of `body` against `secret`, in constant time.
///
/// # Errors
///
/// The [`Refusal`] that says what was wrong.
pub fn verify(
    secret: &[u8],
    body: &[u8],
    signed: Signed<'_>,
    scheme: Scheme,
    now: Timestamp,
) -> Result<(), Refusal> {
    let header = signed.hub.or(signed.jobs).ok_or(Refusal::Unsigned)?;
    if scheme == Scheme::Timestamped && signed.timestamp.is_none() {
        return Err(Refusal::TimestampRequired);
    }
    let digest = parse_signature(header).ok_or(Refusal::Malformed)?;
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| Refusal::Mismatch)?;
    if let Some(ts) = signed.timestamp {
        let seconds: i64 = ts.trim().parse().map_err(|_| Refusal::BadTimestamp)?;
        let away = (now.as_second() - seconds).abs();
        if away > REPLAY_WINDOW.as_secs() {
            return Err(Refusal::Stale(away));
        }
        mac.update(ts.trim().as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    mac.verify_slice(&digest).map_err(|_| Refusal::Mismatch)
}

/// The signature a sender puts in the header: `sha256=HEX`.
pub fn sign(secret: &[u8], timestamp: Option<&str>, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    if let Some(ts) = timestamp {
        mac.update(ts.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn parse_signature(header: &str) -> Option<[u8; 32]> {
    let hex = header.trim().strip_prefix("sha256=")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A token bucket per job: `per_minute` requests a minute, with bursts up to that many.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<String, (f64, Timestamp)>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: per_minute.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one request for `job` at `now`; `Err(seconds)` says when the next is allowed.
    ///
    /// # Errors
    ///
    /// The whole seconds to wait when the bucket is empty.
    pub fn take(&mut self, job: &str, now: Timestamp) -> Result<(), u64> {
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let (tokens, last) = self
            .buckets
            .entry(job.to_string())
            .or_insert((capacity, now));
        let elapsed = now.duration_since(*last).as_secs_f64().max(0.0);
        *tokens = (*tokens + elapsed * rate).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-22T12:00:00Z";

    fn now() -> Timestamp {
        T.parse().unwrap()
    }

    #[test]
    fn signatures_are_checked() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        // GitHub's documented example (docs: "Validating webhook deliveries").
        let github = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, None, body), github);
        let ts = now().as_second().to_string();
        let with_ts = sign(secret, Some(&ts), body);
        let old = (now().as_second() - 301).to_string();
        let old_sig = sign(secret, Some(&old), body);
        let not_hex = format!("sha256={}", "zz".repeat(32));
        let zeros = format!("sha256={}", "00".repeat(32));
        let cases: Vec<(&str, Signed<'_>, Result<(), Refusal>)> = vec![
            (
                "github header",
                Signed {
                    hub: Some(github),
                    ..Signed::default()
                },
                Ok(()),
            ),
            (
                "jobs header",
                Signed {
                    jobs: Some(github),
                    ..Signed::default()
                },
                Ok(()),
            ),
            ("no header", Signed::default(), Err(Refusal::Unsigned)),
            (
                "no prefix",
                Signed {
                    hub: Some(&github[7..]),
                    ..Signed::default()
                },
                Err(Refusal::Malformed),
            ),
            (
                "short",
                Signed {
                    hub: Some("sha256=abc"),
                    ..Signed::default()
                },
                Err(Refusal::Malformed),
            ),
            (
                "not hex",
                Signed {
                    hub: Some(&not_hex),
                    ..Signed::default()
                },
                Err(Refusal::Malformed),
            ),
            (
                "wrong",
                Signed {
                    hub: Some(&zeros),
                    ..Signed::default()
                },
                Err(Refusal::Mismatch),
            ),
            (
                "timestamped",
                Signed {
                    jobs: Some(&with_ts),
                    timestamp: Some(&ts),
                    ..Signed::default()
                },
                Ok(()),
            ),
            (
                "timestamp not signed",
                Signed {
                    jobs: Some(github),
                    timestamp: Some(&ts),
                    ..Signed::default()
                },
                Err(Refusal::Mismatch),
            ),
            (
                "replayed",
                Signed {
                    jobs: Some(&old_sig),
                    timestamp: Some(&old),
                    ..Signed::default()
                },
                Err(Refusal::Stale(301)),
            ),
            (
                "bad timestamp",
                Signed {
                    jobs: Some(&with_ts),
                    timestamp: Some("yesterday"),
                    ..Signed::default()
                },
                Err(Refusal::BadTimestamp),
            ),
        ];
        for (name, signed, want) in cases {
            assert_eq!(
                verify(secret, body, signed, Scheme::Any, now()),
                want,
                "{name}"
            );
        }
        assert_eq!(
            verify(
                b"another secret",
                body,
                Signed {
                    hub: Some(github),
                    ..Signed::default()
                },
                Scheme::Any,
                now()
            ),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn a_timestamped_job_refuses_a_replay_without_the_timestamp_header() {
        let secret = b"s3cret";
        let old = (now().as_second() - 3600).to_string();
        let body = b"{}";
        let captured = sign(secret, Some(&old), body);
        // The captured `TS.BODY` resent as the body, with the same signature and no header.
        let mut replayed_body = format!("{old}.").into_bytes();
        replayed_body.extend_from_slice(body);
        let replay = Signed {
            jobs: Some(&captured),
            ..Signed::default()
        };
        assert_eq!(
            verify(secret, &replayed_body, replay, Scheme::Any, now()),
            Ok(()),
            "a plain signature of `TS.BODY` is valid: only the job's scheme can refuse it"
        );
        assert_eq!(
            verify(secret, &replayed_body, replay, Scheme::Timestamped, now()),
            Err(Refusal::TimestampRequired)
        );
        let fresh = now().as_second().to_string();
        let signed = sign(secret, Some(&fresh), body);
        let timestamped = Signed {
            jobs: Some(&signed),
            timestamp: Some(&fresh),
            ..Signed::default()
        };
        assert_eq!(
            verify(secret, body, timestamped, Scheme::Timestamped, now()),
            Ok(())
        );
        let unsigned = Signed::default();
        assert_eq!(
            verify(secret, body, unsigned, Scheme::Timestamped, now()),
            Err(Refusal::Unsigned)
        );
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_refills() {
        let mut limit = RateLimiter::new(60);
        for _ in 0..60 {
            assert_eq!(limit.take("a", now()), Ok(()));
        }
        assert_eq!(limit.take("a", now()), Err(1));
        assert_eq!(limit.take("b", now()), Ok(()), "buckets are per job");
        let later = now() + SignedDuration::from_secs(1);
        assert_eq!(limit.take("a", later), Ok(()));
        assert_eq!(limit.take("a", later), Err(1));
    }
}
