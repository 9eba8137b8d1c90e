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

use super::slot::{Accepting, AgentSlot, Parts, SendError, Sent, Undelivered};
use crate::envelope::ReplyTo;
use crate::spec_error::SpecError;
use crate::util::{did_you_mean, Quote};

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
    /// A caller's W3C trace context (`traceparent`): the correlation's trace
    /// joins the caller's.
    pub traceparent: Option<String>,
    /// The correlation's budget (replacing its limits of the kinds given);
    /// without one, the receiving agent's `budget_tokens`/`budget_cost` start a
    /// correlation that has none.
    pub budget: crate::store::spend::Budget,
}

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
pub struct Registry {
    agents: RwLock<HashMap<Arc<str>, Arc<AgentSlot>>>,
    calls: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    /// Starts at a random point: a reply stored before a daemon crash must never
    /// reach a caller of the next run that happens to get the same call id.
    next_call: AtomicU64,
    /// Spend and budgets of the tree's correlations and agents.
    pub ledger: Arc<crate::spend::Ledger>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            agents: RwLock::default(),
            calls: Mutex::default(),
            ledger: Arc::default(),
            next_call: AtomicU64::new(fastrand::u64(..u64::MAX / 2)),
        }
    }
}

impl Registry {
    /// Adds a slot; refuses a name already taken.
    pub fn insert(&self, slot: Arc<AgentSlot>) -> Result<(), SpecError> {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        if agents.contains_key(&slot.name) {
            return Err(SpecError::Duplicate(slot.name.to_string()));
        }
        agents.insert(slot.name.clone(), slot);
        Ok(())
    }

    /// Removes the slot named `name` (a deleted agent).
    pub(crate) fn remove(&self, name: &str) -> Option<Arc<AgentSlot>> {
        self.agents
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
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
        let names = self.names();
        match did_you_mean(name, names.iter().map(String::as_str), Quote::Name) {
            Some(hint) => format!("no agent '{name}'; {hint}"),
            None => format!("no agent '{name}'"),
        }
    }

    /// Accepts a message for `to` from outside the tree. Returns once the message is
    /// accepted: in memory, or flushed to the store for a durable mailbox.
    /// A refusal hands the payload back ([`Undelivered`]).
    pub async fn send(
        &self,
        to: &str,
        payload: Value,
        opts: SendOptions,
    ) -> Result<Sent, Undelivered> {
        let Some(slot) = self.get(to) else {
            return Err(Undelivered {
                error: SendError::UnknownAgent(self.unknown_agent(to)),
                payload: Some(payload),
            });
        };
        // a task's budget: the sender's, or the entry agent's for a new task
        let (budget, keep) = if opts.budget.is_empty() {
            let o = &slot.spec().options;
            let b = crate::store::spend::Budget {
                tokens: o.get("budget_tokens").and_then(Value::as_u64),
                cost: o.get("budget_cost").and_then(Value::as_f64),
            };
            (b, true)
        } else {
            (opts.budget, false)
        };
        if budget.is_empty() {
            return Self::send_to(&slot, payload, opts).await;
        }
        // recorded with the accept, once the correlation is known (the new
        // message's id, if the sender gave none), before it can be handled
        let ledger = self.ledger.clone();
        let on_accept: crate::actors::slot::OnAccept = Box::new(move |c, batch| {
            ledger.set_budget(c, budget, keep, batch);
        });
        Self::send_parts(&slot, payload, opts, Some(on_accept)).await
    }

    /// Accepts a message for an agent already resolved with [`Registry::get`]
    /// (a sender that sends often keeps the slot, as it would keep an `ActorRef`).
    pub async fn send_to(
        slot: &Arc<AgentSlot>,
        payload: Value,
        opts: SendOptions,
    ) -> Result<Sent, Undelivered> {
        Self::send_parts(slot, payload, opts, None).await
    }

    async fn send_parts(
        slot: &Arc<AgentSlot>,
        payload: Value,
        opts: SendOptions,
        on_accept: Option<crate::actors::slot::OnAccept>,
    ) -> Result<Sent, Undelivered> {
        let parts = Parts {
            payload,
            correlation: opts.correlation.map(Arc::from),
            causation: None,
            hops: 0,
            deadline_ms: opts
                .deadline
                .or(slot.spec().deadline)
                .map(crate::clock::ms_after),
            key: opts.key,
            reply_to: opts.reply_to,
            trace: opts.traceparent,
            part: None,
            on_accept,
        };
        let span = tracing::trace_span!("warden.send", agent = %slot.name);
        match span.in_scope(|| slot.accept(parts))? {
            Accepting::Done(sent) => Ok(sent),
            Accepting::Flushing(id, rx) => {
                rx.await
                    .unwrap_or(Err(crate::store::StoreError::Closed))
                    .map_err(|e| Undelivered {
                        error: e.into(),
                        payload: None,
                    })?;
                Ok(Sent {
                    message_id: id,
                    duplicate: false,
                })
            }
        }
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
        // However this future ends (answered, timed out, or dropped because the
        // caller went away), the pending call is forgotten.
        let _forget = ForgetCall {
            registry: self,
            call_id,
        };
        opts.reply_to = Some(ReplyTo::Call(call_id));
        if let Err(e) = self.send(to, payload, opts).await {
            return Err(CallError::Send(e.error));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            _ => Err(CallError::Timeout {
                agent: to.to_string(),
                timeout,
            }),
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

/// Removes a pending call when its caller's future ends, whichever way.
struct ForgetCall<'a> {
    registry: &'a Registry,
    call_id: u64,
}

impl Drop for ForgetCall<'_> {
    fn drop(&mut self) {
        self.registry.lock_calls().remove(&self.call_id);
    }
}
