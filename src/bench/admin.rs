//! admin: `send` requests over the admin socket from C concurrent clients (1, 16),
//! each waiting for its reply before the next request, for a fixed time; the
//! recipient is a durable no-op agent, so every reply means flushed to the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::watch;

use super::durable::{close, sinkhole, tempfile_dir};
use super::BenchResult;
use crate::admin::ops::AdminCtx;
use crate::admin::server::{self, ServerLimits};
use crate::config::Durability;

pub(super) async fn run(secs: u64) -> Vec<BenchResult> {
    let mut out = Vec::new();
    for clients in [1usize, 16] {
        out.push(one(clients, Duration::from_secs(secs)).await);
    }
    out
}

async fn one(clients: usize, span: Duration) -> BenchResult {
    let dir = tempfile_dir();
    let rt = Arc::new(sinkhole(&dir.join("store"), Durability::Crash).await);
    let served = serve(rt.clone(), &dir).await;
    let sock = served.socket.clone();
    let start = Instant::now();
    let stop_at = start + span;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let sock = sock.clone();
        tasks.push(tokio::spawn(async move {
            let s = UnixStream::connect(&sock).await.expect("connect");
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut lat = Vec::new();
            let mut line = String::new();
            let mut i = 0u64;
            while Instant::now() < stop_at {
                let req = format!(
                    "{{\"id\":{i},\"op\":\"send\",\"to\":\"sinkhole\",\"payload\":{{\"c\":{c},\"i\":{i}}}}}\n"
                );
                let t0 = Instant::now();
                w.write_all(req.as_bytes()).await.expect("write");
                line.clear();
                r.read_line(&mut line).await.expect("read");
                assert!(line.contains("\"ok\":true"), "{line}");
                lat.push(t0.elapsed().as_nanos() as u64);
                i += 1;
            }
            lat
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.expect("client"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    served.stop().await;
    close(rt).await;
    let _ = std::fs::remove_dir_all(&dir);
    let n = samples.len() as u64;
    let mut r = BenchResult::new("admin_send", n).latencies(&mut samples);
    r.producers = Some(clients as u64);
    r.msgs_per_s = Some(n as f64 / elapsed);
    r
}

/// The admin server of a bench, on `<dir>/warden.sock`.
pub(super) struct Served {
    /// Its socket.
    pub(super) socket: std::path::PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Stops the server and waits for it.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves the admin protocol for `rt` on `<dir>/warden.sock`, as the daemon does.
pub(super) async fn serve(rt: Arc<crate::Runtime>, dir: &std::path::Path) -> Served {
    let socket = dir.join("warden.sock");
    let listener = server::bind(&socket).await.expect("bind");
    let (stop, stop_rx) = watch::channel(false);
    let ctx = Arc::new(AdminCtx {
        runtime: rt,
        shutdown: stop.clone(),
        config: None,
        log: None,
    });
    let limits = ServerLimits {
        max_clients: 1024,
        idle_timeout: Duration::from_secs(600),
    };
    let task = tokio::spawn(server::serve(
        listener,
        socket.clone(),
        ctx,
        limits,
        stop_rx,
    ));
    Served { socket, stop, task }
}
