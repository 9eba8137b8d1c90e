//! Policies that bound an agent's work: one file per policy.
//!
//! - [`backoff`]: the exponential delay curve used by message retries and restarts.
//! - [`breaker`]: the per-agent circuit breaker.
//! - [`rate_limit`]: a named token bucket shared by agents (G8).
//! - [`daily`]: a limiter's daily budget of tokens and cost.
//! - [`limits`]: a tree's limiters as one set, changed in place by a reload.

pub mod backoff;
pub mod breaker;
pub mod daily;
pub mod limits;
pub mod rate_limit;
pub mod systemic;
