//! `kill`, `restart`, `stop`, `start`: OTP's terminate_child / restart_child on one
//! child of the tree, by name.

use serde_json::{json, Value};

use super::AdminCtx;
use crate::admin::protocol::{AdminError, AgentReq};

fn done(op: &str, agent: &str) -> Value {
    json!({"op": op, "agent": agent, "done": true})
}

pub(super) async fn kill(a: AgentReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.kill(&a.agent).await?;
    Ok(done("kill", &a.agent))
}

/// `resume`: ends a systemic-failure pause now; `resumed` says whether it was paused.
pub(super) fn resume(a: AgentReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let resumed = super::slot(ctx, &a.agent)?.resume();
    Ok(json!({"op": "resume", "agent": a.agent, "done": true, "resumed": resumed}))
}

pub(super) async fn restart(a: AgentReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.restart_child(&a.agent).await?;
    Ok(done("restart", &a.agent))
}

pub(super) async fn stop(a: AgentReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.stop_child(&a.agent).await?;
    Ok(done("stop", &a.agent))
}

pub(super) async fn start(a: AgentReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.start_child(&a.agent).await?;
    Ok(done("start", &a.agent))
}
