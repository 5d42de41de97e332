//! The daemon, `jobctl serve`: reconciles the ledger with `jobs.d`, decides slots, runs jobs.
//!
//! Three loops on one tokio runtime, sharing one ledger connection:
//! - the *reconciler* applies valid changes in `jobs.d` (at start, on a debounced file change,
//!   on SIGHUP), keeping jobs whose files are broken at their last good revision;
//! - the *scheduler* sleeps until the next slot of any job (or until woken), records each due
//!   slot with [`slots::decide`](crate::slots::decide) and moves the job's cursor, in one transaction;
//! - the *executor* claims pending runs (up to `max_concurrent_runs`) and runs each with
//!   [`executor::run_and_record`](crate::executor::run_and_record).
//!
//! SIGHUP also re-reads the API's TLS certificate and key when it serves HTTPS
//! ([`crate::tls::ServerCert::reload`]): a pair that cannot be used is logged and the current
//! one kept.
//!
//! The scheduler never starts a process and the executor never decides a slot: the ledger is
//! the hand-off, so a crash between the two loses nothing. Other processes (`jobctl trigger`,
//! `pause`, `run cancel`, `apply`) commit to the ledger and then write `<ledger>.wake`; the
//! daemon watches that file (inotify) and checks `PRAGMA data_version`, so it learns of their
//! commits within milliseconds without polling. A once-a-minute look covers lost events.

mod cluster;
mod execute;
mod follow;
mod reconcile;
mod retention;
mod schedule;
mod shutdown;
mod start;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use jiff::Timestamp;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::config::{DaemonConfig, ServerConfig};
use crate::executor::{Room, Shared};
use crate::handle::Problems;
use crate::runner::Stop;
use crate::source;
use crate::spec::{self, Defaults};
use crate::watch::DirChange;

pub use start::serve;

/// How long the jobs folder must be quiet before a reconcile (an editor's save, a `git
/// checkout`: one reconcile).
pub(super) const DEBOUNCE: StdDuration = StdDuration::from_millis(50);
/// The longest a reconcile waits for the folder to become quiet.
pub(super) const DEBOUNCE_MAX: StdDuration = StdDuration::from_secs(1);
/// How often retention runs (and once at start).
pub(super) const PRUNE_EVERY: StdDuration = StdDuration::from_secs(3600);
/// How often the daemon checks the ledger for other processes' writes without being told.
pub(super) const BACKSTOP: StdDuration = StdDuration::from_secs(60);
/// How often a daemon on PostgreSQL looks for runs to claim without being notified.
pub(super) const PG_POLL: StdDuration = StdDuration::from_secs(5);
/// The longest the scheduler sleeps without looking at the wall clock.
pub(super) const CLOCK_LOOK: StdDuration = StdDuration::from_secs(60);
/// How often the daemon checks that the jobs folder is still the one it watches.
pub(super) const IDENTITY_CHECK: StdDuration = StdDuration::from_secs(2);
/// How often a node checks how long ago its heartbeat was last recorded (the self-fence).
pub(super) const FENCE_CHECK: StdDuration = StdDuration::from_secs(1);
/// How often the daemon looks for runs whose supervisor is gone.
pub(super) const ORPHAN_CHECK: StdDuration = StdDuration::from_secs(2);
/// Runs deleted per retention transaction: small, so a fire never waits long behind it.
pub(super) const PRUNE_BATCH: usize = 200;
/// How often shutdown says which runs it still waits for.
pub(super) const SHUTDOWN_REPORT_EVERY: StdDuration = StdDuration::from_secs(5);

/// Everything `jobctl serve` needs to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// The jobs folder (with `git`: the applied commit's, `WORKDIR/current/PATH`).
    pub dir: PathBuf,
    /// The repository followed instead of a folder on disk (`[git]`), its work directory set.
    pub git: Option<crate::config::GitConfig>,
    pub ledger: crate::ledger::Location,
    /// How the daemon and its API open the ledger.
    pub open: crate::ledger::OpenOptions,
    pub defaults: Defaults,
    pub daemon: DaemonConfig,
    pub server: ServerConfig,
    /// The CA, mail server and public URL notifications use.
    pub notify: crate::config::NotifyConfig,
    pub tokens: crate::api::auth::Tokens,
    /// Serve the API with no tokens on a non-loopback address.
    pub insecure: bool,
    pub clock: Clock,
}

/// The daemon's state shared by its loops.
struct Daemon {
    shared: Arc<Shared>,
    options: Options,
    /// The git repository followed instead of the folder (`[git]`).
    git: Option<follow::Follower>,
    /// This start's incarnation: the epoch the runs it claims carry, which fences their ends.
    epoch: i64,
    /// The leader's term while this node leads, else 0.
    term: std::sync::atomic::AtomicI64,
    /// PostgreSQL: a connection of its own for heartbeats and the lease.
    liveness: Option<Mutex<crate::ledger::Ledger>>,
    /// When the last heartbeat that was recorded was sent.
    last_beat: Mutex<std::time::Instant>,
    /// Set while this node, having lost the ledger, has stopped its runs and claims none.
    fenced: AtomicBool,
    /// Set while this machine's clock is more than a second off the database's (logged once).
    skewed: AtomicBool,
    /// The leader this follower last heard of, and its term (to log a change once).
    leader: Mutex<Option<(String, i64)>>,
    me: (i64, i64),
    wake_scheduler: Notify,
    wake_executor: Notify,
    /// Set unless the executor's last turn knew when the next pending run is due: it saw no
    /// free place (and so did not look), or could not read it. A run's end wakes the executor
    /// only then, or when it queued a retry: otherwise its own transaction has claimed every
    /// pending run that could start (`Claim::ReleasedFirst`) and the executor's timer holds.
    executor_blind: AtomicBool,
    /// Set when the jobs or pauses in the ledger changed: the scheduler reloads them.
    reload: AtomicBool,
    stopping: AtomicBool,
    /// The places for runs (`max_concurrent_runs`), shared with the executor's claims.
    room: Arc<Room>,
    /// The ledger's `data_version` when last looked at.
    seen_version: std::sync::atomic::AtomicI64,
    idle: Notify,
    /// Stop switches of the runs this daemon is running.
    stops: Mutex<Stops>,
    /// The jobs folder's errors as last reported (so each set is logged once, not at every
    /// reconcile), published for the API's [`crate::handle::Handle`].
    problems: watch::Sender<Option<Problems>>,
    parse_cache: Mutex<HashMap<String, CachedParse>>,
    /// The jobs folder as last read, so a change re-reads only the files it names.
    last_scan: Mutex<Option<source::Scan>>,
    /// Asks the serve loop for a reconcile (a ledger change may settle a file's error: the
    /// API job whose name it took was deleted).
    dir_events: tokio::sync::mpsc::UnboundedSender<DirChange>,
    /// Set (with the reason) when another daemon took the lease; the serve loop, woken by
    /// `lease_lost_signal`, then shuts down and `serve` returns the reason as its error.
    lease_lost: Mutex<Option<String>>,
    lease_lost_signal: Notify,
    /// Applies that failed in a row (a full disk): the next is tried after a longer pause.
    apply_failures: std::sync::atomic::AtomicU32,
    /// Whether a retry of a failed apply is waiting.
    apply_retry: Arc<AtomicBool>,
}

/// The stop switches of this daemon's runs. A run is claimed (and `running` in the ledger)
/// before its task registers its switch: a cancel seen in between is kept in `early` and
/// applied when the switch is registered; so is a shutdown's stop (`all`).
#[derive(Default)]
struct Stops {
    running: HashMap<i64, watch::Sender<Option<Stop>>>,
    early: std::collections::HashSet<i64>,
    all: Option<Stop>,
}

/// A job file's last parse, reused while its bytes are unchanged.
struct CachedParse {
    bytes: Vec<u8>,
    parsed: spec::Parsed,
    hash: Option<String>,
}

impl Daemon {
    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Another daemon took the lease: stop firing and claiming now, and have the serve loop
    /// shut down in order (never `process::exit` here: runs and notifications would be left
    /// behind).
    fn lose_lease(&self, why: String) {
        tracing::error!("{why}; stopping");
        self.stopping.store(true, Ordering::SeqCst);
        self.room.close();
        *self
            .lease_lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
        // A permit is kept if the serve loop is not waiting right now.
        self.lease_lost_signal.notify_one();
        self.wake_scheduler.notify_one();
        self.wake_executor.notify_one();
    }
}
