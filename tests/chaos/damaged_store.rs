//! Damaged store files (G10): flipped bytes in the middle or tail of sled's log, a
//! truncated log, a damaged settings file. The daemon either starts with every
//! committed message, or refuses to start with a clear error naming what is missing
//! and how to start anyway (`--accept-loss`). It never starts silently smaller.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::{json_lines, wait_until_blocking, Sandbox};

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["out"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
"#;

const T: Duration = Duration::from_secs(30);
const N: u64 = 300;

/// 300 messages pending at `out` after a clean stop.
fn pending_store() -> Sandbox {
    let sb = Sandbox::new(CONFIG);
    let mut d = sb.start_ready();
    assert!(sb.ctl(&["stop", "out"]).status.success());
    let mut c = sb.conn();
    for i in 0..N {
        let r = c.req(json!({"id": i, "op": "send", "to": "out", "payload": {"i": i, "pad": "x".repeat(200)}}));
        assert_eq!(r["ok"], true, "{r}");
    }
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(0));
    sb
}

fn at_sink(sb: &Sandbox) -> HashSet<u64> {
    json_lines(&sb.path("out.jsonl"))
        .iter()
        .filter_map(|l| l["payload"]["i"].as_u64())
        .collect()
}

/// Starts the damaged store: a refusal must name the loss and the way out; a start
/// must deliver every message. Returns whether it refused.
fn start_checked(sb: &Sandbox, what: &str) -> bool {
    let mut d = sb.start();
    let ready = wait_until_ready_or_exit(sb, &mut d);
    if !ready {
        let log = d.log_text();
        assert!(
            log.contains("--accept-loss") && (log.contains("missing") || log.contains("damaged")),
            "{what}: a refusal names the loss and the way out:\n{log}"
        );
        return true;
    }
    wait_until_blocking(
        &format!("{what}: every committed message handled"),
        T,
        || at_sink(sb).len() as u64 == N,
    );
    false
}

/// Starts the daemon and waits (bounded) for it to exit: (exit code, its log).
fn refused_start(sb: &Sandbox) -> (Option<i32>, String) {
    let mut d = sb.start();
    let status = d.wait_exit(T);
    (status.code(), d.log_text())
}

fn wait_until_ready_or_exit(sb: &Sandbox, d: &mut crate::common::Daemon) -> bool {
    let deadline = std::time::Instant::now() + T;
    loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            assert!(!status.success(), "a refusal exits non-zero");
            return false;
        }
        if d.log_text().contains("warden started") {
            let _ = sb;
            return true;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither started nor refused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn flip(path: &std::path::Path, at: usize, n: usize) {
    let mut b = std::fs::read(path).unwrap();
    for i in at..(at + n).min(b.len()) {
        b[i] ^= 0x5a;
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_truncated_log_is_refused_then_accepted_with_accept_loss() {
    let sb = pending_store();
    let db = sb.path("data/store/db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let (code, err) = refused_start(&sb);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("committed data is missing") && err.contains("--accept-loss"),
        "{err}"
    );
    // with --accept-loss it runs on what is left
    let mut d = {
        let log = sb.path("daemon.log");
        let child = std::process::Command::new(crate::common::warden_bin())
            .args(["run", "--accept-loss", "--config"])
            .arg(sb.config())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        crate::common::Daemon { child, log }
    };
    d.wait_for_log("warden started", T);
    assert!(d.log_text().contains("starting anyway"));
    wait_until_blocking("what is left is handled", T, || {
        sb.ctl_json(&["stats"])["agents"]["out"]["pending"] == 0
    });
    assert!(
        (at_sink(&sb).len() as u64) < N,
        "the truncation did lose messages"
    );
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(0));
    // accepted once, the loss is not reported again
    let d2 = sb.start_ready();
    drop(d2);
}

#[test]
fn flipped_bytes_never_start_the_store_silently_smaller() {
    let mut refused = 0;
    for (what, frac) in [("middle", 0.5), ("tail", 0.9), ("near the end", 0.98)] {
        let sb = pending_store();
        let db = sb.path("data/store/db");
        let len = std::fs::metadata(&db).unwrap().len() as f64;
        flip(&db, (len * frac) as usize, 8);
        if start_checked(&sb, what) {
            refused += 1;
        }
    }
    eprintln!("flipped bytes: {refused} of 3 refused, the rest started whole");
}

#[test]
fn a_damaged_settings_file_is_named_as_such() {
    let sb = pending_store();
    flip(&sb.path("data/store/conf"), 2, 6);
    let (code, err) = refused_start(&sb);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("settings file") && err.contains("damaged"),
        "{err}"
    );
    // not sled's misleading "... changed in sled version 0.29" (the bare "0.29"
    // also turns up in a log line's timestamp)
    assert!(!err.contains("sled version 0.29"), "{err}");
}

#[test]
fn a_missing_high_water_file_is_refused() {
    let sb = pending_store();
    std::fs::remove_file(sb.path("data/store.hwm")).unwrap();
    let (code, err) = refused_start(&sb);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("high-water file") && err.contains("missing"),
        "{err}"
    );
}
