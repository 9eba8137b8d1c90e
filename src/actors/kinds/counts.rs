//! Counts per correlation kept in an agent's committed state (a router's passes,
//! a validator's failures): `{FIELD: {correlation: n}, "order": [oldest first]}`,
//! the oldest correlations forgotten past a bound.

use serde_json::{json, Value};

/// Adds one to `correlation`'s count in `state[field]`; returns the new state and
/// the count. At most `max` correlations are kept (the oldest go first).
pub(crate) fn bump(state: &Value, field: &str, correlation: &str, max: usize) -> (Value, u64) {
    let mut order: Vec<Value> = state["order"].as_array().cloned().unwrap_or_default();
    let mut counts = state[field].as_object().cloned().unwrap_or_default();
    let n = counts.get(correlation).and_then(Value::as_u64).unwrap_or(0) + 1;
    if !counts.contains_key(correlation) {
        order.push(Value::String(correlation.to_string()));
    }
    counts.insert(correlation.to_string(), json!(n));
    while order.len() > max {
        if let Some(k) = order.remove(0).as_str() {
            counts.remove(k);
        }
    }
    (json!({ field: counts, "order": order }), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_grow_per_correlation_and_forget_the_oldest() {
        let (s, n) = bump(&Value::Null, "c", "a", 2);
        assert_eq!(n, 1);
        let (s, n) = bump(&s, "c", "a", 2);
        assert_eq!(n, 2);
        let (s, _) = bump(&s, "c", "b", 2);
        let (s, _) = bump(&s, "c", "x", 2);
        assert!(s["c"].get("a").is_none(), "the oldest forgotten: {s}");
        assert_eq!(bump(&s, "c", "b", 2).1, 2);
    }
}
