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
//!
//! Files: this one holds the slot, its queue and counters; `accept` takes
//! messages in (capacity, idempotency, emits), `delivery` hands them to replicas
//! and records how each attempt ended, `dead` keeps the dead letters. The record
//! layout on disk belongs to [`crate::store::mailbox`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

// tokio's clock (the same as std's unless a test pauses time): retry delays then
// follow paused time too.
use crate::clock::Instant;

use ractor::{ActorCell, ActorId, ActorRef};
use serde_json::Value;

use super::event::TreeEvent;
use super::wake::HostMsg;
use super::AgentSpec;
use crate::envelope::{now_ms, Envelope};
use crate::policies::breaker::Breaker;
use crate::policies::systemic::Systemic;
use crate::store::{Batch, IdemMap, RecoveredAgent, Store};

mod stats;
pub use stats::AgentStats;
mod accept;
mod crash_cause;
mod dead;
mod delivery;

pub use crate::store::dead::{DeadLetter, DeadReason};
pub(crate) use accept::{Accepting, OnAccept, Parts};
pub use accept::{SendError, Sent, Undelivered, MAX_KEYS, MAX_KEY_LEN};
pub use dead::NewDeadline;

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
    /// Being deleted: sends are refused as to an unknown agent.
    closed: bool,
    /// Messages spared from dead-lettering because the breaker blamed the agent
    /// for their last failure: sequence -> `handled` count when spared.
    spared: std::collections::HashMap<u64, u64>,
    /// The message in flight when a replica last ended abnormally, kept (with
    /// trace export on) until the restart it causes names it.
    crashed_with: Option<Arc<Envelope>>,
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

/// Finds an agent's slot by name.
pub(crate) type Resolver = Arc<dyn Fn(&str) -> Option<Arc<AgentSlot>> + Send + Sync>;

/// How long an idempotency key is remembered unless configured
/// (`daemon.idempotency_retention`).
pub const DEFAULT_KEY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// One agent's stable identity.
pub struct AgentSlot {
    /// The agent's name.
    pub name: Arc<str>,
    /// Its spec; policies can change while it runs (a config reload), see
    /// [`AgentSlot::set_spec`].
    spec: RwLock<Arc<AgentSpec>>,
    /// Its counters.
    pub stats: AgentStats,
    /// Its circuit breaker, disabled unless configured (outlives restarts).
    pub breaker: Breaker,
    /// Its systemic-failure pause (outlives restarts).
    pub systemic: Systemic,
    store: Option<Arc<Store>>,
    retention: Duration,
    /// Where `dead_lettered` events go (set once the slot joins a tree).
    events: std::sync::OnceLock<tokio::sync::broadcast::Sender<TreeEvent>>,
    /// Finds another agent's slot by name (set once the slot joins a tree): where
    /// `on_dead_letter` sends.
    resolve: std::sync::OnceLock<Resolver>,
    /// Its keyed state as last committed (see [`crate::store::entries`]).
    entries: SharedEntries,
    inner: Mutex<Inner>,
}

/// An agent's committed entries, shared by its slot and the deliveries that read
/// them.
pub(crate) type SharedEntries = Arc<RwLock<crate::store::entries::Entries>>;

impl AgentSlot {
    /// A memory-mailbox slot: empty, `null` state.
    pub fn new(spec: AgentSpec) -> Self {
        Self::build(spec, None, RecoveredAgent::default(), DEFAULT_KEY_RETENTION)
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
        let state = r
            .state
            .or_else(|| spec.initial_state.clone())
            .unwrap_or(Value::Null);
        let slot = AgentSlot {
            name: Arc::from(spec.name.as_str()),
            stats: AgentStats::default(),
            breaker: Breaker::new(spec.breaker),
            systemic: Systemic::new(spec.systemic),
            store,
            retention,
            events: std::sync::OnceLock::new(),
            resolve: std::sync::OnceLock::new(),
            entries: Arc::new(RwLock::new(r.entries)),
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                in_flight: (0..spec.replicas).map(|_| None).collect(),
                crashed_with: None,
                owners: vec![None; spec.replicas as usize],
                idle: Vec::new(),
                state,
                dead: r.dead,
                reserved: 0,
                next_seq: r.next_seq.max(1),
                keys: r.keys,
                closed: false,
                spared: Default::default(),
            }),
            spec: RwLock::new(Arc::new(spec)),
        };
        let mut batch = Batch::default();
        {
            let mut inner = slot.lock();
            // recovered letters past a lowered dlq_max go first
            slot.trim_dead(&mut inner, &mut batch);
            for env in r.queue {
                if env.attempt > slot.spec().max_attempts {
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
                    slot.keep_dead(&mut inner, d, &mut batch);
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

    /// The agent's spec as it is now.
    pub fn spec(&self) -> Arc<AgentSpec> {
        self.spec.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the agent's spec while it runs (a config reload). Policies read per
    /// message (timeout, attempts, backoff, hops, deadline, capacity, dead-letter
    /// cap, faults) apply from the next message; a changed breaker or systemic
    /// spec starts afresh. A changed replica count resizes the replicas' places,
    /// so it must only be set while no replica runs (the caller stops them first).
    pub(crate) fn set_spec(&self, spec: AgentSpec) {
        self.breaker.set_spec(spec.breaker);
        self.systemic.set_spec(spec.systemic);
        let n = spec.replicas as usize;
        {
            let mut inner = self.lock();
            if inner.in_flight.len() != n {
                debug_assert!(inner.in_flight.iter().all(Option::is_none));
                // a message still held by a dropped place goes back to the queue
                let held: Vec<InFlight> = inner
                    .in_flight
                    .iter_mut()
                    .skip(n)
                    .filter_map(Option::take)
                    .collect();
                for f in held {
                    inner.insert_sorted(f.env, None);
                }
                inner.in_flight.resize_with(n, || None);
                inner.owners.resize(n, None);
                inner.idle.retain(|(r, _)| *r < n);
            }
        }
        *self.spec.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(spec);
    }

    /// The breaker, when one is configured.
    fn breaker(&self) -> Option<&Breaker> {
        self.breaker.enabled().then_some(&self.breaker)
    }

    /// Dead-lettered letters beyond a lowered `dlq_max` are purged now.
    pub(crate) fn trim_to_cap(&self) {
        let mut batch = Batch::default();
        {
            let mut inner = self.lock();
            self.trim_dead(&mut inner, &mut batch);
        }
        self.submit(batch);
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

    /// Where this agent's lifecycle events go, once it is in a tree.
    pub(crate) fn events(&self) -> Option<tokio::sync::broadcast::Sender<TreeEvent>> {
        self.events.get().cloned()
    }

    /// Lets this slot find other agents' slots by name (`on_dead_letter`).
    pub(crate) fn set_resolver(&self, r: Resolver) {
        let _ = self.resolve.set(r);
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

    /// The state as last committed.
    pub fn state(&self) -> Value {
        self.lock().state.clone()
    }

    /// The committed entries (see [`crate::store::entries`]), for a delivery.
    pub(crate) fn shared_entries(&self) -> SharedEntries {
        self.entries.clone()
    }

    /// The committed entries whose keys start with `prefix`, in key order.
    pub fn entries(&self, prefix: &str) -> Vec<(String, Value)> {
        let e = self.entries.read().unwrap_or_else(|p| p.into_inner());
        e.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Messages waiting (not in flight).
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    /// Messages being handled now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.iter().filter(|m| m.is_some()).count()
    }

    /// Refuses every later send, if nothing is waiting, in flight, reserved or
    /// dead-lettered (the check and the closing are one step); otherwise says what
    /// is left: (waiting and in flight, dead letters).
    pub(crate) fn close_if_empty(&self) -> Result<(), (usize, usize)> {
        let mut inner = self.lock();
        let busy = inner.in_flight.iter().filter(|m| m.is_some()).count();
        let live = inner.queue.len() + busy + inner.reserved;
        if live > 0 || !inner.dead.is_empty() {
            return Err((live, inner.dead.len()));
        }
        inner.closed = true;
        Ok(())
    }

    /// Takes sends again after [`AgentSlot::close_if_empty`].
    pub(crate) fn reopen(&self) {
        self.lock().closed = false;
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
