//! Rate limits (G8) against a real HTTP server on 127.0.0.1, started by the test,
//! which timestamps every request it receives. Real time, generous bounds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::wait_until;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warden::actors::{AgentSpec, DeadReason, Kinds, MailboxKind, SendOptions};
use warden::config::LimitSpec;
use warden::policies::limits::Limits;
use warden::runtime::Options;
use warden::supervision::{ChildSpec, SupervisorSpec};
use warden::{Agent, AgentError, Context, Runtime};

/// A tiny HTTP server: answers every request, recording when it arrived; the first
/// `throttle` requests get `429 Retry-After: <secs>`.
struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Instant>>>,
    throttled_at: Arc<Mutex<Option<Instant>>>,
}

async fn server(throttle: usize, retry_after_secs: u64) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let throttled_at = Arc::new(Mutex::new(None));
    let (h, t) = (hits.clone(), throttled_at.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (h, t) = (h.clone(), t.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let n = {
                    let mut hits = h.lock().unwrap();
                    hits.push(Instant::now());
                    hits.len()
                };
                let reply = if n <= throttle {
                    *t.lock().unwrap() = Some(Instant::now());
                    format!("HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after_secs}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    Server {
        addr,
        hits,
        throttled_at,
    }
}

/// An agent that makes one HTTP GET per message and reports a 429 as rate limited.
struct Caller {
    addr: SocketAddr,
}

#[async_trait::async_trait]
impl Agent for Caller {
    async fn handle(&mut self, _ctx: &mut Context) -> Result<(), AgentError> {
        let mut s = TcpStream::connect(self.addr)
            .await
            .map_err(|e| AgentError::retryable(e.to_string()))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .map_err(|e| AgentError::retryable(e.to_string()))?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)
            .await
            .map_err(|e| AgentError::retryable(e.to_string()))?;
        if resp.starts_with("HTTP/1.1 429") {
            let secs = resp
                .lines()
                .find_map(|l| l.strip_prefix("Retry-After: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1);
            return Err(AgentError::rate_limited(Duration::from_secs(secs)));
        }
        Ok(())
    }
}

async fn start(addr: SocketAddr, agents: &[&str], limit: LimitSpec) -> Runtime {
    let mut kinds = Kinds::builtin();
    kinds.register_fn("caller", move |_| Ok(Box::new(Caller { addr })));
    let mut tree = SupervisorSpec::new("root");
    for a in agents {
        let mut spec = AgentSpec::new(*a, "caller").mailbox(MailboxKind::Memory);
        spec.limits = vec!["api".into()];
        tree = tree.child(ChildSpec::agent(spec));
    }
    let mut specs = BTreeMap::new();
    specs.insert("api".to_string(), limit);
    let options = Options {
        limits: Limits::new(&specs),
        ..Default::default()
    };
    Runtime::start_with(tree, kinds, options).await.unwrap()
}

fn rps(n: f64, burst: u32) -> LimitSpec {
    LimitSpec {
        requests_per_second: Some(n),
        requests_per_minute: None,
        tokens_per_minute: None,
        burst: Some(burst),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_limiter_holds_its_quota_across_three_agents() {
    let srv = server(0, 0).await;
    let agents = ["a", "b", "c"];
    let rt = start(srv.addr, &agents, rps(10.0, 2)).await;
    for i in 0..12 {
        for a in agents {
            rt.send(a, json!(i)).await.unwrap();
        }
    }
    let hits = srv.hits.clone();
    wait_until("all 36 requests served", Duration::from_secs(30), || {
        hits.lock().unwrap().len() == 36
    })
    .await;
    let mut t = srv.hits.lock().unwrap().clone();
    t.sort();
    let worst = t
        .iter()
        .map(|start| {
            t.iter()
                .filter(|x| **x >= *start && **x < *start + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        worst <= 10 + 2,
        "a 1 s window saw {worst} requests; quota 10/s + burst 2"
    );
    let stats = rt.tree_context().limits().snapshot();
    assert_eq!(stats["api"].permits, 36);
    assert!(stats["api"].waits > 0, "the flood had to wait");
    rt.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_pauses_every_sharer() {
    let srv = server(1, 2).await;
    let agents = ["a", "b", "c"];
    let rt = start(srv.addr, &agents, rps(10.0, 1)).await;
    for a in agents {
        for i in 0..2 {
            rt.send(a, json!(i)).await.unwrap();
        }
    }
    let hits = srv.hits.clone();
    wait_until(
        "all 6 served (the 429'd one retried)",
        Duration::from_secs(30),
        || hits.lock().unwrap().len() == 7,
    )
    .await;
    let throttled = srv.throttled_at.lock().unwrap().expect("one 429 sent");
    let mut t = srv.hits.lock().unwrap().clone();
    t.sort();
    for later in t.iter().filter(|x| **x > throttled) {
        assert!(
            *later >= throttled + Duration::from_secs(2),
            "a request arrived {:?} after the 429; Retry-After was 2 s",
            *later - throttled
        );
    }
    assert_eq!(rt.tree_context().limits().snapshot()["api"].pauses, 1);
    let a = rt.agent("a").unwrap();
    assert_eq!(
        a.stats
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a 429 is not a failed attempt"
    );
    rt.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_expiring_while_waiting_for_a_permit_dead_letters() {
    let srv = server(0, 0).await;
    let limit = LimitSpec {
        requests_per_second: None,
        requests_per_minute: Some(1.0),
        tokens_per_minute: None,
        burst: Some(1),
        ..Default::default()
    };
    let rt = start(srv.addr, &["a"], limit).await;
    rt.send("a", json!(1)).await.unwrap();
    let opts = SendOptions {
        deadline: Some(Duration::from_millis(500)),
        ..SendOptions::default()
    };
    let late = rt.send_with("a", json!(2), opts).await.unwrap();
    let slot = rt.agent("a").unwrap();
    wait_until(
        "dead-lettered, not waiting a minute",
        Duration::from_secs(10),
        || slot.dead_count() == 1,
    )
    .await;
    let d = &slot.dead_letters()[0];
    assert_eq!(d.envelope.id, late.message_id);
    assert_eq!(d.reason, DeadReason::DeadlineExceeded);
    assert!(d.last_error.contains("limiter 'api'"), "{}", d.last_error);
    assert_eq!(srv.hits.lock().unwrap().len(), 1);
    rt.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_reset_a_quota() {
    let srv = server(0, 0).await;
    let rt = start(srv.addr, &["a"], rps(1.0 / 60.0, 1)).await;
    rt.send("a", json!(1)).await.unwrap();
    let hits = srv.hits.clone();
    wait_until("first request", Duration::from_secs(10), || {
        hits.lock().unwrap().len() == 1
    })
    .await;
    rt.restart_child("a").await.unwrap();
    rt.send("a", json!(2)).await.unwrap();
    let slot = rt.agent("a").unwrap();
    wait_until(
        "second message waiting for its permit",
        Duration::from_secs(10),
        || slot.in_flight() == 1,
    )
    .await;
    assert_eq!(
        srv.hits.lock().unwrap().len(),
        1,
        "the restarted agent still waits for the shared quota"
    );
    assert_eq!(rt.tree_context().limits().snapshot()["api"].permits, 1);
    rt.shutdown(Duration::from_secs(10)).await;
}

/// Spends `{"estimate": n, "actual": m}` tokens: takes the estimate, reports the actual.
struct Spender;

#[async_trait::async_trait]
impl Agent for Spender {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let estimate = ctx.payload()["estimate"].as_u64().unwrap_or(0);
        let actual = ctx.payload()["actual"].as_u64().unwrap_or(estimate);
        ctx.take_tokens(estimate).await?;
        ctx.report_tokens(actual);
        ctx.reply(json!({"spent": actual}));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_weighted_limits_are_shared_and_overruns_debited() {
    let mut kinds = Kinds::builtin();
    kinds.register_fn("spender", |_| Ok(Box::new(Spender)));
    let mut tree = SupervisorSpec::new("root");
    for a in ["a", "b"] {
        let mut spec = AgentSpec::new(a, "spender").mailbox(MailboxKind::Memory);
        spec.limits = vec!["llm".into()];
        tree = tree.child(ChildSpec::agent(spec));
    }
    let mut specs = BTreeMap::new();
    specs.insert(
        "llm".to_string(),
        LimitSpec {
            requests_per_second: None,
            requests_per_minute: None,
            tokens_per_minute: Some(6000.0), // a bucket of 6,000, refilled at 100/s
            burst: None,
            ..Default::default()
        },
    );
    let options = Options {
        limits: Limits::new(&specs),
        ..Default::default()
    };
    let rt = Runtime::start_with(tree, kinds, options).await.unwrap();
    let call = |to: &'static str, v| {
        let rt = &rt;
        async move { rt.call(to, v, Duration::from_secs(30)).await }
    };
    // a estimates 5,000 but spends 6,000: the 1,000 overrun is owed by the next taker.
    call("a", json!({"estimate": 5000, "actual": 6000}))
        .await
        .unwrap();
    let snap = rt.tree_context().limits().snapshot();
    assert_eq!(
        (snap["llm"].tokens, snap["llm"].tokens_debited),
        (5000, 1000)
    );
    // b's deadline is shorter than the refill its tokens need: dead letter, not a hang.
    let opts = SendOptions {
        deadline: Some(Duration::from_millis(300)),
        ..SendOptions::default()
    };
    let late = rt
        .send_with("b", json!({"estimate": 500}), opts)
        .await
        .unwrap();
    let b = rt.agent("b").unwrap();
    wait_until("b's message dead-lettered", Duration::from_secs(10), || {
        b.dead_count() == 1
    })
    .await;
    assert_eq!(b.dead_letters()[0].envelope.id, late.message_id);
    assert_eq!(b.dead_letters()[0].reason, DeadReason::DeadlineExceeded);
    // The refused wait left the debt owed; b's next take pays it with its own tokens.
    assert_eq!(
        rt.tree_context().limits().snapshot()["llm"].token_debt,
        1000
    );
    call("b", json!({"estimate": 200})).await.unwrap();
    let snap = rt.tree_context().limits().snapshot();
    assert_eq!(
        (snap["llm"].token_debt, snap["llm"].tokens),
        (0, 5200),
        "b paid a's overrun first"
    );
    rt.shutdown(Duration::from_secs(10)).await;
}
