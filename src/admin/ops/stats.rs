//! `stats`: counters per agent and limiter, and of the store.

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};

use super::{s, table, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::NoFields;

pub(super) async fn apply(_: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
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
                "dead_purged": st.dead_purged.load(Ordering::Relaxed),
                "pending": s.pending(),
                "in_flight": s.in_flight(),
                "dead_letters": s.dead_count(),
                "durable": s.is_durable(),
                "breaker": s.breaker.snapshot(),
                "paused": s.systemic.snapshot(crate::clock::now()),
                "pauses": s.systemic.pauses(),
            }),
        );
    }
    let store = ctx
        .runtime
        .store()
        .map(|s| serde_json::to_value(s.snapshot()).expect("snapshot encodes"))
        .unwrap_or(Value::Null);
    for (name, t) in registry.ledger.by("agent", 0) {
        if let Some(a) = agents.get_mut(&name) {
            a["spend"] = json!({"tokens": t.tokens, "cost": t.cost});
        }
    }
    Ok(json!({
        "agents": agents,
        "limits": ctx.runtime.tree_context().limits.snapshot(),
        "calls_pending": registry.pending_calls(),
        "store": store,
    }))
}

pub(super) fn render(r: &Value) -> String {
    let mut t = table(&[
        "agent", "accepted", "handled", "failed", "dead", "restarts", "pending", "durable",
    ]);
    if let Some(agents) = r["agents"].as_object() {
        for (name, a) in agents {
            t.add_row(vec![
                name.clone(),
                s(&a["accepted"]),
                s(&a["handled"]),
                s(&a["failed_attempts"]),
                s(&a["dead_lettered"]),
                s(&a["restarts"]),
                s(&a["pending"]),
                s(&a["durable"]),
            ]);
        }
    }
    let st = &r["store"];
    let store = if st.is_null() {
        "store: none".to_string()
    } else {
        format!(
            "store: {} ({}), {} commits in {} flushes, {} quarantined, {} bytes",
            s(&st["path"]),
            s(&st["durability"]),
            st["commits"],
            st["flushes"],
            st["quarantined"],
            st["size_on_disk"]
        )
    };
    format!("{t}\n{store}")
}
