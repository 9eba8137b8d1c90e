//! Deliveries of a slot: which message a replica takes next (order, backoff,
//! breaker, systemic pause, the suspect gate), replica ownership across host
//! incarnations, attempt markers, and every way an attempt ends: committed, failed
//! (retried, refunded or dead-lettered), rate-limited, interrupted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Instant;
use ractor::{ActorCell, ActorId, ActorRef};
use serde_json::Value;

use super::{owner_id, take_settled, take_waker, wake, AgentSlot, InFlight, Next};
use crate::actors::agent::EntryChanges;
use crate::actors::wake::HostMsg;
use crate::envelope::Envelope;
use crate::policies::breaker::{Breaker, BreakerState};
use crate::policies::systemic::{Admit, Verdict};
use crate::store::dead::DeadReason;
use crate::store::suspects::Pass;
use crate::store::{mailbox, Batch};

impl AgentSlot {
    /// Takes the next message for `replica`, or parks `host` if there is none.
    pub(crate) fn next(&self, replica: usize, host: &ActorRef<HostMsg>) -> Next {
        let mut inner = self.lock();
        if owner_id(&inner.owners[replica]) != Some(host.get_id()) {
            return Next::Stale;
        }
        if inner.in_flight[replica].is_some() {
            // A predecessor's hand-off is still committing: its completion wakes us.
            inner.idle.retain(|(r, _)| *r != replica);
            inner.idle.push((replica, host.clone()));
            return Next::Idle;
        }
        let Some(head) = inner.queue.front() else {
            inner.idle.retain(|(r, _)| *r != replica);
            inner.idle.push((replica, host.clone()));
            return Next::Idle;
        };
        let now = Instant::now();
        if let Some(at) = head.not_before {
            if at > now {
                return Next::WaitFor(at - now);
            }
        }
        let mut pick = match self.systemic.admit(now, inner.queue.len()) {
            Admit::Head => None,
            Admit::Trial(i) => Some(i),
            Admit::Wait(d) => return Next::WaitFor(d),
        };
        let alone = match &self.store {
            Some(store) => {
                let h = host.clone();
                match store.gate.enter(move || {
                    let _ = h.cast(HostMsg::Wake);
                }) {
                    Pass::Open => false,
                    Pass::Alone => true,
                    Pass::Wait => return Next::Idle,
                }
            }
            None => false,
        };
        if let Some(b) = self.breaker() {
            if let Err(wait) = b.admit(now) {
                if alone {
                    self.leave_gate(head.env.id.seq, false);
                }
                return Next::WaitFor(wait);
            }
            // Half-open trials alternate between the head and the message behind it:
            // a poison message at the head cannot keep the breaker open for good.
            let snap = b.snapshot().expect("enabled");
            if pick.is_none()
                && snap.state == BreakerState::HalfOpen
                && snap.trips % 2 == 0
                && inner.queue.len() > 1
            {
                pick = Some(1);
            }
        }
        let env = match pick {
            Some(i) => {
                let env = inner.queue.remove(i).expect("index checked").env;
                self.systemic.trial_started(env.id.seq);
                tracing::info!(agent = %self.name, message_id = %env.id, "trial delivery");
                env
            }
            None => inner.queue.pop_front().expect("head exists").env,
        };
        inner.in_flight[replica] = Some(InFlight {
            env: env.clone(),
            committing: false,
            alone,
        });
        Next::Deliver(env)
    }

    /// The host that owns `replica`, if any (it may be dying).
    pub(crate) fn owner(&self, replica: usize) -> Option<ActorCell> {
        self.lock().owners[replica].clone()
    }

    /// Makes host `who` the owner of `replica`; a message its predecessor had in
    /// flight goes back to the head of the queue (an interrupted attempt, not counted).
    pub(crate) fn claim(&self, replica: usize, who: ActorCell) {
        let mut inner = self.lock();
        if let Some(f) = take_settled(&mut inner.in_flight[replica]) {
            self.systemic.trial_released();
            self.end_attempt(&f, false);
            inner.insert_sorted(f.env, None);
        }
        inner.idle.retain(|(r, _)| *r != replica);
        inner.owners[replica] = Some(who);
    }

    /// True while host `who` owns `replica`.
    pub(crate) fn owns(&self, replica: usize, who: ActorId) -> bool {
        owner_id(&self.lock().owners[replica]) == Some(who)
    }

    /// The head message, if it can be delivered now: (sequence, attempt).
    pub(crate) fn ready_head(&self) -> Option<(u64, u32)> {
        let inner = self.lock();
        let head = inner.queue.front()?;
        if head.not_before.is_some_and(|t| t > Instant::now()) {
            return None;
        }
        Some((head.env.id.seq, head.env.attempt))
    }

    /// Adds "attempt `attempt` of message `seq` starts" to `batch` (durable only).
    pub(crate) fn write_attempt(&self, seq: u64, attempt: u32, batch: &mut Batch) {
        self.write_marker(seq, attempt, true, batch);
    }

    /// Adds the attempt marker of message `seq` to `batch`: `attempt` attempts
    /// started, the last one still `running` or not; none when `attempt` is 0.
    pub(super) fn write_marker(&self, seq: u64, attempt: u32, running: bool, batch: &mut Batch) {
        if self.store.is_some() {
            mailbox::mark_attempt(batch, &self.name, seq, attempt, running);
        }
    }

    /// Submits a correction: message `seq` was marked as starting attempt `attempt`
    /// but never started it (its host stopped first).
    pub(crate) fn unmark_attempt(&self, seq: u64, attempt: u32) {
        let mut b = Batch::default();
        self.write_marker(seq, attempt.saturating_sub(1), false, &mut b);
        self.submit(b);
    }

    /// The batch recording that attempt `env.attempt` of `env` starts (durable only).
    pub(crate) fn attempt_batch(&self, env: &Envelope) -> Batch {
        let mut b = Batch::default();
        self.write_marker(env.id.seq, env.attempt, true, &mut b);
        b
    }

    /// True while the deliveries of durable agents run one at a time (suspects of a
    /// daemon death remain): attempt markers must then not be written ahead.
    pub(crate) fn gate_active(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.gate.is_active())
    }

    /// Tells the suspect gate that the attempt of `f` ended.
    pub(super) fn end_attempt(&self, f: &InFlight, finished: bool) {
        if f.alone {
            self.leave_gate(f.env.id.seq, finished);
        }
    }

    pub(super) fn leave_gate(&self, seq: u64, finished: bool) {
        if let Some(store) = &self.store {
            if store.gate.leave(&self.name, seq, finished) {
                let mut b = Batch::default();
                mailbox::clear_suspect(&mut b, &self.name, seq);
                self.submit(b);
            }
        }
    }

    /// Adds the ack of `env` (and the new state) to a commit batch (durable only).
    pub(crate) fn write_ack(
        &self,
        env: &Envelope,
        state: Option<&Value>,
        entries: &EntryChanges,
        batch: &mut Batch,
    ) {
        if self.store.is_some() {
            mailbox::ack(batch, &self.name, env.id.seq, state);
            for (k, v) in entries {
                crate::store::entries::put(batch, &self.name, k, v.as_ref());
            }
        }
    }

    /// Starts committing the hand-off of `replica`'s in-flight message. Returns false
    /// (and changes nothing) when `who` no longer owns the replica. From here on only
    /// [`commit_done`](Self::commit_done) or [`commit_failed`](Self::commit_failed),
    /// called when the commit's outcome is known, resolve the message: a host killed
    /// while it waits cannot undo or repeat a committed hand-off.
    pub(crate) fn begin_commit(&self, replica: usize, who: ActorId) -> bool {
        let mut inner = self.lock();
        if owner_id(&inner.owners[replica]) != Some(who) {
            return false;
        }
        match &mut inner.in_flight[replica] {
            Some(f) => {
                f.committing = true;
                true
            }
            None => false,
        }
    }

    /// The hand-off of `replica`'s message is durable: ack it in memory and, when
    /// `state` is given, replace the state; apply the entry changes. Runs on the
    /// committer thread, in commit order, whether or not the host that started the
    /// commit still lives.
    pub(crate) fn commit_done(&self, replica: usize, state: Option<Value>, entries: EntryChanges) {
        if !entries.is_empty() {
            let mut e = self.entries.write().unwrap_or_else(|p| p.into_inner());
            for (k, v) in entries {
                match v {
                    Some(v) => e.insert(k, v),
                    None => e.remove(&k),
                };
            }
        }
        let mut inner = self.lock();
        if let Some(f) = inner.in_flight[replica].take() {
            self.end_attempt(&f, true);
            if !inner.spared.is_empty() {
                inner.spared.remove(&f.env.id.seq);
            }
        }
        if let Some(state) = state {
            inner.state = state;
        }
        let waker = take_waker(&mut inner, replica);
        drop(inner);
        if let Some(b) = self.breaker() {
            b.on_success();
        }
        if self.systemic.on_success() {
            tracing::info!(agent = %self.name, "a trial succeeded: the agent resumes");
            self.event("resumed", None);
        }
        self.stats.handled.fetch_add(1, Ordering::Relaxed);
        wake(waker);
    }

    /// The hand-off's commit failed (a store error, not the message's fault): the
    /// message goes back to the head of the queue, its attempt not counted.
    pub(crate) fn commit_failed(&self, replica: usize) {
        let mut inner = self.lock();
        if let Some(f) = inner.in_flight[replica].take() {
            self.end_attempt(&f, false);
            inner.insert_sorted(f.env, None);
        }
        let waker = take_waker(&mut inner, replica);
        drop(inner);
        if let Some(b) = self.breaker() {
            b.release();
        }
        wake(waker);
    }

    /// Records a failed attempt of `replica`'s in-flight message: retried after backoff
    /// at the head of the queue, or dead-lettered when `retry` is false or attempts are
    /// used up. Returns whether a message was in flight.
    pub(crate) fn fail(&self, replica: usize, who: ActorId, error: &str, retry: bool) -> bool {
        let mut inner = self.lock();
        if owner_id(&inner.owners[replica]) != Some(who) {
            return false;
        }
        let Some(f) = take_settled(&mut inner.in_flight[replica]) else {
            return false;
        };
        self.end_attempt(&f, true);
        let env = f.env;
        self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let breaker_trial = self
            .breaker
            .snapshot()
            .is_some_and(|b| b.state == BreakerState::HalfOpen);
        let verdict = self.systemic.on_failure(env.id.seq, error, now);
        let spec = self.spec();
        // The last attempt failing as the breaker opens (or as its half-open trial
        // fails) does not dead-letter the message: the breaker blames the agent,
        // and the message waits for the trial after the cool-down, so an open
        // breaker cannot lose one message per few cool-downs.
        // Until another message succeeds: once one has since this message was
        // spared, the agent is healthy and the failure is this message's own (a
        // poison message cannot keep the breaker open).
        let opens = retry && self.breaker().is_some_and(Breaker::failure_opens);
        let handled = self.stats.handled.load(Ordering::Relaxed);
        let spared = (breaker_trial || opens)
            && retry
            && env.attempt >= spec.max_attempts
            && inner
                .spared
                .get(&env.id.seq)
                .is_none_or(|since| *since == handled);
        if spared {
            inner.spared.insert(env.id.seq, handled);
        } else {
            inner.spared.remove(&env.id.seq);
        }
        let trial_exhausted = spared;
        if trial_exhausted || verdict != Verdict::Charge {
            // Not the message's fault (the agent is failing for every message): the
            // attempt is refunded and the message waits at the head, never
            // dead-lettered for it.
            if let Some(b) = self.breaker() {
                b.on_failure(now);
            }
            if let Verdict::Refund(Some(reason)) = &verdict {
                tracing::error!(agent = %self.name, %reason, "agent paused: its messages wait; \
                    a trial runs after the cool-down, or `warden ctl resume` resumes it");
                self.event("paused", Some(reason.clone()));
            }
            let mut b = Batch::default();
            self.write_marker(env.id.seq, env.attempt.saturating_sub(1), false, &mut b);
            self.submit(b);
            inner.insert_sorted(env, None);
            return true;
        }
        if let Some(b) = self.breaker() {
            if retry {
                b.on_failure(Instant::now());
            } else {
                b.release();
            }
        }
        if !retry || env.attempt >= spec.max_attempts {
            let reason = if retry {
                DeadReason::MaxAttempts
            } else {
                DeadReason::NonRetryable
            };
            self.bury(&mut inner, &env, reason, error, env.attempt);
        } else {
            // The store's attempt marker already counts this attempt; it is no longer
            // running (a daemon death now is not this message's doing).
            let mut b = Batch::default();
            self.write_marker(env.id.seq, env.attempt, false, &mut b);
            self.submit(b);
            let delay = spec.backoff.delay(env.attempt);
            inner.insert_sorted(
                Arc::new(env.next_attempt()),
                Some(crate::clock::after(delay)),
            );
        }
        true
    }

    /// Puts `replica`'s in-flight message back at the head, its attempt not counted
    /// (the store could not record the attempt: not the message's fault).
    pub(crate) fn put_back(&self, replica: usize, who: ActorId) {
        self.give_back(replica, who, None);
    }

    /// Puts `replica`'s in-flight message back at the head, to be delivered after
    /// `delay`, without counting the attempt (the upstream rate-limited us).
    pub(crate) fn retry_later(&self, replica: usize, who: ActorId, delay: Duration) {
        self.give_back(replica, who, Some(delay));
    }

    /// Back to the head, not counted; with a `delay`, the attempt ran (a refusal
    /// from upstream) and its marker goes back to the attempts before it.
    fn give_back(&self, replica: usize, who: ActorId, delay: Option<Duration>) {
        let mut inner = self.lock();
        if owner_id(&inner.owners[replica]) != Some(who) {
            return;
        }
        if let Some(f) = take_settled(&mut inner.in_flight[replica]) {
            self.systemic.trial_released();
            self.end_attempt(&f, delay.is_some());
            if delay.is_some() {
                let mut b = Batch::default();
                self.write_marker(f.env.id.seq, f.env.attempt.saturating_sub(1), false, &mut b);
                self.submit(b);
            }
            inner.insert_sorted(f.env, delay.map(crate::clock::after));
        }
        if let Some(b) = self.breaker() {
            b.release();
        }
    }

    /// A replica's host is gone: forget it as a waker and put its in-flight message
    /// back. When the incarnation failed in its own code (`counted`: a panic or fatal
    /// error), the attempt counts as failed (retry after backoff, or dead letter);
    /// when it was killed or stopped from outside, the attempt was interrupted, not
    /// failed, and the message goes back to the head unchanged. Returns whether a
    /// message was in flight.
    pub(crate) fn replica_exited(
        &self,
        replica: usize,
        who: ActorId,
        reason: &str,
        counted: bool,
    ) -> bool {
        if !self.owns(replica, who) {
            return false; // a stale incarnation: its successor already took over
        }
        self.note_crash_cause(replica);
        let in_flight = if counted {
            self.fail(replica, who, reason, true)
        } else {
            if let Some(b) = self.breaker() {
                b.release();
            }
            let mut inner = self.lock();
            match take_settled(&mut inner.in_flight[replica]) {
                Some(f) => {
                    self.systemic.trial_released();
                    self.end_attempt(&f, false);
                    inner.insert_sorted(f.env, None);
                    true
                }
                None => false,
            }
        };
        let waker = {
            let mut inner = self.lock();
            inner.owners[replica] = None;
            inner.idle.retain(|(r, _)| *r != replica);
            if inner.queue.is_empty() {
                None
            } else {
                inner.idle.pop()
            }
        };
        wake(waker);
        in_flight
    }
}
