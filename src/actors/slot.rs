//! The agent slot: an agent's stable identity, mailbox, state and counters.
//!
//! A slot outlives every incarnation of the agent's hosts: senders address the slot
//! by name, so messages sent while the agent restarts wait in its queue for the new
//! incarnation. The slot tracks the message each replica has in flight; when a
//! replica dies, that message goes back to the head of the queue with its attempt
//! counted (or to the dead letters once `max_attempts` is reached), so delivery is
//! at least once and, per replica, in accept order.
//!
//! A durable slot mirrors every change in the [`Store`]: a message enters the
//! in-memory queue only once its record is flushed (from the committer thread, in
//! commit order), so a host never handles a message that is not accepted. The queue
//! is kept sorted by sequence number, which is also the store's key order, so the
//! order after a crash is the order before it.
//!
//! Wake-ups: a host with nothing to do parks itself in `idle` under the same lock
//! that guards the queue, and an enqueue wakes one parked host, so no message can
//! arrive unseen between a host's last look at the queue and its parking.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// tokio's clock (the same as std's unless a test pauses time): retry delays then
// follow paused time too.
use tokio::time::Instant;

use ractor::{ActorCell, ActorId, ActorRef};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::host::HostMsg;
use super::AgentSpec;
use crate::envelope::{now_ms, Envelope, MessageId, ReplyTo};
use crate::policies::breaker::{Breaker, BreakerState};
use crate::policies::systemic::{Admit, Systemic, Verdict};
use crate::store::suspects::Pass;
use crate::store::{codec, keys, Batch, IdemMap, RecoveredAgent, Store, StoreError};
use crate::supervision::TreeEvent;

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

impl DeadReason {
    /// The protocol spelling (`max_attempts`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::NonRetryable => "non_retryable",
            DeadReason::HopBudgetExhausted => "hop_budget_exhausted",
            DeadReason::DeadlineExceeded => "deadline_exceeded",
        }
    }
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
    /// The store could not make the message durable; it was not accepted.
    #[error("not accepted: {0}")]
    Store(#[from] StoreError),
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
}

impl Parts {
    fn into_envelope(self, id: MessageId) -> Envelope {
        Envelope {
            correlation: self
                .correlation
                .unwrap_or_else(|| Arc::from(id.to_string())),
            id,
            payload: self.payload,
            causation: self.causation,
            hops: self.hops,
            attempt: 1,
            deadline_ms: self.deadline_ms,
            key: self.key,
            reply_to: self.reply_to,
            trace: self.trace,
            enqueued_ms: now_ms(),
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
    /// This host no longer owns its replica (a newer incarnation does): stop.
    Stale,
}

/// A replica's message in flight.
struct InFlight {
    env: Arc<Envelope>,
    /// Its hand-off is being committed: only the commit's completion may resolve it
    /// (ack and publish, or put it back), whatever happens to the host meanwhile.
    committing: bool,
    /// It passed the suspect gate alone ([`crate::store::suspects`]): the gate is
    /// told when its attempt ends.
    alone: bool,
}

struct Inner {
    queue: VecDeque<Queued>,
    in_flight: Vec<Option<InFlight>>,
    /// The host incarnation that owns each replica. A killed supervisor's children
    /// die asynchronously, so an old host can still be running when its successor
    /// starts: only the owner may take, ack or fail messages.
    owners: Vec<Option<ActorCell>>,
    idle: Vec<(usize, ActorRef<HostMsg>)>,
    state: Value,
    dead: Vec<DeadLetter>,
    /// Accepts submitted to the store and not yet flushed (they count for capacity).
    reserved: usize,
    next_seq: u64,
    keys: IdemMap,
}

impl Inner {
    /// Inserts in sequence order (almost always at the back).
    fn insert_sorted(&mut self, env: Arc<Envelope>, not_before: Option<Instant>) {
        let pos = self
            .queue
            .iter()
            .rposition(|q| q.env.id.seq < env.id.seq)
            .map_or(0, |p| p + 1);
        self.queue.insert(pos, Queued { env, not_before });
    }
}

/// One agent's stable identity.
pub struct AgentSlot {
    /// The agent's name.
    pub name: Arc<str>,
    /// Its spec.
    pub spec: AgentSpec,
    /// Its counters.
    pub stats: AgentStats,
    /// Its circuit breaker, if configured (outlives restarts).
    pub breaker: Option<Breaker>,
    /// Its systemic-failure pause (outlives restarts).
    pub systemic: Systemic,
    store: Option<Arc<Store>>,
    retention: Duration,
    /// Where `dead_lettered` events go (set once the slot joins a tree).
    events: std::sync::OnceLock<tokio::sync::broadcast::Sender<TreeEvent>>,
    inner: Mutex<Inner>,
}

impl AgentSlot {
    /// A memory-mailbox slot: empty, `null` state.
    pub fn new(spec: AgentSpec) -> Self {
        Self::build(
            spec,
            None,
            RecoveredAgent::default(),
            Duration::from_secs(86_400),
        )
    }

    /// A durable slot holding what the store recovered for it. Messages whose
    /// attempts were used up by daemon crashes become dead letters now.
    pub fn durable(
        spec: AgentSpec,
        store: Arc<Store>,
        recovered: RecoveredAgent,
        retention: Duration,
    ) -> Self {
        Self::build(spec, Some(store), recovered, retention)
    }

    fn build(
        spec: AgentSpec,
        store: Option<Arc<Store>>,
        r: RecoveredAgent,
        retention: Duration,
    ) -> Self {
        let slot = AgentSlot {
            name: Arc::from(spec.name.as_str()),
            stats: AgentStats::default(),
            breaker: spec.breaker.map(Breaker::new),
            systemic: Systemic::new(spec.systemic),
            store,
            retention,
            events: std::sync::OnceLock::new(),
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                in_flight: (0..spec.replicas).map(|_| None).collect(),
                owners: vec![None; spec.replicas as usize],
                idle: Vec::new(),
                state: r.state,
                dead: r.dead,
                reserved: 0,
                next_seq: r.next_seq.max(1),
                keys: r.keys,
            }),
            spec,
        };
        let mut batch = Batch::default();
        {
            let mut inner = slot.lock();
            for env in r.queue {
                if env.attempt > slot.spec.max_attempts {
                    let attempts = env.attempt - 1;
                    let d = DeadLetter {
                        envelope: env,
                        reason: DeadReason::MaxAttempts,
                        last_error: format!(
                            "daemon crash: the daemon died during each of {attempts} attempts"
                        ),
                        attempts,
                        dead_ms: now_ms(),
                    };
                    slot.write_dead(&d, &mut batch);
                    tracing::warn!(agent = %slot.name, message_id = %d.envelope.id, attempts,
                        "message dead-lettered: it was in flight at every crash");
                    inner.dead.push(d);
                    slot.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                } else {
                    inner.queue.push_back(Queued {
                        env: Arc::new(env),
                        not_before: None,
                    });
                }
            }
        }
        slot.submit(batch);
        slot
    }

    fn event(&self, event: &'static str, reason: Option<String>) {
        if let Some(tx) = self.events.get() {
            let _ = tx.send(TreeEvent {
                event,
                name: self.name.to_string(),
                reason,
                at_ms: now_ms(),
            });
        }
    }

    /// Ends a systemic-failure pause now and wakes the hosts. Returns whether the
    /// agent was paused.
    pub fn resume(&self) -> bool {
        if !self.systemic.resume() {
            return false;
        }
        tracing::info!(agent = %self.name, "resumed by request");
        self.event("resumed", Some("by request".into()));
        let owners: Vec<ActorCell> = self.lock().owners.iter().flatten().cloned().collect();
        for cell in owners {
            let _ = cell.send_message::<HostMsg>(HostMsg::Wake);
        }
        true
    }

    /// Sends this agent's `dead_lettered` events to `tx`.
    pub(crate) fn set_events(&self, tx: tokio::sync::broadcast::Sender<TreeEvent>) {
        let _ = self.events.set(tx);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No user code runs under this lock, so a poisoned lock still guards
        // consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when this agent's messages are kept in the store.
    pub fn is_durable(&self) -> bool {
        self.store.is_some()
    }

    pub(crate) fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// Submits a batch without waiting (it is ordered before every later commit).
    fn submit(&self, batch: Batch) {
        if let Some(store) = &self.store {
            if !batch.is_empty() {
                let name = self.name.clone();
                store.submit(batch, move |r| {
                    if let Err(e) = r {
                        tracing::error!(agent = %name, error = %e, "store write failed");
                    }
                });
            }
        }
    }

    fn write_dead(&self, d: &DeadLetter, batch: &mut Batch) {
        if let Some(store) = &self.store {
            let seq = d.envelope.id.seq;
            store.gate.forget_one(&self.name, seq);
            batch.remove(keys::seq_key(keys::MSG, &self.name, seq));
            batch.remove(keys::seq_key(keys::ATTEMPT, &self.name, seq));
            batch.remove(keys::seq_key(keys::SUSPECT, &self.name, seq));
            batch.insert(
                keys::seq_key(keys::DEAD, &self.name, seq),
                codec::encode_dead(d),
            );
        }
    }

    fn write_message(&self, env: &Envelope, next_seq: u64, batch: &mut Batch) {
        batch.insert(
            keys::seq_key(keys::MSG, &self.name, env.id.seq),
            codec::encode_envelope(env),
        );
        batch.insert(
            keys::agent_key(keys::NEXT, &self.name),
            codec::encode_u64(next_seq),
        );
    }

    /// Accepts a message from outside the tree: capacity, idempotency, id, then (for
    /// a durable mailbox) a store write whose flush completes the accept.
    pub(crate) fn accept(self: &Arc<Self>, parts: Parts) -> Result<Accepting, SendError> {
        let now = now_ms();
        let mut inner = self.lock();
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
        if inner.queue.len() + busy + inner.reserved >= self.spec.mailbox_capacity {
            return Err(SendError::MailboxFull {
                agent: self.name.to_string(),
                capacity: self.spec.mailbox_capacity,
            });
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let id = MessageId {
            agent: self.name.clone(),
            seq,
        };
        let key = parts.key.clone();
        let env = parts.into_envelope(id.clone());
        let expires = now + self.retention.as_millis() as u64;
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
        let mut batch = Batch::default();
        self.write_message(&env, seq + 1, &mut batch);
        if let Some(k) = &key {
            batch.insert(
                keys::idem_key(&self.name, k),
                codec::encode_idem(seq, expires),
            );
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
        let pick = match self.systemic.admit(now.into_std(), inner.queue.len()) {
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
        if let Some(b) = &self.breaker {
            if let Err(wait) = b.admit(now.into_std()) {
                if alone {
                    self.leave_gate(head.env.id.seq, false);
                }
                return Next::WaitFor(wait);
            }
        }
        let env = match pick {
            Some(i) => {
                let env = inner.queue.remove(i).expect("index checked").env;
                self.systemic.trial_started(env.id.seq);
                tracing::info!(agent = %self.name, message_id = %env.id, "paused agent: trial delivery");
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
    fn write_marker(&self, seq: u64, attempt: u32, running: bool, batch: &mut Batch) {
        if self.store.is_some() {
            let key = keys::seq_key(keys::ATTEMPT, &self.name, seq);
            match attempt {
                0 => batch.remove(key),
                n => batch.insert(key, codec::encode_attempt(n, running)),
            }
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
    fn end_attempt(&self, f: &InFlight, finished: bool) {
        if f.alone {
            self.leave_gate(f.env.id.seq, finished);
        }
    }

    fn leave_gate(&self, seq: u64, finished: bool) {
        if let Some(store) = &self.store {
            if store.gate.leave(&self.name, seq, finished) {
                let mut b = Batch::default();
                b.remove(keys::seq_key(keys::SUSPECT, &self.name, seq));
                self.submit(b);
            }
        }
    }

    /// Adds the ack of `env` (and the new state) to a commit batch (durable only).
    pub(crate) fn write_ack(&self, env: &Envelope, state: Option<&Value>, batch: &mut Batch) {
        if self.store.is_some() {
            batch.remove(keys::seq_key(keys::MSG, &self.name, env.id.seq));
            batch.remove(keys::seq_key(keys::ATTEMPT, &self.name, env.id.seq));
            if let Some(s) = state {
                batch.insert(
                    keys::agent_key(keys::STATE, &self.name),
                    codec::encode_state(s),
                );
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
    /// `state` is given, replace the state. Runs on the committer thread, in commit
    /// order, whether or not the host that started the commit still lives.
    pub(crate) fn commit_done(&self, replica: usize, state: Option<Value>) {
        let mut inner = self.lock();
        if let Some(f) = inner.in_flight[replica].take() {
            self.end_attempt(&f, true);
        }
        if let Some(state) = state {
            inner.state = state;
        }
        let waker = take_waker(&mut inner, replica);
        drop(inner);
        if let Some(b) = &self.breaker {
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
        if let Some(b) = &self.breaker {
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
            .as_ref()
            .is_some_and(|b| b.snapshot().state == BreakerState::HalfOpen);
        let verdict = self.systemic.on_failure(env.id.seq, error, now.into_std());
        // A breaker's half-open trial that fails is counted, but never dead-letters
        // the message: the breaker opens again and the message waits, so an open
        // breaker cannot lose one message per few cool-downs.
        let trial_exhausted = breaker_trial && retry && env.attempt >= self.spec.max_attempts;
        if trial_exhausted || verdict != Verdict::Charge {
            // Not the message's fault (the agent is failing for every message): the
            // attempt is refunded and the message waits at the head, never
            // dead-lettered for it.
            if let Some(b) = &self.breaker {
                b.on_failure(now.into_std());
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
        if let Some(b) = &self.breaker {
            if retry {
                b.on_failure(Instant::now().into_std());
            } else {
                b.release();
            }
        }
        if !retry || env.attempt >= self.spec.max_attempts {
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
            let delay = self.spec.backoff.delay(env.attempt);
            inner.insert_sorted(Arc::new(env.next_attempt()), Some(Instant::now() + delay));
        }
        true
    }

    /// Puts `replica`'s in-flight message back at the head, its attempt not counted
    /// (the store could not record the attempt: not the message's fault).
    pub(crate) fn put_back(&self, replica: usize, who: ActorId) {
        let mut inner = self.lock();
        if owner_id(&inner.owners[replica]) != Some(who) {
            return;
        }
        if let Some(f) = take_settled(&mut inner.in_flight[replica]) {
            self.systemic.trial_released();
            self.end_attempt(&f, false);
            inner.insert_sorted(f.env, None);
        }
        if let Some(b) = &self.breaker {
            b.release();
        }
    }

    /// Puts `replica`'s in-flight message back at the head, to be delivered after
    /// `delay`, without counting the attempt (the upstream rate-limited us).
    pub(crate) fn retry_later(&self, replica: usize, who: ActorId, delay: Duration) {
        let mut inner = self.lock();
        if owner_id(&inner.owners[replica]) != Some(who) {
            return;
        }
        if let Some(f) = take_settled(&mut inner.in_flight[replica]) {
            self.systemic.trial_released();
            self.end_attempt(&f, true);
            // not an attempt: the marker goes back to the attempts before it
            let mut b = Batch::default();
            self.write_marker(f.env.id.seq, f.env.attempt.saturating_sub(1), false, &mut b);
            self.submit(b);
            inner.insert_sorted(f.env, Some(Instant::now() + delay));
        }
        if let Some(b) = &self.breaker {
            b.release();
        }
    }

    /// Dead-letters `replica`'s in-flight message without an attempt (hop budget, deadline).
    pub(crate) fn dead_letter(
        &self,
        replica: usize,
        who: ActorId,
        reason: DeadReason,
        error: &str,
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
                env.attempt.saturating_sub(1),
            );
        }
    }

    fn bury(
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
        self.submit(batch);
        inner.dead.push(d);
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
        let in_flight = if counted {
            self.fail(replica, who, reason, true)
        } else {
            if let Some(b) = &self.breaker {
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

    /// Re-enqueues dead letters (all, or the one with `id`) as new messages (new ids,
    /// attempts reset, at the back of the queue). Returns the new ids.
    pub fn replay_dead(&self, id: Option<&MessageId>) -> Vec<MessageId> {
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
            let env = Envelope {
                id: MessageId {
                    agent: self.name.clone(),
                    seq,
                },
                attempt: 1,
                enqueued_ms: now_ms(),
                ..d.envelope
            };
            if self.store.is_some() {
                batch.remove(keys::seq_key(keys::DEAD, &self.name, d.envelope.id.seq));
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
                batch.remove(keys::seq_key(keys::DEAD, &self.name, d.envelope.id.seq));
            }
        }
        self.submit(batch);
        gone.len()
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
                batch.remove(keys::idem_key(&self.name, k));
            }
        }
        drop(inner);
        self.submit(batch);
        expired.len()
    }
}

/// Takes a replica's in-flight message unless its hand-off is committing (then only
/// the commit's completion may resolve it).
fn take_settled(slot: &mut Option<InFlight>) -> Option<InFlight> {
    if slot.as_ref().is_some_and(|f| f.committing) {
        return None;
    }
    slot.take()
}

/// Unparks `replica`'s host, if it is parked (waiting for a commit to resolve).
fn take_waker(inner: &mut Inner, replica: usize) -> Option<(usize, ActorRef<HostMsg>)> {
    if let Some(pos) = inner.idle.iter().position(|(r, _)| *r == replica) {
        return Some(inner.idle.swap_remove(pos));
    }
    None
}

fn owner_id(owner: &Option<ActorCell>) -> Option<ActorId> {
    owner.as_ref().map(ActorCell::get_id)
}

fn wake(waker: Option<(usize, ActorRef<HostMsg>)>) {
    if let Some((_, host)) = waker {
        let _ = host.cast(HostMsg::Wake);
    }
}
