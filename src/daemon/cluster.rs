//! The daemon as a node of a cluster: its heartbeat, its leadership, the leader's look for
//! lost nodes, and the self-fence of a node that lost the ledger.
//!
//! Every node claims and runs work; one, the leader, also decides slots, applies its jobs
//! folder and prunes. On SQLite the leader is the one daemon (its lease is taken at start and
//! a second daemon is refused); on PostgreSQL every [`rules::NODE_HEARTBEAT`] each node
//! records its heartbeat and asks for the lease ([`Ledger::lead`]): the leader renews it, a
//! follower takes it once it went [`rules::LEADER_LEASE`] without a renewal. All times here
//! are the database's clock, which every node shares.
//!
//! What makes it safe is not the election but the writes: slots carry a unique key, the
//! leader's writes are fenced by its term, a lost node's heartbeats, claims and ends are
//! refused once the leader declared it lost. A node that cannot reach the ledger for
//! [`rules::SELF_FENCE`] kills its runs' process groups before [`rules::NODE_LOST_AFTER`]
//! lets the leader hand them to another node.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Daemon;
use crate::executor;
use crate::ledger::{Leadership, Ledger, LedgerError, RunRow};
use crate::rules;
use crate::run::Ending;
use crate::runner::{self, Stop};

impl Daemon {
    /// The leader's term while this daemon leads.
    pub(super) fn term(&self) -> Option<i64> {
        Some(self.term.load(Ordering::SeqCst)).filter(|&t| t != 0)
    }

    /// Whether this daemon leads: decides slots, applies its jobs folder, prunes, and looks
    /// for lost nodes.
    pub(super) fn leading(&self) -> bool {
        self.term().is_some()
    }

    /// Runs `f` on the connection that records liveness: a connection of its own on
    /// PostgreSQL (a heartbeat never waits behind a long apply), the shared one on SQLite
    /// (whose writes other connections would see as changes).
    fn liveness<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> T {
        match &self.liveness {
            Some(ledger) => f(&mut ledger
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)),
            None => f(&mut self.shared.ledger()),
        }
    }

    /// Every [`rules::NODE_HEARTBEAT`]: records that this node is alive (a node declared
    /// lost stops here), keeps or takes the leadership (PostgreSQL), and, while leading, ends
    /// the runs of lost nodes and tells runs waiting for a node why.
    pub(super) fn heartbeat(&self) {
        let sent = Instant::now();
        let name = self.node_name();
        let cluster = self.options.ledger.file().is_none();
        let beat = self.liveness(
            |ledger| -> crate::ledger::Result<Option<Option<Leadership>>> {
                let asked = crate::clock::uncorrected_now();
                let now = ledger.db_now(self.now())?;
                if cluster {
                    self.measure_skew(asked, now);
                }
                if !ledger.heartbeat(&name, self.epoch, now)? {
                    return Ok(None);
                }
                if !cluster {
                    return Ok(Some(None));
                }
                Ok(Some(Some(ledger.lead(&name, self.me, self.term(), now)?)))
            },
        );
        match beat {
            Err(e) => {
                tracing::warn!("recording this node's heartbeat: {e}");
                return;
            }
            Ok(None) => {
                self.lose_lease(format!(
                    "node {name} was declared lost by the leader (no heartbeat for {} s): its \
                     runs were ended and retried elsewhere",
                    rules::NODE_LOST_AFTER.as_secs()
                ));
                return;
            }
            Ok(Some(lead)) => {
                *self
                    .last_beat
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = sent;
                if self.fenced.swap(false, Ordering::SeqCst) {
                    tracing::warn!("this node reaches the ledger again; it claims runs again");
                    self.wake_executor.notify_one();
                }
                if let Some(lead) = lead {
                    self.follow_lease(lead);
                }
            }
        }
        if self.leading() {
            self.end_lost_runs();
            self.tell_node_waits();
        }
    }

    /// Keeps this node's clock on the database's: `db` was read between `asked` and now (by
    /// the system clock); the skew is measured from the middle of that round trip.
    fn measure_skew(&self, asked: jiff::Timestamp, db: jiff::Timestamp) {
        let answered = crate::clock::uncorrected_now();
        let half = answered.duration_since(asked) / 2;
        let local = asked.saturating_add(half).unwrap_or(asked);
        let skew = db.duration_since(local);
        crate::clock::set_skew(skew);
        let large = skew.abs() > jiff::SignedDuration::from_secs(1);
        if large && !self.skewed.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                skew_ms = skew.as_millis(),
                "this machine's clock is {} ms off the database's; this node keeps the \
                 database's time",
                skew.as_millis()
            );
        } else if !large {
            self.skewed.store(false, Ordering::SeqCst);
        }
    }

    /// Acts on what the lease said: a term taken starts leading, a term lost steps down.
    fn follow_lease(&self, lead: Leadership) {
        match lead {
            Leadership::Leads { term, .. } => {
                if self.term.swap(term, Ordering::SeqCst) != term {
                    tracing::info!(term, "this node leads now (term {term})");
                    self.began_leading();
                }
            }
            Leadership::Follows { holder, term } => {
                let before = self.term.swap(0, Ordering::SeqCst);
                let mut known = self
                    .leader
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if before != 0 || known.as_ref() != Some(&(holder.clone(), term)) {
                    tracing::info!(
                        leader = %holder,
                        term,
                        "node {holder} leads (term {term}); this node follows: it claims and runs work"
                    );
                    *known = Some((holder, term));
                }
            }
        }
    }

    /// This node took the lease: the scheduler reloads the jobs (deciding the slots due
    /// meanwhile by each job's `missed` policy) and the jobs folder is applied.
    pub(super) fn began_leading(&self) {
        self.reload.store(true, Ordering::SeqCst);
        self.wake_scheduler.notify_one();
        let _ = self.dir_events.send(crate::watch::DirChange {
            rescan: true,
            ..Default::default()
        });
    }

    /// A write of this leader was refused: another node took the lease. On SQLite that is
    /// another daemon, and this one stops; on PostgreSQL this node follows from now on.
    pub(super) fn deposed(&self, why: &LedgerError) {
        if self.options.ledger.file().is_some() {
            self.lose_lease(why.to_string());
        } else if self.term.swap(0, Ordering::SeqCst) != 0 {
            tracing::warn!("{why}; this node follows from now on");
        }
    }

    /// The leader's look for lost nodes: declares them lost and ends their runs `failed`
    /// ("node lost"), each retried by its job's policy.
    fn end_lost_runs(&self) {
        let Some(term) = self.term() else { return };
        let now = match self.liveness(|l| l.db_now(self.now())) {
            Ok(now) => now,
            Err(_) => return,
        };
        let lost = self.shared.ledger().declare_lost(term, self.epoch, now);
        let lost = match lost {
            Ok(lost) => lost,
            Err(e @ LedgerError::LeaseLost { .. }) => return self.deposed(&e),
            Err(e) => {
                tracing::warn!("looking for lost nodes: {e}");
                return;
            }
        };
        for (name, host, at) in &lost.nodes {
            tracing::warn!(
                node = %name,
                host = %host,
                last_heartbeat = %crate::ledger::stamp(*at),
                "node {name} is lost: no heartbeat since {}; its runs are ended and retried",
                crate::ledger::stamp(*at)
            );
        }
        if lost.runs.is_empty() {
            return;
        }
        let hosts: HashMap<String, (String, Option<jiff::Timestamp>)> = self
            .shared
            .ledger()
            .nodes(jiff::Timestamp::UNIX_EPOCH)
            .map(|nodes| {
                nodes
                    .into_iter()
                    .map(|n| (n.name, (n.host, n.lost_at.map(|_| n.heartbeat_at))))
                    .collect()
            })
            .unwrap_or_default();
        let here = crate::host::hostname();
        for run in lost.runs {
            let node = run.node.clone().unwrap_or_default();
            let mut reason = match hosts.get(&node) {
                Some((_, Some(last))) => format!(
                    "node lost: node {node} has not been heard from since {}",
                    crate::ledger::stamp(*last)
                ),
                _ => format!("node lost: node {node} stopped without ending it"),
            };
            // A node on this machine (frozen, or killed without its children): its processes
            // are in reach, and must not run on beside the retry.
            if hosts.get(&node).is_some_and(|(host, _)| *host == here)
                && let Some(killed) = kill_leftovers(&run)
            {
                reason = format!("{reason}; {killed}");
            }
            self.end_as_lost(&run, &reason);
        }
    }

    /// Ends `run` as failed with `reason`, retried by its job's policy (written once: if the
    /// ledger cannot take it now, the next look tries again).
    pub(super) fn end_as_lost(&self, run: &RunRow, reason: &str) {
        let now = self.now();
        let _ = self
            .shared
            .ledger()
            .add_event(run.id, now, "node_lost", reason);
        let _ = self.shared.ledger().seal_output(run.id);
        let spec = run.revision_id.and_then(|id| self.shared.spec(id).ok());
        executor::record_end(
            &self.shared,
            run,
            spec.as_deref(),
            &Ending::Lost(reason.to_string()),
            None,
            executor::Persist::Once,
        );
        tracing::warn!(run = run.id, job = %run.job, "{reason}; recorded as failed");
    }

    /// Every second on PostgreSQL: a node that has not recorded a heartbeat for
    /// [`rules::SELF_FENCE`] kills its runs (SIGKILL to their process groups), before the
    /// leader may declare it lost and retry them elsewhere. Each ends `failed` ("node lost"),
    /// recorded once the ledger is back; the node carries on and claims again then.
    pub(super) fn check_fence(&self) {
        if self.options.ledger.file().is_some() {
            return;
        }
        let silent = self
            .last_beat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed();
        if silent < rules::SELF_FENCE || self.fenced.swap(true, Ordering::SeqCst) {
            return;
        }
        let stop = Stop {
            reason: format!(
                "node lost: node {} could not reach the ledger for {} s, and stopped the run so \
                 that no other node runs it twice",
                self.node_name(),
                silent.as_secs()
            ),
            now: true,
            lost: true,
        };
        let stops = self
            .stops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tracing::error!(
            runs = stops.running.len(),
            "this node could not reach the ledger for {} s: killing its runs before another \
             node takes them over",
            silent.as_secs()
        );
        for sender in stops.running.values() {
            let _ = sender.send(Some(stop.clone()));
        }
    }

    /// The pending runs that no alive node can run learn why they wait (and the reason is
    /// cleared once one can).
    fn tell_node_waits(&self) {
        let now = match self.liveness(|l| l.db_now(self.now())) {
            Ok(now) => now,
            Err(_) => return,
        };
        let ledger = self.shared.ledger();
        let (needs, alive) = match (ledger.pending_needs(), ledger.alive_labels(now)) {
            (Ok(needs), Ok(alive)) => (needs, alive),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("reading which runs wait for a node: {e}");
                return;
            }
        };
        let mut changes = Vec::new();
        for need in needs {
            // Only a reason of this kind is this loop's to set or clear.
            if need
                .reason
                .as_deref()
                .is_some_and(|r| !r.starts_with(rules::NODE_WAIT))
            {
                continue;
            }
            let want = rules::node_wait(&need.labels, &alive);
            if want != need.reason {
                if let Some(why) = &want {
                    tracing::info!(run = need.run, job = %need.job, "run {why}");
                }
                changes.push((need.run, want));
            }
        }
        if let Err(e) = ledger.set_pending_reasons(&changes) {
            tracing::warn!("recording why runs wait for a node: {e}");
        }
    }

    /// This daemon's node name.
    pub(super) fn node_name(&self) -> String {
        self.options.daemon.node.clone().unwrap_or_default()
    }
}

/// Kills what is left of a run whose supervisor is gone or lost, on this machine: its process
/// group (by pid and start time, not pid alone) and the processes that carry its tag (those
/// that left the group, or started before their pid was recorded). Says what it killed.
pub(super) fn kill_leftovers(run: &RunRow) -> Option<String> {
    let mut killed = Vec::new();
    if let (Some(pid), Some(start)) = (run.pid, run.pid_start)
        && runner::is_alive(pid, start)
        && runner::kill_group(pid as i32, libc::SIGKILL)
    {
        killed.push(format!("killed its process group {pid}"));
    }
    if let Some(supervisor) = run.supervisor {
        let tag = runner::run_tag(supervisor, run.id);
        let tagged = runner::tagged_processes(&tag);
        if !tagged.is_empty() {
            runner::kill_all(0, &tag, libc::SIGKILL);
            killed.push(format!("killed its processes {tagged:?}"));
        }
    }
    (!killed.is_empty()).then(|| killed.join("; "))
}
