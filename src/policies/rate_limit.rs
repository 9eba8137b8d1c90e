//! Rate limits: named token buckets (governor's GCRA) shared by every agent that
//! lists them.
//!
//! Guarantees (G8):
//! - **Quota holds across sharers.** One bucket per `[limits.NAME]`, owned by the
//!   tree, not by any host: every sharer draws from it, and a restarted agent finds
//!   it as it was.
//! - **Waiting never blocks other agents.** An agent waits for its permit in its
//!   own host task (an async sleep), with a little jitter so sharers do not wake
//!   in lockstep.
//! - **A 429 pauses every sharer.** A handler that reports "rate limited, retry
//!   after T" pauses the bucket until then; nobody gets a permit before.
//! - **Deadlines win.** A wait that would end past the message's deadline is not
//!   started: the caller dead-letters the message (`deadline_exceeded`).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;

use super::daily;
use crate::clock::{Instant, LimiterClock};
use crate::store::spend::DaySpend;

/// A direct (unkeyed) governor limiter on the runtime's clock.
type Bucket =
    RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<std::time::Instant>>;
use governor::Quota;
use serde::Serialize;
use tracing::Instrument;

/// `[limits.NAME]`: a token bucket shared by the agents that list it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LimitSpec {
    /// Requests per second (or per minute, below; exactly one is set).
    pub requests_per_second: Option<f64>,
    /// Requests per minute.
    pub requests_per_minute: Option<f64>,
    /// Weighted tokens per minute.
    pub tokens_per_minute: Option<f64>,
    /// Requests allowed at once above the steady rate.
    pub burst: Option<u32>,
    /// Tokens the sharers may spend per UTC day (see [`super::daily`]).
    pub tokens_per_day: Option<u64>,
    /// Cost the sharers may spend per UTC day.
    pub cost_per_day: Option<f64>,
}

/// Counters of one limiter, monotonic since start.
#[derive(Debug, Default)]
pub struct LimiterStats {
    /// Permits granted.
    pub permits: AtomicU64,
    /// Permits that had to wait.
    pub waits: AtomicU64,
    /// Total time spent waiting, ns.
    pub wait_ns: AtomicU64,
    /// Pauses after a 429.
    pub pauses: AtomicU64,
    /// Tokens taken (declared costs).
    pub tokens: AtomicU64,
    /// Tokens debited for overruns (reported cost above the declared one).
    pub tokens_debited: AtomicU64,
}

/// A snapshot of one limiter (the `stats` op's `limits.NAME`).
#[derive(Debug, Clone, Serialize)]
pub struct LimiterSnapshot {
    /// Permits granted.
    pub permits: u64,
    /// Permits that had to wait.
    pub waits: u64,
    /// Total wait, ms.
    pub wait_ms: f64,
    /// Pauses after a 429.
    pub pauses: u64,
    /// Milliseconds left in the current pause (0: not paused).
    pub paused_for_ms: u64,
    /// Tokens taken.
    pub tokens: u64,
    /// Tokens debited for overruns.
    pub tokens_debited: u64,
    /// Overrun tokens not yet paid back (the next taker pays them first).
    pub token_debt: u64,
    /// Sharers waiting for a permit now.
    pub waiting: u64,
    /// With a daily budget: what was spent today (tokens, cost), and whether
    /// the budget is spent (the limiter then waits for 00:00 UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub today: Option<serde_json::Value>,
}

/// Why no permit was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The wait would end after the message's deadline.
    Deadline {
        /// The limiter.
        limiter: String,
        /// How long the wait would have been.
        wait: Duration,
    },
    /// More tokens than the bucket can ever hold (one minute's worth).
    TooLarge {
        /// The limiter.
        limiter: String,
        /// Tokens asked for.
        asked: u64,
        /// The bucket's capacity.
        capacity: u64,
    },
}

/// A limiter's buckets for one quota; replaced whole when a reload changes it.
struct Buckets {
    spec: LimitSpec,
    requests: Bucket,
    /// `tokens_per_minute`: a bucket holding one minute of tokens, and its capacity.
    tokens: Option<(Bucket, u32)>,
}

impl Buckets {
    /// Requests per second or minute, with `burst` (default 1) requests allowed
    /// at once above the steady rate; tokens per minute in a one-minute bucket.
    fn new(spec: &LimitSpec) -> Buckets {
        let per_second = spec
            .requests_per_second
            .or(spec.requests_per_minute.map(|m| m / 60.0))
            .unwrap_or(f64::MAX);
        let period = Duration::from_secs_f64((1.0 / per_second).max(1e-9));
        let burst = NonZeroU32::new(spec.burst.unwrap_or(1).max(1)).expect("burst >= 1");
        let quota = Quota::with_period(period)
            .expect("period is positive")
            .allow_burst(burst);
        let tokens = spec.tokens_per_minute.map(|tpm| {
            let capacity = (tpm.round() as u32).max(1);
            let period = Duration::from_secs_f64(60.0 / tpm.max(1e-9));
            let q = Quota::with_period(period)
                .expect("period is positive")
                .allow_burst(NonZeroU32::new(capacity).expect("capacity >= 1"));
            (Bucket::direct_with_clock(q, LimiterClock), capacity)
        });
        Buckets {
            spec: spec.clone(),
            requests: Bucket::direct_with_clock(quota, LimiterClock),
            tokens,
        }
    }
}

/// One named limiter.
pub struct Limiter {
    name: String,
    buckets: RwLock<Arc<Buckets>>,
    /// Overrun tokens owed; the next taker pays them before its own.
    debt: AtomicU64,
    clock: LimiterClock,
    paused_until: Mutex<Option<Instant>>,
    /// What the sharers spent today (with a daily budget).
    day: Mutex<crate::store::spend::DaySpend>,
    /// Sharers sleeping for a permit now.
    waiting: AtomicU64,
    /// Wakes them when the quota changes.
    changed: tokio::sync::Notify,
    /// Counters.
    pub stats: LimiterStats,
}

impl Limiter {
    /// A limiter for `spec`: requests per second or minute, with `burst` (default 1)
    /// requests allowed at once above the steady rate.
    pub fn new(name: &str, spec: &LimitSpec) -> Limiter {
        Limiter {
            name: name.to_string(),
            buckets: RwLock::new(Arc::new(Buckets::new(spec))),
            debt: AtomicU64::new(0),
            clock: LimiterClock,
            paused_until: Mutex::new(None),
            day: Mutex::default(),
            waiting: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
            stats: LimiterStats::default(),
        }
    }

    fn buckets(&self) -> Arc<Buckets> {
        self.buckets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Its name (the config's `[limiters.NAME]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quota it enforces now.
    pub fn spec(&self) -> LimitSpec {
        self.buckets().spec.clone()
    }

    /// Enforces `spec` from now on (a config reload): a changed quota starts with
    /// full buckets, as a new limiter would; a pause after a 429, the counters and
    /// a token debt are kept; the same quota changes nothing. Waiting sharers see
    /// the new quota at their next look.
    pub fn set_spec(&self, spec: &LimitSpec) {
        let mut b = self.buckets.write().unwrap_or_else(|p| p.into_inner());
        if b.spec != *spec {
            *b = Arc::new(Buckets::new(spec));
            drop(b);
            self.changed.notify_waiters();
            tracing::info!(limiter = %self.name, "limiter quota changed");
        }
    }

    /// Sleeps `wait`, or less if the quota changes meanwhile (a reload), counted
    /// in `waiting` while it sleeps.
    async fn wait_out(&self, wait: Duration) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let changed = self.changed.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait)
                .instrument(tracing::trace_span!("warden.limiter.wait", limiter = %self.name)) => {}
            _ = changed => {}
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    fn pause_left(&self) -> Option<Duration> {
        let paused =
            (*self.paused_until.lock().unwrap_or_else(|p| p.into_inner())).and_then(|until| {
                let now = Instant::now();
                (until > now).then(|| until - now)
            });
        paused.max(self.day_left())
    }

    /// With the day's budget spent: the time to the next 00:00 UTC.
    fn day_left(&self) -> Option<Duration> {
        let spec = &self.buckets().spec;
        if spec.tokens_per_day.is_none() && spec.cost_per_day.is_none() {
            return None;
        }
        let now = crate::clock::now_ms();
        let d = self.day.lock().unwrap_or_else(|p| p.into_inner());
        daily::spent(&d, now, spec.tokens_per_day, spec.cost_per_day)
            .then(|| daily::until_next_day(now))
    }

    /// Counts spend of a sharer against the daily budget; returns the day's
    /// spend to keep in the store, when the limiter has a daily budget. Spending
    /// the budget pauses the limiter until 00:00 UTC.
    pub fn spend_day(&self, tokens: u64, cost: f64) -> Option<DaySpend> {
        let spec = self.spec();
        if spec.tokens_per_day.is_none() && spec.cost_per_day.is_none() {
            return None;
        }
        let now = crate::clock::now_ms();
        let mut d = self.day.lock().unwrap_or_else(|p| p.into_inner());
        let before = daily::spent(&d, now, spec.tokens_per_day, spec.cost_per_day);
        daily::add(&mut d, now, tokens, cost);
        if !before && daily::spent(&d, now, spec.tokens_per_day, spec.cost_per_day) {
            tracing::warn!(limiter = %self.name, tokens = d.tokens, cost = d.cost,
                tokens_per_day = spec.tokens_per_day, cost_per_day = spec.cost_per_day,
                wait = ?daily::until_next_day(now),
                "the limiter's daily budget is spent; its sharers wait for 00:00 UTC");
        }
        Some(*d)
    }

    /// Takes the day's spend the store kept (at start).
    pub fn restore_day(&self, d: DaySpend) {
        *self.day.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Waits for one permit; refuses if the wait would end after `deadline`.
    /// Returns whether it had to wait.
    pub async fn acquire(&self, deadline: Option<Instant>) -> Result<bool, Refused> {
        let started = Instant::now();
        let mut waited = false;
        loop {
            let wait = match self.pause_left() {
                Some(left) => left,
                None => match self.buckets().requests.check() {
                    Ok(()) => break,
                    Err(not_until) => not_until.wait_time_from(self.clock.now()),
                },
            };
            // A little jitter, so that sharers woken together do not collide again.
            let wait = wait + Duration::from_micros(fastrand::u64(0..1_000));
            if deadline.is_some_and(|d| crate::clock::after(wait) > d) {
                return Err(Refused::Deadline {
                    limiter: self.name.clone(),
                    wait,
                });
            }
            waited = true;
            self.wait_out(wait).await;
        }
        self.stats.permits.fetch_add(1, Ordering::Relaxed);
        if waited {
            self.stats.waits.fetch_add(1, Ordering::Relaxed);
            self.stats
                .wait_ns
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Ok(waited)
    }

    /// True when the limiter has a token bucket (`tokens_per_minute`).
    pub fn weighs_tokens(&self) -> bool {
        self.buckets().tokens.is_some()
    }

    /// Waits until `n` tokens (plus any overrun debt) are available and takes them;
    /// refuses if the wait would end after `deadline`, or if `n` can never fit.
    pub async fn acquire_tokens(&self, n: u64, deadline: Option<Instant>) -> Result<(), Refused> {
        let buckets = self.buckets();
        let Some((bucket, capacity)) = &buckets.tokens else {
            return Ok(());
        };
        let capacity = u64::from(*capacity);
        if n > capacity {
            return Err(Refused::TooLarge {
                limiter: self.name.clone(),
                asked: n,
                capacity,
            });
        }
        let debt = self.debt.swap(0, Ordering::Relaxed);
        let total = (n + debt).min(capacity);
        let cells = NonZeroU32::new(total as u32).unwrap_or(NonZeroU32::MIN);
        loop {
            let wait = match self.pause_left() {
                Some(left) => left,
                None => match bucket.check_n(cells) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => not_until.wait_time_from(self.clock.now()),
                    Err(_) => unreachable!("total is capped at the capacity"),
                },
            };
            let wait = wait + Duration::from_micros(fastrand::u64(0..1_000));
            if deadline.is_some_and(|d| crate::clock::after(wait) > d) {
                self.debt.fetch_add(debt, Ordering::Relaxed); // not paid: still owed
                return Err(Refused::Deadline {
                    limiter: self.name.clone(),
                    wait,
                });
            }
            self.stats.waits.fetch_add(1, Ordering::Relaxed);
            self.wait_out(wait).await;
        }
        self.stats.tokens.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Charges `overrun` tokens beyond what was taken: owed by the next taker.
    pub fn debit(&self, overrun: u64) {
        if overrun > 0 && self.weighs_tokens() {
            self.debt.fetch_add(overrun, Ordering::Relaxed);
            self.stats
                .tokens_debited
                .fetch_add(overrun, Ordering::Relaxed);
        }
    }

    /// Pauses the limiter for every sharer until `for_` from now (a 429's Retry-After).
    pub fn pause(&self, for_: Duration) {
        let until = crate::clock::after(for_);
        let mut p = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
        self.stats.pauses.fetch_add(1, Ordering::Relaxed);
        tracing::info!(limiter = %self.name, ?for_, "limiter paused (rate limited upstream)");
    }

    /// The limiter's counters.
    pub fn snapshot(&self) -> LimiterSnapshot {
        LimiterSnapshot {
            permits: self.stats.permits.load(Ordering::Relaxed),
            waits: self.stats.waits.load(Ordering::Relaxed),
            wait_ms: self.stats.wait_ns.load(Ordering::Relaxed) as f64 / 1e6,
            pauses: self.stats.pauses.load(Ordering::Relaxed),
            paused_for_ms: self.pause_left().map_or(0, |d| d.as_millis() as u64),
            tokens: self.stats.tokens.load(Ordering::Relaxed),
            tokens_debited: self.stats.tokens_debited.load(Ordering::Relaxed),
            token_debt: self.debt.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            today: self.today(),
        }
    }

    fn today(&self) -> Option<serde_json::Value> {
        let spec = self.spec();
        if spec.tokens_per_day.is_none() && spec.cost_per_day.is_none() {
            return None;
        }
        let now = crate::clock::now_ms();
        let d = *self.day.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, cost) = if d.day == daily::day_of(now) {
            (d.tokens, d.cost)
        } else {
            (0, 0.0)
        };
        let spent = daily::spent(&d, now, spec.tokens_per_day, spec.cost_per_day);
        Some(serde_json::json!({
            "tokens": tokens, "cost": cost,
            "tokens_per_day": spec.tokens_per_day, "cost_per_day": spec.cost_per_day,
            "budget_spent": spent,
            "resumes_in_ms": spent.then(|| daily::until_next_day(now).as_millis() as u64),
        }))
    }
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
