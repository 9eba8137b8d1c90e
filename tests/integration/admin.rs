//! The admin socket and `warden ctl`, through the real binary: every op, the
//! bad-input matrix, permissions, locking, exit codes, kill under load, watch.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::{json_lines, wait_until_blocking, Conn, Sandbox};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"
shutdown_timeout = "5s"
admin_idle_timeout = "1s"

[supervisor.root]
max_restarts = 100
within = "1s"
children = ["intake", "pipeline"]

[supervisor.pipeline]
strategy = "rest_for_one"
max_restarts = 100
within = "1s"
children = ["planner", "out"]

[agent.intake]
kind = "echo"
to = ["planner"]

[agent.planner]
kind = "echo"
to = ["out"]
accept_faults = true
max_attempts = 2
backoff = { initial = "1ms", max = "5ms" }

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
"#;

const T: Duration = Duration::from_secs(20);

fn out_payloads(sb: &Sandbox) -> Vec<Value> {
    json_lines(&sb.path("out.jsonl"))
        .into_iter()
        .map(|l| l["payload"].clone())
        .collect()
}

#[test]
fn every_op_through_a_raw_socket() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"id": 1, "op": "hello", "version": 1}));
    assert_eq!(
        r,
        json!({"id": 1, "ok": true, "result": {"protocol": 1, "version": env!("CARGO_PKG_VERSION")}})
    );
    assert_eq!(
        c.req(json!({"id": 2, "op": "ping"}))["result"]["pong"],
        true
    );
    let tree = c.req(json!({"id": "t", "op": "tree"}));
    assert_eq!(tree["id"], "t");
    assert_eq!(tree["result"]["name"], "root");
    assert_eq!(
        tree["result"]["children"][1]["children"][0]["name"],
        "planner"
    );
    let sent = c.req(json!({"id": 3, "op": "send", "to": "intake", "payload": {"n": 1}, "key": "k-1", "correlation": "c-1", "deadline": "1m"}));
    assert_eq!(
        sent["result"],
        json!({"message_id": "intake:1", "duplicate": false})
    );
    let dup =
        c.req(json!({"id": 4, "op": "send", "to": "intake", "payload": {"n": 1}, "key": "k-1"}));
    assert_eq!(
        dup["result"],
        json!({"message_id": "intake:1", "duplicate": true})
    );
    let called = c
        .req(json!({"id": 5, "op": "call", "to": "intake", "payload": {"n": 2}, "timeout": "10s"}));
    assert_eq!(called["result"], json!({"reply": {"n": 2}}));
    wait_until_blocking("both reached the sink", T, || out_payloads(&sb).len() == 2);
    let lines = json_lines(&sb.path("out.jsonl"));
    assert_eq!(
        lines[0]["correlation"], "c-1",
        "correlation travels with emitted messages"
    );
    // The sink writes its line before its ack commits: wait for the ack too.
    wait_until_blocking("both acked at the sink", T, || {
        sb.conn().req(json!({"id": 0, "op": "stats"}))["result"]["agents"]["out"]["handled"] == 2
    });
    let stats = c.req(json!({"id": 6, "op": "stats"}));
    assert_eq!(stats["result"]["agents"]["intake"]["accepted"], 2);
    assert!(stats["result"]["store"]["commits"].as_u64().unwrap() > 0);
    // lifecycle: stop, messages wait, mailbox shows them, start drains them
    assert_eq!(
        c.req(json!({"id": 7, "op": "stop", "agent": "out"}))["ok"],
        true
    );
    c.req(json!({"id": 8, "op": "send", "to": "out", "payload": {"n": 3}}));
    let mb = c.req(json!({"id": 9, "op": "mailbox", "agent": "out", "limit": 5}));
    assert_eq!(mb["result"]["pending"], 1);
    assert_eq!(mb["result"]["messages"][0]["payload"], json!({"n": 3}));
    let again = c.req(json!({"id": 10, "op": "stop", "agent": "out"}));
    assert_eq!(again["ok"], true, "stopping a stopped child is fine (OTP)");
    let kill = c.req(json!({"id": 11, "op": "kill", "agent": "out"}));
    assert_eq!(kill["error"]["code"], "not_running");
    assert_eq!(
        c.req(json!({"id": 12, "op": "start", "agent": "out"}))["ok"],
        true
    );
    assert_eq!(
        c.req(json!({"id": 13, "op": "start", "agent": "out"}))["error"]["code"],
        "running"
    );
    wait_until_blocking("the waiting message handled", T, || {
        out_payloads(&sb).len() == 3
    });
    assert_eq!(
        c.req(json!({"id": 14, "op": "restart", "agent": "planner"}))["ok"],
        true
    );
    assert_eq!(
        c.req(json!({"id": 15, "op": "kill", "agent": "planner"}))["ok"],
        true
    );
    // dead letters: a panic twice (max_attempts = 2)
    let poison =
        c.req(json!({"id": 16, "op": "send", "to": "planner", "payload": {"fault": "panic"}}));
    let pid = poison["result"]["message_id"].as_str().unwrap().to_string();
    wait_until_blocking("poison dead-lettered", T, || {
        let l = sb
            .conn()
            .req(json!({"id": 0, "op": "dlq_list", "agent": "planner"}));
        l["result"].as_array().is_some_and(|a| a.len() == 1)
    });
    let l = c.req(json!({"id": 17, "op": "dlq_list"}));
    let d = &l["result"][0];
    assert_eq!(
        (
            d["message_id"].as_str(),
            d["agent"].as_str(),
            d["reason"].as_str()
        ),
        (Some(pid.as_str()), Some("planner"), Some("max_attempts"))
    );
    assert_eq!(d["attempts"], 2);
    assert!(d["last_error"].as_str().unwrap().contains("panic"));
    assert_eq!(d["payload"], json!({"fault": "panic"}));
    let replay =
        c.req(json!({"id": 18, "op": "dlq_replay", "agent": "planner", "message_id": pid}));
    assert_eq!(replay["result"]["replayed"], 1);
    wait_until_blocking("replayed poison dead again", T, || {
        sb.conn()
            .req(json!({"id": 0, "op": "dlq_list", "agent": "planner"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let purge = c.req(json!({"id": 19, "op": "dlq_purge", "agent": "planner", "all": true}));
    assert_eq!(purge["result"]["purged"], 1);
    assert_eq!(
        c.req(json!({"id": 20, "op": "dlq_list"}))["result"],
        json!([])
    );
    let gone = c.req(json!({"id": 22, "op": "dlq_replay", "agent": "planner", "message_id": pid}));
    assert_eq!(gone["error"]["code"], "not_found");
    let both = c.req(
        json!({"id": 23, "op": "dlq_purge", "agent": "planner", "message_id": pid, "all": true}),
    );
    assert_eq!(both["error"]["code"], "bad_request", "id or all, not both");
    let bye = c.req(json!({"id": 21, "op": "shutdown"}));
    assert_eq!(bye["result"]["shutting_down"], true);
}

#[test]
fn every_op_through_ctl() {
    let sb = Sandbox::new(CONFIG);
    let mut d = sb.start_ready();
    let ok = |args: &[&str]| {
        let out = sb.ctl(args);
        assert!(
            out.status.success(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(ok(&["ping"]).starts_with("pong"));
    let tree = ok(&["tree"]);
    assert!(
        tree.contains("└── pipeline") && tree.contains("planner  agent  running"),
        "{tree}"
    );
    assert_eq!(
        sb.ctl_json(&["send", "intake", r#"{"n":1}"#, "--key", "a"])["message_id"],
        "intake:1"
    );
    assert!(ok(&["send", "intake", r#"{"n":1}"#, "--key", "a"]).contains("duplicate of intake:1"));
    assert_eq!(
        sb.ctl_json(&["call", "intake", r#"{"n":2}"#, "--timeout", "10s"])["reply"],
        json!({"n": 2})
    );
    let stdin = std::process::Command::new(crate::common::warden_bin())
        .args([
            "ctl",
            "--socket",
            sb.socket().to_str().unwrap(),
            "send",
            "intake",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(br#"{"n":3}"#)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(String::from_utf8_lossy(&stdin.stdout).contains("accepted intake:3"));
    wait_until_blocking("three at the sink", T, || out_payloads(&sb).len() == 3);
    let stats = ok(&["stats"]);
    assert!(
        stats.contains("intake") && stats.contains("store:"),
        "{stats}"
    );
    ok(&["stop", "out"]);
    ok(&["send", "out", "{}"]);
    assert!(ok(&["mailbox", "out"]).contains("out: 1 pending"));
    ok(&["start", "out"]);
    ok(&["restart", "planner"]);
    ok(&["kill", "planner"]);
    ok(&["send", "planner", r#"{"fault":"panic"}"#]);
    wait_until_blocking("a dead letter", T, || {
        sb.ctl_json(&["dlq", "list"])
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert!(ok(&["dlq", "list", "planner"]).contains("max_attempts"));
    assert!(ok(&["dlq", "replay", "planner", "--all"]).starts_with("replayed 1"));
    wait_until_blocking("dead again", T, || {
        sb.ctl_json(&["dlq", "list"])
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert_eq!(ok(&["dlq", "purge", "planner", "--all"]).trim(), "purged 1");
    ok(&["shutdown"]);
    assert_eq!(d.wait_exit(T).code(), Some(0));
    assert!(!sb.socket().exists(), "the socket is removed at shutdown");
}

#[test]
fn ctl_exit_codes() {
    let sb = Sandbox::new(CONFIG);
    assert_eq!(sb.ctl(&["ping"]).status.code(), Some(3), "no daemon");
    let err = String::from_utf8(sb.ctl(&["ping"]).stderr).unwrap();
    assert!(
        err.contains("no daemon at") && err.contains("warden run"),
        "{err}"
    );
    let _d = sb.start_ready();
    assert_eq!(sb.ctl(&["ping"]).status.code(), Some(0));
    let refused = sb.ctl(&["send", "plannr", "{}"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("did you mean 'planner'?"));
    assert_eq!(
        sb.ctl(&["send", "planner", "{not json"]).status.code(),
        Some(2)
    );
    assert_eq!(sb.ctl(&["frob"]).status.code(), Some(2));
    assert_eq!(
        sb.ctl(&["dlq", "replay", "planner"]).status.code(),
        Some(2),
        "id or --all"
    );
}

#[test]
fn bad_input_is_refused_and_the_daemon_serves_on() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    let mut idle = Conn::open(&sb.socket()); // connects and never writes
    let mut c = sb.conn();
    let code = |c: &mut Conn, raw: &[u8]| -> (Value, String) {
        c.write_raw(raw);
        let r = c.read();
        assert_eq!(r["ok"], false, "{r}");
        (
            r["id"].clone(),
            r["error"]["code"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(code(&mut c, b"not json\n").1, "bad_request");
    assert_eq!(code(&mut c, b"[1,2,3]\n").1, "bad_request");
    assert_eq!(code(&mut c, b"\"ping\"\n").1, "bad_request");
    assert_eq!(
        code(&mut c, b"{\"id\":1}\n"),
        (json!(1), "bad_request".into())
    );
    assert_eq!(
        code(&mut c, b"{\"id\":2,\"op\":\"pnig\"}\n"),
        (json!(2), "unknown_op".into())
    );
    assert_eq!(
        code(&mut c, b"{\"id\":3,\"op\":\"send\",\"payload\":{}}\n").1,
        "bad_request"
    );
    assert_eq!(
        code(
            &mut c,
            b"{\"id\":4,\"op\":\"send\",\"to\":7,\"payload\":{}}\n"
        )
        .1,
        "bad_request"
    );
    assert_eq!(
        code(
            &mut c,
            b"{\"id\":5,\"op\":\"send\",\"to\":\"x\",\"payload\":{},\"bogus\":1}\n"
        )
        .1,
        "bad_request"
    );
    c.write_raw(b"{\"id\":6,\"op\":\"send\",\"to\":\"plannr\",\"payload\":{}}\n");
    let r = c.read();
    assert_eq!(r["error"]["code"], "unknown_agent");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean 'planner'?"));
    assert_eq!(
        code(
            &mut c,
            b"{\"id\":7,\"op\":\"send\",\"to\":\"intake\",\"payload\":1,\"deadline\":\"soon\"}\n"
        )
        .1,
        "bad_request"
    );
    let mut big = vec![b'x'; (1 << 20) + 10];
    big.push(b'\n');
    assert_eq!(code(&mut c, &big).1, "line_too_long");
    assert_eq!(code(&mut c, b"\xff\xfe\x00\x01garbage\n").1, "bad_request");
    // the same connection still works
    assert_eq!(c.req(json!({"id": 8, "op": "ping"}))["ok"], true);
    // 200 clients at once, each sending one message: all accepted, none lost
    let sock = sb.socket();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = Conn::open(&sock);
                c.req(json!({"id": i, "op": "send", "to": "intake", "payload": {"i": i}}))
            })
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r["ok"], true, "{r}");
    }
    wait_until_blocking("200 at the sink", T, || out_payloads(&sb).len() == 200);
    let mut seen: Vec<u64> = out_payloads(&sb)
        .iter()
        .map(|p| p["i"].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    // the idle client is closed after admin_idle_timeout (1s), with a reason
    let r = idle.read();
    assert_eq!(r["error"]["code"], "idle_timeout");
}

#[test]
fn socket_is_private_and_a_second_daemon_is_refused() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sb.socket()), 0o600);
    assert_eq!(mode(&sb.path("data")), 0o700);
    let mut second = sb.start();
    let status = second.wait_exit(T);
    assert_eq!(status.code(), Some(1));
    assert!(
        second.log_text().contains("another warden is running"),
        "{}",
        second.log_text()
    );
    assert_eq!(
        sb.ctl(&["ping"]).status.code(),
        Some(0),
        "the first daemon is untouched"
    );
}

#[test]
fn a_stale_socket_is_replaced() {
    let sb = Sandbox::new(CONFIG);
    std::fs::create_dir_all(sb.path("data")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(sb.socket()).unwrap()); // leaves the file
    assert!(sb.socket().exists());
    let _d = sb.start_ready();
    assert!(sb.start_ready_log_contains("removing a stale socket"));
    assert_eq!(sb.ctl(&["ping"]).status.code(), Some(0));
}

trait LogCheck {
    fn start_ready_log_contains(&self, needle: &str) -> bool;
}

impl LogCheck for Sandbox {
    fn start_ready_log_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.path("daemon.log"))
            .unwrap_or_default()
            .contains(needle)
    }
}

#[test]
fn kill_under_steady_load_loses_nothing() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    let sock = sb.socket();
    let sender = std::thread::spawn(move || {
        let mut c = Conn::open(&sock);
        for i in 0..500 {
            let r = c.req(json!({"id": i, "op": "send", "to": "intake", "payload": {"i": i}}));
            assert_eq!(r["ok"], true, "{r}");
        }
    });
    let mut kills = 0;
    while !sender.is_finished() && kills < 20 {
        for victim in ["planner", "out", "pipeline"] {
            if sb.ctl(&["kill", victim]).status.success() {
                kills += 1;
            }
        }
    }
    sender.join().unwrap();
    assert!(kills > 0, "at least one kill landed");
    let distinct = || {
        let mut seen: Vec<u64> = out_payloads(&sb)
            .iter()
            .map(|p| p["i"].as_u64().unwrap())
            .collect();
        seen.sort();
        seen.dedup();
        seen.len()
    };
    let deadline = std::time::Instant::now() + T;
    while distinct() < 500 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 500 reached the sink; tree {}\nstats {}\ndlq {}",
            distinct(),
            sb.ctl_json(&["tree"]),
            sb.ctl_json(&["stats"]),
            sb.ctl_json(&["dlq", "list"])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tree = sb.ctl_json(&["tree"]);
    assert_eq!(tree["status"], "running");
}

#[test]
fn watch_sees_a_killed_agent_fail_and_restart() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    let mut w = sb.conn();
    assert_eq!(
        w.req(json!({"id": "w", "op": "watch"}))["result"]["watching"],
        true
    );
    assert_eq!(sb.ctl(&["kill", "planner"]).status.code(), Some(0));
    let mut got = Vec::new();
    while !(got.contains(&"failed".to_string()) && got.contains(&"restarted".to_string())) {
        let e = w.read();
        assert_eq!(e["id"], "w");
        if e["event"]["name"] == "planner" {
            got.push(e["event"]["event"].as_str().unwrap().to_string());
        }
    }
    let failed = got.iter().position(|e| e == "failed").unwrap();
    let restarted = got.iter().position(|e| e == "restarted").unwrap();
    assert!(failed < restarted, "{got:?}");
}

#[test]
fn root_giving_up_ends_the_daemon_non_zero() {
    let cfg = CONFIG.replace(
        "max_restarts = 100\nwithin = \"1s\"\nchildren = [\"intake\", \"pipeline\"]",
        "max_restarts = 1\nwithin = \"1m\"\nchildren = [\"intake\", \"pipeline\"]",
    );
    let sb = Sandbox::new(&cfg);
    let mut d = sb.start_ready();
    assert_eq!(sb.ctl(&["kill", "intake"]).status.code(), Some(0));
    wait_until_blocking("intake restarted", T, || {
        sb.ctl_json(&["tree"])["children"][0]["restarts"] == 1
    });
    let _ = sb.ctl(&["kill", "intake"]);
    let status = d.wait_exit(T);
    assert_eq!(status.code(), Some(1), "{}", d.log_text());
    assert!(
        d.log_text().contains("root supervisor gave up"),
        "{}",
        d.log_text()
    );
}

#[test]
fn clients_beyond_the_cap_get_busy() {
    let sb = Sandbox::new(&CONFIG.replace(
        "admin_idle_timeout = \"1s\"",
        "admin_idle_timeout = \"30s\"\nadmin_max_clients = 2",
    ));
    let _d = sb.start_ready();
    let mut a = sb.conn();
    let mut b = sb.conn();
    assert_eq!(a.req(json!({"id": 1, "op": "ping"}))["ok"], true);
    assert_eq!(b.req(json!({"id": 1, "op": "ping"}))["ok"], true);
    let mut c = sb.conn();
    let r = c.read();
    assert_eq!(r["error"]["code"], "busy", "{r}");
    drop(a);
    wait_until_blocking("a slot frees up", T, || {
        let mut d = sb.conn();
        d.req(json!({"id": 2, "op": "ping"}))["ok"] == true
    });
}

#[test]
fn a_timed_out_call_leaves_nothing_behind() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    assert_eq!(
        c.req(json!({"id": 1, "op": "stop", "agent": "intake"}))["ok"],
        true
    );
    let r = c.req(
        json!({"id": 2, "op": "call", "to": "intake", "payload": {"q": 1}, "timeout": "200ms"}),
    );
    assert_eq!(r["error"]["code"], "timeout", "{r}");
    let stats = c.req(json!({"id": 3, "op": "stats"}));
    assert_eq!(
        stats["result"]["calls_pending"], 0,
        "the waiting call was removed"
    );
    assert_eq!(
        stats["result"]["agents"]["intake"]["pending"], 1,
        "the message stays accepted"
    );
    assert_eq!(
        c.req(json!({"id": 4, "op": "start", "agent": "intake"}))["ok"],
        true
    );
    wait_until_blocking("handled later; its reply dropped", T, || {
        out_payloads(&sb).len() == 1
    });
    assert_eq!(c.req(json!({"id": 5, "op": "ping"}))["ok"], true);
}
