//! fanout: W counting agents (memory mailboxes), one producer sending message i to
//! every agent in turn for i = 1..N; each agent reports when it has N. Timed from
//! the first send to the W-th report: msgs/s = N*W / elapsed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::BenchResult;
use crate::actors::agent::{Agent, AgentError, Context};
use crate::actors::{AgentSpec, Kinds, MailboxKind, Registry, SendOptions};
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

struct Counter {
    expect: u64,
    seen: u64,
    done: mpsc::UnboundedSender<()>,
}

#[async_trait::async_trait]
impl Agent for Counter {
    async fn handle(&mut self, _ctx: &mut Context) -> Result<(), AgentError> {
        self.seen += 1;
        if self.seen == self.expect {
            let _ = self.done.send(());
        }
        Ok(())
    }
}

pub(super) async fn run(n: u64, workers: u64) -> Vec<BenchResult> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tx = Arc::new(Mutex::new(tx));
    let mut kinds = Kinds::builtin();
    kinds.register_fn("bench_counter", move |_| {
        Ok(Box::new(Counter {
            expect: n,
            seen: 0,
            done: tx.lock().expect("lock").clone(),
        }))
    });
    let mut tree = SupervisorSpec::new("root");
    for w in 0..workers {
        let mut a = AgentSpec::new(format!("w{w}"), "bench_counter").mailbox(MailboxKind::Memory);
        a.mailbox_capacity = n as usize + 1;
        tree = tree.child(ChildSpec::agent(a));
    }
    let rt = Runtime::start(tree, kinds)
        .await
        .expect("bench tree starts");
    let slots: Vec<_> = (0..workers)
        .map(|w| rt.agent(&format!("w{w}")).expect("slot"))
        .collect();
    let t = Instant::now();
    for i in 1..=n {
        for s in &slots {
            Registry::send_to(s, Value::from(i), SendOptions::default())
                .await
                .expect("send");
        }
    }
    for _ in 0..workers {
        rx.recv().await.expect("worker reports");
    }
    let elapsed = t.elapsed().as_secs_f64();
    rt.shutdown(Duration::from_secs(30)).await;
    let mut r = BenchResult::new("fanout", n);
    r.variant = Some(format!("workers={workers}"));
    r.msgs_per_s = Some((n * workers) as f64 / elapsed);
    vec![r]
}
