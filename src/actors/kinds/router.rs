//! `router`: hands each message, unchanged, to the agent named by a field of its
//! payload (DESIGN section 10).
//!
//! ```toml
//! [agent.route]
//! kind = "router"
//! field = "/department"                   # a JSON pointer into the payload
//! routes = { sales = "sales", ops = "ops" }
//! default = "triage"                      # no match and no default: dead letter no_route
//! max_cycles = 3                          # optional: passes per correlation
//! exhausted = "human"                     # where the pass after max_cycles goes
//! ```
//!
//! A field that is a string is looked up as is; a number or a boolean by its JSON
//! text. With `max_cycles`, the router counts the passes of each correlation in
//! its committed state (so the count survives restarts and is exact: it commits
//! with the hand-off); the pass after the last allowed one goes to `exhausted` as
//! `{"cycles": N, "payload": ...}`, or, without `exhausted`, is dead-lettered
//! `max_cycles`. The count of the oldest correlations is forgotten past
//! [`MAX_TRACKED`] correlations. Targets named here may be emitted to without
//! being listed in `to`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context};
use crate::store::dead::DeadReason;

/// The option keys of a router.
pub const OPTIONS: &[&str] = &["field", "routes", "default", "max_cycles", "exhausted"];
/// Correlations whose passes a router remembers (oldest forgotten first).
pub const MAX_TRACKED: usize = 1_000;

struct Router {
    field: String,
    routes: Map<String, Value>,
    default: Option<String>,
    max_cycles: Option<u64>,
    exhausted: Option<String>,
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &["field"],
        agent_lists: &[],
        build: Arc::new(|spec| {
            let o = &spec.options;
            let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            Ok(Box::new(Router {
                field: s("field").ok_or(format!("agent '{}': router needs field", spec.name))?,
                routes: o
                    .get("routes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                default: s("default"),
                max_cycles: o.get("max_cycles").and_then(Value::as_u64),
                exhausted: s("exhausted"),
            }))
        }),
    }
}

impl Router {
    /// Counts this pass of the message's correlation; returns the count.
    fn count_pass(&self, ctx: &mut Context) -> Result<u64, AgentError> {
        super::counts::bump(ctx, "cycles", MAX_TRACKED)
    }
}

#[async_trait::async_trait]
impl Agent for Router {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let payload = ctx.payload().clone();
        if let Some(max) = self.max_cycles {
            let n = self.count_pass(ctx)?;
            if n > max {
                return match &self.exhausted {
                    Some(to) => {
                        ctx.emit(to, json!({"cycles": n, "payload": payload}))?;
                        Ok(())
                    }
                    None => Err(AgentError::reject(
                        DeadReason::MaxCycles,
                        format!("max_cycles: pass {n} of this correlation, {max} allowed"),
                    )),
                };
            }
        }
        let key = match payload.pointer(&self.field) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
            _ => None,
        };
        let target = key
            .as_ref()
            .and_then(|k| self.routes.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| self.default.clone());
        let Some(to) = target else {
            return Err(AgentError::reject(
                DeadReason::NoRoute,
                match key {
                    Some(k) => format!(
                        "no_route: {} = {k:?} matches no route and there is no default",
                        self.field
                    ),
                    None => format!(
                        "no_route: the payload has no {} to route on, and there is no default",
                        self.field
                    ),
                },
            ));
        };
        ctx.emit(&to, payload.clone())?;
        ctx.reply(json!({"routed_to": to}));
        Ok(())
    }
}
