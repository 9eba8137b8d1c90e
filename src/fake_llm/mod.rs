//! `warden fake-llm`: an OpenAI-compatible chat completions server for demos and
//! tests, with no API key and no network: answers from rules (deterministic),
//! injectable faults, counted `usage`, and a request log.
//!
//! `POST /v1/chat/completions` and `GET /v1/models`, on 127.0.0.1 by default, and
//! `POST /hook`, a webhook target for demos (logged, answered 204).
//! The script (`--script FILE`, TOML) is documented in docs/kinds.md:
//!
//! ```toml
//! seed = 7
//! [faults]
//! rate_429 = 0.1            # this share of requests gets 429 rate_limit_exceeded
//! retry_after = "2"         # the Retry-After of those 429s (seconds)
//! window_429 = ["2s", "5s"] # every request in this window after start gets 429
//! rate_5xx = 0.05           # this share gets 500
//! latency = "20ms"          # before every answer
//! invalid_json = 0.1        # this share of json-mode answers is broken JSON
//! insufficient_quota = false
//! exhaust_every = 3         # every 3rd success says x-ratelimit-remaining-requests: 0
//! quota_reset = "1s"        # with this x-ratelimit-reset-requests
//! [[rule]]
//! user = "plan"             # the last user message contains this
//! system = "planner"        # the system prompt contains this (optional)
//! reply = "1. design 2. build"   # or: json = { steps = ["design", "build"] }
//! status = 400              # optional: answer this error instead
//! ```

mod script;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub use script::{Script, ScriptError};

/// What `warden fake-llm` is started with.
#[derive(Debug, Clone)]
pub struct FakeLlmArgs {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The rules and faults.
    pub script: Script,
    /// A JSON line per request (headers without the Authorization value).
    pub log: Option<PathBuf>,
}

struct Served {
    script: Script,
    started: Instant,
    rng: Mutex<fastrand::Rng>,
    log: Option<Mutex<std::fs::File>>,
    requests: std::sync::atomic::AtomicU64,
    successes: std::sync::atomic::AtomicU64,
}

/// Serves until the process is stopped; prints `listening on ADDR` first.
pub async fn serve(args: FakeLlmArgs) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    serve_on(listener, args).await
}

/// Serves on `listener` (its address is the caller's to tell) until dropped.
pub async fn serve_on(listener: tokio::net::TcpListener, args: FakeLlmArgs) -> std::io::Result<()> {
    let log = match &args.log {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        )),
        None => None,
    };
    let state = Arc::new(Served {
        rng: Mutex::new(fastrand::Rng::with_seed(args.script.seed)),
        script: args.script,
        started: Instant::now(),
        log,
        requests: Default::default(),
        successes: Default::default(),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/chat/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/hook", post(hook))
        .with_state(state);
    axum::serve(listener, app).await
}

/// A webhook target for demos (`http` agents): logged like a completion
/// request, answered 204.
async fn hook(
    State(st): State<Arc<Served>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let n = st
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    log_request(&st, n, &headers, &body, StatusCode::NO_CONTENT, None);
    StatusCode::NO_CONTENT
}

/// One log line per request, written on its arrival: `{"n", "time_ms", "status"
/// (of the answer it gets, after the script's latency), "headers", "body"}`.
/// The `usage` an answer reports (logged with the request).
#[derive(Clone)]
struct Reported(Value);

fn log_request(
    st: &Served,
    n: u64,
    headers: &HeaderMap,
    body: &[u8],
    status: StatusCode,
    usage: Option<Value>,
) {
    let Some(log) = &st.log else { return };
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let hs: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            let v = if k == axum::http::header::AUTHORIZATION {
                "<redacted>".to_string()
            } else {
                v.to_str().unwrap_or("").to_string()
            };
            (k.as_str().to_string(), Value::String(v))
        })
        .collect();
    let line = json!({"n": n, "time_ms": crate::envelope::now_ms(), "status": status.as_u16(),
        "headers": hs, "body": req, "usage": usage});
    if let Ok(mut f) = log.lock() {
        use std::io::Write;
        let _ = writeln!(f, "{line}");
    }
}

async fn models() -> Json<Value> {
    Json(
        json!({"object": "list", "data": [{"id": "fake-1", "object": "model", "owned_by": "warden"}]}),
    )
}

fn error(status: StatusCode, code: &str, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "code": code}})),
    )
        .into_response()
}

/// Tokens of a text, as the fake counts them: one per 4 bytes, at least one.
pub fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

async fn completions(
    State(st): State<Arc<Served>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let n = st
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    // the answer is decided on arrival and logged then (so a test sees a request
    // while it is in flight), and sent after the latency
    let resp = answer(&st, n, &body);
    let usage = resp.extensions().get::<Reported>().map(|r| r.0.clone());
    log_request(&st, n, &headers, &body, resp.status(), usage);
    let latency = st.script.faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    resp
}

fn answer(st: &Served, n: u64, body: &[u8]) -> Response {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let f = &st.script.faults;
    let Some(messages) = req["messages"].as_array() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "invalid_request_error",
            "'messages' is required",
        );
    };
    let (roll_429, roll_5xx, roll_json) = {
        let mut r = st.rng.lock().unwrap_or_else(|p| p.into_inner());
        (r.f64(), r.f64(), r.f64())
    };
    let since = st.started.elapsed();
    let in_window = f.window_429.is_some_and(|(a, b)| since >= a && since < b);
    let text_of = |m: &Value| match &m["content"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let system = messages
        .iter()
        .filter(|m| m["role"] == "system")
        .map(text_of)
        .collect::<Vec<_>>()
        .join("\n");
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text_of)
        .unwrap_or_default();
    let json_mode = req["response_format"]["type"] == "json_object";
    let rule = st.script.find(&user, &system);
    if let Some(status) = rule.and_then(|r| r.status) {
        let s = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        return error(s, "scripted", "invalid_request_error", "scripted error");
    }
    if f.insufficient_quota {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        );
    }
    if in_window || roll_429 < f.rate_429 {
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "requests",
            "Rate limit reached for requests",
        );
        let h = resp.headers_mut();
        if let Ok(v) = f.retry_after.parse() {
            h.insert("retry-after", v);
        }
        h.insert(
            "x-ratelimit-remaining-requests",
            axum::http::HeaderValue::from_static("0"),
        );
        return resp;
    }
    if roll_5xx < f.rate_5xx {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "server_error",
            "The server had an error",
        );
    }
    let mut content = match rule {
        Some(r) => r.answer(json_mode),
        None if json_mode => json!({"echo": user}).to_string(),
        None => format!("ok: {user}"),
    };
    if json_mode && roll_json < f.invalid_json {
        content = format!("{{\"broken\": {content}");
    }
    let prompt_tokens: u64 = messages.iter().map(|m| tokens(&text_of(m))).sum();
    let completion_tokens = tokens(&content);
    let model = req["model"].as_str().unwrap_or("fake-1").to_string();
    let ok = st
        .successes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens});
    let mut resp = Json(json!({
        "id": format!("chatcmpl-fake-{n}"),
        "object": "chat.completion",
        "created": crate::envelope::now_ms() / 1000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage,
    }))
    .into_response();
    resp.extensions_mut().insert(Reported(usage));
    if f.exhaust_every > 0 && ok.is_multiple_of(f.exhaust_every) {
        let h = resp.headers_mut();
        h.insert(
            "x-ratelimit-remaining-requests",
            axum::http::HeaderValue::from_static("0"),
        );
        if let Ok(v) = f.quota_reset.parse() {
            h.insert("x-ratelimit-reset-requests", v);
        }
    }
    resp
}
