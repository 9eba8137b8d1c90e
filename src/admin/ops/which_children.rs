//! `which_children`: one supervisor's children in start order, with OTP's
//! `count_children` counts.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, table, AdminCtx};
use crate::admin::error::AdminError;

/// `which_children`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The supervisor.
    supervisor: String,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let children = ctx.runtime.which_children(&r.supervisor).await?;
    let count = ctx.runtime.count_children(&r.supervisor).await?;
    Ok(json!({"supervisor": r.supervisor, "children": children, "count": count}))
}

pub(super) fn render(r: &Value) -> String {
    let mut t = table(&["child", "type", "restart", "status", "dynamic"]);
    for c in r["children"].as_array().into_iter().flatten() {
        t.add_row(vec![
            s(&c["name"]),
            s(&c["type"]),
            s(&c["restart"]),
            s(&c["status"]),
            s(&c["dynamic"]),
        ]);
    }
    let n = &r["count"];
    format!(
        "{t}\n{} children, {} running ({} supervisors, {} agents)",
        n["specs"], n["active"], n["supervisors"], n["workers"]
    )
}
