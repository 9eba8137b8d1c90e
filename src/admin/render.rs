//! What every op's human rendering shares (each op renders its own result, in its
//! file under `ops/`): cell text and tables. `--json` prints the result object as
//! it is.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::Value;

/// A JSON value as table text: strings bare, null as `-`.
pub(super) fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A table with `header`, in the house style.
pub(super) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

/// A JSON value cut to 60 characters for a table cell.
pub(super) fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}
