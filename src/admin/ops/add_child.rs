//! `add_child`: add an agent with its own keys (checked as the config checks an
//! `[agent.NAME]` section) to a supervisor; kept in the store like a spawn.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, AdminCtx};
use crate::admin::error::AdminError;

/// `add_child`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The supervisor.
    supervisor: String,
    /// The new agent's name.
    name: String,
    /// Its keys, as an `[agent.NAME]` section would list them (`{"kind":"echo"}`).
    spec: Value,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let kinds = &ctx.runtime.tree_context().kinds;
    let limits = ctx.runtime.tree_context().limits().specs();
    let spec = crate::config::dynamic::child_from_json(&r.name, &r.spec, kinds, &limits)
        .map_err(|e| AdminError::bad_request(format!("{}: {}", e.key, e.reason)))?;
    ctx.runtime
        .add_child_kept(&r.supervisor, spec, Some(r.spec))
        .await?;
    Ok(json!({"op": "add_child", "supervisor": r.supervisor, "agent": r.name, "done": true}))
}

pub(super) fn render(r: &Value) -> String {
    format!("{} started under {}", s(&r["agent"]), s(&r["supervisor"]))
}
