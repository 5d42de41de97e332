//! The daemon's Prometheus metrics (`GET /metrics`), kept in memory and updated where things
//! happen: the executor counts runs as they end, the reconciler sets the error gauge. Gauges
//! that mirror the ledger (pending runs, last success) are read from it when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobState {
    pub job: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobTokens {
    pub job: String,
    /// `prompt` or `completion`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyKind {
    /// `webhook`, `slack`, `email` or `run`.
    pub kind: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    pub runs_finished: Family<JobState, Counter>,
    pub run_duration: Family<JobLabel, Histogram>,
    pub fire_latency: Histogram,
    pub active_runs: Gauge,
    pub pending_runs: Gauge,
    pub last_success: Family<JobLabel, Gauge>,
    pub definition_errors: Gauge,
    pub jobs: Gauge,
    pub notifications_sent: Family<NotifyKind, Counter>,
    pub notifications_failed: Family<NotifyKind, Counter>,
    /// 1 while the followed branch's newest commit is held back for its errors (`[git]`).
    pub git_held: Gauge,
    pub git_fetch_failures: Counter,
    /// When the followed repository was last fetched successfully (seconds since 1970).
    pub git_last_fetch: Gauge,
    /// Tokens of `prompt` runs, as their providers counted them.
    pub llm_tokens: Family<JobTokens, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let runs_finished = Family::<JobState, Counter>::default();
        let run_duration = Family::<JobLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0])
        });
        let fire_latency =
            Histogram::new([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 60.0]);
        let active_runs = Gauge::default();
        let pending_runs = Gauge::default();
        let last_success = Family::<JobLabel, Gauge>::default();
        let definition_errors = Gauge::default();
        let jobs = Gauge::default();
        let mut registry = Registry::with_prefix("jobs");
        registry.register(
            "runs_finished",
            "Runs that ended since the daemon started, by job and final state",
            runs_finished.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Wall time of ended runs, from start to end",
            run_duration.clone(),
        );
        registry.register(
            "fire_latency_seconds",
            "From a run's scheduled instant to its start",
            fire_latency.clone(),
        );
        registry.register("runs_active", "Runs executing now", active_runs.clone());
        registry.register(
            "runs_pending",
            "Runs waiting to start (scraped from the ledger)",
            pending_runs.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When each job's newest successful run ended (scraped from the ledger)",
            last_success.clone(),
        );
        registry.register(
            "definition_errors",
            "Job files in jobs.d that do not validate (their jobs keep their last good revision)",
            definition_errors.clone(),
        );
        registry.register("jobs", "Active jobs in the ledger", jobs.clone());
        let notifications_sent = Family::<NotifyKind, Counter>::default();
        let notifications_failed = Family::<NotifyKind, Counter>::default();
        // Every kind from the start, at 0, so an alert on an increase sees the first failure.
        for kind in ["webhook", "slack", "email", "run"] {
            let label = NotifyKind { kind: kind.into() };
            let _ = notifications_sent.get_or_create(&label);
            let _ = notifications_failed.get_or_create(&label);
        }
        registry.register(
            "notifications_sent",
            "Notifications delivered (webhook or Slack answered 2xx, mail accepted, script exited 0), by kind",
            notifications_sent.clone(),
        );
        registry.register(
            "notifications_failed",
            "Notifications not delivered after their retries (each also a WARN log line and a notify_failed event of the run), by kind",
            notifications_failed.clone(),
        );
        let git_held = Gauge::default();
        let git_fetch_failures = Counter::default();
        let git_last_fetch = Gauge::default();
        registry.register(
            "git_commit_held",
            "1 while the followed branch's newest commit does not validate and is not applied (jobctl serve --git-url); 0 otherwise",
            git_held.clone(),
        );
        registry.register(
            "git_fetch_failures",
            "Fetches of the followed repository that failed (unreachable, refused, no such branch)",
            git_fetch_failures.clone(),
        );
        registry.register(
            "git_last_fetch_timestamp_seconds",
            "When the followed repository was last fetched successfully; 0 before the first",
            git_last_fetch.clone(),
        );
        let llm_tokens = Family::<JobTokens, Counter>::default();
        registry.register(
            "llm_tokens",
            "Tokens of the prompt runs that ended since the daemon started, by job and kind (prompt, completion), as the provider counted them",
            llm_tokens.clone(),
        );
        Metrics {
            llm_tokens,
            git_held,
            git_fetch_failures,
            git_last_fetch,
            runs_finished,
            run_duration,
            fire_latency,
            active_runs,
            pending_runs,
            last_success,
            definition_errors,
            jobs,
            notifications_sent,
            notifications_failed,
            registry,
        }
    }

    /// The Prometheus text exposition (format 0.0.4, what `/metrics` serves) of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        text_format(&out)
    }
}

/// OpenMetrics text (what prometheus-client writes) as the Prometheus text format 0.0.4: a
/// counter's family is named without `_total` in OpenMetrics but with it in 0.0.4, where
/// `jobs_runs_finished` and its samples `jobs_runs_finished_total` would otherwise be two
/// families, one without samples and one without HELP (`promtool check metrics` flags both).
/// The `# EOF` terminator is OpenMetrics only.
fn text_format(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_in_the_text_format() {
        let metrics = Metrics::new();
        metrics
            .runs_finished
            .get_or_create(&JobState {
                job: "a".into(),
                state: "succeeded".into(),
            })
            .inc();
        let text = metrics.encode();
        for (line, present) in [
            ("# HELP jobs_runs_finished_total Runs that ended", true),
            ("# TYPE jobs_runs_finished_total counter", true),
            (
                "jobs_runs_finished_total{job=\"a\",state=\"succeeded\"} 1",
                true,
            ),
            ("# TYPE jobs_runs_finished counter", false),
            ("# TYPE jobs_runs_active gauge", true),
            ("# EOF", false),
        ] {
            assert_eq!(text.contains(line), present, "{line:?} in:\n{text}");
        }
    }
}
