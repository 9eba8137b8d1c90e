//! The mailbox records of one agent, as batch operations: the one place that knows
//! which keys and encodings enqueue, attempt, ack, dead-letter and forget write.
//! Callers (the agent slots) ask for operations, never for bytes; recovery reads the
//! same records back (`store/recovery.rs`).
//!
//! Guarantee: each operation's writes go into the caller's batch, so they commit
//! with whatever else the batch holds, all or nothing (G3): an ack removes the
//! message and its attempt marker together with the new state and the emitted
//! messages; a dead letter replaces its message in one step.

use serde_json::Value;

use super::dead::DeadLetter;
use super::{codec, keys, Batch};
use crate::envelope::Envelope;

/// Enqueues `env` and records the agent's next sequence number.
pub fn enqueue(batch: &mut Batch, env: &Envelope, next_seq: u64) {
    let agent = &*env.id.agent;
    batch.insert(
        keys::seq_key(keys::MSG, agent, env.id.seq),
        codec::encode_envelope(env),
    );
    batch.insert(
        keys::agent_key(keys::NEXT, agent),
        codec::encode_u64(next_seq),
    );
}

/// Remembers idempotency key `key` of `agent` for message `seq` until `expires_ms`.
pub fn remember_key(batch: &mut Batch, agent: &str, key: &str, seq: u64, expires_ms: u64) {
    batch.insert(
        keys::idem_key(agent, key),
        codec::encode_idem(seq, expires_ms),
    );
}

/// Forgets idempotency key `key` of `agent`.
pub fn forget_key(batch: &mut Batch, agent: &str, key: &str) {
    batch.remove(keys::idem_key(agent, key));
}

/// Sets the attempt marker of message `seq`: `attempt` attempts started, the last
/// one still `running` or not; none when `attempt` is 0.
pub fn mark_attempt(batch: &mut Batch, agent: &str, seq: u64, attempt: u32, running: bool) {
    let key = keys::seq_key(keys::ATTEMPT, agent, seq);
    match attempt {
        0 => batch.remove(key),
        n => batch.insert(key, codec::encode_attempt(n, running)),
    }
}

/// Acks message `seq` (removes it and its marker) and, when given, stores the new
/// state.
pub fn ack(batch: &mut Batch, agent: &str, seq: u64, state: Option<&Value>) {
    batch.remove(keys::seq_key(keys::MSG, agent, seq));
    batch.remove(keys::seq_key(keys::ATTEMPT, agent, seq));
    if let Some(s) = state {
        batch.insert(keys::agent_key(keys::STATE, agent), codec::encode_state(s));
    }
}

/// Turns a message into the dead letter `d` (removing the message, its marker and
/// any suspect record).
pub fn bury(batch: &mut Batch, d: &DeadLetter) {
    let (agent, seq) = (&*d.envelope.id.agent, d.envelope.id.seq);
    batch.remove(keys::seq_key(keys::MSG, agent, seq));
    batch.remove(keys::seq_key(keys::ATTEMPT, agent, seq));
    batch.remove(keys::seq_key(keys::SUSPECT, agent, seq));
    batch.insert(keys::seq_key(keys::DEAD, agent, seq), codec::encode_dead(d));
}

/// Removes the dead letter of message `seq` (purged, or replayed as a new message).
pub fn unbury(batch: &mut Batch, agent: &str, seq: u64) {
    batch.remove(keys::seq_key(keys::DEAD, agent, seq));
}

/// Message `seq` is no longer a suspect of a daemon death.
pub fn clear_suspect(batch: &mut Batch, agent: &str, seq: u64) {
    batch.remove(keys::seq_key(keys::SUSPECT, agent, seq));
}
