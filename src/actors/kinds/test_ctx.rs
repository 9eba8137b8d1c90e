//! A delivery's context for the unit tests of kinds, and the commit of what it
//! changed, as the host does (without a store).

use std::sync::Arc;

use serde_json::Value;

use crate::actors::agent::Context;
use crate::actors::slot::SharedEntries;
use crate::envelope::{Envelope, MessageId, Part};

/// A context for a message of `correlation` (with `part`, if any), the agent's
/// committed `state` and `entries`.
pub(crate) fn ctx_with(
    correlation: &str,
    payload: Value,
    part: Option<Part>,
    state: Value,
    entries: &SharedEntries,
) -> Context {
    let env = Envelope {
        id: MessageId {
            agent: "k".into(),
            seq: 1,
        },
        payload,
        correlation: correlation.into(),
        causation: None,
        hops: 0,
        attempt: 1,
        deadline_ms: None,
        key: None,
        reply_to: None,
        trace: None,
        enqueued_ms: 0,
        part,
    };
    let mut c = Context::new(
        Arc::new(env),
        state,
        Arc::new(crate::actors::Registry::default()),
        Arc::from(Vec::new()),
    );
    c.entries = Some(entries.clone());
    c
}

/// A context for a message of `correlation` with a null payload.
pub(crate) fn ctx(correlation: &str, state: Value, entries: &SharedEntries) -> Context {
    ctx_with(correlation, Value::Null, None, state, entries)
}

/// Applies what `c` changed to `entries`; returns the state it leaves.
pub(crate) fn commit(c: Context, entries: &SharedEntries) -> Value {
    let mut e = entries.write().unwrap();
    for (k, v) in c.entry_changes {
        match v {
            Some(v) => e.insert(k, v),
            None => e.remove(&k),
        };
    }
    c.state
}
