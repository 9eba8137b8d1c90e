//! `warden chaos` through the real binary: durable mailboxes, agent and supervisor
//! kills, daemon SIGKILLs and poison (panic, abort), checked like Jepsen's
//! total-queue. CI runs a few short seeds; `WARDEN_CHAOS_LONG=1` runs the long
//! campaign (minutes; its report is printed).

use serde_json::Value;

use crate::common::warden_bin;

fn chaos(args: &[&str]) -> (i32, Value, String) {
    let out = std::process::Command::new(warden_bin())
        .arg("chaos")
        .args(args)
        .arg("--json")
        .output()
        .expect("run warden chaos");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn assert_pass(args: &[&str]) {
    let (code, r, err) = chaos(args);
    eprintln!(
        "warden chaos {args:?}: {r}\n{}",
        err.lines().next().unwrap_or("")
    );
    assert!(err.contains("seed"), "the seed is printed first: {err}");
    assert_eq!(r["verdict"], "pass", "{r}\n{err}");
    assert_eq!(code, 0);
    for k in ["lost", "phantom", "handoff_duplicates", "orphans"] {
        assert_eq!(r[k], 0, "{k}: {r}");
    }
    assert_eq!(r["dead_letters"]["innocent"], 0, "{r}");
    assert_eq!(
        r["dead_letters"]["expected"], r["dead_letters"]["actual"],
        "{r}"
    );
    assert!(r["completed"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn chaos_on_the_builtin_tree_passes_across_seeds() {
    for _ in 0..2 {
        let seed = crate::seed("warden_chaos_builtin").to_string();
        assert_pass(&[
            "--seed",
            &seed,
            "--duration",
            "5s",
            "--rate",
            "120/s",
            "--kill-rate",
            "4/s",
            "--sigkill-every",
            "2s",
            "--poison",
            "0.03",
        ]);
    }
}

#[test]
fn chaos_on_a_user_tree_with_a_pool_and_commit_window() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("user.toml");
    std::fs::write(
        &cfg,
        r#"
[daemon]
data_dir = "ignored"
commit_max_delay = "5ms"           # a wide commit window: kills land inside commits

[supervisor.root]
strategy = "one_for_all"
max_restarts = 100000
within = "1s"
children = ["intake", "pool", "out"]

[agent.intake]
kind = "echo"
to = ["pool"]
max_attempts = 4
backoff = { initial = "2ms", max = "20ms" }

[agent.pool]
kind = "echo"
to = ["out"]
replicas = 3
max_attempts = 4
backoff = { initial = "2ms", max = "20ms" }

[agent.out]
kind = "sink"
path = "ignored.jsonl"
max_attempts = 4
backoff = { initial = "2ms", max = "20ms" }
"#,
    )
    .unwrap();
    let seed = crate::seed("warden_chaos_user").to_string();
    assert_pass(&[
        "--config",
        cfg.to_str().unwrap(),
        "--entry",
        "intake",
        "--seed",
        &seed,
        "--duration",
        "5s",
        "--rate",
        "150/s",
        "--kill-rate",
        "5/s",
        "--sigkill-every",
        "2500ms",
        "--poison",
        "0.02",
    ]);
}

/// The long campaign (`WARDEN_CHAOS_LONG=1`): 1M tasks, about 1,000 kills, 20
/// daemon SIGKILLs, 5 % poison. At 5 % poison the built-in pipeline handles a few
/// hundred tasks a second here, so this takes about an hour; the fault rates are
/// set for that pace (`WARDEN_CHAOS_LONG_TASKS` sets a smaller count).
#[test]
fn chaos_long_campaign_when_asked() {
    if std::env::var("WARDEN_CHAOS_LONG").is_err() {
        eprintln!("chaos long campaign: set WARDEN_CHAOS_LONG=1 to run it");
        return;
    }
    let tasks = std::env::var("WARDEN_CHAOS_LONG_TASKS").unwrap_or_else(|_| "1000000".into());
    let seed = crate::seed("warden_chaos_long").to_string();
    assert_pass(&[
        "--seed",
        &seed,
        "--tasks",
        &tasks,
        "--duration",
        "5000s",
        "--rate",
        "400/s",
        "--kill-rate",
        "0.25/s",
        "--sigkill-every",
        "200s",
        "--poison",
        "0.05",
        "--abort",
        "0.0005",
        "--slow",
        "0.0001",
    ]);
}

#[test]
fn chaos_refuses_bad_arguments_with_exit_2() {
    let (code, _, err) = chaos(&["--poison", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("--poison"), "{err}");
    let (code, _, err) = chaos(&["--slow", "-1"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = chaos(&["--config", "/nonexistent.toml", "--seed", "424242"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--entry") || err.contains("nonexistent"),
        "{err}"
    );
    assert!(
        !chaos_dirs().iter().any(|d| d.ends_with("-424242")),
        "a refused run leaves no work directory behind"
    );
}

/// This process's view of the chaos work directories in the temp dir.
fn chaos_dirs() -> std::collections::BTreeSet<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("warden-chaos-"))
        .collect()
}
