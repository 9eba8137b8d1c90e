//! `mailbox` (peek at pending messages) and the dead-letter ops `dlq_list`,
//! `dlq_replay`, `dlq_purge`.

use serde_json::{json, Value};

use super::{slot, AdminCtx};
use crate::actors::DeadLetter;
use crate::admin::protocol::{AdminError, DlqListReq, DlqPickReq, MailboxReq};
use crate::envelope::{Envelope, MessageId};

fn envelope_json(e: &Envelope) -> Value {
    json!({
        "message_id": e.id.to_string(),
        "correlation": &*e.correlation,
        "causation": e.causation.as_ref().map(|c| c.to_string()),
        "hops": e.hops,
        "attempt": e.attempt,
        "deadline_ms": e.deadline_ms,
        "key": e.key,
        "enqueued_ms": e.enqueued_ms,
        "payload": e.payload,
    })
}

fn dead_json(d: &DeadLetter) -> Value {
    json!({
        "message_id": d.envelope.id.to_string(),
        "agent": &*d.envelope.id.agent,
        "reason": d.reason.as_str(),
        "attempts": d.attempts,
        "last_error": d.last_error,
        "dead_ms": d.dead_ms,
        "correlation": &*d.envelope.correlation,
        "payload": d.envelope.payload,
    })
}

pub(super) fn peek(m: MailboxReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let s = slot(ctx, &m.agent)?;
    let limit = m.limit.unwrap_or(20);
    let items: Vec<Value> = s.peek(limit).iter().map(envelope_json).collect();
    Ok(
        json!({"agent": m.agent, "pending": s.pending(), "in_flight": s.in_flight(), "messages": items}),
    )
}

pub(super) fn dlq_list(l: DlqListReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let registry = &ctx.runtime.tree_context().registry;
    let names = match l.agent {
        Some(a) => {
            slot(ctx, &a)?;
            vec![a]
        }
        None => registry.names(),
    };
    let mut out = Vec::new();
    for n in names {
        if let Some(s) = registry.get(&n) {
            out.extend(s.dead_letters().iter().map(dead_json));
        }
    }
    Ok(Value::Array(out))
}

/// The id to act on: one (`id`) or all (`all`), never both or neither.
fn pick(p: &DlqPickReq) -> Result<Option<MessageId>, AdminError> {
    match (&p.message_id, p.all) {
        (Some(_), true) => Err(AdminError::bad_request(
            "give either \"message_id\" or \"all\": true, not both",
        )),
        (None, false) => Err(AdminError::bad_request(
            "give \"message_id\" (such as \"planner:42\") or \"all\": true",
        )),
        (None, true) => Ok(None),
        (Some(id), false) => {
            let (agent, seq) = id
                .rsplit_once(':')
                .and_then(|(a, s)| Some((a, s.parse::<u64>().ok()?)))
                .ok_or_else(|| {
                    AdminError::bad_request(format!(
                        "\"{id}\" is not a message id such as \"planner:42\""
                    ))
                })?;
            if agent != p.agent {
                return Err(AdminError::bad_request(format!(
                    "message {id} belongs to '{agent}', not '{}'",
                    p.agent
                )));
            }
            Ok(Some(MessageId {
                agent: agent.into(),
                seq,
            }))
        }
    }
}

/// `not_found` when one message was asked for and none was acted on.
fn found(n: usize, p: &DlqPickReq) -> Result<(), AdminError> {
    match &p.message_id {
        Some(id) if n == 0 => Err(AdminError::new(
            "not_found",
            format!("no dead letter {id} for '{}'", p.agent),
        )),
        _ => Ok(()),
    }
}

pub(super) fn dlq_replay(p: DlqPickReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let s = slot(ctx, &p.agent)?;
    let ids = s.replay_dead(pick(&p)?.as_ref());
    found(ids.len(), &p)?;
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Ok(json!({"replayed": ids.len(), "message_ids": ids}))
}

pub(super) fn dlq_purge(p: DlqPickReq, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let s = slot(ctx, &p.agent)?;
    let n = s.purge_dead(pick(&p)?.as_ref());
    found(n, &p)?;
    Ok(json!({"purged": n}))
}
