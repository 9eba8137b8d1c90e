//! `stop`: stop a child gracefully; it stays stopped, and messages sent to it wait (OTP `terminate_child`).

use serde_json::Value;

use super::{done, s, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::AgentReq;

pub(super) async fn apply(a: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    ctx.runtime.stop_child(&a.agent).await?;
    Ok(done("stop", &a.agent))
}

pub(super) fn render(r: &Value) -> String {
    format!("{} stopped", s(&r["agent"]))
}
