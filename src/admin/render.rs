//! How `warden ctl` shows each op's result to a person: the tree drawing and the
//! tables. (`--json` prints the result object as it is.)

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::{json, Value};

/// The human rendering of `op`'s result.
pub(crate) fn human(op: &str, r: &Value) -> String {
    match op {
        "ping" => format!("pong (pid {})", r["pid"]),
        "send" if r["duplicate"] == json!(true) => {
            format!("duplicate of {} (nothing enqueued)", s(&r["message_id"]))
        }
        "send" => format!("accepted {}", s(&r["message_id"])),
        "call" => serde_json::to_string_pretty(&r["reply"]).unwrap_or_default(),
        "resume" if r["resumed"] == json!(false) => format!("{} was not paused", s(&r["agent"])),
        "resume" => format!("{} resumed", s(&r["agent"])),
        "tree" => {
            let mut out = String::new();
            draw_tree(r, "", true, true, &mut out);
            out.trim_end().to_string()
        }
        "stats" => stats_table(r),
        "mailbox" => mailbox_table(r),
        "dlq_list" => dlq_table(r),
        "dlq_replay" => format!("replayed {}: {}", r["replayed"], r["message_ids"]),
        "dlq_purge" => format!("purged {}", r["purged"]),
        "shutdown" => "shutting down".into(),
        "spawn" | "add_child" => {
            format!("{} started under {}", s(&r["agent"]), s(&r["supervisor"]))
        }
        "delete" => format!("{} deleted", s(&r["agent"])),
        "which_children" => children_table(r),
        _ => format!("{op} {}: done", s(&r["agent"])),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn draw_tree(n: &Value, prefix: &str, last: bool, root: bool, out: &mut String) {
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
            draw_tree(c, &next, i + 1 == children.len(), false, out);
        }
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

fn stats_table(r: &Value) -> String {
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

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

fn mailbox_table(r: &Value) -> String {
    let mut t = table(&["message_id", "attempt", "hops", "correlation", "payload"]);
    for m in r["messages"].as_array().into_iter().flatten() {
        t.add_row(vec![
            s(&m["message_id"]),
            s(&m["attempt"]),
            s(&m["hops"]),
            s(&m["correlation"]),
            short(&m["payload"]),
        ]);
    }
    format!(
        "{}: {} pending, {} in flight\n{t}",
        s(&r["agent"]),
        r["pending"],
        r["in_flight"]
    )
}

fn dlq_table(r: &Value) -> String {
    let mut t = table(&["message_id", "reason", "attempts", "last_error", "payload"]);
    let items = r.as_array().cloned().unwrap_or_default();
    for d in &items {
        t.add_row(vec![
            s(&d["message_id"]),
            s(&d["reason"]),
            s(&d["attempts"]),
            short(&d["last_error"]),
            short(&d["payload"]),
        ]);
    }
    if items.is_empty() {
        "no dead letters".into()
    } else {
        t.to_string()
    }
}

fn children_table(r: &Value) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(["child", "type", "restart", "status", "dynamic"]);
    for c in r["children"].as_array().into_iter().flatten() {
        t.add_row([
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
