//! `ping`: is the daemon there, and which process is it.

use serde_json::{json, Value};

use super::AdminCtx;
use crate::admin::error::AdminError;

pub(crate) type Req = super::NoFields;

pub(super) async fn apply(_: Req, _ctx: &AdminCtx) -> Result<Value, AdminError> {
    Ok(json!({"pong": true, "pid": std::process::id()}))
}

pub(super) fn render(r: &Value) -> String {
    format!("pong (pid {})", r["pid"])
}
