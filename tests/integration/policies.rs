//! Policies through the real binary, from config alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::tree::{counter, kinds};
use crate::common::{json_lines, wait_until, wait_until_blocking, Sandbox};
use serde_json::json;
use warden::actors::{AgentSpec, DeadReason, MailboxKind};
use warden::policies::breaker::{BreakerSpec, BreakerState};
use warden::supervision::{ChildSpec, SupervisorSpec};
use warden::Runtime;

const T: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_handler_is_cancelled_and_the_next_message_is_handled() {
    let mut a = counter("slow");
    a.timeout = Duration::from_millis(200);
    let (k, _) = kinds();
    let rt = Runtime::start(SupervisorSpec::new("root").child(ChildSpec::agent(a)), k)
        .await
        .unwrap();
    // The first attempt sleeps 60 s; only cancellation lets both finish within T.
    rt.send("slow", json!({"fault": "sleep", "ms": 60_000, "times": 1}))
        .await
        .unwrap();
    rt.send("slow", json!({"op": "inc"})).await.unwrap();
    let slot = rt.agent("slow").unwrap();
    wait_until("both handled", T, || {
        slot.stats
            .handled
            .load(std::sync::atomic::Ordering::Relaxed)
            == 2
    })
    .await;
    assert_eq!(
        slot.stats
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the timeout was one failed attempt"
    );
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_error_dead_letters_at_once() {
    let (k, _) = kinds();
    let rt = Runtime::start(
        SupervisorSpec::new("root").child(ChildSpec::agent(counter("c"))),
        k,
    )
    .await
    .unwrap();
    let id = rt.send("c", json!({"op": "reject"})).await.unwrap();
    rt.send("c", json!({"op": "inc"})).await.unwrap();
    let slot = rt.agent("c").unwrap();
    wait_until("dead-lettered and the next handled", T, || {
        slot.dead_count() == 1 && slot.state()["count"] == 1
    })
    .await;
    let d = &slot.dead_letters()[0];
    assert_eq!(
        (d.envelope.id.clone(), d.reason, d.attempts),
        (id, DeadReason::NonRetryable, 1)
    );
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_accept_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut sink = AgentSpec::new("out", "sink")
        .mailbox(MailboxKind::Memory)
        .accept_faults(true)
        .option("path", json!(out.to_str().unwrap()));
    sink.backoff.initial = Duration::from_millis(20);
    let (k, _) = kinds();
    let rt = Runtime::start(SupervisorSpec::new("root").child(ChildSpec::agent(sink)), k)
        .await
        .unwrap();
    rt.send("out", json!({"fault": "error", "times": 2, "i": 0}))
        .await
        .unwrap();
    for i in 1..5 {
        rt.send("out", json!({ "i": i })).await.unwrap();
    }
    wait_until("all five written", T, || json_lines(&out).len() == 5).await;
    let order: Vec<u64> = json_lines(&out)
        .iter()
        .map(|l| l["payload"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        order,
        [0, 1, 2, 3, 4],
        "the retried head held the later messages back"
    );
    assert_eq!(json_lines(&out)[0]["attempt"], 3);
    rt.shutdown(T).await;
}

#[test]
fn two_echo_agents_in_a_loop_end_at_the_hop_budget() {
    let sb = Sandbox::new(
        r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["ping", "pong"]

[agent.ping]
kind = "echo"
to = ["pong"]
hop_budget = 6

[agent.pong]
kind = "echo"
to = ["ping"]
hop_budget = 6
"#,
    );
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let sent = c.req(json!({"id": 1, "op": "send", "to": "ping", "payload": {"loop": true}}));
    assert_eq!(sent["ok"], true);
    wait_until_blocking(
        "the loop ends in a dead letter",
        Duration::from_secs(20),
        || {
            sb.conn().req(json!({"id": 2, "op": "dlq_list"}))["result"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        },
    );
    let dlq = c.req(json!({"id": 3, "op": "dlq_list"}));
    let d = &dlq["result"][0];
    assert_eq!(d["reason"], "hop_budget_exhausted");
    assert_eq!(
        d["correlation"], "ping:1",
        "the whole loop is one correlation"
    );
    let stats = c.req(json!({"id": 4, "op": "stats"}))["result"].clone();
    let handled = stats["agents"]["ping"]["handled"].as_u64().unwrap()
        + stats["agents"]["pong"]["handled"].as_u64().unwrap();
    assert_eq!(handled, 7, "hops 0..=6 handled, the 7th hop dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_half_opens_and_closes() {
    let mut a = counter("flaky");
    a.max_attempts = 100;
    a.breaker = Some(BreakerSpec {
        failures: 2,
        cool_down: Duration::from_millis(400),
    });
    let (k, _) = kinds();
    let rt = Runtime::start(SupervisorSpec::new("root").child(ChildSpec::agent(a)), k)
        .await
        .unwrap();
    let slot = rt.agent("flaky").unwrap();
    let b = || slot.breaker.snapshot().unwrap();
    let failed = || {
        slot.stats
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Attempts 1..=3 fail, the 4th succeeds.
    rt.send("flaky", json!({"fault": "error", "times": 3}))
        .await
        .unwrap();
    rt.send("flaky", json!({"op": "inc"})).await.unwrap();
    wait_until("open after two failures", T, || {
        b().state == BreakerState::Open
    })
    .await;
    assert_eq!(
        (b().trips, failed()),
        (1, 2),
        "while open, messages wait instead of failing"
    );
    assert_eq!(
        rt.tree().children.unwrap()[0].breaker,
        Some(BreakerState::Open),
        "visible in the tree"
    );
    wait_until("the half-open trial failed: open again", T, || {
        b().trips == 2
    })
    .await;
    assert_eq!(failed(), 3, "exactly one trial");
    wait_until(
        "the next trial succeeded: closed, and the queue flows",
        T,
        || b().state == BreakerState::Closed && slot.state()["count"] == 2,
    )
    .await;
    assert_eq!(b().consecutive_failures, 0);
    rt.shutdown(T).await;
}

/// An open breaker never dead-letters a message by a failed trial, and its trials
/// alternate between the head and the message behind it: a poison message at the
/// head is dead-lettered (with its `max_attempts`) once a trial of another message
/// has closed the breaker, and the messages behind it flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_cannot_keep_a_breaker_open() {
    let mut a = counter("guarded");
    a.max_attempts = 2;
    a.accept_faults = true;
    a.systemic.after = 0; // the breaker alone
    a.breaker = Some(BreakerSpec {
        failures: 1,
        cool_down: Duration::from_millis(50),
    });
    let (k, _) = kinds();
    let rt = Runtime::start(SupervisorSpec::new("root").child(ChildSpec::agent(a)), k)
        .await
        .unwrap();
    let slot = rt.agent("guarded").unwrap();
    rt.send("guarded", json!({"fault": "error"})).await.unwrap();
    for _ in 0..3 {
        rt.send("guarded", json!({"op": "inc"})).await.unwrap();
    }
    wait_until("the good messages flow and the poison is dead", T, || {
        slot.state()["count"] == 3 && slot.dead_count() == 1 && slot.pending() == 0
    })
    .await;
    let d = &slot.dead_letters()[0];
    assert_eq!((d.attempts, d.reason.as_str()), (2, "max_attempts"));
    rt.shutdown(T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_default_deadline_bounds_a_correlation_that_starts_there() {
    let mut a = counter("c");
    a.deadline = Some(Duration::from_millis(200));
    let (k, _) = kinds();
    let rt = Runtime::start(SupervisorSpec::new("root").child(ChildSpec::agent(a)), k)
        .await
        .unwrap();
    rt.stop_child("c").await.unwrap();
    let id = rt.send("c", json!({"op": "inc"})).await.unwrap();
    let slot = rt.agent("c").unwrap();
    let deadline = slot.peek(1)[0]
        .deadline_ms
        .expect("the default deadline was set at send");
    wait_until("the deadline passes while the agent is stopped", T, || {
        warden::envelope::now_ms() > deadline
    })
    .await;
    rt.start_child("c").await.unwrap();
    wait_until("dead-lettered past its deadline", T, || {
        slot.dead_count() == 1
    })
    .await;
    let d = &slot.dead_letters()[0];
    assert_eq!(
        (d.envelope.id.clone(), d.reason),
        (id, DeadReason::DeadlineExceeded)
    );
    rt.shutdown(T).await;
}

/// Records the (virtual) time of every attempt; fails the first `fail` attempts.
struct Recorder {
    times: Arc<Mutex<Vec<tokio::time::Instant>>>,
    fail: usize,
}

#[async_trait::async_trait]
impl warden::Agent for Recorder {
    async fn handle(&mut self, _ctx: &mut warden::Context) -> Result<(), warden::AgentError> {
        let mut t = self.times.lock().unwrap();
        t.push(tokio::time::Instant::now());
        if t.len() <= self.fail {
            return Err(warden::AgentError::retryable("upstream 503"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_backoff_schedule_doubles_up_to_its_cap() {
    let times: Arc<Mutex<Vec<tokio::time::Instant>>> = Arc::default();
    let t2 = times.clone();
    let mut k = warden::actors::Kinds::builtin();
    k.register_fn("recorder", move |_| {
        Ok(Box::new(Recorder {
            times: t2.clone(),
            fail: 4,
        }))
    });
    let mut a = AgentSpec::new("r", "recorder").mailbox(MailboxKind::Memory);
    a.max_attempts = 10;
    a.backoff = warden::policies::backoff::Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(3),
        multiplier: 2.0,
        jitter: 0.0,
    };
    let rt = Runtime::start(SupervisorSpec::new("root").child(ChildSpec::agent(a)), k)
        .await
        .unwrap();
    rt.send("r", json!({})).await.unwrap();
    let t3 = times.clone();
    wait_until("five attempts", Duration::from_secs(60), || {
        t3.lock().unwrap().len() == 5
    })
    .await;
    let t = times.lock().unwrap().clone();
    let gaps: Vec<u64> = t
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    // 1 s, 2 s, then capped at 3 s; paused time makes the schedule exact to the ms.
    let want = [1000, 2000, 3000, 3000];
    for (g, w) in gaps.iter().zip(want) {
        assert!(*g >= w && *g < w + 50, "gaps {gaps:?}, want {want:?}");
    }
    rt.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn breaker_state_and_limiter_counters_show_in_stats() {
    let sb = Sandbox::new(
        r#"
[daemon]
data_dir = "{dir}/data"

[limits.api]
requests_per_second = 100
burst = 5

[supervisor.root]
children = ["flaky"]

[agent.flaky]
kind = "echo"
accept_faults = true
limits = ["api"]
max_attempts = 50
breaker = { failures = 2, cool_down = "1m" }
"#,
    );
    let _d = sb.start_ready();
    let mut c = sb.conn();
    assert_eq!(
        c.req(json!({"id": 1, "op": "send", "to": "flaky", "payload": {"fault": "error"}}))["ok"],
        true
    );
    wait_until_blocking("the breaker opens", Duration::from_secs(20), || {
        sb.conn().req(json!({"id": 2, "op": "stats"}))["result"]["agents"]["flaky"]["breaker"]
            ["state"]
            == "open"
    });
    let stats = c.req(json!({"id": 3, "op": "stats"}))["result"].clone();
    let b = &stats["agents"]["flaky"]["breaker"];
    assert_eq!(
        (b["trips"].as_u64(), b["consecutive_failures"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        stats["limits"]["api"]["permits"], 2,
        "two attempts, two permits"
    );
    let tree = c.req(json!({"id": 4, "op": "tree"}))["result"].clone();
    assert_eq!(tree["children"][0]["breaker"], "open");
}

/// One clock: with tokio's time paused, a correlation deadline of an hour passes
/// in virtual time. The message waits for a stopped agent, two virtual hours go
/// by in no real time, and the agent, started again, dead-letters it unhandled.
#[tokio::test(start_paused = true)]
async fn a_deadline_passes_in_paused_time() {
    let (k, _) = kinds();
    let rt = Runtime::start(
        SupervisorSpec::new("root").child(ChildSpec::agent(counter("w"))),
        k,
    )
    .await
    .unwrap();
    rt.stop_child("w").await.unwrap();
    let opts = warden::actors::SendOptions {
        deadline: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    rt.send_with("w", json!({"op": "inc"}), opts).await.unwrap();
    let real = std::time::Instant::now();
    tokio::time::advance(Duration::from_secs(7200)).await;
    rt.start_child("w").await.unwrap();
    let slot = rt.agent("w").unwrap();
    wait_until(
        "the message is dead-lettered",
        Duration::from_secs(10),
        || slot.dead_count() == 1,
    )
    .await;
    assert_eq!(slot.dead_letters()[0].reason, DeadReason::DeadlineExceeded);
    assert_eq!(slot.state(), serde_json::Value::Null, "never handled");
    assert!(real.elapsed() < Duration::from_secs(5));
}
