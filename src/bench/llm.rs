//! llm: one `llm` agent (memory mailbox) against an in-process `warden fake-llm`
//! with no latency: N messages sent at once, the time until all are handled;
//! with 1 and 8 replicas, without a limiter and with one that never throttles
//! (what taking permits and tokens costs).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::BenchResult;
use crate::actors::{AgentSpec, Kinds, MailboxKind};
use crate::fake_llm::{FakeLlmArgs, Script};
use crate::policies::limits::Limits;
use crate::policies::rate_limit::LimitSpec;
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let args = FakeLlmArgs {
        listen: addr,
        script: Script::default(),
        log: None,
    };
    let server = tokio::spawn(crate::fake_llm::serve_on(listener, args));
    let mut out = Vec::new();
    for replicas in [1u32, 8] {
        for limited in [false, true] {
            let mut a = AgentSpec::new("model", "llm")
                .mailbox(MailboxKind::Memory)
                .option("base_url", json!(format!("http://{addr}/v1")))
                .option("model", json!("fake-1"))
                .option("max_tokens", json!(16));
            a.replicas = replicas;
            a.mailbox_capacity = n as usize + 10;
            let mut specs = BTreeMap::new();
            if limited {
                a.limits = vec!["open".into()];
                specs.insert(
                    "open".to_string(),
                    LimitSpec {
                        requests_per_second: Some(1e9),
                        requests_per_minute: None,
                        tokens_per_minute: Some(1e9),
                        burst: Some(1_000_000),
                        ..Default::default()
                    },
                );
            }
            let tree = SupervisorSpec::new("root").child(ChildSpec::agent(a));
            let options = crate::runtime::Options {
                limits: Limits::new(&specs),
                ..Default::default()
            };
            let rt = Runtime::start_with(tree, Kinds::builtin(), options)
                .await
                .expect("bench tree starts");
            let slot = rt.agent("model").expect("agent");
            let t = Instant::now();
            for i in 0..n {
                rt.send("model", json!({"prompt": format!("task {i}")}))
                    .await
                    .expect("send");
            }
            while slot.stats.handled.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let secs = t.elapsed().as_secs_f64();
            rt.shutdown(Duration::from_secs(10)).await;
            let mut r = BenchResult::new("llm", n);
            r.variant = Some(format!(
                "{replicas} replica(s), {}",
                if limited {
                    "with a limiter"
                } else {
                    "no limiter"
                }
            ));
            r.msgs_per_s = Some(n as f64 / secs);
            out.push(r);
        }
    }
    server.abort();
    out
}
