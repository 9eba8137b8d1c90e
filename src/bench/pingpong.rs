//! pingpong: agents `ping` and `pong` (memory mailboxes) bounce a counter; one
//! message in flight. 10,000 warm-up round trips, then N timed as a whole, then
//! min(N, 100,000) timed one by one (by `ping`, between consecutive deliveries).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::BenchResult;
use crate::actors::agent::{Agent, AgentError, Context};
use crate::actors::{AgentSpec, Kinds, MailboxKind};
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

struct Ping {
    done: mpsc::UnboundedSender<Vec<u64>>,
    last: Option<Instant>,
    samples: Vec<u64>,
}

#[async_trait::async_trait]
impl Agent for Ping {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let now = Instant::now();
        let left = ctx.payload().as_u64().unwrap_or(0);
        if ctx.message().hops == 0 {
            self.samples.clear();
        } else if let Some(last) = self.last {
            self.samples.push((now - last).as_nanos() as u64);
        }
        if left == 0 {
            let _ = self.done.send(std::mem::take(&mut self.samples));
            self.last = None;
            return Ok(());
        }
        self.last = Some(now);
        ctx.emit("pong", Value::from(left))
    }
}

struct Pong;

#[async_trait::async_trait]
impl Agent for Pong {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let left = ctx.payload().as_u64().unwrap_or(1);
        ctx.emit("ping", Value::from(left - 1))
    }
}

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    vec![run_with(n, false).await]
}

/// Pingpong without policies, then with both agents taking a permit from a limiter
/// that never throttles: the per-message cost of the policy layer.
pub(super) async fn policies(n: u64) -> Vec<BenchResult> {
    let mut plain = run_with(n, false).await;
    let mut limited = run_with(n, true).await;
    plain.variant = Some("no_policies".into());
    let per_msg = |r: &BenchResult| 1e9 / r.msgs_per_s.unwrap_or(f64::MAX);
    limited.variant = Some(format!(
        "limiter_never_throttles (+{:.0} ns/msg)",
        per_msg(&limited) - per_msg(&plain)
    ));
    vec![plain, limited]
}

async fn run_with(n: u64, limited: bool) -> BenchResult {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut kinds = Kinds::builtin();
    let done = Arc::new(Mutex::new(tx));
    kinds.register_fn("bench_ping", move |_| {
        Ok(Box::new(Ping {
            done: done.lock().expect("lock").clone(),
            last: None,
            samples: Vec::with_capacity(100_000),
        }))
    });
    kinds.register_fn("bench_pong", |_| Ok(Box::new(Pong)));
    let agent = |name: &str, kind: &str| {
        let mut a = AgentSpec::new(name, kind).mailbox(MailboxKind::Memory);
        a.hop_budget = u32::MAX;
        if limited {
            a.limits = vec!["open".into()];
        }
        ChildSpec::agent(a)
    };
    let mut specs = std::collections::BTreeMap::new();
    specs.insert(
        "open".to_string(),
        crate::config::LimitSpec {
            requests_per_second: Some(1e9),
            requests_per_minute: None,
            tokens_per_minute: None,
            burst: Some(1_000_000),
            ..Default::default()
        },
    );
    let options = crate::runtime::Options {
        limits: crate::policies::limits::Limits::new(&specs),
        ..Default::default()
    };
    let tree = SupervisorSpec::new("root")
        .child(agent("ping", "bench_ping"))
        .child(agent("pong", "bench_pong"));
    let rt = Runtime::start_with(tree, kinds, options)
        .await
        .expect("bench tree starts");
    let mut pass = async |k: u64| {
        rt.send("ping", json!(k)).await.expect("send");
        rx.recv().await.expect("ping reports")
    };
    pass(10_000).await;
    let t = Instant::now();
    pass(n).await;
    let elapsed = t.elapsed().as_secs_f64();
    let mut samples = pass(n.min(100_000)).await;
    rt.shutdown(Duration::from_secs(5)).await;
    let mut r = BenchResult::new("pingpong", n).latencies(&mut samples);
    r.round_trips_per_s = Some(n as f64 / elapsed);
    r.msgs_per_s = Some(2.0 * n as f64 / elapsed);
    r
}
