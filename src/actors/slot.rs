//! The agent slot: an agent's stable identity, mailbox, state and counters.
//!
//! A slot outlives every incarnation of the agent's hosts: senders address the slot
//! by name, so messages sent while the agent restarts wait in its queue for the new
//! incarnation. The slot tracks the message each replica has in flight; when a
//! replica dies, that message goes back to the head of the queue with its attempt
//! counted (or to the dead letters once `max_attempts` is reached), so delivery is
//! at least once and, per replica, in accept order.
//!
//! Wake-ups: a host with nothing to do parks itself in `idle` under the same lock
//! that guards the queue, and an enqueue wakes one parked host, so no message can
//! arrive unseen between a host's last look at the queue and its parking.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ractor::ActorRef;
use serde::Serialize;
use serde_json::Value;

use super::host::HostMsg;
use super::AgentSpec;
use crate::envelope::{now_ms, Envelope, MessageId};

/// Why a message was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// Failed `max_attempts` times (`last_error` says how).
    MaxAttempts,
    /// The handler said retrying cannot help.
    NonRetryable,
    /// The correlation went past its hop budget.
    HopBudgetExhausted,
    /// The correlation's deadline passed.
    DeadlineExceeded,
}

/// A message given up on, kept with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The envelope as last delivered.
    pub envelope: Envelope,
    /// Why it was given up on.
    pub reason: DeadReason,
    /// The last failure: an error message, `timeout`, `panic: ...`, `killed`.
    pub last_error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered (ms since the epoch).
    pub dead_ms: u64,
}

/// Counters of one agent, monotonic since the daemon started.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Messages accepted into the mailbox.
    pub accepted: AtomicU64,
    /// Messages handled and acked.
    pub handled: AtomicU64,
    /// Attempts that failed (error, timeout, panic, kill).
    pub failed_attempts: AtomicU64,
    /// Messages dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Restarts of this agent's hosts.
    pub restarts: AtomicU64,
}

/// Why a send was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

struct Queued {
    env: Arc<Envelope>,
    not_before: Option<Instant>,
}

/// What a host should do next.
pub(crate) enum Next {
    /// Handle this message (now in flight for the replica).
    Deliver(Arc<Envelope>),
    /// The head message is waiting out a retry backoff: look again after this long.
    WaitFor(Duration),
    /// Nothing to do; the host is parked and will be woken by the next enqueue.
    Idle,
}

struct Inner {
    queue: VecDeque<Queued>,
    in_flight: Vec<Option<Arc<Envelope>>>,
    idle: Vec<(usize, ActorRef<HostMsg>)>,
    state: Value,
    dead: Vec<DeadLetter>,
}

/// One agent's stable identity.
pub struct AgentSlot {
    /// The agent's name.
    pub name: Arc<str>,
    /// Its spec.
    pub spec: AgentSpec,
    /// Its counters.
    pub stats: AgentStats,
    next_seq: AtomicU64,
    inner: Mutex<Inner>,
}

impl AgentSlot {
    /// A slot with an empty mailbox and `null` state.
    pub fn new(spec: AgentSpec) -> Self {
        AgentSlot {
            name: Arc::from(spec.name.as_str()),
            stats: AgentStats::default(),
            next_seq: AtomicU64::new(1),
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                in_flight: vec![None; spec.replicas as usize],
                idle: Vec::new(),
                state: Value::Null,
                dead: Vec::new(),
            }),
            spec,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic never happens while the lock is held (no user code runs under it),
        // so a poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next message id for this agent.
    pub(crate) fn next_id(&self) -> MessageId {
        MessageId {
            agent: self.name.clone(),
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Appends an envelope, waking a parked host. Refuses when the mailbox is full,
    /// unless `force` (messages emitted inside the tree).
    pub(crate) fn enqueue(&self, env: Envelope, force: bool) -> Result<(), SendError> {
        let waker = {
            let mut inner = self.lock();
            let busy = inner.in_flight.iter().filter(|m| m.is_some()).count();
            if !force && inner.queue.len() + busy >= self.spec.mailbox_capacity {
                return Err(SendError::MailboxFull {
                    agent: self.name.to_string(),
                    capacity: self.spec.mailbox_capacity,
                });
            }
            inner.queue.push_back(Queued {
                env: Arc::new(env),
                not_before: None,
            });
            inner.idle.pop()
        };
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some((_, host)) = waker {
            let _ = host.cast(HostMsg::Wake);
        }
        Ok(())
    }

    /// Takes the next message for `replica`, or parks `host` if there is none.
    pub(crate) fn next(&self, replica: usize, host: &ActorRef<HostMsg>) -> Next {
        let mut inner = self.lock();
        let Some(head) = inner.queue.front() else {
            inner.idle.retain(|(r, _)| *r != replica);
            inner.idle.push((replica, host.clone()));
            return Next::Idle;
        };
        if let Some(at) = head.not_before {
            let now = Instant::now();
            if at > now {
                return Next::WaitFor(at - now);
            }
        }
        let env = inner.queue.pop_front().expect("head exists").env;
        inner.in_flight[replica] = Some(env.clone());
        Next::Deliver(env)
    }

    /// Acks `replica`'s in-flight message and, when `state` is given, replaces the state.
    pub(crate) fn ack(&self, replica: usize, state: Option<Value>) {
        let mut inner = self.lock();
        inner.in_flight[replica] = None;
        if let Some(state) = state {
            inner.state = state;
        }
        drop(inner);
        self.stats.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failed attempt of `replica`'s in-flight message: retried after backoff
    /// at the head of the queue, or dead-lettered when `retry` is false or attempts are
    /// used up. Returns whether a message was in flight.
    pub(crate) fn fail(&self, replica: usize, error: &str, retry: bool) -> bool {
        let mut inner = self.lock();
        let Some(env) = inner.in_flight[replica].take() else {
            return false;
        };
        self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
        if !retry || env.attempt >= self.spec.max_attempts {
            let reason = if retry {
                DeadReason::MaxAttempts
            } else {
                DeadReason::NonRetryable
            };
            inner.dead.push(DeadLetter {
                attempts: env.attempt,
                envelope: (*env).clone(),
                reason,
                last_error: error.to_string(),
                dead_ms: now_ms(),
            });
            self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            let _span =
                tracing::warn_span!("warden.dead_letter", agent = %self.name, message_id = %env.id)
                    .entered();
            tracing::warn!(reason = ?reason, attempts = env.attempt, last_error = error, "message dead-lettered");
        } else {
            let delay = self.spec.backoff.delay(env.attempt);
            inner.queue.push_front(Queued {
                env: Arc::new(env.next_attempt()),
                not_before: Some(Instant::now() + delay),
            });
        }
        true
    }

    /// Dead-letters a message that was never attempted (hop budget, deadline).
    pub(crate) fn dead_letter(&self, replica: usize, reason: DeadReason, error: &str) {
        let mut inner = self.lock();
        if let Some(env) = inner.in_flight[replica].take() {
            inner.dead.push(DeadLetter {
                attempts: env.attempt.saturating_sub(1),
                envelope: (*env).clone(),
                reason,
                last_error: error.to_string(),
                dead_ms: now_ms(),
            });
            self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A replica's host is gone (crash, kill or stop): forget it as a waker and put its
    /// in-flight message back (attempt counted). Returns whether a message was in flight.
    pub(crate) fn replica_exited(&self, replica: usize, reason: &str) -> bool {
        let in_flight = self.fail(replica, reason, true);
        let waker = {
            let mut inner = self.lock();
            inner.idle.retain(|(r, _)| *r != replica);
            if inner.queue.is_empty() {
                None
            } else {
                inner.idle.pop()
            }
        };
        if let Some((_, host)) = waker {
            let _ = host.cast(HostMsg::Wake);
        }
        in_flight
    }

    /// The state as last committed.
    pub fn state(&self) -> Value {
        self.lock().state.clone()
    }

    /// Messages waiting (not in flight).
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    /// Messages being handled now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.iter().filter(|m| m.is_some()).count()
    }

    /// Up to `limit` waiting envelopes, head first.
    pub fn peek(&self, limit: usize) -> Vec<Envelope> {
        let inner = self.lock();
        inner
            .queue
            .iter()
            .take(limit)
            .map(|q| (*q.env).clone())
            .collect()
    }

    /// How many dead letters are kept.
    pub fn dead_count(&self) -> usize {
        self.lock().dead.len()
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// Re-enqueues dead letters (all, or the one with `id`) with attempts reset.
    /// Returns how many were replayed.
    pub fn replay_dead(&self, id: Option<&MessageId>) -> usize {
        let replay: Vec<DeadLetter> = {
            let mut inner = self.lock();
            let (take, keep) = std::mem::take(&mut inner.dead)
                .into_iter()
                .partition(|d| id.is_none_or(|id| &d.envelope.id == id));
            inner.dead = keep;
            take
        };
        let n = replay.len();
        for d in replay {
            let env = Envelope {
                attempt: 1,
                ..d.envelope
            };
            let mut inner = self.lock();
            inner.queue.push_back(Queued {
                env: Arc::new(env),
                not_before: None,
            });
            let waker = inner.idle.pop();
            drop(inner);
            if let Some((_, host)) = waker {
                let _ = host.cast(HostMsg::Wake);
            }
        }
        n
    }

    /// Deletes dead letters (all, or the one with `id`). Returns how many.
    pub fn purge_dead(&self, id: Option<&MessageId>) -> usize {
        let mut inner = self.lock();
        let before = inner.dead.len();
        inner
            .dead
            .retain(|d| id.is_some_and(|id| &d.envelope.id != id));
        before - inner.dead.len()
    }
}
