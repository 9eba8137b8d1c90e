//! Systemic failures: when every message fails, the agent pauses instead of draining
//! its mailbox into the dead letters; a run of poison messages does not keep a
//! healthy agent paused; `warden ctl resume` resumes at once.

use std::time::Duration;

use serde_json::json;

use crate::common::{json_lines, wait_until_blocking, Sandbox};

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["worker", "out"]

[agent.worker]
kind = "echo"
to = ["out"]
accept_faults = true
backoff = { initial = "1ms", max = "5ms" }
pause_cool_down = "300ms"

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
"#;

const T: Duration = Duration::from_secs(30);

#[test]
fn an_agent_failing_every_message_pauses_instead_of_draining_its_mailbox() {
    let _ = crate::seed("systemic_pause"); // deterministic; printed for the record
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    assert!(sb.ctl(&["stop", "worker"]).status.success());
    let mut c = sb.conn();
    for i in 0..50 {
        let r = c.req(
            json!({"id": i, "op": "send", "to": "worker", "payload": {"fault": "panic", "i": i}}),
        );
        assert_eq!(r["ok"], true, "{r}");
    }
    let mut w = sb.conn();
    assert_eq!(
        w.req(json!({"id": "w", "op": "watch"}))["result"]["watching"],
        true
    );
    assert!(sb.ctl(&["start", "worker"]).status.success());
    // `watch` streams the pause, with its reason
    loop {
        let e = w.read();
        if e["event"]["event"] == "paused" {
            assert_eq!(e["event"]["name"], "worker");
            assert!(
                e["event"]["reason"].as_str().unwrap().contains("in a row"),
                "{e}"
            );
            break;
        }
    }
    wait_until_blocking("the worker shows as paused", T, || {
        sb.ctl_json(&["tree"])["children"][0]["status"] == "paused"
    });
    let tree = sb.ctl_json(&["tree"]);
    let w = &tree["children"][0];
    assert!(
        w["paused"]["reason"].as_str().unwrap().contains("in a row"),
        "{w}"
    );
    // Several failed trials later, still nothing more is dead-lettered or lost.
    wait_until_blocking("two failed trials", T, || {
        sb.ctl_json(&["stats"])["agents"]["worker"]["paused"]["failed_trials"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    });
    let s = &sb.ctl_json(&["stats"])["agents"]["worker"];
    let dead = s["dead_letters"].as_u64().unwrap();
    let waiting = s["pending"].as_u64().unwrap() + s["in_flight"].as_u64().unwrap();
    assert!(
        dead <= 2,
        "at most a few dead letters before the pause: {s}"
    );
    assert_eq!(dead + waiting, 50, "nothing lost: {s}");
    let log = std::fs::read_to_string(sb.path("daemon.log")).unwrap();
    assert!(
        log.contains("agent paused"),
        "the pause is logged as an error"
    );
    let r = sb.ctl_json(&["resume", "worker"]);
    assert_eq!(r["resumed"], true);
}

#[test]
fn a_run_of_poison_messages_does_not_keep_a_healthy_agent_paused() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    assert!(sb.ctl(&["stop", "worker"]).status.success());
    let mut c = sb.conn();
    for i in 0..8u64 {
        let payload = if i < 3 {
            json!({"fault": "error", "i": i})
        } else {
            json!({"i": i})
        };
        let r = c.req(json!({"id": i, "op": "send", "to": "worker", "payload": payload}));
        assert_eq!(r["ok"], true, "{r}");
    }
    assert!(sb.ctl(&["start", "worker"]).status.success());
    wait_until_blocking(
        "the good messages flow and the poison is dead-lettered",
        T,
        || {
            let s = &sb.ctl_json(&["stats"])["agents"];
            ["worker", "out"]
                .iter()
                .all(|a| s[a]["pending"] == 0 && s[a]["in_flight"] == 0)
                && s["worker"]["paused"].is_null()
                && s["worker"]["dead_letters"] == 3
        },
    );
    let good: Vec<u64> = json_lines(&sb.path("out.jsonl"))
        .iter()
        .filter_map(|l| l["payload"]["i"].as_u64())
        .collect();
    let mut sorted = good.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![3, 4, 5, 6, 7],
        "every good message handled once"
    );
    let dlq = sb.ctl_json(&["dlq", "list", "worker"]);
    let poison: Vec<u64> = dlq
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["payload"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        poison.len(),
        3,
        "exactly the poison is dead-lettered: {dlq}"
    );
    for d in dlq.as_array().unwrap() {
        assert_eq!(
            d["attempts"], 5,
            "poison is charged its full max_attempts: {d}"
        );
    }
}
