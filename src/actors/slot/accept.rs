//! Accepting messages into a slot: capacity, idempotency keys, ids, and (durable)
//! the store write whose flush completes the accept; emitted messages reserved in
//! a handler's commit and published once it is durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::{wake, AgentSlot};
use crate::envelope::{now_ms, Envelope, MessageId, ReplyTo};
use crate::store::{mailbox, Batch, StoreError};

/// Longest idempotency key, in bytes: keys are remembered (in memory and on disk)
/// for the whole retention, so their size is bounded.
pub const MAX_KEY_LEN: usize = 256;

/// Most idempotency keys one agent remembers at once (with [`MAX_KEY_LEN`], at
/// most about 150 MB; with 36-byte UUIDs, about 40 MB).
pub const MAX_KEYS: usize = 500_000;

/// Why a send was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No agent by that name.
    #[error("{0}")]
    UnknownAgent(String),
    /// The mailbox holds `capacity` messages already.
    #[error(
        "mailbox of '{agent}' is full ({capacity} messages); retry later or raise mailbox_capacity"
    )]
    MailboxFull {
        /// The agent.
        agent: String,
        /// Its capacity.
        capacity: usize,
    },
    /// The idempotency key is longer than [`MAX_KEY_LEN`].
    #[error("the idempotency key is {len} bytes long; keys are at most {MAX_KEY_LEN} bytes")]
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// The agent remembers [`MAX_KEYS`] live idempotency keys already.
    #[error("'{agent}' remembers {MAX_KEYS} idempotency keys already; lower daemon.idempotency_retention, or send without a key")]
    KeysFull {
        /// The agent.
        agent: String,
    },
    /// The store could not make the message durable; it was not accepted.
    #[error("not accepted: {0}")]
    Store(#[from] StoreError),
}

/// A refused send, with the payload handed back when it was never accepted (an
/// unknown agent, a full mailbox), so the caller can retry or send it elsewhere.
/// `payload` is `None` only when the store failed after taking the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Undelivered {
    /// Why.
    #[source]
    pub error: SendError,
    /// The payload, back to the caller.
    pub payload: Option<Value>,
}

impl From<Undelivered> for SendError {
    fn from(u: Undelivered) -> Self {
        u.error
    }
}

/// The result of an accepted send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// The message's id (the first message's id for a duplicate).
    pub message_id: MessageId,
    /// True when the idempotency key was seen already and nothing was enqueued.
    pub duplicate: bool,
}

/// Everything of a new envelope but its id.
pub(crate) struct Parts {
    pub(crate) payload: Value,
    pub(crate) correlation: Option<Arc<str>>,
    pub(crate) causation: Option<MessageId>,
    pub(crate) hops: u32,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) key: Option<String>,
    pub(crate) reply_to: Option<ReplyTo>,
    pub(crate) trace: Option<String>,
    /// Its fan-out part, if any.
    pub(crate) part: Option<crate::envelope::Part>,
    /// Called with the message's correlation once it is known, before the
    /// message can be handled, to add writes to its accept (a task's budget).
    pub(crate) on_accept: Option<OnAccept>,
}

/// See [`Parts::on_accept`].
pub(crate) type OnAccept = Box<dyn FnOnce(&str, &mut Batch) + Send>;

impl Parts {
    fn into_envelope(self, id: MessageId) -> Envelope {
        let correlation = self
            .correlation
            .unwrap_or_else(|| Arc::from(id.to_string()));
        // a message from outside opens its own enqueue span (a new trace, or the
        // caller's); one a handler emitted continues that handling's span, its
        // enqueue being part of the handling's commit
        let trace = if self.causation.is_none() && crate::telemetry::trace::enabled() {
            crate::telemetry::trace::enqueue(self.trace, &id.agent, id.to_string(), &correlation)
        } else {
            self.trace
        };
        Envelope {
            correlation,
            id,
            payload: self.payload,
            causation: self.causation,
            hops: self.hops,
            attempt: 1,
            deadline_ms: self.deadline_ms,
            key: self.key,
            reply_to: self.reply_to,
            trace,
            enqueued_ms: now_ms(),
            part: self.part,
        }
    }
}

/// An accept in progress.
pub(crate) enum Accepting {
    /// Accepted (memory mailbox) or a duplicate.
    Done(Sent),
    /// Waiting for the store's flush.
    Flushing(MessageId, oneshot::Receiver<Result<(), StoreError>>),
}

impl AgentSlot {
    pub(super) fn write_message(&self, env: &Envelope, next_seq: u64, batch: &mut Batch) {
        mailbox::enqueue(batch, env, next_seq);
    }

    /// Accepts a message from outside the tree: capacity, idempotency, id, then (for
    /// a durable mailbox) a store write whose flush completes the accept.
    pub(crate) fn accept(self: &Arc<Self>, parts: Parts) -> Result<Accepting, Undelivered> {
        let now = now_ms();
        if let Some(k) = parts.key.as_ref().filter(|k| k.len() > MAX_KEY_LEN) {
            return Err(Undelivered {
                error: SendError::KeyTooLong { len: k.len() },
                payload: Some(parts.payload),
            });
        }
        let mut inner = self.lock();
        if inner.closed {
            return Err(Undelivered {
                error: SendError::UnknownAgent(format!("no agent '{}'; it was deleted", self.name)),
                payload: Some(parts.payload),
            });
        }
        if let Some(key) = &parts.key {
            if let Some(&(seq, expires)) = inner.keys.get(key) {
                if expires > now {
                    return Ok(Accepting::Done(Sent {
                        message_id: MessageId {
                            agent: self.name.clone(),
                            seq,
                        },
                        duplicate: true,
                    }));
                }
            }
        }
        let busy = inner.in_flight.iter().filter(|m| m.is_some()).count();
        if inner.queue.len() + busy + inner.reserved >= self.spec().mailbox_capacity {
            return Err(Undelivered {
                error: SendError::MailboxFull {
                    agent: self.name.to_string(),
                    capacity: self.spec().mailbox_capacity,
                },
                payload: Some(parts.payload),
            });
        }
        if parts.key.is_some() && inner.keys.len() >= MAX_KEYS {
            // Full: forget the expired ones now rather than at the next sweep.
            inner.keys.retain(|_, (_, expires)| *expires > now);
            if inner.keys.len() >= MAX_KEYS {
                return Err(Undelivered {
                    error: SendError::KeysFull {
                        agent: self.name.to_string(),
                    },
                    payload: Some(parts.payload),
                });
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let id = MessageId {
            agent: self.name.clone(),
            seq,
        };
        let key = parts.key.clone();
        let mut parts = parts;
        let on_accept = parts.on_accept.take();
        let env = parts.into_envelope(id.clone());
        let mut batch = Batch::default();
        if let Some(f) = on_accept {
            f(&env.correlation, &mut batch);
        }
        let expires = now.saturating_add(self.retention.min(crate::clock::FAR).as_millis() as u64);
        if let Some(k) = &key {
            inner.keys.insert(k.clone(), (seq, expires));
        }
        let Some(store) = &self.store else {
            inner.insert_sorted(Arc::new(env), None);
            let waker = inner.idle.pop();
            drop(inner);
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            wake(waker);
            return Ok(Accepting::Done(Sent {
                message_id: id,
                duplicate: false,
            }));
        };
        self.write_message(&env, seq + 1, &mut batch);
        if let Some(k) = &key {
            mailbox::remember_key(&mut batch, &self.name, k, seq, expires);
        }
        inner.reserved += 1;
        let (tx, rx) = oneshot::channel();
        let slot = self.clone();
        // Submitted under the lock: the committer sees this agent's accepts in
        // sequence order and publishes them in that order.
        store.submit(batch, move |r| {
            let mut inner = slot.lock();
            inner.reserved -= 1;
            let waker = match &r {
                Ok(()) => {
                    inner.insert_sorted(Arc::new(env), None);
                    inner.idle.pop()
                }
                Err(_) => {
                    if let Some(k) = &key {
                        inner.keys.remove(k);
                    }
                    None
                }
            };
            drop(inner);
            if r.is_ok() {
                slot.stats.accepted.fetch_add(1, Ordering::Relaxed);
            }
            wake(waker);
            let _ = tx.send(r);
        });
        Ok(Accepting::Flushing(id, rx))
    }

    /// Reserves an id for a message emitted by a handler (never refused for capacity)
    /// and adds its record to the handler's commit batch.
    pub(crate) fn prepare_emit(&self, parts: Parts, batch: &mut Batch) -> Envelope {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.reserved += 1;
        drop(inner);
        let env = parts.into_envelope(MessageId {
            agent: self.name.clone(),
            seq,
        });
        if self.store.is_some() {
            self.write_message(&env, seq + 1, batch);
        }
        env
    }

    /// Publishes an emitted message once its commit is durable.
    pub(crate) fn finish_emit(&self, env: Envelope) {
        let mut inner = self.lock();
        inner.reserved -= 1;
        inner.insert_sorted(Arc::new(env), None);
        let waker = inner.idle.pop();
        drop(inner);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        wake(waker);
    }

    /// Releases a reservation whose commit failed.
    pub(crate) fn abort_emit(&self) {
        self.lock().reserved -= 1;
    }

    /// Forgets idempotency keys expired at `now_ms`. Returns how many.
    pub fn expire_keys(&self, now_ms: u64) -> usize {
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .keys
            .iter()
            .filter(|(_, (_, exp))| *exp <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut batch = Batch::default();
        for k in &expired {
            inner.keys.remove(k);
            if self.store.is_some() {
                mailbox::forget_key(&mut batch, &self.name, k);
            }
        }
        drop(inner);
        self.submit(batch);
        expired.len()
    }
}
