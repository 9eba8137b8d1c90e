//! `http` agents (webhooks) through the real binary against a real HTTP server on
//! 127.0.0.1 (tests/ports/webhook.py, stdlib Python): the status mapping,
//! `Idempotency-Key`, `${VAR}` headers kept secret, results as effects, and
//! connection reuse.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{json_lines, wait_until_blocking, Conn, Daemon, Sandbox};

const T: Duration = Duration::from_secs(20);

/// The webhook server, killed on drop.
pub(crate) struct Hook {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for Hook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn hook(sb: &Sandbox) -> Hook {
    let mut child = Command::new("python3")
        .arg(format!(
            "{}/tests/ports/webhook.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(sb.path("requests.jsonl"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Hook {
        port: line.trim().parse().expect("the webhook prints its port"),
        child,
    }
}

fn start(sb: &Sandbox, secret: &str) -> Daemon {
    let log = std::fs::File::create(sb.path("daemon.log")).unwrap();
    let child = Command::new(crate::common::warden_bin())
        .args(["run", "--config"])
        .arg(sb.config())
        .current_dir(sb.dir.path())
        .env_remove("RUST_LOG")
        .env("HOOK_TOKEN", secret)
        .stderr(log)
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        log: sb.path("daemon.log"),
    };
    d.wait_for_log("warden started", T);
    d
}

fn config(port: u16) -> String {
    format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[limits.upstream]
requests_per_second = 1000

[supervisor.root]
children = ["out", "notify"]

[agent.out]
kind = "sink"
path = "{{dir}}/out.jsonl"

[agent.notify]
kind = "http"
url = "http://127.0.0.1:{port}/hook"
headers = {{ Authorization = "Bearer ${{HOOK_TOKEN}}", X-Team = "ops" }}
to = ["out"]
limits = ["upstream"]
max_attempts = 3
backoff = {{ initial = "10ms", max = "10ms" }}
"#
    )
}

pub(crate) fn requests(sb: &Sandbox) -> Vec<Value> {
    json_lines(&sb.path("requests.jsonl"))
}

fn dead(c: &mut Conn) -> Vec<Value> {
    c.req(json!({"op": "dlq_list", "agent": "notify"}))["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_webhook_gets_the_deliver_params_and_its_answers_map_to_outcomes() {
    let secret = "tok-7f3a-never-shown";
    let sb = Sandbox::new("");
    let h = hook(&sb);
    std::fs::write(
        sb.config(),
        config(h.port).replace("{dir}", sb.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let d = start(&sb, secret);
    let mut c = sb.conn();

    // 2xx with a result object: its reply, emits and state are the effects
    let r = c.req(json!({"op": "call", "to": "notify", "payload": {"result":
        {"reply": {"ok": 1}, "emit": [{"to": "out", "payload": {"hooked": true}}], "state": {"n": 1}}}}));
    assert_eq!(r["result"]["reply"], json!({"ok": 1}), "{r}");
    wait_until_blocking("emitted", T, || {
        json_lines(&sb.path("out.jsonl")).len() == 1
    });
    let first = &requests(&sb)[0];
    assert_eq!(first["path"], "/hook");
    assert_eq!(first["body"]["attempt"], 1);
    assert_eq!(first["body"]["payload"]["result"]["state"]["n"], 1);
    let headers = first["headers"].as_object().unwrap();
    assert_eq!(headers["idempotency-key"], first["body"]["message_id"]);
    assert_eq!(headers["x-team"], "ops");
    assert_eq!(
        headers["authorization"],
        format!("<{} chars>", "Bearer ".len() + secret.len()),
        "the header was expanded from the daemon's environment"
    );

    // 500 twice, then 200: retried with the same Idempotency-Key
    let r = c.req(json!({"op": "call", "to": "notify", "payload": {"status": 500, "times": 2}}));
    assert_eq!(r["ok"], true, "{r}");
    let tries: Vec<Value> = requests(&sb)
        .into_iter()
        .filter(|q| q["body"]["payload"]["status"] == 500)
        .collect();
    assert_eq!(tries.len(), 3);
    assert!(tries
        .iter()
        .all(|q| q["headers"]["idempotency-key"] == tries[0]["headers"]["idempotency-key"]));
    assert_eq!(tries[2]["body"]["attempt"], 3);

    // 429 with Retry-After: the limiter pauses, the attempt is not counted
    let t = Instant::now();
    let r = c.req(json!({"op": "call", "to": "notify", "payload": {"status": 429, "times": 3, "retry_after": "1"}}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(t.elapsed() >= Duration::from_secs(3), "three 1 s pauses");
    let last = requests(&sb).into_iter().last().unwrap();
    assert_eq!(
        last["body"]["attempt"], 1,
        "429s consume no attempt: {last}"
    );
    let stats = c.req(json!({"op": "stats"}))["result"]["limits"]["upstream"].clone();
    assert_eq!(stats["pauses"], 3, "{stats}");

    // other 4xx: dead-lettered at once
    c.req(json!({"op": "send", "to": "notify", "payload": {"status": 422, "times": 9}}));
    wait_until_blocking("dead-lettered", T, || dead(&mut c).len() == 1);
    let dl = &dead(&mut c)[0];
    assert_eq!(dl["reason"], "non_retryable", "{dl}");
    assert_eq!(dl["attempts"], 1);
    assert!(
        dl["last_error"].as_str().unwrap().contains("HTTP 422"),
        "{dl}"
    );

    // connections are reused
    let conns: std::collections::HashSet<String> = requests(&sb)
        .iter()
        .map(|q| q["conn"].as_str().unwrap().to_string())
        .collect();
    assert!(
        conns.len() < requests(&sb).len() / 2,
        "kept alive: {conns:?}"
    );

    // the secret is never shown
    for args in [vec!["tree"], vec!["stats"], vec!["dlq", "list"]] {
        let out = sb.ctl(&args);
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    }
    assert!(!d.log_text().contains(secret));
}

#[test]
fn a_missing_header_variable_fails_the_start_naming_it() {
    let sb = Sandbox::new(&config(9).replace("HOOK_TOKEN", "NO_SUCH_VAR_FOR_WARDEN"));
    sb.start_fails("NO_SUCH_VAR_FOR_WARDEN is not set");
}
