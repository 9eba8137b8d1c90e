//! Absurd numbers and paths (issue 11): `warden check` refuses every value that
//! would make `warden run` panic, hang or lose a message, naming the key and the
//! allowed range; what `check` accepts, `run` runs.

use std::time::Duration;

use crate::common::{check, wait_until_blocking, Sandbox};
use serde_json::json;

/// The tree every case starts from.
const BASE: &str = crate::common::SINK_TREE;

/// `BASE` with `line` added to section `section` (created if missing).
fn with(section: &str, line: &str) -> String {
    let header = format!("[{section}]");
    if BASE.contains(&header) {
        BASE.replace(&header, &format!("{header}\n{line}"))
    } else {
        format!("{BASE}\n{header}\n{line}\n")
    }
}

/// The matrix of values `check` accepted before and `run` could not survive.
#[test]
fn check_refuses_numbers_run_cannot_survive() {
    let cases = [
        ("limits.api", "requests_per_minute = 1e-300", "limits.api.requests_per_minute"),
        ("limits.api", "requests_per_second = 1e-300", "limits.api.requests_per_second"),
        ("limits.api", "tokens_per_minute = 1e300\nrequests_per_second = 1", "limits.api.tokens_per_minute"),
        ("limits.api", "requests_per_second = 1\nburst = 4000000000", "limits.api.burst"),
        ("supervisor.root", "max_restarts = 2147483648", "supervisor.root.max_restarts"),
        ("supervisor.root", "within = \"10000000000000000000s\"", "supervisor.root.within"),
        ("daemon", "commit_max_delay = \"10000000000000000000s\"", "daemon.commit_max_delay"),
        ("daemon", "commit_max_delay = \"5s\"", "daemon.commit_max_delay"),
        ("daemon", "idempotency_retention = \"10000000000000000000s\"", "daemon.idempotency_retention"),
        ("daemon", "shutdown_timeout = \"10000000000000000000s\"", "daemon.shutdown_timeout"),
        ("agent.out", "backoff = { initial = \"10000000000000000000s\", max = \"10000000000000000000s\" }", "agent.out.backoff"),
        ("agent.out", "backoff = { multiplier = 1e300 }", "agent.out.backoff.multiplier"),
        ("agent.out", "breaker = { cool_down = \"10000000000000000000s\" }", "agent.out.breaker.cool_down"),
        ("agent.out", "restart_backoff = { initial = \"10000000000000000000s\", max = \"10000000000000000000s\" }", "agent.out.restart_backoff"),
        ("agent.out", "deadline = \"10000000000000000000s\"", "agent.out.deadline"),
        ("agent.out", "timeout = \"10000000000000000000s\"", "agent.out.timeout"),
        ("agent.out", "pause_cool_down = \"10000000000000000000s\"", "agent.out.pause_cool_down"),
        ("agent.out", "shutdown = \"10000000000000000000s\"", "agent.out.shutdown"),
    ];
    for (section, line, key) in cases {
        let (code, err) = check(&with(section, line));
        assert_eq!(code, 2, "{line}: accepted");
        assert!(err.contains(key), "{line}: names {key}: {err}");
        assert!(
            err.contains("at most") || err.contains("between") || err.contains("longest"),
            "{line}: says the allowed range: {err}"
        );
    }
}

/// What `run` refuses, `check` finds first.
#[test]
fn check_finds_everything_run_refuses() {
    let long = format!("socket = \"/tmp/{}.sock\"", "s".repeat(120));
    let cases = [
        ("daemon", "socket = \"\"".to_string(), "daemon.socket"),
        ("daemon", long, "daemon.socket"),
        ("daemon", "data_dir = \"/\"".to_string(), "daemon.data_dir"),
    ];
    for (section, line, key) in cases {
        let config = if line.starts_with("data_dir") {
            BASE.replace("data_dir = \"{dir}/data\"", &line)
        } else {
            with(section, &line)
        };
        let (code, err) = check(&config);
        assert_eq!(code, 2, "{line}: accepted");
        assert!(err.contains(key), "{line}: names {key}: {err}");
    }
    for path in ["path = \"{dir}\"", "path = 5"] {
        let (code, err) = check(&BASE.replace("path = \"{dir}/out.jsonl\"", path));
        assert_eq!(code, 2, "{path}: accepted");
        assert!(err.contains("agent.out.path"), "{path}: {err}");
    }
}

/// Supervisors nest at most 32 deep: deeper is refused by `check` (not a stack
/// overflow in `run`), and a tree at the limit runs and is drawn by `ctl tree`.
#[test]
fn nesting_is_bounded_and_trees_at_the_limit_work() {
    let nest = |depth: usize| {
        let mut t = String::from("[daemon]\ndata_dir = \"{dir}/data\"\n");
        for i in 0..depth {
            let name = if i == 0 {
                "root".to_string()
            } else {
                format!("s{i}")
            };
            let child = if i + 1 == depth {
                "leaf".to_string()
            } else {
                format!("s{}", i + 1)
            };
            t.push_str(&format!("[supervisor.{name}]\nchildren = [\"{child}\"]\n"));
        }
        t.push_str("[agent.leaf]\nkind = \"echo\"\n");
        t
    };
    let (code, err) = check(&nest(2000));
    assert_eq!(code, 2, "2000 levels accepted");
    assert!(err.contains("deeper than 32"), "{err}");
    let sb = Sandbox::new(&nest(32));
    let _d = sb.start_ready();
    let tree = sb.ctl_json(&["tree"]);
    let mut depth = 0;
    let mut n = &tree;
    while let Some(c) = n["children"].get(0) {
        depth += 1;
        n = c;
    }
    assert_eq!((depth, n["name"].as_str()), (32, Some("leaf")));
}

/// A deadline too far to represent is refused, not wrapped into the past.
#[test]
fn huge_deadlines_are_refused_and_replays_can_reset_them() {
    let sb = Sandbox::new(BASE);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = c
        .req(json!({"op": "send", "to": "out", "payload": 1, "deadline": "18446744073709551615s"}));
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("deadline"),
        "{r}"
    );
    // a letter dead on its deadline is replayed with a new one (or none)
    c.req(json!({"op": "stop", "agent": "out"}));
    let r = c.req(json!({"op": "send", "to": "out", "payload": 2, "deadline": "1ms"}));
    assert_eq!(r["ok"], true, "{r}");
    std::thread::sleep(Duration::from_millis(20)); // let the 1 ms deadline pass
    c.req(json!({"op": "start", "agent": "out"}));
    wait_until_blocking("dead on its deadline", Duration::from_secs(10), || {
        let r = c.req(json!({"op": "dlq_list", "agent": "out"}));
        r["result"].as_array().is_some_and(|a| a.len() == 1)
    });
    let r = c.req(json!({"op": "dlq_replay", "agent": "out", "all": true, "deadline": "none"}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("replayed and handled", Duration::from_secs(10), || {
        crate::common::json_lines(&sb.path("out.jsonl")).len() == 1
    });
}

// ---- paths and permissions (run as root here; a second user is uid 65534) ----

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_lock_file_is_never_opened_through_a_symlink() {
    let sb = Sandbox::new(BASE);
    std::fs::create_dir_all(sb.path("data")).unwrap();
    std::fs::write(sb.path("precious"), b"precious").unwrap();
    std::os::unix::fs::symlink(sb.path("precious"), sb.path("data/warden.lock")).unwrap();
    sb.start_fails("warden.lock");
    assert_eq!(std::fs::read(sb.path("precious")).unwrap(), b"precious");
}

#[test]
fn a_data_dir_owned_by_another_user_is_refused() {
    let sb = Sandbox::new(BASE);
    std::fs::create_dir_all(sb.path("data")).unwrap();
    if std::os::unix::fs::chown(sb.path("data"), Some(65534), Some(65534)).is_err() {
        eprintln!("a_data_dir_owned_by_another_user_is_refused: SKIPPED: needs root to chown");
        return;
    }
    let mut d = sb.start();
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(
        d.log_text().contains("owned by uid 65534"),
        "{}",
        d.log_text()
    );
}

#[test]
fn existing_directories_keep_their_modes() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new(&BASE.replace(
        "data_dir = \"{dir}/data\"",
        "data_dir = \"{dir}/data\"\nsocket = \"{dir}/shared/warden.sock\"",
    ));
    std::fs::create_dir_all(sb.path("shared")).unwrap();
    std::fs::set_permissions(sb.path("shared"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir_all(sb.path("data")).unwrap();
    std::fs::set_permissions(sb.path("data"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let d = sb.start();
    d.wait_for_log("warden started", Duration::from_secs(10));
    assert_eq!(
        mode(&sb.path("shared")),
        0o1777,
        "the shared socket dir keeps its mode"
    );
    assert_eq!(
        mode(&sb.path("data")),
        0o750,
        "an existing data dir keeps its mode"
    );
    assert_eq!(mode(&sb.path("shared/warden.sock")) & 0o777, 0o600);
}

#[test]
fn a_socket_path_on_a_regular_file_is_refused_not_deleted() {
    let sb = Sandbox::new(&BASE.replace(
        "data_dir = \"{dir}/data\"",
        "data_dir = \"{dir}/data\"\nsocket = \"{dir}/notes.txt\"",
    ));
    std::fs::write(sb.path("notes.txt"), b"my notes").unwrap();
    sb.start_fails("is not a socket");
    assert_eq!(std::fs::read(sb.path("notes.txt")).unwrap(), b"my notes");
}

#[test]
fn sink_files_are_private_and_never_followed_through_symlinks() {
    let sb = Sandbox::new(BASE);
    let d = sb.start_ready();
    let mut c = sb.conn();
    c.req(json!({"op": "send", "to": "out", "payload": "secret"}));
    wait_until_blocking("written", Duration::from_secs(10), || {
        crate::common::json_lines(&sb.path("out.jsonl")).len() == 1
    });
    assert_eq!(mode(&sb.path("out.jsonl")), 0o600);
    drop(c);
    drop(d);
    let sb = Sandbox::new(BASE);
    std::fs::write(sb.path("elsewhere"), b"").unwrap();
    std::os::unix::fs::symlink(sb.path("elsewhere"), sb.path("out.jsonl")).unwrap();
    sb.start_fails("out.jsonl");
}

// ---- hostile or careless clients ----

#[test]
fn ctl_reads_payloads_from_a_file_or_stdin_not_only_the_command_line() {
    let sb = Sandbox::new(BASE);
    let _d = sb.start_ready();
    std::fs::write(sb.path("payload.json"), br#"{"secret":"from a file"}"#).unwrap();
    let file = format!("@{}", sb.path("payload.json").display());
    let out = sb.ctl(&["send", "out", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_blocking("handled", Duration::from_secs(10), || {
        crate::common::json_lines(&sb.path("out.jsonl"))
            .iter()
            .any(|l| l["payload"]["secret"] == "from a file")
    });
    let help = sb.ctl(&["send", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("@FILE"));
}

#[test]
fn suggestions_cost_bounded_work() {
    let sb = Sandbox::new(BASE);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let huge = "x".repeat(900_000);
    let r = c.req(json!({"op": huge}));
    assert_eq!(r["error"]["code"], "unknown_op");
    assert!(!r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean"));
    let r = c.req(json!({"op": "send", "to": "o".repeat(100_000), "payload": 1}));
    assert_eq!(r["error"]["code"], "unknown_agent");
    // a near name still gets its suggestion
    let r = c.req(json!({"op": "send", "to": "oot", "payload": 1}));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 'out'"),
        "{r}"
    );
}

#[test]
fn idempotency_keys_are_bounded() {
    let sb = Sandbox::new(BASE);
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"op": "send", "to": "out", "payload": 1, "key": "k".repeat(1 << 19)}));
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 256 bytes"),
        "{r}"
    );
    let r = c.req(json!({"op": "send", "to": "out", "payload": 1, "key": "k".repeat(256)}));
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn blank_lines_do_not_keep_a_client_slot() {
    use std::io::{BufRead, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    let sb = Sandbox::new(&BASE.replace(
        "data_dir = \"{dir}/data\"",
        "data_dir = \"{dir}/data\"\nadmin_idle_timeout = \"1s\"",
    ));
    let _d = sb.start_ready();
    let stream = std::os::unix::net::UnixStream::connect(sb.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            // a careless client: a blank line every 200 ms, for 10 s
            for _ in 0..50 {
                if writer.write_all(b"\n").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            sending.store(false, Ordering::SeqCst);
        });
        let mut line = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("idle_timeout"), "{line}");
        assert!(
            sending.load(Ordering::SeqCst),
            "timed out only after the blank lines stopped"
        );
    });
}

#[test]
fn a_caller_that_hangs_up_frees_its_slot() {
    let sb = Sandbox::new(&BASE.replace(
        "data_dir = \"{dir}/data\"",
        "data_dir = \"{dir}/data\"\nadmin_max_clients = 1",
    ));
    let _d = sb.start_ready();
    {
        let mut a = sb.conn();
        assert_eq!(a.req(json!({"op": "stop", "agent": "out"}))["ok"], true);
        a.write_raw(b"{\"op\":\"call\",\"to\":\"out\",\"payload\":1,\"timeout\":\"300s\"}\n");
        // hang up while the call waits for a reply that will not come
    }
    wait_until_blocking("the slot is free again", Duration::from_secs(10), || {
        let mut b = sb.conn();
        b.req(json!({"op": "ping"}))["ok"] == true
    });
}

/// Out of file descriptors, the accept loop backs off and logs once instead of
/// spinning (which wrote 190 MB of log in 5 s), and serves again when fds free up.
#[test]
fn running_out_of_file_descriptors_does_not_spin() {
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new(&BASE.replace(
        "data_dir = \"{dir}/data\"",
        "data_dir = \"{dir}/data\"\nadmin_max_clients = 1000",
    ));
    let log = std::fs::File::create(sb.path("daemon.log")).unwrap();
    let mut cmd = std::process::Command::new(crate::common::warden_bin());
    cmd.args(["run", "--config"])
        .arg(sb.config())
        .current_dir(sb.dir.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 64, 64)
                .map_err(std::io::Error::from)
        });
    }
    // killed on drop, even when an assertion fails
    let _daemon = crate::common::Daemon {
        child: cmd.spawn().unwrap(),
        log: sb.path("daemon.log"),
    };
    let log_text = || std::fs::read_to_string(sb.path("daemon.log")).unwrap_or_default();
    wait_until_blocking("started", Duration::from_secs(20), || {
        log_text().contains("warden started")
    });
    // hold more connections than the daemon has descriptors for
    let mut held: Vec<std::os::unix::net::UnixStream> = (0..100)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(sb.socket()).ok())
        .collect();
    wait_until_blocking("accept fails", Duration::from_secs(10), || {
        log_text().contains("admin accept failed")
    });
    // absence over time: a second of failing accepts writes one warning, not a flood
    std::thread::sleep(Duration::from_secs(1));
    let failures = log_text().matches("admin accept failed").count();
    assert!(failures <= 2, "{failures} warnings in a second");
    assert!(
        log_text().len() < 100_000,
        "the log grew to {} bytes",
        log_text().len()
    );
    held.clear();
    wait_until_blocking("serves again", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(sb.socket()).is_ok_and(|s| {
            let mut c = crate::common::Conn::from_stream(s);
            c.req(json!({"op": "ping"}))["ok"] == true
        })
    });
}

/// An agent remembers at most `MAX_KEYS` live idempotency keys: one more is
/// refused (payload handed back) until keys expire, which a full index forgets
/// at once rather than at the next sweep.
#[tokio::test(start_paused = true)]
async fn the_idempotency_key_index_is_bounded() {
    use warden::actors::{SendError, SendOptions, MAX_KEYS};
    use warden::supervision::{ChildSpec, SupervisorSpec};
    let mut a = crate::common::tree::counter("keys");
    a.mailbox_capacity = MAX_KEYS + 10;
    let (k, _) = crate::common::tree::kinds();
    let rt = warden::Runtime::start(SupervisorSpec::new("root").child(ChildSpec::agent(a)), k)
        .await
        .unwrap();
    rt.stop_child("keys").await.unwrap();
    let keyed = |i: usize| SendOptions {
        key: Some(format!("k{i}")),
        ..Default::default()
    };
    for i in 0..MAX_KEYS {
        rt.send_with("keys", json!(i), keyed(i)).await.unwrap();
    }
    let refused = rt
        .send_with("keys", json!("one more"), keyed(MAX_KEYS))
        .await
        .unwrap_err();
    assert!(
        matches!(refused.error, SendError::KeysFull { .. }),
        "{refused:?}"
    );
    assert_eq!(refused.payload, Some(json!("one more")));
    // a send without a key is not refused for keys
    rt.send("keys", json!("no key")).await.unwrap();
    // a day later every key has expired: the full index forgets them and accepts
    tokio::time::advance(Duration::from_secs(25 * 3600)).await;
    rt.send_with("keys", json!("later"), keyed(MAX_KEYS))
        .await
        .unwrap();
}
