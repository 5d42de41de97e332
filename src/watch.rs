//! The file-system watches of `jobctl serve` and `jobctl logs -f`: the jobs folder (followed
//! through a replacement), and the ledger's wake file. This edge only turns events into
//! [`DirChange`]s and calls; what to read again is the daemon's business.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};

/// Watches the jobs folder recursively; each change event sends one `()` (the serve loop
/// debounces them).
fn watch_dir(
    dir: &Path,
    events: tokio::sync::mpsc::UnboundedSender<DirChange>,
    lost: Arc<AtomicBool>,
) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let root = dir.to_path_buf();
    let base = root.clone();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        match result {
            // Reading the files (the reconcile itself) makes access events: only changes count.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
            Ok(event) => {
                let mut paths = Vec::new();
                let mut rescan = event.need_rescan();
                if matches!(event.kind, notify::EventKind::Remove(_))
                    && event.paths.iter().any(|p| p == &base)
                {
                    // The watched folder itself is gone: this watch sees nothing more.
                    lost.store(true, Ordering::SeqCst);
                    rescan = true;
                }
                for path in &event.paths {
                    match path.strip_prefix(&base) {
                        Ok(relative) => paths.push(
                            relative
                                .components()
                                .map(|c| c.as_os_str().to_string_lossy())
                                .collect::<Vec<_>>()
                                .join("/"),
                        ),
                        Err(_) => rescan = true,
                    }
                }
                let _ = events.send(DirChange { paths, rescan });
            }
            Err(e) => {
                tracing::warn!("watching the jobs folder: {e}");
                let _ = events.send(DirChange {
                    paths: Vec::new(),
                    rescan: true,
                });
            }
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    Ok(watcher)
}

/// The watches on the jobs folder: the folder as it resolves now (recursive), and its parent
/// (for the folder, or the link to it, being replaced). When the path resolves to another
/// folder than the one watched, the watch moves there and everything is read again.
pub struct DirWatch {
    dir: PathBuf,
    events: tokio::sync::mpsc::UnboundedSender<DirChange>,
    /// The folder watched: its canonical path and identity.
    watched: Option<(PathBuf, Identity)>,
    tree: Option<notify::RecommendedWatcher>,
    /// Set by the tree's watch when the watched folder itself is deleted: a folder re-created
    /// at once may get the same inode number back, so identity alone cannot tell.
    lost: Arc<AtomicBool>,
    _parent: Option<NameWatch>,
}

impl DirWatch {
    pub fn new(
        dir: &Path,
        events: tokio::sync::mpsc::UnboundedSender<DirChange>,
    ) -> Result<DirWatch> {
        let parent = watch_parent(dir, events.clone())
            .map_err(|e| tracing::warn!("watching the jobs folder's parent: {e:#}"))
            .ok();
        let mut watch = DirWatch {
            dir: dir.to_path_buf(),
            events,
            watched: None,
            tree: None,
            lost: Arc::new(AtomicBool::new(false)),
            _parent: parent,
        };
        let identity =
            folder_identity(dir).with_context(|| format!("resolving {}", dir.display()))?;
        watch.tree = Some(watch_dir(
            &identity.0,
            watch.events.clone(),
            watch.lost.clone(),
        )?);
        watch.watched = Some(identity);
        Ok(watch)
    }

    /// Moves the watch when the path now names another folder (or none, or one again);
    /// returns whether it did, so the caller reads everything again.
    pub fn follow(&mut self) -> bool {
        let now = folder_identity(&self.dir).ok();
        if now == self.watched && !self.lost.swap(false, Ordering::SeqCst) {
            return false;
        }
        self.tree = None;
        self.lost.store(false, Ordering::SeqCst);
        match &now {
            Some((root, _)) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    now = %root.display(),
                    "the jobs folder was replaced; watching the new one and reading it all"
                );
                match watch_dir(root, self.events.clone(), self.lost.clone()) {
                    Ok(w) => self.tree = Some(w),
                    Err(e) => tracing::error!("watching the jobs folder: {e:#}"),
                }
            }
            None => tracing::warn!(
                dir = %self.dir.display(),
                "the jobs folder is gone; its jobs are kept until it is back"
            ),
        }
        self.watched = now;
        true
    }
}

/// A folder's device, inode and birth time (where the file system keeps one).
type Identity = (u64, u64, Option<std::time::SystemTime>);

/// A folder's canonical path and identity, through any symlinks.
fn folder_identity(dir: &Path) -> std::io::Result<(PathBuf, Identity)> {
    use std::os::unix::fs::MetadataExt as _;
    let root = std::fs::canonicalize(dir)?;
    let meta = std::fs::metadata(&root)?;
    Ok((root, (meta.dev(), meta.ino(), meta.created().ok())))
}

/// Watches the folder holding the jobs folder for changes to the jobs folder's own entry (a
/// rename over it, a deletion, a symlink switched, its mode changed): each sends a rescan.
///
/// Only those events reach the watch: a ledger kept beside the jobs folder (`--ledger
/// ledger.db`) is written at every commit, and with notify's fixed mask each of its writes
/// woke a thread that then ignored it (issue 14).
fn watch_parent(
    dir: &Path,
    events: tokio::sync::mpsc::UnboundedSender<DirChange>,
) -> Result<NameWatch> {
    use inotify::WatchMask;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir.file_name().unwrap_or_default().to_os_string();
    let mask = WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB;
    watch_name(parent, name, mask, "jobs-dir-parent", move || {
        let _ = events.send(DirChange {
            paths: Vec::new(),
            rescan: true,
        });
    })
}

/// Paths (relative to the jobs folder) a file event named; `rescan` when only a full walk can
/// tell what changed (the watcher's queue overflowed, a path outside the folder).
#[derive(Debug, Default)]
pub struct DirChange {
    pub paths: Vec<String>,
    pub rescan: bool,
}

/// A watch of one name in a folder, with a thread of its own that calls back when an event of
/// the watch's mask names it; stops when dropped. The daemon's watch of the wake file that
/// other processes write after they commit (see `Ledger::wake_daemon`) is one.
///
/// The wake file's watch is on the ledger's folder (a wake file that is removed and written again is
/// still seen), with a mask of the events a wake makes (created, closed after writing,
/// touched, moved in) but not `IN_MODIFY`: the daemon's own writes to the ledger and its WAL
/// are then filtered by the kernel instead of waking a thread for every commit (issue 14:
/// with notify's fixed mask, a burst of 200 runs woke its thread about 600 times).
pub struct NameWatch {
    watches: inotify::Watches,
    wd: inotify::WatchDescriptor,
    stop: Arc<AtomicBool>,
}

impl Drop for NameWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Removing the watch queues `IN_IGNORED`, which wakes the reading thread to stop.
        let _ = self.watches.remove(self.wd.clone());
    }
}

/// Calls `changed` on a thread of its own each time the wake file of `ledger` is written,
/// touched, created or moved in (and when the kernel's event queue overflowed).
///
/// # Errors
///
/// When inotify cannot be started or the folder watched.
pub fn watch_wake(ledger: &Path, changed: impl Fn() + Send + 'static) -> Result<NameWatch> {
    use inotify::WatchMask;
    let folder = ledger
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut name = ledger.file_name().unwrap_or_default().to_os_string();
    name.push(".wake");
    let mask = WatchMask::CREATE | WatchMask::CLOSE_WRITE | WatchMask::ATTRIB | WatchMask::MOVED_TO;
    watch_name(folder, name, mask, "ledger-wake", changed)
}

/// Calls `changed` on a thread named `thread` each time an event of `mask` in `folder` names
/// `name`, and when the kernel's event queue overflowed (what was missed is unknown).
fn watch_name(
    folder: &Path,
    name: std::ffi::OsString,
    mask: inotify::WatchMask,
    thread: &str,
    changed: impl Fn() + Send + 'static,
) -> Result<NameWatch> {
    use inotify::{EventMask, Inotify};
    let mut inotify = Inotify::init().context("starting inotify")?;
    let mut watches = inotify.watches();
    let wd = watches
        .add(folder, mask)
        .with_context(|| format!("watching {}", folder.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let what = folder.display().to_string();
    std::thread::Builder::new()
        .name(thread.to_string())
        .spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let events = match inotify.read_events_blocking(&mut buffer) {
                    Ok(events) => events,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!("watching {what}: {e}");
                        return;
                    }
                };
                let named = events.into_iter().any(|event| {
                    event.mask.contains(EventMask::Q_OVERFLOW)
                        || event.name.is_some_and(|n| n == name.as_os_str())
                });
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if named {
                    changed();
                }
            }
        })
        .context("starting a watch thread")?;
    Ok(NameWatch { watches, wd, stop })
}

/// Watches the ledger's files for any change (each commit of the daemon's writes to them):
/// what `jobctl logs -f` and `runs -w` follow. The daemon watches only the wake file
/// ([`watch_wake`]).
pub fn watch_ledger(
    ledger: &Path,
    changed: impl Fn() + Send + 'static,
) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let folder = ledger
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let ledger_name = ledger
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result
            && !matches!(event.kind, notify::EventKind::Access(_))
            && event.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(ledger_name.as_str()))
            })
        {
            changed();
        }
    })
    .context("starting the ledger watcher")?;
    watcher
        .watch(&folder, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", folder.display()))?;
    Ok(watcher)
}
