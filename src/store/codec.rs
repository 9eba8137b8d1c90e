//! Record encoding: a format-version byte, then bincode 2.0.1 (serde mode, with a
//! size limit). Payloads and states are kept as JSON text inside the record, since
//! bincode is not self-describing and cannot decode `serde_json::Value`.
//!
//! The format is pinned by golden byte vectors in the tests below: a change to any
//! record's layout must bump [`FORMAT`] and keep reading the old version.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dead::{DeadLetter, DeadReason};
use crate::envelope::{Envelope, MessageId, ReplyTo};

/// The record format this build writes and reads.
pub const FORMAT: u8 = 1;
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
    #[error("record format version {0}, this build reads {FORMAT}")]
    Version(u8),
    /// The bytes do not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
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

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.first() {
        None => Err(CodecError::Empty),
        Some(&FORMAT) => {
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
    })
}

/// Encodes an envelope.
pub fn encode_envelope(e: &Envelope) -> Vec<u8> {
    encode(&to_rec(e))
}

/// Decodes an envelope.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, CodecError> {
    from_rec(decode(bytes)?)
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

/// Decodes a dead letter.
pub fn decode_dead(bytes: &[u8]) -> Result<DeadLetter, CodecError> {
    let r: DeadRec = decode(bytes)?;
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
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Envelope {
        Envelope {
            id: MessageId {
                agent: "planner".into(),
                seq: 42,
            },
            payload: json!({"task": "x"}),
            correlation: "planner:42".into(),
            causation: Some(MessageId {
                agent: "intake".into(),
                seq: 7,
            }),
            hops: 1,
            attempt: 1,
            deadline_ms: Some(1_700_000_000_000),
            key: Some("k-1".into()),
            reply_to: Some(ReplyTo::Call(3)),
            trace: None,
            enqueued_ms: 1_600_000_000_000,
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn envelope_round_trips() {
        let e = sample();
        assert_eq!(decode_envelope(&encode_envelope(&e)).unwrap(), e);
    }

    #[test]
    fn envelope_golden_bytes() {
        // Format 1. If this changes, bump FORMAT and keep a decoder for version 1.
        assert_eq!(
            hex(&encode_envelope(&sample())),
            concat!(
                "01",                         // format version
                "07706c616e6e6572",           // agent "planner"
                "2a",                         // seq 42
                "0c7b227461736b223a2278227d", // payload {"task":"x"}
                "0a706c616e6e65723a3432",     // correlation "planner:42"
                "0106696e74616b6507",         // causation Some(intake:7)
                "01",                         // hops 1
                "01",                         // attempt 1
                "01fd0068e5cf8b010000",       // deadline Some(1_700_000_000_000)
                "01036b2d31",                 // key Some("k-1")
                "010003",                     // reply_to Some(Call(3))
                "00",                         // trace None
                "fd00806e8774010000",         // enqueued_ms 1_600_000_000_000
            )
        );
    }

    #[test]
    fn counters_and_state_golden_bytes() {
        assert_eq!(hex(&encode_u64(300)), "01fb2c01");
        assert_eq!(hex(&encode_idem(5, 6)), "010506");
        assert_eq!(hex(&encode_state(&json!({"n": 1}))), "01077b226e223a317d");
    }

    #[test]
    fn dead_letter_round_trips() {
        let d = DeadLetter {
            envelope: sample(),
            reason: DeadReason::HopBudgetExhausted,
            last_error: "33 hops".into(),
            attempts: 0,
            dead_ms: 9,
        };
        let back = decode_dead(&encode_dead(&d)).unwrap();
        assert_eq!(back.envelope, d.envelope);
        assert_eq!(back.reason, d.reason);
        assert_eq!(back.last_error, d.last_error);
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let mut b = encode_envelope(&sample());
        b[0] = 2;
        assert_eq!(decode_envelope(&b), Err(CodecError::Version(2)));
        assert!(matches!(
            decode_envelope(&[FORMAT, 0xff, 0xff]),
            Err(CodecError::Corrupt(_))
        ));
        assert_eq!(decode_envelope(&[]), Err(CodecError::Empty));
        let mut long = encode_envelope(&sample());
        long.push(0);
        assert!(matches!(
            decode_envelope(&long),
            Err(CodecError::Corrupt(_))
        ));
    }
}
