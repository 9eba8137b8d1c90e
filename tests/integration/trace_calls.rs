//! The spans around a handling, through the real binary to a real OTLP receiver:
//! a limiter wait is in the message's trace (under its enqueue span), the commit
//! under the attempt, and a call out carries the attempt's span as its
//! `traceparent`, so the callee's spans join the same trace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;

use crate::common::{wait_until_blocking, Sandbox};
use crate::traces::{attr, hex, Receiver};

const T: Duration = Duration::from_secs(30);

#[test]
fn limiter_waits_commits_and_calls_out_are_in_the_message_trace() {
    let spans = Arc::new(Mutex::new(Vec::<Span>::new()));
    let rx = Receiver::start("127.0.0.1:0", spans.clone());
    let sb = Sandbox::new("");
    let hook = crate::webhooks::hook(&sb);
    let config = format!(
        r#"
[daemon]
data_dir = "{{dir}}/data"

[telemetry]
otlp_endpoint = "http://{receiver}"
sample = 1.0

[limits.slow]
requests_per_second = 4

[supervisor.root]
children = ["notify"]

[agent.notify]
kind = "http"
url = "http://127.0.0.1:{port}/hook"
limits = ["slow"]
"#,
        receiver = rx.addr,
        port = hook.port
    );
    std::fs::write(
        sb.config(),
        config.replace("{dir}", sb.dir.path().to_str().unwrap()),
    )
    .unwrap();
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let n = 4;
    for i in 0..n {
        let r = c.req(
            json!({"op": "send", "to": "notify", "correlation": format!("call-{i}"),
            "payload": {"i": i}}),
        );
        assert_eq!(r["ok"], true, "{r}");
    }
    let of = |name: &str| -> Vec<Span> {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    };
    wait_until_blocking("every call's commit exported", T, || {
        of("warden.commit").len() == n
    });
    let by_correlation = |name: &str| -> BTreeMap<String, Span> {
        of(name)
            .into_iter()
            .map(|s| (attr(&s, "correlation").unwrap_or_default(), s))
            .collect()
    };
    let enqueue = by_correlation("warden.enqueue");
    let handle = by_correlation("warden.handle");
    let commit = by_correlation("warden.commit");
    // 4 a second, a burst of 1: the later messages waited, each in its own trace
    let waits = of("warden.limiter.wait");
    assert!(
        waits.len() >= n - 2,
        "most of the messages waited: {waits:?}"
    );
    for w in &waits {
        let corr = attr(w, "correlation").expect("a wait names its message");
        let e = &enqueue[&corr];
        assert_eq!(attr(w, "limiter").as_deref(), Some("slow"));
        assert_eq!(w.trace_id, e.trace_id, "{corr}: in the message's trace");
        assert_eq!(
            w.parent_span_id, e.span_id,
            "{corr}: under its enqueue span"
        );
        let h = &handle[&corr];
        assert!(
            w.end_time_unix_nano <= h.start_time_unix_nano,
            "{corr}: the wait comes before the attempt"
        );
        assert!(w.end_time_unix_nano > w.start_time_unix_nano);
    }
    let requests = crate::webhooks::requests(&sb);
    assert_eq!(requests.len(), n, "one call per message");
    for r in &requests {
        let corr = r["body"]["correlation"].as_str().unwrap().to_string();
        let h = &handle[&corr];
        let tp = r["headers"]["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("{corr}: the call carries a traceparent: {r}"));
        assert_eq!(
            tp,
            format!("00-{}-{}-01", hex(&h.trace_id), hex(&h.span_id)),
            "{corr}: the callee is a child of the attempt's span"
        );
        assert_eq!(
            r["body"]["traceparent"].as_str(),
            Some(tp),
            "the deliver params say the same"
        );
        let c = &commit[&corr];
        assert_eq!(
            c.parent_span_id, h.span_id,
            "{corr}: the commit is the attempt's"
        );
        assert_eq!(attr(c, "ok").as_deref(), Some("BoolValue(true)"));
    }
}
