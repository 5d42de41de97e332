//! The API's connection limits: at most `max` connections, at most `per_ip` from one address,
//! so clients can never take the descriptors that runs and the ledger need.
//!
//! A connection over a cap does not wait in the kernel's backlog (where the daemon would
//! keep failing `accept` with EMFILE): it takes the place of the oldest *idle* connection of
//! the same address (or, at the global cap, of any address), one that is waiting for a
//! request, sent or not. A request in flight is never cut; when every connection is busy, the
//! new one is answered 503 and closed at once. So an idle flood only churns its own
//! connections, and a health check (which sends its request at once) still gets through.
//!
//! It does not rate-limit requests, and it counts only the API's sockets: the descriptors
//! left ([`FD_RESERVE`] at least) are for runs, the ledger, watchers and notifications.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::sync::Notify;

/// Descriptors kept out of the API's reach at least: runs (two pipes and a pidfd each), the
/// ledger's connections (database, WAL and shared memory each), watchers, notifications.
pub const FD_RESERVE: u64 = 256;
/// What the ledger, watchers and notifications take besides runs ([`reserve_for`]).
const FD_BASE: u64 = 64;

/// The descriptors to keep out of the API's reach for a daemon of `runs` places: three per
/// run and `FD_BASE` (64), [`FD_RESERVE`] at least.
pub fn reserve_for(runs: usize) -> u64 {
    let runs = u64::try_from(runs).unwrap_or(u64::MAX);
    FD_BASE
        .saturating_add(runs.saturating_mul(3))
        .max(FD_RESERVE)
}

/// The default cap never exceeds this, however high the descriptor limit: idle connections
/// cost memory too.
const MAX_CONNECTIONS_CEILING: u64 = 4096;

/// The caps, as `jobctl serve` was told or derived from the descriptor limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max: usize,
    pub per_ip: usize,
}

impl Limits {
    /// Defaults for a process allowed `nofile` descriptors: all but `reserve` (see
    /// [`reserve_for`]; at least half), at most 4,096; a quarter of that per address.
    pub fn keeping(nofile: u64, reserve: u64) -> Limits {
        let max = nofile
            .saturating_sub(reserve)
            .max(nofile / 2)
            .clamp(1, MAX_CONNECTIONS_CEILING);
        let max = usize::try_from(max).unwrap_or(1);
        Limits {
            max,
            per_ip: (max / 4).max(1),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the kernel's `nr_open` at most) and
/// returns the soft limit now in force. A daemon started with the common 1,024 has room for
/// many more runs and clients when its hard limit allows.
#[allow(clippy::useless_conversion)] // `rlim_t` is not `u64` on every target.
pub fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            // Runs get the limit the daemon was started with, not the raised one: programs
            // that close every descriptor up to the limit, or use select(), expect it.
            crate::runner::keep_descriptor_limit_for_runs(u64::from(limit.rlim_cur));
            let mut raised = limit;
            raised.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                // An unlimited hard limit is refused above `nr_open`: try that instead.
                raised.rlim_cur = nr_open().min(limit.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                    return u64::from(limit.rlim_cur);
                }
            }
            return u64::from(raised.rlim_cur);
        }
    }
    u64::from(limit.rlim_cur)
}

fn nr_open() -> libc::rlim_t {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// The open connections, oldest first.
pub(crate) struct Registry {
    limits: Limits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: BTreeMap<u64, (IpAddr, Arc<Conn>)>,
    per_ip: HashMap<IpAddr, usize>,
    /// When the caps were last reported, so a flood logs once a minute, not per connection.
    warned: Option<std::time::Instant>,
}

/// One connection's state, shared by its task and the registry.
#[derive(Default)]
pub(crate) struct Conn {
    /// Requests in flight, until their response bodies are written.
    busy: AtomicUsize,
    /// Told when the connection must give its place to a newer one.
    pub(crate) evicted: Notify,
}

impl Conn {
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }
}

/// A connection's place; dropping it (when the connection ends) frees it.
pub(crate) struct Ticket {
    id: u64,
    pub(crate) conn: Arc<Conn>,
    /// Whether an idle connection gave way for this one.
    pub(crate) evicted_another: bool,
    registry: Arc<Registry>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if let Some((ip, _)) = inner.open.remove(&self.id) {
            inner.release(ip);
        }
    }
}

impl Inner {
    fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Evicts the oldest idle connection (of `ip` only, if given); false if there is none.
    fn evict_oldest_idle(&mut self, ip: Option<IpAddr>) -> bool {
        let found = self
            .open
            .iter()
            .find(|(_, (at, conn))| ip.is_none_or(|ip| ip == *at) && !conn.is_busy())
            .map(|(id, _)| *id);
        let Some((at, conn)) = found.and_then(|id| self.open.remove(&id)) else {
            return false;
        };
        self.release(at);
        conn.evicted.notify_one();
        true
    }
}

impl Registry {
    pub(crate) fn new(limits: Limits) -> Arc<Registry> {
        Arc::new(Registry {
            limits: Limits {
                max: limits.max.max(1),
                per_ip: limits.per_ip.max(1),
            },
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for a new connection from `ip`, evicting an idle one if a cap is reached;
    /// `None` when every connection that could give way is busy.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let mut inner = self.lock();
        let from_ip = inner.per_ip.get(&ip).copied().unwrap_or(0);
        let over = if from_ip >= self.limits.per_ip {
            Some(Some(ip))
        } else if inner.open.len() >= self.limits.max {
            Some(None)
        } else {
            None
        };
        let evicted_another = over.is_some();
        if let Some(scope) = over {
            let now = std::time::Instant::now();
            if inner
                .warned
                .is_none_or(|at| now.duration_since(at).as_secs() >= 60)
            {
                inner.warned = Some(now);
                tracing::warn!(
                    connections = inner.open.len(),
                    max_connections = self.limits.max,
                    max_connections_per_ip = self.limits.per_ip,
                    %ip,
                    "the API is at its connection cap: idle connections give way to new ones"
                );
            }
            if !inner.evict_oldest_idle(scope) {
                return None;
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let conn = Arc::new(Conn::default());
        inner.open.insert(id, (ip, conn.clone()));
        *inner.per_ip.entry(ip).or_default() += 1;
        Some(Ticket {
            id,
            conn,
            evicted_another,
            registry: self.clone(),
        })
    }
}

/// Marks a connection busy from a request's start until its response body is dropped.
pub(crate) struct Busy(Arc<Conn>);

impl Busy {
    pub(crate) fn enter(conn: &Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy until it is written (or dropped), so a
/// long answer or a followed log is never taken for an idle connection.
pub(crate) struct BusyBody {
    pub(crate) body: axum::body::Body,
    pub(crate) _busy: Busy,
}

impl Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request's body that tells whether it was read to its end. A request answered before its
/// body was read (refused for its token, its path or its size) is answered with `connection:
/// close`: hyper keeps such a connection only when the rest of the body happens to have
/// arrived already, and otherwise closes it after the answer without saying so, so a client
/// that sends its next request on it gets no answer at all.
pub(crate) struct ReadBody {
    body: hyper::body::Incoming,
    read: Arc<AtomicBool>,
}

impl ReadBody {
    /// The body, and the flag set once it has been read to its end (at once if it is empty).
    pub(crate) fn new(body: hyper::body::Incoming) -> (ReadBody, Arc<AtomicBool>) {
        let read = Arc::new(AtomicBool::new(body.is_end_stream()));
        (
            ReadBody {
                body,
                read: read.clone(),
            },
            read,
        )
    }
}

impl Body for ReadBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.body.is_end_stream() {
            this.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What a connection refused at the cap reads before it is closed.
pub(crate) const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 101\r\n\
\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"the server is at its connection limit; retry in a moment\"}}";

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    impl Limits {
        /// The defaults for up to 64 places, which keep [`FD_RESERVE`].
        fn for_descriptors(nofile: u64) -> Limits {
            Limits::keeping(nofile, FD_RESERVE)
        }
    }

    #[test]
    fn defaults_keep_a_reserve_of_descriptors() {
        let cases = [
            (1024, 768, 192),
            (400, 200, 50),
            (65536, 4096, 1024),
            (16, 8, 2),
        ];
        for (nofile, max, per_ip) in cases {
            assert_eq!(
                Limits::for_descriptors(nofile),
                Limits { max, per_ip },
                "{nofile}"
            );
        }
    }

    #[test]
    fn the_reserve_grows_with_the_places_for_runs() {
        let cases = [
            // (places, reserve, connections at 20,000 descriptors, at 1,024)
            (1, 256, 4096, 768),
            (64, 256, 4096, 768),
            (256, 832, 4096, 512),
            (1000, 3064, 4096, 512),
        ];
        for (runs, reserve, at_20000, at_1024) in cases {
            assert_eq!(reserve_for(runs), reserve, "{runs}");
            assert_eq!(Limits::keeping(20_000, reserve).max, at_20000, "{runs}");
            assert_eq!(Limits::keeping(1024, reserve).max, at_1024, "{runs}");
        }
    }

    #[test]
    fn the_cap_evicts_the_oldest_idle_connection_never_a_busy_one() {
        let registry = Registry::new(Limits { max: 3, per_ip: 2 });
        let a1 = registry.admit(ip(1)).unwrap();
        let a2 = registry.admit(ip(1)).unwrap();
        // Over the per-address cap: a1, the oldest of that address, gives way.
        let a3 = registry.admit(ip(1)).unwrap();
        assert!(!registry.lock().open.contains_key(&a1.id));
        let _busy = Busy::enter(&a2.conn);
        let b1 = registry.admit(ip(2)).unwrap();
        // The global cap: a2 is busy, so a3 (the oldest idle) gives way.
        let _b2 = registry.admit(ip(2)).unwrap();
        assert!(!registry.lock().open.contains_key(&a3.id));
        assert!(registry.lock().open.contains_key(&a2.id));
        // Everything busy: the newcomer is refused.
        let _busy_b1 = Busy::enter(&b1.conn);
        let b2_id = registry.lock().open.keys().last().copied().unwrap();
        let b2_conn = registry.lock().open[&b2_id].1.clone();
        let _busy_b2 = Busy::enter(&b2_conn);
        assert!(registry.admit(ip(3)).is_none());
        drop(a2);
        assert!(registry.admit(ip(3)).is_some());
    }

    #[test]
    fn the_refusal_is_the_api_error_shape_with_its_length() {
        let text = std::str::from_utf8(BUSY_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
    }
}
