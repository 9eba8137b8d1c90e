//! `spend`: what agents spent, tokens and cost, by agent, model or
//! correlation (the ledger's totals: committed with the hand-offs that incurred
//! them, so they survive a crash; see [`crate::spend`]).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{duration, s, table, AdminCtx};
use crate::admin::error::AdminError;

/// `spend`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// `agent` (the default), `model` or `correlation`.
    by: Option<String>,
    /// Only spend within this long (`"1h"`): agent and model totals of the
    /// hours that overlap it, correlations that spent within it.
    since: Option<String>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let by = r.by.as_deref().unwrap_or("agent");
    if !matches!(by, "agent" | "model" | "correlation") {
        return Err(AdminError::bad_request(format!(
            "by {by:?}: group by \"agent\", \"model\" or \"correlation\""
        )));
    }
    let since_ms = match r.since.as_deref() {
        Some(d) => crate::envelope::now_ms()
            .saturating_sub(duration("since", d)?.as_millis().min(u64::MAX as u128) as u64),
        None => 0,
    };
    let ledger = &ctx.runtime.tree_context().registry.ledger;
    let mut rows = Vec::new();
    let (mut tokens, mut cost) = (0u64, 0.0f64);
    for (name, t) in ledger.by(by, since_ms) {
        tokens = tokens.saturating_add(t.tokens);
        cost += t.cost;
        let mut row = json!({
            by: name, "tokens": t.tokens, "input_tokens": t.input,
            "output_tokens": t.output, "cost": t.cost, "calls": t.calls,
        });
        if by == "correlation" {
            if let Some(b) = ledger.budget(&name) {
                row["budget"] = json!({"tokens": b.tokens, "cost": b.cost});
            }
        }
        rows.push(row);
    }
    Ok(json!({"by": by, "since": r.since, "rows": rows, "total": {"tokens": tokens, "cost": cost}}))
}

pub(super) fn render(r: &Value) -> String {
    let by = r["by"].as_str().unwrap_or("agent");
    let mut t = table(&[by, "tokens", "input", "output", "cost", "calls", "budget"]);
    for row in r["rows"].as_array().into_iter().flatten() {
        let budget = match (&row["budget"]["tokens"], &row["budget"]["cost"]) {
            (Value::Null, Value::Null) => String::new(),
            (tk, Value::Null) => format!("{tk} tokens"),
            (Value::Null, c) => format!("cost {c}"),
            (tk, c) => format!("{tk} tokens, cost {c}"),
        };
        t.add_row(vec![
            s(&row[by]),
            s(&row["tokens"]),
            s(&row["input_tokens"]),
            s(&row["output_tokens"]),
            format!("{:.6}", row["cost"].as_f64().unwrap_or(0.0)),
            s(&row["calls"]),
            budget,
        ]);
    }
    format!(
        "{t}\ntotal: {} tokens, cost {:.6}",
        r["total"]["tokens"],
        r["total"]["cost"].as_f64().unwrap_or(0.0)
    )
}
