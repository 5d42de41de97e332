//! Retention: old runs deleted at start and hourly, in small transactions.

use std::sync::Arc;

use super::{Daemon, PRUNE_BATCH, PRUNE_EVERY};
use crate::ledger::Retention;

impl Daemon {
    /// Retention: at start and hourly, in small transactions.
    pub(super) async fn pruner(self: Arc<Self>) {
        loop {
            let d = self.clone();
            let _ = tokio::task::spawn_blocking(move || d.prune()).await;
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    }

    pub(super) fn prune(&self) {
        // The leader prunes for the cluster.
        if !self.leading() {
            return;
        }
        let now = self.now();
        let rows = match self.shared.ledger().jobs_listed() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("retention: {e}");
                return;
            }
        };
        let defaults = &self.options.defaults;
        let rules: Vec<Retention> = rows
            .iter()
            .map(|row| {
                let history = self
                    .shared
                    .spec(row.revision_id)
                    .map(|s| s.history)
                    .unwrap_or_default();
                let keep = history.keep_runs.unwrap_or(defaults.keep_runs);
                let age = history.max_age.unwrap_or(defaults.max_age).as_signed();
                Retention {
                    job: row.name.clone(),
                    keep,
                    before: now.saturating_sub(age).unwrap_or(now),
                }
            })
            .collect();
        let mut total = 0;
        loop {
            let n = match self.shared.ledger().prune(&rules, PRUNE_BATCH) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("retention: {e}");
                    break;
                }
            };
            total += n;
            if n < PRUNE_BATCH {
                break;
            }
            // Between batches the ledger is free for fires.
            std::thread::yield_now();
        }
        if total > 0 {
            tracing::info!(deleted = total, "retention: deleted old runs");
            if let Err(e) = self.shared.ledger().reclaim_space() {
                tracing::error!("retention: reclaiming space: {e}");
            }
        }
    }
}
