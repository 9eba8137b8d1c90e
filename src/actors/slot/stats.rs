//! An agent's counters and histograms (read by `ctl stats` and `/metrics`).

use std::sync::atomic::AtomicU64;

/// Counters of one agent, monotonic since the daemon started.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Messages accepted into the mailbox.
    pub accepted: AtomicU64,
    /// Messages handled and acked.
    pub handled: AtomicU64,
    /// Attempts that failed (error, timeout, panic, kill).
    pub failed_attempts: AtomicU64,
    /// Messages dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Restarts of this agent's hosts.
    pub restarts: AtomicU64,
    /// The oldest dead letters purged to keep at most `dlq_max`.
    pub dead_purged: AtomicU64,
    /// Time per handling attempt (`warden_handle_seconds`).
    pub handle_seconds: crate::telemetry::histograms::Seconds,
    /// Time waiting for limiter permits before an attempt
    /// (`warden_limiter_wait_seconds`).
    pub limiter_wait_seconds: crate::telemetry::histograms::Seconds,
}
