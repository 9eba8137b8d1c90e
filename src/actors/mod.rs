//! Agent hosts and built-in agent kinds.
//!
//! An agent is a [`slot::AgentSlot`] (its name, mailbox, state and counters, stable
//! for the daemon's life) plus one [`host::AgentHost`] actor per replica (replaced on
//! every restart). Senders address the slot through the [`registry::Registry`], so
//! restarts are invisible to them.
//!
//! This layer stands on the store, the envelope and the policies, and knows
//! nothing of supervision: supervisors start agents through [`worker`], and learn
//! of their exits through the reasons in [`exit`].

pub mod agent;
mod entries;
pub mod event;
pub mod exit;
pub(crate) mod faults;
pub(crate) mod host;
mod host_handle;
pub mod kinds;
pub mod registry;
pub mod slot;
pub mod spec;
pub(crate) mod wake;
pub(crate) mod worker;

pub use kinds::{KindInfo, Kinds};
pub use registry::{CallError, Registry, SendOptions};
pub use slot::{
    AgentSlot, AgentStats, DeadLetter, DeadReason, SendError, Undelivered, MAX_KEYS, MAX_KEY_LEN,
};
pub use spec::{AgentSpec, MailboxKind};
pub(crate) use worker::AgentWorker;
