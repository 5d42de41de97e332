//! This machine, as the daemon and the CLI name it.

/// This machine's name, for the lease and for who paused a job.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}
