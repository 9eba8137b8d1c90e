//! The dashboard's HTTP side through the real daemon: the page without a token,
//! the API and the event stream only with the token the daemon wrote (0600) and
//! printed, the same JSON as `ctl --json`, and events as they happen.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{free_port, wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(20);

fn get(port: u16, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_page_is_open_the_api_and_events_need_the_token() {
    let port = free_port();
    let sb = Sandbox::new(&format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[telemetry]
metrics_listen = "127.0.0.1:{port}"

[supervisor.root]
children = ["out", "w"]

[agent.w]
kind = "echo"
accept_faults = true
max_attempts = 1
to = ["out"]

[agent.out]
kind = "sink"
path = "{{dir}}/out.jsonl"
"#
    ));
    let d = sb.start_ready();
    d.wait_for_log("dashboard at http://", T);
    let file = sb.path("data/dashboard.token");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "{token}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is the daemon user's only");
    assert!(
        d.log_text()
            .contains(&format!("127.0.0.1:{port}/#token={token}")),
        "the link is printed"
    );

    // the page: no token needed, everything in it (no CDN)
    let (status, page) = get(port, "/", None);
    assert_eq!(status, 200);
    assert!(page.contains("<title>Warden</title>") && page.contains("EventSource"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external resource"
    );
    // the API: 401 without the token or with a wrong one
    for (path, bearer) in [
        ("/api/tree", None),
        ("/api/tree", Some("0".repeat(64))),
        ("/api/stats", None),
        ("/api/dlq", None),
        ("/events", None),
    ] {
        assert_eq!(
            get(port, path, bearer.as_deref()).0,
            401,
            "{path} {bearer:?}"
        );
    }
    // with it: the same JSON as ctl --json
    let (status, body) = get(port, "/api/tree", Some(&token));
    assert_eq!(status, 200, "{body}");
    let tree: Value = serde_json::from_str(&body).unwrap();
    let ctl_tree = sb.ctl_json(&["tree"]);
    assert_eq!(tree["name"], "root");
    assert_eq!(
        tree["children"].as_array().unwrap().len(),
        ctl_tree["children"].as_array().unwrap().len()
    );
    let (status, body) = get(port, &format!("/api/stats?token={token}"), None);
    assert_eq!(status, 200, "the token as a query parameter: {body}");
    let stats: Value = serde_json::from_str(&body).unwrap();
    assert!(stats["agents"]["w"].is_object(), "{stats}");

    // events as they happen
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(s, "GET /events?token={token} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut c = sb.conn();
    let k = c.req(json!({"op": "kill", "agent": "w"}));
    assert_eq!(k["ok"], true, "{k}");
    let mut seen = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("the stream ended; saw {seen:?}");
        }
        if let Some(data) = line.trim().strip_prefix("data:") {
            let e: Value = serde_json::from_str(data.trim()).unwrap();
            seen.push(e.clone());
            if e["name"] == "w" && e["event"] == "restarted" {
                break;
            }
        }
    }
    // a dead letter shows in /api/dlq
    c.req(json!({"op": "send", "to": "w", "payload": {"fault": "error"}}));
    wait_until_blocking("the dead letter in /api/dlq", T, || {
        let (_, body) = get(port, "/api/dlq", Some(&token));
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.len() == 1))
            .unwrap_or(false)
    });
}
