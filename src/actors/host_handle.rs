//! What a behaviour knows of the incarnation running it (`Agent::on_start`):
//! its agent and replica, the committed state and entries, a way to put messages
//! into its own mailbox, and to end itself.

use std::sync::Arc;

use serde_json::Value;

use crate::actors::AgentSlot;

/// What a behaviour knows of the incarnation running it, and how it ends it.
#[derive(Clone)]
pub struct HostHandle {
    pub(crate) cell: ractor::ActorCell,
    pub(crate) agent: Arc<str>,
    pub(crate) replica: usize,
    pub(crate) slot: std::sync::Weak<AgentSlot>,
}

impl HostHandle {
    /// The agent's name.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Which replica this incarnation runs (0-based).
    pub fn replica(&self) -> usize {
        self.replica
    }

    /// The agent's committed state now.
    pub fn state(&self) -> Value {
        self.slot
            .upgrade()
            .map(|s| s.state())
            .unwrap_or(Value::Null)
    }

    /// The agent's committed entries whose keys start with `prefix`, in key order.
    pub fn entries(&self, prefix: &str) -> Vec<(String, Value)> {
        self.slot
            .upgrade()
            .map(|s| s.entries(prefix))
            .unwrap_or_default()
    }

    /// Puts a message into the agent's own mailbox (a timer's tick), with an
    /// idempotency key so the same `key` is accepted once within the retention.
    /// Returns false if it was refused (the mailbox is full, or gone).
    pub fn send_self(&self, payload: Value, key: String) -> bool {
        let Some(slot) = self.slot.upgrade() else {
            return false;
        };
        let parts = crate::actors::slot::Parts {
            payload,
            correlation: None,
            causation: None,
            hops: 0,
            deadline_ms: None,
            key: Some(key),
            reply_to: None,
            trace: None,
            part: None,
            on_accept: None,
        };
        slot.accept(parts).is_ok()
    }

    /// Ends this incarnation after its current message with `reason`: `normal`
    /// (or `shutdown`) is a normal exit, anything else abnormal; its supervisor
    /// decides on a restart by its restart type.
    pub fn exit(&self, reason: &str) {
        self.cell.stop(Some(reason.to_string()));
    }
}
