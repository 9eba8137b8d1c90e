//! `counter`: counts the messages it handles in its committed state
//! (`{"count": n}`) and replies with the new count. Because the count is committed
//! with the ack, it is exact across restarts and crashes: a redelivered message was
//! never counted.

use std::sync::Arc;

use serde_json::{json, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context};

struct Counter;

#[async_trait::async_trait]
impl Agent for Counter {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let n = ctx
            .state()
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        ctx.set_state(json!({ "count": n }));
        ctx.reply(json!({ "count": n }));
        Ok(())
    }
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: &[],
        required: &[],
        agent_lists: &[],
        build: Arc::new(|_| Ok(Box::new(Counter))),
    }
}
