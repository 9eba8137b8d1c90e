//! `timer`: emits a tick on a schedule (DESIGN section 10).
//!
//! ```toml
//! [agent.nightly]
//! kind = "timer"
//! every = "1h"                  # or cron = "0 9 * * MON-FRI" (UTC)
//! payload = { job = "report" }  # optional, carried by each tick
//! to = ["report"]
//! ```
//!
//! Each tick is `{"tick": N, "scheduled_ms": T, "payload": ...}`, emitted to every
//! agent in `to`. Guarantees:
//! - The next fire time is committed state: a restart (or a daemon crash) does
//!   not move the schedule.
//! - A tick is a message to the timer itself with the idempotency key
//!   `tick:<scheduled ms>`, handled (and emitted) like any message, so it is
//!   durable, never lost, and fires once: a tick sent again after a crash is a
//!   duplicate, and a tick at or before the last one handled is acknowledged
//!   without emitting.
//! - After downtime, the ticks missed are not replayed one by one: one catch-up
//!   tick fires at once, then the schedule goes on from now.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context, HostHandle};
use crate::envelope::now_ms;

/// The option keys of a timer.
pub const OPTIONS: &[&str] = &["every", "cron", "payload"];

/// When a timer fires.
#[derive(Clone)]
pub enum Schedule {
    /// A fixed period.
    Every(Duration),
    /// A cron pattern (UTC).
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// Reads `every` or `cron` (exactly one).
    pub fn parse(every: Option<&str>, cron: Option<&str>) -> Result<Schedule, String> {
        match (every, cron) {
            (Some(e), None) => {
                let d = humantime::parse_duration(e).map_err(|err| format!("every: {err}"))?;
                if d < Duration::from_millis(10) {
                    return Err("every must be at least 10ms".into());
                }
                Ok(Schedule::Every(d))
            }
            (None, Some(c)) => croner::Cron::from_str(c)
                .map(|c| Schedule::Cron(Box::new(c)))
                .map_err(|err| format!("cron: {c:?} is not a cron pattern ({err})")),
            (Some(_), Some(_)) => Err("give every or cron, not both".into()),
            (None, None) => Err("a timer needs every = \"5m\" or cron = \"0 9 * * *\"".into()),
        }
    }

    /// The fire time after the one at `at_ms`: on schedule, or, if that is past
    /// already (downtime), the first one after now.
    pub fn following(&self, at_ms: u64) -> u64 {
        let next = self.next_after(at_ms);
        let now = now_ms();
        if next > now {
            next
        } else {
            self.next_after(now)
        }
    }

    /// The first fire time after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> u64 {
        match self {
            Schedule::Every(d) => after_ms.saturating_add(d.as_millis() as u64),
            Schedule::Cron(c) => {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms as i64)
                    .unwrap_or_else(chrono::Utc::now);
                c.find_next_occurrence(&at, false)
                    .map(|t| t.timestamp_millis().max(0) as u64)
                    .unwrap_or(u64::MAX)
            }
        }
    }
}

struct Timer {
    schedule: Schedule,
    payload: Value,
    to: Vec<String>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &[],
        agent_lists: &[],
        build: Arc::new(|spec| {
            let o = &spec.options;
            let schedule = Schedule::parse(
                o.get("every").and_then(Value::as_str),
                o.get("cron").and_then(Value::as_str),
            )
            .map_err(|e| format!("agent '{}': {e}", spec.name))?;
            Ok(Box::new(Timer {
                schedule,
                payload: o.get("payload").cloned().unwrap_or(Value::Null),
                to: super::to_list(spec),
                task: None,
            }))
        }),
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[async_trait::async_trait]
impl Agent for Timer {
    async fn on_start(&mut self, host: HostHandle) -> Result<(), String> {
        if host.replica() != 0 {
            return Ok(()); // one schedule per timer, whatever its replicas
        }
        let schedule = self.schedule.clone();
        let committed = host.state()["next_ms"].as_u64();
        self.task = Some(tokio::spawn(async move {
            let mut next = committed.unwrap_or_else(|| schedule.next_after(now_ms()));
            loop {
                let now = now_ms();
                if next > now {
                    tokio::time::sleep(Duration::from_millis(next - now)).await;
                }
                if !host.send_self(
                    json!({"__tick": {"scheduled_ms": next}}),
                    format!("tick:{next}"),
                ) {
                    tracing::warn!(agent = %host.agent(), "a timer tick was refused (mailbox full?); the next one will come");
                }
                // missed ones are not replayed: on from now
                next = schedule.following(next);
            }
        }));
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let Some(at) = ctx.payload()["__tick"]["scheduled_ms"].as_u64() else {
            return Err(AgentError::non_retryable(
                "a timer takes no messages but its own ticks",
            ));
        };
        let state = ctx.state().clone();
        let last = state["last_ms"].as_u64().unwrap_or(0);
        if at <= last {
            ctx.reply(json!({"duplicate": at}));
            return Ok(()); // fired already
        }
        let n = state["count"].as_u64().unwrap_or(0) + 1;
        let tick = json!({"tick": n, "scheduled_ms": at, "payload": self.payload});
        for to in &self.to {
            ctx.emit(to, tick.clone())?;
        }
        let next = self.schedule.following(at);
        ctx.set_state(json!({"last_ms": at, "next_ms": next, "count": n}));
        ctx.reply(tick);
        Ok(())
    }
}
