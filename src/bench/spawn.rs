//! spawn: N idle agents started one after another, two ways.
//! - `spawn`: `echo` agents (memory mailboxes) added through the library to a
//!   running supervisor (OTP `start_child`), each started before the next.
//! - `spawn_socket`: dynamic children of a `simple_one_for_one` supervisor made
//!   with the admin `spawn` op from 16 concurrent socket clients, each answered only
//!   once the child runs and its store record is flushed (durable mailboxes).
//!
//! Memory is the growth of the process's resident set over N, so it includes the
//! agent's slot, tree node and registry entry as well as its host actor.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::durable::{close, tempfile_dir};
use super::{rss_bytes, BenchResult};
use crate::actors::{AgentSpec, Kinds, MailboxKind};
use crate::store::{Store, StoreOptions};
use crate::supervision::tree::Durable;
use crate::supervision::{ChildSpec, Strategy, SupervisorSpec};
use crate::Runtime;

const CLIENTS: u64 = 16;

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    vec![library(n).await, socket_in_child(n)]
}

/// The socket variant runs in a fresh process (`bench spawn-socket`), so that its
/// resident-set growth is not hidden by memory the library variant freed.
fn socket_in_child(n: u64) -> BenchResult {
    let out = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["bench", "spawn-socket", "--json", "-n", &n.to_string()])
        .output()
        .expect("run bench spawn-socket");
    assert!(
        out.status.success(),
        "bench spawn-socket failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("bench spawn-socket prints a JSON line");
    let mut r = BenchResult::new("spawn", n);
    r.variant = Some("socket".into());
    r.producers = Some(CLIENTS);
    r.spawns_per_s = line["spawns_per_s"].as_f64();
    r.bytes_per_actor = line["bytes_per_actor"].as_f64();
    r
}

async fn library(n: u64) -> BenchResult {
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
    r.variant = Some("library".into());
    r.spawns_per_s = Some(n as f64 / elapsed);
    r.bytes_per_actor = Some(after.saturating_sub(before) as f64 / n as f64);
    r
}

/// `bench spawn-socket`: the socket variant, in this process.
pub(super) async fn socket(n: u64) -> BenchResult {
    let dir = tempfile_dir();
    let (store, recovered) =
        Store::open(&dir.join("store"), StoreOptions::default()).expect("bench store opens");
    let tree = SupervisorSpec::new("root").child(ChildSpec::supervisor(
        SupervisorSpec::new("sessions")
            .strategy(Strategy::SimpleOneForOne)
            .template(ChildSpec::agent(AgentSpec::new("session", "echo"))),
    ));
    let options = crate::runtime::Options {
        durable: Some(Durable {
            store,
            recovered: Mutex::new(recovered),
            retention: Duration::from_secs(3600),
        }),
        ..Default::default()
    };
    let rt = Arc::new(
        Runtime::start_with(tree, Kinds::builtin(), options)
            .await
            .expect("bench tree starts"),
    );
    let served = super::admin::serve(rt.clone(), &dir).await;
    let sock = served.socket.clone();
    let before = rss_bytes();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let sock = sock.clone();
        tasks.push(tokio::spawn(async move {
            let s = UnixStream::connect(&sock).await.expect("connect");
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            for i in (c..n).step_by(CLIENTS as usize) {
                let req = format!(
                    "{{\"id\":{i},\"op\":\"spawn\",\"supervisor\":\"sessions\",\"name\":\"s{i}\"}}\n"
                );
                w.write_all(req.as_bytes()).await.expect("write");
                line.clear();
                r.read_line(&mut line).await.expect("read");
                assert!(line.contains("\"ok\":true"), "{line}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let elapsed = t.elapsed().as_secs_f64();
    let after = rss_bytes();
    served.stop().await;
    close(rt).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = BenchResult::new("spawn", n);
    r.variant = Some("socket".into());
    r.producers = Some(CLIENTS);
    r.spawns_per_s = Some(n as f64 / elapsed);
    r.bytes_per_actor = Some(after.saturating_sub(before) as f64 / n as f64);
    r
}
