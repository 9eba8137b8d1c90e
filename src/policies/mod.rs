//! Policies that bound an agent's work: one file per policy.
//!
//! - [`backoff`]: the exponential delay curve used by message retries and restarts.

pub mod backoff;
