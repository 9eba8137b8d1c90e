//! `send`: accept a message; answered once it is accepted (durable: flushed).
//! With `delay`, the message is kept in the store and enqueued when it is due.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{duration, s, AdminCtx};
use crate::actors::SendOptions;
use crate::admin::error::AdminError;

/// `send`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// Recipient.
    to: String,
    /// Payload (any JSON).
    payload: Value,
    /// Idempotency key.
    key: Option<String>,
    /// Correlation id.
    correlation: Option<String>,
    /// Deadline of the correlation, a duration such as `"30s"`.
    deadline: Option<String>,
    /// Into the mailbox only after this long (`"10m"`): a durable delayed send.
    delay: Option<String>,
    /// The caller's W3C trace context: the message's trace joins it.
    traceparent: Option<String>,
    /// The correlation's token budget.
    budget_tokens: Option<u64>,
    /// The correlation's cost budget (in the `[prices]` currency).
    budget_cost: Option<f64>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let delay = r.delay.as_deref().map(|d| duration("delay", d)).transpose()?;
    let opts = SendOptions {
        correlation: r.correlation,
        key: r.key,
        deadline: r
            .deadline
            .as_deref()
            .map(|d| duration("deadline", d))
            .transpose()?,
        reply_to: None,
        traceparent: r.traceparent.as_deref().map(traceparent).transpose()?,
        budget: budget(r.budget_tokens, r.budget_cost)?,
    };
    if let Some(delay) = delay {
        // the deadline and the budget start when it is enqueued
        let rec = ctx
            .runtime
            .send_delayed(&r.to, r.payload, delay, opts)
            .await?;
        return Ok(json!({"delayed": rec.id, "due_ms": rec.due_ms, "to": rec.to}));
    }
    let sent = ctx.runtime.send_with(&r.to, r.payload, opts).await?;
    Ok(json!({"message_id": sent.message_id.to_string(), "duplicate": sent.duplicate}))
}

/// The `budget_tokens` and `budget_cost` fields, checked.
pub(super) fn budget(
    tokens: Option<u64>,
    cost: Option<f64>,
) -> Result<crate::store::spend::Budget, AdminError> {
    if tokens == Some(0) {
        return Err(AdminError::bad_request(
            "budget_tokens is 0; give the tokens the task may spend (at least 1)",
        ));
    }
    if let Some(c) = cost.filter(|c| !c.is_finite() || *c <= 0.0) {
        return Err(AdminError::bad_request(format!(
            "budget_cost is {c}; give the cost the task may spend, more than 0, in the [prices] currency"
        )));
    }
    Ok(crate::store::spend::Budget { tokens, cost })
}

/// A `traceparent` field, checked.
pub(super) fn traceparent(tp: &str) -> Result<String, AdminError> {
    match crate::telemetry::trace::parse(tp) {
        Some(_) => Ok(tp.trim().to_string()),
        None => Err(AdminError::bad_request(format!(
            "traceparent {tp:?} is not a W3C traceparent; it looks like \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\" (version, 32-hex trace id, 16-hex parent id, flags)"
        ))),
    }
}

pub(super) fn render(r: &Value) -> String {
    if let Some(id) = r["delayed"].as_u64() {
        return format!("delayed send {id} to {} kept until {} ms", s(&r["to"]), r["due_ms"]);
    }
    if r["duplicate"] == json!(true) {
        format!("duplicate of {} (nothing enqueued)", s(&r["message_id"]))
    } else {
        format!("accepted {}", s(&r["message_id"]))
    }
}
