//! `spawn`, `add_child`, `delete`, `which_children`: children made and removed at
//! run time (OTP `start_child`, `delete_child`, `which_children`), and a
//! supervisor's children with their status.

use serde_json::{json, Value};

use super::AdminCtx;
use crate::admin::protocol::{AddChildReq, AdminError, AgentReq, SpawnReq, SupervisorReq};

pub(super) async fn spawn(r: SpawnReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    crate::supervision::check_name(&r.name).map_err(AdminError::bad_request)?;
    ctx.runtime.spawn(&r.supervisor, &r.name, r.state).await?;
    Ok(json!({"op": "spawn", "supervisor": r.supervisor, "agent": r.name, "done": true}))
}

pub(super) async fn add_child(r: AddChildReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let kinds = &ctx.runtime.tree_context().kinds;
    let spec = crate::config::dynamic::child_from_json(&r.name, &r.spec, kinds, &ctx.limits)
        .map_err(|e| AdminError::bad_request(format!("{}: {}", e.key, e.reason)))?;
    ctx.runtime
        .add_child_kept(&r.supervisor, spec, Some(r.spec))
        .await?;
    Ok(json!({"op": "add_child", "supervisor": r.supervisor, "agent": r.name, "done": true}))
}

pub(super) async fn delete(a: AgentReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.delete_child(&a.agent).await?;
    Ok(json!({"op": "delete", "agent": a.agent, "done": true}))
}

pub(super) async fn which(r: SupervisorReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let children = ctx.runtime.which_children(&r.supervisor).await?;
    let count = ctx.runtime.count_children(&r.supervisor).await?;
    Ok(json!({"supervisor": r.supervisor, "children": children, "count": count}))
}
