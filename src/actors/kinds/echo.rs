//! `echo`: replies with its payload and emits it to every agent in `to`.

use std::sync::Arc;

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context};

struct Echo {
    to: Vec<String>,
}

#[async_trait::async_trait]
impl Agent for Echo {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let payload = ctx.payload().clone();
        for to in &self.to {
            ctx.emit(to, payload.clone())?;
        }
        ctx.reply(payload);
        Ok(())
    }
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: &["to"],
        required: &[],
        agent_lists: &["to"],
        build: Arc::new(|spec| {
            let to = match spec.options.get("to") {
                None => Vec::new(),
                Some(v) => serde_json::from_value::<Vec<String>>(v.clone()).map_err(|_| {
                    format!("agent '{}': 'to' must be a list of agent names", spec.name)
                })?,
            };
            Ok(Box::new(Echo { to }))
        }),
    }
}
