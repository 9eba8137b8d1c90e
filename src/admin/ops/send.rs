//! `send` and `call`: accept a message; or accept it and wait for the reply.

use std::time::Duration;

use serde_json::{json, Value};

use super::{duration, AdminCtx};
use crate::actors::{CallError, SendOptions};
use crate::admin::protocol::{AdminError, CallReq, SendReq};

pub(super) async fn send(s: SendReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let opts = SendOptions {
        correlation: s.correlation,
        key: s.key,
        deadline: s
            .deadline
            .as_deref()
            .map(|d| duration("deadline", d))
            .transpose()?,
        reply_to: None,
    };
    let sent = ctx.runtime.send_with(&s.to, s.payload, opts).await?;
    Ok(json!({"message_id": sent.message_id.to_string(), "duplicate": sent.duplicate}))
}

pub(super) async fn call(c: CallReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let timeout = match c.timeout.as_deref() {
        Some(t) => duration("timeout", t)?,
        None => Duration::from_secs(30),
    };
    match ctx.runtime.call(&c.to, c.payload, timeout).await {
        Ok(reply) => Ok(json!({"reply": reply})),
        Err(CallError::Send(e)) => Err(e.into()),
        Err(e @ CallError::Timeout { .. }) => Err(AdminError::new("timeout", e.to_string())),
    }
}
