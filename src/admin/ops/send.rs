//! `send`: accept a message; answered once it is accepted (durable: flushed).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{duration, s, AdminCtx};
use crate::actors::SendOptions;
use crate::admin::error::AdminError;

/// `send`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// Recipient.
    to: String,
    /// Payload (any JSON).
    payload: Value,
    /// Idempotency key.
    key: Option<String>,
    /// Correlation id.
    correlation: Option<String>,
    /// Deadline of the correlation, a duration such as `"30s"`.
    deadline: Option<String>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let opts = SendOptions {
        correlation: r.correlation,
        key: r.key,
        deadline: r
            .deadline
            .as_deref()
            .map(|d| duration("deadline", d))
            .transpose()?,
        reply_to: None,
    };
    let sent = ctx.runtime.send_with(&r.to, r.payload, opts).await?;
    Ok(json!({"message_id": sent.message_id.to_string(), "duplicate": sent.duplicate}))
}

pub(super) fn render(r: &Value) -> String {
    if r["duplicate"] == json!(true) {
        format!("duplicate of {} (nothing enqueued)", s(&r["message_id"]))
    } else {
        format!("accepted {}", s(&r["message_id"]))
    }
}
