//! orchestrator: the shipped `seed-orchestrator` example (compiled in from
//! config/examples) run by the real daemon (`warden run`, its own process,
//! durable mailboxes) against an in-process `warden fake-llm` answering with
//! 0 ms latency. Tasks are sent over the admin socket at a steady `n` tasks/s
//! (open loop: on schedule, whatever the daemon's pace) for
//! `WARDEN_BENCH_SECS` seconds (default 60); each task is a planner call, a
//! schema check, a fan-out of three subtasks routed to role workers (three more
//! model calls), a join and a report line.
//!
//! Per task: end to end from the send leaving the client to its report line in
//! the sink's file (tailed every millisecond). The provider's time is 0 ms by
//! construction, so the end-to-end time is the runtime's overhead (an upper
//! bound: the fake's own HTTP handling, in this process, is included).
//! Completed tasks/s counts the tasks reported over the time from the first
//! send to the last report; `lost` is sent minus reported; the daemon's peak
//! RSS is its `VmHWM`.
//!
//! `WARDEN_BENCH_TELEMETRY=traces` points the daemon's span export at the
//! bench's collector (which drops everything), `=metrics` serves its metrics.
//!
//! Two changes to the example: the model limiter is raised far above the rate
//! (the example's 6,000 a minute is a provider's quota; the measurement is of
//! the runtime), and the data directory and schema are in a temp dir.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::BenchResult;
use crate::fake_llm::{FakeLlmArgs, Script};

const CONFIG: &str = include_str!("../../config/examples/seed-orchestrator.toml");
const SCRIPT: &str = include_str!("../../config/examples/seed-orchestrator.llm.toml");
const SCHEMA: &str = include_str!("../../config/examples/schemas/plan.json");
/// Admin connections the sends are spread over (each keeps its replies in order).
const CONNECTIONS: usize = 8;

type Times = Arc<Mutex<HashMap<String, Instant>>>;

pub(super) async fn run(rate: u64) -> Vec<BenchResult> {
    let secs: u64 = std::env::var("WARDEN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = super::durable::tempfile_dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut script = Script::parse(SCRIPT, "seed-orchestrator.llm.toml").expect("the example");
    script.faults.latency = Duration::ZERO;
    let args = FakeLlmArgs {
        listen: addr,
        script,
        log: None,
    };
    let fake = tokio::spawn(crate::fake_llm::serve_on(listener, args));
    std::fs::write(dir.join("plan.json"), SCHEMA).expect("schema");
    let config = CONFIG
        .replace("127.0.0.1:8099", &addr.to_string())
        .replace("var/orchestrator", &dir.join("data").display().to_string())
        .replace(
            "config/examples/schemas/plan.json",
            &dir.join("plan.json").display().to_string(),
        )
        .replace(
            "requests_per_minute = 6000",
            "requests_per_minute = 60000000",
        )
        .replace("burst = 50", "burst = 100000")
        .replace(
            "tokens_per_minute = 2000000",
            "tokens_per_minute = 4000000000",
        )
        + "\n[telemetry]\nlog = \"warn\"\n"
        + &match (
            std::env::var("WARDEN_BENCH_TELEMETRY").as_deref(),
            super::telemetry::COLLECTOR.get(),
        ) {
            (Ok("traces"), Some(url)) => format!("otlp_endpoint = \"{url}\"\nsample = 1.0\n"),
            (Ok("metrics"), _) => "metrics_listen = \"127.0.0.1:0\"\n".to_string(),
            _ => String::new(),
        };
    let config_path = dir.join("warden.toml");
    std::fs::write(&config_path, config).expect("config");
    let exe = std::env::current_exe().expect("the warden binary");
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
    let mut daemon = tokio::process::Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("warden run");
    let pid = daemon.id().expect("pid");
    let socket = dir.join("data/warden.sock");
    let reports = dir.join("data/reports.jsonl");
    let started = Instant::now();
    let mut conns = Vec::new();
    while conns.is_empty() {
        if started.elapsed() > Duration::from_secs(30) {
            panic!(
                "the daemon did not start; see {}",
                dir.join("daemon.log").display()
            );
        }
        match tokio::net::UnixStream::connect(&socket).await {
            Ok(s) => conns.push(s),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    while conns.len() < CONNECTIONS {
        conns.push(
            tokio::net::UnixStream::connect(&socket)
                .await
                .expect("connect"),
        );
    }
    // the sink's file, tailed: the time each task's report appears
    let sent: Times = Arc::default();
    let done: Times = Arc::default();
    let tail = tokio::spawn(tail_reports(reports, done.clone()));
    let mut writers = Vec::new();
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for c in conns {
        let (r, w) = c.into_split();
        writers.push(w);
        let refused = refused.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if !l.contains("\"ok\":true") {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(reply = %l, "a send was refused");
                }
            }
        });
    }
    let total = rate * secs;
    let t0 = Instant::now();
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let id = format!("t-{i}");
        let line = format!(
            "{{\"op\":\"send\",\"to\":\"intake\",\"payload\":\"task {i}\",\"correlation\":\"{id}\"}}\n"
        );
        sent.lock().expect("times").insert(id, Instant::now());
        let w = &mut writers[i as usize % CONNECTIONS];
        w.write_all(line.as_bytes()).await.expect("send");
    }
    let sending = t0.elapsed();
    let drain = Instant::now();
    while done.lock().expect("times").len() < total as usize
        && drain.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tail.abort();
    let rss = peak_rss(pid);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = tokio::time::timeout(Duration::from_secs(15), daemon.wait()).await;
    fake.abort();
    let (sent, done) = (
        sent.lock().expect("times").clone(),
        done.lock().expect("times").clone(),
    );
    let mut e2e: Vec<u64> = done
        .iter()
        .filter_map(|(id, at)| Some(at.duration_since(*sent.get(id)?).as_nanos() as u64))
        .collect();
    let last = done.values().max().copied().unwrap_or(t0);
    let mut r = BenchResult::new("orchestrator", total).latencies(&mut e2e);
    r.variant = Some(format!(
        "{rate} tasks/s for {secs} s (sent in {:.1} s), daemon peak RSS {:.1} MiB, {} sends refused",
        sending.as_secs_f64(),
        rss as f64 / (1024.0 * 1024.0),
        refused.load(std::sync::atomic::Ordering::Relaxed)
    ));
    r.msgs_per_s = Some(done.len() as f64 / last.duration_since(t0).as_secs_f64());
    r.lost = Some(total.saturating_sub(done.len() as u64));
    let _ = std::fs::remove_dir_all(&dir);
    vec![r]
}

/// Reads the report lines as they are appended, noting when each task's first
/// report appears.
async fn tail_reports(path: std::path::PathBuf, done: Times) {
    let mut file = loop {
        match tokio::fs::File::open(&path).await {
            Ok(f) => break f,
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let now = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                if let Some(c) = v["correlation"].as_str() {
                    done.lock()
                        .expect("times")
                        .entry(c.to_string())
                        .or_insert(now);
                }
            }
        }
    }
}

/// The peak resident set of process `pid`, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
