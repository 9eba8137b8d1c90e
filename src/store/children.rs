//! Dynamic children: the agents made at run time (`spawn` from a template,
//! `add_child` with a spec), one record each, so that they exist again after the
//! daemon restarts: `C supervisor \0 name`.
//!
//! Guarantee: a spawn or add is answered only after its record is durable, in the
//! same group commit as anything else queued with it; a delete removes the record
//! and every record of the agent (state, sequence, keys) in one batch.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{codec, keys, Batch};

/// One dynamic child as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildRecord {
    /// The supervisor it belongs to.
    pub supervisor: String,
    /// Its name (its address).
    pub name: String,
    /// Start order among the dynamic children of its supervisor.
    pub order: u64,
    /// Made from the supervisor's template (`spawn`) when `None`; otherwise the
    /// agent keys it was added with (`add_child`), as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Value>,
    /// The state it was spawned with (used until the agent commits one of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
}

/// `C supervisor \0 name`.
pub fn key(supervisor: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + supervisor.len() + name.len());
    k.push(keys::CHILD);
    k.extend_from_slice(supervisor.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Writes the record of a new dynamic child.
pub fn put(batch: &mut Batch, rec: &ChildRecord) {
    let json = serde_json::to_value(rec).expect("a child record encodes");
    batch.insert(key(&rec.supervisor, &rec.name), codec::encode_state(&json));
}

/// Removes the record of a dynamic child.
pub fn remove(batch: &mut Batch, supervisor: &str, name: &str) {
    batch.remove(key(supervisor, name));
}

/// Decodes a record read back at recovery, checking it against its key.
pub(super) fn decode(key: &[u8], value: &[u8]) -> Result<ChildRecord, String> {
    let (supervisor, rest) = keys::split(key).ok_or("malformed key")?;
    let name = std::str::from_utf8(rest).map_err(|_| "child name is not UTF-8")?;
    let json = codec::decode_state(value).map_err(|e| e.to_string())?;
    let rec: ChildRecord =
        serde_json::from_value(json).map_err(|e| format!("not a child record: {e}"))?;
    if rec.supervisor != supervisor || rec.name != name {
        return Err(format!(
            "record says {}/{} under key {supervisor}/{name}",
            rec.supervisor, rec.name
        ));
    }
    Ok(rec)
}
