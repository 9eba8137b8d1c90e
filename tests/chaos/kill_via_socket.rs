//! Kills timed to land while a durable agent's hand-off is being committed: the
//! in-memory ack and the publication of the emitted messages must follow the
//! durable commit whatever happens to the host that awaited it (G3). A message whose
//! hand-off committed is never handled again, and nothing is left behind in the
//! store (an orphan would be handed off again at the next start).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use warden::store::{keys, Store, StoreOptions};

use crate::common::{json_lines, wait_until_blocking, Sandbox};

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"
commit_max_delay = "10ms"          # a wide commit window, so kills land inside it

[supervisor.root]
max_restarts = 100000              # kills are not failures of the tree
within = "1s"
children = ["intake", "out"]

[agent.intake]
kind = "echo"
to = ["out"]
max_attempts = 1000

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
mailbox_capacity = 50              # an orphan would leak a unit of this
"#;

const T: Duration = Duration::from_secs(60);

fn per_task(sb: &Sandbox) -> HashMap<u64, Vec<String>> {
    let mut m: HashMap<u64, Vec<String>> = HashMap::new();
    for l in json_lines(&sb.path("out.jsonl")) {
        if let Some(i) = l["payload"]["i"].as_u64() {
            m.entry(i)
                .or_default()
                .push(l["message_id"].as_str().unwrap_or("").to_string());
        }
    }
    m
}

/// `out` takes 60 sends, one after another (more than its capacity of 50).
fn takes_sends(sb: &Sandbox, when: &str) {
    for i in 0..60u64 {
        let r = sb
            .conn()
            .req(json!({"id": 1, "op": "send", "to": "out", "payload": {"late": i}}));
        assert_eq!(r["ok"], true, "{when}: capacity is not leaked: {r}");
        wait_until_blocking("out takes it", T, || drained(sb));
    }
}

fn drained(sb: &Sandbox) -> bool {
    let s = sb.ctl_json(&["stats"]);
    ["intake", "out"]
        .iter()
        .all(|a| s["agents"][a]["pending"] == 0 && s["agents"][a]["in_flight"] == 0)
}

#[test]
fn kills_during_durable_commits_hand_off_each_message_exactly_once() {
    let mut rng = fastrand::Rng::with_seed(crate::seed("kill_during_commit"));
    let sb = Sandbox::new(CONFIG);
    let mut d = sb.start_ready();
    const N: u64 = 1_500;
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let socket = sb.socket();
        let seed = rng.u64(..);
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut c = crate::common::Conn::open(&socket);
            let mut kills = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(rng.u64(20..50)));
                let r = c.req(json!({"id": 1, "op": "kill", "agent": "intake"}));
                assert_eq!(r["ok"], true, "{r}");
                kills += 1;
            }
            kills
        })
    };
    let mut c = sb.conn();
    for i in 0..N {
        // `out` has a small mailbox: a refusal is back-pressure, retried.
        loop {
            let r = c.req(json!({"id": i, "op": "send", "to": "intake", "payload": {"i": i}}));
            if r["ok"] == true {
                break;
            }
            assert_eq!(r["error"]["code"], "mailbox_full", "{r}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    wait_until_blocking("the tree drains", T, || drained(&sb));
    let before = per_task(&sb);
    assert_eq!(before.len() as u64, N, "every task reached the sink");
    // Before any restart, `out` (capacity 50) takes 60 sends one after another: no
    // hand-off left a unit of its capacity reserved.
    takes_sends(&sb, "before the restart");
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(0));
    {
        let (store, _) = Store::open(&sb.path("data/store"), StoreOptions::default()).unwrap();
        assert_eq!(
            store.count_prefix(keys::MSG),
            0,
            "no message record left behind after a drained, clean stop"
        );
    }
    // A restart must not hand anything off again, and `out` must take new sends.
    let d2 = sb.start_ready();
    wait_until_blocking("the tree drains after restart", T, || drained(&sb));
    takes_sends(&sb, "after the restart");
    let after = per_task(&sb);
    let dups: Vec<_> = after.iter().filter(|(_, ids)| ids.len() > 1).collect();
    eprintln!(
        "kill_during_commit: {kills} kills, {} duplicated tasks",
        dups.len()
    );
    assert!(
        dups.is_empty(),
        "hand-offs repeated: {:?}",
        &dups[..dups.len().min(5)]
    );
    drop(d2);
}

const PIPELINE: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
max_restarts = 100000
within = "1s"
children = ["pipeline"]

[supervisor.pipeline]
strategy = "rest_for_one"
max_restarts = 100000
within = "1s"
children = ["a", "b", "c"]

[agent.a]
kind = "echo"
to = ["b"]
shutdown = "5s"

[agent.b]
kind = "echo"
to = ["c"]
replicas = 2
shutdown = "5s"

[agent.c]
kind = "sink"
path = "{dir}/out.jsonl"
shutdown = "5s"
"#;

/// A kill storm on a `rest_for_one` pipeline: every stop of a sibling is answered at
/// once (the siblings are idle or quick), so no "shutdown timeout" may be reported.
#[test]
fn kill_storm_reports_no_bogus_shutdown_timeouts() {
    let mut rng = fastrand::Rng::with_seed(crate::seed("no_bogus_timeouts"));
    let sb = Sandbox::new(PIPELINE);
    let d = sb.start_ready();
    let mut c = sb.conn();
    for i in 0..300u64 {
        let r = c.req(json!({"id": i, "op": "send", "to": "a", "payload": {"i": i}}));
        assert_eq!(r["ok"], true, "{r}");
        if rng.u8(0..3) == 0 {
            let who = ["a", "b", "c", "pipeline"][rng.usize(0..4)];
            let r = c.req(json!({"id": i, "op": "kill", "agent": who}));
            // Right after `pipeline` itself was killed, root may not have started its
            // next incarnation yet: its children's kills are refused, legitimately.
            let restarting =
                ["unavailable", "not_running"].contains(&r["error"]["code"].as_str().unwrap_or(""));
            assert!(r["ok"] == true || restarting, "{r}");
        }
    }
    wait_until_blocking("the pipeline drains", T, || {
        let s = sb.ctl_json(&["stats"]);
        ["a", "b", "c"]
            .iter()
            .all(|a| s["agents"][a]["pending"] == 0 && s["agents"][a]["in_flight"] == 0)
    });
    let log = d.log_text();
    assert!(
        !log.contains("shutdown timeout"),
        "no stop took 5 s, yet a timeout was reported:\n{}",
        log.lines()
            .filter(|l| l.contains("shutdown timeout"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
