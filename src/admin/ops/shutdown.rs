//! `shutdown`: stop the daemon gracefully (as SIGTERM).

use serde_json::{json, Value};

use super::AdminCtx;
use crate::admin::error::AdminError;

pub(crate) type Req = super::NoFields;

pub(super) async fn apply(_: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let _ = ctx.shutdown.send(true);
    Ok(json!({"shutting_down": true}))
}

pub(super) fn render(_: &Value) -> String {
    "shutting down".into()
}
