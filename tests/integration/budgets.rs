//! Budgets and spend through the real binary against the real `warden
//! fake-llm`: a loop of two `llm` agents stops at its correlation's token
//! budget, across a daemon SIGKILL, and what `ctl spend` and the metrics say
//! equals what the provider reported.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::common::fake_llm::Fake;
use crate::common::{free_port, json_lines, scrape_metrics, wait_until_blocking, Conn, Sandbox};

const T: Duration = Duration::from_secs(60);

fn config(addr: &str, port: u16) -> String {
    let agent = |name: &str, to: &str| {
        format!(
            r#"
[agent.{name}]
kind = "llm"
base_url = "http://{addr}/v1"
model = "fake-1"
system = "you are the {name}"
to = ["{to}"]
limits = ["model"]
hop_budget = 100000
tell_budget = true
"#
        )
    };
    format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[telemetry]
metrics_listen = "127.0.0.1:{port}"

[prices."fake-1"]
input = 1.0
output = 2.0

[limits.model]
requests_per_second = 1000
burst = 100

[supervisor.root]
children = ["writer", "critic"]
{}{}"#,
        agent("writer", "critic"),
        agent("critic", "writer")
    )
}

fn spend(c: &mut Conn, by: &str) -> Vec<Value> {
    let r = c.req(json!({"op": "spend", "by": by}));
    assert_eq!(r["ok"], true, "{r}");
    r["result"]["rows"].as_array().cloned().unwrap_or_default()
}

fn row<'a>(rows: &'a [Value], by: &str, name: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r[by] == name)
}

fn tokens_of(c: &mut Conn, correlation: &str) -> u64 {
    row(&spend(c, "correlation"), "correlation", correlation)
        .and_then(|r| r["tokens"].as_u64())
        .unwrap_or(0)
}

fn dead(c: &mut Conn, agent: &str) -> Vec<Value> {
    crate::common::dead_letters(c, agent)
}

#[test]
fn a_loop_of_two_llm_agents_stops_at_its_token_budget_across_a_sigkill() {
    let sb = Sandbox::new("");
    // one answer for everything: each call costs about the same
    let fake = Fake::start(&sb, "[[rule]]\nreply = \"once more, with feeling\"\n");
    let port = free_port();
    std::fs::write(
        sb.config(),
        config(&fake.addr, port).replace("{dir}", sb.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let mut d = sb.start_ready();
    let out = sb.ctl(&[
        "send",
        "writer",
        r#"{"prompt":"write a poem"}"#,
        "--correlation",
        "poem",
        "--budget-tokens",
        "10000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = sb.conn();
    wait_until_blocking("a third of the budget spent", T, || {
        tokens_of(&mut c, "poem") >= 3500
    });
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let before = json_lines(&sb.path("llm.jsonl")).len();
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let after_restart = tokens_of(&mut c, "poem");
    // (the count read before the kill may include the one hand-off then being
    // committed, which the kill undid: ~50 tokens)
    assert!(
        after_restart >= 3400,
        "spend survives the SIGKILL: {after_restart}"
    );
    wait_until_blocking("the loop dead-lettered at its budget", T, || {
        dead(&mut c, "writer").len() + dead(&mut c, "critic").len() == 1
    });
    let letter = [dead(&mut c, "writer"), dead(&mut c, "critic")].concat()[0].clone();
    assert_eq!(letter["reason"], "budget_exhausted", "{letter}");
    assert!(
        letter["last_error"].as_str().unwrap().contains("10000"),
        "{letter}"
    );
    // what the provider reported, call by call
    let calls = json_lines(&sb.path("llm.jsonl"));
    assert!(calls.len() > before, "the loop went on after the restart");
    let usage: Vec<(u64, u64)> = calls
        .iter()
        .map(|l| {
            let u = &l["usage"];
            (
                u["prompt_tokens"].as_u64().expect("usage reported"),
                u["completion_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    let reported: u64 = usage.iter().map(|(i, o)| i + o).sum();
    let largest = usage.iter().map(|(i, o)| i + o).max().unwrap();
    let spent = tokens_of(&mut c, "poem");
    println!(
        "{} calls, {reported} tokens reported, {spent} counted, largest call {largest}",
        calls.len()
    );
    // stopped at the budget, within one message's usage of it
    assert!(
        (10_000..10_000 + largest).contains(&spent),
        "spent {spent} of 10000"
    );
    // not reset by the SIGKILL (the loop would have spent ~3,500 more) nor counted
    // twice: the ledger has every call but the one the SIGKILL cut off, whose
    // response never reached a commit
    assert!(
        spent <= reported && reported <= spent + largest,
        "counted {spent}, reported {reported}"
    );
    // the model was told what was left, and asked for no longer an answer
    let told: Vec<(u64, u64)> = calls
        .iter()
        .map(|l| {
            let note = l["body"]["messages"][1]["content"].as_str().unwrap_or("");
            let left = note
                .strip_prefix("This task's remaining budget: ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("the budget note after the system prompt: {l}"));
            (left, l["body"]["max_tokens"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(told[0], (10_000, 1024), "the first call: the whole budget");
    assert!(
        told.iter().all(|(left, max)| *max == (*left).min(1024)),
        "max_tokens never above what is left: {told:?}"
    );
    assert!(told.iter().any(|(_, max)| *max < 1024), "{told:?}");
    // nothing of the task is left to handle
    let stats = c.req(json!({"op": "stats"}))["result"]["agents"].clone();
    for a in ["writer", "critic"] {
        assert_eq!(stats[a]["pending"], 0, "{stats}");
        assert_eq!(stats[a]["in_flight"], 0, "{stats}");
    }
    // by agent and by model: the same totals; cost by the price table
    let by_agent = spend(&mut c, "agent");
    let agents_total: u64 = by_agent.iter().map(|r| r["tokens"].as_u64().unwrap()).sum();
    assert_eq!(agents_total, spent);
    let by_model = spend(&mut c, "model");
    let model = row(&by_model, "model", "fake-1").expect("spend by model");
    assert_eq!(model["tokens"].as_u64().unwrap(), agents_total);
    let cost = model["cost"].as_f64().unwrap();
    let (input, output) = (
        model["input_tokens"].as_u64().unwrap(),
        model["output_tokens"].as_u64().unwrap(),
    );
    assert_eq!(input + output, agents_total);
    assert!(
        (cost - (input as f64 + 2.0 * output as f64) / 1e6).abs() < 1e-9,
        "cost {cost} for {input} in, {output} out"
    );
    // over the last hour: all of it (by the hour)
    let r = c.req(json!({"op": "spend", "by": "agent", "since": "1h"}));
    let windowed: u64 = r["result"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(windowed, agents_total, "{r}");
    let out = sb.ctl(&["spend", "--by", "model"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("fake-1")
            && text.contains(&format!("total: {agents_total} tokens")),
        "{text}"
    );
    // the metrics say the same
    let m = scrape_metrics(port);
    let metric = |agent: &str| -> u64 {
        let prefix = format!("warden_tokens_total{{agent=\"{agent}\",model=\"fake-1\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{prefix} in:\n{m}")) as u64
    };
    let writer = row(&by_agent, "agent", "writer").unwrap()["tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(metric("writer"), writer);
    assert_eq!(metric("writer") + metric("critic"), agents_total);
    assert!(m.contains("warden_cost_total{agent=\"writer\",model=\"fake-1\"}"));
}

/// A port sees what its task may still spend (`deliver` params `budget`), its
/// reported `usage` is spend (priced), the entry agent's `budget_tokens` starts
/// each new task's budget, and bad budgets are refused with the reason.
#[test]
fn ports_see_the_budget_left_and_report_usage() {
    let sb = Sandbox::new(&format!(
        "{}budget_tokens = 500\n\n[prices.m]\ninput = 3.0\noutput = 5.0\n",
        crate::ports::config("")
    ));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let usage = json!({"model": "m", "input_tokens": 300, "output_tokens": 100});
    let call = |c: &mut Conn, correlation: &str| {
        let r = c.req(
            json!({"op": "call", "to": "worker", "correlation": correlation,
            "payload": {"usage": usage}}),
        );
        assert_eq!(r["ok"], true, "{r}");
        r["result"]["reply"]["budget"].clone()
    };
    // without a correlation (the message's id is its task), the first handling
    // already sees the budget: it is recorded with the accept
    let r = c.req(json!({"op": "call", "to": "worker", "payload": {}}));
    assert_eq!(
        r["result"]["reply"]["budget"],
        json!({"tokens": 500, "cost": null}),
        "{r}"
    );
    assert_eq!(call(&mut c, "t1"), json!({"tokens": 500, "cost": null}));
    assert_eq!(call(&mut c, "t1"), json!({"tokens": 100, "cost": null}));
    // spent: the third is not handled
    let r = c.req(json!({"op": "send", "to": "worker", "correlation": "t1",
        "payload": {"usage": usage}}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("dead-lettered", T, || !dead(&mut c, "worker").is_empty());
    assert_eq!(dead(&mut c, "worker")[0]["reason"], "budget_exhausted");
    // replayed as it is: refused again at once
    let r = c.req(json!({"op": "dlq_replay", "agent": "worker", "all": true}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("dead-lettered again", T, || {
        dead(&mut c, "worker").len() == 1
    });
    // a person raises the task's budget, without a message, and replays it
    let out = sb.ctl(&["budget", "t1", "--tokens", "1300"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("budget 1300 tokens; spent 800 tokens"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = c.req(json!({"op": "dlq_replay", "agent": "worker", "all": true}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("handled within the new budget", T, || {
        c.req(json!({"op": "budget", "correlation": "t1"}))["result"]["spent"]["tokens"] == 1200
    });
    assert!(dead(&mut c, "worker").is_empty());
    let r = c.req(json!({"op": "budget", "correlation": "t1"}));
    assert_eq!(
        r["result"]["remaining"],
        json!({"tokens": 100, "cost": null}),
        "{r}"
    );
    // another task has its own budget; the sender's replaces the agent's
    let r = c.req(
        json!({"op": "call", "to": "worker", "correlation": "t2", "budget_tokens": 2000,
        "payload": {}}),
    );
    assert_eq!(
        r["result"]["reply"]["budget"],
        json!({"tokens": 2000, "cost": null}),
        "{r}"
    );
    let rows = spend(&mut c, "correlation");
    let t1 = row(&rows, "correlation", "t1").expect("t1's spend");
    assert_eq!(t1["tokens"], 1200);
    assert_eq!(t1["budget"]["tokens"], 1300);
    let m = spend(&mut c, "model");
    let cost = row(&m, "model", "m").unwrap()["cost"].as_f64().unwrap();
    assert!(
        (cost - (900.0 * 3.0 + 300.0 * 5.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    for (fields, says) in [
        (json!({"budget_tokens": 0}), "budget_tokens is 0"),
        (json!({"budget_cost": -1.0}), "budget_cost is -1"),
        (
            json!({"budget_tokens": 5, "delay": "1s", "budget_cost": 0.0}),
            "budget_cost is 0",
        ),
    ] {
        let mut req = json!({"op": "send", "to": "worker", "payload": {}});
        for (k, v) in fields.as_object().unwrap() {
            req[k] = v.clone();
        }
        let r = c.req(req);
        assert_eq!(r["ok"], false, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap_or("").contains(says),
            "{says}: {r}"
        );
    }
    // a delayed send's budget is the task's once it is enqueued
    let r = c.req(
        json!({"op": "send", "to": "worker", "correlation": "t3", "delay": "100ms",
        "budget_tokens": 50, "payload": {"usage": usage}}),
    );
    assert!(r["result"]["delayed"].is_u64(), "{r}");
    wait_until_blocking("the delayed task handled", T, || {
        c.req(json!({"op": "budget", "correlation": "t3"}))["result"]["spent"]["tokens"] == 400
    });
    let r = c.req(json!({"op": "budget", "correlation": "t3"}));
    assert_eq!(
        r["result"]["budget"],
        json!({"tokens": 50, "cost": null}),
        "{r}"
    );
    // and its deadline counts from the enqueue (the agent is stopped, so it waits)
    let out = sb.ctl(&["stop", "worker"]);
    assert!(out.status.success());
    let r = c.req(
        json!({"op": "send", "to": "worker", "correlation": "t4", "delay": "300ms",
        "deadline": "1h", "payload": {}}),
    );
    assert!(r["result"]["delayed"].is_u64(), "{r}");
    let mut queued = Value::Null;
    wait_until_blocking("enqueued when due", T, || {
        queued =
            c.req(json!({"op": "mailbox", "agent": "worker"}))["result"]["messages"][0].clone();
        !queued.is_null()
    });
    let (deadline, enqueued) = (
        queued["deadline_ms"].as_u64().unwrap(),
        queued["enqueued_ms"].as_u64().unwrap(),
    );
    assert_eq!(queued["correlation"], "t4", "{queued}");
    assert!(
        deadline >= enqueued + 3_600_000 - 100 && deadline <= enqueued + 3_600_000 + 100,
        "an hour from the enqueue: {queued}"
    );
    let r = c.req(json!({"op": "spend", "by": "team"}));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("group by"),
        "{r}"
    );
}

/// A limiter's daily budget, spent by one sharer, holds the others, says so in
/// `stats`, and is still spent after a SIGKILL (the day's spend is in the store).
#[test]
fn a_spent_daily_budget_holds_every_sharer_across_a_sigkill() {
    let sb = Sandbox::new(&format!(
        "{}limits = [\"daily\"]\n\n[limits.daily]\ntokens_per_day = 500\n",
        crate::ports::config("")
    ));
    let mut d = sb.start_ready();
    let mut c = sb.conn();
    let usage = json!({"model": "m", "input_tokens": 400, "output_tokens": 200});
    let r = c.req(json!({"op": "call", "to": "worker", "payload": {"usage": usage}}));
    assert_eq!(r["ok"], true, "{r}");
    let today = |c: &mut Conn| c.req(json!({"op": "stats"}))["result"]["limits"]["daily"].clone();
    let t = today(&mut c);
    assert_eq!(t["today"]["tokens"], 600, "{t}");
    assert_eq!(t["today"]["budget_spent"], true, "{t}");
    assert!(
        t["today"]["resumes_in_ms"].as_u64().unwrap() <= 86_400_000,
        "{t}"
    );
    assert!(t["paused_for_ms"].as_u64().unwrap() > 0, "{t}");
    // the next message waits for its permit (not an attempt, not dead-lettered)
    let r = c.req(json!({"op": "send", "to": "worker", "payload": {"n": 2}}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("the sharer waits", T, || today(&mut c)["waiting"] == 1);
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let t = today(&mut c);
    assert_eq!(t["today"]["tokens"], 600, "kept across the SIGKILL: {t}");
    assert_eq!(t["today"]["budget_spent"], true, "{t}");
    wait_until_blocking("the sharer waits again", T, || {
        today(&mut c)["waiting"] == 1
    });
    let w = c.req(json!({"op": "stats"}))["result"]["agents"]["worker"].clone();
    assert_eq!(w["handled"], 0, "nothing handled: {w}");
    assert_eq!(
        w["pending"].as_u64().unwrap() + w["in_flight"].as_u64().unwrap(),
        1,
        "the message is kept: {w}"
    );
    assert!(dead(&mut c, "worker").is_empty());
}
