//! seed-swarm (SYSTEMS.md 5). Fault: a specialist that always fails one
//! requirement. Outcome: retries at 5, 15 and 30 s, then the person's queue and
//! one alert; after approval with a fix, coverage completes and the project is
//! reported done once.
//!
//! Time is scaled by 1/5 (the example's 5 s -> 15 s -> 30 s schedule runs as
//! 1 s -> 3 s -> 6 s: `initial` and `max` divided by 5, the same multiplier), so
//! the test takes seconds; the retry gaps are checked against the scaled
//! schedule.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fake_llm::{example, example_config, Fake};
use crate::common::{json_lines, wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(40);
/// The scaled schedule between the attempts of a failing requirement, in ms.
const GAPS_MS: [u64; 3] = [1_000, 3_000, 6_000];

fn quiet(tree: &Value) -> bool {
    tree["pending"].as_u64().unwrap_or(0) == 0
        && tree["in_flight"].as_u64().unwrap_or(0) == 0
        && tree["children"]
            .as_array()
            .is_none_or(|c| c.iter().all(quiet))
}

#[test]
fn a_requirement_that_always_fails_is_retried_on_schedule_then_a_person_completes_the_project() {
    let sb = Sandbox::new("");
    let fake = Fake::start(&sb, &example("seed-swarm.llm.toml"));
    let attempts = sb.path("attempts.jsonl");
    let config = example_config(&sb, "seed-swarm.toml", "var/swarm", &fake.addr)
        .replace(
            "initial = \"5s\", multiplier = 3.0, max = \"30s\"",
            "initial = \"1s\", multiplier = 3.0, max = \"6s\"",
        )
        .replace(
            "CANNOT = \"voice\" }",
            &format!("CANNOT = \"voice\", ATTEMPTS = {:?} }}", attempts.display()),
        );
    assert_eq!(config.matches("initial = \"1s\"").count(), 3, "scaled");
    std::fs::write(sb.config(), config).unwrap();
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(
        json!({"op": "send", "to": "intake", "payload": "the shop, version 1",
        "correlation": "shop-1"}),
    );
    assert_eq!(r["ok"], true, "{r}");

    // R3 fails on every attempt: four, on schedule, then the person's queue
    wait_until_blocking("R3 waits for a person", T, || {
        sb.ctl_json(&["approvals", "person"])
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let tries: Vec<u64> = json_lines(&attempts)
        .iter()
        .filter(|a| a["req"] == "R3")
        .map(|a| a["time_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(tries.len(), 4, "the first try and three retries: {tries:?}");
    for (i, want) in GAPS_MS.iter().enumerate() {
        let gap = tries[i + 1] - tries[i];
        assert!(
            gap + want / 20 >= *want && gap <= want + 500,
            "retry {} came {gap} ms after the attempt before it, not {want} ms",
            i + 1
        );
    }
    let dl = c.req(json!({"op": "dlq_list", "agent": "ai"}))["result"].clone();
    assert_eq!(dl.as_array().unwrap().len(), 1, "{dl}");
    assert_eq!(dl[0]["attempts"], 4, "{dl}");
    assert!(
        dl[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("no voice model"),
        "{dl}"
    );
    // one alert, naming the requirement
    wait_until_blocking("the alert", T, || {
        !json_lines(&sb.path("llm.jsonl")).is_empty()
            && json_lines(&sb.path("llm.jsonl"))
                .iter()
                .any(|r| r["status"] == 204)
    });
    let item = sb.ctl_json(&["approvals", "person"])[0].clone();
    assert_eq!(item["correlation"], "shop-1", "{item}");
    assert_eq!(
        item["payload"]["dead_letter"]["payload"]["req"], "R3",
        "{item}"
    );
    assert!(
        json_lines(&sb.path("data/report.jsonl")).is_empty(),
        "coverage waits for R3: {:?}",
        json_lines(&sb.path("data/report.jsonl"))
    );

    // the person does R3 and approves it: coverage completes, the report once
    let fix = json!({"req": "R3", "capability": "ai", "spec": "voice search", "files": [
        {"path": "R3/r3.js", "content": "export function r3() { return listen(); }\n"}]});
    let out = sb.ctl(&[
        "approve",
        "person",
        item["id"].as_str().unwrap(),
        "--payload",
        &fix.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_blocking("the project reported", T, || {
        json_lines(&sb.path("data/report.jsonl")).len() == 1
    });
    wait_until_blocking("the tree quiet", T, || {
        quiet(&c.req(json!({"op": "tree"}))["result"])
    });
    let reports = json_lines(&sb.path("data/report.jsonl"));
    assert_eq!(reports.len(), 1, "reported done once");
    let r = &reports[0];
    assert_eq!(r["correlation"], "shop-1");
    assert_eq!(r["payload"]["missing"], json!([]), "{r}");
    let parts = r["payload"]["parts"].as_array().unwrap();
    let reqs: Vec<&str> = parts.iter().map(|p| p["req"].as_str().unwrap()).collect();
    assert_eq!(reqs, ["R1", "R2", "R3", "R4"], "coverage in order");
    for p in parts {
        let content = p["files"][0]["content"].as_str().unwrap();
        assert!(
            !content.contains("TODO"),
            "no placeholder reached the report: {p}"
        );
    }
    // R1's first draft had a placeholder: the check sent it back once
    let r1 = std::fs::read_to_string(sb.path("data/workspace/R1/r1.js")).unwrap();
    assert!(!r1.contains("TODO"), "{r1}");
    let stats = c.req(json!({"op": "stats"}))["result"]["agents"].clone();
    assert_eq!(
        stats["frontend"]["handled"], 2,
        "a draft and its rework: {}",
        stats["frontend"]
    );
    // one alert in all
    let hooks: Vec<Value> = json_lines(&sb.path("llm.jsonl"))
        .into_iter()
        .filter(|r| r["status"] == 204)
        .collect();
    assert_eq!(hooks.len(), 1, "one alert");
    assert_eq!(
        hooks[0]["body"]["payload"]["dead_letter"]["payload"]["req"], "R3",
        "{}",
        hooks[0]
    );
    let dl = c.req(json!({"op": "dlq_list"}))["result"].clone();
    assert_eq!(
        dl.as_array().unwrap().len(),
        1,
        "only R3's dead letter, kept: {dl}"
    );
    eprintln!("seed-swarm: R3 tried at +0, +{} ms, +{} ms, +{} ms (scaled 1/5), then approved; one report, one alert",
        tries[1] - tries[0], tries[2] - tries[0], tries[3] - tries[0]);
}
