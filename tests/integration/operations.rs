//! Operating a long-running daemon (issue 17): the log filter changes while it
//! runs, for a while or for good.

use std::time::Duration;

use crate::common::{json_lines, wait_until_blocking, Sandbox};
use serde_json::json;

/// The one-sink tree, retrying at once.
fn config() -> String {
    crate::common::SINK_TREE.replace(
        "accept_faults = true",
        "accept_faults = true\nbackoff = { initial = \"1ms\", max = \"1ms\" }",
    )
}

const T: Duration = Duration::from_secs(10);

#[test]
fn the_log_filter_changes_live_and_reverts_after_its_time() {
    let sb = Sandbox::new(&config());
    let d = sb.start_ready();
    let mut c = sb.conn();
    let mut handled = 0;
    let mut fail_once = |c: &mut crate::common::Conn| {
        let r =
            c.req(json!({"op": "send", "to": "out", "payload": {"fault": "error", "times": 1}}));
        assert_eq!(r["ok"], true, "{r}");
        handled += 1;
        let n = handled;
        wait_until_blocking("handled after one failed attempt", T, || {
            json_lines(&sb.path("out.jsonl")).len() == n
        });
    };
    // at the start-up filter (info), a failed attempt is not logged (debug)
    fail_once(&mut c);
    assert!(!d.log_text().contains("attempt failed"));
    // debug for a while: it is
    let r = c.req(json!({"op": "log", "filter": "debug", "for": "1s"}));
    assert_eq!(r["result"]["then"], "info", "{r}");
    fail_once(&mut c);
    assert!(d.log_text().contains("attempt failed"), "{}", d.log_text());
    // after the while, the start-up filter is back
    d.wait_for_log("log filter back to the start-up filter", T);
    let logged = d.log_text().matches("attempt failed").count();
    fail_once(&mut c);
    assert_eq!(d.log_text().matches("attempt failed").count(), logged);
    // a filter that does not parse changes nothing and says why
    let r = c.req(json!({"op": "log", "filter": "warden=[[["}));
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a log filter"));
    // and ctl does the same, for good
    let out = sb.ctl(&["log", "debug"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fail_once(&mut c);
    assert_eq!(d.log_text().matches("attempt failed").count(), logged + 1);
}

/// systemd's notify protocol, against a datagram socket the test owns: READY
/// once the admin socket answers, watchdog pings at half WATCHDOG_USEC while the
/// tree answers, STOPPING when SIGTERM begins the shutdown.
#[test]
fn the_service_manager_is_told_ready_alive_and_stopping() {
    let sb = Sandbox::new(&config());
    let notify_path = sb.path("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(T)).unwrap();
    let log = std::fs::File::create(sb.path("daemon.log")).unwrap();
    let child = std::process::Command::new(crate::common::warden_bin())
        .args(["run", "--config"])
        .arg(sb.config())
        .current_dir(sb.dir.path())
        .env_remove("RUST_LOG")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = crate::common::Daemon {
        child,
        log: sb.path("daemon.log"),
    };
    let next = || {
        let mut buf = [0u8; 256];
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.starts_with("READY=1"), "{ready}");
    // ready means ready: the admin socket answers now
    assert_eq!(sb.conn().req(json!({"op": "ping"}))["ok"], true);
    let pings = (0..3).map(|_| next()).filter(|m| m == "WATCHDOG=1").count();
    assert_eq!(pings, 3);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let mut saw_stopping = false;
    for _ in 0..10 {
        if next() == "STOPPING=1" {
            saw_stopping = true;
            break;
        }
    }
    assert!(saw_stopping);
    assert_eq!(d.wait_exit(T).code(), Some(0));
}

/// Dead letters are bounded: past `dlq_max` the oldest are purged, counted in
/// `dead_purged` and logged, durably (a restart keeps the newest `dlq_max`).
#[test]
fn dead_letters_are_capped_oldest_first_and_counted() {
    let sb = Sandbox::new(&config().replace(
        "accept_faults = true",
        "accept_faults = true\ndlq_max = 3\nmax_attempts = 1\npause_after = 0",
    ));
    let mut d = sb.start_ready();
    let mut c = sb.conn();
    for i in 0..5 {
        let r = c.req(json!({"op": "send", "to": "out", "payload": {"fault": "error", "i": i}}));
        assert_eq!(r["ok"], true, "{r}");
    }
    let ids = |c: &mut crate::common::Conn| -> Vec<i64> {
        let r = c.req(json!({"op": "dlq_list", "agent": "out"}));
        r["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["payload"]["i"].as_i64().unwrap())
            .collect()
    };
    wait_until_blocking("five dead, three kept", T, || {
        let s = c.req(json!({"op": "stats"}));
        s["result"]["agents"]["out"]["dead_lettered"] == 5
    });
    assert_eq!(ids(&mut c), [2, 3, 4], "the newest three");
    let s = c.req(json!({"op": "stats"}));
    assert_eq!(s["result"]["agents"]["out"]["dead_purged"], 2);
    assert!(d.log_text().contains("oldest dead letter purged"));
    c.req(json!({"op": "shutdown"}));
    assert_eq!(d.wait_exit(T).code(), Some(0));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    assert_eq!(ids(&mut c), [2, 3, 4], "the purge was durable");
}

/// `ctl backup` under load: a daemon started on the backup has every message
/// accepted before the backup began, and nothing it never accepted.
#[test]
fn a_backup_taken_under_load_restores_every_message_accepted_before_it() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let sb = Sandbox::new(&config().replace("[agent.out]", "[agent.out]\nmailbox = \"durable\""));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    assert_eq!(c.req(json!({"op": "stop", "agent": "out"}))["ok"], true);
    let acked = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let backup = sb.path("backup");
    let before = std::thread::scope(|s| {
        s.spawn(|| {
            let mut c = sb.conn();
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                let r = c.req(json!({"op": "send", "to": "out", "payload": {"i": i}}));
                assert_eq!(r["ok"], true, "{r}");
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
        });
        wait_until_blocking("load under way", T, || acked.load(Ordering::SeqCst) >= 200);
        let before = acked.load(Ordering::SeqCst);
        let out = sb.ctl(&["backup", backup.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        done.store(true, Ordering::SeqCst);
        before
    });
    let sent = acked.load(Ordering::SeqCst);
    // restore: a daemon whose data_dir is the backup
    let restore = Sandbox::new(
        &config()
            .replace("[agent.out]", "[agent.out]\nmailbox = \"durable\"")
            .replace(
                "data_dir = \"{dir}/data\"",
                &format!("data_dir = \"{}\"", backup.display()),
            ),
    );
    let _r = restore.start();
    wait_until_blocking("the backup's messages handled", T, || {
        json_lines(&restore.path("out.jsonl")).len() >= before
    });
    let seen: std::collections::BTreeSet<i64> = json_lines(&restore.path("out.jsonl"))
        .iter()
        .map(|l| l["payload"]["i"].as_i64().unwrap())
        .collect();
    assert!(
        (0..before as i64).all(|i| seen.contains(&i)),
        "every message accepted before the backup"
    );
    assert!(
        seen.iter().all(|&i| (i as usize) < sent),
        "nothing never accepted"
    );
}

/// A store whose backlog drained keeps its size (sled reuses the space but never
/// gives it back); `warden compact` gives it back with everything kept, and is
/// refused while the daemon runs.
#[test]
fn compact_gives_back_the_space_of_a_drained_backlog_and_keeps_every_record() {
    let config = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["work"]

[agent.work]
kind = "counter"
"#;
    let sb = Sandbox::new(config);
    let mut d = sb.start_ready();
    let mut c = sb.conn();
    assert_eq!(c.req(json!({"op": "stop", "agent": "work"}))["ok"], true);
    let n = 3000u64;
    let pad = "x".repeat(4096);
    for i in 0..n {
        let r = c.req(json!({"op": "send", "to": "work", "payload": {"i": i, "pad": pad}}));
        assert_eq!(r["ok"], true, "{r}");
    }
    assert_eq!(c.req(json!({"op": "start", "agent": "work"}))["ok"], true);
    wait_until_blocking("the backlog drains", Duration::from_secs(60), || {
        c.req(json!({"op": "stats"}))["result"]["agents"]["work"]["handled"] == n
    });
    // refused while the daemon holds the data directory
    let out = sb.run(&["compact", "--config", "warden.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop the daemon"));
    drop(c);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(T).success());
    let db = sb.path("data/store/db");
    let before = std::fs::metadata(&db).unwrap().len();
    assert!(
        before > n * 4096,
        "the drained backlog's space is still held: {before} bytes"
    );
    let out = sb.run(&["compact", "--config", "warden.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("compacted"));
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(after * 4 < before, "{before} -> {after} bytes");
    assert!(!sb.path("data/store.old").exists() && !sb.path("data/store.compact").exists());
    // the committed state is all there, and the store opens as before
    let _d = sb.start_ready();
    let r = sb
        .conn()
        .req(json!({"op": "call", "to": "work", "payload": {}}));
    assert_eq!(r["result"]["reply"]["count"], n + 1, "{r}");
}

/// `on_dead_letter`: each dead letter also goes to a fallback agent as
/// `{"dead_letter": {...}}`, once; one buried before the key was set (or whose
/// notice a crash kept from going) is sent at the next start, and only once.
#[test]
fn on_dead_letter_sends_each_dead_letter_to_the_fallback_once() {
    let config = |fallback: bool| {
        format!(
            r#"
[daemon]
data_dir = "{{dir}}/data"

[supervisor.root]
children = ["fallback", "fragile"]

[agent.fragile]
kind = "echo"
accept_faults = true
max_attempts = 1
{}

[agent.fallback]
kind = "sink"
path = "{{dir}}/fallback.jsonl"
"#,
            if fallback {
                "on_dead_letter = \"fallback\""
            } else {
                ""
            }
        )
    };
    let sb = Sandbox::new(&config(true));
    let mut d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"op": "send", "to": "fragile", "payload": {"fault": "error", "n": 1}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("the fallback got it", T, || {
        json_lines(&sb.path("fallback.jsonl")).len() == 1
    });
    let got = &json_lines(&sb.path("fallback.jsonl"))[0]["payload"]["dead_letter"];
    assert_eq!(got["reason"], "max_attempts", "{got}");
    assert_eq!(got["agent"], "fragile");
    assert_eq!(got["payload"]["n"], 1);
    // the dead letter stays where it was, too
    let l = c.req(json!({"op": "dlq_list", "agent": "fragile"}));
    assert_eq!(l["result"].as_array().unwrap().len(), 1);
    // a dead letter buried while no fallback was set goes at the next start with one
    drop(c);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(T).success());
    std::fs::write(
        sb.config(),
        config(false).replace("{dir}", sb.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let mut d = sb.start_ready();
    let r = sb
        .conn()
        .req(json!({"op": "send", "to": "fragile", "payload": {"fault": "error", "n": 2}}));
    assert_eq!(r["ok"], true);
    wait_until_blocking("buried", T, || {
        sb.conn().req(json!({"op": "dlq_list", "agent": "fragile"}))["result"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    assert_eq!(
        json_lines(&sb.path("fallback.jsonl")).len(),
        1,
        "no fallback: not sent"
    );
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(T);
    std::fs::write(
        sb.config(),
        config(true).replace("{dir}", sb.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let mut d = sb.start_ready();
    wait_until_blocking("sent at the start", T, || {
        json_lines(&sb.path("fallback.jsonl")).len() == 2
    });
    // and not again at the next start
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let _d = sb.start_ready();
    let r = sb
        .conn()
        .req(json!({"op": "call", "to": "fallback", "payload": {"probe": 1}}));
    assert_eq!(r["ok"], true, "{r}");
    let lines = json_lines(&sb.path("fallback.jsonl"));
    // one notice message per dead letter (a sink writes at least once: a SIGKILL
    // between its write and its ack repeats the line under the same message id)
    let notices: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["payload"]["dead_letter"].is_object())
        .map(|l| l["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(notices.len(), 2, "each dead letter once: {lines:?}");
}

/// `promtool check metrics` (Debian's prometheus package, which .ci/run
/// installs) passes on `text`; skipped, saying so, where promtool is not installed.
fn promtool_accepts(text: &str) {
    let body = text.split_once("\r\n\r\n").map_or(text, |(_, b)| b);
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool is not installed (apt-get install prometheus): not checked");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `telemetry.metrics_listen` serves the tree's counters as Prometheus text
/// (what promtool checks), or OpenMetrics text when asked for.
#[test]
fn metrics_are_served_as_prometheus_or_openmetrics_text() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sb = Sandbox::new(&format!(
        "{}\n[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n",
        config()
    ));
    let d = sb.start_ready();
    d.wait_for_log("metrics at /metrics", T);
    let mut c = sb.conn();
    for i in 0..3 {
        c.req(json!({"op": "send", "to": "out", "payload": {"i": i}}));
    }
    wait_until_blocking("handled", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 3
    });
    let get = |accept: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    // Prometheus text 0.0.4 unless OpenMetrics is asked for
    let plain = get("");
    assert!(plain.contains("text/plain; version=0.0.4"), "{plain}");
    assert!(
        plain.contains("# TYPE warden_messages_handled_total counter")
            && plain.contains("# TYPE warden_build_info gauge")
            && !plain.contains("# EOF"),
        "{plain}"
    );
    promtool_accepts(&plain);
    let text = get("Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    for line in [
        "warden_messages_accepted_total{agent=\"out\"} 3",
        "warden_messages_handled_total{agent=\"out\"} 3",
        "warden_mailbox_depth{agent=\"out\"} 0",
        "warden_build_info{version=",
        // histograms: one handling per message, each commit counted
        "# TYPE warden_handle_seconds histogram",
        "warden_handle_seconds_count{agent=\"out\"} 3",
        "warden_handle_seconds_bucket{le=\"+Inf\",agent=\"out\"} 3",
        "# TYPE warden_commit_seconds histogram",
        "# TYPE warden_commit_batch_size histogram",
        "# EOF",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
    // the same numbers as ctl stats
    let stats = sb.ctl_json(&["stats"]);
    let commits = stats["store"]["commits"].as_u64().unwrap();
    let batched: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("warden_commit_batch_size_sum{} "))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or_else(|| panic!("a batch-size sum in:\n{text}"));
    assert!(
        batched <= commits && batched >= 6,
        "requests in group commits ({batched}) vs ctl stats's commits ({commits})"
    );
}

/// `send --delay`: kept in the store, enqueued when due, once, across a SIGKILL.
#[test]
fn a_delayed_send_arrives_when_due_once_across_a_crash() {
    let sb = Sandbox::new(&config());
    let mut d = sb.start_ready();
    let t = std::time::Instant::now();
    let out = sb.ctl_json(&["send", "out", "{\"n\":1}", "--delay", "1s"]);
    assert!(out["delayed"].is_u64(), "{out}");
    assert!(
        json_lines(&sb.path("out.jsonl")).is_empty(),
        "not before it is due"
    );
    wait_until_blocking("delivered", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 1
    });
    assert!(t.elapsed() >= Duration::from_secs(1), "not before its time");
    // durable: the daemon dies before it is due, the next one delivers it once
    sb.ctl_json(&["send", "out", "{\"n\":2}", "--delay", "1500ms"]);
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let _d = sb.start_ready();
    wait_until_blocking("delivered after the restart", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 2
    });
    let r = sb
        .conn()
        .req(json!({"op": "call", "to": "out", "payload": {"probe": 1}}));
    assert_eq!(r["ok"], true);
    let ns: Vec<_> = json_lines(&sb.path("out.jsonl"))
        .iter()
        .filter_map(|l| l["payload"]["n"].as_u64())
        .collect();
    assert_eq!(ns, [1, 2], "each once");
    let r = sb
        .conn()
        .req(json!({"op": "send", "to": "nobody", "payload": {}, "delay": "1s"}));
    assert_eq!(r["error"]["code"], "unknown_agent", "{r}");
}
