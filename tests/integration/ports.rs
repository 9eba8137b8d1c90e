//! `exec` agents (ports) through the real binary, with real Python processes
//! speaking `warden-port/1` (tests/ports/test_port.py: the payload says what the
//! port does).

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::common::{json_lines, wait_until_blocking, Conn, Daemon, Sandbox};

const T: Duration = Duration::from_secs(20);

/// The real interpreter (a pyenv shim needs more environment than a port gets).
fn python() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is installed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

fn port_script() -> String {
    format!("{}/tests/ports/test_port.py", env!("CARGO_MANIFEST_DIR"))
}

/// A tree of `worker` (the test port, with `extra` keys) and a sink `out`.
pub(crate) fn config(extra: &str) -> String {
    format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[supervisor.root]
max_restarts = 100
within = "1s"
children = ["out", "worker"]

[agent.out]
kind = "sink"
path = "{{dir}}/out.jsonl"

[agent.worker]
kind = "exec"
command = ["{}", "{}"]
to = ["out"]
backoff = {{ initial = "1ms", max = "1ms" }}
{extra}
"#,
        python(),
        port_script()
    )
}

fn call(c: &mut Conn, payload: Value) -> Value {
    let r = c.req(json!({"op": "call", "to": "worker", "payload": payload, "timeout": "15s"}));
    assert_eq!(r["ok"], true, "{r}");
    r["result"]["reply"].clone()
}

fn dead_letters(c: &mut Conn) -> Vec<Value> {
    c.req(json!({"op": "dlq_list", "agent": "worker"}))["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn restarts(c: &mut Conn) -> u64 {
    let t = c.req(json!({"op": "tree"}))["result"].clone();
    t["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "worker")
        .unwrap()["restarts"]
        .as_u64()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    // a zombie is dead for our purpose
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Waits until `n` ports have started (the log shows it on failure).
fn wait_ports(d: &Daemon, n: usize) {
    let deadline = std::time::Instant::now() + T;
    while started_pids(d).len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} ports did not start; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids the ports logged at start (`started pid=N`), in order.
fn started_pids(d: &Daemon) -> Vec<i32> {
    d.log_text()
        .lines()
        .filter_map(|l| l.split("port: started pid=").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn a_port_replies_emits_and_keeps_state_in_order() {
    let sb = Sandbox::new(&config(""));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = call(&mut c, json!({"n": 1, "emit_to": "out"}));
    assert_eq!(r["echo"]["n"], 1);
    assert_eq!(r["count"], 1);
    assert_eq!(r["attempt"], 1);
    assert_eq!(r["max_attempts"], 5);
    assert_eq!(r["replica"], "0");
    // the state is committed and handed to the next delivery
    assert_eq!(call(&mut c, json!({"n": 2}))["count"], 2);
    for i in 0..30 {
        let r = c.req(json!({"op": "send", "to": "worker", "payload": {"i": i, "emit_to": "out"}}));
        assert_eq!(r["ok"], true);
    }
    wait_until_blocking("31 emits", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 31
    });
    let order: Vec<i64> = json_lines(&sb.path("out.jsonl"))[1..]
        .iter()
        .map(|l| l["payload"]["from_port"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(order, (0..30).collect::<Vec<_>>(), "accept order kept");
    assert_eq!(call(&mut c, json!({}))["count"], 33);
}

#[test]
fn a_port_that_dies_or_breaks_the_protocol_mid_delivery_is_a_crash_and_the_message_is_redelivered()
{
    let sb = Sandbox::new(&config(""));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let mut restarted = 0;
    for bad in ["exit", "close_stdout", "garbage", "huge"] {
        let r = call(&mut c, json!({"do": bad, "on_attempt": 1}));
        assert_eq!(
            r["attempt"], 2,
            "{bad}: redelivered with the attempt counted: {r}"
        );
        restarted += 1;
        assert_eq!(restarts(&mut c), restarted, "{bad}: one restart");
    }
    assert!(dead_letters(&mut c).is_empty());
}

#[test]
fn errors_map_to_retries_and_dead_letters_with_the_stderr_tail() {
    let sb = Sandbox::new(&config("max_attempts = 2"));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    // retryable: retried, then succeeds
    let r = call(&mut c, json!({"do": "error", "on_attempt": 1}));
    assert_eq!(r["attempt"], 2);
    // non_retryable: dead-lettered at once, with the port's last stderr lines
    let r = c.req(json!({"op": "send", "to": "worker",
        "payload": {"do": "error", "kind": "non_retryable", "message": "bad input", "stderr": 3}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("dead-lettered", T, || dead_letters(&mut c).len() == 1);
    let d = &dead_letters(&mut c)[0];
    assert_eq!(d["reason"], "non_retryable", "{d}");
    assert_eq!(d["attempts"], 1, "{d}");
    let last = d["last_error"].as_str().unwrap();
    assert!(
        last.contains("bad input") && last.contains("detail line 2"),
        "{last}"
    );
    assert_eq!(restarts(&mut c), 0, "an error is not a crash");
}

#[test]
fn a_timeout_cancels_then_kills_the_port_group() {
    let sb = Sandbox::new(&config("timeout = \"1s\"\nmax_attempts = 1"));
    let d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"op": "send", "to": "worker", "payload": {"do": "grandchild"}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("the grandchild started", T, || {
        d.log_text().contains("grandchild pid=")
    });
    let grandchild: i32 = d
        .log_text()
        .split("grandchild pid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap();
    let first = started_pids(&d)[0];
    let r = c.req(json!({"op": "send", "to": "worker", "payload": {"do": "hang"}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("dead-lettered after the timeout", T, || {
        dead_letters(&mut c).len() == 1
    });
    let dl = &dead_letters(&mut c)[0];
    assert!(
        dl["last_error"].as_str().unwrap().contains("timeout"),
        "{dl}"
    );
    wait_until_blocking("the port and its grandchild killed", T, || {
        !alive(first) && !alive(grandchild)
    });
    // and a fresh port serves the next message
    assert_eq!(call(&mut c, json!({}))["count"], 2);
}

#[test]
fn a_port_exiting_while_idle_is_restarted_by_its_restart_type() {
    let sb = Sandbox::new(&config(""));
    let d = sb.start_ready();
    let mut c = sb.conn();
    let r = call(&mut c, json!({"do": "idle_exit", "code": 1}));
    let old = r["pid"].as_i64().unwrap();
    wait_until_blocking("restarted", T, || restarts(&mut c) == 1);
    let r = call(&mut c, json!({}));
    assert_ne!(r["pid"].as_i64().unwrap(), old, "a new process");
    assert!(d.log_text().contains("exited with status 1 while idle"));
    // transient: a clean exit (status 0) is not restarted
    drop(d);
    let sb = Sandbox::new(&config("restart = \"transient\""));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    call(&mut c, json!({"do": "idle_exit", "code": 0}));
    wait_until_blocking("stopped for good", T, || {
        let t = c.req(json!({"op": "tree"}))["result"].clone();
        t["children"][1]["status"] == "stopped"
    });
    assert_eq!(restarts(&mut c), 0);
}

#[test]
fn replicas_are_processes_sharing_one_mailbox() {
    let sb = Sandbox::new(&config("replicas = 3"));
    let d = sb.start_ready();
    let mut c = sb.conn();
    wait_ports(&d, 3);
    for i in 0..60 {
        let r = c.req(json!({"op": "send", "to": "worker",
            "payload": {"i": i, "emit_to": "out", "do": "slow"}}));
        assert_eq!(r["ok"], true);
    }
    wait_until_blocking("60 handled", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 60
    });
    let mut seen: Vec<i64> = json_lines(&sb.path("out.jsonl"))
        .iter()
        .map(|l| l["payload"]["from_port"]["i"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..60).collect::<Vec<_>>());
    let pids: HashSet<i64> = json_lines(&sb.path("out.jsonl"))
        .iter()
        .map(|l| l["payload"]["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "the 3 processes served: {pids:?}");
    let replicas: HashSet<String> = (0..3)
        .map(|r| format!("replica={r}"))
        .filter(|r| d.log_text().contains(r.as_str()))
        .collect();
    assert_eq!(replicas.len(), 3, "WARDEN_REPLICA 0, 1 and 2");
}

#[test]
fn a_port_gets_exactly_its_environment_and_secrets_stay_out_of_logs_and_ctl() {
    let secret = "sk-test-5ecret-value-42";
    let sb = Sandbox::new(&config(
        "env = { MODEL = \"m-1\" }\nenv_pass = [\"TEST_API_KEY\"]",
    ));
    let log = std::fs::File::create(sb.path("daemon.log")).unwrap();
    let child = std::process::Command::new(crate::common::warden_bin())
        .args(["run", "--config"])
        .arg(sb.config())
        .current_dir(sb.dir.path())
        .env("TEST_API_KEY", secret)
        .env("NOT_PASSED", "x")
        .stderr(log)
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        log: sb.path("daemon.log"),
    };
    d.wait_for_log("warden started", T);
    let mut c = sb.conn();
    let r = call(&mut c, json!({"do": "env"}));
    let env = r["env"].as_object().unwrap();
    // (Python itself adds LC_CTYPE when the locale is C: PEP 538)
    let mut names: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "LC_CTYPE")
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "MODEL",
            "PATH",
            "TEST_API_KEY",
            "WARDEN_AGENT",
            "WARDEN_REPLICA"
        ],
        "env + env_pass + PATH + WARDEN_*"
    );
    assert_eq!(env["TEST_API_KEY"], secret);
    assert_eq!(env["WARDEN_AGENT"], "worker");
    // a failure that is dead-lettered, then everything a person can look at
    c.req(
        json!({"op": "send", "to": "worker", "payload": {"do": "error", "kind": "non_retryable"}}),
    );
    wait_until_blocking("dead-lettered", T, || dead_letters(&mut c).len() == 1);
    for args in [
        vec!["tree"],
        vec!["stats"],
        vec!["dlq", "list"],
        vec!["children", "root"],
    ] {
        let out = sb.ctl(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(secret), "ctl {args:?} shows the secret");
    }
    assert!(!d.log_text().contains(secret), "the log shows the secret");
}

#[test]
fn take_tokens_waits_on_the_agents_token_limiter() {
    let sb = Sandbox::new(&config("limits = [\"tpm\"]").replace(
        "[supervisor.root]",
        "[limits.tpm]\nrequests_per_second = 1000\ntokens_per_minute = 6000\n\n[supervisor.root]",
    ));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = call(&mut c, json!({"do": "tokens", "n": 5000, "used": 5500}));
    assert_eq!(r["count"], 1);
    let stats = c.req(json!({"op": "stats"}))["result"]["limits"]["tpm"].clone();
    assert_eq!(stats["tokens"], 5000, "{stats}");
    assert_eq!(
        stats["tokens_debited"], 500,
        "the overrun reported by tokens_used: {stats}"
    );
    // a request larger than the bucket can ever hold is refused, not waited for
    let r = c.req(json!({"op": "send", "to": "worker", "payload": {"do": "tokens", "n": 100000}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("dead-lettered", T, || dead_letters(&mut c).len() == 1);
    assert_eq!(dead_letters(&mut c)[0]["reason"], "non_retryable");
}

#[test]
fn a_port_that_never_answers_initialize_fails_the_start() {
    let sb = Sandbox::new(&config(
        "start_timeout = \"300ms\"\nenv = { TEST_PORT_NO_INIT = \"1\" }",
    ));
    let log = sb.start_fails("did not answer initialize within start_timeout");
    assert!(
        log.contains("started pid="),
        "the port's stderr is in the log:\n{log}"
    );
}

#[test]
fn ports_left_by_a_sigkilled_daemon_are_killed_at_the_next_start() {
    // stubborn ports ignore stdin closing and SIGTERM: only a kill ends them
    let sb = Sandbox::new(&config(
        "replicas = 2\nenv = { TEST_PORT_STUBBORN = \"1\", TEST_PORT_IGNORE_TERM = \"1\" }",
    ));
    let d = sb.start_ready();
    wait_ports(&d, 2);
    let old = started_pids(&d);
    d.signal(Signal::SIGKILL);
    let mut d = d;
    let _ = d.wait_exit(T);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        old.iter().all(|p| alive(*p)),
        "the ports outlive the killed daemon: {old:?} {:?}",
        old.iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")))
            .collect::<Vec<_>>()
    );
    let d2 = sb.start_ready();
    wait_until_blocking("the leftovers killed", T, || !old.iter().any(|p| alive(*p)));
    assert!(d2.log_text().contains("left over"), "{}", d2.log_text());
    // a graceful stop ends ports that ignore SIGTERM too
    let now: Vec<i32> = started_pids(&d2);
    let mut d2 = d2;
    d2.signal(Signal::SIGTERM);
    assert!(d2.wait_exit(T).success());
    wait_until_blocking("the ports are gone", T, || !now.iter().any(|p| alive(*p)));
}

#[test]
fn a_daemon_sigkilled_with_deliveries_in_flight_hands_each_off_once() {
    let sb = Sandbox::new(&config(
        "replicas = 5\nenv = { TEST_PORT_STUBBORN = \"1\" }",
    ));
    let d = sb.start_ready();
    let mut c = sb.conn();
    wait_ports(&d, 5);
    let n = 40;
    let release = sb.path("release");
    for i in 0..n {
        // each hangs in the port until `release` exists: 5 in flight at the kill
        let r = c.req(json!({"op": "send", "to": "worker", "key": format!("k{i}"),
            "payload": {"i": i, "emit_to": "out", "do": "hang", "unless_file": release}}));
        assert_eq!(r["ok"], true);
    }
    wait_until_blocking("5 in flight", T, || {
        d.log_text().matches("hanging pid=").count() >= 5
    });
    let old = started_pids(&d);
    d.signal(Signal::SIGKILL);
    let mut d = d;
    let _ = d.wait_exit(T);
    drop(c);
    std::fs::write(&release, b"").unwrap();
    let mut d2 = sb.start_ready();
    wait_until_blocking("no port of the old daemon left", T, || {
        !old.iter().any(|p| alive(*p))
    });
    wait_until_blocking("every message handed off", Duration::from_secs(60), || {
        json_lines(&sb.path("out.jsonl")).len() >= n
    });
    let mut seen: Vec<i64> = json_lines(&sb.path("out.jsonl"))
        .iter()
        .map(|l| l["payload"]["from_port"]["i"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..n as i64).collect::<Vec<_>>(), "each once");
    // stubborn ports go with a graceful stop (a test must not leave them behind)
    let now = started_pids(&d2);
    d2.signal(Signal::SIGTERM);
    assert!(d2.wait_exit(T).success());
    wait_until_blocking("the ports are gone", T, || !now.iter().any(|p| alive(*p)));
}

#[test]
fn an_emit_outside_the_agents_to_is_route_not_allowed_and_emits_nothing() {
    let sb = Sandbox::new(&config("max_attempts = 3"));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    // worker's to = ["out"]: an emit to itself is refused, at once, whole
    let r = c.req(json!({"op": "send", "to": "worker", "payload": {"emit_to": "worker"}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("dead-lettered", T, || dead_letters(&mut c).len() == 1);
    let d = &dead_letters(&mut c)[0];
    assert_eq!(d["reason"], "route_not_allowed", "{d}");
    assert_eq!(d["attempts"], 1, "not retried: {d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("'worker'"),
        "{d}"
    );
    // the state of the failed delivery was not committed either
    assert_eq!(call(&mut c, json!({}))["count"], 1);
    assert!(json_lines(&sb.path("out.jsonl")).is_empty());
}

/// The reference port for port authors (config/examples/port.py) does what its
/// docs say: upper-cases, counts in its state, emits to `out`, and refuses bad
/// input as non_retryable.
#[test]
fn the_example_port_works() {
    let sb = Sandbox::new(&format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[supervisor.root]
children = ["out", "upper"]

[agent.upper]
kind = "exec"
command = ["{}", "{}/config/examples/port.py"]
to = ["out"]

[agent.out]
kind = "sink"
path = "{{dir}}/out.jsonl"
"#,
        python(),
        env!("CARGO_MANIFEST_DIR")
    ));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"op": "call", "to": "upper", "payload": {"text": "hello"}}));
    assert_eq!(r["result"]["reply"]["text"], "HELLO", "{r}");
    wait_until_blocking("emitted", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 1
    });
    c.req(json!({"op": "send", "to": "upper", "payload": 42}));
    wait_until_blocking("refused", T, || {
        c.req(json!({"op": "dlq_list", "agent": "upper"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let d = c.req(json!({"op": "dlq_list", "agent": "upper"}))["result"][0].clone();
    assert_eq!(d["reason"], "non_retryable", "{d}");
}

/// The failure that opens a circuit breaker is the agent's fault, not the
/// message's: with max_attempts equal to the breaker's failures, the message it
/// failed on waits for the trial instead of being dead-lettered by it.
#[test]
fn the_failure_that_opens_the_breaker_does_not_dead_letter_its_message() {
    let sb = Sandbox::new(&config(
        "max_attempts = 2\nbreaker = { failures = 2, cool_down = \"300ms\" }",
    ));
    let d = sb.start_ready();
    let mut c = sb.conn();
    let fixed = sb.path("fixed");
    let r = c.req(json!({"op": "send", "to": "worker",
        "payload": {"do": "error", "unless_file": fixed, "emit_to": "out"}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("the breaker opened", T, || {
        d.log_text().contains("circuit breaker open")
    });
    assert!(
        dead_letters(&mut c).is_empty(),
        "not dead-lettered by the opening failure"
    );
    // the upstream recovers: the trial after the cool-down hands the message on
    std::fs::write(&fixed, b"").unwrap();
    wait_until_blocking("handled by the trial", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 1
    });
    assert!(dead_letters(&mut c).is_empty());
}
