//! spawn: N idle `echo` agents (memory mailboxes) added one after another to a
//! running supervisor (OTP `start_child`), each started and ready before the next.
//! Memory is the growth of the process's resident set over N, so it includes the
//! agent's slot, tree node and registry entry as well as its host actor.

use std::time::{Duration, Instant};

use super::{rss_bytes, BenchResult};
use crate::actors::{AgentSpec, Kinds, MailboxKind};
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    let rt = Runtime::start(SupervisorSpec::new("root"), Kinds::builtin())
        .await
        .expect("bench tree starts");
    let specs: Vec<ChildSpec> = (0..n)
        .map(|i| {
            ChildSpec::agent(
                AgentSpec::new(format!("idle-{i}"), "echo").mailbox(MailboxKind::Memory),
            )
        })
        .collect();
    let before = rss_bytes();
    let t = Instant::now();
    for spec in specs {
        rt.add_child("root", spec).await.expect("agent starts");
    }
    let elapsed = t.elapsed().as_secs_f64();
    let after = rss_bytes();
    rt.shutdown(Duration::from_secs(60)).await;
    let mut r = BenchResult::new("spawn", n);
    r.spawns_per_s = Some(n as f64 / elapsed);
    r.bytes_per_actor = Some(after.saturating_sub(before) as f64 / n as f64);
    vec![r]
}
