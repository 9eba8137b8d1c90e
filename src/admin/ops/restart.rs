//! `restart`: stop a child gracefully and start it again (OTP `terminate_child` + `restart_child`).

use serde_json::Value;

use super::{done, s, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::AgentReq;

pub(super) async fn apply(a: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.restart_child(&a.agent).await?;
    Ok(done("restart", &a.agent))
}

pub(super) fn render(r: &Value) -> String {
    format!("{} restarted", s(&r["agent"]))
}
