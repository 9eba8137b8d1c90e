//! `join`: waits for every part of a fan-out group (DESIGN section 10).
//!
//! ```toml
//! [agent.collect]
//! kind = "join"
//! timeout = "5m"       # the window from the group's first part (wall clock, across restarts)
//! to = ["report"]
//! ```
//!
//! Parts are collected per group in the agent's committed entries (one per part,
//! keyed by group and index, so a commit writes only the part it adds), so a
//! part delivered twice (a redelivery) counts once, and a join restarted or
//! SIGKILLed mid-collection loses nothing. When every part is in, or when the
//! window closes, it emits `{"group": .., "parts": [...present parts, in index
//! order...], "missing": [indices]}` once per group to every agent in `to`; a
//! part arriving for a group already emitted is acknowledged and dropped. The
//! window is kept by a self-message (`{"__join_timeout": group}`, keyed by the
//! group and the window's end) scheduled at the first part and again at every
//! start for the groups still open. A message without a part is dead-lettered
//! `non_retryable`. The last [`MAX_DONE`] groups emitted are remembered (an entry
//! each; the state holds only their count), older ones forgotten in sweeps.
//! A join's state from a build before entries is moved into entries at its
//! first message.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

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
    fn emit(&self, ctx: &mut Context, group: &str) -> Result<(), AgentError> {
        let Some(g) = ctx.entry(&group_key(group)) else {
            return Ok(());
        };
        let count = g["count"].as_u64().unwrap_or(0);
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for i in 0..count {
            let key = part_key(group, i);
            match ctx.entry(&key) {
                Some(p) => {
                    present.push(p);
                    ctx.set_entry(&key, None)?;
                }
                None => missing.push(json!(i)),
            }
        }
        ctx.set_entry(&group_key(group), None)?;
        ctx.set_entry(&done_key(group), Some(json!(now_ms())))?;
        let out = json!({"group": group, "parts": present, "missing": missing});
        for to in &self.to {
            ctx.emit(to, out.clone())?;
        }
        ctx.reply(out);
        // the groups emitted are remembered (late parts are dropped), the oldest
        // forgotten in sweeps of a tenth past the bound
        let mut done = ctx.state()["done"].as_u64().unwrap_or(0) + 1;
        if done > (MAX_DONE + MAX_DONE / 10) as u64 {
            let mut all: Vec<(u64, String)> = ctx
                .entry_keys(DONE)
                .into_iter()
                .map(|k| (ctx.entry(&k).and_then(|v| v.as_u64()).unwrap_or(0), k))
                .collect();
            all.sort();
            let excess = all.len().saturating_sub(MAX_DONE);
            for (_, k) in all.iter().take(excess) {
                ctx.set_entry(k, None)?;
            }
            done = (all.len() - excess) as u64;
        }
        ctx.set_state(json!({ "done": done }));
        Ok(())
    }

    /// Moves what an earlier build kept in the state (`groups` and `done`) into
    /// entries, once.
    fn migrate(ctx: &mut Context) -> Result<(), AgentError> {
        let state = ctx.state().clone();
        if state["groups"].is_null() && !state["done"].is_array() {
            return Ok(());
        }
        if let Some(groups) = state["groups"].as_object() {
            for (g, v) in groups {
                let have = v["parts"].as_object().map_or(0, |p| p.len());
                ctx.set_entry(
                    &group_key(g),
                    Some(json!({"count": v["count"], "first_ms": v["first_ms"], "have": have})),
                )?;
                for (i, p) in v["parts"].as_object().into_iter().flatten() {
                    if let Ok(i) = i.parse::<u64>() {
                        ctx.set_entry(&part_key(g, i), Some(p.clone()))?;
                    }
                }
            }
        }
        let done = state["done"].as_array().cloned().unwrap_or_default();
        for (i, g) in done.iter().enumerate() {
            if let Some(g) = g.as_str() {
                ctx.set_entry(&done_key(g), Some(json!(i)))?;
            }
        }
        ctx.set_state(json!({ "done": done.len() }));
        Ok(())
    }
}

/// Entry prefixes: an open group (`{"count", "first_ms"}`), one of its parts (by
/// index), a group emitted already (when, ms).
const GROUP: &str = "g:";
const PART: &str = "p:";
const DONE: &str = "d:";

fn group_key(group: &str) -> String {
    format!("{GROUP}{group}")
}

fn part_key(group: &str, index: u64) -> String {
    format!("{PART}{group}/{index}")
}

fn done_key(group: &str) -> String {
    format!("{DONE}{group}")
}

#[async_trait::async_trait]
impl Agent for Join {
    async fn on_start(&mut self, host: HostHandle) -> Result<(), String> {
        // the windows of the groups left open by an earlier incarnation (the keys
        // of the window messages dedupe)
        let state = host.state();
        let open: Vec<(String, u64)> = host
            .entries(GROUP)
            .into_iter()
            .map(|(k, v)| {
                (
                    k[GROUP.len()..].to_string(),
                    v["first_ms"].as_u64().unwrap_or(0),
                )
            })
            .chain(
                // not yet moved out of an earlier build's state
                state["groups"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(g, v)| (g.clone(), v["first_ms"].as_u64().unwrap_or(0))),
            )
            .collect();
        self.host = Some(host);
        let window = self.window.as_millis() as u64;
        for (g, first) in open {
            self.schedule(&g, first.saturating_add(window));
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        Self::migrate(ctx)?;
        let window = self.window.as_millis() as u64;
        if let Some(group) = ctx.payload()["__join_timeout"].as_str().map(str::to_string) {
            let first = ctx
                .entry(&group_key(&group))
                .and_then(|g| g["first_ms"].as_u64());
            match first {
                Some(f) if now_ms() >= f.saturating_add(window) => self.emit(ctx, &group)?,
                Some(f) => self.schedule(&group, f.saturating_add(window)),
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
        if ctx.entry(&done_key(&group)).is_some() {
            ctx.reply(json!({"late": group}));
            return Ok(()); // its group was emitted already
        }
        let meta = ctx.entry(&group_key(&group));
        let new_group = meta.is_none();
        let mut meta =
            meta.unwrap_or_else(|| json!({"count": part.count, "first_ms": now_ms(), "have": 0}));
        let key = part_key(&group, u64::from(part.index));
        if ctx.entry(&key).is_none() {
            // a part delivered twice counts once
            meta["have"] = json!(meta["have"].as_u64().unwrap_or(0) + 1);
        }
        let payload = ctx.payload().clone();
        ctx.set_entry(&key, Some(payload))?;
        let have = meta["have"].as_u64().unwrap_or(0);
        ctx.set_entry(&group_key(&group), Some(meta))?;
        if have >= u64::from(part.count) {
            self.emit(ctx, &group)?;
        } else if new_group {
            self.schedule(&group, now_ms().saturating_add(window));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::kinds::test_ctx::{commit, ctx_with};
    use crate::actors::slot::SharedEntries;
    use crate::envelope::Part;

    fn join() -> Join {
        Join {
            window: Duration::from_secs(60),
            to: Vec::new(),
            host: None,
            timers: Vec::new(),
        }
    }

    fn part(group: &str, index: u32, count: u32) -> Option<Part> {
        Some(Part {
            group: group.into(),
            index,
            count,
        })
    }

    #[tokio::test]
    async fn an_earlier_builds_state_moves_into_entries_and_its_groups_complete() {
        let entries = SharedEntries::default();
        let old = json!({
            "groups": {"s:1": {"count": 2, "first_ms": now_ms(), "parts": {"0": "x"}}},
            "done": ["s:0"],
        });
        let mut j = join();
        let mut c = ctx_with("c", json!("y"), part("s:1", 1, 2), old, &entries);
        j.handle(&mut c).await.unwrap();
        let out = c.reply.clone().unwrap();
        assert_eq!(out["parts"], json!(["x", "y"]), "{out}");
        assert_eq!(out["missing"], json!([]));
        let state = commit(c, &entries);
        assert_eq!(state, json!({"done": 2}), "the state keeps only a count");
        // a late part of a group an earlier build emitted is dropped
        let mut c = ctx_with("c", json!("z"), part("s:0", 0, 1), state, &entries);
        j.handle(&mut c).await.unwrap();
        assert_eq!(c.reply.clone().unwrap(), json!({"late": "s:0"}));
    }

    #[tokio::test]
    async fn a_redelivered_part_counts_once_and_emitted_groups_are_bounded() {
        let entries = SharedEntries::default();
        let mut j = join();
        let mut state = Value::Null;
        for _ in 0..2 {
            let mut c = ctx_with("c", json!("a"), part("g", 0, 2), state, &entries);
            j.handle(&mut c).await.unwrap();
            assert!(
                c.reply.is_none(),
                "not complete with one part, however often"
            );
            state = commit(c, &entries);
        }
        let mut c = ctx_with("c", json!("b"), part("g", 1, 2), state, &entries);
        j.handle(&mut c).await.unwrap();
        assert_eq!(c.reply.clone().unwrap()["parts"], json!(["a", "b"]));
        state = commit(c, &entries);
        assert_eq!(
            entries.read().unwrap().keys().collect::<Vec<_>>(),
            ["d:g"],
            "the group's parts are gone, its emission remembered"
        );
        // many one-part groups: the remembered ones stay within the bound
        for i in 0..(MAX_DONE + MAX_DONE / 5) {
            let g = format!("h{i}");
            let mut c = ctx_with("c", json!(i), part(&g, 0, 1), state, &entries);
            j.handle(&mut c).await.unwrap();
            state = commit(c, &entries);
        }
        let remembered = entries.read().unwrap().len();
        assert!(
            remembered <= MAX_DONE + MAX_DONE / 10 + 1,
            "{remembered} remembered"
        );
        assert_eq!(state["done"], remembered as u64);
        assert!(
            !entries.read().unwrap().contains_key("d:g"),
            "the oldest forgotten"
        );
    }
}
