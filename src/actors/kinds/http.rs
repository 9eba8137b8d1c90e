//! `http`: a webhook (DESIGN section 10). Each message is POSTed to `url` as the
//! `deliver` params of a port (JSON); the answer decides:
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx, empty body | done; the reply (to a `call`) is `{"status": CODE}` |
//! | 2xx, a result object (`reply`, `emit`, `state`, `tokens_used`) | done, its effects committed with the ack |
//! | 2xx, any other body | done; the body (JSON, or else its text) is the reply |
//! | 429, or 503 with `Retry-After` | `rate_limited`: the agent's limiters pause for `Retry-After` (seconds or an HTTP date; without one, the backoff's delay), the retry does not count as an attempt |
//! | 408, 409, other 5xx, a connect error, a timeout | retryable |
//! | other 4xx | non_retryable: dead-lettered at once with the status and the start of the body |
//!
//! Every request carries `Idempotency-Key: <message id>` (the same on every retry)
//! and, when the message has trace context, `traceparent`. Header values may name
//! the daemon's environment as `${VAR}`; a missing variable fails the agent's
//! start (naming the variable, never a value), and values are never logged or
//! shown. One client per incarnation keeps connections alive between messages.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context, ErrorKind};
use crate::actors::AgentSpec;

/// The option keys of an `http` agent.
pub const OPTIONS: &[&str] = &["url", "headers"];

struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    max_attempts: u32,
}

/// `${VAR}` in `value` replaced from the daemon's environment; `Err` names a
/// missing variable (never a value).
pub(crate) fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unclosed ${ (write ${NAME})".to_string())?;
        let name = &after[..end];
        let v = std::env::var(name).map_err(|_| {
            format!("the environment variable {name} is not set in the daemon's environment")
        })?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn build(spec: &AgentSpec) -> Result<Http, String> {
    let name = &spec.name;
    let url = spec
        .options
        .get("url")
        .and_then(Value::as_str)
        .ok_or(format!("agent '{name}': http needs url"))?;
    let url = reqwest::Url::parse(url).map_err(|e| format!("agent '{name}': url: {e}"))?;
    let mut headers = HeaderMap::new();
    if let Some(Value::Object(h)) = spec.options.get("headers") {
        for (k, v) in h {
            let v = v
                .as_str()
                .ok_or(format!("agent '{name}': headers.{k} must be a string"))?;
            let v = expand_env(v).map_err(|e| format!("agent '{name}': headers.{k}: {e}"))?;
            let key = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("agent '{name}': headers.{k} is not a header name"))?;
            let mut value = HeaderValue::from_str(&v).map_err(|_| {
                format!("agent '{name}': headers.{k} holds characters a header cannot carry")
            })?;
            value.set_sensitive(true);
            headers.insert(key, value);
        }
    }
    let client = reqwest::Client::builder()
        .timeout(spec.timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| format!("agent '{name}': cannot build an HTTP client: {e}"))?;
    Ok(Http {
        client,
        url,
        headers,
        max_attempts: spec.max_attempts,
    })
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &["url"],
        agent_lists: &[],
        build: Arc::new(|spec| Ok(Box::new(build(spec)?))),
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date.
pub(crate) fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The start of a body, for an error message.
fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(200).collect();
    if body.len() > s.len() {
        s.push('…');
    }
    s
}

#[async_trait::async_trait]
impl Agent for Http {
    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let params = super::effects::deliver_params(ctx, self.max_attempts);
        let m = ctx.message();
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header("Idempotency-Key", m.id.to_string())
            .json(&params);
        if let Some(tp) = ctx.traceparent() {
            req = req.header("traceparent", tp);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                // reqwest's error names the URL without headers: no secret in it
                return Err(AgentError::retryable(format!(
                    "{what}: {}",
                    e.without_url()
                )));
            }
        };
        let status = resp.status();
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let body = resp.text().await.unwrap_or_default();
        let code = status.as_u16();
        if status.is_success() {
            if body.trim().is_empty() {
                // something for a `call` to return
                ctx.reply(serde_json::json!({ "status": code }));
                return Ok(());
            }
            return match serde_json::from_str::<Value>(&body) {
                Ok(Value::Object(r)) if is_result(&r) => super::effects::apply(&r, ctx),
                Ok(v) => {
                    ctx.reply(v);
                    Ok(())
                }
                Err(_) => {
                    ctx.reply(Value::String(body));
                    Ok(())
                }
            };
        }
        let why = format!("HTTP {code}: {}", snippet(&body));
        Err(match (code, after) {
            (429, _) | (503, Some(_)) => AgentError {
                kind: ErrorKind::RateLimited,
                message: why,
                retry_after: after,
            },
            (408 | 409, _) | (500..=599, _) => AgentError::retryable(why),
            _ => AgentError::non_retryable(why),
        })
    }
}

/// True for an object made only of result keys (an empty object too).
fn is_result(r: &Map<String, Value>) -> bool {
    r.keys()
        .all(|k| matches!(k.as_str(), "reply" | "emit" | "state" | "tokens_used"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("2"), Some(Duration::from_secs(2)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn env_expansion_names_what_is_missing_and_never_a_value() {
        std::env::set_var("WARDEN_TEST_TOKEN_X", "s3cret");
        assert_eq!(
            expand_env("Bearer ${WARDEN_TEST_TOKEN_X}").unwrap(),
            "Bearer s3cret"
        );
        let e = expand_env("${WARDEN_TEST_NOT_SET_Y}").unwrap_err();
        assert!(e.contains("WARDEN_TEST_NOT_SET_Y"), "{e}");
        assert!(expand_env("${open").is_err());
    }
}
