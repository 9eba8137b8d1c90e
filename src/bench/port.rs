//! port: one `exec` agent running a Python echo port, called N times one after
//! the other (memory and durable mailbox): the latency of a whole `call` (accept,
//! delivery over the port's pipes, commit, reply). The floor is the same Python
//! process loop without Warden: a JSON line written to its stdin and its answer
//! read from its stdout, N times, measured the same way. The difference of the
//! medians is Warden's overhead per delivery.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::durable::tempfile_dir;
use super::BenchResult;
use crate::actors::{AgentSpec, Kinds, MailboxKind};
use crate::store::{Store, StoreOptions};
use crate::supervision::tree::Durable;
use crate::supervision::{ChildSpec, SupervisorSpec};
use crate::Runtime;

/// A warden-port/1 echo in stdlib Python, and the same loop as a plain pipe echo.
const PORT: &str = r#"
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("method") == "initialize":
        r = {"jsonrpc": "2.0", "id": m["id"], "result": {"protocol": "warden-port/1"}}
    elif m.get("method") == "deliver":
        r = {"jsonrpc": "2.0", "id": m["id"], "result": {"reply": m["params"]["payload"]}}
    else:
        r = {"jsonrpc": "2.0", "id": m.get("id"), "result": m.get("params")}
    sys.stdout.write(json.dumps(r) + "\n")
    sys.stdout.flush()
"#;

pub(super) async fn run(n: u64) -> Vec<BenchResult> {
    let dir = tempfile_dir();
    let script = dir.join("echo_port.py");
    std::fs::write(&script, PORT).expect("write the port");
    let mut out = vec![floor(&script, n).await];
    for mailbox in [MailboxKind::Memory, MailboxKind::Durable] {
        out.push(through_warden(&dir, &script, mailbox, n).await);
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// The plain pipe echo: the same process, the same lines, no Warden.
async fn floor(script: &std::path::Path, n: u64) -> BenchResult {
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut samples = Vec::with_capacity(n as usize);
    let mut line = String::new();
    let mut wall = Instant::now();
    // the first 100 are warm-up, as through Warden
    for i in 0..n + 100 {
        if i == 100 {
            samples.clear();
            wall = Instant::now();
        }
        let req = json!({"jsonrpc": "2.0", "id": i, "method": "deliver", "params": {
            "message_id": format!("echo:{i}"), "correlation": "c", "causation": null,
            "attempt": 1, "max_attempts": 5, "hops": 0, "remaining_ms": null, "key": null,
            "traceparent": null, "state": null, "payload": {"i": i}}});
        let mut bytes = serde_json::to_vec(&req).expect("json");
        bytes.push(b'\n');
        let t = Instant::now();
        stdin.write_all(&bytes).await.expect("write");
        stdin.flush().await.expect("flush");
        line.clear();
        stdout.read_line(&mut line).await.expect("read");
        samples.push(t.elapsed().as_nanos() as u64);
    }
    let wall = wall.elapsed().as_secs_f64();
    let mut r = BenchResult::new("port", n).latencies(&mut samples);
    r.variant = Some("plain python pipe (floor)".into());
    r.msgs_per_s = Some(n as f64 / wall);
    r
}

async fn through_warden(
    dir: &std::path::Path,
    script: &std::path::Path,
    mailbox: MailboxKind,
    n: u64,
) -> BenchResult {
    let mut agent = AgentSpec::new("echo", "exec")
        .mailbox(mailbox)
        .option("command", json!(["python3", script]));
    agent.timeout = Duration::from_secs(10);
    let tree = SupervisorSpec::new("root").child(ChildSpec::agent(agent));
    let options = match mailbox {
        MailboxKind::Durable => {
            let (store, recovered) =
                Store::open(&dir.join("store"), StoreOptions::default()).expect("store opens");
            crate::runtime::Options {
                durable: Some(Durable {
                    store,
                    recovered: Mutex::new(recovered),
                    retention: Duration::from_secs(3600),
                }),
                ..Default::default()
            }
        }
        MailboxKind::Memory => Default::default(),
    };
    let rt = Runtime::start_with(tree, Kinds::builtin(), options)
        .await
        .expect("bench tree starts");
    // warm-up: the first calls pay for Python's imports and the page cache
    for i in 0..100 {
        rt.call("echo", json!({"warm": i}), Duration::from_secs(10))
            .await
            .expect("warm-up call");
    }
    let mut samples = Vec::with_capacity(n as usize);
    let wall = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        rt.call("echo", json!({"i": i}), Duration::from_secs(10))
            .await
            .expect("call");
        samples.push(t.elapsed().as_nanos() as u64);
    }
    let wall = wall.elapsed().as_secs_f64();
    rt.shutdown(Duration::from_secs(10)).await;
    if let Some(store) = rt.store() {
        store.close();
    }
    let mut r = BenchResult::new("port", n).latencies(&mut samples);
    r.variant = Some(format!("warden exec, {} mailbox", mailbox.as_str()));
    r.msgs_per_s = Some(n as f64 / wall);
    r
}
