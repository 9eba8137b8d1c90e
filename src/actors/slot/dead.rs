//! A slot's dead letters: burying a message (durably, with a `dead_lettered`
//! event), listing, replaying as new messages and purging.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::ActorId;

use super::{owner_id, take_settled, wake, AgentSlot, Inner, Parts};
use crate::actors::event::TreeEvent;
use crate::envelope::{now_ms, Envelope, MessageId};
use crate::store::dead::{DeadLetter, DeadReason};
use crate::store::{mailbox, Batch};

/// What a replayed dead letter's deadline becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewDeadline {
    /// The one it had (a letter dead on its deadline dies again at once).
    Keep,
    /// None: the replay may take as long as it takes.
    Clear,
    /// This one (ms since the epoch).
    At(u64),
}

impl AgentSlot {
    pub(super) fn write_dead(&self, d: &DeadLetter, batch: &mut Batch) {
        if let Some(store) = &self.store {
            let seq = d.envelope.id.seq;
            store.gate.forget_one(&self.name, seq);
            mailbox::bury(batch, d);
        }
    }

    pub(super) fn bury(
        &self,
        inner: &mut Inner,
        env: &Envelope,
        reason: DeadReason,
        error: &str,
        attempts: u32,
    ) {
        let d = DeadLetter {
            attempts,
            envelope: env.clone(),
            reason,
            last_error: error.to_string(),
            dead_ms: now_ms(),
        };
        let mut batch = Batch::default();
        self.write_dead(&d, &mut batch);
        let notice = self.fallback_notice(&d);
        self.keep_dead(inner, d, &mut batch);
        match (notice, &self.store) {
            // the notice goes once the burial is durable (a crash between the two
            // is made up at the next start: resend_dead_notices)
            (Some(send), Some(store)) => {
                let name = self.name.clone();
                store.submit(batch, move |r| match r {
                    Ok(()) => send(),
                    Err(e) => tracing::error!(agent = %name, error = %e, "store write failed"),
                });
            }
            (Some(send), None) => {
                self.submit(batch);
                // not under this slot's lock: the target takes its own
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => drop(h.spawn(async move { send() })),
                    Err(_) => drop(std::thread::spawn(send)),
                }
            }
            (None, _) => self.submit(batch),
        }
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = self.events.get() {
            let _ = tx.send(TreeEvent {
                event: "dead_lettered",
                name: self.name.to_string(),
                reason: Some(format!("{}: {}: {error}", env.id, reason.as_str())),
                at_ms: now_ms(),
            });
        }
        let span = tracing::warn_span!("warden.dead_letter", agent = %self.name,
            message_id = %env.id, correlation = %env.correlation, reason = reason.as_str(),
            trace_id = tracing::field::Empty);
        let trace_id = crate::telemetry::trace::trace_id(env.trace.as_deref());
        if !trace_id.is_empty() {
            span.record("trace_id", trace_id);
        }
        crate::telemetry::trace::join(&span, env.trace.as_deref());
        let _span = span.entered();
        tracing::warn!(attempts, last_error = error, "message dead-lettered");
    }

    /// With `on_dead_letter = "AGENT"`: what sends `d` to AGENT as
    /// `{"dead_letter": {...}}` (its `dlq list` entry), in the same correlation,
    /// with the idempotency key `dead-letter:<id>`.
    fn fallback_notice(&self, d: &DeadLetter) -> Option<Box<dyn FnOnce() + Send>> {
        let spec = self.spec();
        let target = spec.options.get("on_dead_letter")?.as_str()?.to_string();
        let slot = (self.resolve.get()?)(&target);
        let from = self.name.clone();
        let Some(slot) = slot else {
            tracing::error!(agent = %from, target, "on_dead_letter names no agent of the tree; the dead letter stays only here");
            return None;
        };
        let env = &d.envelope;
        let parts = Parts {
            payload: serde_json::json!({ "dead_letter": d.to_json() }),
            correlation: Some(env.correlation.clone()),
            causation: Some(env.id.clone()),
            hops: env.hops.saturating_add(1),
            deadline_ms: None,
            key: Some(format!("dead-letter:{}", env.id)),
            reply_to: None,
            trace: env.trace.clone(),
            part: env.part.clone(),
            on_accept: None,
        };
        Some(Box::new(move || {
            if let Err(u) = slot.accept(parts) {
                tracing::error!(agent = %from, target = %slot.name, error = %u.error,
                    "on_dead_letter: the dead letter could not be sent; it stays a dead letter here");
            }
        }))
    }

    /// Sends again, to `on_dead_letter`, the dead letters buried within the
    /// idempotency retention: a notice a crash kept from being sent goes now, and
    /// the key keeps the others from being sent twice.
    pub(crate) fn resend_dead_notices(&self) {
        let since = now_ms().saturating_sub(self.retention.as_millis() as u64);
        let dead: Vec<DeadLetter> = self
            .lock()
            .dead
            .iter()
            .filter(|d| d.dead_ms >= since)
            .cloned()
            .collect();
        for d in dead {
            if let Some(send) = self.fallback_notice(&d) {
                send();
            }
        }
    }

    /// Dead-letters `replica`'s in-flight message now with `reason`: `attempted`
    /// when the attempt ran (a workflow's verdict), not when it never started (hop
    /// budget, deadline).
    pub(crate) fn dead_letter(
        &self,
        replica: usize,
        who: ActorId,
        reason: DeadReason,
        error: &str,
        attempted: bool,
    ) {
        let mut inner = self.lock();
        if owner_id(&inner.owners[replica]) != Some(who) {
            return;
        }
        if let Some(f) = take_settled(&mut inner.in_flight[replica]) {
            self.systemic.trial_released();
            self.end_attempt(&f, true);
            let env = f.env;
            self.bury(
                &mut inner,
                &env,
                reason,
                error,
                if attempted {
                    env.attempt
                } else {
                    env.attempt.saturating_sub(1)
                },
            );
        }
    }

    /// Keeps `d` among the dead letters, purging the oldest past `dlq_max` (in
    /// `batch`, so the purge commits with the burial): counted, logged, never
    /// silent.
    pub(super) fn keep_dead(&self, inner: &mut Inner, d: DeadLetter, batch: &mut Batch) {
        inner.dead.push(d);
        self.trim_dead(inner, batch);
    }

    /// Purges the oldest dead letters past `dlq_max` into `batch`.
    pub(super) fn trim_dead(&self, inner: &mut Inner, batch: &mut Batch) {
        let max = self.spec().dlq_max.max(1);
        if inner.dead.len() <= max {
            return;
        }
        let excess = inner.dead.len() - max;
        for old in inner.dead.drain(..excess) {
            if self.store.is_some() {
                mailbox::unbury(batch, &self.name, old.envelope.id.seq);
            }
            tracing::warn!(agent = %self.name, message_id = %old.envelope.id, dlq_max = max,
                "oldest dead letter purged: the agent keeps at most dlq_max");
        }
        self.stats
            .dead_purged
            .fetch_add(excess as u64, Ordering::Relaxed);
    }

    /// How many dead letters are kept.
    pub fn dead_count(&self) -> usize {
        self.lock().dead.len()
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// Re-enqueues dead letters (all, or the one with `id`) as new messages (new ids,
    /// attempts reset, at the back of the queue). Returns the new ids.
    pub fn replay_dead(&self, id: Option<&MessageId>, deadline: NewDeadline) -> Vec<MessageId> {
        let mut inner = self.lock();
        let (take, keep): (Vec<DeadLetter>, Vec<DeadLetter>) = std::mem::take(&mut inner.dead)
            .into_iter()
            .partition(|d| id.is_none_or(|id| &d.envelope.id == id));
        inner.dead = keep;
        let mut batch = Batch::default();
        let mut ids = Vec::with_capacity(take.len());
        for d in take {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let deadline_ms = match deadline {
                NewDeadline::Keep => d.envelope.deadline_ms,
                NewDeadline::Clear => None,
                NewDeadline::At(ms) => Some(ms),
            };
            let env = Envelope {
                id: MessageId {
                    agent: self.name.clone(),
                    seq,
                },
                attempt: 1,
                enqueued_ms: now_ms(),
                deadline_ms,
                ..d.envelope
            };
            if self.store.is_some() {
                mailbox::unbury(&mut batch, &self.name, d.envelope.id.seq);
                self.write_message(&env, seq + 1, &mut batch);
            }
            ids.push(env.id.clone());
            inner.insert_sorted(Arc::new(env), None);
        }
        self.submit(batch);
        let waker = if ids.is_empty() {
            None
        } else {
            inner.idle.pop()
        };
        drop(inner);
        wake(waker);
        ids
    }

    /// Deletes dead letters (all, or the one with `id`). Returns how many.
    pub fn purge_dead(&self, id: Option<&MessageId>) -> usize {
        let mut inner = self.lock();
        let (gone, keep): (Vec<DeadLetter>, Vec<DeadLetter>) = std::mem::take(&mut inner.dead)
            .into_iter()
            .partition(|d| id.is_none_or(|id| &d.envelope.id == id));
        inner.dead = keep;
        drop(inner);
        let mut batch = Batch::default();
        if self.store.is_some() {
            for d in &gone {
                mailbox::unbury(&mut batch, &self.name, d.envelope.id.seq);
            }
        }
        self.submit(batch);
        gone.len()
    }
}
