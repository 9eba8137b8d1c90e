//! restart: one `echo` agent W under a one_for_one supervisor. N times: note W's
//! actor id, send it a message that panics it, then poll until W's id has changed
//! and a call to W answers; latency is from the send to the answer. The crash is
//! W's own natural one, a panic that unwinds (max_attempts = 1, so the panicking
//! message is dead-lettered, not retried); the panic hook is silenced, as in the
//! reference harness.

use std::time::{Duration, Instant};

use serde_json::json;

use super::BenchResult;
use crate::actors::{AgentSpec, Kinds, MailboxKind};
use crate::supervision::{ChildSpec, Shutdown, SupervisorSpec};
use crate::Runtime;

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    let mut w = AgentSpec::new("anchor_worker", "echo")
        .mailbox(MailboxKind::Memory)
        .accept_faults(true);
    w.max_attempts = 1;
    let tree = SupervisorSpec::new("root")
        .intensity(100_000, Duration::from_secs(1))
        .child(ChildSpec::agent(w).shutdown(Shutdown::BrutalKill));
    let rt = Runtime::start(tree, Kinds::builtin())
        .await
        .expect("bench tree starts");
    let node = rt.tree_context().node("anchor_worker").expect("node");
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut samples = Vec::with_capacity(n as usize);
    let mut polls = 0u64;
    let wall = Instant::now();
    for _ in 0..n {
        let old = node.actor_ids();
        let t0 = Instant::now();
        rt.send("anchor_worker", json!({"fault": "panic"}))
            .await
            .expect("send");
        loop {
            polls += 1;
            let now = node.actor_ids();
            if !now.is_empty()
                && now != old
                && rt
                    .call("anchor_worker", json!("ping"), Duration::from_secs(5))
                    .await
                    .is_ok()
            {
                break;
            }
            tokio::task::yield_now().await;
        }
        samples.push(t0.elapsed().as_nanos() as u64);
    }
    let wall = wall.elapsed().as_secs_f64();
    std::panic::set_hook(hook);
    rt.shutdown(Duration::from_secs(5)).await;
    let mut r = BenchResult::new("restart", n).latencies(&mut samples);
    r.restarts_per_s = Some(n as f64 / wall);
    r.polls_per_restart = Some(polls as f64 / n as f64);
    vec![r]
}
