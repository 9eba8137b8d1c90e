//! Policies that bound an agent's work: one file per policy.
//!
//! - [`backoff`]: the exponential delay curve used by message retries and restarts.
//! - [`breaker`]: the per-agent circuit breaker.
//! - [`rate_limit`]: named token buckets shared by agents (G8).

pub mod backoff;
pub mod breaker;
pub mod rate_limit;
pub mod systemic;
