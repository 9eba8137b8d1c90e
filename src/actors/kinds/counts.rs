//! Counts per correlation kept in an agent's entries (a router's passes, a
//! validator's failures): entry `<field>:<correlation>` = `{"n", "ms"}` (the
//! count and when the correlation was first counted), and the number of
//! correlations tracked in the state (`{"<field>_tracked": n}`). Past `max`
//! correlations the oldest are forgotten, a tenth of `max` at a time, so a
//! commit writes one entry and a small state, however many are tracked.
//!
//! A state written by a build before entries (`{FIELD: {correlation: n},
//! "order": [oldest first]}`) is moved into entries at the first count.

use serde_json::{json, Value};

use crate::actors::agent::{AgentError, Context};

/// Adds one to the count of the message's correlation under `field`; returns
/// the new count.
pub(crate) fn bump(ctx: &mut Context, field: &str, max: usize) -> Result<u64, AgentError> {
    let tracked_key = format!("{field}_tracked");
    let mut tracked = migrate(ctx, field, &tracked_key)?;
    let key = format!("{field}:{}", ctx.message().correlation);
    let (n, ms) = match ctx.entry(&key) {
        Some(v) => (v["n"].as_u64().unwrap_or(0) + 1, v["ms"].clone()),
        None => {
            tracked += 1;
            (1, json!(crate::envelope::now_ms()))
        }
    };
    ctx.set_entry(&key, Some(json!({"n": n, "ms": ms})))?;
    if tracked > (max + max / 10) as u64 {
        let prefix = format!("{field}:");
        let mut all: Vec<(u64, String)> = ctx
            .entry_keys(&prefix)
            .into_iter()
            .filter(|k| *k != key)
            .map(|k| (ctx.entry(&k).and_then(|v| v["ms"].as_u64()).unwrap_or(0), k))
            .collect();
        all.sort();
        let excess = (all.len() + 1).saturating_sub(max);
        for (_, k) in all.iter().take(excess) {
            ctx.set_entry(k, None)?;
        }
        tracked = (all.len() + 1 - excess) as u64;
    }
    let mut state = ctx.state().clone();
    if !state.is_object() {
        state = json!({});
    }
    state[&tracked_key] = json!(tracked);
    ctx.set_state(state);
    Ok(n)
}

/// Moves an earlier build's counts out of the state; the number tracked.
fn migrate(ctx: &mut Context, field: &str, tracked_key: &str) -> Result<u64, AgentError> {
    let state = ctx.state().clone();
    let Some(counts) = state.get(field).and_then(Value::as_object) else {
        return Ok(state[tracked_key].as_u64().unwrap_or(0));
    };
    let order: Vec<String> = state["order"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for (i, c) in order.iter().enumerate() {
        if let Some(n) = counts.get(c).and_then(Value::as_u64) {
            ctx.set_entry(&format!("{field}:{c}"), Some(json!({"n": n, "ms": i})))?;
        }
    }
    let tracked = order.len() as u64;
    ctx.set_state(json!({ tracked_key: tracked }));
    Ok(tracked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::kinds::test_ctx::{commit, ctx};

    #[test]
    fn counts_grow_per_correlation_and_forget_the_oldest_past_the_bound() {
        let entries = crate::actors::slot::SharedEntries::default();
        let mut state = Value::Null;
        for (corr, want) in [("a", 1), ("a", 2), ("b", 1)] {
            let mut c = ctx(corr, state.clone(), &entries);
            assert_eq!(bump(&mut c, "cycles", 10).unwrap(), want);
            state = commit(c, &entries);
        }
        assert_eq!(state["cycles_tracked"], 2);
        // past 10 + 1: the oldest forgotten, down to 10
        for i in 0..20 {
            let mut c = ctx(&format!("x{i}"), state.clone(), &entries);
            bump(&mut c, "cycles", 10).unwrap();
            state = commit(c, &entries);
        }
        let tracked = entries.read().unwrap().len();
        assert!(tracked <= 11, "{tracked} tracked");
        assert_eq!(state["cycles_tracked"], tracked as u64);
        assert!(
            !entries.read().unwrap().contains_key("cycles:a"),
            "the oldest went first"
        );
        assert!(entries.read().unwrap().contains_key("cycles:x19"));
    }

    #[test]
    fn an_earlier_builds_counts_move_into_entries() {
        let entries = crate::actors::slot::SharedEntries::default();
        let old = json!({"cycles": {"a": 2, "b": 1}, "order": ["a", "b"]});
        let mut c = ctx("a", old, &entries);
        assert_eq!(
            bump(&mut c, "cycles", 10).unwrap(),
            3,
            "a's count carried over"
        );
        let state = commit(c, &entries);
        assert_eq!(state, json!({"cycles_tracked": 2}));
        assert_eq!(entries.read().unwrap()["cycles:b"]["n"], 1);
    }
}
