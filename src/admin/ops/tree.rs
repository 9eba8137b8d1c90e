//! `tree`: a snapshot of the whole supervision tree, drawn as a tree by `ctl`.

use serde_json::Value;

use super::{s, AdminCtx};
use crate::admin::error::AdminError;

pub(crate) type Req = super::NoFields;

pub(super) async fn apply(_: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    Ok(serde_json::to_value(ctx.runtime.tree()).expect("tree encodes"))
}

pub(super) fn render(r: &Value) -> String {
    let mut out = String::new();
    draw(r, "", true, true, &mut out);
    out.trim_end().to_string()
}

fn draw(n: &Value, prefix: &str, last: bool, root: bool, out: &mut String) {
    let branch = if root {
        ""
    } else if last {
        "└── "
    } else {
        "├── "
    };
    let detail = if n["type"] == "agent" {
        format!(
            "agent  {}  restarts={} pending={} in_flight={} dead={}{}",
            s(&n["status"]),
            n["restarts"],
            n["pending"],
            n["in_flight"],
            n["dead_letters"],
            if n["replicas"].as_u64().unwrap_or(1) > 1 {
                format!(" replicas={}", n["replicas"])
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "supervisor {}  {}  restarts={}",
            s(&n["strategy"]),
            s(&n["status"]),
            n["restarts"]
        )
    };
    out.push_str(&format!("{prefix}{branch}{}  {detail}\n", s(&n["name"])));
    if let Some(children) = n["children"].as_array() {
        let next = if root {
            String::new()
        } else {
            format!("{prefix}{}", if last { "    " } else { "│   " })
        };
        for (i, c) in children.iter().enumerate() {
            draw(c, &next, i + 1 == children.len(), false, out);
        }
    }
}
