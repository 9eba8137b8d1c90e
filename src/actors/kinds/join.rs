//! `join`: waits for every part of a fan-out group (DESIGN section 10).
//!
//! ```toml
//! [agent.collect]
//! kind = "join"
//! timeout = "5m"       # the window from the group's first part (wall clock, across restarts)
//! to = ["report"]
//! ```
//!
//! Parts are collected per group in the committed state, keyed by index, so a
//! part delivered twice (a redelivery) counts once, and a join restarted or
//! SIGKILLed mid-collection loses nothing. When every part is in, or when the
//! window closes, it emits `{"group": .., "parts": [...present parts, in index
//! order...], "missing": [indices]}` once per group to every agent in `to`; a
//! part arriving for a group already emitted is acknowledged and dropped. The
//! window is kept by a self-message (`{"__join_timeout": group}`, keyed by the
//! group and the window's end) scheduled at the first part and again at every start for the groups
//! still open. A message without a part is dead-lettered `non_retryable`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context, HostHandle};
use crate::envelope::now_ms;

/// The option keys of a join.
pub const OPTIONS: &[&str] = &["timeout"];
/// Groups already emitted that a join remembers (late parts are dropped).
pub const MAX_DONE: usize = 10_000;

struct Join {
    window: Duration,
    to: Vec<String>,
    host: Option<HostHandle>,
    timers: Vec<tokio::task::JoinHandle<()>>,
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &[],
        agent_lists: &[],
        build: Arc::new(|spec| {
            let o = &spec.options;
            let window = match o.get("timeout").and_then(Value::as_str) {
                Some(t) => humantime::parse_duration(t)
                    .map_err(|e| format!("agent '{}': timeout: {e}", spec.name))?,
                None => Duration::from_secs(300),
            };
            Ok(Box::new(Join {
                window,
                to: super::to_list(spec),
                host: None,
                timers: Vec::new(),
            }))
        }),
    }
}

impl Drop for Join {
    fn drop(&mut self) {
        for t in self.timers.drain(..) {
            t.abort();
        }
    }
}

impl Join {
    /// Sends the group's window end to itself at `at_ms`.
    fn schedule(&mut self, group: &str, at_ms: u64) {
        let Some(host) = self.host.clone() else {
            return;
        };
        let group = group.to_string();
        self.timers.retain(|t| !t.is_finished());
        self.timers.push(tokio::spawn(async move {
            let now = now_ms();
            if at_ms > now {
                tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
            }
            let key = format!("join-timeout:{group}:{at_ms}");
            host.send_self(json!({"__join_timeout": group}), key);
        }));
    }

    /// Emits a group (whole or at its window's end) and marks it done.
    fn emit(&self, ctx: &mut Context, state: &mut Value, group: &str) -> Result<(), AgentError> {
        let Some(g) = state["groups"]
            .as_object_mut()
            .and_then(|m| m.remove(group))
        else {
            return Ok(());
        };
        let count = g["count"].as_u64().unwrap_or(0);
        let parts = g["parts"].as_object().cloned().unwrap_or_default();
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for i in 0..count {
            match parts.get(&i.to_string()) {
                Some(p) => present.push(p.clone()),
                None => missing.push(json!(i)),
            }
        }
        let out = json!({"group": group, "parts": present, "missing": missing});
        for to in &self.to {
            ctx.emit(to, out.clone())?;
        }
        let done = state["done"].as_array_mut().expect("done is a list");
        done.push(json!(group));
        if done.len() > MAX_DONE {
            done.remove(0);
        }
        ctx.reply(out);
        Ok(())
    }
}

fn fresh_state(state: &Value) -> Value {
    let mut s = if state.is_object() {
        state.clone()
    } else {
        json!({})
    };
    if !s["groups"].is_object() {
        s["groups"] = Value::Object(Map::new());
    }
    if !s["done"].is_array() {
        s["done"] = json!([]);
    }
    s
}

#[async_trait::async_trait]
impl Agent for Join {
    async fn on_start(&mut self, host: HostHandle) -> Result<(), String> {
        // every replica schedules the windows of the groups it opens; replica 0
        // also those left open by an earlier incarnation (the keys dedupe)
        let first = host.replica() == 0;
        let state = host.state();
        self.host = Some(host);
        if !first {
            return Ok(());
        }
        let window = self.window.as_millis() as u64;
        if let Some(groups) = state["groups"].as_object() {
            for (g, v) in groups {
                let first = v["first_ms"].as_u64().unwrap_or(0);
                self.schedule(g, first.saturating_add(window));
            }
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let mut state = fresh_state(ctx.state());
        if let Some(group) = ctx.payload()["__join_timeout"].as_str().map(str::to_string) {
            let first = state["groups"][&group]["first_ms"].as_u64();
            match first {
                Some(f) if now_ms() >= f.saturating_add(self.window.as_millis() as u64) => {
                    self.emit(ctx, &mut state, &group)?;
                    ctx.set_state(state);
                }
                Some(f) => self.schedule(&group, f.saturating_add(self.window.as_millis() as u64)),
                None => {} // emitted already
            }
            return Ok(());
        }
        let Some(part) = ctx.message().part.clone() else {
            return Err(AgentError::non_retryable(
                "a join takes the parts of a fan-out; this message is not one",
            ));
        };
        let group = part.group.to_string();
        if state["done"]
            .as_array()
            .is_some_and(|d| d.iter().any(|g| g == &json!(group)))
        {
            ctx.reply(json!({"late": group}));
            return Ok(()); // its group was emitted already
        }
        let payload = ctx.payload().clone();
        let new_group = !state["groups"]
            .as_object()
            .is_some_and(|m| m.contains_key(&group));
        if new_group {
            state["groups"][&group] =
                json!({"count": part.count, "first_ms": now_ms(), "parts": {}});
        }
        state["groups"][&group]["parts"][part.index.to_string()] = payload;
        let have = state["groups"][&group]["parts"]
            .as_object()
            .map_or(0, Map::len);
        if have as u32 >= part.count {
            self.emit(ctx, &mut state, &group)?;
        } else if new_group {
            self.schedule(
                &group,
                now_ms().saturating_add(self.window.as_millis() as u64),
            );
        }
        ctx.set_state(state);
        Ok(())
    }
}
