//! `sink`: appends one JSON line per handled message to `path`, the output end of a
//! pipeline: `{"message_id":..,"correlation":..,"causation":..,"attempt":..,
//! "payload":..}`. `causation` is the id of the message whose handling emitted
//! this one (`"sales-eu:42"`: agent `sales-eu` handled its message 42), or
//! `null` for a send from outside: a sink fed by every agent is an audit trail
//! of who handled what.
//!
//! The line is written (one `write` on an `O_APPEND` file) before the ack, so the
//! file holds every handled message at least once; a crash between the write and the
//! commit repeats the line on redelivery, with a higher `attempt`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context};

struct Sink {
    file: File,
}

#[async_trait::async_trait]
impl Agent for Sink {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let m = ctx.message();
        let mut line = serde_json::to_vec(&json!({
            "message_id": m.id.to_string(),
            "correlation": &*m.correlation,
            "causation": m.causation.as_ref().map(|c| c.to_string()),
            "attempt": m.attempt,
            "payload": &m.payload,
        }))
        .map_err(|e| AgentError::non_retryable(format!("cannot encode line: {e}")))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| AgentError::retryable(format!("cannot append to sink file: {e}")))?;
        let written = json!({"written": m.id.to_string()});
        ctx.reply(written);
        Ok(())
    }
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: &["path"],
        required: &["path"],
        agent_lists: &[],
        build: Arc::new(|spec| {
            let path = spec
                .options
                .get("path")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("agent '{}': sink needs 'path' (a file)", spec.name))?;
            let path = Path::new(path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!(
                        "agent '{}': cannot create {}: {e}",
                        spec.name,
                        dir.display()
                    )
                })?;
            }
            // Private (0600), and never through a symlink: payloads must not end up
            // readable by others, or in a file someone else pointed the path at.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| {
                    format!("agent '{}': cannot open {}: {e}", spec.name, path.display())
                })?;
            Ok(Box::new(Sink { file }))
        }),
    }
}
