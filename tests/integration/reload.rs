//! Reloading the config while the daemon runs (issue 17): `warden ctl reload`,
//! `--dry-run` and SIGHUP, through the real binary, under steady traffic.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{json_lines, wait_until_blocking, Conn, Sandbox};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

/// The first config: traffic flows `keep` -> `out`; the others are what the
/// reload changes.
const BEFORE: &str = r#"
[daemon]
data_dir = "{dir}/data"

[limits.same]
requests_per_second = 1000
burst = 10

[limits.quota]
requests_per_second = 1000

[supervisor.root]
children = ["out", "keep", "policy", "kindchange", "gone", "mover", "team"]

[supervisor.team]
strategy = "one_for_one"
children = ["member"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"

[agent.keep]
kind = "echo"
to = ["out"]
limits = ["same"]

[agent.policy]
kind = "echo"
to = ["out"]
accept_faults = true
max_attempts = 2
backoff = { initial = "1ms", max = "1ms" }
limits = ["quota"]

[agent.kindchange]
kind = "echo"
to = ["out"]

[agent.gone]
kind = "echo"
to = ["out"]

[agent.mover]
kind = "echo"
to = ["out"]

[agent.member]
kind = "echo"
to = ["out"]
"#;

/// The second: `fresh` and supervisor `team2` added, `gone` removed, `policy`'s
/// attempts and quota changed (no restart), `kindchange` turned into a sink
/// (restart), `mover` moved under `team`, `team` one_for_all, a limit added.
const AFTER: &str = r#"
[daemon]
data_dir = "{dir}/data"

[limits.same]
requests_per_second = 1000
burst = 10

[limits.quota]
requests_per_second = 500

[limits.extra]
requests_per_minute = 60

[supervisor.root]
children = ["out", "fresh", "keep", "policy", "kindchange", "team", "team2"]

[supervisor.team]
strategy = "one_for_all"
children = ["member", "mover"]

[supervisor.team2]
children = ["m2"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"

[agent.keep]
kind = "echo"
to = ["out"]
limits = ["same"]

[agent.policy]
kind = "echo"
to = ["out"]
accept_faults = true
max_attempts = 4
backoff = { initial = "1ms", max = "1ms" }
limits = ["quota"]

[agent.kindchange]
kind = "sink"
path = "{dir}/kc.jsonl"

[agent.mover]
kind = "echo"
to = ["out"]

[agent.member]
kind = "echo"
to = ["out"]

[agent.fresh]
kind = "echo"
to = ["out"]
limits = ["extra"]

[agent.m2]
kind = "echo"
to = ["out"]
"#;

fn write_config(sb: &Sandbox, text: &str) {
    let text = text.replace("{dir}", sb.dir.path().to_str().unwrap());
    std::fs::write(sb.config(), text).unwrap();
}

/// Every agent's (supervisor, actor ids, restarts), from the tree.
fn incarnations(c: &mut Conn) -> BTreeMap<String, (Vec<Value>, u64)> {
    fn walk(c: &mut Conn, sup: &str, tree: &Value, out: &mut BTreeMap<String, (Vec<Value>, u64)>) {
        let kids = c.req(json!({"op": "which_children", "supervisor": sup}));
        let kids = kids["result"]["children"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for k in &kids {
            let name = k["name"].as_str().unwrap().to_string();
            if k["type"] == "supervisor" {
                walk(c, &name, tree, out);
            } else {
                let restarts = find(tree, &name)["restarts"].as_u64().unwrap_or(0);
                out.insert(
                    name,
                    (
                        k["actor_ids"].as_array().cloned().unwrap_or_default(),
                        restarts,
                    ),
                );
            }
        }
    }
    let tree = c.req(json!({"op": "tree"}))["result"].clone();
    let mut out = BTreeMap::new();
    walk(c, "root", &tree, &mut out);
    out
}

fn find<'a>(tree: &'a Value, name: &str) -> &'a Value {
    if tree["name"] == name {
        return tree;
    }
    for c in tree["children"].as_array().into_iter().flatten() {
        let f = find(c, name);
        if !f.is_null() {
            return f;
        }
    }
    &Value::Null
}

/// Sends `{field: i}` to `to` with key `field-i` until stopped, counting in `sent`.
fn traffic(
    sb: &Sandbox,
    to: &'static str,
    field: &'static str,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let socket = sb.socket();
    std::thread::spawn(move || {
        let mut c = Conn::open(&socket);
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let r = c.req(
                json!({"op": "send", "to": to, "payload": {field: i}, "key": format!("{field}-{i}")}),
            );
            assert_eq!(r["ok"], true, "{r}");
            i += 1;
            sent.store(i, Ordering::Relaxed);
        }
    })
}

fn steps(v: &Value) -> Vec<Value> {
    v["steps"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_reload_applies_its_plan_and_leaves_the_untouched_alone_under_traffic() {
    let sb = Sandbox::new(BEFORE);
    let d = sb.start_ready();
    let mut c = sb.conn();
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = traffic(&sb, "keep", "n", stop.clone(), sent.clone());
    // and to the agent whose kind changes: each message handled once, by the old
    // kind (into out.jsonl) or the new (kc.jsonl)
    let kc_sent = Arc::new(AtomicU64::new(0));
    let kc_load = traffic(&sb, "kindchange", "kc", stop.clone(), kc_sent.clone());
    wait_until_blocking("traffic flows", T, || {
        sent.load(Ordering::Relaxed) > 50 && kc_sent.load(Ordering::Relaxed) > 50
    });
    let before = incarnations(&mut c);

    // an invalid file changes nothing and says why
    std::fs::write(sb.config(), "[supervisor.root]\nchildren = [\"nobody\"]\n").unwrap();
    let r = c.req(json!({"op": "reload"}));
    assert_eq!(r["error"]["code"], "invalid_config", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{r}"
    );
    let out = sb.ctl(&["reload"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ctl reload on an invalid file exits 1"
    );
    assert_eq!(
        incarnations(&mut c),
        before,
        "an invalid file leaves the tree as it was"
    );

    // a [daemon] key is refused, naming it
    write_config(
        &sb,
        &AFTER.replace("[daemon]\n", "[daemon]\nshutdown_timeout = \"9s\"\n"),
    );
    let r = c.req(json!({"op": "reload"}));
    assert_eq!(r["error"]["code"], "reload_refused", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daemon.shutdown_timeout"),
        "{r}"
    );

    // the dry run prints the plan and changes nothing
    write_config(&sb, AFTER);
    let plan = sb.ctl_json(&["reload", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    let human = String::from_utf8_lossy(&sb.ctl(&["reload", "--dry-run"]).stdout).into_owned();
    assert!(human.contains("remove   gone"), "{human}");
    assert!(human.contains("restart  kindchange"), "{human}");
    assert_eq!(incarnations(&mut c), before, "a dry run changes nothing");
    let actions: Vec<(String, String)> = steps(&plan)
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap().into(),
                s["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("move", "mover"),
        ("remove", "gone"),
        ("add", "fresh"),
        ("update", "policy"),
        ("restart", "kindchange"),
        ("update", "team"),
        ("add", "team2"),
    ];
    assert_eq!(
        actions,
        expect
            .iter()
            .map(|(a, n)| (a.to_string(), n.to_string()))
            .collect::<Vec<_>>(),
        "{plan:#}"
    );
    assert_eq!(
        plan["limits"],
        json!({"added": ["extra"], "changed": ["quota"], "removed": []})
    );

    // apply: what it did is what the dry run said
    let applied = sb.ctl_json(&["reload"]);
    assert_eq!(steps(&applied), steps(&plan), "{applied:#}");
    assert_eq!(applied["failed"], json!([]), "{applied:#}");
    let after = incarnations(&mut c);
    for untouched in ["out", "keep", "member"] {
        assert_eq!(
            after[untouched], before[untouched],
            "{untouched} was not disturbed"
        );
    }
    assert_eq!(
        after["policy"], before["policy"],
        "a policy change does not restart"
    );
    assert_ne!(
        after["kindchange"].0, before["kindchange"].0,
        "a kind change restarts"
    );
    for new in ["fresh", "m2", "mover"] {
        assert_eq!(after[new].0.len(), 1, "{new} runs");
    }
    assert!(!after.contains_key("gone"));
    let tree = c.req(json!({"op": "tree"}))["result"].clone();
    assert_eq!(find(&tree, "team")["strategy"], "one_for_all");
    let names = |v: &Value| -> Vec<String> {
        v["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(find(&tree, "team")), ["member", "mover"]);
    assert_eq!(
        names(&tree),
        [
            "out",
            "fresh",
            "keep",
            "policy",
            "kindchange",
            "team",
            "team2"
        ]
    );
    let r = c.req(json!({"op": "send", "to": "gone", "payload": {}}));
    assert_eq!(r["error"]["code"], "unknown_agent", "{r}");

    // the changes are in force: the new max_attempts, the new kind, the moved agent
    let r = c.req(json!({"op": "send", "to": "policy", "payload": {"fault": "error"}}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("dead-lettered", T, || {
        let l = c.req(json!({"op": "dlq_list", "agent": "policy"}));
        l["result"].as_array().is_some_and(|a| !a.is_empty())
    });
    let l = c.req(json!({"op": "dlq_list", "agent": "policy"}));
    assert_eq!(l["result"][0]["attempts"], 4, "{l}");
    wait_until_blocking("the sink kind writes", T, || {
        !json_lines(&sb.path("kc.jsonl")).is_empty()
    });
    c.req(json!({"op": "send", "to": "mover", "payload": {"moved": 1}}));
    let stats = c.req(json!({"op": "stats"}))["result"].clone();
    assert!(stats["limits"]["extra"].is_object(), "{stats}");

    // no message of the traffic lost or repeated
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    kc_load.join().unwrap();
    let n = sent.load(Ordering::Relaxed);
    let kc_n = kc_sent.load(Ordering::Relaxed);
    let kc_seen = || -> Vec<u64> {
        let mut v: Vec<u64> = json_lines(&sb.path("out.jsonl"))
            .iter()
            .chain(json_lines(&sb.path("kc.jsonl")).iter())
            .filter_map(|l| l["payload"]["kc"].as_u64())
            .collect();
        v.sort_unstable();
        v
    };
    wait_until_blocking("every kindchange message handled", T, || {
        kc_seen().len() as u64 >= kc_n
    });
    assert_eq!(
        kc_seen(),
        (0..kc_n).collect::<Vec<_>>(),
        "each of {kc_n} messages once, across the restart with the new kind"
    );
    wait_until_blocking("every message handled", T, || {
        json_lines(&sb.path("out.jsonl"))
            .iter()
            .filter(|l| l["payload"]["n"].is_u64())
            .count() as u64
            >= n
    });
    let mut seen: Vec<u64> = json_lines(&sb.path("out.jsonl"))
        .iter()
        .filter_map(|l| l["payload"]["n"].as_u64())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..n).collect::<Vec<_>>(),
        "each of {n} messages once"
    );
    drop(d);
}

#[test]
fn a_removal_that_would_drop_messages_is_refused_and_sighup_reloads_as_ctl_does() {
    let before = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["out", "holder"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"

[agent.holder]
kind = "echo"
to = ["out"]
accept_faults = true
max_attempts = 1
"#;
    let sb = Sandbox::new(before);
    let d = sb.start_ready();
    let mut c = sb.conn();
    // holder keeps a dead letter
    c.req(json!({"op": "send", "to": "holder", "payload": {"fault": "error"}}));
    wait_until_blocking("dead-lettered", T, || {
        c.req(json!({"op": "dlq_list", "agent": "holder"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let without = before.replace(
        "children = [\"out\", \"holder\"]",
        "children = [\"out\", \"added\"]",
    ) + "\n[agent.added]\nkind = \"echo\"\nto = [\"out\"]\n";
    let without = without.replace(
        "[agent.holder]\nkind = \"echo\"\nto = [\"out\"]\naccept_faults = true\nmax_attempts = 1\n",
        "",
    );
    write_config(&sb, &without);
    let r = c.req(json!({"op": "reload"}));
    assert_eq!(r["error"]["code"], "reload_refused", "{r}");
    let m = r["error"]["message"].as_str().unwrap();
    assert!(m.contains("'holder'") && m.contains("1 dead letter"), "{m}");
    let tree = c.req(json!({"op": "tree"}))["result"].clone();
    assert!(find(&tree, "added").is_null(), "nothing was changed");
    // drained, SIGHUP applies it as ctl reload would
    let r = c.req(json!({"op": "dlq_purge", "agent": "holder", "all": true}));
    assert_eq!(r["ok"], true, "{r}");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for_log("config reloaded", T);
    let tree = c.req(json!({"op": "tree"}))["result"].clone();
    assert!(!find(&tree, "added").is_null(), "{tree}");
    assert!(find(&tree, "holder").is_null(), "{tree}");
    // and again: nothing to change
    let out = sb.ctl(&["reload"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to change"));
}

/// A limiter keeps its quota state across a reload that does not change its
/// quota (a sharer that used its permit still waits), and a changed quota is in
/// force at once, waking the sharers that wait.
#[test]
fn limits_keep_their_state_unless_their_quota_changes() {
    let config = |rpm: &str, extra: &str| {
        format!(
            r#"
[daemon]
data_dir = "{{dir}}/data"

[limits.slow]
{rpm}

[supervisor.root]
children = ["out", "limited"{extra}]

[agent.out]
kind = "sink"
path = "{{dir}}/out.jsonl"

[agent.limited]
kind = "echo"
to = ["out"]
limits = ["slow"]
{}
"#,
            if extra.is_empty() {
                ""
            } else {
                "\n[agent.other]\nkind = \"echo\"\nto = [\"out\"]\n"
            }
        )
    };
    let sb = Sandbox::new(&config("requests_per_minute = 1", ""));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let handled = || json_lines(&sb.path("out.jsonl")).len();
    c.req(json!({"op": "send", "to": "limited", "payload": {"i": 1}}));
    wait_until_blocking("the first permit", T, || handled() == 1);
    // an unrelated change: the bucket is the same, the next permit a minute away
    write_config(&sb, &config("requests_per_minute = 1", ", \"other\""));
    let r = c.req(json!({"op": "reload"}));
    assert_eq!(r["result"]["limits"]["changed"], json!([]), "{r}");
    c.req(json!({"op": "send", "to": "limited", "payload": {"i": 2}}));
    let waiting = |c: &mut Conn| {
        c.req(json!({"op": "stats"}))["result"]["limits"]["slow"]["waiting"].as_u64()
    };
    wait_until_blocking("the second message waits for its permit", T, || {
        waiting(&mut c) == Some(1)
    });
    assert_eq!(handled(), 1);
    // a new quota: in force now, the waiting sharer woken
    write_config(&sb, &config("requests_per_second = 100", ", \"other\""));
    let r = c.req(json!({"op": "reload"}));
    assert_eq!(r["result"]["limits"]["changed"], json!(["slow"]), "{r}");
    wait_until_blocking("handled under the new quota", T, || handled() == 2);
}
