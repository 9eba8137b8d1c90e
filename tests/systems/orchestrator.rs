//! seed-orchestrator (SYSTEMS.md 2). Fault: workers killed repeatedly and the
//! daemon SIGKILLed mid-run. Outcome: one report per task, nothing lost, the tree
//! back in shape, done within 30 s of the restart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::fake_llm::{example, Fake};
use crate::common::{json_lines, wait_until_blocking, Conn, Sandbox};

const T: Duration = Duration::from_secs(30);

#[test]
fn killed_workers_and_a_killed_daemon_still_give_one_complete_report_per_task() {
    let sb = Sandbox::new("");
    let fake = Fake::start(
        &sb,
        &example("seed-orchestrator.llm.toml").replace("20ms", "50ms"),
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let config = example("seed-orchestrator.toml")
        .replace("127.0.0.1:8099", &fake.addr)
        .replace(
            "var/orchestrator",
            &format!("{}/data", sb.dir.path().display()),
        )
        .replace(
            "config/examples/schemas",
            &format!("{root}/config/examples/schemas"),
        );
    std::fs::write(sb.config(), config).unwrap();
    let mut d = sb.start_ready();
    let mut c = Conn::open(&sb.socket());
    let n = 20;
    for i in 0..n {
        let r = c.req(
            json!({"op": "send", "to": "intake", "payload": format!("task {i}"),
            "correlation": format!("t-{i}"), "key": format!("t-{i}")}),
        );
        assert_eq!(r["ok"], true, "{r}");
    }
    let reports = sb.path("data/reports.jsonl");
    // workers killed while they work
    for victim in ["researcher", "coder", "writer", "researcher", "coder"] {
        let r = c.req(json!({"op": "kill", "agent": victim}));
        assert_eq!(r["ok"], true, "{r}");
        wait_until_blocking("the worker is back", T, || {
            c.req(json!({"op": "tree"}))["result"]["children"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["status"] == "running")
        });
    }
    // then the daemon, mid-run
    wait_until_blocking("some reports", T, || !json_lines(&reports).is_empty());
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let before = json_lines(&reports).len();
    let restarted = Instant::now();
    let _d = sb.start_ready();
    wait_until_blocking("every task reported", T, || {
        crate::common::sink_messages(&reports).len() >= n
    });
    let took = restarted.elapsed();
    let lines = crate::common::sink_messages(&reports);
    let tasks: BTreeSet<String> = lines
        .iter()
        .map(|l| l["correlation"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        lines.len(),
        n,
        "one report per task ({before} before the kill): {tasks:?}"
    );
    assert_eq!(tasks.len(), n);
    for l in &lines {
        let p = &l["payload"];
        assert_eq!(p["missing"], json!([]), "complete: {p}");
        let contents: Vec<&str> = p["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["content"].as_str().unwrap())
            .collect();
        assert_eq!(
            contents,
            [
                "the changes: A, B, C",
                "git log v1..v2",
                "Release notes: A, B and C."
            ],
            "the parts in order"
        );
    }
    let mut c = Conn::open(&sb.socket());
    let dl = c.req(json!({"op": "dlq_list"}));
    assert_eq!(
        dl["result"],
        json!([]),
        "nothing lost to the dead letters: {dl}"
    );
    let tree = c.req(json!({"op": "tree"}))["result"].clone();
    fn all_running(t: &serde_json::Value) -> bool {
        t["status"] == "running"
            && t["children"]
                .as_array()
                .is_none_or(|c| c.iter().all(all_running))
    }
    assert!(all_running(&tree), "the tree back in shape: {tree}");
    eprintln!("seed-orchestrator: {n} tasks reported {took:?} after the restart ({before} before the kill)");
    assert!(took < T);
}

/// `warden chaos` on the example itself: tasks through the whole system while
/// agents (joins included) are killed and the daemon is SIGKILLed; every task is
/// reported exactly once (the checker matches reports to tasks by correlation,
/// since the models' answers carry no task number).
#[test]
fn warden_chaos_passes_on_seed_orchestrator() {
    let sb = Sandbox::new("");
    let fake = Fake::start(&sb, &example("seed-orchestrator.llm.toml"));
    let config = crate::common::fake_llm::example_config(
        &sb,
        "seed-orchestrator.toml",
        "var/orchestrator",
        &fake.addr,
    );
    std::fs::write(sb.path("orchestrator.toml"), config).unwrap();
    let out = std::process::Command::new(crate::common::warden_bin())
        .arg("chaos")
        .arg("--config")
        .arg(sb.path("orchestrator.toml"))
        .args([
            "--entry",
            "intake",
            "--duration",
            "15s",
            "--rate",
            "20/s",
            "--poison",
            "0",
            "--kill-rate",
            "1/s",
            "--sigkill-every",
            "5s",
            "--json",
        ])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seed_line = stderr.lines().find(|l| l.contains("seed")).unwrap_or("");
    eprintln!("{seed_line}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}): {stderr}"));
    assert_eq!(report["verdict"], "pass", "{report}\n{stderr}");
    assert!(report["completed"].as_u64().unwrap() >= 200, "{report}");
    assert!(report["daemon_kills"].as_u64().unwrap() >= 2, "{report}");
}
