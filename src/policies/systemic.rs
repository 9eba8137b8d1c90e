//! Systemic-failure pause, per agent, on by default: when consecutive *distinct*
//! messages fail, the fault is the agent's (a bug, a dead upstream, a revoked key),
//! not the messages', and the agent stops consuming its mailbox instead of draining
//! it into the dead letters.
//!
//! Rules (documented in docs/runtime-semantics.md):
//! - A failed attempt (error, timeout, panic, non-retryable error) of a message other
//!   than the last one that failed adds one to the *streak*; a success resets it.
//!   One poison message failing again and again is a streak of one: it is retried
//!   and dead-lettered as usual.
//! - When the streak reaches `after` (default 3), the agent **pauses**: the failure
//!   that tripped it is not charged to the message (refunded), messages wait in the
//!   mailbox, the pause is visible (`paused` in `tree` and `stats`, a `paused` event,
//!   an error in the log).
//! - After the cool-down (default 5 s, doubling per failed trial up to 5 min) one
//!   **trial** runs: first the message behind the head (the head failed last), then
//!   alternately the head and the one behind it, so that a run of poison messages at
//!   the head cannot keep a healthy agent paused (a successful trial may so be
//!   handled before the head). A trial's failure is never charged; its success
//!   resumes the agent. `warden ctl resume` resumes at once.
//! - While paused nothing is dead-lettered for failing, so a long outage loses
//!   nothing; with the defaults at most `after - 1` messages are dead-lettered
//!   before the pause (each after its `max_attempts`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Instant;

use serde::Serialize;

/// `[agent.NAME] pause_after = 3`, `pause_cool_down = "5s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemicSpec {
    /// Distinct messages failing in a row that pause the agent (0: never pause).
    pub after: u32,
    /// First cool-down before a trial.
    pub cool_down: Duration,
    /// Longest cool-down (it doubles after each failed trial).
    pub max_cool_down: Duration,
}

impl Default for SystemicSpec {
    fn default() -> Self {
        SystemicSpec {
            after: 3,
            cool_down: Duration::from_secs(5),
            max_cool_down: Duration::from_secs(300),
        }
    }
}

/// What a failed attempt means for its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Count it, as usual.
    Charge,
    /// Do not count it: the agent is paused (`Some(reason)` when it paused just now).
    Refund(Option<String>),
}

/// Which message may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Not paused: the head, as usual.
    Head,
    /// A trial with the message at this queue index (0 or 1).
    Trial(usize),
    /// Paused: look again after this long.
    Wait(Duration),
}

/// The pause, for `tree` and `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseSnapshot {
    /// Why the agent paused.
    pub reason: String,
    /// Trials that failed since.
    pub failed_trials: u32,
    /// Milliseconds until the next trial (0: due or running).
    pub next_trial_in_ms: u64,
}

#[derive(Debug)]
struct Paused {
    reason: String,
    until: Instant,
    cool: Duration,
    trials: u32,
    trial: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    spec: SystemicSpec,
    last: Option<u64>,
    streak: u32,
    paused: Option<Paused>,
    pauses: u64,
}

/// One agent's streak and pause.
#[derive(Debug)]
pub struct Systemic {
    inner: Mutex<Inner>,
    /// True while a streak or a pause exists: the message path (every delivery and
    /// every ack) reads only this when all is well, never the lock.
    engaged: AtomicBool,
}

impl Systemic {
    /// Not paused, no streak.
    pub fn new(spec: SystemicSpec) -> Self {
        Systemic {
            inner: Mutex::new(Inner {
                spec,
                ..Inner::default()
            }),
            engaged: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the spec (a config reload). A different spec forgets the streak
    /// and ends a pause; the same spec changes nothing.
    pub fn set_spec(&self, spec: SystemicSpec) {
        let mut g = self.lock();
        if g.spec == spec {
            return;
        }
        g.spec = spec;
        g.streak = 0;
        g.last = None;
        g.paused = None;
        self.engaged.store(false, Ordering::Release);
    }

    /// May a delivery start at `now`, with `queued` messages waiting?
    pub fn admit(&self, now: Instant, queued: usize) -> Admit {
        if !self.engaged.load(Ordering::Acquire) {
            return Admit::Head;
        }
        let mut g = self.lock();
        let Some(p) = &mut g.paused else {
            return Admit::Head;
        };
        if p.trial.is_some() {
            return Admit::Wait(p.cool.min(Duration::from_millis(250)));
        }
        if now < p.until {
            return Admit::Wait(p.until - now);
        }
        // The head is the message that failed last: the first trial takes the one
        // behind it (a run of poison resolves at the first cool-down), then they
        // alternate.
        let index = if p.trials % 2 == 0 && queued > 1 {
            1
        } else {
            0
        };
        Admit::Trial(index)
    }

    /// The trial of message `seq` started.
    pub fn trial_started(&self, seq: u64) {
        if let Some(p) = &mut self.lock().paused {
            p.trial = Some(seq);
        }
    }

    /// A trial ended without a verdict (interrupted): the next one may start.
    pub fn trial_released(&self) {
        if let Some(p) = &mut self.lock().paused {
            p.trial = None;
        }
    }

    /// An attempt of message `seq` failed with `error` at `now`.
    pub fn on_failure(&self, seq: u64, error: &str, now: Instant) -> Verdict {
        let mut g = self.lock();
        let spec = g.spec;
        if spec.after == 0 {
            return Verdict::Charge;
        }
        self.engaged.store(true, Ordering::Release);
        if let Some(p) = &mut g.paused {
            p.trial = None;
            p.trials += 1;
            p.cool = (p.cool * 2).min(spec.max_cool_down);
            p.until = now + p.cool;
            return Verdict::Refund(None);
        }
        if g.last != Some(seq) {
            g.streak += 1;
            g.last = Some(seq);
        }
        if g.streak < spec.after {
            return Verdict::Charge;
        }
        let reason = format!(
            "{} different messages failed in a row (last: {error}): the fault looks like the \
             agent's, not the messages'",
            g.streak
        );
        g.paused = Some(Paused {
            reason: reason.clone(),
            until: now + spec.cool_down,
            cool: spec.cool_down,
            trials: 0,
            trial: None,
        });
        g.pauses += 1;
        Verdict::Refund(Some(reason))
    }

    /// An attempt succeeded. Returns true when that ended a pause.
    pub fn on_success(&self) -> bool {
        if !self.engaged.load(Ordering::Acquire) {
            return false;
        }
        let mut g = self.lock();
        self.engaged.store(false, Ordering::Release);
        g.streak = 0;
        g.last = None;
        g.paused.take().is_some()
    }

    /// Ends a pause now (`warden ctl resume`). Returns true when it was paused.
    pub fn resume(&self) -> bool {
        self.on_success()
    }

    /// The pause, if paused.
    pub fn snapshot(&self, now: Instant) -> Option<PauseSnapshot> {
        let g = self.lock();
        let p = g.paused.as_ref()?;
        Some(PauseSnapshot {
            reason: p.reason.clone(),
            failed_trials: p.trials,
            next_trial_in_ms: p.until.saturating_duration_since(now).as_millis() as u64,
        })
    }

    /// Times it paused since the daemon started.
    pub fn pauses(&self) -> u64 {
        self.lock().pauses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SystemicSpec {
        SystemicSpec {
            after: 3,
            cool_down: Duration::from_secs(5),
            max_cool_down: Duration::from_secs(20),
        }
    }

    #[test]
    fn one_poison_message_failing_again_is_a_streak_of_one() {
        let s = Systemic::new(spec());
        let t = Instant::now();
        for _ in 0..10 {
            assert_eq!(s.on_failure(7, "boom", t), Verdict::Charge);
        }
        assert_eq!(s.admit(t, 5), Admit::Head);
    }

    #[test]
    fn distinct_failures_pause_and_trials_alternate_until_a_success() {
        let s = Systemic::new(spec());
        let t = Instant::now();
        assert_eq!(s.on_failure(1, "e", t), Verdict::Charge);
        assert_eq!(s.on_failure(2, "e", t), Verdict::Charge);
        assert!(matches!(s.on_failure(3, "e", t), Verdict::Refund(Some(_))));
        assert_eq!(s.admit(t, 5), Admit::Wait(Duration::from_secs(5)));
        let t1 = t + Duration::from_secs(5);
        assert_eq!(
            s.admit(t1, 5),
            Admit::Trial(1),
            "first the one behind the head"
        );
        assert_eq!(s.admit(t1, 1), Admit::Trial(0), "unless the head is alone");
        s.trial_started(4);
        assert!(matches!(s.admit(t1, 5), Admit::Wait(_)));
        // a failed trial is refunded and doubles the cool-down
        assert_eq!(s.on_failure(4, "e", t1), Verdict::Refund(None));
        assert_eq!(s.admit(t1, 5), Admit::Wait(Duration::from_secs(10)));
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(s.admit(t2, 5), Admit::Trial(0), "then the head");
        assert_eq!(s.on_failure(4, "e", t2), Verdict::Refund(None));
        assert_eq!(
            s.admit(t2, 5),
            Admit::Wait(Duration::from_secs(20)),
            "capped"
        );
        assert!(s.snapshot(t2).is_some());
        assert!(s.on_success());
        assert_eq!(s.admit(t2, 5), Admit::Head);
        assert_eq!(s.snapshot(t2), None);
        assert_eq!(s.pauses(), 1);
    }

    #[test]
    fn zero_never_pauses() {
        let s = Systemic::new(SystemicSpec { after: 0, ..spec() });
        for seq in 0..100 {
            assert_eq!(s.on_failure(seq, "e", Instant::now()), Verdict::Charge);
        }
    }
}
