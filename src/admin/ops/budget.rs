//! `budget`: a task's budget and spend; with `budget_tokens` or `budget_cost`,
//! set or raise it without sending the task a message (then `dlq replay` its
//! `budget_exhausted` dead letters to go on).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, AdminCtx};
use crate::admin::error::AdminError;

/// `budget`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The task.
    correlation: String,
    /// Its new token budget.
    budget_tokens: Option<u64>,
    /// Its new cost budget.
    budget_cost: Option<f64>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let budget = super::send::budget(r.budget_tokens, r.budget_cost)?;
    let ledger = &ctx.runtime.tree_context().registry.ledger;
    let mut batch = crate::store::Batch::default();
    if ledger.set_budget(&r.correlation, budget, false, &mut batch) {
        if let Some(store) = ctx.runtime.store() {
            store
                .commit(batch)
                .await
                .map_err(|e| AdminError::new(crate::admin::error::ErrorCode::StoreError, e.to_string()))?;
        }
    }
    let spent = ledger
        .correlation(&r.correlation)
        .map(|c| c.spent)
        .unwrap_or_default();
    let b = ledger.budget(&r.correlation);
    Ok(json!({
        "correlation": r.correlation,
        "budget": b.map(|b| json!({"tokens": b.tokens, "cost": b.cost})),
        "remaining": ledger.remaining(&r.correlation).map(|x| x.to_json()),
        "spent": {"tokens": spent.tokens, "cost": spent.cost, "calls": spent.calls},
    }))
}

pub(super) fn render(r: &Value) -> String {
    let budget = match (&r["budget"]["tokens"], &r["budget"]["cost"]) {
        (Value::Null, Value::Null) => "no budget".to_string(),
        (t, Value::Null) => format!("budget {t} tokens"),
        (Value::Null, c) => format!("budget cost {c}"),
        (t, c) => format!("budget {t} tokens, cost {c}"),
    };
    format!(
        "{}: {budget}; spent {} tokens, cost {:.6}",
        s(&r["correlation"]),
        r["spent"]["tokens"],
        r["spent"]["cost"].as_f64().unwrap_or(0.0)
    )
}
