//! The `Agent` trait: what a behaviour written in Rust implements.
//!
//! A handler gets one message at a time through a [`Context`], which can reply,
//! emit to other agents by name, and read and replace the agent's state. Nothing a
//! handler does through the context takes effect until it returns `Ok`: then the
//! ack, the emitted messages, the reply and the new state are committed together.
//! A handler that returns `Err` or panics leaves no trace; the message is retried.

use std::sync::Arc;

use serde_json::Value;

use crate::actors::{AgentSlot, Registry};
use crate::envelope::Envelope;
use crate::policies::rate_limit::{Limiter, Refused};

/// A behaviour: handles messages one at a time.
#[async_trait::async_trait]
pub trait Agent: Send + 'static {
    /// Handles `ctx.message()`. `Ok` commits what the context collected; see [`AgentError`].
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError>;

    /// Called once when this incarnation is stopped gracefully (shutdown, `stop`,
    /// a sibling's restart), after its last message; not after a crash or a kill
    /// (OTP's `terminate/2`). Bounded by the agent's `shutdown` timeout.
    async fn on_stop(&mut self) {}

    /// Called once when this incarnation starts, before its first message (OTP's
    /// `init/1`): an `Err` is a start failure, handled by the supervisor as any.
    /// `host` lets a behaviour that watches something outside (a child process)
    /// end its incarnation later.
    async fn on_start(&mut self, host: HostHandle) -> Result<(), String> {
        let _ = host;
        Ok(())
    }

    /// Time the behaviour may take past the agent's `timeout` to end an attempt by
    /// itself (a port is sent `cancel` at the timeout and given a grace); the host
    /// cuts the attempt off only after `timeout` plus this.
    fn timeout_grace(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

pub use crate::actors::host_handle::HostHandle;

/// What went wrong in a handler, and so what the runtime does with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    /// How the runtime treats the failure.
    pub kind: ErrorKind,
    /// Shown in dead letters, logs and events.
    pub message: String,
    /// `RateLimited`: how long the upstream asked us to wait (a 429's Retry-After).
    pub retry_after: Option<std::time::Duration>,
}

/// The three ways a handler can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Try the message again after backoff, up to `max_attempts`.
    Retryable,
    /// Dead-letter the message now (`non_retryable`).
    NonRetryable,
    /// Crash this incarnation ("let it crash"): the supervisor restarts it and the
    /// message is redelivered to the new incarnation, counting an attempt.
    Fatal,
    /// The upstream said "too many requests": every limiter of the agent pauses for
    /// `retry_after`, and the message is retried after it, without counting an attempt.
    RateLimited,
    /// The message's deadline passed (or would pass while waiting for a limiter):
    /// dead-letter it (`deadline_exceeded`).
    DeadlineExceeded,
    /// The handler emitted to an agent its `to` does not list: dead-letter the
    /// message (`route_not_allowed`); nothing it emitted is sent.
    RouteNotAllowed,
    /// Dead-letter the message now with this reason (a workflow kind's verdict,
    /// such as `no_route`); the attempt counts.
    Reject(crate::store::dead::DeadReason),
}

impl AgentError {
    /// A failure worth retrying (a 5xx, a timeout of a remote call).
    pub fn retryable(message: impl Into<String>) -> Self {
        AgentError {
            kind: ErrorKind::Retryable,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that retrying cannot fix (a malformed payload).
    pub fn non_retryable(message: impl Into<String>) -> Self {
        AgentError {
            kind: ErrorKind::NonRetryable,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that leaves the agent's in-memory state suspect: crash and restart.
    pub fn fatal(message: impl Into<String>) -> Self {
        AgentError {
            kind: ErrorKind::Fatal,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl AgentError {
    /// Dead-letter the message now with `reason` (`no_route`, `max_cycles`, ...).
    pub fn reject(reason: crate::store::dead::DeadReason, message: impl Into<String>) -> Self {
        AgentError {
            kind: ErrorKind::Reject(reason),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The upstream rate-limited us (HTTP 429): pause this agent's limiters for
    /// `retry_after`, then retry the message (no attempt is counted).
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        AgentError {
            kind: ErrorKind::RateLimited,
            message: format!("rate limited; retry after {retry_after:?}"),
            retry_after: Some(retry_after),
        }
    }
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentError {}

impl From<String> for AgentError {
    fn from(message: String) -> Self {
        AgentError::retryable(message)
    }
}

impl From<&str> for AgentError {
    fn from(message: &str) -> Self {
        AgentError::retryable(message)
    }
}

/// A message emitted by a handler, resolved to its recipient at emit time.
pub(crate) struct Outgoing {
    pub(crate) to: Arc<AgentSlot>,
    pub(crate) payload: Value,
    /// A fan-out part of its own (else it inherits the handled message's).
    pub(crate) part: Option<crate::envelope::Part>,
    /// The lineage of an earlier message it continues (else the handled
    /// message's): an approved item goes on in its own correlation.
    pub(crate) lineage: Option<Lineage>,
}

/// Where an emit belongs when it continues an earlier message rather than the
/// one being handled: its correlation, trace and fan-out part.
#[derive(Debug, Clone)]
pub(crate) struct Lineage {
    pub(crate) correlation: Arc<str>,
    pub(crate) trace: Option<String>,
    pub(crate) part: Option<crate::envelope::Part>,
}

/// Entry changes a delivery made: key -> new value, or `None` for removed.
pub(crate) type EntryChanges = std::collections::BTreeMap<String, Option<Value>>;

/// The handler's view of one delivery.
pub struct Context {
    pub(crate) message: Arc<Envelope>,
    pub(crate) state: Value,
    pub(crate) state_changed: bool,
    /// The trace context what this delivery emits continues (its handle span's),
    /// when spans are exported; else the message's own.
    pub(crate) trace_out: Option<String>,
    /// The agent's committed entries, and what this delivery changes in them.
    pub(crate) entries: Option<crate::actors::slot::SharedEntries>,
    pub(crate) entry_changes: EntryChanges,
    pub(crate) emits: Vec<Outgoing>,
    pub(crate) reply: Option<Value>,
    /// Set by [`Context::stop`] or [`Context::exit`]: the exit reason to end with
    /// once this message is committed.
    pub(crate) exit: Option<String>,
    pub(crate) registry: Arc<Registry>,
    /// The agent's limiters (for token-weighted limits).
    pub(crate) limiters: Arc<[Arc<Limiter>]>,
    /// Tokens taken so far in this delivery.
    pub(crate) tokens_taken: u64,
    /// What its upstream calls used, committed with the hand-off (spend).
    pub(crate) usage: Vec<crate::spend::Usage>,
    /// What the message's correlation may still spend, if it has a budget.
    pub(crate) budget: Option<crate::spend::Remaining>,
    /// The agents it may emit to (its `to`); `None`: any.
    pub(crate) allowed: Option<Arc<[String]>>,
    /// Where `notify` publishes (the tree's event bus).
    pub(crate) events: Option<tokio::sync::broadcast::Sender<crate::actors::event::TreeEvent>>,
}

impl Context {
    pub(crate) fn new(
        message: Arc<Envelope>,
        state: Value,
        registry: Arc<Registry>,
        limiters: Arc<[Arc<Limiter>]>,
    ) -> Self {
        Context {
            message,
            state,
            state_changed: false,
            trace_out: None,
            entries: None,
            entry_changes: EntryChanges::new(),
            emits: Vec::new(),
            reply: None,
            exit: None,
            registry,
            limiters,
            tokens_taken: 0,
            usage: Vec::new(),
            budget: None,
            allowed: None,
            events: None,
        }
    }

    /// Publishes a lifecycle event about this agent (`warden ctl watch` shows it):
    /// `event` names it, `detail` says what.
    pub fn notify(&self, event: &'static str, detail: String) {
        if let Some(tx) = &self.events {
            let _ = tx.send(crate::actors::event::TreeEvent {
                event,
                name: self.message.id.agent.to_string(),
                reason: Some(detail),
                at_ms: crate::envelope::now_ms(),
            });
        }
    }

    /// The W3C `traceparent` a call made while handling this message carries:
    /// this attempt's `warden.handle` span when spans are exported (so the callee
    /// is its child), else the message's own trace context, if any.
    pub fn traceparent(&self) -> Option<&str> {
        self.trace_out.as_deref().or(self.message.trace.as_deref())
    }

    /// The envelope being handled.
    pub fn message(&self) -> &Envelope {
        &self.message
    }

    /// Its payload.
    pub fn payload(&self) -> &Value {
        &self.message.payload
    }

    /// Replies to the sender (a `call`, or the agent named in `reply_to`); one reply
    /// per message, the last one set wins. Dropped if the message has no `reply_to`.
    pub fn reply(&mut self, payload: Value) {
        self.reply = Some(payload);
    }

    /// Emits `payload` to the agent named `to`, in the same correlation, one hop on.
    /// Sent only if the handler returns `Ok`. An unknown name is a non-retryable error.
    pub fn emit(&mut self, to: &str, payload: Value) -> Result<(), AgentError> {
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|a| a == to) {
                return Err(AgentError {
                    kind: ErrorKind::RouteNotAllowed,
                    message: format!(
                        "route_not_allowed: an emit to '{to}', which is not in this agent's to ([{}]); add it to `to` if the route is meant",
                        allowed.join(", ")
                    ),
                    retry_after: None,
                });
            }
        }
        let slot = self
            .registry
            .get(to)
            .ok_or_else(|| AgentError::non_retryable(self.registry.unknown_agent(to)))?;
        self.emits.push(Outgoing {
            to: slot,
            payload,
            part: None,
            lineage: None,
        });
        Ok(())
    }

    /// Emits `payload` to `to` as the continuation of an earlier message of
    /// `lineage` (the `approve` kind: a decided item goes on in its correlation).
    pub(crate) fn emit_in(
        &mut self,
        to: &str,
        payload: Value,
        lineage: Lineage,
    ) -> Result<(), AgentError> {
        self.emit(to, payload)?;
        if let Some(last) = self.emits.last_mut() {
            last.lineage = Some(lineage);
        }
        Ok(())
    }

    /// Emits `payload` to `to` as part `part` of a fan-out (the `fanout` kind).
    pub(crate) fn emit_part(
        &mut self,
        to: &str,
        payload: Value,
        part: crate::envelope::Part,
    ) -> Result<(), AgentError> {
        self.emit(to, payload)?;
        if let Some(last) = self.emits.last_mut() {
            last.part = Some(part);
        }
        Ok(())
    }

    /// The agent's state as last committed (JSON `null` until first set).
    pub fn state(&self) -> &Value {
        &self.state
    }

    /// Replaces the agent's state, committed with the ack.
    pub fn set_state(&mut self, state: Value) {
        self.state = state;
        self.state_changed = true;
    }

    /// Takes `estimate` tokens from every token-weighted limiter of this agent
    /// (`tokens_per_minute`), waiting for them without blocking other agents: call it
    /// before an upstream call whose cost you can estimate (an LLM request's tokens).
    /// A wait that would pass the message's deadline dead-letters it
    /// (`deadline_exceeded`); an estimate larger than a minute's tokens is refused.
    pub async fn take_tokens(&mut self, estimate: u64) -> Result<(), AgentError> {
        let deadline = self.message.deadline_ms.map(|d| {
            crate::clock::after(std::time::Duration::from_millis(
                d.saturating_sub(crate::envelope::now_ms()),
            ))
        });
        for l in self.limiters.iter().filter(|l| l.weighs_tokens()) {
            match l.acquire_tokens(estimate, deadline).await {
                Ok(()) => {}
                Err(Refused::Deadline { limiter, wait }) => {
                    return Err(AgentError {
                        kind: ErrorKind::DeadlineExceeded,
                        message: format!(
                            "waiting {wait:?} for {estimate} tokens of limiter '{limiter}' would pass the deadline"
                        ),
                        retry_after: None,
                    })
                }
                Err(Refused::TooLarge { limiter, asked, capacity }) => {
                    return Err(AgentError::non_retryable(format!(
                        "{asked} tokens can never fit limiter '{limiter}' ({capacity} a minute); split the call"
                    )))
                }
            }
        }
        self.tokens_taken += estimate;
        Ok(())
    }

    /// Pauses every limiter of this agent for `for_` (an upstream said its quota
    /// is used up, without failing this call: `x-ratelimit-remaining-requests: 0`).
    pub fn pause_limiters(&self, for_: std::time::Duration) {
        for l in self.limiters.iter() {
            l.pause(for_);
        }
    }

    /// Reports what the upstream call really cost: tokens beyond those taken are
    /// debited from every token-weighted limiter (the next taker pays them first).
    /// The tokens count as spend of the message's correlation and this agent.
    pub fn report_tokens(&mut self, actual: u64) {
        self.report_usage(None, 0, 0, actual);
    }

    /// Reports what an upstream call used, with its model and the input/output
    /// split when known: counted against the token limiters as
    /// [`Context::report_tokens`] says, and as spend (tokens, and cost by the
    /// `[prices]` table) of this agent and of the message's correlation,
    /// committed with the hand-off (or, if the attempt fails, on its own).
    pub fn report_usage(&mut self, model: Option<&str>, input: u64, output: u64, total: u64) {
        let actual = total.max(input.saturating_add(output));
        let overrun = actual.saturating_sub(self.tokens_taken);
        for l in self.limiters.iter() {
            l.debit(overrun);
        }
        self.tokens_taken = self.tokens_taken.max(actual);
        if actual > 0 {
            self.usage.push(crate::spend::Usage {
                model: model.map(str::to_string),
                input,
                output,
                total: actual,
            });
        }
    }

    /// What the message's correlation may still spend (tokens, cost), if it has
    /// a budget: as it stood when this handling started.
    pub fn budget(&self) -> Option<crate::spend::Remaining> {
        self.budget
    }

    /// Asks the runtime to stop this agent normally once this message is committed.
    /// A `transient` or `temporary` agent stays stopped; a `permanent` one is restarted.
    pub fn stop(&mut self) {
        self.exit = Some(crate::actors::exit::EXIT_NORMAL.into());
    }

    /// Asks the runtime to end this agent with `reason` once this message is
    /// committed, as an Erlang process calls `exit(Reason)`: `"normal"` is a normal
    /// exit, `"shutdown"` or `"shutdown: ..."` a shutdown (neither restarts a
    /// `transient` agent), anything else an abnormal exit, which restarts a
    /// `permanent` or `transient` agent and counts against restart intensity. The
    /// message itself is handled: it is not retried.
    pub fn exit(&mut self, reason: impl Into<String>) {
        self.exit = Some(reason.into());
    }
}
