//! The result object shared by ports and webhooks (`exec`, `http`):
//! `{"reply":..,"emit":[{"to":..,"payload":..}],"state":..,"tokens_used":..}`,
//! every field optional, applied to a delivery's context (so committed together,
//! or not at all), and the `deliver` params both are given.

use serde_json::{json, Map, Value};

use crate::actors::agent::{AgentError, Context};

/// Applies a result object's effects to `ctx`.
pub(crate) fn apply(result: &Map<String, Value>, ctx: &mut Context) -> Result<(), AgentError> {
    if let Some(r) = result.get("reply") {
        ctx.reply(r.clone());
    }
    if let Some(s) = result.get("state") {
        ctx.set_state(s.clone());
    }
    if let Some(n) = result.get("tokens_used").and_then(Value::as_u64) {
        ctx.report_tokens(n);
    }
    // `usage`: {"model", "input_tokens", "output_tokens"} (or the OpenAI names)
    if let Some(u) = result.get("usage").and_then(Value::as_object) {
        let n = |a: &str, b: &str| u.get(a).or(u.get(b)).and_then(Value::as_u64).unwrap_or(0);
        let model = u.get("model").and_then(Value::as_str);
        ctx.report_usage(
            model,
            n("input_tokens", "prompt_tokens"),
            n("output_tokens", "completion_tokens"),
            n("total_tokens", "total_tokens"),
        );
    }
    match result.get("emit") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for e in list {
                let to = e["to"].as_str().ok_or_else(|| {
                    AgentError::non_retryable(format!("an emit without \"to\": {e}"))
                })?;
                ctx.emit(to, e.get("payload").cloned().unwrap_or(Value::Null))?;
            }
        }
        Some(other) => {
            return Err(AgentError::non_retryable(format!(
                "emit must be a list of {{\"to\",\"payload\"}}, got {other}"
            )))
        }
    }
    Ok(())
}

/// The `deliver` params of the message `ctx` holds (DESIGN section 10): every key
/// present, `null` where it does not apply.
pub(crate) fn deliver_params(ctx: &Context, max_attempts: u32) -> Value {
    let m = ctx.message();
    let remaining = m
        .deadline_ms
        .map(|d| d.saturating_sub(crate::envelope::now_ms()));
    json!({
        "message_id": m.id.to_string(),
        "correlation": &*m.correlation,
        "causation": m.causation.as_ref().map(ToString::to_string),
        "attempt": m.attempt,
        "max_attempts": max_attempts,
        "hops": m.hops,
        "remaining_ms": remaining,
        "key": m.key,
        "traceparent": ctx.traceparent(),
        "budget": ctx.budget().map(|b| b.to_json()),
        "state": ctx.state(),
        "payload": m.payload,
    })
}
