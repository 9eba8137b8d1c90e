//! `fanout`: one message per item of an array (DESIGN section 10).
//!
//! ```toml
//! [agent.split]
//! kind = "fanout"
//! items = "/subtasks"     # a JSON pointer to an array in the payload
//! to = ["workers"]
//! ```
//!
//! Each item goes to every agent in `to` as its own message, carrying its part
//! (`group` = this message's id, `index`, `count`) in the envelope; whatever
//! handles a part emits with the same part, so a `join` further on can collect
//! the group. All parts are emitted in one commit with the ack. A payload
//! without the array is dead-lettered `non_retryable`; an empty array emits
//! nothing (reply `{"parts": 0}`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context};
use crate::envelope::Part;

/// The option keys of a fan-out.
pub const OPTIONS: &[&str] = &["items"];
/// Most parts one message may fan out to.
pub const MAX_PARTS: usize = 10_000;

struct Fanout {
    items: String,
    to: Vec<String>,
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &["items"],
        agent_lists: &[],
        build: Arc::new(|spec| {
            let o = &spec.options;
            Ok(Box::new(Fanout {
                items: o
                    .get("items")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                to: super::to_list(spec),
            }))
        }),
    }
}

#[async_trait::async_trait]
impl Agent for Fanout {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let Some(items) = ctx
            .payload()
            .pointer(&self.items)
            .and_then(Value::as_array)
            .cloned()
        else {
            return Err(AgentError::non_retryable(format!(
                "the payload has no array at {}",
                self.items
            )));
        };
        if items.len() > MAX_PARTS {
            return Err(AgentError::non_retryable(format!(
                "{} items at {}; a fan-out makes at most {MAX_PARTS}",
                items.len(),
                self.items
            )));
        }
        let group: Arc<str> = Arc::from(ctx.message().id.to_string());
        let count = items.len() as u32;
        for (i, item) in items.into_iter().enumerate() {
            let part = Part {
                group: group.clone(),
                index: i as u32,
                count,
            };
            for to in &self.to {
                ctx.emit_part(to, item.clone(), part.clone())?;
            }
        }
        ctx.reply(json!({"group": &*group, "parts": count}));
        Ok(())
    }
}
