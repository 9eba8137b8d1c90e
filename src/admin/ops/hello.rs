//! `hello`: the protocol handshake; the first op on a connection, optional.

use serde::Deserialize;
use serde_json::{json, Value};

use super::AdminCtx;
use crate::admin::error::{AdminError, ErrorCode};
use crate::admin::protocol::PROTOCOL_VERSION;

/// `hello`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Req {
    /// The client's protocol version.
    version: Option<u32>,
}

pub(super) async fn apply(h: Req, _ctx: &AdminCtx) -> Result<Value, AdminError> {
    if let Some(v) = h.version {
        if v > PROTOCOL_VERSION {
            return Err(AdminError::new(
                ErrorCode::UnsupportedVersion,
                format!("this daemon speaks protocol {PROTOCOL_VERSION}; the client asked for {v}"),
            ));
        }
    }
    Ok(json!({"protocol": PROTOCOL_VERSION, "version": env!("CARGO_PKG_VERSION")}))
}

pub(super) fn render(r: &Value) -> String {
    format!("protocol {}, warden {}", r["protocol"], super::s(&r["version"]))
}
