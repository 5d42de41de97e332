//! Reconciling: the ledger made to match the valid files of the jobs folder, and the wake-ups
//! that tell the daemon another process (or the API) changed the ledger.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::{CachedParse, Daemon};
use crate::handle::Problems;
use crate::ledger::stamp;
use crate::runner::Stop;
use crate::spec;
use crate::watch::DirChange;
use crate::{apply, catalog, diag, source};

/// The longest pause before a failed apply is tried again.
const APPLY_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

impl Daemon {
    /// Makes the ledger match the valid files of the jobs folder, reading them all.
    pub(super) fn reconcile(&self, why: &str) {
        self.reconcile_changes(why, None);
    }

    /// Makes the ledger match the valid files of the jobs folder. With `changed` (paths
    /// relative to the folder), only those files are read again; the others come from the
    /// last scan.
    pub(super) fn reconcile_changes(&self, why: &str, changed: Option<Vec<String>>) {
        // Only the leader applies: nodes with different checkouts never fight. Its apply is
        // fenced by its term.
        let Some(term) = self.term() else {
            tracing::debug!("{why}: not applied, this node follows");
            return;
        };
        if !self.options.daemon.apply {
            tracing::debug!("{why}: not applied (--no-apply)");
            return;
        }
        if self.git.is_some() {
            // The folder is a commit's: its changes come from git, whole commits at a time.
            self.sync_git(why);
            return;
        }
        let started = std::time::Instant::now();
        let now = self.now();
        let Some(scan) = self.scan(changed) else {
            return;
        };
        let scanned = started.elapsed();
        let api_owned = match self.shared.ledger().api_owned() {
            Ok(names) => names,
            Err(e) => {
                tracing::error!("reading the ledger: {e}");
                return;
            }
        };
        let listed = started.elapsed();
        let mut catalog = self.build_catalog(&scan, &api_owned, now);
        let built = started.elapsed();

        // Files with errors: their jobs stay as they are in the ledger.
        let broken_files: HashSet<&str> = catalog
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.file.as_str())
            .collect();
        let keep: HashSet<String> = broken_files.iter().map(|f| stem(f).to_string()).collect();
        catalog.entries.retain(|e| {
            !broken_files.contains(e.file.as_str()) && !keep.contains(e.spec.name.as_str())
        });
        let errors: Vec<diag::Diagnostic> = catalog
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        self.report_problems(&errors, &scan.files);

        let git = crate::git::describe(&self.options.dir);
        let described = started.elapsed();
        let result = {
            let mut ledger = self.shared.ledger();
            ledger.set_fence(Some(term));
            let result = apply::apply(&mut ledger, &catalog, now, &git, &keep);
            ledger.set_fence(None);
            result
        };
        if let Err(apply::ApplyError::Ledger(e @ crate::ledger::LedgerError::LeaseLost { .. })) =
            &result
        {
            self.deposed(e);
            return;
        }
        tracing::debug!(
            scan_ms = scanned.as_millis() as u64,
            list_ms = (listed - scanned).as_millis() as u64,
            catalog_ms = (built - listed).as_millis() as u64,
            git_ms = (described - built).as_millis() as u64,
            apply_ms = (started.elapsed() - described).as_millis() as u64,
            "reconcile phases"
        );
        self.applied(why, result, now, started);
    }

    /// The jobs folder read again: only the `changed` paths when the last scan is at hand,
    /// else all of it. `None` when the folder cannot be read (reported as a problem).
    fn scan(&self, changed: Option<Vec<String>>) -> Option<source::Scan> {
        let mut last = self
            .last_scan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let incremental = match (changed, last.as_ref()) {
            (Some(paths), Some(previous)) => source::rescan(&self.options.dir, previous, &paths),
            _ => None,
        };
        let scan = match incremental {
            Some(scan) => scan,
            None => match source::scan(&self.options.dir) {
                Ok(scan) => scan,
                Err(d) => {
                    *last = None;
                    drop(last);
                    self.report_problems(&[d], &[]);
                    return None;
                }
            },
        };
        *last = Some(scan.clone());
        Some(scan)
    }

    /// The catalog of a scan; a file whose bytes are unchanged keeps its last parse and hash.
    pub(super) fn build_catalog(
        &self,
        scan: &source::Scan,
        api_owned: &[String],
        now: jiff::Timestamp,
    ) -> catalog::Catalog {
        let inputs = scan.inputs();
        let context = spec::Context {
            defaults: &self.options.defaults,
            now,
        };
        let mut cache = std::mem::take(
            &mut *self
                .parse_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let fresh: Mutex<Vec<(String, CachedParse)>> = Mutex::new(Vec::new());
        let mut catalog = catalog::build_with(&inputs, api_owned, |f| {
            if let Some(cached) = cache.get(f.display)
                && cached.bytes.as_slice() == f.bytes
            {
                return (cached.parsed.clone(), cached.hash.clone());
            }
            let parsed = spec::parse(f.display, f.bytes, context);
            let hash = parsed.spec.as_ref().map(spec::normal::content_hash);
            fresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((
                    f.display.to_string(),
                    CachedParse {
                        bytes: f.bytes.to_vec(),
                        parsed: parsed.clone(),
                        hash: hash.clone(),
                    },
                ));
            (parsed, hash)
        });
        let present: HashSet<&str> = inputs.iter().map(|f| f.display).collect();
        cache.retain(|k, _| present.contains(k.as_str()));
        for (display, cached) in fresh
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            cache.insert(display, cached);
        }
        *self
            .parse_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cache;
        catalog.diagnostics.extend(scan.problems.iter().cloned());
        catalog
    }

    /// Logs and records what a reconcile's apply did; a change reloads the scheduler.
    pub(super) fn applied(
        &self,
        why: &str,
        result: Result<apply::Outcome, apply::ApplyError>,
        now: jiff::Timestamp,
        started: std::time::Instant,
    ) {
        match result {
            Ok(outcome) => {
                if let Some(record) = outcome.record {
                    let message = format!(
                        "applied {} added, {} changed, {} removed ({why})",
                        record.added, record.changed, record.removed
                    );
                    tracing::info!(
                        added = record.added,
                        changed = record.changed,
                        removed = record.removed,
                        took_ms = started.elapsed().as_millis() as u64,
                        "reconciled: {message}"
                    );
                    let _ = self.shared.ledger().daemon_event(now, "applied", &message);
                    self.reload.store(true, Ordering::SeqCst);
                    self.wake_scheduler.notify_one();
                } else if why == "SIGHUP" {
                    // Asked for by an operator: say it happened.
                    tracing::info!(why, "reconciled: no changes");
                } else {
                    tracing::debug!(why, "reconciled: no changes");
                }
            }
            Err(apply::ApplyError::Moved(_)) => {
                unreachable!("the daemon applies no saved plan")
            }
            Err(apply::ApplyError::Plan(plan)) => {
                let text: Vec<String> = plan.errors.iter().map(ToString::to_string).collect();
                tracing::error!("the plan cannot be applied: {}", text.join("; "));
                let _ = self
                    .shared
                    .ledger()
                    .daemon_event(now, "plan_error", &text.join("\n"));
            }
            Err(apply::ApplyError::Ledger(e)) => {
                // Nothing was written (a full disk, a locked ledger): the files are applied
                // again after a pause that doubles, 1 s to 30 s, rather than at the next file
                // event, which may never come.
                let failures = self.apply_failures.fetch_add(1, Ordering::SeqCst);
                let wait =
                    std::time::Duration::from_secs(1 << failures.min(5)).min(APPLY_RETRY_MAX);
                tracing::error!("applying: {e}; trying again in {} s", wait.as_secs());
                // One retry waits at a time, whatever else fails meanwhile.
                if !self.apply_retry.swap(true, Ordering::SeqCst) {
                    let again = self.dir_events.clone();
                    let waiting = self.apply_retry.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(wait);
                        waiting.store(false, Ordering::SeqCst);
                        let _ = again.send(DirChange {
                            paths: Vec::new(),
                            rescan: true,
                        });
                    });
                }
                return;
            }
        }
        self.apply_failures.store(0, Ordering::SeqCst);
    }

    /// Logs and records the errors in the jobs folder, once per distinct set; the errors as
    /// rendered (file:line:col, with the lines they point at).
    pub(super) fn report_problems(
        &self,
        errors: &[diag::Diagnostic],
        sources: &[source::SourceFile],
    ) -> String {
        let source_of = |file: &str| {
            sources
                .iter()
                .find(|s| s.display == file)
                .and_then(|s| std::str::from_utf8(&s.bytes).ok())
        };
        let rendered = diag::render(errors, source_of, false);
        // Checked and set in one step: two reconciles report a set once.
        let changed = self.problems.send_if_modified(|published| {
            if published.as_ref().map_or("", |p| p.rendered.as_str()) == rendered {
                return false;
            }
            *published = (!errors.is_empty()).then(|| Problems {
                count: errors.len(),
                rendered: rendered.clone(),
            });
            true
        });
        if !changed {
            return rendered;
        }
        let now = self.now();
        let ledger = self.shared.ledger();
        // Each error apart, with its file's path in the jobs folder: what a scoped token's
        // status keeps of them (`api::scope`).
        let files: Vec<serde_json::Value> = errors
            .iter()
            .map(|e| {
                let relative = sources
                    .iter()
                    .find(|s| s.display == e.file)
                    .map(|s| s.relative.clone());
                serde_json::json!({
                    "relative": relative,
                    "rendered": diag::render(std::slice::from_ref(e), source_of, false),
                })
            })
            .collect();
        let status = serde_json::json!({
            "errors": errors.len(),
            "diagnostics": errors,
            "rendered": rendered,
            "files": files,
            "at": stamp(now),
        });
        let _ = ledger.set_status("source", &status.to_string());
        if errors.is_empty() {
            tracing::info!("the jobs folder is valid again");
            let _ = ledger.daemon_event(now, "source_valid", "the jobs folder is valid again");
        } else {
            for e in errors {
                tracing::warn!("{e}; its job keeps its last applied revision");
            }
            let _ = ledger.daemon_event(now, "source_invalid", &rendered);
        }
        rendered
    }

    /// Runs were queued or a cancel requested (by the API, in-process): start or stop runs,
    /// without reloading the jobs. The data version is left alone, so a change to jobs by
    /// another process meanwhile still reloads them at its own wake-up.
    pub(super) fn runs_changed(&self) {
        self.resolve();
        self.wake_executor.notify_one();
        self.act_on_cancels();
    }

    /// Another process committed to the ledger (or the daemon itself did: `data_version`
    /// tells them apart).
    pub(super) fn ledger_changed(&self) {
        if self.options.ledger.file().is_none() {
            // PostgreSQL: no version to compare; this is the backstop for lost notifications.
            self.on_ledger_change();
            return;
        }
        let version = match self.shared.ledger().data_version() {
            Ok(v) => v,
            Err(_) => return,
        };
        if self.seen_version.swap(version, Ordering::SeqCst) == version {
            return;
        }
        self.on_ledger_change();
    }

    /// Another process changed the ledger: reload the jobs, claim, act on cancellations, and
    /// look at the folder again if it had errors.
    pub(super) fn on_ledger_change(&self) {
        self.reload.store(true, Ordering::SeqCst);
        self.wake_scheduler.notify_one();
        self.wake_executor.notify_one();
        self.act_on_cancels();
        if self.problems.borrow().is_some() {
            let _ = self.dir_events.send(DirChange::default());
        }
    }

    /// Sends a stop to each running run whose cancellation was requested.
    pub(super) fn act_on_cancels(&self) {
        let Ok(requests) = self.shared.ledger().cancel_requests(self.epoch) else {
            return;
        };
        let mut stops = self
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for run in requests {
            match stops.running.get(&run.id) {
                Some(stop) => {
                    stop.send_if_modified(|s| {
                        if s.is_some() {
                            return false;
                        }
                        *s = Some(Stop::graceful(CANCELLED));
                        true
                    });
                }
                // Claimed, its task not yet registered: it starts stopped.
                None => {
                    stops.early.insert(run.id);
                }
            }
        }
    }
}

/// The reason recorded for a run stopped by `jobctl run cancel` or the API.
pub(super) const CANCELLED: &str = "cancelled on request";

fn stem(file: &str) -> &str {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}
