//! `llm`: any OpenAI-compatible chat completions server (OpenAI, vLLM, Ollama,
//! llama.cpp, LiteLLM, `warden fake-llm`), as DESIGN section 10 specifies.
//!
//! - Input: a payload `{"messages":[...]}` is sent as is (after `system`); a
//!   string, or an object whose only key is `prompt` (a string), becomes one user
//!   message; any other JSON becomes a user message holding its JSON text.
//! - The request sets `model`, `max_tokens`, `temperature` if given, and in json
//!   mode `response_format: {"type":"json_object"}`; it carries
//!   `Authorization: Bearer` (from `api_key_env`, never logged), `Idempotency-Key`
//!   and `traceparent`.
//! - Tokens: before the call, an estimate (prompt bytes / 4 + `max_tokens`) is
//!   taken from the agent's `tokens_per_minute` limiters; after it,
//!   `usage.total_tokens` is reported (an overrun is paid by the next taker).
//! - Output, as the reply and emitted to every agent in `to`:
//!   `{"content","json"(json mode),"model","finish_reason","usage"}`, plus
//!   `"input"` (the payload it answered) with `include_input = true`, so the
//!   agents after it see what was asked as well as the answer.
//! - Errors: 429 `insufficient_quota` and 400/401/403/404 are non_retryable; any
//!   other 429 is rate limited for `retry-after-ms`, `retry-after` (seconds or an
//!   HTTP date) or `x-ratelimit-reset-requests`/`-tokens` (`6m0s`, `1s`, `20ms`);
//!   408, 409, 5xx, connect errors and timeouts are retryable; content that is not
//!   valid JSON in json mode is retryable (`invalid_output`). A success with
//!   `x-ratelimit-remaining-requests: 0` pauses the limiters until the reset.
//! - Budgets (docs/budgets.md): when the task has a token budget, `max_tokens` is
//!   at most what is left of it, so one answer cannot run far past it; with
//!   `tell_budget = true`, a system message tells the model what is left.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::http::{expand_env, retry_after};
use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context, ErrorKind};
use crate::actors::AgentSpec;

/// The option keys of an `llm` agent.
pub const OPTIONS: &[&str] = &[
    "base_url",
    "model",
    "api_key_env",
    "system",
    "system_file",
    "response_format",
    "max_tokens",
    "temperature",
    "include_input",
    "tell_budget",
];

/// `max_tokens` unless configured.
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

struct Llm {
    client: reqwest::Client,
    url: String,
    model: String,
    key: Option<String>,
    system: Option<String>,
    json_mode: bool,
    max_tokens: u64,
    temperature: Option<f64>,
    include_input: bool,
    tell_budget: bool,
    to: Vec<String>,
}

fn build(spec: &AgentSpec) -> Result<Llm, String> {
    let name = &spec.name;
    let o = &spec.options;
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let base = s("base_url").ok_or(format!("agent '{name}': llm needs base_url"))?;
    let model = s("model").ok_or(format!("agent '{name}': llm needs model"))?;
    let key = match s("api_key_env") {
        None => None,
        Some(var) => Some(
            expand_env(&format!("${{{var}}}"))
                .map_err(|e| format!("agent '{name}': api_key_env: {e}"))?,
        ),
    };
    let system = match (s("system"), s("system_file")) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(
            std::fs::read_to_string(&f)
                .map_err(|e| format!("agent '{name}': system_file {f}: {e}"))?,
        ),
        (None, None) => None,
    };
    let client = reqwest::Client::builder()
        .timeout(spec.timeout)
        .build()
        .map_err(|e| format!("agent '{name}': cannot build an HTTP client: {e}"))?;
    Ok(Llm {
        client,
        url: format!("{}/chat/completions", base.trim_end_matches('/')),
        model,
        key,
        system,
        json_mode: s("response_format").as_deref() == Some("json"),
        max_tokens: o
            .get("max_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: o.get("temperature").and_then(Value::as_f64),
        include_input: o.get("include_input").and_then(Value::as_bool) == Some(true),
        tell_budget: o.get("tell_budget").and_then(Value::as_bool) == Some(true),
        to: super::to_list(spec),
    })
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &["base_url", "model"],
        agent_lists: &[],
        build: Arc::new(|spec| Ok(Box::new(build(spec)?))),
    }
}

/// What a model is told of its task's budget (`tell_budget`).
fn budget_note(b: &crate::spend::Remaining) -> String {
    let mut parts = Vec::new();
    if let Some(t) = b.tokens {
        parts.push(format!("{t} tokens"));
    }
    if let Some(c) = b.cost {
        parts.push(format!("{c:.4} in cost"));
    }
    format!(
        "This task's remaining budget: {}. Keep your answer within it; when it runs out, the task stops.",
        parts.join(" and ")
    )
}

/// The messages for a payload (after the system prompt).
fn messages(system: Option<&str>, payload: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(s) = system {
        out.push(json!({"role": "system", "content": s}));
    }
    match payload {
        Value::Object(m) if m.get("messages").is_some_and(Value::is_array) => {
            out.extend(m["messages"].as_array().into_iter().flatten().cloned());
        }
        Value::String(s) => out.push(json!({"role": "user", "content": s})),
        Value::Object(m) if m.len() == 1 && m.get("prompt").is_some_and(Value::is_string) => {
            out.push(json!({"role": "user", "content": m["prompt"]}))
        }
        other => out.push(json!({"role": "user", "content": other.to_string()})),
    }
    out
}

/// OpenAI's reset durations: `6m0s`, `1s`, `20ms`, `1h2m3.5s`.
pub(crate) fn reset_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return None,
        };
        total += n * unit;
    }
    if !num.is_empty() {
        total += num.parse::<f64>().ok()?; // bare seconds
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total.min(86_400.0)))
}

/// How long a 429 (or an exhausted quota) asks to wait.
fn wait_of(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 86_400.0)));
    }
    if let Some(d) = get("retry-after").and_then(retry_after) {
        return Some(d);
    }
    let reset = |k| get(k).and_then(reset_duration);
    match (
        reset("x-ratelimit-reset-requests"),
        reset("x-ratelimit-reset-tokens"),
    ) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[async_trait::async_trait]
impl Agent for Llm {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let mut msgs = messages(self.system.as_deref(), ctx.payload());
        let budget = ctx.budget();
        if let (true, Some(b)) = (self.tell_budget, budget) {
            let at = usize::from(self.system.is_some());
            msgs.insert(at, json!({"role": "system", "content": budget_note(&b)}));
        }
        // an answer may not be longer than what is left of the task's budget
        let max_tokens = match budget.and_then(|b| b.tokens) {
            Some(left) => self.max_tokens.min(left.max(1)),
            None => self.max_tokens,
        };
        let prompt_bytes: usize = msgs.iter().map(|m| m["content"].to_string().len()).sum();
        ctx.take_tokens(prompt_bytes as u64 / 4 + max_tokens)
            .await?;
        let mut body = json!({"model": self.model, "messages": msgs, "max_tokens": max_tokens});
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if self.json_mode {
            body["response_format"] = json!({"type": "json_object"});
        }
        let m = ctx.message();
        let mut req = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", m.id.to_string())
            .json(&body);
        if let Some(k) = &self.key {
            let mut v =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                    AgentError::non_retryable("the API key holds characters a header cannot carry")
                })?;
            v.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, v);
        }
        if let Some(tp) = ctx.traceparent() {
            req = req.header("traceparent", tp);
        }
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            AgentError::retryable(format!("{what}: {}", e.without_url()))
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 && !(200..300).contains(&status) {
            let code = parsed["error"]["code"].as_str().unwrap_or("");
            let msg = parsed["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(200).collect());
            let why = format!("HTTP {status} {code}: {msg}");
            return Err(match status {
                429 if code == "insufficient_quota" => AgentError::non_retryable(why),
                429 => AgentError {
                    kind: ErrorKind::RateLimited,
                    message: why,
                    retry_after: wait_of(&headers),
                },
                400 | 401 | 403 | 404 => AgentError::non_retryable(why),
                _ => AgentError::retryable(why),
            });
        }
        let usage = parsed["usage"].clone();
        let (input, output) = (
            usage["prompt_tokens"].as_u64().unwrap_or(0),
            usage["completion_tokens"].as_u64().unwrap_or(0),
        );
        let total = usage["total_tokens"].as_u64().unwrap_or(0);
        if input + output + total > 0 {
            let model = parsed["model"].as_str().unwrap_or(&self.model);
            ctx.report_usage(Some(model), input, output, total);
        }
        if headers
            .get("x-ratelimit-remaining-requests")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
        {
            if let Some(d) = wait_of(&headers) {
                ctx.pause_limiters(d);
            }
        }
        let choice = &parsed["choices"][0];
        let Some(content) = choice["message"]["content"].as_str() else {
            return Err(AgentError::retryable(format!(
                "invalid_output: no choices[0].message.content in the answer: {}",
                text.chars().take(200).collect::<String>()
            )));
        };
        let mut out = json!({
            "content": content,
            "model": parsed["model"],
            "finish_reason": choice["finish_reason"],
            "usage": usage,
        });
        if self.json_mode {
            match serde_json::from_str::<Value>(content) {
                Ok(j) => out["json"] = j,
                Err(e) => {
                    return Err(AgentError::retryable(format!(
                        "invalid_output: the model's answer is not valid JSON ({e})"
                    )))
                }
            }
        }
        if self.include_input {
            out["input"] = ctx.payload().clone();
        }
        for to in &self.to {
            ctx.emit(to, out.clone())?;
        }
        ctx.reply(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_durations_read_as_openai_writes_them() {
        assert_eq!(reset_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(reset_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(reset_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            reset_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(reset_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(reset_duration("soon"), None);
        assert_eq!(reset_duration(""), None);
    }

    #[test]
    fn payload_shapes_become_messages() {
        let m = messages(Some("sys"), &json!("hi"));
        assert_eq!(
            m,
            vec![
                json!({"role":"system","content":"sys"}),
                json!({"role":"user","content":"hi"})
            ]
        );
        assert_eq!(messages(None, &json!({"prompt": "p"}))[0]["content"], "p");
        let given = json!({"messages": [{"role": "user", "content": "x"}]});
        assert_eq!(
            messages(None, &given),
            vec![json!({"role": "user", "content": "x"})]
        );
        assert_eq!(messages(None, &json!({"a": 1}))[0]["content"], "{\"a\":1}");
    }
}
