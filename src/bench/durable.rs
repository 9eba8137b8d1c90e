//! durable: P producers (1, 8, 64) send to one durable agent whose handler does
//! nothing, for a fixed time per configuration; a message counts when its send
//! returns (flushed to the store). Reports accepted msgs/s and accept latency, and
//! handled msgs/s (until everything accepted was handled), in `crash` and `power`
//! modes. Payloads are 256 bytes of JSON, as in the reference harness.
//!
//! `WARDEN_BENCH_SPEND=spend`: the handler reports a call's usage (150 tokens of
//! a priced model) with every message, so every hand-off commits its spend;
//! `=budgets`: besides, every message is its own task with a token budget (set
//! at send, checked before handling). Unset or `off`: neither. The label goes
//! into each result's variant.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::BenchResult;
use crate::actors::agent::{Agent, AgentError, Context};
use crate::actors::{AgentSpec, Kinds, Registry, SendOptions};
use crate::config::Durability;
use crate::store::{Store, StoreOptions};
use crate::supervision::tree::Durable;
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

struct Nop;

#[async_trait::async_trait]
impl Agent for Nop {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        if spend_mode().is_some() {
            ctx.report_usage(Some("bench-model"), 100, 50, 150);
        }
        Ok(())
    }
}

/// `WARDEN_BENCH_SPEND`: `Some("spend")` or `Some("budgets")`.
fn spend_mode() -> Option<&'static str> {
    static MODE: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *MODE.get_or_init(
        || match std::env::var("WARDEN_BENCH_SPEND").ok().as_deref() {
            Some("spend") => Some("spend"),
            Some("budgets") => Some("budgets"),
            _ => None,
        },
    )
}

/// A fresh store in `dir` as a tree's durable mailboxes.
pub(super) fn durable_store(dir: &std::path::Path, durability: Durability) -> Durable {
    let (store, recovered) = Store::open(
        dir,
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )
    .expect("bench store opens");
    Durable {
        store,
        recovered: Mutex::new(recovered),
        retention: Duration::from_secs(3600),
    }
}

/// A runtime with one durable no-op agent `sinkhole` on a fresh store in `dir`.
pub(super) async fn sinkhole(dir: &std::path::Path, durability: Durability) -> Runtime {
    let durable = durable_store(dir, durability);
    let mut kinds = Kinds::builtin();
    kinds.register_fn("bench_nop", |_| Ok(Box::new(Nop)));
    let mut a = AgentSpec::new("sinkhole", "bench_nop");
    a.mailbox_capacity = 50_000_000;
    let tree = SupervisorSpec::new("root").child(ChildSpec::agent(a));
    let mut prices = crate::spend::Prices::new();
    prices.insert(
        "bench-model".into(),
        crate::spend::Price {
            input: 0.15,
            output: 0.60,
        },
    );
    let options = crate::runtime::Options {
        durable: Some(durable),
        prices,
        ..Default::default()
    };
    Runtime::start_with(tree, kinds, options)
        .await
        .expect("bench tree starts")
}

/// Stops the tree, then closes its store (releasing the store's lock) once the
/// last handle on the runtime is gone. Callers drop their slots first.
pub(super) async fn close(rt: Arc<Runtime>) {
    rt.shutdown(Duration::from_secs(30)).await;
    let store = rt.store().cloned();
    drop(rt);
    if let Some(s) = store {
        s.close();
    }
}

/// A 256-byte JSON payload.
pub(super) fn payload() -> Value {
    Value::String("x".repeat(254))
}

pub(super) async fn run(secs: u64) -> Vec<BenchResult> {
    each_config(secs, one).await
}

/// Runs `one` for crash and power durability with 1, 8 and 64 producers,
/// `secs` seconds each (the durable-path benches' configurations).
pub(super) async fn each_config<F, Fut>(secs: u64, one: F) -> Vec<BenchResult>
where
    F: Fn(Durability, usize, Duration) -> Fut,
    Fut: std::future::Future<Output = BenchResult>,
{
    let mut out = Vec::new();
    for durability in [Durability::Crash, Durability::Power] {
        for producers in [1usize, 8, 64] {
            out.push(one(durability, producers, Duration::from_secs(secs)).await);
        }
    }
    out
}

async fn one(durability: Durability, producers: usize, span: Duration) -> BenchResult {
    let dir = tempfile_dir();
    let rt = Arc::new(sinkhole(&dir, durability).await);
    let slot = rt.agent("sinkhole").expect("slot");
    let start = Instant::now();
    let stop_at = start + span;
    let mut tasks = Vec::new();
    let budgets = spend_mode() == Some("budgets");
    for producer in 0..producers {
        let slot = slot.clone();
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let p = payload();
            let registry = &rt.tree_context().registry;
            let mut n = 0u64;
            while Instant::now() < stop_at {
                let t0 = Instant::now();
                if budgets {
                    n += 1;
                    let opts = SendOptions {
                        correlation: Some(format!("task-{producer}-{n}")),
                        budget: crate::store::spend::Budget {
                            tokens: Some(1_000_000),
                            cost: None,
                        },
                        ..Default::default()
                    };
                    registry
                        .send("sinkhole", p.clone(), opts)
                        .await
                        .expect("accepted");
                } else {
                    Registry::send_to(&slot, p.clone(), SendOptions::default())
                        .await
                        .expect("accepted");
                }
                lat.push(t0.elapsed().as_nanos() as u64);
            }
            lat
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.expect("producer"));
    }
    let accepted_elapsed = start.elapsed().as_secs_f64();
    let accepted = samples.len() as u64;
    // Drain, for at most 10 s more: the handled rate is what was handled by then.
    let drain_until = Instant::now() + Duration::from_secs(10);
    while slot.stats.handled.load(Ordering::Relaxed) < accepted && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let handled = slot.stats.handled.load(Ordering::Relaxed);
    let handled_elapsed = start.elapsed().as_secs_f64();
    let snap = rt.store().map(|s| s.snapshot());
    drop(slot);
    close(rt).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = BenchResult::new("durable", accepted).latencies(&mut samples);
    r.producers = Some(producers as u64);
    r.durability = Some(match durability {
        Durability::Crash => "crash",
        Durability::Power => "power",
    });
    r.msgs_per_s = Some(accepted as f64 / accepted_elapsed);
    r.handled_per_s = Some(handled as f64 / handled_elapsed);
    r.msgs_per_flush = snap.map(|s| s.commit_batch_mean);
    r.variant = spend_mode().map(str::to_string);
    r
}

/// A fresh directory under the system temp dir (or `WARDEN_BENCH_DIR`).
pub(super) fn tempfile_dir() -> std::path::PathBuf {
    let base = std::env::var_os("WARDEN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "warden-bench-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}
