//! The suspect gate: after a daemon crash, the messages that were in flight together
//! run one at a time, so that a message that crashes the whole daemon is found and
//! charged, and no innocent bystander is.
//!
//! Guarantees (G4, "only the culprit is charged"):
//! - Recovery charges a daemon crash to a message only when it was the **only**
//!   message in flight (its attempt marker the only one still running). When several
//!   were in flight, none is charged: each becomes a *suspect* (a durable `U` record)
//!   and its interrupted attempt is run again.
//! - While any suspect remains, durable deliveries pass this gate one at a time,
//!   daemon-wide: each runs alone, so if it crashes the daemon again it is the only
//!   one in flight and is charged. A suspect stops being one when an attempt of it
//!   finishes (acked, failed, dead-lettered); then the next delivery may start. When
//!   the last suspect is cleared the gate opens for good and costs one atomic load
//!   per delivery.
//! - A delivery interrupted from outside (its host killed) leaves its suspect as it
//!   was.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Runs when the gate may let a waiting delivery through.
pub type Waker = Box<dyn FnOnce() + Send>;

/// How a delivery may pass the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// No suspects: go ahead, untracked.
    Open,
    /// Suspects remain and nothing else runs: go ahead alone; call
    /// [`CrashGate::leave`] when the attempt ends.
    Alone,
    /// Another delivery runs alone: the waker will be called.
    Wait,
}

/// See the module docs.
pub struct CrashGate {
    active: AtomicBool,
    inner: Mutex<Inner>,
}

struct Inner {
    suspects: HashSet<(String, u64)>,
    running: bool,
    waiters: Vec<Waker>,
}

impl CrashGate {
    /// A gate holding `suspects` (agent, sequence); open when there are none.
    pub fn new(suspects: HashSet<(String, u64)>) -> Self {
        CrashGate {
            active: AtomicBool::new(!suspects.is_empty()),
            inner: Mutex::new(Inner {
                suspects,
                running: false,
                waiters: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while suspects remain (deliveries run one at a time).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Suspects left.
    pub fn suspects(&self) -> usize {
        if !self.is_active() {
            return 0;
        }
        self.lock().suspects.len()
    }

    /// True when (agent, seq) is a suspect.
    pub fn is_suspect(&self, agent: &str, seq: u64) -> bool {
        self.is_active() && self.lock().suspects.contains(&(agent.to_string(), seq))
    }

    /// Asks to start an attempt; `wake` is kept and called later when the answer is
    /// [`Pass::Wait`].
    pub fn enter(&self, wake: impl FnOnce() + Send + 'static) -> Pass {
        if !self.is_active() {
            return Pass::Open;
        }
        let mut g = self.lock();
        if g.suspects.is_empty() {
            return Pass::Open;
        }
        if g.running {
            g.waiters.push(Box::new(wake));
            return Pass::Wait;
        }
        g.running = true;
        Pass::Alone
    }

    /// Drops the suspects of `agent` (an agent no host runs any more).
    pub fn forget_agent(&self, agent: &str) {
        self.forget(|a, _| a == agent);
    }

    /// Drops one suspect (it was dead-lettered without an attempt).
    pub fn forget_one(&self, agent: &str, seq: u64) {
        self.forget(|a, s| a == agent && s == seq);
    }

    fn forget(&self, gone: impl Fn(&str, u64) -> bool) {
        if !self.is_active() {
            return;
        }
        let waiters = {
            let mut g = self.lock();
            g.suspects.retain(|(a, s)| !gone(a, *s));
            if !g.suspects.is_empty() {
                return;
            }
            self.active.store(false, Ordering::Release);
            std::mem::take(&mut g.waiters)
        };
        for w in waiters {
            w();
        }
    }

    /// An attempt that passed [`Pass::Alone`] ended. `finished`: it ran to an end of
    /// its own (so (agent, seq) is no longer a suspect); false when it was
    /// interrupted from outside. Returns true when (agent, seq) stopped being a
    /// suspect now (the caller removes its record).
    pub fn leave(&self, agent: &str, seq: u64, finished: bool) -> bool {
        let (cleared, waiters) = {
            let mut g = self.lock();
            g.running = false;
            let cleared = finished && g.suspects.remove(&(agent.to_string(), seq));
            if g.suspects.is_empty() {
                self.active.store(false, Ordering::Release);
            }
            (cleared, std::mem::take(&mut g.waiters))
        };
        for w in waiters {
            w();
        }
        cleared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    fn set(items: &[(&str, u64)]) -> HashSet<(String, u64)> {
        items.iter().map(|(a, s)| (a.to_string(), *s)).collect()
    }

    #[test]
    fn without_suspects_the_gate_is_open() {
        let g = CrashGate::new(HashSet::new());
        assert_eq!(g.enter(|| {}), Pass::Open);
        assert_eq!(g.enter(|| {}), Pass::Open);
        assert!(!g.is_active());
    }

    #[test]
    fn suspects_run_one_at_a_time_and_wake_the_waiters() {
        let g = CrashGate::new(set(&[("a", 1), ("b", 7)]));
        let woken = Arc::new(AtomicUsize::new(0));
        assert_eq!(g.enter(|| {}), Pass::Alone);
        let w = woken.clone();
        assert_eq!(
            g.enter(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
            Pass::Wait
        );
        // interrupted: still a suspect
        assert!(!g.leave("a", 1, false));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert_eq!(g.suspects(), 2);
        assert_eq!(g.enter(|| {}), Pass::Alone);
        assert!(g.leave("a", 1, true));
        assert_eq!(g.enter(|| {}), Pass::Alone);
        // a non-suspect finishing clears nothing
        assert!(!g.leave("c", 3, true));
        assert_eq!(g.enter(|| {}), Pass::Alone);
        assert!(g.leave("b", 7, true));
        assert!(!g.is_active());
        assert_eq!(g.enter(|| {}), Pass::Open);
    }
}
