//! Parsed revisions: a run executes its recorded definition, parsed once and cached, the
//! cache bounded by the jobs the ledger knows plus the runs in flight.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::Shared;
use crate::spec::{self, Defaults, JobSpec};

/// Why a run's definition cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error("the run has no revision")]
    NoRevision,
    #[error("revision {0} is not in the ledger")]
    Missing(i64),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The recorded definition does not parse (a ledger edited by hand): its first error.
    #[error("{0}")]
    Invalid(String),
}

impl Shared {
    /// The job spec of a revision, parsed from its recorded definition once and cached.
    ///
    /// # Errors
    ///
    /// [`RevisionError`] when the revision is missing, cannot be read, or its definition does
    /// not parse.
    pub fn spec(&self, revision_id: i64) -> Result<Arc<JobSpec>, RevisionError> {
        if let Some(spec) = self
            .specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(revision_id)
        {
            return Ok(spec);
        }
        let (job, definition) = self
            .ledger()
            .revision_definition(revision_id)?
            .ok_or(RevisionError::Missing(revision_id))?;
        let spec = parse_definition(&job, &definition, &self.defaults, self.clock.now())?;
        let spec = Arc::new(spec);
        self.specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(revision_id, &job, spec.clone());
        Ok(spec)
    }
}

/// Parses a revision's recorded definition back into its spec.
///
/// # Errors
///
/// [`RevisionError::Invalid`] with the first error, when the definition does not parse (a ledger edited by hand).
pub fn parse_definition(
    job: &str,
    definition: &str,
    defaults: &Defaults,
    now: Timestamp,
) -> Result<JobSpec, RevisionError> {
    let path = format!("{job}.yaml");
    let parsed = spec::parse_recorded(
        &path,
        definition.as_bytes(),
        spec::Context { defaults, now },
    );
    parsed.spec.ok_or_else(|| {
        RevisionError::Invalid(
            parsed
                .diagnostics
                .first()
                .map_or_else(|| "invalid definition".to_string(), ToString::to_string),
        )
    })
}

/// Parsed revisions by id, bounded: every applied revision was kept until exit before (issue
/// 12: +1.6 KB each, 19 → 58 MB after 24,000 applies). A sweep keeps the newest revision of
/// each job and those still held outside the cache (runs in flight), and drops the superseded
/// rest; it runs when the cache has doubled since the last one, so it costs O(1) per insert.
/// The cache is thus bounded by the jobs the ledger knows plus the runs in flight, and a
/// daemon's current revisions are never re-parsed because of it.
pub(super) struct RevisionCache<V> {
    entries: HashMap<i64, CachedRevision<V>>,
    sweep_at: usize,
}

struct CachedRevision<V> {
    job: String,
    value: Arc<V>,
}

impl<V> RevisionCache<V> {
    /// Below this many entries there is no sweep.
    const FLOOR: usize = 256;

    pub(super) fn new() -> Self {
        RevisionCache {
            entries: HashMap::new(),
            sweep_at: Self::FLOOR,
        }
    }

    fn get(&self, id: i64) -> Option<Arc<V>> {
        self.entries.get(&id).map(|e| e.value.clone())
    }

    fn insert(&mut self, id: i64, job: &str, value: Arc<V>) {
        let job = job.to_string();
        self.entries.insert(id, CachedRevision { job, value });
        if self.entries.len() > self.sweep_at {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        // Revision ids grow with each apply: the largest id of a job is its newest revision.
        let mut newest: HashMap<&str, i64> = HashMap::new();
        for (id, entry) in &self.entries {
            let n = newest.entry(entry.job.as_str()).or_insert(*id);
            *n = (*n).max(*id);
        }
        let newest: std::collections::HashSet<i64> = newest.into_values().collect();
        self.entries
            .retain(|id, e| newest.contains(id) || Arc::strong_count(&e.value) > 1);
        self.sweep_at = (2 * self.entries.len()).max(Self::FLOOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_memory_the_revision_cache_stays_bounded() {
        // 24,000 applies of three jobs, each revision parsed once, as the daemon does.
        let mut cache = RevisionCache::new();
        let mut largest = 0;
        for id in 0..24_000 {
            let job = ["a", "b", "c"][id as usize % 3];
            cache.insert(id, job, Arc::new(id));
            largest = largest.max(cache.entries.len());
        }
        assert!(
            largest <= RevisionCache::<i64>::FLOOR + 1,
            "{largest} entries"
        );
        assert_eq!(
            cache.get(23_999).as_deref(),
            Some(&23_999),
            "the newest stays"
        );
    }

    #[test]
    fn unbounded_memory_the_revision_cache_keeps_what_is_in_use() {
        let mut cache = RevisionCache::new();
        // Revision 0 of `a` is superseded while a run still holds it.
        let in_flight = Arc::new(0);
        cache.insert(0, "a", in_flight.clone());
        // 1,000 current revisions, used at each reload, and many applies of `a`.
        for id in 1..=1_000 {
            cache.insert(id, &format!("job{id}"), Arc::new(id));
        }
        for id in 1_001..5_000 {
            cache.insert(id, "a", Arc::new(id));
            if id % 500 == 0 {
                for current in 1..=1_000 {
                    assert_eq!(cache.get(current).as_deref(), Some(&current));
                }
            }
        }
        assert_eq!(
            cache.get(0).as_deref(),
            Some(&0),
            "the run's revision stays"
        );
        assert!(
            cache.entries.len() <= 2 * 1_002,
            "{} entries",
            cache.entries.len()
        );
        drop(in_flight);
    }
}
