//! `dlq_replay`: put one dead letter (or all of an agent's) back in its mailbox,
//! attempts reset, as a new message.

use serde_json::{json, Value};

use super::dlq::{found, pick};
use super::{duration, slot, AdminCtx};
use crate::actors::slot::NewDeadline;
use crate::admin::error::AdminError;

pub(crate) type Req = super::dlq::PickReq;

pub(super) async fn apply(p: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let s = slot(ctx, &p.agent)?;
    let deadline = match p.deadline.as_deref() {
        None => NewDeadline::Keep,
        Some("none") => NewDeadline::Clear,
        Some(d) => NewDeadline::At(crate::clock::ms_after(duration("deadline", d)?)),
    };
    let ids = s.replay_dead(pick(&p)?.as_ref(), deadline);
    found(ids.len(), &p)?;
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Ok(json!({"replayed": ids.len(), "message_ids": ids}))
}

pub(super) fn render(r: &Value) -> String {
    format!("replayed {}: {}", r["replayed"], r["message_ids"])
}
