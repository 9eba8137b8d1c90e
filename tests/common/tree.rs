//! Trees for library-level tests: a `counter` kind whose in-memory count resets per
//! incarnation while its committed state survives, and which records graceful stops.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorId;
use serde_json::{json, Value};
use warden::actors::{AgentSpec, Kinds, MailboxKind};
use warden::policies::backoff::Backoff;
use warden::supervision::{ChildSpec, Status};
use warden::{Agent, AgentError, Context, Runtime};

/// Names of agents in the order their incarnations were stopped gracefully.
pub type StopLog = Arc<Mutex<Vec<String>>>;

struct Counter {
    name: String,
    mem: u64,
    stops: StopLog,
}

#[async_trait::async_trait]
impl Agent for Counter {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        if ctx.payload()["op"] == "reject" {
            return Err(AgentError::non_retryable("rejected: retrying cannot help"));
        }
        self.mem += 1;
        let count = ctx
            .state()
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        ctx.set_state(json!({ "count": count }));
        ctx.reply(json!({ "mem": self.mem, "count": count }));
        Ok(())
    }

    async fn on_stop(&mut self) {
        self.stops.lock().unwrap().push(self.name.clone());
    }
}

/// Built-in kinds plus `counter`, and the log its stops go to.
pub fn kinds() -> (Kinds, StopLog) {
    let stops: StopLog = Arc::default();
    let log = stops.clone();
    let mut k = Kinds::builtin();
    k.register_fn("counter", move |spec| {
        Ok(Box::new(Counter {
            name: spec.name.clone(),
            mem: 0,
            stops: log.clone(),
        }))
    });
    (k, stops)
}

/// A `counter` agent: memory mailbox, fault directives on, 1 ms retry backoff.
pub fn counter(name: &str) -> AgentSpec {
    let mut a = AgentSpec::new(name, "counter")
        .mailbox(MailboxKind::Memory)
        .accept_faults(true);
    a.backoff = Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        multiplier: 2.0,
        jitter: 0.0,
    };
    a
}

pub fn child(name: &str) -> ChildSpec {
    ChildSpec::agent(counter(name))
}

pub fn ids(rt: &Runtime, name: &str) -> Vec<ActorId> {
    rt.tree_context().node(name).expect("node").actor_ids()
}

pub fn status(rt: &Runtime, name: &str) -> Status {
    rt.tree_context().node(name).expect("node").status()
}

pub fn restarts(rt: &Runtime, name: &str) -> u64 {
    rt.tree_context().node(name).expect("node").restarts()
}

/// Waits until `name` runs an incarnation other than `old`.
pub async fn wait_restarted(rt: &Runtime, name: &str, old: &[ActorId]) {
    super::wait_until(
        &format!("{name} restarted"),
        Duration::from_secs(10),
        || {
            let now = ids(rt, name);
            !now.is_empty() && now != old && status(rt, name) == Status::Running
        },
    )
    .await;
}

/// Calls `name` with an ordinary message; returns (in-memory count, committed count).
pub async fn inc(rt: &Runtime, name: &str) -> (u64, u64) {
    let r = rt
        .call(name, json!({"op": "inc"}), Duration::from_secs(10))
        .await
        .expect("call answered");
    (r["mem"].as_u64().unwrap(), r["count"].as_u64().unwrap())
}
