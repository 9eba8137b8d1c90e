//! Dynamic children through the real daemon: agents spawned from a template over
//! the socket exist again, with their state and mailboxes, after the daemon is
//! SIGKILLed; a delete is durable and never loses a message.

use std::time::Duration;

use crate::common::{wait_until_blocking, Conn, Sandbox};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"
shutdown_timeout = "10s"

[supervisor.root]
children = ["sessions"]

[supervisor.sessions]
strategy = "simple_one_for_one"
template = "session"

[agent.session]
kind = "counter"
mailbox = "durable"
accept_faults = true
"#;

/// Runs `f(conn, i)` for every i in `0..n` on `threads` connections at once.
fn fan_out(s: &Sandbox, n: usize, threads: usize, f: impl Fn(&mut Conn, usize) + Sync) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            let f = &f;
            let mut conn = s.conn();
            scope.spawn(move || {
                for i in (t..n).step_by(threads) {
                    f(&mut conn, i);
                }
            });
        }
    });
}

fn ok(conn: &mut Conn, req: Value) -> Value {
    let r = conn.req(req.clone());
    assert_eq!(r["ok"], true, "{req}: {r}");
    r["result"].clone()
}

fn children(conn: &mut Conn) -> Vec<Value> {
    let r = ok(
        conn,
        json!({"op": "which_children", "supervisor": "sessions"}),
    );
    r["children"].as_array().unwrap().clone()
}

#[test]
fn ten_thousand_spawned_agents_survive_sigkill_with_state_and_mailboxes() {
    const N: usize = 10_000;
    let s = Sandbox::new(CONFIG);
    let mut d = s.start_ready();
    fan_out(&s, N, 8, |c, i| {
        ok(
            c,
            json!({"op": "spawn", "supervisor": "sessions", "name": format!("s{i}"), "state": {"count": i}}),
        );
    });
    fan_out(&s, N, 8, |c, i| {
        ok(
            c,
            json!({"op": "send", "to": format!("s{i}"), "payload": {}}),
        );
    });
    // killed with messages still queued or in flight
    d.signal(Signal::SIGKILL);
    d.wait_exit(T);

    let d = s.start_ready();
    let mut conn = s.conn();
    let kids = children(&mut conn);
    assert_eq!(kids.len(), N, "every spawned agent exists again");
    assert!(kids
        .iter()
        .all(|k| k["status"] == "running" && k["dynamic"] == true));
    // each was spawned with count i, handled its message exactly once, and now
    // handles the call: i + 2
    fan_out(&s, N, 8, |c, i| {
        let r = ok(
            c,
            json!({"op": "call", "to": format!("s{i}"), "payload": {}, "timeout": "30s"}),
        );
        assert_eq!(r["reply"]["count"], json!(i + 2), "s{i}");
    });
    let r = conn.req(json!({"op": "spawn", "supervisor": "sessions", "name": "s7"}));
    assert_eq!(r["error"]["code"], "already_exists", "{r}");
    drop(d);
}

#[test]
fn delete_is_durable_and_refuses_to_lose_messages() {
    let s = Sandbox::new(CONFIG);
    let mut d = s.start_ready();
    let mut c = s.conn();
    for name in ["a", "b", "busy"] {
        ok(
            &mut c,
            json!({"op": "spawn", "supervisor": "sessions", "name": name}),
        );
    }
    ok(&mut c, json!({"op": "call", "to": "a", "payload": {}}));
    // busy: one message in flight (sleeping), one waiting
    ok(
        &mut c,
        json!({"op": "send", "to": "busy", "payload": {"fault": "sleep", "ms": 3000}}),
    );
    ok(&mut c, json!({"op": "send", "to": "busy", "payload": {}}));
    let r = c.req(json!({"op": "delete", "agent": "busy"}));
    assert_eq!(r["error"]["code"], "not_empty", "{r}");
    let m = r["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("2 message(s)") && m.contains("dlq purge busy"),
        "{m}"
    );
    assert_eq!(
        children(&mut c)
            .iter()
            .find(|k| k["name"] == "busy")
            .unwrap()["status"],
        "running",
        "a refused delete leaves the agent running"
    );
    // a dead letter also keeps it
    ok(
        &mut c,
        json!({"op": "send", "to": "b", "payload": {"fault": "error"}}),
    );
    wait_until_blocking("b dead-lettered", T, || {
        let t = ok(&mut c, json!({"op": "dlq_list", "agent": "b"}));
        t.as_array().is_some_and(|a| a.len() == 1)
    });
    let r = c.req(json!({"op": "delete", "agent": "b"}));
    assert_eq!(r["error"]["code"], "not_empty", "{r}");
    ok(
        &mut c,
        json!({"op": "dlq_purge", "agent": "b", "all": true}),
    );
    ok(&mut c, json!({"op": "delete", "agent": "b"}));
    ok(&mut c, json!({"op": "delete", "agent": "a"}));
    let r = c.req(json!({"op": "send", "to": "a", "payload": {}}));
    assert_eq!(r["error"]["code"], "unknown_agent", "{r}");
    // a deleted name can be spawned again, fresh
    ok(
        &mut c,
        json!({"op": "spawn", "supervisor": "sessions", "name": "a"}),
    );
    let r = ok(&mut c, json!({"op": "call", "to": "a", "payload": {}}));
    assert_eq!(r["reply"]["count"], 1, "fresh state: {r}");
    d.signal(Signal::SIGKILL);
    d.wait_exit(T);

    let _d = s.start_ready();
    let mut c = s.conn();
    let names: Vec<String> = children(&mut c)
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["busy", "a"], "b stays deleted, a was spawned again");
    let r = ok(&mut c, json!({"op": "call", "to": "a", "payload": {}}));
    assert_eq!(r["reply"]["count"], 2, "{r}");
    // busy's two messages were kept: both handled, then the call
    let r = ok(
        &mut c,
        json!({"op": "call", "to": "busy", "payload": {}, "timeout": "30s"}),
    );
    assert_eq!(r["reply"]["count"], 3, "{r}");
}

#[test]
fn add_child_over_the_socket_persists_its_keys() {
    let s = Sandbox::new(&CONFIG.replace(
        "children = [\"sessions\"]",
        "children = [\"sessions\", \"tools\"]\n[supervisor.tools]\nchildren = []",
    ));
    let mut d = s.start_ready();
    let mut c = s.conn();
    ok(
        &mut c,
        json!({"op": "add_child", "supervisor": "tools", "name": "t1",
               "spec": {"kind": "counter", "restart": "transient"}}),
    );
    ok(&mut c, json!({"op": "call", "to": "t1", "payload": {}}));
    d.signal(Signal::SIGKILL);
    d.wait_exit(T);
    let _d = s.start_ready();
    let mut c = s.conn();
    let r = ok(
        &mut c,
        json!({"op": "which_children", "supervisor": "tools"}),
    );
    let t1 = &r["children"][0];
    assert_eq!(
        (&t1["name"], &t1["restart"], &t1["dynamic"]),
        (&json!("t1"), &json!("transient"), &json!(true))
    );
    let r = ok(&mut c, json!({"op": "call", "to": "t1", "payload": {}}));
    assert_eq!(r["reply"]["count"], 2);
}

#[test]
fn ctl_spawns_lists_and_deletes() {
    let s = Sandbox::new(CONFIG);
    let _d = s.start_ready();
    let out = s.ctl(&["spawn", "sessions", "u1", "--state", r#"{"count":41}"#]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "u1 started under sessions"
    );
    let r = s.ctl_json(&["call", "u1", "{}"]);
    assert_eq!(r["reply"]["count"], 42);
    let out = s.ctl(&["children", "sessions"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("u1") && text.contains("1 children, 1 running"),
        "{text}"
    );
    let out = s.ctl(&["spawn", "sessions", "u1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = s.ctl(&["spawn", "sessions", "u2", "--state", "{nope"]);
    assert_eq!(out.status.code(), Some(2));
    let out = s.ctl(&["delete", "u1"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "u1 deleted");
}

#[test]
fn a_dynamic_child_whose_supervisor_left_the_config_waits_on_disk() {
    let s = Sandbox::new(CONFIG);
    let mut d = s.start_ready();
    let mut c = s.conn();
    ok(
        &mut c,
        json!({"op": "spawn", "supervisor": "sessions", "name": "kept", "state": {"count": 9}}),
    );
    ok(&mut c, json!({"op": "shutdown"}));
    assert!(d.wait_exit(T).success());
    // the supervisor is renamed: the child has nowhere to go, and is not lost
    let renamed = CONFIG.replace("sessions", "chats");
    std::fs::write(
        s.config(),
        renamed.replace("{dir}", s.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let mut d = s.start_ready();
    assert!(
        d.log_text()
            .contains("a dynamic child's supervisor is not in the config any more"),
        "{}",
        d.log_text()
    );
    let mut c = s.conn();
    let r = c.req(json!({"op": "call", "to": "kept", "payload": {}}));
    assert_eq!(r["error"]["code"], "unknown_agent", "{r}");
    ok(&mut c, json!({"op": "shutdown"}));
    assert!(d.wait_exit(T).success());
    // back in the config: back in the tree, with its state
    std::fs::write(
        s.config(),
        CONFIG.replace("{dir}", s.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let _d = s.start_ready();
    let mut c = s.conn();
    let r = ok(&mut c, json!({"op": "call", "to": "kept", "payload": {}}));
    assert_eq!(r["reply"]["count"], 10, "{r}");
}

#[test]
fn spawned_children_follow_the_current_template() {
    let s = Sandbox::new(CONFIG);
    let mut d = s.start_ready();
    let mut c = s.conn();
    ok(
        &mut c,
        json!({"op": "spawn", "supervisor": "sessions", "name": "t"}),
    );
    ok(&mut c, json!({"op": "shutdown"}));
    assert!(d.wait_exit(T).success());
    let changed = CONFIG.replace(
        "kind = \"counter\"",
        "kind = \"counter\"\nrestart = \"temporary\"",
    );
    std::fs::write(
        s.config(),
        changed.replace("{dir}", s.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let _d = s.start_ready();
    let mut c = s.conn();
    assert_eq!(children(&mut c)[0]["restart"], "temporary");
}

/// SIGKILL in the middle of a storm of spawns and deletes: every spawn that was
/// answered exists afterwards and works; every delete that was answered stays
/// deleted; nothing half-made is left.
#[test]
fn sigkill_during_spawns_and_deletes_keeps_every_answer() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    let s = Sandbox::new(CONFIG);
    let mut d = s.start_ready();
    // first 400 agents exist, to be deleted during the storm
    fan_out(&s, 400, 4, |c, i| {
        ok(
            c,
            json!({"op": "spawn", "supervisor": "sessions", "name": format!("old{i}")}),
        );
    });
    let spawned = Mutex::new(HashSet::new());
    let deleted = Mutex::new(HashSet::new());
    let answers = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..4usize {
            let (spawned, deleted, answers) = (&spawned, &deleted, &answers);
            let mut conn = s.conn();
            scope.spawn(move || {
                for i in 0.. {
                    let (req, name) = if i % 4 == 3 {
                        let name = format!("old{}", t + 4 * (i / 4));
                        (json!({"op": "delete", "agent": name}), name)
                    } else {
                        let name = format!("new{t}-{i}");
                        (
                            json!({"op": "spawn", "supervisor": "sessions", "name": name}),
                            name,
                        )
                    };
                    let mut line = serde_json::to_vec(&req).unwrap();
                    line.push(b'\n');
                    // the daemon dies under us: stop at the first broken answer
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        conn.write_raw(&line);
                        conn.read()
                    }));
                    let Ok(r) = r else { return };
                    assert_eq!(r["ok"], true, "{req}: {r}");
                    if req["op"] == "delete" {
                        deleted.lock().unwrap().insert(name);
                    } else {
                        spawned.lock().unwrap().insert(name);
                    }
                    answers.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        wait_until_blocking("a storm under way", T, || {
            answers.load(Ordering::Relaxed) >= 600
        });
        d.signal(Signal::SIGKILL);
    });
    d.wait_exit(T);
    let (spawned, deleted) = (spawned.into_inner().unwrap(), deleted.into_inner().unwrap());
    assert!(!spawned.is_empty() && !deleted.is_empty());

    let _d = s.start_ready();
    let mut c = s.conn();
    let kids = children(&mut c);
    let names: HashSet<String> = kids
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    for n in &spawned {
        assert!(names.contains(n), "answered spawn {n} lost");
    }
    for n in &deleted {
        assert!(!names.contains(n), "answered delete {n} came back");
    }
    assert!(kids.iter().all(|k| k["status"] == "running"));
    for n in &names {
        let r = ok(&mut c, json!({"op": "call", "to": n, "payload": {}}));
        assert_eq!(r["reply"]["count"], 1, "{n}: {r}");
    }
}
