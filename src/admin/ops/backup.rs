//! `backup`: a consistent copy of the store, taken while the daemon runs, into a
//! new directory that a daemon can use as its `data_dir` to restore it.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{s, AdminCtx};
use crate::admin::error::{AdminError, ErrorCode};

/// `backup`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// A directory that does not exist yet (on the daemon's machine).
    path: String,
}

pub(super) async fn apply(r: Req, ctx: &AdminCtx) -> Result<Value, AdminError> {
    let Some(store) = ctx.runtime.store() else {
        return Err(AdminError::bad_request("this tree has no store to back up"));
    };
    let started = std::time::Instant::now();
    let bytes = store
        .backup(std::path::Path::new(&r.path))
        .await
        .map_err(|e| AdminError::new(ErrorCode::StoreError, e.to_string()))?;
    Ok(json!({
        "path": r.path,
        "bytes": bytes,
        "took_ms": started.elapsed().as_millis() as u64,
    }))
}

pub(super) fn render(r: &Value) -> String {
    format!(
        "backed up {} bytes to {} in {} ms; start a daemon with data_dir = that path to restore it",
        r["bytes"],
        s(&r["path"]),
        r["took_ms"]
    )
}
