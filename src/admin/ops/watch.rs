//! `watch`: stream lifecycle events until the client closes; the server runs the
//! stream (`{"event":{...}}` lines after the first reply).

use serde_json::Value;

use super::{AdminCtx, Outcome};

pub(crate) type Req = super::NoFields;

pub(super) async fn apply(_: Req, _ctx: &AdminCtx) -> Outcome {
    Outcome::Watch
}

pub(super) fn render(_: &Value) -> String {
    "watching".into()
}
