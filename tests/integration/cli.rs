//! The real `warden` binary: config validation, start, graceful stop, exit codes.

use std::time::Duration;

use crate::common::{check, json_lines, Sandbox};
use nix::sys::signal::Signal;

const GOOD: &str = r#"
[daemon]
data_dir = "{dir}/data"
shutdown_timeout = "5s"

[supervisor.root]
children = ["intake", "pipeline"]

[supervisor.pipeline]
strategy = "rest_for_one"
children = ["planner", "out"]

[agent.intake]
kind = "echo"
to = ["planner"]

[agent.planner]
kind = "echo"
to = ["out"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
"#;

/// Asserts `config` is refused with exit 2 and an error naming `key` and `reason`.
fn refused(config: &str, key: &str, reason: &str) {
    let (code, err) = check(config);
    assert_eq!(code, 2, "exit code for {key}: {err}");
    assert!(err.contains("warden.toml"), "names the file: {err}");
    assert!(err.contains(key), "names the key {key:?}: {err}");
    assert!(err.contains(reason), "gives the reason {reason:?}: {err}");
}

#[test]
fn check_accepts_a_valid_config() {
    let (code, err) = check(GOOD);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_accepts_the_shipped_configs() {
    for file in [
        "config/warden.toml",
        "config/examples/full.toml",
        "config/examples/ports.toml",
        "config/examples/agents.toml",
        "config/examples/seed-review-loop.toml",
        "config/examples/seed-orchestrator.toml",
    ] {
        let out = std::process::Command::new(crate::common::warden_bin())
            .args(["check", "--config", file])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn config_error_unknown_key_suggests_nearest() {
    refused(
        &GOOD.replace(
            "kind = \"sink\"",
            "kind = \"sink\"\nrestrat = \"transient\"",
        ),
        "agent.out.restrat",
        "did you mean 'restart'?",
    );
    refused(
        &format!("{GOOD}\n[daemon2]\n"),
        "daemon2",
        "did you mean 'daemon'?",
    );
}

#[test]
fn config_error_child_not_defined() {
    refused(
        &GOOD.replace("[\"planner\", \"out\"]", "[\"plannr\", \"out\"]"),
        "supervisor.pipeline.children",
        "'plannr' is not defined; did you mean 'planner'?",
    );
}

#[test]
fn config_error_name_defined_twice() {
    refused(
        &format!("{GOOD}\n[supervisor.out]\nchildren = []\n"),
        "agent.out",
        "defined both as [supervisor.out] and as [agent.out]",
    );
    refused(
        &GOOD.replace(
            "children = [\"intake\", \"pipeline\"]",
            "children = [\"intake\", \"pipeline\", \"planner\"]",
        ),
        "children",
        "'planner' is already a child of",
    );
}

#[test]
fn config_error_cycle() {
    refused(
        &GOOD.replace("[\"planner\", \"out\"]", "[\"planner\", \"out\", \"root\"]"),
        "supervisor.pipeline.children",
        "cycle: root -> pipeline -> root",
    );
}

#[test]
fn config_error_not_reachable_from_root() {
    refused(
        &format!("{GOOD}\n[agent.orphan]\nkind = \"echo\"\n"),
        "agent.orphan",
        "not reachable from root",
    );
}

#[test]
fn config_error_missing_root() {
    refused(
        &GOOD.replace("[supervisor.root]", "[supervisor.top]"),
        "supervisor.root",
        "not defined",
    );
}

#[test]
fn config_error_bad_duration() {
    refused(
        &GOOD.replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"5\""),
        "daemon.shutdown_timeout",
        "has no unit",
    );
    refused(
        &GOOD.replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"soon\""),
        "daemon.shutdown_timeout",
        "is not a duration",
    );
    refused(
        &GOOD.replace("shutdown_timeout = \"5s\"", "shutdown_timeout = 5"),
        "daemon.shutdown_timeout",
        "expected a duration string",
    );
}

#[test]
fn config_error_bad_enum_value() {
    refused(
        &GOOD.replace("strategy = \"rest_for_one\"", "strategy = \"rest_for_on\""),
        "supervisor.pipeline.strategy",
        "did you mean \"rest_for_one\"?",
    );
    refused(
        &GOOD.replace("kind = \"sink\"", "kind = \"snk\""),
        "agent.out.kind",
        "unknown kind \"snk\"; did you mean \"sink\"?",
    );
}

#[test]
fn config_error_wrong_type() {
    refused(
        &GOOD.replace("kind = \"sink\"", "kind = \"sink\"\nreplicas = \"two\""),
        "agent.out.replicas",
        "expected a whole number",
    );
    refused(
        &GOOD.replace("kind = \"sink\"", "kind = \"sink\"\nreplicas = 0"),
        "agent.out.replicas",
        "must be between 1 and",
    );
}

#[test]
fn config_error_bad_combination() {
    refused(
        &GOOD.replace(
            "kind = \"sink\"",
            "kind = \"sink\"\nrestart = \"temporary\"\nrestart_backoff = { initial = \"1s\" }",
        ),
        "agent.out.restart_backoff",
        "a temporary child is never restarted",
    );
    refused(
        &format!("{GOOD}\n[limits.api]\nrequests_per_second = 5\nrequests_per_minute = 300\n"),
        "limits.api",
        "not both",
    );
    refused(
        &GOOD.replace("kind = \"sink\"", "kind = \"sink\"\nlimits = [\"openai\"]"),
        "agent.out.limits",
        "no limiter 'openai'",
    );
    refused(
        &GOOD.replace(
            "kind = \"sink\"",
            "kind = \"sink\"\nbackoff = { initial = \"5s\", max = \"1s\" }",
        ),
        "agent.out.backoff",
        "must not be less than initial",
    );
}

#[test]
fn config_error_not_toml() {
    // A syntax error has no key to name: it names the file, the line and column.
    let (code, err) = check("[daemon\n");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("warden.toml") && err.contains("not valid TOML") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn run_refuses_an_invalid_config_before_opening_anything() {
    let sb = Sandbox::new(&GOOD.replace("kind = \"sink\"", "kind = \"sink\"\nrestrat = 1"));
    let out = sb.run(&["run", "--config", "warden.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent.out.restrat"));
    assert!(!sb.path("data").exists(), "no data dir was created");
}

#[test]
fn sigterm_stops_the_daemon_with_exit_0() {
    let sb = Sandbox::new(GOOD);
    let mut d = sb.start();
    d.wait_for_log("warden started", Duration::from_secs(10));
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log_text());
    assert!(d.log_text().contains("stopped"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sb.path("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "data dir is private");
    assert!(json_lines(&sb.path("out.jsonl")).is_empty());
}

#[test]
fn sigint_stops_the_daemon_with_exit_0() {
    let sb = Sandbox::new(GOOD);
    let mut d = sb.start();
    d.wait_for_log("warden started", Duration::from_secs(10));
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_child_failing_to_start_fails_the_daemon_with_the_reason() {
    // The sink's directory is a regular file: opening the sink fails at start (the
    // config is valid), so the tree cannot start.
    let sb = Sandbox::new(&GOOD.replace(
        "path = \"{dir}/out.jsonl\"",
        "path = \"{dir}/blocker/out.jsonl\"",
    ));
    std::fs::write(sb.path("blocker"), b"a file").unwrap();
    let log = sb.start_fails("the tree failed to start");
    assert!(log.contains("agent 'out'"), "{log}");
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new(GOOD);
    assert_eq!(sb.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(sb.run(&["bench", "nosuch"]).status.code(), Some(2));
    assert_eq!(sb.run(&["--help"]).status.code(), Some(0));
}

/// A graceful shutdown that outlasts the daemon's one-minute housekeeping tick is
/// not dropped by it: the daemon still exits 0 once the slow handler finishes.
/// (The tick fires 60 s after start; the handler runs from about 1 s to 66 s.)
#[test]
fn a_long_graceful_shutdown_survives_the_housekeeping_tick() {
    let sb = Sandbox::new(
        r#"
[daemon]
data_dir = "{dir}/data"
shutdown_timeout = "120s"

[supervisor.root]
children = ["slow"]

[agent.slow]
kind = "echo"
accept_faults = true
timeout = "120s"
shutdown = "110s"
"#,
    );
    let mut d = sb.start_ready();
    let r = sb.ctl_json(&["send", "slow", r#"{"fault":"sleep","ms":66000}"#]);
    assert!(r["message_id"].is_string(), "{r}");
    crate::common::wait_until_blocking("the slow handler runs", Duration::from_secs(10), || {
        sb.ctl_json(&["stats"])["agents"]["slow"]["in_flight"] == 1
    });
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(110));
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert!(d.log_text().contains("stopped"), "{}", d.log_text());
}

#[test]
fn check_warns_about_combinations_that_cannot_work() {
    let sb = crate::common::Sandbox::new(
        "[supervisor.root]\nchildren = [\"a\"]\n[agent.a]\nkind = \"echo\"\ntimeout = \"30s\"\ndeadline = \"10s\"\n",
    );
    let out = sb.run(&["check", "--config", "warden.toml"]);
    assert!(out.status.success(), "a warning is not an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:")
            && err.contains("agent.a: deadline (10s) is not longer than timeout (30s)"),
        "{err}"
    );
}
