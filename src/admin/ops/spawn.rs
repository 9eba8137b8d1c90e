//! `spawn`: make an agent from the template of a `simple_one_for_one`
//! supervisor; answered once it runs and its record is durable.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, AdminCtx};
use crate::admin::error::AdminError;

/// `spawn`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The supervisor.
    supervisor: String,
    /// The new agent's name (letters, digits, `_`, `-`, `.`; free in the tree).
    name: String,
    /// Its state until it commits one.
    state: Option<Value>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    crate::supervision::check_name(&r.name).map_err(|e| AdminError::bad_request(e.to_string()))?;
    ctx.runtime.spawn(&r.supervisor, &r.name, r.state).await?;
    Ok(json!({"op": "spawn", "supervisor": r.supervisor, "agent": r.name, "done": true}))
}

pub(super) fn render(r: &Value) -> String {
    format!("{} started under {}", s(&r["agent"]), s(&r["supervisor"]))
}
