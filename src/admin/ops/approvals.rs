//! `approvals`: the items waiting for a person at the `approve` agents (of one,
//! or of all), oldest first.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, short, slot, table, AdminCtx};
use crate::admin::error::AdminError;

/// `approvals`' fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// Only this agent's.
    agent: Option<String>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let registry = &ctx.runtime.tree_context().registry;
    let names = match r.agent {
        Some(a) => {
            let sl = slot(ctx, &a)?;
            if sl.spec().kind != "approve" {
                return Err(AdminError::bad_request(format!(
                    "'{a}' is a {} agent, not an approve agent",
                    sl.spec().kind
                )));
            }
            vec![a]
        }
        None => registry.names(),
    };
    let mut out = Vec::new();
    for n in names {
        if let Some(sl) = registry.get(&n).filter(|s| s.spec().kind == "approve") {
            for mut item in crate::actors::kinds::approve::pending(&sl) {
                item["agent"] = json!(n);
                out.push(item);
            }
        }
    }
    Ok(Value::Array(out))
}

pub(super) fn render(r: &Value) -> String {
    let items = r.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "nothing waits for approval".into();
    }
    let mut t = table(&["agent", "id", "correlation", "payload"]);
    for i in &items {
        t.add_row(vec![s(&i["agent"]), s(&i["id"]), s(&i["correlation"]), short(&i["payload"])]);
    }
    t.to_string()
}
