//! `approve` and `reject`: a person's decision on a waiting item of an `approve`
//! agent. The decision is a message to the agent, so the item leaves the pending
//! set and goes on together, once; the answer is the agent's.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, slot, AdminCtx};
use crate::actors::CallError;
use crate::admin::error::{AdminError, ErrorCode};

/// `approve`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The approve agent.
    agent: String,
    /// The item (its id, from `approvals`; `id` is the request's own).
    item: String,
    /// A payload to hand on instead of the item's (the person fixed it).
    payload: Option<Value>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let mut d = json!({"decision": "approve", "id": r.item});
    if let Some(p) = r.payload {
        d["payload"] = p;
    }
    decide(ctx, &r.agent, d).await
}

/// Sends decision `d` to `agent` and returns its answer.
pub(super) async fn decide(ctx: &AdminCtx, agent: &str, d: Value) -> Result<Value, AdminError> {
    let sl = slot(ctx, agent)?;
    if sl.spec().kind != "approve" {
        return Err(AdminError::bad_request(format!(
            "'{agent}' is a {} agent, not an approve agent",
            sl.spec().kind
        )));
    }
    let reply = match ctx
        .runtime
        .call(agent, json!({"__approval": d}), Duration::from_secs(30))
        .await
    {
        Ok(reply) => reply,
        Err(CallError::Send(e)) => return Err(e.into()),
        Err(e @ CallError::Timeout { .. }) => {
            return Err(AdminError::new(ErrorCode::Timeout, e.to_string()))
        }
    };
    match reply["error"].as_str() {
        Some("not_found") => Err(AdminError::new(
            ErrorCode::NotFound,
            format!("{}; see warden ctl approvals {agent}", s(&reply["message"])),
        )),
        Some(_) => Err(AdminError::bad_request(s(&reply["message"]))),
        None => Ok(reply),
    }
}

pub(super) fn render(r: &Value) -> String {
    format!("approved {}", s(&r["approved"]))
}
