//! Dead letters: messages given up on, kept with the reason, inspectable and
//! replayable (`dlq list|replay|purge`). The record layout is in [`super::codec`];
//! a dead letter is written in the same batch that removes its message, so a
//! message is never both pending and dead, nor neither.

use serde::Serialize;

use crate::envelope::Envelope;

/// Why a message was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadReason {
    /// Failed `max_attempts` times (`last_error` says how).
    MaxAttempts,
    /// The handler said retrying cannot help.
    NonRetryable,
    /// The correlation went past its hop budget.
    HopBudgetExhausted,
    /// The correlation's deadline passed.
    DeadlineExceeded,
    /// The handler emitted to an agent outside its `to`.
    RouteNotAllowed,
    /// A router found no route and has no default.
    NoRoute,
    /// A correlation passed a router (or a validator) more than `max_cycles` times.
    MaxCycles,
    /// A validator found the payload invalid and has no `on_fail`.
    Invalid,
    /// A person rejected it (`warden ctl reject`) and there is no `on_reject`.
    Rejected,
    /// Its correlation spent its budget (tokens or cost).
    BudgetExhausted,
}

impl DeadReason {
    /// The protocol spelling (`max_attempts`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::NonRetryable => "non_retryable",
            DeadReason::HopBudgetExhausted => "hop_budget_exhausted",
            DeadReason::DeadlineExceeded => "deadline_exceeded",
            DeadReason::RouteNotAllowed => "route_not_allowed",
            DeadReason::NoRoute => "no_route",
            DeadReason::MaxCycles => "max_cycles",
            DeadReason::Invalid => "invalid",
            DeadReason::Rejected => "rejected",
            DeadReason::BudgetExhausted => "budget_exhausted",
        }
    }
}

impl DeadLetter {
    /// The shape `dlq list` shows and `on_dead_letter` sends.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "message_id": self.envelope.id.to_string(),
            "agent": &*self.envelope.id.agent,
            "reason": self.reason.as_str(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "dead_ms": self.dead_ms,
            "correlation": &*self.envelope.correlation,
            "payload": self.envelope.payload,
        })
    }
}

/// A message given up on, kept with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The envelope as last delivered.
    pub envelope: Envelope,
    /// Why it was given up on.
    pub reason: DeadReason,
    /// The last failure: an error message, `timeout`, `panic: ...`, `killed`.
    pub last_error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered (ms since the epoch).
    pub dead_ms: u64,
}
