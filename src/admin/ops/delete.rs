//! `delete` (also `delete_child`): stop a child made at run time and remove it
//! with its records; refused while it holds messages or dead letters.

use serde_json::{json, Value};

use super::{s, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::AgentReq;

pub(super) async fn apply(a: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.delete_child(&a.agent).await?;
    Ok(json!({"op": "delete", "agent": a.agent, "done": true}))
}

pub(super) fn render(r: &Value) -> String {
    format!("{} deleted", s(&r["agent"]))
}
