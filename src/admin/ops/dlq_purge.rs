//! `dlq_purge`: delete one dead letter, or all of an agent's.

use serde_json::{json, Value};

use super::dlq::{found, pick};
use super::{slot, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::dlq::PickReq;

pub(super) async fn apply(p: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    if p.deadline.is_some() {
        return Err(AdminError::bad_request(
            "dlq_purge: unknown field `deadline` (only dlq_replay takes one)",
        ));
    }
    let s = slot(ctx, &p.agent)?;
    let n = s.purge_dead(pick(&p)?.as_ref());
    found(n, &p)?;
    Ok(json!({"purged": n}))
}

pub(super) fn render(r: &Value) -> String {
    format!("purged {}", r["purged"])
}
