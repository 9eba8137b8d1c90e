//! `reject`: a person turns a waiting item of an `approve` agent down, with a
//! reason: it goes to the agent's `on_reject`, or to its dead letters
//! (`rejected`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, AdminCtx};
use crate::admin::error::AdminError;

/// `reject`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The approve agent.
    agent: String,
    /// The item (its id, from `approvals`).
    item: String,
    /// Why (kept with the item).
    reason: String,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    if r.reason.trim().is_empty() {
        return Err(AdminError::bad_request("reject needs a reason (--reason TEXT)"));
    }
    super::approve::decide(
        ctx,
        &r.agent,
        json!({"decision": "reject", "id": r.item, "reason": r.reason}),
    )
    .await
}

pub(super) fn render(r: &Value) -> String {
    format!("rejected {}", s(&r["rejected"]))
}
