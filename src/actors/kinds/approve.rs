//! `approve`: a person decides (DESIGN section 10).
//!
//! ```toml
//! [agent.gate]
//! kind = "approve"
//! to = ["publish"]          # approved items go on here
//! on_reject = "planner"     # optional: rejected items go here, with the reason
//! ```
//!
//! Each message becomes a pending item, an entry of the agent's keyed state (so
//! it survives restarts and crashes, and a commit writes only that item), announced by an `approval_waiting` event
//! (`warden ctl watch`). `warden ctl approvals`, `approve AGENT ID [--payload
//! JSON]` and `reject AGENT ID --reason TEXT` decide: the decision is itself a
//! message to the agent (`{"__approval": {...}}`), so taking the item out of the
//! pending set and handing it on commit together, once. Approved: the payload (or
//! the person's fixed one) goes to every agent in `to`. Rejected: to `on_reject`
//! as `{"rejected": payload, "reason": ..}`, or, without `on_reject`, dead-lettered
//! `rejected` (by a second message to itself, `{"__rejected": ..}`, whose dead
//! letter holds the item and the reason). What a decision hands on continues
//! the item's own correlation, trace and fan-out part (not the decision's), so
//! an approved part still completes its `join` and stays in its trace.

use std::sync::Arc;

use serde_json::{json, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context, Lineage};
use crate::store::dead::DeadReason;

/// The option keys of an approval gate.
pub const OPTIONS: &[&str] = &["on_reject"];

struct Approve {
    me: String,
    to: Vec<String>,
    on_reject: Option<String>,
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &[],
        agent_lists: &[],
        build: Arc::new(|spec| {
            let o = &spec.options;
            Ok(Box::new(Approve {
                me: spec.name.clone(),
                to: super::to_list(spec),
                on_reject: o
                    .get("on_reject")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }))
        }),
    }
}

/// Entry prefix of a pending item (its key: the item's id).
pub const ITEM: &str = "item:";

/// The pending items of an approval gate, oldest first: its entries, and any an
/// earlier build kept in the state (`{"pending": {id: item}}`).
pub fn pending(slot: &crate::actors::AgentSlot) -> Vec<Value> {
    let mut v: Vec<Value> = slot.entries(ITEM).into_iter().map(|(_, i)| i).collect();
    if let Some(old) = slot.state()["pending"].as_object() {
        v.extend(old.values().cloned());
    }
    v.sort_by_key(|i| i["since_ms"].as_u64().unwrap_or(0));
    v
}

/// A decided item goes on in the correlation, trace and fan-out part it came
/// with (items committed before these were kept: the correlation only).
fn lineage(item: &Value, ctx: &Context) -> Lineage {
    Lineage {
        correlation: item["correlation"]
            .as_str()
            .map(Arc::from)
            .unwrap_or_else(|| ctx.message().correlation.clone()),
        trace: item["trace"].as_str().map(str::to_string),
        part: serde_json::from_value(item["part"].clone()).ok(),
    }
}

/// Takes item `id` out of the pending set (an entry, or an earlier build's state).
fn take(ctx: &mut Context, id: &str) -> Result<Option<Value>, AgentError> {
    let key = format!("{ITEM}{id}");
    if let Some(item) = ctx.entry(&key) {
        ctx.set_entry(&key, None)?;
        return Ok(Some(item));
    }
    let mut state = ctx.state().clone();
    let item = state["pending"].as_object_mut().and_then(|p| p.remove(id));
    if item.is_some() {
        ctx.set_state(state);
    }
    Ok(item)
}

#[async_trait::async_trait]
impl Agent for Approve {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let payload = ctx.payload().clone();
        if let Some(r) = payload.get("__rejected") {
            return Err(AgentError::reject(
                DeadReason::Rejected,
                format!(
                    "rejected by a person: {} (item {})",
                    r["reason"].as_str().unwrap_or(""),
                    r["id"].as_str().unwrap_or("?")
                ),
            ));
        }
        let Some(decision) = payload.get("__approval") else {
            // a new item waits
            let m = ctx.message();
            let id = m.id.to_string();
            let item = json!({
                "id": id,
                "payload": payload,
                "correlation": &*m.correlation,
                "trace": m.trace,
                "part": m.part,
                "since_ms": crate::envelope::now_ms(),
            });
            ctx.set_entry(&format!("{ITEM}{id}"), Some(item))?;
            ctx.notify("approval_waiting", id.clone());
            ctx.reply(json!({"pending": id}));
            return Ok(());
        };
        let approve = match decision["decision"].as_str() {
            Some("approve") => true,
            Some("reject") => false,
            _ => {
                ctx.reply(json!({"error": "bad_request", "message": "decision must be approve or reject"}));
                return Ok(());
            }
        };
        let id = decision["id"].as_str().unwrap_or("").to_string();
        let Some(item) = take(ctx, &id)? else {
            ctx.reply(json!({"error": "not_found", "message": format!("no pending item '{id}' at '{}'", self.me)}));
            return Ok(());
        };
        let original = item["payload"].clone();
        let lineage = lineage(&item, ctx);
        if approve {
            let out = decision.get("payload").cloned().unwrap_or(original);
            for to in &self.to {
                ctx.emit_in(to, out.clone(), lineage.clone())?;
            }
            ctx.reply(json!({"approved": id}));
        } else {
            let reason = decision["reason"].as_str().unwrap_or("").to_string();
            match &self.on_reject {
                Some(to) => {
                    ctx.emit_in(to, json!({"rejected": original, "reason": reason}), lineage)?
                }
                None => {
                    let me = self.me.clone();
                    ctx.emit(
                        &me,
                        json!({"__rejected": {"id": id, "reason": reason, "payload": original}}),
                    )?
                }
            }
            ctx.reply(json!({"rejected": id}));
        }
        Ok(())
    }
}
