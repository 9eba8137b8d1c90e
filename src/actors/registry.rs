//! The registry: agent names to slots, and callers waiting for replies.
//!
//! Names are stable for the life of the daemon, so a sender resolves a name once per
//! send and never sees an agent "between incarnations". A pending call is a oneshot
//! waiting for the reply to one message; a call that times out removes itself, so
//! nothing is left behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::slot::{AgentSlot, SendError};
use crate::envelope::{now_ms, Envelope, MessageId, ReplyTo};

/// Options of a send from outside the tree.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Correlation id; defaults to the new message's id.
    pub correlation: Option<String>,
    /// Idempotency key.
    pub key: Option<String>,
    /// Deadline of the correlation, relative to now.
    pub deadline: Option<Duration>,
    /// Where replies go.
    pub reply_to: Option<ReplyTo>,
}

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The send was refused.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No reply within the timeout.
    #[error("no reply from '{agent}' within {timeout:?}; the message stays accepted and will still be handled")]
    Timeout {
        /// The agent called.
        agent: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// Names to slots, and pending calls.
#[derive(Default)]
pub struct Registry {
    agents: RwLock<HashMap<Arc<str>, Arc<AgentSlot>>>,
    calls: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    next_call: AtomicU64,
}

impl Registry {
    /// Adds a slot; refuses a name already taken.
    pub fn insert(&self, slot: Arc<AgentSlot>) -> Result<(), String> {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        if agents.contains_key(&slot.name) {
            return Err(format!("an agent named '{}' exists already", slot.name));
        }
        agents.insert(slot.name.clone(), slot);
        Ok(())
    }

    /// The slot named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<AgentSlot>> {
        self.agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every agent name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort();
        names
    }

    /// "no agent 'plannr'; did you mean 'planner'?"
    pub fn unknown_agent(&self, name: &str) -> String {
        match crate::util::nearest(name, self.names().iter().map(String::as_str)) {
            Some(near) => format!("no agent '{name}'; did you mean '{near}'?"),
            None => format!("no agent '{name}'"),
        }
    }

    /// Accepts a message for `to` from outside the tree.
    pub fn send(
        &self,
        to: &str,
        payload: Value,
        opts: SendOptions,
    ) -> Result<MessageId, SendError> {
        let slot = self
            .get(to)
            .ok_or_else(|| SendError::UnknownAgent(self.unknown_agent(to)))?;
        Self::send_to(&slot, payload, opts)
    }

    /// Accepts a message for an agent already resolved with [`Registry::get`]
    /// (a sender that sends often keeps the slot, as it would keep an `ActorRef`).
    pub fn send_to(
        slot: &AgentSlot,
        payload: Value,
        opts: SendOptions,
    ) -> Result<MessageId, SendError> {
        let to = &*slot.name;
        let id = slot.next_id();
        let now = now_ms();
        let env = Envelope {
            correlation: Arc::from(opts.correlation.unwrap_or_else(|| id.to_string())),
            id: id.clone(),
            payload,
            causation: None,
            hops: 0,
            attempt: 1,
            deadline_ms: opts.deadline.map(|d| now + d.as_millis() as u64),
            key: opts.key,
            reply_to: opts.reply_to,
            trace: None,
            enqueued_ms: now,
        };
        let _span = tracing::trace_span!("warden.enqueue", agent = to, message_id = %id).entered();
        slot.enqueue(env, false)?;
        Ok(id)
    }

    /// Accepts a message emitted while handling `cause`: same correlation, deadline and
    /// trace, one hop further. Emitted messages are never refused for capacity, so a
    /// handler's commit cannot half-succeed; hop budgets bound traffic inside the tree.
    pub(crate) fn send_caused(
        &self,
        slot: &AgentSlot,
        payload: Value,
        cause: &Envelope,
        reply_to: Option<ReplyTo>,
    ) -> Result<MessageId, SendError> {
        let id = slot.next_id();
        let env = Envelope {
            id: id.clone(),
            payload,
            correlation: cause.correlation.clone(),
            causation: Some(cause.id.clone()),
            hops: cause.hops + 1,
            attempt: 1,
            deadline_ms: cause.deadline_ms,
            key: None,
            reply_to,
            trace: cause.trace.clone(),
            enqueued_ms: now_ms(),
        };
        slot.enqueue(env, true)?;
        Ok(id)
    }

    /// Sends and waits for the reply, up to `timeout`.
    pub async fn call(
        &self,
        to: &str,
        payload: Value,
        timeout: Duration,
        mut opts: SendOptions,
    ) -> Result<Value, CallError> {
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock_calls().insert(call_id, tx);
        opts.reply_to = Some(ReplyTo::Call(call_id));
        if let Err(e) = self.send(to, payload, opts) {
            self.lock_calls().remove(&call_id);
            return Err(e.into());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            _ => {
                self.lock_calls().remove(&call_id);
                Err(CallError::Timeout {
                    agent: to.to_string(),
                    timeout,
                })
            }
        }
    }

    /// Delivers a reply to a waiting caller; dropped if the caller has gone.
    pub(crate) fn complete_call(&self, call_id: u64, reply: Value) {
        if let Some(tx) = self.lock_calls().remove(&call_id) {
            let _ = tx.send(reply);
        }
    }

    /// Callers waiting now.
    pub fn pending_calls(&self) -> usize {
        self.lock_calls().len()
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Value>>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}
