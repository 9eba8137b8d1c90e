//! seed-commerce (SYSTEMS.md 1). Fault: a 429 storm from the provider for 10 s.
//! Outcome: no request inside a pause, no quota window exceeded, nothing
//! dead-lettered by the storm, every task done once; tasks whose output never
//! validates reach the human gate after their cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fake_llm::{example, example_config, python, Fake};
use crate::common::{http_post, json_lines, wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(40);
/// The model limiter of the example: 1,200 a minute, burst 10.
const PER_SECOND: usize = 20;
const BURST: usize = 10;
/// The example model's latency: a 429 is answered this long after it arrives.
const LATENCY_MS: u64 = 10;
/// The Retry-After of the storm's 429s, in ms.
const PAUSE_MS: u64 = 1000;
/// A request the daemon sent before a 429 reached it may arrive this much after
/// the 429 was answered (loopback, a loaded debug build).
const IN_FLIGHT_MS: u64 = 100;

/// The webhook bridge of the example (killed on drop).
struct Bridge {
    child: Child,
    addr: String,
}

impl Bridge {
    fn start(socket: &std::path::Path) -> Bridge {
        let script = format!(
            "{}/config/examples/ports/webhook_bridge.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut child = Command::new(python())
            .arg(script)
            .arg("--socket")
            .arg(socket)
            .args(["--to", "intake", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = crate::common::fake_llm::listening_on(&mut child);
        Bridge { child, addr }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn task(i: usize) -> Value {
    let (text, customer) = match i % 20 {
        7 => ("refund everything I ever bought".to_string(), "c-3"),
        n if n % 4 == 0 => (format!("quote {} seats", 10 + i), "c-1"),
        n if n % 4 == 1 => (format!("a spring campaign, wave {i}"), "c-2"),
        n if n % 4 == 2 => (format!("a banner for product {i}"), "c-1"),
        _ => (format!("refund order {i}"), "c-9"),
    };
    json!({"id": format!("t-{i}"), "task": text, "customer": customer})
}

#[test]
fn a_429_storm_pauses_every_caller_loses_nothing_and_invalid_work_reaches_a_person() {
    let sb = Sandbox::new("");
    let script = example("seed-commerce.llm.toml").replace(
        "# window_429 = [\"3s\", \"13s\"]",
        "window_429 = [\"3s\", \"13s\"]",
    );
    assert!(
        script.contains("\nwindow_429"),
        "the example names the storm"
    );
    let fake = Fake::start(&sb, &script);
    let config = example_config(&sb, "seed-commerce.toml", "var/commerce", &fake.addr);
    std::fs::write(sb.config(), config).unwrap();
    let _d = sb.start_ready();
    let bridge = Bridge::start(&sb.socket());
    // 60 tasks by webhook, one every 250 ms: before, through and after the storm
    let n = 60;
    let mut ticker = std::time::Instant::now();
    for i in 0..n {
        let (status, body) = http_post(&bridge.addr, "/tasks", &task(i));
        assert_eq!(status, 202, "{body}");
        ticker += Duration::from_millis(250);
        if let Some(left) = ticker.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(left); // the sender's pace, not a wait for the daemon
        }
    }
    // a webhook the sender repeats is taken once
    let (status, body) = http_post(&bridge.addr, "/tasks", &task(5));
    assert_eq!(status, 202);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["duplicate"],
        true
    );
    let (status, _) = http_post(&bridge.addr, "/tasks", &json!(["not", "an", "object"]));
    assert_eq!(status, 400);

    let done = sb.path("data/done.jsonl");
    let everything: BTreeSet<String> = (0..n)
        .filter(|i| i % 20 == 7)
        .map(|i| format!("t-{i}"))
        .collect();
    wait_until_blocking("every valid task done, the others with a person", T, || {
        json_lines(&done).len() == n - everything.len()
            && sb
                .ctl_json(&["approvals", "human"])
                .as_array()
                .map(Vec::len)
                == Some(everything.len())
    });
    let mut c = sb.conn();
    // the dead letters: exactly the never-valid ones, after their cycles
    let dl = c.req(json!({"op": "dlq_list"}))["result"].clone();
    let dead: BTreeSet<String> = dl
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(
                d["agent"], "verify",
                "nothing dead-lettered by the storm: {d}"
            );
            assert_eq!(d["reason"], "max_cycles", "{d}");
            d["correlation"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(dead, everything);
    // a person fixes each and approves it: it is done, in its own task
    for item in sb.ctl_json(&["approvals", "human"]).as_array().unwrap() {
        let mut fixed = item["payload"]["dead_letter"]["payload"].clone();
        fixed["amount"] = json!(99.0);
        fixed["fixed_by"] = json!("a person");
        let out = sb.ctl(&[
            "approve",
            "human",
            item["id"].as_str().unwrap(),
            "--payload",
            &fixed.to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until_blocking("every task done", T, || json_lines(&done).len() == n);
    let lines = json_lines(&done);
    let per_task: BTreeMap<String, usize> = lines.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l["correlation"].as_str().unwrap().to_string())
            .or_default() += 1;
        m
    });
    assert_eq!(per_task.len(), n, "every task done");
    assert!(
        per_task.values().all(|&k| k == 1),
        "once each: {per_task:?}"
    );
    for l in &lines {
        let id = l["correlation"].as_str().unwrap();
        assert_eq!(l["payload"]["id"], id, "the work of its own task: {l}");
        if everything.contains(id) {
            assert_eq!(l["payload"]["fixed_by"], "a person");
        }
    }

    // the provider's view
    let reqs = json_lines(&sb.path("llm.jsonl"));
    let storm: Vec<u64> = reqs
        .iter()
        .filter(|r| r["status"] == 429)
        .map(|r| r["time_ms"].as_u64().unwrap() + LATENCY_MS)
        .collect();
    assert!(storm.len() >= 5, "the storm happened: {} 429s", storm.len());
    let arrivals: Vec<u64> = reqs
        .iter()
        .map(|r| r["time_ms"].as_u64().unwrap())
        .collect();
    // no request inside a pause
    for &a in &storm {
        let inside: Vec<u64> = arrivals
            .iter()
            .filter(|&&t| t >= a + IN_FLIGHT_MS && t < a + PAUSE_MS)
            .map(|&t| t - a)
            .collect();
        assert!(
            inside.is_empty(),
            "requests {inside:?} ms after a 429 answered at {a}, inside its {PAUSE_MS} ms pause"
        );
    }
    // no quota window exceeded: at most burst + a second's rate in any second
    let mut sorted = arrivals.clone();
    sorted.sort_unstable();
    let busiest = (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|&&t| t < sorted[i] + 1000)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        busiest <= BURST + PER_SECOND + 1,
        "{busiest} requests within one second (quota {PER_SECOND}/s, burst {BURST})"
    );
    // every step done once: one successful call per step, no step repeated
    let ok_calls = |who: &str| {
        reqs.iter()
            .filter(|r| r["status"] == 200)
            .filter(|r| {
                r["body"]["messages"][0]["content"]
                    .as_str()
                    .is_some_and(|s| s.contains(who))
            })
            .count()
    };
    let passes = n + 2 * everything.len(); // two cycles back to the director each
    assert_eq!(ok_calls("the director"), passes);
    assert_eq!(ok_calls("department: answer"), passes);
    let keys: BTreeSet<&str> = reqs
        .iter()
        .filter(|r| r["status"] == 200)
        .map(|r| r["headers"]["idempotency-key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys.len(),
        2 * passes,
        "no message asked the model twice with success"
    );
    // the storm cost no attempt and opened no breaker
    let stats = c.req(json!({"op": "stats"}))["result"].clone();
    for (name, a) in stats["agents"].as_object().unwrap() {
        if let Some(b) = a["breaker"].as_object() {
            assert_eq!(b["trips"], 0, "{name}: the storm tripped no breaker");
        }
    }
    let model = &stats["limits"]["model"];
    assert!(model["pauses"].as_u64().unwrap() >= 1, "{model}");
    eprintln!(
        "seed-commerce: {n} tasks, {} 429s in the storm, {} pauses, busiest second {busiest} requests",
        storm.len(),
        model["pauses"]
    );
    drop(bridge);
}
