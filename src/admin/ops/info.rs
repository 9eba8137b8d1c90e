//! `hello`, `ping`, `tree`, `stats`: what the daemon is and how it is doing.

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};

use super::AdminCtx;
use crate::admin::protocol::{AdminError, HelloReq, PROTOCOL_VERSION};

pub(super) fn hello(h: HelloReq) -> Result<Value, AdminError> {
    if let Some(v) = h.version {
        if v > PROTOCOL_VERSION {
            return Err(AdminError::new(
                "unsupported_version",
                format!("this daemon speaks protocol {PROTOCOL_VERSION}; the client asked for {v}"),
            ));
        }
    }
    Ok(json!({"protocol": PROTOCOL_VERSION, "version": env!("CARGO_PKG_VERSION")}))
}

pub(super) fn ping() -> Result<Value, AdminError> {
    Ok(json!({"pong": true, "pid": std::process::id()}))
}

pub(super) fn tree(ctx: &AdminCtx) -> Result<Value, AdminError> {
    Ok(serde_json::to_value(ctx.runtime.tree()).expect("tree encodes"))
}

pub(super) fn stats(ctx: &AdminCtx) -> Result<Value, AdminError> {
    let registry = &ctx.runtime.tree_context().registry;
    let mut agents = Map::new();
    for name in registry.names() {
        let Some(s) = registry.get(&name) else {
            continue;
        };
        let st = &s.stats;
        agents.insert(
            name,
            json!({
                "accepted": st.accepted.load(Ordering::Relaxed),
                "handled": st.handled.load(Ordering::Relaxed),
                "failed_attempts": st.failed_attempts.load(Ordering::Relaxed),
                "dead_lettered": st.dead_lettered.load(Ordering::Relaxed),
                "restarts": st.restarts.load(Ordering::Relaxed),
                "pending": s.pending(),
                "in_flight": s.in_flight(),
                "dead_letters": s.dead_count(),
                "durable": s.is_durable(),
                "breaker": s.breaker.as_ref().map(|b| b.snapshot()),
                "paused": s.systemic.snapshot(std::time::Instant::now()),
                "pauses": s.systemic.pauses(),
            }),
        );
    }
    let store = ctx
        .runtime
        .store()
        .map(|s| serde_json::to_value(s.snapshot()).expect("snapshot encodes"))
        .unwrap_or(Value::Null);
    Ok(json!({
        "agents": agents,
        "limits": ctx.runtime.tree_context().limits.snapshot(),
        "calls_pending": registry.pending_calls(),
        "store": store,
    }))
}
