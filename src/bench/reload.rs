//! reload: a tree of N agents (10 supervisors of N/10 under root, memory
//! mailboxes) reloaded while it runs, alternating between two declared trees.
//! Variants: `noop` (the same tree: plan only), `policy` (every tenth agent's
//! timeout changed: applied in place) and `mixed` (the policy changes, plus 10
//! agents added, 10 removed and 10 restarted with a new `to`). Latency is one
//! whole reload (plan + apply), as `warden ctl reload` reports it in `took_ms`;
//! `plan` alone is the `--dry-run`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::BenchResult;
use crate::actors::{AgentSpec, Kinds, MailboxKind};
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

const REPS: usize = 20;

/// The tree; `flip` makes the second of the two the variant alternates with.
fn tree(n: u64, variant: &str, flip: bool) -> SupervisorSpec {
    let per = (n / 10).max(1);
    let mut root = SupervisorSpec::new("root").child(ChildSpec::agent(
        AgentSpec::new("sink", "echo").mailbox(MailboxKind::Memory),
    ));
    for s in 0..10 {
        let mut sup = SupervisorSpec::new(format!("s{s}"));
        for i in 0..per {
            let k = s * per + i;
            let removed = variant == "mixed" && flip && k < 10;
            if removed {
                continue;
            }
            let mut a = AgentSpec::new(format!("a{k}"), "echo").mailbox(MailboxKind::Memory);
            if flip && variant != "noop" && k.is_multiple_of(10) {
                a.timeout = Duration::from_secs(7);
            }
            if flip && variant == "mixed" && (10..20).contains(&k) {
                a = a.option("to", json!(["sink"]));
            }
            sup = sup.child(ChildSpec::agent(a));
        }
        if variant == "mixed" && flip && s == 0 {
            for j in 0..10 {
                sup = sup.child(ChildSpec::agent(
                    AgentSpec::new(format!("new{j}"), "echo").mailbox(MailboxKind::Memory),
                ));
            }
        }
        root = root.child(ChildSpec::supervisor(sup));
    }
    root
}

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    let mut out = Vec::new();
    let limits = BTreeMap::new();
    for variant in ["noop", "policy", "mixed"] {
        let rt = Runtime::start(tree(n, variant, false), Kinds::builtin())
            .await
            .expect("bench tree starts");
        let (mut whole, mut plans) = (Vec::new(), Vec::new());
        for rep in 0..REPS {
            let next = tree(n, variant, rep % 2 == 0);
            let t = Instant::now();
            rt.plan_reload(&next, &limits).await.expect("plan");
            plans.push(t.elapsed().as_nanos() as u64);
            let t = Instant::now();
            let r = rt.reload(next, &limits).await.expect("reload");
            whole.push(t.elapsed().as_nanos() as u64);
            assert!(r.failed.is_empty(), "{:?}", r.failed);
        }
        rt.shutdown(Duration::from_secs(10)).await;
        let mut r = BenchResult::new("reload", n).latencies(&mut whole);
        r.variant = Some(variant.to_string());
        out.push(r);
        let mut p = BenchResult::new("reload", n).latencies(&mut plans);
        p.variant = Some(format!("{variant} plan"));
        out.push(p);
    }
    out
}
