//! `kill`: kill a child abruptly; its supervisor handles it as a crash (OTP `exit(Pid, kill)`).

use serde_json::Value;

use super::{done, s, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::AgentReq;

pub(super) async fn apply(a: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.kill(&a.agent).await?;
    Ok(done("kill", &a.agent))
}

pub(super) fn render(r: &Value) -> String {
    format!("{} killed", s(&r["agent"]))
}
