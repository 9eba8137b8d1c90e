//! SIGKILL the real daemon at random points while it works, restart it, and check
//! what the store promises: nothing accepted is lost, a hand-off is atomic, a
//! committed count is exact, and a message that crashes the whole daemon ends as a
//! dead letter.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use warden::store::{Store, StoreOptions};

use crate::common::{json_lines, wait_until_blocking, Conn, Daemon, Sandbox};

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"
shutdown_timeout = "5s"

[supervisor.root]
max_restarts = 1000                # tests kill agents in bursts: never give up here
within = "1s"
children = ["intake", "stage", "out", "tally", "fragile"]

[agent.intake]
kind = "echo"
to = ["stage"]

[agent.stage]
kind = "echo"
to = ["out"]
accept_faults = true

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"

[agent.tally]
kind = "counter"

[agent.fragile]
kind = "echo"
to = ["out"]
accept_faults = true
max_attempts = 3
backoff = { initial = "1ms", max = "5ms" }
"#;

const T: Duration = Duration::from_secs(30);

/// Sends with an idempotency key, reconnecting until the daemon answers: a send
/// interrupted by a kill is retried, and the key makes the retry safe.
fn send_until_accepted(sb: &Sandbox, to: &str, payload: Value, key: &str) -> Value {
    let deadline = Instant::now() + T;
    loop {
        assert!(
            Instant::now() < deadline,
            "no daemon accepted {key}; daemon log:\n{}",
            std::fs::read_to_string(sb.path("daemon.log")).unwrap_or_default()
        );
        if let Ok(s) = std::os::unix::net::UnixStream::connect(sb.socket()) {
            drop(s);
            let r = std::panic::catch_unwind(|| {
                let mut c = Conn::open(&sb.socket());
                c.req(json!({"id": 1, "op": "send", "to": to, "payload": payload, "key": key}))
            });
            if let Ok(r) = r {
                if r["ok"] == true {
                    return r["result"].clone();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigkill_and_restart(sb: &Sandbox, d: &mut Daemon) -> Daemon {
    d.signal(Signal::SIGKILL);
    d.wait_exit(T);
    sb.start_ready()
}

fn sink_counts(sb: &Sandbox) -> HashMap<u64, usize> {
    let mut m = HashMap::new();
    for l in json_lines(&sb.path("out.jsonl")) {
        if let Some(i) = l["payload"]["i"].as_u64() {
            *m.entry(i).or_default() += 1;
        }
    }
    m
}

#[test]
fn sigkill_storm_loses_no_accepted_message() {
    let mut rng = fastrand::Rng::with_seed(crate::seed("sigkill_storm"));
    let sb = Sandbox::new(CONFIG);
    let mut d = sb.start_ready();
    const N: u64 = 400;
    const KILLS: usize = 4;
    let kill_at: HashSet<u64> = (0..KILLS).map(|_| rng.u64(20..N - 20)).collect();
    for i in 0..N {
        send_until_accepted(&sb, "intake", json!({ "i": i }), &format!("m-{i}"));
        if kill_at.contains(&i) {
            // let some work get in flight, then kill at a random point
            std::thread::sleep(Duration::from_millis(rng.u64(0..30)));
            d = sigkill_and_restart(&sb, &mut d);
        }
    }
    wait_until_blocking("every accepted message at the sink", T, || {
        sink_counts(&sb).len() as u64 == N
    });
    let counts = sink_counts(&sb);
    let dups: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "chaos sigkill_storm: {} kills, {dups} duplicates",
        kill_at.len()
    );
    assert!(
        dups <= kill_at.len(),
        "duplicates only from the sink's in-flight message at a kill"
    );
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(0));
}

#[test]
fn hand_off_is_atomic_across_sigkill() {
    let mut rng = fastrand::Rng::with_seed(crate::seed("atomic_hand_off"));
    let sb = Sandbox::new(CONFIG);
    let mut d = sb.start_ready();
    let mut sent = 0u64;
    for round in 0..4 {
        for _ in 0..10 {
            // each hand-off takes 20 ms in `stage`: kills land inside the handler
            send_until_accepted(
                &sb,
                "stage",
                json!({"fault": "sleep", "ms": 20, "i": sent}),
                &format!("h-{sent}"),
            );
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.u64(10..150)));
        d.signal(Signal::SIGKILL);
        d.wait_exit(T);
        // The daemon is dead: read the store as it was left.
        let (store, recovered) =
            Store::open(&sb.path("data/store"), StoreOptions::default()).unwrap();
        let payloads = |agent: &str| -> HashSet<u64> {
            recovered.agents.get(agent).map_or(HashSet::new(), |a| {
                a.queue
                    .iter()
                    .filter_map(|e| e.payload["i"].as_u64())
                    .collect()
            })
        };
        let (at_stage, at_out) = (payloads("stage"), payloads("out"));
        let in_file: HashSet<u64> = sink_counts(&sb).into_keys().collect();
        for i in 0..sent {
            let s = at_stage.contains(&i);
            let o = at_out.contains(&i) || in_file.contains(&i);
            assert!(s ^ o, "round {round}: message {i} at stage={s}, emitted={o}: ack and emit must commit together");
        }
        drop((store, recovered));
        d = sb.start_ready();
    }
    wait_until_blocking("all handed off", T, || {
        sink_counts(&sb).len() as u64 == sent
    });
}

#[test]
fn committed_count_is_exact_across_agent_and_daemon_kills() {
    let mut rng = fastrand::Rng::with_seed(crate::seed("exact_count"));
    let sb = Sandbox::new(CONFIG);
    let mut d = sb.start_ready();
    const N: u64 = 120;
    for i in 0..N {
        send_until_accepted(&sb, "tally", json!({"i": i}), &format!("t-{i}"));
        match rng.u8(0..20) {
            0 => {
                let _ = sb.ctl(&["kill", "tally"]);
            }
            1 => d = sigkill_and_restart(&sb, &mut d),
            _ => {}
        }
    }
    wait_until_blocking("all counted", T, || {
        sb.ctl_json(&["stats"])["agents"]["tally"]["pending"] == 0
            && sb.ctl_json(&["stats"])["agents"]["tally"]["in_flight"] == 0
    });
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(0));
    let (store, _) = Store::open(&sb.path("data/store"), StoreOptions::default()).unwrap();
    assert_eq!(
        store.read_state("tally"),
        Some(json!({"count": N})),
        "each message counted exactly once"
    );
}

#[test]
fn a_message_that_aborts_the_daemon_is_dead_lettered_and_the_rest_flow() {
    let sb = Sandbox::new(CONFIG);
    let mut d = sb.start_ready();
    let _ = crate::seed("abort_poison"); // deterministic; printed for the record
    send_until_accepted(&sb, "fragile", json!({"fault": "abort"}), "poison");
    // Each start delivers the poison again and the daemon aborts; after three
    // attempts (max_attempts) recovery dead-letters it instead.
    let status = d.wait_exit(T);
    assert!(!status.success(), "the daemon aborted");
    let mut aborts = 1;
    // Restart until a daemon stays up: it aborts while the poison has attempts left.
    'restarts: loop {
        d = sb.start();
        let deadline = Instant::now() + T;
        let mut up_since: Option<Instant> = None;
        loop {
            assert!(
                Instant::now() < deadline,
                "daemon neither aborted nor served"
            );
            if let Some(status) = d.child.try_wait().unwrap() {
                assert!(
                    !status.success(),
                    "exit was an abort: {status:?}\n{}",
                    d.log_text()
                );
                aborts += 1;
                assert!(
                    aborts <= 3,
                    "dead-lettered after max_attempts daemon crashes"
                );
                continue 'restarts;
            }
            if up_since.is_none() && sb.ctl(&["ping"]).status.success() {
                up_since = Some(Instant::now());
            }
            if up_since.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
                break 'restarts;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(aborts, 3);
    for i in 0..3 {
        send_until_accepted(&sb, "fragile", json!({"i": i}), &format!("after-{i}"));
    }
    wait_until_blocking("the messages behind it flow", T, || {
        sink_counts(&sb).len() == 3
    });
    let dlq = sb.ctl_json(&["dlq", "list", "fragile"]);
    assert_eq!(dlq.as_array().unwrap().len(), 1, "{dlq}");
    assert_eq!(dlq[0]["reason"], "max_attempts");
    assert_eq!(dlq[0]["attempts"], 3);
    assert!(
        dlq[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("daemon crash"),
        "{dlq}"
    );
}

#[test]
fn a_message_that_panics_its_agent_is_dead_lettered_and_the_rest_flow() {
    let sb = Sandbox::new(CONFIG);
    let _d = sb.start_ready();
    send_until_accepted(&sb, "fragile", json!({"fault": "panic"}), "poison");
    for i in 0..3 {
        send_until_accepted(&sb, "fragile", json!({"i": i}), &format!("after-{i}"));
    }
    wait_until_blocking("the messages behind it flow", T, || {
        sink_counts(&sb).len() == 3
    });
    let dlq = sb.ctl_json(&["dlq", "list", "fragile"]);
    assert_eq!(dlq[0]["attempts"], 3);
    assert!(dlq[0]["last_error"].as_str().unwrap().contains("panic"));
    assert_eq!(sb.ctl_json(&["tree"])["status"], "running", "no escalation");
}

const BYSTANDERS: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["intake", "out"]

[agent.intake]
kind = "echo"
to = ["out"]
accept_faults = true
max_attempts = 3
backoff = { initial = "1ms", max = "5ms" }

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
accept_faults = true               # each write sleeps: `out` always has one in flight
max_attempts = 3
backoff = { initial = "1ms", max = "5ms" }
"#;

/// Restarts the daemon whenever it dies (as systemd would) until `done` holds;
/// returns how many times it died.
fn keep_alive(sb: &Sandbox, d: &mut Daemon, what: &str, mut done: impl FnMut() -> bool) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut deaths = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            d.log_text()
        );
        if d.child.try_wait().unwrap().is_some() {
            deaths += 1;
            assert!(
                deaths < 20,
                "the daemon keeps dying; log:\n{}",
                d.log_text()
            );
            *d = sb.start();
            continue;
        }
        if sb.ctl(&["ping"]).status.success() && done() {
            return deaths;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_daemon_crash_is_charged_only_to_the_culprit() {
    let _ = crate::seed("only_the_culprit"); // deterministic; printed for the record
    let sb = Sandbox::new(BYSTANDERS);
    let mut d = sb.start_ready();
    const N: u64 = 100;
    const POISON: u64 = 50;
    for i in 0..N {
        let payload = if i == POISON {
            // 20 ms of work, then abort: `out` (40 ms a message) has one in flight
            json!({"fault": "abort", "ms": 20, "i": i})
        } else {
            json!({"fault": "sleep", "ms": 40, "i": i})
        };
        if i > POISON && d.child.try_wait().unwrap().is_some() {
            d = sb.start();
        }
        send_until_accepted(&sb, "intake", payload, &format!("b-{i}"));
    }
    let deaths = keep_alive(&sb, &mut d, "every innocent task at the sink", || {
        sink_counts(&sb).len() as u64 == N - 1
    });
    let dlq = sb.ctl_json(&["dlq", "list"]);
    eprintln!("only_the_culprit: {deaths} daemon deaths after the sends; dead letters: {dlq}");
    let dead = dlq.as_array().unwrap();
    assert_eq!(dead.len(), 1, "only the poison is dead-lettered: {dlq}");
    assert_eq!(dead[0]["payload"]["i"], POISON);
    assert_eq!(dead[0]["attempts"], 3);
    assert!(dead[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("daemon crash"));
    let counts = sink_counts(&sb);
    assert!(!counts.contains_key(&POISON));
    let s = sb.ctl_json(&["stats"]);
    assert_eq!(s["agents"]["intake"]["pending"], 0);
    assert_eq!(s["agents"]["out"]["pending"], 0);
}
