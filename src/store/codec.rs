//! Record encoding: a format-version byte, then bincode 2.0.1 (serde mode, with a
//! size limit). Payloads and states are kept as JSON text inside the record, since
//! bincode is not self-describing and cannot decode `serde_json::Value`.
//!
//! The format is pinned by golden byte vectors in the tests below: a change to any
//! record's layout must bump [`FORMAT`] and keep reading the old version.
//!
//! Versions: 1, the first; 2 adds an envelope's fan-out `part` (envelope and dead
//! letter records). Every other record has the same layout in both; this build
//! writes 2 and reads 1 and 2.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dead::{DeadLetter, DeadReason};
use crate::envelope::{Envelope, MessageId, ReplyTo};

/// The record format this build writes (and the newest it reads).
pub const FORMAT: u8 = 2;
/// The store's format (its `V` mark): the record format, or newer when the store
/// gained a kind of record an older build would not know. 3: agent entries (`E`
/// records, the layout of a state). 4: spend records (`$`) and the dead-letter
/// reason `budget_exhausted`. A build refuses a store whose mark is newer
/// than its own, rather than quarantine records it cannot read.
pub const STORE_FORMAT: u8 = 4;
/// The oldest record format this build reads.
pub const OLDEST: u8 = 1;
/// Largest record accepted when decoding.
pub const MAX_RECORD: usize = 16 << 20;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RECORD>,
> {
    bincode::config::standard().with_limit::<MAX_RECORD>()
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The record is empty.
    #[error("empty record")]
    Empty,
    /// Written by another format version.
    #[error("record format version {0}, this build reads {OLDEST} to {FORMAT}")]
    Version(u8),
    /// The bytes do not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Version 1 of an envelope record (no `part`).
#[derive(Serialize, Deserialize)]
struct EnvelopeRecV1 {
    agent: Arc<str>,
    seq: u64,
    payload: String,
    correlation: Arc<str>,
    causation: Option<(Arc<str>, u64)>,
    hops: u32,
    attempt: u32,
    deadline_ms: Option<u64>,
    key: Option<String>,
    reply_to: Option<ReplyRec>,
    trace: Option<String>,
    enqueued_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct DeadRecV1 {
    envelope: EnvelopeRecV1,
    reason: u8,
    last_error: String,
    attempts: u32,
    dead_ms: u64,
}

impl From<EnvelopeRecV1> for EnvelopeRec {
    fn from(r: EnvelopeRecV1) -> Self {
        EnvelopeRec {
            agent: r.agent,
            seq: r.seq,
            payload: r.payload,
            correlation: r.correlation,
            causation: r.causation,
            hops: r.hops,
            attempt: r.attempt,
            deadline_ms: r.deadline_ms,
            key: r.key,
            reply_to: r.reply_to,
            trace: r.trace,
            enqueued_ms: r.enqueued_ms,
            part: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct EnvelopeRec {
    agent: Arc<str>,
    seq: u64,
    payload: String,
    correlation: Arc<str>,
    causation: Option<(Arc<str>, u64)>,
    hops: u32,
    attempt: u32,
    deadline_ms: Option<u64>,
    key: Option<String>,
    reply_to: Option<ReplyRec>,
    trace: Option<String>,
    enqueued_ms: u64,
    /// Version 2: the fan-out part (group, index, count).
    part: Option<(Arc<str>, u32, u32)>,
}

#[derive(Serialize, Deserialize)]
enum ReplyRec {
    Call(u64),
    Agent(Arc<str>),
}

#[derive(Serialize, Deserialize)]
struct DeadRec {
    envelope: EnvelopeRec,
    reason: u8,
    last_error: String,
    attempts: u32,
    dead_ms: u64,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend(bincode::serde::encode_to_vec(value, config()).expect("records always encode"));
    out
}

/// Decodes a record whose layout is the same in every version this build reads.
fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_as(bytes, |_| true)
}

/// Decodes the body of a record of a version `accept` takes.
fn decode_as<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    accept: impl Fn(u8) -> bool,
) -> Result<T, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Empty),
        Some(&v) if (OLDEST..=FORMAT).contains(&v) && accept(v) => {
            let (v, used) = bincode::serde::decode_from_slice(&bytes[1..], config())
                .map_err(|e| CodecError::Corrupt(e.to_string()))?;
            if used != bytes.len() - 1 {
                return Err(CodecError::Corrupt(format!(
                    "{} trailing bytes",
                    bytes.len() - 1 - used
                )));
            }
            Ok(v)
        }
        Some(&v) => Err(CodecError::Version(v)),
    }
}

fn to_rec(e: &Envelope) -> EnvelopeRec {
    EnvelopeRec {
        agent: e.id.agent.clone(),
        seq: e.id.seq,
        payload: e.payload.to_string(),
        correlation: e.correlation.clone(),
        causation: e.causation.as_ref().map(|c| (c.agent.clone(), c.seq)),
        hops: e.hops,
        attempt: e.attempt,
        deadline_ms: e.deadline_ms,
        key: e.key.clone(),
        reply_to: e.reply_to.as_ref().map(|r| match r {
            ReplyTo::Call(id) => ReplyRec::Call(*id),
            ReplyTo::Agent(a) => ReplyRec::Agent(a.clone()),
        }),
        trace: e.trace.clone(),
        enqueued_ms: e.enqueued_ms,
        part: e.part.as_ref().map(|p| (p.group.clone(), p.index, p.count)),
    }
}

fn from_rec(r: EnvelopeRec) -> Result<Envelope, CodecError> {
    let payload: Value = serde_json::from_str(&r.payload)
        .map_err(|e| CodecError::Corrupt(format!("payload is not JSON: {e}")))?;
    Ok(Envelope {
        id: MessageId {
            agent: r.agent,
            seq: r.seq,
        },
        payload,
        correlation: r.correlation,
        causation: r.causation.map(|(agent, seq)| MessageId { agent, seq }),
        hops: r.hops,
        attempt: r.attempt,
        deadline_ms: r.deadline_ms,
        key: r.key,
        reply_to: r.reply_to.map(|r| match r {
            ReplyRec::Call(id) => ReplyTo::Call(id),
            ReplyRec::Agent(a) => ReplyTo::Agent(a),
        }),
        trace: r.trace,
        enqueued_ms: r.enqueued_ms,
        part: r.part.map(|(group, index, count)| crate::envelope::Part {
            group,
            index,
            count,
        }),
    })
}

/// Encodes an envelope.
pub fn encode_envelope(e: &Envelope) -> Vec<u8> {
    encode(&to_rec(e))
}

/// Decodes an envelope (version 1 or 2).
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, CodecError> {
    if bytes.first() == Some(&1) {
        return from_rec(decode_as::<EnvelopeRecV1>(bytes, |v| v == 1)?.into());
    }
    from_rec(decode_as(bytes, |v| v == 2)?)
}

fn reason_code(r: DeadReason) -> u8 {
    match r {
        DeadReason::MaxAttempts => 0,
        DeadReason::NonRetryable => 1,
        DeadReason::HopBudgetExhausted => 2,
        DeadReason::DeadlineExceeded => 3,
        DeadReason::RouteNotAllowed => 4,
        DeadReason::NoRoute => 5,
        DeadReason::MaxCycles => 6,
        DeadReason::Invalid => 7,
        DeadReason::Rejected => 8,
        DeadReason::BudgetExhausted => 9,
    }
}

/// Encodes a dead letter.
pub fn encode_dead(d: &DeadLetter) -> Vec<u8> {
    encode(&DeadRec {
        envelope: to_rec(&d.envelope),
        reason: reason_code(d.reason),
        last_error: d.last_error.clone(),
        attempts: d.attempts,
        dead_ms: d.dead_ms,
    })
}

/// Decodes a dead letter (version 1 or 2).
pub fn decode_dead(bytes: &[u8]) -> Result<DeadLetter, CodecError> {
    let r: DeadRec = if bytes.first() == Some(&1) {
        let r: DeadRecV1 = decode_as(bytes, |v| v == 1)?;
        DeadRec {
            envelope: r.envelope.into(),
            reason: r.reason,
            last_error: r.last_error,
            attempts: r.attempts,
            dead_ms: r.dead_ms,
        }
    } else {
        decode_as(bytes, |v| v == 2)?
    };
    let reason = match r.reason {
        0 => DeadReason::MaxAttempts,
        1 => DeadReason::NonRetryable,
        2 => DeadReason::HopBudgetExhausted,
        3 => DeadReason::DeadlineExceeded,
        4 => DeadReason::RouteNotAllowed,
        5 => DeadReason::NoRoute,
        6 => DeadReason::MaxCycles,
        7 => DeadReason::Invalid,
        8 => DeadReason::Rejected,
        9 => DeadReason::BudgetExhausted,
        other => {
            return Err(CodecError::Corrupt(format!(
                "unknown dead-letter reason {other}"
            )))
        }
    };
    Ok(DeadLetter {
        envelope: from_rec(r.envelope)?,
        reason,
        last_error: r.last_error,
        attempts: r.attempts,
        dead_ms: r.dead_ms,
    })
}

/// Encodes a counter (attempts started, next sequence).
pub fn encode_u64(v: u64) -> Vec<u8> {
    encode(&v)
}

/// Decodes a counter.
pub fn decode_u64(bytes: &[u8]) -> Result<u64, CodecError> {
    decode(bytes)
}

/// Encodes an attempt marker: attempt `n` of a message has started, and, when
/// `running`, has not finished (so the message was in flight if the daemon dies).
/// A marker written before this flag existed (a bare counter) reads as finished.
pub fn encode_attempt(n: u32, running: bool) -> Vec<u8> {
    encode(&(u64::from(n), running))
}

/// Decodes an attempt marker: (attempt, running).
pub fn decode_attempt(bytes: &[u8]) -> Result<(u32, bool), CodecError> {
    let (n, running) = match decode::<(u64, bool)>(bytes) {
        Ok(v) => v,
        Err(_) => (decode_u64(bytes)?, false),
    };
    let n = u32::try_from(n).map_err(|_| CodecError::Corrupt(format!("attempt {n}")))?;
    Ok((n, running))
}

/// Encodes an idempotency entry: the first message's sequence and when the key expires.
pub fn encode_idem(seq: u64, expires_ms: u64) -> Vec<u8> {
    encode(&(seq, expires_ms))
}

/// Decodes an idempotency entry.
pub fn decode_idem(bytes: &[u8]) -> Result<(u64, u64), CodecError> {
    decode(bytes)
}

/// Encodes an agent's state.
pub fn encode_state(v: &Value) -> Vec<u8> {
    encode(&v.to_string())
}

/// Decodes an agent's state.
pub fn decode_state(bytes: &[u8]) -> Result<Value, CodecError> {
    let s: String = decode(bytes)?;
    serde_json::from_str(&s).map_err(|e| CodecError::Corrupt(format!("state is not JSON: {e}")))
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
