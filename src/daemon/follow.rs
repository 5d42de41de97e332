//! Following a git repository (`[git]`, `--git-url`): fetch on an interval and at a push
//! webhook, and apply whole commits only.
//!
//! The leader fetches the branch into its mirror ([`crate::git::remote::Mirror`]). A new
//! commit is checked out into the staged tree, its jobs folder read (only the files git says
//! changed, the rest from the last read) and checked as `jobctl validate` would. A commit with
//! any error is held back: nothing of it is applied, every job keeps its revision, and the
//! commit and its errors are reported (status, `GET /v1/status`, the `jobs_git_commit_held`
//! and `jobs_definition_errors` metrics, the log, a daemon event) until the branch moves on.
//! A valid commit is applied in one transaction that records it, and the live tree is
//! switched to it. A fetch that fails is reported and retried, 1 s doubling up to the interval.

use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use super::Daemon;
use crate::api::wire::{GitView, HeldCommit};
use crate::git::remote::{Mirror, Tree};
use crate::ledger::{GitInfo, stamp};
use crate::{apply, diag, source};

/// The repository the daemon follows, and what it last did.
pub(super) struct Follower {
    pub(super) mirror: Mirror,
    pub(super) interval: StdDuration,
    /// Wakes the follow loop for a fetch now (a push webhook, a new leader, SIGHUP).
    pub(super) wake: tokio::sync::Notify,
    /// Held for a whole sync: one at a time.
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The commit whose jobs are applied (its tree is `current`).
    applied: Option<String>,
    /// The last commit read, and its files: the next read takes only what changed since.
    scan: Option<(String, source::Scan)>,
    /// A commit held back; not read again until the branch moves.
    held: Option<String>,
    /// Fetches failed in a row.
    failures: u32,
    /// What status shows; recorded in the ledger (`daemon_status` key `git`).
    view: GitView,
}

/// What a sync did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Synced {
    /// Not this node's to do (it follows, or `--no-apply`).
    Skipped,
    FetchFailed {
        failures: u32,
    },
    UpToDate,
    Held,
    Applied,
    /// The ledger refused the write; the apply's retry takes over.
    Failed,
}

impl Follower {
    pub(super) fn new(mirror: Mirror, interval: StdDuration) -> Follower {
        let remote = mirror.remote();
        let view = GitView {
            url: crate::git::remote::redact(&remote.url),
            branch: remote.branch.clone(),
            path: remote.path.clone(),
            ..GitView::default()
        };
        let applied = mirror.current().map(|(_, commit)| commit);
        Follower {
            mirror,
            interval,
            wake: tokio::sync::Notify::new(),
            state: std::sync::Mutex::new(State {
                applied,
                view,
                ..State::default()
            }),
        }
    }

    /// How long until the next fetch: the interval, or after failed fetches 1 s doubling up
    /// to it.
    fn next_wait(&self) -> StdDuration {
        let failures = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .failures;
        if failures == 0 {
            return self.interval;
        }
        StdDuration::from_secs(1 << (failures - 1).min(10)).min(self.interval)
    }

    /// The branch this follower applies.
    pub(super) fn branch(&self) -> &str {
        &self.mirror.remote().branch
    }
}

impl Daemon {
    /// The follow loop: a sync every interval, or when woken; after a failed fetch, sooner.
    pub(super) async fn follow_git(self: std::sync::Arc<Self>) {
        let Some(follower) = &self.git else { return };
        loop {
            // After failed fetches (the start's included), sooner: 1 s doubling.
            let wait = follower.next_wait();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = follower.wake.notified() => {}
            }
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let d = self.clone();
            let _ = tokio::task::spawn_blocking(move || d.sync_git("a fetch")).await;
        }
    }

    /// Fetches the branch and applies its newest commit if it is new and valid.
    pub(super) fn sync_git(&self, why: &str) -> Synced {
        let Some(follower) = &self.git else {
            return Synced::Skipped;
        };
        let mut state = follower
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(term) = self.term() else {
            tracing::debug!("{why}: not fetched, this node follows");
            return Synced::Skipped;
        };
        if !self.options.daemon.apply {
            return Synced::Skipped;
        }
        let started = std::time::Instant::now();
        let now = self.now();
        state.view.last_fetch_at = Some(stamp(now));
        let metrics = &self.shared.metrics;
        let fetching = std::time::Instant::now();
        let fetched = follower.mirror.fetch();
        tracing::debug!(
            fetch_ms = fetching.elapsed().as_millis() as u64,
            "git fetch"
        );
        let head = match fetched {
            Ok(head) => head,
            Err(e) => {
                state.failures += 1;
                metrics.git_fetch_failures.inc();
                let message = e.to_string();
                let new = state.view.fetch_error.as_deref() != Some(message.as_str());
                // Recorded before it is logged: whoever reads the log finds it in status.
                state.view.fetch_error = Some(message.clone());
                self.record_git(&state.view);
                if new {
                    tracing::error!(
                        url = %state.view.url,
                        branch = %follower.branch(),
                        "fetching the jobs repository: {message}; the applied jobs keep running, and the fetch is tried again"
                    );
                    let _ = self
                        .shared
                        .ledger()
                        .daemon_event(now, "git_fetch_failed", &message);
                }
                return Synced::FetchFailed {
                    failures: state.failures,
                };
            }
        };
        if state.failures > 0 {
            tracing::info!(url = %state.view.url, "the jobs repository can be fetched again");
        }
        state.failures = 0;
        state.view.fetch_error = None;
        state.view.last_fetch_ok_at = Some(stamp(now));
        metrics.git_last_fetch.set(now.as_second());
        state.view.remote_commit = Some(head.clone());
        let again = why == "SIGHUP" || why == "start";
        if state.applied.as_deref() == Some(head.as_str()) && !again {
            state.view.behind = false;
            self.record_git(&state.view);
            // A checkout that failed after its commit was applied is tried again here, so
            // runs get the applied commit's files.
            let mirror = &follower.mirror;
            let live = mirror.current();
            if live.as_ref().is_none_or(|(_, commit)| *commit != head) {
                let tree = live.map_or(Tree::A, |(tree, _)| tree.other());
                let switched = mirror.stage(tree, &head).and_then(|_| mirror.publish(tree));
                if let Err(e) = switched {
                    tracing::error!(commit = %head, "switching runs to the commit's files: {e}");
                }
            }
            return Synced::UpToDate;
        }
        if state.held.as_deref() == Some(head.as_str()) && !again {
            self.record_git(&state.view);
            return Synced::Held;
        }
        let synced = self.apply_commit(follower, &mut state, &head, term, why);
        tracing::debug!(
            commit = %head,
            took_ms = started.elapsed().as_millis() as u64,
            "git sync: {synced:?}"
        );
        synced
    }

    /// Reads, checks and applies one fetched commit.
    fn apply_commit(
        &self,
        follower: &Follower,
        state: &mut State,
        head: &str,
        term: i64,
        why: &str,
    ) -> Synced {
        let now = self.now();
        let started = std::time::Instant::now();
        let mirror = &follower.mirror;
        if let Some(old) = state.applied.clone()
            && old != head
            && !mirror.is_ancestor(&old, head)
        {
            let message = format!(
                "the history of branch {} was rewritten: the applied commit {} is not an ancestor of {}; applying {} as a new commit",
                follower.branch(),
                short(&old),
                short(head),
                short(head)
            );
            tracing::warn!("{message}");
            let _ = self
                .shared
                .ledger()
                .daemon_event(now, "git_rewritten", &message);
            state.view.rewritten =
                Some(format!("{}: {} → {}", stamp(now), short(&old), short(head)));
        }
        // The live tree, when it already has this commit (a re-apply at start or SIGHUP);
        // else the other tree, staged.
        let live = mirror.current();
        let tree = match &live {
            Some((tree, commit)) if commit == head => *tree,
            Some((tree, _)) => tree.other(),
            None => Tree::A,
        };
        let mut previous = state.scan.take();
        let path = mirror.remote().path.clone();
        let shown = |relative: &str| shown_path(&path, relative);
        // The files git says changed since the last commit read, read from the mirror's
        // objects: the tree is then checked out while the commit is checked and applied.
        let fetched = previous.as_ref().and_then(|(old, _)| {
            let paths = mirror.changed(old, head)?;
            let blobs = mirror.read_files(head, &paths).ok()?;
            Some((paths, blobs))
        });
        let incremental = match (fetched, previous.take()) {
            (Some((paths, blobs)), Some((_, last))) => {
                let mut by_path: std::collections::HashMap<String, Option<Vec<u8>>> =
                    paths.iter().cloned().zip(blobs).collect();
                let scan = source::rescan_with(
                    last,
                    &paths,
                    |relative| by_path.remove(relative).flatten().map(Ok),
                    shown,
                );
                // No file at all: the folder is gone from the commit, which the tree tells.
                (!scan.files.is_empty() || !scan.problems.is_empty()).then_some(scan)
            }
            (_, last) => {
                previous = last;
                None
            }
        };
        let read = started.elapsed();
        let Some(scan) = incremental else {
            let root = match mirror.stage(tree, head) {
                Ok(root) => root,
                Err(e) => return self.stage_failed(state, head, &e),
            };
            let scan = read_commit(&mirror.jobs_dir(&root), &path, previous, |old| {
                mirror.changed(old, head)
            });
            let Some(scan) = scan else {
                let problem = diag::Diagnostic::error(
                    path.clone(),
                    format!("the folder `{path}` is not in commit {}", short(head)),
                );
                return self.hold(follower, state, head, &[problem], &[], now);
            };
            let applied = self.check_and_apply(follower, state, head, (term, why), scan, started);
            return self.publish(follower, state, head, tree, applied, Ok(()), (why, started));
        };
        let (applied, staged) = std::thread::scope(|s| {
            let staging = s.spawn(|| mirror.stage(tree, head).map(drop));
            let applied = self.check_and_apply(follower, state, head, (term, why), scan, started);
            let staged = staging.join().unwrap_or_else(|_| {
                Err(crate::git::remote::GitError::Io(
                    "the checkout panicked".into(),
                ))
            });
            (applied, staged)
        });
        tracing::debug!(
            read_ms = read.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "git sync, files read from the commit"
        );
        self.publish(follower, state, head, tree, applied, staged, (why, started))
    }

    /// A checkout that failed: reported as the fetch's error, tried again at the next fetch.
    fn stage_failed(
        &self,
        state: &mut State,
        head: &str,
        e: &crate::git::remote::GitError,
    ) -> Synced {
        tracing::error!(commit = %head, "checking out the jobs repository: {e}");
        state.view.fetch_error = Some(e.to_string());
        self.record_git(&state.view);
        Synced::Failed
    }

    /// After an apply: the tree switched to the commit, the state recorded, then the apply
    /// logged (whoever reads the log finds it in status).
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        follower: &Follower,
        state: &mut State,
        head: &str,
        tree: Tree,
        applied: Result<apply::Outcome, Synced>,
        staged: Result<(), crate::git::remote::GitError>,
        (why, started): (&str, std::time::Instant),
    ) -> Synced {
        let outcome = match applied {
            Ok(outcome) => outcome,
            Err(synced) => return synced,
        };
        let now = self.now();
        match staged.and_then(|()| follower.mirror.publish(tree)) {
            Ok(()) => {}
            // The jobs are applied; runs keep the previous tree until a checkout works.
            Err(e) => {
                tracing::error!(commit = %head, "switching runs to the commit's files: {e}");
            }
        }
        self.report_problems(&[], &[]);
        self.shared.metrics.git_held.set(0);
        state.applied = Some(head.to_string());
        state.held = None;
        state.view.applied_commit = Some(head.to_string());
        state.view.applied_at = Some(stamp(now));
        state.view.held = None;
        state.view.behind = false;
        self.record_git(&state.view);
        self.applied(
            &format!("{why}, commit {}", short(head)),
            Ok(outcome),
            now,
            started,
        );
        Synced::Applied
    }

    /// Checks a commit's files and applies them, or holds the commit back.
    fn check_and_apply(
        &self,
        follower: &Follower,
        state: &mut State,
        head: &str,
        (term, why): (i64, &str),
        scan: source::Scan,
        started: std::time::Instant,
    ) -> Result<apply::Outcome, Synced> {
        let now = self.now();
        let path = &follower.mirror.remote().path;
        state.scan = Some((head.to_string(), scan));
        let scan = &state.scan.as_ref().expect("just set").1;
        let api_owned = match self.shared.ledger().api_owned() {
            Ok(names) => names,
            Err(e) => {
                tracing::error!("reading the ledger: {e}");
                return Err(Synced::Failed);
            }
        };
        let read = started.elapsed();
        let catalog = self.build_catalog(scan, &api_owned, now);
        let built = started.elapsed();
        let errors: Vec<diag::Diagnostic> = catalog
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        if !errors.is_empty() {
            let files = scan.files.clone();
            return Err(self.hold(follower, state, head, &errors, &files, now));
        }
        let git = GitInfo {
            commit: Some(head.to_string()),
            dirty: Some(false),
        };
        let result = {
            let mut ledger = self.shared.ledger();
            ledger.set_fence(Some(term));
            let result = apply::apply(&mut ledger, &catalog, now, &git, &Default::default());
            ledger.set_fence(None);
            result
        };
        tracing::debug!(
            read_ms = read.as_millis() as u64,
            catalog_ms = (built - read).as_millis() as u64,
            apply_ms = (started.elapsed() - built).as_millis() as u64,
            "git sync phases"
        );
        match result {
            Ok(outcome) => Ok(outcome),
            Err(apply::ApplyError::Ledger(e @ crate::ledger::LedgerError::LeaseLost { .. })) => {
                self.deposed(&e);
                Err(Synced::Skipped)
            }
            Err(apply::ApplyError::Plan(plan)) => {
                // Errors only the ledger can see (a name an API-owned job took meanwhile).
                let problems: Vec<diag::Diagnostic> = plan
                    .errors
                    .iter()
                    .map(|e| diag::Diagnostic::error(path.clone(), e.to_string()))
                    .collect();
                let files = scan.files.clone();
                Err(self.hold(follower, state, head, &problems, &files, now))
            }
            Err(e @ (apply::ApplyError::Ledger(_) | apply::ApplyError::Moved(_))) => {
                self.applied(why, Err(e), now, started);
                Err(Synced::Failed)
            }
        }
    }

    /// Holds a commit back: nothing of it is applied, and its errors are reported.
    fn hold(
        &self,
        follower: &Follower,
        state: &mut State,
        head: &str,
        errors: &[diag::Diagnostic],
        files: &[source::SourceFile],
        now: jiff::Timestamp,
    ) -> Synced {
        // Published for readiness, the metrics and `status` (files), rendered once.
        let rendered = self.report_problems(errors, files);
        let new = state.held.as_deref() != Some(head);
        self.shared.metrics.git_held.set(1);
        state.held = Some(head.to_string());
        state.view.held = Some(HeldCommit {
            commit: head.to_string(),
            at: state
                .view
                .held
                .as_ref()
                .filter(|h| h.commit == head)
                .map_or_else(|| stamp(now), |h| h.at.clone()),
            errors: errors.len() as u64,
            rendered: rendered.clone(),
        });
        state.view.behind = true;
        // Recorded before it is logged: whoever reads the log finds it in status.
        self.record_git(&state.view);
        if new {
            let kept = state
                .applied
                .as_deref()
                .map_or("their last applied revisions".to_string(), |c| {
                    format!("their revisions of commit {}", short(c))
                });
            tracing::error!(
                commit = %head,
                errors = errors.len(),
                "commit {} of branch {} is held back: {} error{} in its jobs folder; every job keeps {kept}",
                short(head),
                follower.branch(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
            );
            let _ = self.shared.ledger().daemon_event(
                now,
                "git_held",
                &format!("commit {head} held back:\n{rendered}"),
            );
        }
        Synced::Held
    }

    /// Records what status shows about the repository.
    fn record_git(&self, view: &GitView) {
        let text = serde_json::to_string(view).unwrap_or_default();
        if let Err(e) = self.shared.ledger().set_status("git", &text) {
            tracing::warn!("recording the repository's status: {e}");
        }
    }

    /// A signed push arrived: the leader fetches now. A follower that heard it from the API
    /// (`forward`) tells the leader through the ledger.
    pub(super) fn pushed(&self, forward: bool) {
        let Some(follower) = &self.git else { return };
        if self.leading() {
            follower.wake.notify_one();
        } else if forward {
            self.shared.ledger().tell_pushed();
        }
    }
}

/// The jobs folder of a checked-out commit, read: only the files that changed since the last
/// read commit (`changed` from it, when git can tell), else all of them. Paths are shown as
/// inside the repository (`jobs.d/backup.yaml`), whichever tree holds them. `None` when the
/// commit has no such folder.
fn read_commit(
    folder: &std::path::Path,
    path: &str,
    last: Option<(String, source::Scan)>,
    changed: impl FnOnce(&str) -> Option<Vec<String>>,
) -> Option<source::Scan> {
    if !folder.is_dir() {
        return None;
    }
    let shown = |relative: &str| {
        if path == "." {
            relative.to_string()
        } else {
            format!("{path}/{relative}")
        }
    };
    let prefix = folder.display().to_string();
    let incremental = last.and_then(|(commit, mut previous)| {
        let paths = changed(&commit)?;
        // The last read's paths as this tree's, which is what `rescan` compares.
        for file in &mut previous.files {
            file.display = folder.join(&file.relative).display().to_string();
        }
        for problem in &mut previous.problems {
            let inside = if path == "." {
                Some(problem.file.as_str())
            } else {
                problem.file.strip_prefix(&format!("{path}/"))
            };
            if let Some(relative) = inside {
                problem.file = folder.join(relative).display().to_string();
            }
        }
        source::rescan(folder, &previous, &paths)
    });
    let mut scan = match incremental {
        Some(scan) => scan,
        None => source::scan(folder).ok()?,
    };
    for file in &mut scan.files {
        file.display = shown(&file.relative);
    }
    for problem in &mut scan.problems {
        if let Some(rest) = problem.file.strip_prefix(&prefix) {
            problem.file = shown(rest.trim_start_matches('/'));
        }
    }
    Some(scan)
}

/// A path of the jobs folder as shown: inside the repository (`jobs.d/backup.yaml`).
fn shown_path(path: &str, relative: &str) -> String {
    if path == "." {
        relative.to_string()
    } else {
        format!("{path}/{relative}")
    }
}

/// A commit's short name, for messages.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
