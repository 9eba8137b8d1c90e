//! The envelope: one message addressed to one agent, with everything the runtime
//! needs to deliver it at least once, in order, and to bound the work it causes.
//!
//! Envelopes are immutable once accepted and shared as `Arc<Envelope>` between the
//! mailbox, the in-flight slot and the handler's context, so delivery copies no
//! payload. A redelivery after a failed attempt is a new envelope with `attempt + 1`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message's address-unique id: the recipient's name and a per-agent sequence.
/// Printed as `planner:42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageId {
    /// The agent the message was accepted for.
    pub agent: Arc<str>,
    /// Its position in that agent's accept order, from 1.
    pub seq: u64,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.agent, self.seq)
    }
}

/// Where a reply to a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyTo {
    /// A caller waiting in this daemon (`call`), by call id.
    Call(u64),
    /// Another agent, as an ordinary message.
    Agent(Arc<str>),
}

/// One message on its way to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id.
    pub id: MessageId,
    /// JSON payload.
    pub payload: Value,
    /// Groups every message caused by one original send (one trace).
    pub correlation: Arc<str>,
    /// The message whose handling emitted this one.
    pub causation: Option<MessageId>,
    /// How many agent-to-agent hops led here (the original send is 0).
    pub hops: u32,
    /// Delivery attempt, from 1.
    pub attempt: u32,
    /// Absolute deadline, milliseconds since the Unix epoch.
    pub deadline_ms: Option<u64>,
    /// Idempotency key given at send.
    pub key: Option<String>,
    /// Where `ctx.reply` sends.
    pub reply_to: Option<ReplyTo>,
    /// W3C trace context of the correlation's trace, if any.
    pub trace: Option<String>,
    /// When the message was accepted, milliseconds since the Unix epoch.
    pub enqueued_ms: u64,
    /// Which part of a fan-out this is (set by `fanout`, inherited by what handling
    /// it emits, so parts reach their `join` through any worker).
    #[serde(default)]
    pub part: Option<Part>,
}

/// One part of a fan-out group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The group: the fan-out message's id.
    pub group: Arc<str>,
    /// Its index, from 0.
    pub index: u32,
    /// How many parts the group has.
    pub count: u32,
}

impl Envelope {
    /// A copy for the next delivery attempt.
    pub fn next_attempt(&self) -> Envelope {
        Envelope {
            attempt: self.attempt + 1,
            ..self.clone()
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    crate::clock::now_ms()
}
