//! seed-departments (SYSTEMS.md 3). Fault: one poison event that crashes the
//! finance tool every time, and the webhook endpoint refusing connections for
//! 20 s. Outcome: the poison dead-lettered after its attempts with the exit
//! reason, everything else flows, the webhook breaker opens and closes, nothing
//! lost; each report covers every event accepted before it.
//!
//! The example's daily (cron) and hourly timers run every 2 and 3 s here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::fake_llm::{example, example_config, Fake};
use crate::common::{json_lines, wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(60);
const SEGMENTS: [&str; 4] = ["retail", "smb", "enterprise", "public"];
const TOPICS: [&str; 4] = ["sales", "support", "billing", "legal"];
/// The event that crashes the finance tool.
const POISON: u64 = 37;
/// How long the webhook endpoint refuses connections.
const OUTAGE: Duration = Duration::from_secs(20);

fn event(i: u64) -> Value {
    let (s, t) = (SEGMENTS[(i % 4) as usize], TOPICS[((i / 4) % 4) as usize]);
    let amount = if i == POISON {
        json!("NaN")
    } else {
        json!(i as f64 + 0.5)
    };
    json!({"segment": s, "topic": t, "amount": amount, "text": format!("case {i}")})
}

#[test]
fn a_poison_event_and_a_webhook_outage_lose_nothing_and_every_report_covers_what_came_before() {
    let sb = Sandbox::new("");
    let model = Fake::start(&sb, &example("seed-departments.llm.toml"));
    let hook = Fake::start_as(&sb, "hook", "", "127.0.0.1:0");
    let hook_addr = hook.addr.clone();
    let config = example_config(&sb, "seed-departments.toml", "var/departments", &model.addr)
        .replace("127.0.0.1:8098", &hook_addr)
        .replace("cron = \"0 6 * * *\"", "every = \"2s\"")
        .replace("every = \"1h\"", "every = \"3s\"");
    std::fs::write(sb.config(), config).unwrap();
    let _d = sb.start_ready();
    let mut c = sb.conn();
    // 100 events at 10/s; the webhook endpoint goes away after the first 20
    let n: u64 = 100;
    let mut outage = None;
    let mut hook = Some(hook);
    let mut ticker = Instant::now();
    for i in 1..=n {
        let r = c.req(json!({"op": "send", "to": "desk", "payload": event(i),
            "correlation": format!("ev-{i}"), "key": format!("ev-{i}")}));
        assert_eq!(r["ok"], true, "{r}");
        if i == 20 {
            hook.take().unwrap().stop();
            outage = Some(Instant::now());
        }
        ticker += Duration::from_millis(100);
        if let Some(left) = ticker.checked_duration_since(Instant::now()) {
            std::thread::sleep(left); // the senders' pace, not a wait for the daemon
        }
    }
    // while it is away the breaker opens
    wait_until_blocking("the webhook breaker open", T, || {
        c.req(json!({"op": "stats"}))["result"]["agents"]["workflow"]["breaker"]["state"] == "open"
    });
    let left = OUTAGE.saturating_sub(outage.unwrap().elapsed());
    std::thread::sleep(left); // the outage's length is the fault itself
    let _hook = Fake::start_as(&sb, "hook", "", &hook_addr);

    // everything else flows: booked once each, the poison a dead letter
    let ledger = sb.path("data/ledger.jsonl");
    wait_until_blocking("every other event booked", T, || {
        json_lines(&ledger).len() as u64 == n - 1
    });
    let booked: BTreeSet<u64> = json_lines(&ledger)
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(booked, (1..=n).filter(|&i| i != POISON).collect());
    let dl = c.req(json!({"op": "dlq_list"}))["result"].clone();
    assert_eq!(dl.as_array().unwrap().len(), 1, "only the poison: {dl}");
    assert_eq!(dl[0]["agent"], "finance");
    assert_eq!(dl[0]["correlation"], format!("ev-{POISON}"));
    assert_eq!(dl[0]["attempts"], 3, "{dl}");
    let why = dl[0]["last_error"].as_str().unwrap();
    assert!(
        why.contains("exit") && why.contains("is not a number"),
        "the exit reason and the tool's last words: {why}"
    );
    // the webhook: every booked event once, after the breaker closed again
    wait_until_blocking("every booking posted", T, || {
        json_lines(&sb.path("hook.jsonl")).len() as u64 == n - 1
    });
    let posted: BTreeMap<u64, usize> =
        json_lines(&sb.path("hook.jsonl"))
            .iter()
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r["body"]["payload"]["seq"].as_u64().unwrap())
                    .or_default() += 1;
                m
            });
    assert_eq!(posted.keys().copied().collect::<BTreeSet<u64>>(), booked);
    assert!(posted.values().all(|&k| k == 1), "once each: {posted:?}");
    let stats = c.req(json!({"op": "stats"}))["result"]["agents"].clone();
    let breaker = &stats["workflow"]["breaker"];
    assert!(breaker["trips"].as_u64().unwrap() >= 1, "{breaker}");
    assert_eq!(breaker["state"], "closed", "{breaker}");
    assert_eq!(
        stats["workflow"]["dead_letters"], 0,
        "nothing lost to the outage"
    );
    // who handled what: each booking names the persona of its segment and topic
    let audit = json_lines(&sb.path("data/audit.jsonl"));
    for l in &audit {
        let seq = l["payload"]["seq"].as_u64().unwrap();
        let e = event(seq);
        let persona = format!(
            "{}-{}",
            e["segment"].as_str().unwrap(),
            e["topic"].as_str().unwrap()
        );
        assert_eq!(l["payload"]["by"], persona.as_str(), "{l}");
        assert!(
            l["causation"].as_str().unwrap().starts_with("finance:"),
            "{l}"
        );
    }
    assert_eq!(audit.len() as u64, n - 1);
    // reports: each covers every event accepted before it was asked for
    let reports = sb.path("data/reports.jsonl");
    wait_until_blocking("a report that covers everything", T, || {
        json_lines(&reports)
            .iter()
            .any(|r| r["payload"]["upto"].as_u64() == Some(n))
    });
    let mut slowest = 0;
    for r in json_lines(&reports) {
        let p = &r["payload"];
        let upto = p["upto"].as_u64().unwrap();
        assert!(p["done_upto"].as_u64().unwrap() >= upto, "{p}");
        let failed: Vec<u64> = serde_json::from_value(p["failed"].clone()).unwrap();
        if upto >= POISON {
            assert_eq!(failed, [POISON], "the poison accounted as failed: {p}");
        }
        slowest = slowest.max(p["made_ms"].as_u64().unwrap() - p["at_ms"].as_u64().unwrap());
    }
    let names: BTreeSet<String> = json_lines(&reports)
        .iter()
        .map(|r| r["payload"]["report"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["daily", "hourly"].map(String::from).into());
    // latency, for the record (measured in benches, not asserted)
    let mut lat: Vec<u64> = json_lines(&ledger)
        .iter()
        .map(|l| l["booked_ms"].as_u64().unwrap() - l["accepted_ms"].as_u64().unwrap())
        .collect();
    lat.sort_unstable();
    eprintln!(
        "seed-departments: {} events booked, p50 {} ms, p95 {} ms (the outage does not hold bookings); {} reports, the slowest made {slowest} ms after it was asked; breaker trips {}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() * 95 / 100],
        json_lines(&reports).len(),
        breaker["trips"]
    );
}
