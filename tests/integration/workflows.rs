//! Workflow kinds (issue 13) through the real binary: `router`.

use std::time::Duration;

use serde_json::json;

use crate::common::{json_lines, wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(20);

const ROUTERS: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["sales", "ops", "human", "reviser", "route", "review"]

[agent.route]
kind = "router"
field = "/dept"
routes = { sales = "sales", ops = "ops", "7" = "ops" }
to = []

[agent.review]
kind = "router"
field = "/verdict"
routes = { revise = "reviser" }
default = "sales"
max_cycles = 2
exhausted = "human"

[agent.reviser]
kind = "echo"
to = ["review"]

[agent.sales]
kind = "sink"
path = "{dir}/sales.jsonl"

[agent.ops]
kind = "sink"
path = "{dir}/ops.jsonl"

[agent.human]
kind = "sink"
path = "{dir}/human.jsonl"
"#;

#[test]
fn a_router_routes_by_a_field_and_dead_letters_what_it_cannot_route() {
    let sb = Sandbox::new(ROUTERS);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    for p in [
        json!({"dept": "sales", "n": 1}),
        json!({"dept": "ops", "n": 2}),
        json!({"dept": 7, "n": 3}),
    ] {
        assert_eq!(
            c.req(json!({"op": "send", "to": "route", "payload": p}))["ok"],
            true
        );
    }
    wait_until_blocking("routed", T, || {
        json_lines(&sb.path("sales.jsonl")).len() == 1
            && json_lines(&sb.path("ops.jsonl")).len() == 2
    });
    assert_eq!(
        json_lines(&sb.path("sales.jsonl"))[0]["payload"],
        json!({"dept": "sales", "n": 1}),
        "unchanged"
    );
    // no match, no default: no_route, with the value named
    c.req(json!({"op": "send", "to": "route", "payload": {"dept": "hr"}}));
    c.req(json!({"op": "send", "to": "route", "payload": {"other": 1}}));
    wait_until_blocking("dead-lettered", T, || {
        c.req(json!({"op": "dlq_list", "agent": "route"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let dl = c.req(json!({"op": "dlq_list", "agent": "route"}))["result"].clone();
    assert_eq!(dl[0]["reason"], "no_route");
    assert!(
        dl[0]["last_error"].as_str().unwrap().contains("\"hr\""),
        "{dl}"
    );
    assert_eq!(dl[0]["attempts"], 1);
    // routes are allowed though `to` is empty
    assert!(json_lines(&sb.path("ops.jsonl")).len() == 2);
}

#[test]
fn a_review_loop_ends_at_max_cycles_in_the_exhausted_queue_once_per_correlation() {
    let sb = Sandbox::new(ROUTERS);
    let mut d = sb.start_ready();
    let mut c = sb.conn();
    // always "revise": review -> reviser -> review ... the 3rd pass goes to human
    let r = c.req(json!({"op": "send", "to": "review", "payload": {"verdict": "revise", "doc": "v1"}, "correlation": "task-1"}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("exhausted", T, || {
        json_lines(&sb.path("human.jsonl")).len() == 1
    });
    let h = &json_lines(&sb.path("human.jsonl"))[0];
    assert_eq!(h["payload"]["cycles"], 3, "{h}");
    assert_eq!(h["payload"]["payload"]["doc"], "v1");
    assert_eq!(h["correlation"], "task-1");
    // another correlation has its own count; an approved one goes to the default
    c.req(json!({"op": "send", "to": "review", "payload": {"verdict": "ok"}, "correlation": "task-2"}));
    wait_until_blocking("approved", T, || {
        json_lines(&sb.path("sales.jsonl")).len() == 1
    });
    // the count is committed state: after a SIGKILL, task-1 is still exhausted
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    c.req(json!({"op": "send", "to": "review", "payload": {"verdict": "revise", "doc": "v2"}, "correlation": "task-1"}));
    wait_until_blocking("exhausted again at once", T, || {
        json_lines(&sb.path("human.jsonl")).len() == 2
    });
    assert_eq!(
        json_lines(&sb.path("human.jsonl"))[1]["payload"]["cycles"],
        4
    );
}

#[test]
fn router_configs_are_checked() {
    let bad = [
        ("field = \"dept\"", "is not a JSON pointer"),
        (
            "field = \"/d\"\nroutes = { a = \"nobody\" }",
            "no agent 'nobody'",
        ),
        ("field = \"/d\"\nexhausted = \"out\"", "needs max_cycles"),
        ("field = \"/d\"\ndefault = \"r\"", "names the router itself"),
    ];
    for (keys, needle) in bad {
        let (code, err) = crate::common::check(&format!(
            "[supervisor.root]\nchildren = [\"r\", \"out\"]\n[agent.out]\nkind = \"echo\"\n[agent.r]\nkind = \"router\"\n{keys}\n"
        ));
        assert_eq!(code, 2, "{keys}: {err}");
        assert!(err.contains(needle), "{keys}: {err}");
    }
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["steps"],
  "properties": {"steps": {"type": "array", "minItems": 1, "items": {"type": "string"}}}
}"#;

fn validate_tree(extra: &str) -> String {
    format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[supervisor.root]
children = ["next", "planner", "check"]

[agent.check]
kind = "validate"
schema = "{{dir}}/plan.json"
to = ["next"]
{extra}

[agent.planner]
kind = "sink"
path = "{{dir}}/planner.jsonl"

[agent.next]
kind = "sink"
path = "{{dir}}/next.jsonl"
"#
    )
}

#[test]
fn a_validator_passes_valid_work_on_and_sends_invalid_work_back_until_max_cycles() {
    let sb = Sandbox::new(&validate_tree("on_fail = \"planner\"\nmax_cycles = 2"));
    std::fs::write(sb.path("plan.json"), SCHEMA).unwrap();
    let _d = sb.start_ready();
    let mut c = sb.conn();
    c.req(json!({"op": "send", "to": "check", "payload": {"steps": ["a", "b"]}}));
    wait_until_blocking("passed on", T, || {
        json_lines(&sb.path("next.jsonl")).len() == 1
    });
    // invalid twice in one correlation: back to the planner with the errors
    for _ in 0..2 {
        c.req(json!({"op": "send", "to": "check", "payload": {"steps": []}, "correlation": "t-1"}));
    }
    wait_until_blocking("sent back twice", T, || {
        json_lines(&sb.path("planner.jsonl")).len() == 2
    });
    let back = &json_lines(&sb.path("planner.jsonl"))[0]["payload"];
    assert_eq!(back["input"], json!({"steps": []}));
    assert_eq!(back["errors"][0]["path"], "/steps", "{back}");
    // the third failure of t-1 is dead-lettered max_cycles
    c.req(json!({"op": "send", "to": "check", "payload": {"nope": 1}, "correlation": "t-1"}));
    wait_until_blocking("max_cycles", T, || {
        c.req(json!({"op": "dlq_list", "agent": "check"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let dl = c.req(json!({"op": "dlq_list", "agent": "check"}))["result"][0].clone();
    assert_eq!(dl["reason"], "max_cycles", "{dl}");
    assert_eq!(json_lines(&sb.path("planner.jsonl")).len(), 2);
}

#[test]
fn without_on_fail_invalid_work_is_dead_lettered_and_bad_schemas_are_config_errors() {
    let sb = Sandbox::new(&validate_tree(""));
    std::fs::write(sb.path("plan.json"), SCHEMA).unwrap();
    let _d = sb.start_ready();
    let mut c = sb.conn();
    c.req(json!({"op": "send", "to": "check", "payload": {"steps": "x"}}));
    wait_until_blocking("invalid", T, || {
        c.req(json!({"op": "dlq_list", "agent": "check"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let dl = c.req(json!({"op": "dlq_list", "agent": "check"}))["result"][0].clone();
    assert_eq!(dl["reason"], "invalid");
    assert!(
        dl["last_error"].as_str().unwrap().contains("/steps"),
        "{dl}"
    );
    // a schema that is not one: warden check names the file
    let sb = Sandbox::new(&validate_tree(""));
    std::fs::write(sb.path("plan.json"), r#"{"type": 12}"#).unwrap();
    let out = sb.run(&["check", "--config", "warden.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.check.schema")
            && err.contains("plan.json")
            && err.contains("not a valid JSON Schema"),
        "{err}"
    );
}

#[test]
fn an_approval_gate_holds_items_for_a_person_across_a_crash() {
    let sb = Sandbox::new(
        r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["publish", "gate"]

[agent.gate]
kind = "approve"
to = ["publish"]

[agent.publish]
kind = "sink"
path = "{dir}/publish.jsonl"
"#,
    );
    let mut d = sb.start_ready();
    let mut watch = sb.conn();
    watch.write_raw(b"{\"op\":\"watch\"}\n");
    let mut c = sb.conn();
    for doc in ["draft-1", "draft-2"] {
        let r = c.req(json!({"op": "send", "to": "gate", "payload": {"doc": doc}}));
        assert_eq!(r["ok"], true);
    }
    // a watch event for each waiting item
    let mut waiting = 0;
    while waiting < 2 {
        let e = watch.read()["event"].clone();
        if e["event"] == "approval_waiting" {
            assert_eq!(e["name"], "gate", "{e}");
            waiting += 1;
        }
    }
    let items = sb.ctl_json(&["approvals"]);
    assert_eq!(items.as_array().unwrap().len(), 2, "{items}");
    let (id1, id2) = (
        items[0]["id"].as_str().unwrap().to_string(),
        items[1]["id"].as_str().unwrap().to_string(),
    );
    // pending items survive a SIGKILL: they are committed state
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let _d = sb.start_ready();
    assert_eq!(
        sb.ctl_json(&["approvals", "gate"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // approve the first with a fixed payload; it goes on once
    let out = sb.ctl(&["approve", "gate", &id1, "--payload", "{\"doc\":\"fixed\"}"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_blocking("published", T, || {
        json_lines(&sb.path("publish.jsonl")).len() == 1
    });
    assert_eq!(
        json_lines(&sb.path("publish.jsonl"))[0]["payload"],
        json!({"doc": "fixed"})
    );
    // deciding it again: not found
    let out = sb.ctl(&["approve", "gate", &id1]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pending item"));
    // reject the second: no on_reject, so a dead letter `rejected` holding it
    let out = sb.ctl(&["reject", "gate", &id2, "--reason", "off topic"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = sb.conn();
    wait_until_blocking("rejected", T, || {
        c.req(json!({"op": "dlq_list", "agent": "gate"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let dl = c.req(json!({"op": "dlq_list", "agent": "gate"}))["result"][0].clone();
    assert_eq!(dl["reason"], "rejected", "{dl}");
    assert!(dl["last_error"].as_str().unwrap().contains("off topic"));
    assert_eq!(dl["payload"]["__rejected"]["payload"]["doc"], "draft-2");
    assert!(sb.ctl_json(&["approvals"]).as_array().unwrap().is_empty());
    assert_eq!(json_lines(&sb.path("publish.jsonl")).len(), 1);
}

const TIMER: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["out", "tick"]

[agent.tick]
kind = "timer"
every = "400ms"
payload = { job = "report" }
to = ["out"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
"#;

fn ticks(sb: &Sandbox) -> Vec<(u64, u64)> {
    json_lines(&sb.path("out.jsonl"))
        .iter()
        .map(|l| {
            (
                l["payload"]["tick"].as_u64().unwrap(),
                l["payload"]["scheduled_ms"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_timer_ticks_on_schedule_once_each_across_crashes_with_one_catch_up() {
    let sb = Sandbox::new(TIMER);
    let mut d = sb.start_ready();
    wait_until_blocking("3 ticks", T, || ticks(&sb).len() >= 3);
    let t = ticks(&sb);
    assert_eq!(
        json_lines(&sb.path("out.jsonl"))[0]["payload"]["payload"]["job"],
        "report"
    );
    assert_eq!(t[1].1 - t[0].1, 400, "on schedule: {t:?}");
    assert_eq!((t[0].0, t[1].0), (1, 2));
    // SIGKILL; down for ~1.5 s (3 periods missed); the schedule is committed state
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let before = ticks(&sb);
    let stopped_at = warden::envelope::now_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let restarted_at = warden::envelope::now_ms();
    let _d = sb.start_ready();
    wait_until_blocking("ticking again", T, || ticks(&sb).len() >= before.len() + 3);
    let all = ticks(&sb);
    // never the same scheduled time twice, counts strictly one after another
    for w in all.windows(2) {
        assert!(w[1].1 > w[0].1, "scheduled once each: {all:?}");
        assert_eq!(w[1].0, w[0].0 + 1, "no tick lost or repeated: {all:?}");
    }
    // one catch-up for the downtime, not one per missed period
    let missed: Vec<_> = all[before.len()..]
        .iter()
        .filter(|(_, at)| *at > stopped_at && *at < restarted_at)
        .collect();
    assert!(
        missed.len() <= 1,
        "one catch-up tick at most: {missed:?} in {all:?}"
    );
}

#[test]
fn timer_schedules_are_checked() {
    for (keys, needle) in [
        ("every = \"5m\"\ncron = \"* * * * *\"", "not both"),
        ("cron = \"61 * * * *\"", "not a cron pattern"),
        ("", "needs every"),
        ("every = \"1ms\"", "at least 10ms"),
    ] {
        let (code, err) = crate::common::check(&format!(
            "[supervisor.root]\nchildren = [\"t\"]\n[agent.t]\nkind = \"timer\"\n{keys}\n"
        ));
        assert_eq!(code, 2, "{keys}: {err}");
        assert!(err.contains(needle), "{keys}: {err}");
    }
    let (code, err) = crate::common::check(
        "[supervisor.root]\nchildren = [\"t\"]\n[agent.t]\nkind = \"timer\"\ncron = \"0 9 * * MON-FRI\"\n",
    );
    assert_eq!(code, 0, "{err}");
}

const FANOUT: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["report", "collect", "worker", "split"]

[agent.split]
kind = "fanout"
items = "/subtasks"
to = ["worker"]

[agent.worker]
kind = "echo"
accept_faults = true
max_attempts = 1
replicas = 3
to = ["collect"]

[agent.collect]
kind = "join"
timeout = "WINDOW"
to = ["report"]

[agent.report]
kind = "sink"
path = "{dir}/report.jsonl"
"#;

#[test]
fn fanout_and_join_collect_every_part_in_order_or_report_the_missing() {
    let sb = Sandbox::new(&FANOUT.replace("WINDOW", "1500ms"));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r =
        c.req(json!({"op": "send", "to": "split", "payload": {"subtasks": ["a", "b", "c", "d"]}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("joined", T, || {
        json_lines(&sb.path("report.jsonl")).len() == 1
    });
    let j = &json_lines(&sb.path("report.jsonl"))[0]["payload"];
    assert_eq!(
        j["parts"],
        json!(["a", "b", "c", "d"]),
        "in index order: {j}"
    );
    assert_eq!(j["missing"], json!([]));
    // a part that dies on the way: the window closes with it missing
    c.req(json!({"op": "send", "to": "split", "payload": {"subtasks": ["x", {"fault": "error"}, "z"]}}));
    wait_until_blocking("joined at the window", T, || {
        json_lines(&sb.path("report.jsonl")).len() == 2
    });
    let j = &json_lines(&sb.path("report.jsonl"))[1]["payload"];
    assert_eq!(j["parts"], json!(["x", "z"]), "{j}");
    assert_eq!(j["missing"], json!([1]));
    // a message that is not a part
    c.req(json!({"op": "send", "to": "collect", "payload": {"stray": 1}}));
    wait_until_blocking("refused", T, || {
        c.req(json!({"op": "dlq_list", "agent": "collect"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
}

#[test]
fn a_join_killed_mid_collection_loses_nothing_and_emits_once() {
    // (a worker killed mid-part with the daemon retries it: max_attempts 3)
    let sb = Sandbox::new(
        &FANOUT
            .replace("WINDOW", "30s")
            .replace("max_attempts = 1", "max_attempts = 3"),
    );
    let mut d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"op": "send", "to": "split", "payload":
        {"subtasks": ["a", {"fault": "sleep", "ms": 3000, "v": "b"}, "c"]}}));
    assert_eq!(r["ok"], true);
    // two parts collected (committed), the third still in a worker
    wait_until_blocking("two parts in", T, || {
        c.req(json!({"op": "stats"}))["result"]["agents"]["collect"]["handled"] == 2
    });
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let _d = sb.start_ready();
    wait_until_blocking("joined after the restart", T, || {
        json_lines(&sb.path("report.jsonl")).len() == 1
    });
    let j = &json_lines(&sb.path("report.jsonl"))[0]["payload"];
    assert_eq!(j["parts"][0], "a");
    assert_eq!(j["parts"][1]["v"], "b", "{j}");
    assert_eq!(j["parts"][2], "c");
    assert_eq!(j["missing"], json!([]));
    // and only once, even when the window passes later
    let r = sb
        .conn()
        .req(json!({"op": "call", "to": "report", "payload": {"probe": 1}}));
    assert_eq!(r["ok"], true);
    assert_eq!(
        json_lines(&sb.path("report.jsonl"))
            .iter()
            .filter(|l| l["payload"]["group"].is_string())
            .count(),
        1
    );
}

#[test]
fn stateful_workflow_kinds_run_as_one_replica() {
    for (kind, keys) in [
        ("join", ""),
        ("approve", ""),
        ("timer", "every = \"1s\""),
        (
            "router",
            "field = \"/x\"\ndefault = \"out\"\nmax_cycles = 2",
        ),
    ] {
        let (code, err) = crate::common::check(&format!(
            "[supervisor.root]\nchildren = [\"w\", \"out\"]\n[agent.out]\nkind = \"echo\"\n[agent.w]\nkind = \"{kind}\"\nreplicas = 2\n{keys}\n"
        ));
        assert_eq!(code, 2, "{kind}: {err}");
        assert!(err.contains("runs as one replica"), "{kind}: {err}");
    }
}

#[test]
fn a_part_that_dies_goes_to_a_person_and_once_approved_completes_its_join_in_its_correlation() {
    let sb = Sandbox::new(
        &(FANOUT
            .replace("WINDOW", "60s")
            .replace(
                "children = [\"report\", \"collect\", \"worker\", \"split\"]",
                "children = [\"report\", \"collect\", \"person\", \"worker\", \"split\"]",
            )
            .replace(
                "max_attempts = 1\n",
                "max_attempts = 1\non_dead_letter = \"person\"\n",
            )
            + r#"
[agent.person]
kind = "approve"
to = ["collect"]
"#),
    );
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"op": "send", "to": "split", "correlation": "job-7",
        "payload": {"subtasks": ["x", {"fault": "error"}, "z"]}}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("the dead part waits for a person", T, || {
        sb.ctl_json(&["approvals", "person"])
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let item = sb.ctl_json(&["approvals", "person"])[0].clone();
    assert_eq!(item["correlation"], "job-7", "{item}");
    let id = item["id"].as_str().unwrap().to_string();
    let out = sb.ctl(&["approve", "person", &id, "--payload", "\"y\""]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_blocking("joined", T, || {
        json_lines(&sb.path("report.jsonl")).len() == 1
    });
    let line = &json_lines(&sb.path("report.jsonl"))[0];
    assert_eq!(line["payload"]["parts"], json!(["x", "y", "z"]), "{line}");
    assert_eq!(line["payload"]["missing"], json!([]), "{line}");
    assert_eq!(
        line["correlation"], "job-7",
        "the approved part stays in its correlation: {line}"
    );
    assert_eq!(
        c.req(json!({"op": "dlq_list", "agent": "collect"}))["result"],
        json!([]),
        "the approved part was taken as a part"
    );
}
