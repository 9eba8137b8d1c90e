//! resume: N messages accepted for a durable agent that is stopped, by a child
//! `warden` process which is then SIGKILLed; this process then opens the store,
//! starts the tree and times the first message handled and all handled, from the
//! moment it begins to open the store. `lost` counts accepted messages never handled.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::durable::{close, payload, sinkhole, tempfile_dir};
use super::BenchResult;
use crate::actors::{Registry, SendOptions};
use crate::config::Durability;

/// The child's part: accept `n` messages with the agent stopped, say so, wait to die.
pub async fn fill(dir: &std::path::Path, n: u64) {
    let rt = Arc::new(sinkhole(dir, Durability::Crash).await);
    rt.stop_child("sinkhole").await.expect("stop");
    let slot = rt.agent("sinkhole").expect("slot");
    let producers = 64u64;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let slot = slot.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = p;
            while i < n {
                Registry::send_to(&slot, payload(), SendOptions::default())
                    .await
                    .expect("accepted");
                i += producers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    println!("filled {}", slot.pending());
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    let dir = tempfile_dir();
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["bench", "resume-fill", "-n", &n.to_string(), "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the filler");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("filler reports");
    assert!(line.starts_with("filled"), "filler said {line:?}");
    child.kill().expect("SIGKILL the filler");
    let _ = child.wait();

    let t0 = Instant::now();
    let rt = Arc::new(sinkhole(&dir, Durability::Crash).await);
    let slot = rt.agent("sinkhole").expect("slot");
    while slot.stats.handled.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
    let first = t0.elapsed();
    while slot.stats.handled.load(Ordering::Relaxed) < n && t0.elapsed() < Duration::from_secs(600)
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all = t0.elapsed();
    let handled = slot.stats.handled.load(Ordering::Relaxed);
    drop(slot);
    close(rt).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = BenchResult::new("resume", n);
    r.first_handled_ms = Some(first.as_secs_f64() * 1000.0);
    r.all_handled_ms = Some(all.as_secs_f64() * 1000.0);
    r.handled_per_s = Some(handled as f64 / all.as_secs_f64());
    r.lost = Some(n.saturating_sub(handled));
    vec![r]
}
