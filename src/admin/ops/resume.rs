//! `resume`: end an agent's systemic-failure pause now.

use serde_json::{json, Value};

use super::{s, slot, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::AgentReq;

/// `resumed` says whether it was paused.
pub(super) async fn apply(a: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let resumed = slot(ctx, &a.agent)?.resume();
    Ok(json!({"op": "resume", "agent": a.agent, "done": true, "resumed": resumed}))
}

pub(super) fn render(r: &Value) -> String {
    if r["resumed"] == json!(false) {
        format!("{} was not paused", s(&r["agent"]))
    } else {
        format!("{} resumed", s(&r["agent"]))
    }
}
