//! seed-review-loop (SYSTEMS.md 4). Fault: the daemon SIGKILLed while a review is
//! in flight. Outcome: the query resumes at the reviewer (earlier steps not
//! repeated), and a query that is never approved ends after exactly 2 reviews
//! with an answer, not a dead letter.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::common::fake_llm::{example, Fake};
use crate::common::{json_lines, wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(30);

/// Requests the fake model saw whose system prompt contains `who`.
fn calls(sb: &Sandbox, who: &str) -> usize {
    json_lines(&sb.path("llm.jsonl"))
        .iter()
        .filter(|r| {
            r["body"]["messages"][0]["content"]
                .as_str()
                .is_some_and(|s| s.contains(who))
        })
        .count()
}

#[test]
fn a_review_in_flight_at_a_sigkill_resumes_at_the_reviewer_and_ends_after_two_reviews() {
    let sb = Sandbox::new("");
    // the fake model, slow enough that a review is caught in flight
    let fake = Fake::start(
        &sb,
        &example("seed-review-loop.llm.toml").replace("latency = \"100ms\"", "latency = \"600ms\""),
    );
    let addr = fake.addr.clone();
    let dir = sb.dir.path().to_str().unwrap();
    let config = example("seed-review-loop.toml")
        .replace("127.0.0.1:8099", &addr)
        .replace("var/review-loop", &format!("{dir}/data"))
        .replace(
            "config/examples/port.py",
            &format!("{}/config/examples/port.py", env!("CARGO_MANIFEST_DIR")),
        );
    std::fs::write(sb.config(), config).unwrap();
    let mut d = sb.start_ready();
    let socket = sb.path("data/warden.sock");
    let mut c = crate::common::Conn::open(&socket);
    let r = c.req(
        json!({"op": "send", "to": "intake", "payload": "write a parser", "correlation": "q-1"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    // the first review is in flight at the provider: kill the daemon now
    wait_until_blocking("the first review is in flight", T, || {
        calls(&sb, "the reviewer") == 1
    });
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit(T);
    let (picks, codes) = (calls(&sb, "service picker"), calls(&sb, "the coder"));
    assert_eq!(
        (picks, codes),
        (1, 1),
        "the steps before the review ran once"
    );
    let _d = sb.start_ready();
    let answers = sb.path("data/answers.jsonl");
    wait_until_blocking("an answer", T, || json_lines(&answers).len() == 1);
    let a: Value = json_lines(&answers)[0]["payload"].clone();
    assert_eq!(
        a["cycles"], 2,
        "the last answer, marked after two reviews: {a}"
    );
    assert_eq!(a["payload"]["json"]["verdict"], "revise");
    assert_eq!(json_lines(&answers)[0]["correlation"], "q-1");
    // earlier steps not repeated: one pick, two codings (the first and the one
    // revision); the review in flight at the kill was asked again, so the model
    // saw three review requests for two reviews
    assert_eq!(calls(&sb, "service picker"), 1, "the pick was not repeated");
    assert_eq!(calls(&sb, "the coder"), 2);
    assert_eq!(calls(&sb, "the reviewer"), 3);
    let mut c = crate::common::Conn::open(&socket);
    let dl = c.req(json!({"op": "dlq_list"}));
    assert_eq!(dl["result"], json!([]), "nothing dead-lettered: {dl}");
}
