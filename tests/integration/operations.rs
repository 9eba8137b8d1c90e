//! Operating a long-running daemon (issue 17): the log filter changes while it
//! runs, for a while or for good.

use std::time::Duration;

use crate::common::{json_lines, wait_until_blocking, Sandbox};
use serde_json::json;

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["out"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
accept_faults = true
backoff = { initial = "1ms", max = "1ms" }
"#;

const T: Duration = Duration::from_secs(10);

#[test]
fn the_log_filter_changes_live_and_reverts_after_its_time() {
    let sb = Sandbox::new(CONFIG);
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
