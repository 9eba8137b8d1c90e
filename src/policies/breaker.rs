//! Circuit breaker, per agent: after `failures` consecutive failed attempts the
//! breaker opens and messages wait (they do not fail) for `cool_down`; then one
//! trial message goes through (half-open): success closes the breaker, failure
//! opens it again for another cool-down.
//!
//! The breaker belongs to the agent's slot, so it outlives restarts. Failures are
//! attempts that failed in a way retrying might fix (errors, timeouts, crashes);
//! a non-retryable error (bad input) and a 429 (an upstream quota) do not count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Instant;

use serde::Serialize;

/// `[agent.NAME] breaker = { failures = 5, cool_down = "30s" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSpec {
    /// Consecutive failed attempts that open the breaker.
    pub failures: u32,
    /// How long it stays open before a trial.
    pub cool_down: Duration,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Messages flow.
    Closed,
    /// Messages wait until the cool-down ends.
    Open,
    /// One trial message is allowed through.
    HalfOpen,
}

/// A snapshot for `stats` and `tree`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BreakerSnapshot {
    /// Current state.
    pub state: BreakerState,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Times it opened.
    pub trips: u64,
}

#[derive(Debug)]
struct Inner {
    /// `None`: no breaker configured; every call is a no-op.
    spec: Option<BreakerSpec>,
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
    trips: u64,
}

/// One agent's breaker. Without a spec it is disabled: it admits everything and
/// counts nothing. Its spec can change while it runs (a config reload).
#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
    /// Whether a spec is set: the message path reads only this when there is none.
    enabled: AtomicBool,
}

impl Breaker {
    /// A closed breaker (disabled when `spec` is `None`).
    pub fn new(spec: Option<BreakerSpec>) -> Self {
        Breaker {
            enabled: AtomicBool::new(spec.is_some()),
            inner: Mutex::new(Inner {
                spec,
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                trial_in_flight: false,
                trips: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a breaker is configured.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Replaces the spec. A different spec starts closed (failures forgotten, trips
    /// kept); the same spec changes nothing.
    pub fn set_spec(&self, spec: Option<BreakerSpec>) {
        let mut b = self.lock();
        if b.spec == spec {
            return;
        }
        b.spec = spec;
        self.enabled.store(spec.is_some(), Ordering::Release);
        b.state = BreakerState::Closed;
        b.failures = 0;
        b.opened_at = None;
        b.trial_in_flight = false;
    }

    /// May a delivery start at `now`? `Err(wait)`: look again after `wait`.
    pub fn admit(&self, now: Instant) -> Result<(), Duration> {
        let mut b = self.lock();
        let Some(spec) = b.spec else { return Ok(()) };
        match b.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open => {
                let until = b.opened_at.unwrap_or(now) + spec.cool_down;
                if now < until {
                    return Err(until - now);
                }
                b.state = BreakerState::HalfOpen;
                b.trial_in_flight = true;
                tracing::info!("circuit breaker half-open: one trial message");
                Ok(())
            }
            BreakerState::HalfOpen if b.trial_in_flight => Err(spec.cool_down / 4),
            BreakerState::HalfOpen => {
                b.trial_in_flight = true;
                Ok(())
            }
        }
    }

    /// An attempt succeeded.
    pub fn on_success(&self) {
        let mut b = self.lock();
        if b.state != BreakerState::Closed {
            tracing::info!("circuit breaker closed");
        }
        b.state = BreakerState::Closed;
        b.failures = 0;
        b.trial_in_flight = false;
    }

    /// A delivery ended neither in success nor in a counted failure (bad input,
    /// dead-lettered unattempted, rate-limited, interrupted): a half-open trial is
    /// given back so the next message can be the trial.
    pub fn release(&self) {
        self.lock().trial_in_flight = false;
    }

    /// Would one more failed attempt open the breaker (it is closed, one failure
    /// short, or half-open)? The attempt that opens it fails because of the agent,
    /// not of its message.
    pub fn failure_opens(&self) -> bool {
        let b = self.lock();
        match (b.spec, b.state) {
            (None, _) => false,
            (Some(spec), BreakerState::Closed) => b.failures + 1 >= spec.failures,
            (Some(_), BreakerState::HalfOpen) => true,
            (Some(_), BreakerState::Open) => false,
        }
    }

    /// An attempt failed at `now`.
    pub fn on_failure(&self, now: Instant) {
        let mut b = self.lock();
        let Some(spec) = b.spec else { return };
        b.failures += 1;
        let open = match b.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => b.failures >= spec.failures,
            BreakerState::Open => false,
        };
        if open {
            b.state = BreakerState::Open;
            b.opened_at = Some(now);
            b.trial_in_flight = false;
            b.trips += 1;
            tracing::warn!(failures = b.failures, cool_down = ?spec.cool_down, "circuit breaker open");
        }
    }

    /// The current state and counters (`None` when disabled).
    pub fn snapshot(&self) -> Option<BreakerSnapshot> {
        let b = self.lock();
        b.spec?;
        Some(BreakerSnapshot {
            state: b.state,
            consecutive_failures: b.failures,
            trips: b.trips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_half_opens_and_closes() {
        let b = Breaker::new(Some(BreakerSpec {
            failures: 2,
            cool_down: Duration::from_secs(10),
        }));
        let t = Instant::now();
        assert!(b.admit(t).is_ok());
        b.on_failure(t);
        assert_eq!(b.snapshot().unwrap().state, BreakerState::Closed);
        b.on_failure(t);
        assert_eq!(b.snapshot().unwrap().state, BreakerState::Open);
        assert_eq!(
            b.admit(t + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        assert!(
            b.admit(t + Duration::from_secs(10)).is_ok(),
            "trial after the cool-down"
        );
        assert_eq!(b.snapshot().unwrap().state, BreakerState::HalfOpen);
        assert!(
            b.admit(t + Duration::from_secs(10)).is_err(),
            "one trial at a time"
        );
        b.on_failure(t + Duration::from_secs(11));
        assert_eq!(
            b.snapshot().unwrap(),
            BreakerSnapshot {
                state: BreakerState::Open,
                consecutive_failures: 3,
                trips: 2
            }
        );
        assert!(b.admit(t + Duration::from_secs(21)).is_ok());
        b.on_success();
        assert_eq!(
            b.snapshot().unwrap(),
            BreakerSnapshot {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                trips: 2
            }
        );
    }
}
