//! A slot's dead letters: burying a message (durably, with a `dead_lettered`
//! event), listing, replaying as new messages and purging.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{wake, AgentSlot, Inner};
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
        self.keep_dead(inner, d, &mut batch);
        self.submit(batch);
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = self.events.get() {
            let _ = tx.send(TreeEvent {
                event: "dead_lettered",
                name: self.name.to_string(),
                reason: Some(format!("{}: {}: {error}", env.id, reason.as_str())),
                at_ms: now_ms(),
            });
        }
        let _span =
            tracing::warn_span!("warden.dead_letter", agent = %self.name, message_id = %env.id)
                .entered();
        tracing::warn!(reason = ?reason, attempts, last_error = error, "message dead-lettered");
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
