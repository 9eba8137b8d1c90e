//! `validate`: a JSON Schema (2020-12) gate before work goes on (DESIGN
//! section 10).
//!
//! ```toml
//! [agent.check]
//! kind = "validate"
//! schema = "schemas/plan.json"
//! to = ["split"]
//! on_fail = "planner"      # gets {"input":..,"errors":[..]} to try again
//! max_cycles = 2           # the 3rd failure in one correlation: dead letter max_cycles
//! ```
//!
//! A valid payload goes on, unchanged, to every agent in `to`. An invalid one,
//! with `on_fail`, goes to `on_fail` as `{"input": payload, "errors": [{"path",
//! "message"}...]}`; without it, it is dead-lettered `invalid` (the errors in
//! `last_error`). With `max_cycles`, the failures of each correlation are counted
//! in the committed state: the one past `max_cycles` is dead-lettered
//! `max_cycles`. The schema is read and compiled when the agent starts, and by
//! `warden check` (a bad schema is a config error naming the file).

use std::sync::Arc;

use serde_json::{json, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context};
use crate::store::dead::DeadReason;

/// The option keys of a validator.
pub const OPTIONS: &[&str] = &["schema", "on_fail", "max_cycles"];
/// Errors listed per invalid message.
const MAX_ERRORS: usize = 20;
/// Correlations whose failures a validator remembers (oldest forgotten first).
pub const MAX_TRACKED: usize = 1_000;

struct Validate {
    schema: jsonschema::Validator,
    to: Vec<String>,
    on_fail: Option<String>,
    max_cycles: Option<u64>,
}

/// Reads and compiles the schema at `path`; the error names the file.
pub fn load_schema(path: &str) -> Result<jsonschema::Validator, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let schema: Value =
        serde_json::from_str(&text).map_err(|e| format!("{path} is not JSON: {e}"))?;
    jsonschema::draft202012::new(&schema)
        .map_err(|e| format!("{path} is not a valid JSON Schema (2020-12): {e}"))
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &["schema"],
        agent_lists: &[],
        build: Arc::new(|spec| {
            let o = &spec.options;
            let path = o
                .get("schema")
                .and_then(Value::as_str)
                .ok_or(format!("agent '{}': validate needs schema", spec.name))?;
            Ok(Box::new(Validate {
                schema: load_schema(path).map_err(|e| format!("agent '{}': {e}", spec.name))?,
                to: super::to_list(spec),
                on_fail: o.get("on_fail").and_then(Value::as_str).map(str::to_string),
                max_cycles: o.get("max_cycles").and_then(Value::as_u64),
            }))
        }),
    }
}

impl Validate {
    /// Counts a failure of the message's correlation in the state; the count.
    fn count_failure(ctx: &mut Context) -> Result<u64, AgentError> {
        super::counts::bump(ctx, "failures", MAX_TRACKED)
    }
}

#[async_trait::async_trait]
impl Agent for Validate {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let payload = ctx.payload().clone();
        let errors: Vec<Value> = self
            .schema
            .iter_errors(&payload)
            .take(MAX_ERRORS)
            .map(|e| json!({"path": e.instance_path().to_string(), "message": e.to_string()}))
            .collect();
        if errors.is_empty() {
            for to in &self.to {
                ctx.emit(to, payload.clone())?;
            }
            ctx.reply(json!({"valid": true}));
            return Ok(());
        }
        let summary = errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["path"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(max) = self.max_cycles {
            let n = Self::count_failure(ctx)?;
            if n > max {
                return Err(AgentError::reject(
                    DeadReason::MaxCycles,
                    format!("max_cycles: invalid {n} times in this correlation, {max} allowed: {summary}"),
                ));
            }
        }
        match &self.on_fail {
            Some(to) => {
                ctx.emit(to, json!({"input": payload, "errors": errors}))?;
                ctx.reply(json!({"valid": false, "errors": errors}));
                Ok(())
            }
            None => Err(AgentError::reject(
                DeadReason::Invalid,
                format!("invalid: {summary}"),
            )),
        }
    }
}
