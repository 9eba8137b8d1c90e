//! Traces over OTLP/HTTP protobuf, from the real binary to a real receiver on
//! 127.0.0.1 that decodes what it is sent: one correlation is one trace across
//! agents, a panic and its retry, and a daemon SIGKILL; spans are linked parent
//! to child; no payload reaches an attribute; a collector that is down stalls
//! nothing, and what it costs is counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::common::{wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(30);

/// An OTLP/HTTP receiver (POST /v1/traces, protobuf), on its own runtime.
pub(crate) struct Receiver {
    pub(crate) addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start(at: &str, spans: Arc<Mutex<Vec<Span>>>) -> Receiver {
        let listener = std::net::TcpListener::bind(at).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let got = spans.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |body: axum::body::Bytes| {
                        let got = got.clone();
                        async move {
                            let req = ExportTraceServiceRequest::decode(body)
                                .expect("the body is an ExportTraceServiceRequest");
                            let mut g = got.lock().unwrap();
                            for rs in req.resource_spans {
                                for ss in rs.scope_spans {
                                    g.extend(ss.spans);
                                }
                            }
                            (
                                [("content-type", "application/x-protobuf")],
                                Vec::<u8>::new(),
                            )
                        }
                    }),
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Receiver {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(v) => Some(v.clone()),
            Any::IntValue(v) => Some(v.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const PIPELINE: &str = r#"
[daemon]
data_dir = "{dir}/data"

[telemetry]
otlp_endpoint = "http://RECEIVER"
sample = 1.0

[supervisor.root]
max_restarts = 10
children = ["c", "b", "a"]

[agent.a]
kind = "echo"
to = ["b"]

[agent.b]
kind = "echo"
accept_faults = true
to = ["c"]

[agent.c]
kind = "sink"
path = "{dir}/out.jsonl"
"#;

#[test]
fn one_correlation_is_one_trace_across_agents_a_retry_and_a_daemon_sigkill() {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let rx = Receiver::start("127.0.0.1:0", spans.clone());
    let sb = Sandbox::new(&PIPELINE.replace("RECEIVER", &rx.addr.to_string()));
    let mut d = sb.start_ready();
    // c waits, so the message is still at c when the daemon is killed
    let out = sb.ctl(&["stop", "c"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut c = sb.conn();
    let r = c.req(
        json!({"op": "send", "to": "a", "correlation": "job-1", "traceparent": caller,
        "payload": {"fault": "panic", "times": 1, "secret": "payload-marker-7731"}}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let named = |name: &str, agent: &str| {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name && attr(s, "agent").as_deref() == Some(agent))
            .cloned()
            .collect::<Vec<_>>()
    };
    // b panics on its first attempt and is restarted; its second attempt emits to c
    wait_until_blocking("b's two attempts exported", T, || {
        named("warden.handle", "b").len() == 2
    });
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let _d = sb.start_ready();
    wait_until_blocking("c handles it after the restart", T, || {
        named("warden.handle", "c").len() == 1
    });
    let all = spans.lock().unwrap().clone();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mine: Vec<&Span> = all
        .iter()
        .filter(|s| attr(s, "correlation").as_deref() == Some("job-1"))
        .collect();
    for s in &mine {
        assert_eq!(
            hex(&s.trace_id),
            trace,
            "{} of {:?} in the caller's trace",
            s.name,
            attr(s, "agent")
        );
    }
    let by_id: BTreeMap<String, &Span> = mine.iter().map(|s| (hex(&s.span_id), *s)).collect();
    let parent = |s: &Span| by_id.get(&hex(&s.parent_span_id)).copied();
    let one = |name: &str, agent: &str| {
        let v = named(name, agent);
        assert_eq!(v.len(), 1, "one {name} of {agent}: {v:?}");
        v[0].clone()
    };
    // the chain: caller -> enqueue a -> handle a -> handle b (x2) -> handle c: a
    // message from outside opens an enqueue span, one emitted continues the
    // handling that emitted it
    assert!(named("warden.enqueue", "b").is_empty() && named("warden.enqueue", "c").is_empty());
    let enq_a = one("warden.enqueue", "a");
    assert_eq!(
        hex(&enq_a.parent_span_id),
        "00f067aa0ba902b7",
        "a child of the caller's span"
    );
    let handle_a = one("warden.handle", "a");
    assert_eq!(
        parent(&handle_a).map(|p| p.name.as_str()),
        Some("warden.enqueue")
    );
    assert_eq!(handle_a.parent_span_id, enq_a.span_id);
    let hb = named("warden.handle", "b");
    let attempts: Vec<Option<String>> = hb.iter().map(|s| attr(s, "attempt")).collect();
    assert!(
        attempts.contains(&Some("1".into())) && attempts.contains(&Some("2".into())),
        "{attempts:?}"
    );
    for s in &hb {
        assert_eq!(
            s.parent_span_id, handle_a.span_id,
            "each attempt under a's handling, which emitted it"
        );
    }
    let second = hb
        .iter()
        .find(|s| attr(s, "attempt").as_deref() == Some("2"))
        .unwrap();
    let handle_c = one("warden.handle", "c");
    assert_eq!(
        handle_c.parent_span_id, second.span_id,
        "after the SIGKILL, c's handling still joins the trace, under the attempt that emitted it"
    );
    // b's restart was caused by the message in flight: it is in the message's
    // trace, under the handling that sent it to b
    let restart = one("warden.restart", "b");
    assert_eq!(attr(&restart, "correlation").as_deref(), Some("job-1"));
    assert_eq!(attr(&restart, "child").as_deref(), Some("b"));
    assert_eq!(restart.parent_span_id, handle_a.span_id);
    // each durable hand-off's commit is a child of the attempt that made it
    let commit_a = one("warden.commit", "a");
    assert_eq!(commit_a.parent_span_id, handle_a.span_id);
    assert_eq!(attr(&commit_a, "emits").as_deref(), Some("1"));
    assert!(commit_a.start_time_unix_nano <= commit_a.end_time_unix_nano);
    assert!(
        handle_a.start_time_unix_nano <= commit_a.start_time_unix_nano
            && commit_a.end_time_unix_nano <= handle_a.end_time_unix_nano,
        "the attempt's span covers its commit"
    );
    let commit_b = one("warden.commit", "b");
    assert_eq!(commit_b.parent_span_id, second.span_id);
    // no payload content in any attribute
    for s in &all {
        for kv in &s.attributes {
            let v = format!("{:?}", kv.value);
            assert!(
                !v.contains("payload-marker-7731"),
                "{} carries the payload: {v}",
                s.name
            );
        }
    }
}

#[test]
fn a_collector_that_is_down_stalls_nothing_and_its_losses_are_counted() {
    // a port with nothing listening, then a receiver there
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let port = crate::common::free_port();
    let sb = Sandbox::new(&PIPELINE.replace("RECEIVER", &addr.to_string()).replace(
        "sample = 1.0",
        &format!("sample = 1.0\nmetrics_listen = \"127.0.0.1:{port}\""),
    ));
    let _d = sb.start_ready();
    let mut c = sb.conn();
    let n = 200;
    for i in 0..n {
        let r = c.req(json!({"op": "send", "to": "a", "payload": {"i": i}}));
        assert_eq!(r["ok"], true, "{r}");
    }
    wait_until_blocking("every message through the pipeline", T, || {
        crate::common::json_lines(&sb.path("out.jsonl")).len() == n
    });
    let metrics = || crate::common::scrape_metrics(port);
    let failed = |m: &str| -> u64 {
        m.lines()
            .find_map(|l| {
                l.strip_prefix("warden_trace_spans_dropped_total{reason=\"export_failed\"} ")
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until_blocking("the failed exports counted", T, || failed(&metrics()) > 0);
    // the collector comes up: spans of new messages arrive
    let spans = Arc::new(Mutex::new(Vec::new()));
    let _rx = Receiver::start(&addr.to_string(), spans.clone());
    let r = c.req(json!({"op": "send", "to": "a", "correlation": "after", "payload": {}}));
    assert_eq!(r["ok"], true, "{r}");
    wait_until_blocking("spans arrive once the collector is up", T, || {
        spans.lock().unwrap().iter().any(|s| {
            attr(s, "correlation").as_deref() == Some("after") && s.name == "warden.handle"
        })
    });
    let m = metrics();
    assert!(m.contains("warden_trace_spans_exported_total"), "{m}");
}

/// `log_format = "json"`: one flat JSON object per line, a message's lines naming
/// its agent, id, correlation and trace id, and no payload at info.
#[test]
fn json_logs_are_one_object_per_line_with_the_message_they_are_about() {
    let sb = Sandbox::new(
        r#"
[daemon]
data_dir = "{dir}/data"

[telemetry]
log_format = "json"

[supervisor.root]
children = ["w"]

[agent.w]
kind = "echo"
accept_faults = true
max_attempts = 1
"#,
    );
    let d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(json!({"op": "send", "to": "w", "correlation": "job-9",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "payload": {"fault": "error", "secret": "payload-marker-5512"}}));
    assert_eq!(r["ok"], true, "{r}");
    d.wait_for_log("message dead-lettered", T);
    let text = d.log_text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    let dead = lines
        .iter()
        .find(|l| l["message"] == "message dead-lettered")
        .expect("the dead letter is logged");
    // flat: the fields of the spans it happened in are the line's own
    assert_eq!(dead["agent"], "w", "{dead}");
    assert_eq!(dead["message_id"], "w:1", "{dead}");
    assert_eq!(dead["correlation"], "job-9", "{dead}");
    assert_eq!(
        dead["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{dead}"
    );
    assert_eq!(dead["reason"], "max_attempts", "{dead}");
    assert_eq!(dead["span"], "warden.dead_letter", "{dead}");
    assert!(
        !text.contains("payload-marker-5512"),
        "no payload in the log at info"
    );
}

/// With JSON logs, what a port writes to stderr while it handles a message is
/// logged naming that message, its correlation and its trace.
#[test]
fn json_log_lines_of_a_port_name_the_message_it_handles() {
    let sb = Sandbox::new(&format!(
        "{}\n[telemetry]\nlog_format = \"json\"\n",
        crate::ports::config("max_attempts = 1")
    ));
    let d = sb.start_ready();
    let mut c = sb.conn();
    let r = c.req(
        json!({"op": "send", "to": "worker", "correlation": "job-port",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "payload": {"do": "error", "kind": "non_retryable", "stderr": 2}}),
    );
    assert_eq!(r["ok"], true, "{r}");
    d.wait_for_log("message dead-lettered", T);
    let text = d.log_text();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "port: detail line 1")
        .unwrap_or_else(|| panic!("the port's line is logged:\n{text}"));
    assert_eq!(line["agent"], "worker", "{line}");
    assert_eq!(line["message_id"], "worker:1", "{line}");
    assert_eq!(line["correlation"], "job-port", "{line}");
    assert_eq!(
        line["trace_id"], "0af7651916cd43dd8448eb211c80319c",
        "{line}"
    );
}
