//! Policies through the real binary, from config alone.

mod common;

use std::time::Duration;

use common::{wait_until_blocking, Sandbox};
use serde_json::json;

#[test]
fn two_echo_agents_in_a_loop_end_at_the_hop_budget() {
    let sb = Sandbox::new(
        r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["ping", "pong"]

[agent.ping]
kind = "echo"
to = ["pong"]
hop_budget = 6

[agent.pong]
kind = "echo"
to = ["ping"]
hop_budget = 6
"#,
    );
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let sent = c.req(json!({"id": 1, "op": "send", "to": "ping", "payload": {"loop": true}}));
    assert_eq!(sent["ok"], true);
    wait_until_blocking(
        "the loop ends in a dead letter",
        Duration::from_secs(20),
        || {
            sb.conn().req(json!({"id": 2, "op": "dlq_list"}))["result"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        },
    );
    let dlq = c.req(json!({"id": 3, "op": "dlq_list"}));
    let d = &dlq["result"][0];
    assert_eq!(d["reason"], "hop_budget_exhausted");
    assert_eq!(
        d["correlation"], "ping:1",
        "the whole loop is one correlation"
    );
    let stats = c.req(json!({"id": 4, "op": "stats"}))["result"].clone();
    let handled = stats["agents"]["ping"]["handled"].as_u64().unwrap()
        + stats["agents"]["pong"]["handled"].as_u64().unwrap();
    assert_eq!(handled, 7, "hops 0..=6 handled, the 7th hop dead-lettered");
}
