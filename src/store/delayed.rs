//! Delayed sends (`warden ctl send --delay D`): a message accepted now, into
//! its agent's mailbox at a time: `L id` (8 bytes, big-endian), the record as JSON.
//!
//! Guarantee: the send is answered once its record is durable; a scheduler
//! enqueues it when it is due (with an idempotency key, `delay:<id>` unless the
//! sender gave one) and only then removes the record, so a crash in between
//! enqueues it again at the next start and the key keeps it to once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{codec, keys, Batch};

/// One delayed send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayedRecord {
    /// Its id (unique in the store).
    pub id: u64,
    /// When it is due (ms since the epoch).
    pub due_ms: u64,
    /// The agent.
    pub to: String,
    /// The payload.
    pub payload: Value,
    /// The sender's idempotency key (else `delay:<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The sender's correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// The correlation's deadline, counted from the enqueue (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The sender's W3C trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The task's budget, given at the enqueue.
    #[serde(default, skip_serializing_if = "super::spend::Budget::is_empty")]
    pub budget: super::spend::Budget,
}

impl DelayedRecord {
    /// The idempotency key its enqueue uses.
    pub fn enqueue_key(&self) -> String {
        self.key
            .clone()
            .unwrap_or_else(|| format!("delay:{}", self.id))
    }
}

/// `L id`.
pub fn key(id: u64) -> Vec<u8> {
    let mut k = vec![keys::DELAYED];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Writes a delayed send.
pub fn put(batch: &mut Batch, rec: &DelayedRecord) {
    let json = serde_json::to_value(rec).expect("a delayed record encodes");
    batch.insert(key(rec.id), codec::encode_state(&json));
}

/// Removes a delayed send (it was enqueued).
pub fn remove(batch: &mut Batch, id: u64) {
    batch.remove(key(id));
}

/// Decodes a record read back at recovery, checking it against its key.
pub(super) fn decode(key: &[u8], value: &[u8]) -> Result<DelayedRecord, String> {
    let id = key
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .filter(|_| key.len() == 9)
        .ok_or("malformed delayed key")?;
    let json = codec::decode_state(value).map_err(|e| e.to_string())?;
    let rec: DelayedRecord =
        serde_json::from_value(json).map_err(|e| format!("not a delayed record: {e}"))?;
    if rec.id != id {
        return Err(format!("record says id {} under key {id}", rec.id));
    }
    Ok(rec)
}
