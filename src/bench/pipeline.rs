//! pipeline: the workload users run (DESIGN section 8; the reference harness's
//! README defines it, `queue_peers/` runs its peers). P producers (1, 8, 64)
//! submit ~100-byte JSON tasks in a closed loop (each waits for its submit to
//! be durable) into 3 durable agents: stages 1 and 2 hand each task to the next
//! in one commit (ack + emit), stage 3 acks and writes a completion record (an
//! entry keyed by the task id) in one commit. 0.5 s of warm-up, then a 3 s
//! window; crash and power durability.
//!
//! What counts: `submitted_per_s`, submits acknowledged inside the window;
//! `completed_per_s`, tasks whose stage-3 commit became durable inside it. The
//! moment a stage-3 commit is durable is seen by a memory-mailbox observer agent
//! that stage 3 emits to: Warden publishes an emit only once the commit that
//! made it is durable, so the observer handles it right after (microseconds).
//! `e2e_*`: submit start to that moment; `submit_*`: submit start to its
//! durable ack. Producers start no submit at or after the window's end; then
//! the tree stops (each stage finishes the message in hand) and the store is
//! opened again and read back: `backlog_at_end` (tasks in any stage's mailbox,
//! in flight included), completed (completion records), `lost` (acknowledged
//! submits found nowhere, by id), `dup` (ids found twice); `ok` when nothing is
//! lost or duplicated and every acknowledged submit is completed or in the
//! backlog.
//!
//! Producers are throttled only by their acks: when the stages are slower, the
//! backlog grows all run long and the e2e percentiles measure its age, not a
//! per-task latency. Read `completed_per_s` as the throughput, and e2e only where
//! `backlog_at_end` is a few times P.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::durable::{close, tempfile_dir};
use super::BenchResult;
use crate::actors::agent::{Agent, AgentError, Context};
use crate::actors::{AgentSpec, Kinds, MailboxKind, Registry, SendOptions};
use crate::config::Durability;
use crate::store::{Store, StoreOptions};
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

const STAGES: [&str; 3] = ["stage1", "stage2", "stage3"];
const WARMUP: Duration = Duration::from_millis(500);

/// The run's clock: submit times are nanoseconds since this.
fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn ns_now() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// `{"n":ID,"t":NS,"pad":"xx…"}`, padded to exactly 100 bytes.
fn task(n: u64, t: u64) -> Value {
    let bare = format!("{{\"n\":{n},\"t\":{t},\"pad\":\"\"}}").len();
    json!({"n": n, "t": t, "pad": "x".repeat(100usize.saturating_sub(bare))})
}

/// Stages 1 and 2: read the task, hand it on.
struct Stage(&'static str);

#[async_trait::async_trait]
impl Agent for Stage {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let p = ctx.payload().clone();
        p["n"]
            .as_u64()
            .ok_or_else(|| AgentError::non_retryable("a task without n"))?;
        ctx.emit(self.0, p)
    }
}

/// Stage 3: a completion record in the same commit as the ack; the observer
/// hears of it once that commit is durable.
struct Last;

#[async_trait::async_trait]
impl Agent for Last {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let p = ctx.payload().clone();
        let n = p["n"]
            .as_u64()
            .ok_or_else(|| AgentError::non_retryable("a task without n"))?;
        ctx.set_entry(&n.to_string(), Some(json!(1)))?;
        ctx.emit("observer", json!({"t": p["t"]}))
    }
}

/// Completions inside the window, and their end-to-end times.
#[derive(Default)]
struct Seen {
    window: Mutex<(u64, u64)>,
    e2e: Mutex<Vec<u64>>,
    completed: AtomicU64,
}

struct Observer(Arc<Seen>);

#[async_trait::async_trait]
impl Agent for Observer {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let now = ns_now();
        let (w, e) = *self.0.window.lock().unwrap_or_else(|p| p.into_inner());
        if (w..e).contains(&now) {
            let t = ctx.payload()["t"].as_u64().unwrap_or(now);
            self.0.completed.fetch_add(1, Ordering::Relaxed);
            self.0
                .e2e
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(now.saturating_sub(t));
        }
        Ok(())
    }
}

async fn pipeline(dir: &std::path::Path, durability: Durability, seen: Arc<Seen>) -> Runtime {
    let durable = super::durable::durable_store(dir, durability);
    let mut kinds = Kinds::builtin();
    kinds.register_fn("bench_stage1", |_| Ok(Box::new(Stage("stage2"))));
    kinds.register_fn("bench_stage2", |_| Ok(Box::new(Stage("stage3"))));
    kinds.register_fn("bench_stage3", |_| Ok(Box::new(Last)));
    kinds.register_fn("bench_observer", move |_| {
        Ok(Box::new(Observer(seen.clone())))
    });
    let mut root = SupervisorSpec::new("root");
    let mut observer = AgentSpec::new("observer", "bench_observer");
    observer.mailbox = MailboxKind::Memory;
    observer.mailbox_capacity = 50_000_000;
    root = root.child(ChildSpec::agent(observer));
    for (i, name) in STAGES.iter().enumerate() {
        let mut a = AgentSpec::new(*name, format!("bench_stage{}", i + 1));
        a.mailbox_capacity = 50_000_000;
        root = root.child(ChildSpec::agent(a));
    }
    let options = crate::runtime::Options {
        durable: Some(durable),
        ..Default::default()
    };
    Runtime::start_with(root, kinds, options)
        .await
        .expect("bench pipeline starts")
}

pub(super) async fn run(secs: u64) -> Vec<BenchResult> {
    super::durable::each_config(secs, one).await
}

async fn one(durability: Durability, producers: usize, window: Duration) -> BenchResult {
    let dir = tempfile_dir();
    let seen = Arc::new(Seen::default());
    let rt = Arc::new(pipeline(&dir, durability, seen.clone()).await);
    let first = rt.agent("stage1").expect("stage1");
    let start = ns_now();
    let (w, e) = (
        start + WARMUP.as_nanos() as u64,
        start + (WARMUP + window).as_nanos() as u64,
    );
    *seen.window.lock().unwrap_or_else(|p| p.into_inner()) = (w, e);
    let next_id = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (slot, next_id) = (first.clone(), next_id.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ids, mut lat) = (Vec::new(), Vec::new());
            loop {
                let t0 = ns_now();
                if t0 >= e {
                    break;
                }
                let n = next_id.fetch_add(1, Ordering::Relaxed);
                Registry::send_to(&slot, task(n, t0), SendOptions::default())
                    .await
                    .expect("accepted");
                let t1 = ns_now();
                ids.push(n);
                if (w..e).contains(&t1) {
                    lat.push(t1 - t0);
                }
            }
            (ids, lat)
        }));
    }
    let (mut ids, mut submit_lat) = (Vec::new(), Vec::new());
    for t in tasks {
        let (i, l) = t.await.expect("producer");
        ids.extend(i);
        submit_lat.extend(l);
    }
    let completed_in_window = seen.completed.load(Ordering::Relaxed);
    let mut e2e = std::mem::take(&mut *seen.e2e.lock().unwrap_or_else(|p| p.into_inner()));
    drop(first);
    close(rt).await;
    // the store read back: what is still queued, what was completed
    let (store, mut recovered) = Store::open(&dir, StoreOptions::default()).expect("reopen");
    let mut found: HashMap<u64, u32> = HashMap::new();
    let mut backlog = 0u64;
    let mut done = Default::default();
    for name in STAGES {
        let r = recovered.take(name);
        for env in r.queue {
            backlog += 1;
            if let Some(n) = env.payload["n"].as_u64() {
                *found.entry(n).or_default() += 1;
            }
        }
        if name == "stage3" {
            done = r.entries;
        }
    }
    let done: crate::store::entries::Entries = done;
    let completed_total = done.len() as u64;
    for k in done.keys() {
        if let Ok(n) = k.parse::<u64>() {
            *found.entry(n).or_default() += 1;
        }
    }
    store.close();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    let lost = ids.iter().filter(|n| !found.contains_key(n)).count() as u64;
    let submitted: std::collections::HashSet<u64> = ids.iter().copied().collect();
    let dup = found
        .iter()
        .filter(|(n, c)| **c > 1 || !submitted.contains(n))
        .count() as u64;
    let ok = lost == 0 && dup == 0 && ids.len() as u64 == completed_total + backlog;
    if !ok {
        eprintln!(
            "CHECK FAILED: pipeline P={producers}: submitted {}, completed {completed_total}, backlog {backlog}, lost {lost}, dup {dup}",
            ids.len()
        );
    }
    let secs = window.as_secs_f64();
    let mut r = BenchResult::new("pipeline", ids.len() as u64);
    r.producers = Some(producers as u64);
    r.durability = Some(match durability {
        Durability::Crash => "crash",
        Durability::Power => "power",
    });
    r.submitted_per_s = Some(submit_lat.len() as f64 / secs);
    r.completed_per_s = Some(completed_in_window as f64 / secs);
    let (p50, p99, max) = percentiles(&mut e2e);
    (r.e2e_p50_us, r.e2e_p99_us, r.e2e_max_us) = (p50, p99, max);
    let (p50, p99, max) = percentiles(&mut submit_lat);
    (r.submit_p50_us, r.submit_p99_us, r.submit_max_us) = (p50, p99, max);
    r.backlog_at_end = Some(backlog);
    r.lost = Some(lost);
    r.dup = Some(dup);
    r.ok = Some(ok);
    r.submitted = Some(ids.len() as u64);
    r.completed = Some(completed_total);
    r
}

/// Nearest-rank p50, p99 and the largest, in µs.
fn percentiles(ns: &mut [u64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    ns.sort_unstable();
    let rank = |q: f64| {
        if ns.is_empty() {
            return None;
        }
        let i = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1;
        Some(ns[i] as f64 / 1000.0)
    };
    (rank(0.5), rank(0.99), ns.last().map(|v| *v as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_exactly_100_bytes() {
        for (n, t) in [(1, 0), (123_456, 9_999_999_999), (u64::MAX, u64::MAX)] {
            assert_eq!(task(n, t).to_string().len(), 100, "{n} {t}");
        }
    }
}
