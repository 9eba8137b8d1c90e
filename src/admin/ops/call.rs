//! `call`: send a message and wait for the agent's reply.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{duration, AdminCtx};
use crate::actors::CallError;
use crate::admin::error::AdminError;

/// `call`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// Recipient.
    to: String,
    /// Payload.
    payload: Value,
    /// How long to wait for the reply (default `"30s"`).
    timeout: Option<String>,
    /// Correlation id (default: the message's id).
    correlation: Option<String>,
    /// The correlation's token budget.
    budget_tokens: Option<u64>,
    /// The correlation's cost budget.
    budget_cost: Option<f64>,
}

pub(super) async fn apply(c: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let timeout = match c.timeout.as_deref() {
        Some(t) => duration("timeout", t)?,
        None => Duration::from_secs(30),
    };
    let opts = crate::actors::SendOptions {
        correlation: c.correlation,
        budget: super::send::budget(c.budget_tokens, c.budget_cost)?,
        ..Default::default()
    };
    match ctx.runtime.call_with(&c.to, c.payload, timeout, opts).await {
        Ok(reply) => Ok(json!({"reply": reply})),
        Err(CallError::Send(e)) => Err(e.into()),
        Err(e @ CallError::Timeout { .. }) => Err(AdminError::new(crate::admin::error::ErrorCode::Timeout, e.to_string())),
    }
}

pub(super) fn render(r: &Value) -> String {
    serde_json::to_string_pretty(&r["reply"]).unwrap_or_default()
}
