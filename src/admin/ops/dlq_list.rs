//! `dlq_list`: the dead letters of one agent, or of all.

use serde::Deserialize;
use serde_json::Value;

use super::{s, short, slot, table, AdminCtx};
use crate::actors::DeadLetter;
use crate::admin::error::AdminError;

/// `dlq_list`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// Only this agent's dead letters.
    agent: Option<String>,
}

pub(super) async fn apply(l: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let registry = &ctx.runtime.tree_context().registry;
    let names = match l.agent {
        Some(a) => {
            slot(ctx, &a)?;
            vec![a]
        }
        None => registry.names(),
    };
    let mut out = Vec::new();
    for n in names {
        if let Some(s) = registry.get(&n) {
            out.extend(s.dead_letters().iter().map(DeadLetter::to_json));
        }
    }
    Ok(Value::Array(out))
}

pub(super) fn render(r: &Value) -> String {
    let mut t = table(&["message_id", "reason", "attempts", "last_error", "payload"]);
    let items = r.as_array().cloned().unwrap_or_default();
    for d in &items {
        t.add_row(vec![
            s(&d["message_id"]),
            s(&d["reason"]),
            s(&d["attempts"]),
            short(&d["last_error"]),
            short(&d["payload"]),
        ]);
    }
    if items.is_empty() {
        "no dead letters".into()
    } else {
        t.to_string()
    }
}
