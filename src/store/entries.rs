//! An agent's keyed state: entries (`E agent \0 key` -> JSON), for kinds that
//! keep many small things per agent (a join's groups, a validator's counts per
//! correlation, an approval gate's pending items). Unlike the state (one record,
//! rewritten whole on every change), an entry is written only when it changes,
//! so a commit costs what it changes, not what the agent remembers.
//!
//! Guarantees: entries are changed in the same group commit as the ack of the
//! message whose handling changed them (all or nothing, like the state), read
//! back whole at recovery, and removed with the agent's other records. A record
//! that does not decode is quarantined like any other. Values are encoded as a
//! state is (`codec::encode_state`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{codec, keys, Batch};

/// An agent's committed entries, by key.
pub type Entries = BTreeMap<String, Value>;

/// The longest entry key, in bytes.
pub const MAX_KEY: usize = 1024;

/// Writes (`Some`) or removes (`None`) entry `key` of `agent` in `batch`.
pub fn put(batch: &mut Batch, agent: &str, key: &str, value: Option<&Value>) {
    let k = keys::entry_key(agent, key);
    match value {
        Some(v) => batch.insert(k, codec::encode_state(v)),
        None => batch.remove(k),
    }
}
