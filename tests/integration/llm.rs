//! `llm` agents through the real binary against the real `warden fake-llm`
//! (another process, HTTP on 127.0.0.1): answers, json mode, usage against token
//! limiters, and the error mapping under injected faults.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fake_llm::Fake;
use crate::common::{json_lines, wait_until_blocking, Conn, Sandbox};

const T: Duration = Duration::from_secs(30);

fn fake(sb: &Sandbox, script: &str) -> Fake {
    Fake::start(sb, script)
}

fn config(addr: &str, agents: &str) -> String {
    format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[limits.openai]
requests_per_minute = 600
burst = 5
tokens_per_minute = 100000

[supervisor.root]
children = ["out", {names}]

[agent.out]
kind = "sink"
path = "{{dir}}/out.jsonl"
{agents}
"#,
        names = agents
            .lines()
            .filter_map(|l| l.strip_prefix("[agent.").and_then(|r| r.strip_suffix(']')))
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", "),
    )
    .replace("BASE", &format!("http://{addr}/v1"))
}

fn agent(name: &str, extra: &str) -> String {
    format!(
        r#"
[agent.{name}]
kind = "llm"
base_url = "BASE"
model = "fake-1"
api_key_env = "FAKE_KEY"
limits = ["openai"]
to = ["out"]
max_attempts = 8
backoff = {{ initial = "10ms", max = "20ms" }}
{extra}
"#
    )
}

fn start(sb: &Sandbox, text: &str) -> crate::common::Daemon {
    std::fs::write(
        sb.config(),
        text.replace("{dir}", sb.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let log = std::fs::File::create(sb.path("daemon.log")).unwrap();
    let child = Command::new(crate::common::warden_bin())
        .args(["run", "--config"])
        .arg(sb.config())
        .current_dir(sb.dir.path())
        .env_remove("RUST_LOG")
        .env("FAKE_KEY", "sk-fake-key-never-logged")
        .stderr(log)
        .spawn()
        .unwrap();
    let d = crate::common::Daemon {
        child,
        log: sb.path("daemon.log"),
    };
    d.wait_for_log("warden started", T);
    d
}

fn dead(c: &mut Conn, agent: &str) -> Vec<Value> {
    crate::common::dead_letters(c, agent)
}

#[test]
fn an_llm_agent_answers_from_the_model_in_text_and_json_and_reports_usage() {
    let sb = Sandbox::new("");
    let f = fake(
        &sb,
        r#"
[[rule]]
user = "plan"
system = "planner"
json = { steps = ["design", "build"] }

[[rule]]
user = "hello"
reply = "hi there"
"#,
    );
    let agents = agent("chat", "system = \"be brief\"")
        + &agent(
            "planner",
            "system = \"you are the planner\"\nresponse_format = \"json\"\ninclude_input = true",
        );
    let d = start(&sb, &config(&f.addr, &agents));
    let mut c = sb.conn();
    let r = c.req(json!({"op": "call", "to": "chat", "payload": "hello"}));
    let reply = &r["result"]["reply"];
    assert_eq!(reply["content"], "hi there", "{r}");
    assert_eq!(reply["finish_reason"], "stop");
    assert!(
        reply.get("input").is_none(),
        "no input unless asked: {reply}"
    );
    let total = reply["usage"]["total_tokens"].as_u64().unwrap();
    assert!(total > 0);
    let r = c.req(json!({"op": "call", "to": "planner", "payload": {"prompt": "plan a house"}}));
    assert_eq!(
        r["result"]["reply"]["json"]["steps"],
        json!(["design", "build"]),
        "{r}"
    );
    assert_eq!(
        r["result"]["reply"]["input"],
        json!({"prompt": "plan a house"}),
        "include_input: what was asked goes on with the answer"
    );
    wait_until_blocking("emitted to out", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 2
    });
    // the request: model, messages (system first), max_tokens, json mode, the key
    let reqs = json_lines(&sb.path("llm.jsonl"));
    let planner = &reqs[1]["body"];
    assert_eq!(
        planner["messages"][0],
        json!({"role": "system", "content": "you are the planner"})
    );
    assert_eq!(
        planner["messages"][1],
        json!({"role": "user", "content": "plan a house"})
    );
    assert_eq!(planner["response_format"]["type"], "json_object");
    assert_eq!(planner["max_tokens"], 1024);
    assert_eq!(reqs[1]["headers"]["authorization"], "<redacted>");
    assert!(reqs[1]["headers"]["idempotency-key"].is_string());
    // usage is reported against the token limiter
    let lim = c.req(json!({"op": "stats"}))["result"]["limits"]["openai"].clone();
    assert_eq!(lim["permits"], 2, "{lim}");
    assert!(
        lim["tokens"].as_u64().unwrap() >= 2 * 1024,
        "the estimate was taken: {lim}"
    );
    assert!(!d.log_text().contains("sk-fake-key-never-logged"));
}

#[test]
fn a_429_window_pauses_every_sharer_and_costs_no_attempt() {
    let sb = Sandbox::new("");
    let f = fake(
        &sb,
        r#"
[faults]
window_429 = ["0s", "1500ms"]
retry_after = "2"
"#,
    );
    let agents = agent("a1", "") + &agent("a2", "") + &agent("a3", "");
    let _d = start(&sb, &config(&f.addr, &agents));
    let mut c = sb.conn();
    let n = 5;
    for i in 0..n {
        for a in ["a1", "a2", "a3"] {
            let r = c.req(json!({"op": "send", "to": a, "payload": format!("task {i}")}));
            assert_eq!(r["ok"], true);
        }
    }
    wait_until_blocking("all handled", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 3 * n
    });
    for a in ["a1", "a2", "a3"] {
        assert!(dead(&mut c, a).is_empty(), "{a}: nothing dead-lettered");
    }
    let out = json_lines(&sb.path("out.jsonl"));
    assert!(
        out.iter().all(|l| l["attempt"] == 1),
        "429s consumed no attempt"
    );
    // no request reached the provider inside a pause: after the first 429 at t,
    // nothing until t + 2 s (the three agents share the limiter), but for the
    // requests already on their way when that 429 was answered (within 50 ms)
    let reqs = json_lines(&sb.path("llm.jsonl"));
    let times: Vec<u64> = reqs
        .iter()
        .map(|r| r["time_ms"].as_u64().unwrap())
        .collect();
    let first_429 = times[0];
    let after: Vec<&u64> = times.iter().filter(|t| **t > first_429 + 50).collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|t| **t >= first_429 + 1990),
        "a request inside the pause: first 429 at {first_429}, then {after:?}"
    );
    let lim = c.req(json!({"op": "stats"}))["result"]["limits"]["openai"].clone();
    assert!(lim["pauses"].as_u64().unwrap() >= 1, "{lim}");
    // and the shared quota held: 600 a minute (10 a second) + a burst of 5, in
    // any second (a request counts when it reached the provider)
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count();
        assert!(
            in_window <= 10 + 5 + 1,
            "{in_window} requests within 1 s of {t}: {times:?}"
        );
    }
}

#[test]
fn quota_and_client_errors_dead_letter_at_once_server_errors_and_bad_json_are_retried() {
    let sb = Sandbox::new("");
    // insufficient_quota: every request
    let f = fake(&sb, "[faults]\ninsufficient_quota = true\n");
    let _d = start(&sb, &config(&f.addr, &agent("q", "")));
    let mut c = sb.conn();
    c.req(json!({"op": "send", "to": "q", "payload": "x"}));
    wait_until_blocking("dead-lettered", T, || dead(&mut c, "q").len() == 1);
    let dl = &dead(&mut c, "q")[0];
    assert_eq!(dl["reason"], "non_retryable", "{dl}");
    assert_eq!(dl["attempts"], 1);
    assert!(dl["last_error"]
        .as_str()
        .unwrap()
        .contains("insufficient_quota"));
    drop((_d, f, c));

    let sb = Sandbox::new("");
    let f = fake(
        &sb,
        r#"
seed = 3
[faults]
rate_5xx = 0.4
invalid_json = 0.4

[[rule]]
user = "forbidden"
status = 400
"#,
    );
    let _d = start(
        &sb,
        &config(
            &f.addr,
            &(agent("j", "response_format = \"json\"") + &agent("b", "")),
        ),
    );
    let mut c = sb.conn();
    c.req(json!({"op": "send", "to": "b", "payload": "forbidden topic"}));
    for i in 0..10 {
        c.req(json!({"op": "send", "to": "j", "payload": format!("item {i}")}));
    }
    wait_until_blocking("10 answers", T, || {
        json_lines(&sb.path("out.jsonl"))
            .iter()
            .filter(|l| l["payload"]["json"].is_object())
            .count()
            == 10
    });
    assert!(
        dead(&mut c, "j").is_empty(),
        "5xx and broken JSON are retried"
    );
    let stats = c.req(json!({"op": "stats"}))["result"]["agents"]["j"].clone();
    assert!(
        stats["failed_attempts"].as_u64().unwrap() > 0,
        "faults were injected: {stats}"
    );
    wait_until_blocking("400 dead-lettered", T, || dead(&mut c, "b").len() == 1);
    assert_eq!(dead(&mut c, "b")[0]["attempts"], 1);
}

/// The fake model's script used by the demo tree is valid, and a bad script is
/// refused naming what is wrong.
#[test]
fn fake_llm_scripts_are_checked() {
    let ok = crate::common::warden_bin();
    let sb = Sandbox::new("");
    std::fs::write(sb.path("bad.toml"), "[faults]\nrate_429 = 2\n").unwrap();
    let out = Command::new(&ok)
        .args(["fake-llm", "--listen", "127.0.0.1:0", "--script"])
        .arg(sb.path("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate_429 must be between 0 and 1"));
    let demo = format!(
        "{}/config/examples/fake-llm.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(demo).unwrap();
    let f = fake(&sb, &text);
    assert!(f.addr.starts_with("127.0.0.1:"));
}

/// An answer saying the request quota is used up (`x-ratelimit-remaining-requests:
/// 0`) pauses the limiter until its reset, before any request is refused; and a
/// `tokens_per_minute` limiter holds calls to what a minute allows, counting the
/// estimate before and the reported usage after.
#[test]
fn exhausted_quotas_pause_and_token_budgets_hold() {
    let sb = Sandbox::new("");
    let f = fake(
        &sb,
        "[faults]\nexhaust_every = 2\nquota_reset = \"1500ms\"\n",
    );
    let _d = start(&sb, &config(&f.addr, &agent("m", "")));
    let mut c = sb.conn();
    for i in 0..4 {
        c.req(json!({"op": "send", "to": "m", "payload": format!("q {i}")}));
    }
    wait_until_blocking("4 answers", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 4
    });
    let times: Vec<u64> = json_lines(&sb.path("llm.jsonl"))
        .iter()
        .map(|r| r["time_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times[2] >= times[1] + 1490,
        "paused after the 2nd: {times:?}"
    );
    assert_eq!(
        c.req(json!({"op": "stats"}))["result"]["limits"]["openai"]["pauses"],
        2
    );
    assert!(
        json_lines(&sb.path("llm.jsonl")).len() == 4,
        "no request was refused"
    );
    drop((_d, f, c));

    // 600 tokens a minute, each call estimated at its prompt / 4 + 100: the
    // fifth or sixth waits for the bucket
    let sb = Sandbox::new("");
    let f = fake(&sb, "");
    let text = config(&f.addr, &agent("t", "max_tokens = 100"))
        .replace("tokens_per_minute = 100000", "tokens_per_minute = 600");
    let _d = start(&sb, &text);
    let mut c = sb.conn();
    for i in 0..8 {
        c.req(json!({"op": "send", "to": "t", "payload": format!("t {i}")}));
    }
    wait_until_blocking("a call waits for tokens", T, || {
        c.req(json!({"op": "stats"}))["result"]["limits"]["openai"]["waiting"] == 1
    });
    let handled = json_lines(&sb.path("out.jsonl")).len();
    assert!((4..=6).contains(&handled), "{handled} calls fit 600 tokens");
    let lim = c.req(json!({"op": "stats"}))["result"]["limits"]["openai"].clone();
    assert!(lim["tokens"].as_u64().unwrap() <= 600, "{lim}");
}
