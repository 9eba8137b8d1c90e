//! `log`: change the daemon's log filter while it runs, for a while or until the
//! next change (`warden ctl log debug --for 5m`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{duration, s, AdminCtx};
use crate::admin::error::AdminError;

/// `log`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// A level (`debug`) or tracing directives (`warden=debug,info`).
    filter: String,
    /// How long before the start-up filter comes back (`"5m"`); for good if absent.
    #[serde(rename = "for")]
    for_: Option<String>,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let Some(log) = &ctx.log else {
        return Err(AdminError::bad_request(
            "this process does not own its log filter",
        ));
    };
    let for_ = r.for_.as_deref().map(|d| duration("for", d)).transpose()?;
    log.set(&r.filter, for_).map_err(AdminError::bad_request)?;
    Ok(json!({
        "filter": r.filter,
        "for_ms": for_.map(|d| d.as_millis() as u64),
        "then": log.base(),
    }))
}

pub(super) fn render(r: &Value) -> String {
    match r["for_ms"].as_u64() {
        Some(ms) => format!(
            "log filter {} for {} ms, then {}",
            s(&r["filter"]),
            ms,
            s(&r["then"])
        ),
        None => format!("log filter {}", s(&r["filter"])),
    }
}
