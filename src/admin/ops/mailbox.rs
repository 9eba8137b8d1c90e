//! `mailbox`: peek at an agent's waiting messages, head first.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, short, slot, table, AdminCtx};
use crate::admin::error::AdminError;
use crate::envelope::Envelope;

/// `mailbox`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The agent.
    agent: String,
    /// Most envelopes returned (default 20).
    limit: Option<usize>,
}

fn envelope_json(e: &Envelope) -> Value {
    json!({
        "message_id": e.id.to_string(),
        "correlation": &*e.correlation,
        "causation": e.causation.as_ref().map(|c| c.to_string()),
        "hops": e.hops,
        "attempt": e.attempt,
        "deadline_ms": e.deadline_ms,
        "key": e.key,
        "enqueued_ms": e.enqueued_ms,
        "payload": e.payload,
    })
}

pub(super) async fn apply(m: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let s = slot(ctx, &m.agent)?;
    let limit = m.limit.unwrap_or(20);
    let items: Vec<Value> = s.peek(limit).iter().map(envelope_json).collect();
    Ok(
        json!({"agent": m.agent, "pending": s.pending(), "in_flight": s.in_flight(), "messages": items}),
    )
}

pub(super) fn render(r: &Value) -> String {
    let mut t = table(&["message_id", "attempt", "hops", "correlation", "payload"]);
    for m in r["messages"].as_array().into_iter().flatten() {
        t.add_row(vec![
            s(&m["message_id"]),
            s(&m["attempt"]),
            s(&m["hops"]),
            s(&m["correlation"]),
            short(&m["payload"]),
        ]);
    }
    format!(
        "{}: {} pending, {} in flight\n{t}",
        s(&r["agent"]),
        r["pending"],
        r["in_flight"]
    )
}
