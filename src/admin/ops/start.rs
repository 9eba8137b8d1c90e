//! `start`: start a stopped child (OTP `restart_child`).

use serde_json::Value;

use super::{done, s, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::AgentReq;

pub(super) async fn apply(a: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.start_child(&a.agent).await?;
    Ok(done("start", &a.agent))
}

pub(super) fn render(r: &Value) -> String {
    format!("{} started", s(&r["agent"]))
}
