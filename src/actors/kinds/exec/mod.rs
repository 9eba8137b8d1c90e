//! `exec`: an agent in any language, a *port* (DESIGN section 10). Each replica is
//! one child process speaking `warden-port/1` (JSON-RPC 2.0, one object per line,
//! the MCP stdio codec) on its stdin and stdout.
//!
//! Rules, each tested (tests/integration/ports.rs):
//! - The child runs `command` (argv, no shell) in its own process group, with
//!   exactly `env`, the `env_pass` names copied from the daemon, `PATH`,
//!   `WARDEN_AGENT` and `WARDEN_REPLICA`; `initialize` must be answered within
//!   `start_timeout` (default 10 s) or the start fails.
//! - One delivery in flight per process. Its result's `reply`, `emit`, `state` and
//!   `tokens_used` are committed together, as a Rust handler's are; `take_tokens`
//!   requests wait on the agent's token limiters (other agents are not blocked).
//! - With a delivery in flight, the child exiting, closing stdout, writing a line
//!   that is not a protocol message or a line over 1 MiB, or overrunning `timeout`
//!   (it is sent `cancel`, then given 1 s) is a crash of the agent: the process group
//!   is killed and the message redelivered with its attempt counted (G4).
//! - A child exiting while idle ends the incarnation (status 0: normally, else
//!   abnormally): its supervisor restarts it by its restart type.
//! - stderr is drained continuously into the log, a line at most 4 KiB; the last
//!   lines go with a crash's or an error's reason, so they reach the dead letter.
//! - A graceful stop closes stdin (a port must exit then), then SIGTERM, then
//!   SIGKILL; a dropped port's group is killed; ports left by a SIGKILLed daemon are
//!   killed at the next start ([`leftovers`]).

mod leftovers;
mod port;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::KindInfo;
use crate::actors::agent::{Agent, AgentError, Context, ErrorKind, HostHandle};
use crate::actors::AgentSpec;
use crate::clock::Instant;
use port::{Launch, Line, Port};

pub use leftovers::reap as reap_leftover_ports;

/// The protocol name and version.
pub const PROTOCOL: &str = "warden-port/1";
/// How long a port may take to answer `initialize`, unless `start_timeout` says.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cancelled delivery may take to answer before its port is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(1);
/// Stderr lines attached to a failure's reason.
const REASON_TAIL: usize = 5;

/// The option keys of an `exec` agent.
pub const OPTIONS: &[&str] = &["command", "cwd", "env", "env_pass", "start_timeout"];

/// An `exec` agent's options, read once per incarnation.
struct Options {
    command: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    env_pass: Vec<String>,
    start_timeout: Duration,
    timeout: Duration,
    max_attempts: u32,
}

fn options(spec: &AgentSpec) -> Result<Options, String> {
    let o: &Map<String, Value> = &spec.options;
    let name = &spec.name;
    let command: Vec<String> = match o.get("command") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or(format!("agent '{name}': command must be a list of strings"))?,
        _ => {
            return Err(format!(
                "agent '{name}': exec needs command = [\"program\", \"arg\", ...]"
            ))
        }
    };
    let env = match o.get("env") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect::<Option<_>>()
            .ok_or(format!("agent '{name}': env values must be strings"))?,
        Some(_) => return Err(format!("agent '{name}': env must be a table of strings")),
    };
    let env_pass = match o.get("env_pass") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or(format!("agent '{name}': env_pass must be a list of names"))?,
        Some(_) => return Err(format!("agent '{name}': env_pass must be a list of names")),
    };
    let start_timeout = match o.get("start_timeout") {
        None => DEFAULT_START_TIMEOUT,
        Some(Value::String(s)) => humantime::parse_duration(s)
            .map_err(|e| format!("agent '{name}': start_timeout: {e}"))?,
        Some(_) => {
            return Err(format!(
                "agent '{name}': start_timeout must be a duration such as \"10s\""
            ))
        }
    };
    Ok(Options {
        command,
        cwd: o.get("cwd").and_then(Value::as_str).map(PathBuf::from),
        env,
        env_pass,
        start_timeout,
        timeout: spec.timeout,
        max_attempts: spec.max_attempts,
    })
}

struct Exec {
    opts: Options,
    port: Option<Port>,
    next_id: u64,
    agent: String,
}

pub(super) fn info() -> KindInfo {
    KindInfo {
        options: OPTIONS,
        required: &["command"],
        agent_lists: &[],
        build: Arc::new(|spec| {
            Ok(Box::new(Exec {
                opts: options(spec)?,
                port: None,
                next_id: 1,
                agent: spec.name.clone(),
            }))
        }),
    }
}

impl Exec {
    fn port(&mut self) -> Result<&mut Port, AgentError> {
        self.port
            .as_mut()
            .ok_or_else(|| AgentError::fatal("the port is not running"))
    }

    /// `reason`, with the port's last stderr lines.
    fn with_tail(&self, reason: String) -> String {
        let tail = self
            .port
            .as_ref()
            .map(Port::stderr_tail)
            .unwrap_or_default();
        if tail.is_empty() {
            return reason;
        }
        let from = tail.len().saturating_sub(REASON_TAIL);
        format!("{reason}; stderr tail: {}", tail[from..].join(" | "))
    }

    /// The port broke the protocol or died mid-delivery: kill its group and crash.
    async fn crash(&mut self, what: String) -> AgentError {
        let exited = match self.port.as_mut() {
            Some(p) => {
                p.kill();
                p.exit_reason(Duration::from_millis(200)).await
            }
            None => None,
        };
        let what = match exited {
            Some(e) if what.contains("closed stdout") => format!("{what} (the port {e})"),
            _ => what,
        };
        AgentError::fatal(self.with_tail(what))
    }

    /// Waits for the response to request `id`, serving `take_tokens` meanwhile,
    /// until `until`. `Ok(None)`: no response by then.
    async fn await_response(
        &mut self,
        id: u64,
        until: Instant,
        mut ctx: Option<&mut Context>,
    ) -> Result<Option<Value>, AgentError> {
        loop {
            let line = {
                let port = self.port()?;
                tokio::select! {
                    l = port.next() => l,
                    _ = tokio::time::sleep_until(until) => return Ok(None),
                }
            };
            let msg = match line {
                Line::Msg(m) => m,
                Line::NotProtocol(text) => {
                    return Err(self
                        .crash(format!(
                            "the port wrote a line that is not {PROTOCOL}: {text:?}"
                        ))
                        .await)
                }
                Line::TooLong => {
                    return Err(self
                        .crash(format!(
                            "the port wrote a line over {} bytes",
                            port::MAX_LINE
                        ))
                        .await)
                }
                Line::Eof => return Err(self.crash("the port closed stdout".into()).await),
            };
            if let Some(method) = msg.get("method").and_then(Value::as_str) {
                let rid = msg.get("id").cloned();
                match (method, rid, ctx.as_deref_mut()) {
                    ("take_tokens", Some(rid), Some(ctx)) => {
                        let n = msg["params"]["tokens"].as_u64().unwrap_or(0);
                        let answer = match ctx.take_tokens(n).await {
                            Ok(()) => json!({"jsonrpc": "2.0", "id": rid, "result": {}}),
                            Err(e) => {
                                let a = json!({"jsonrpc": "2.0", "id": rid,
                                    "error": {"code": -32002, "message": e.message}});
                                self.port()?.send(&a).await.map_err(AgentError::fatal)?;
                                return Err(e);
                            }
                        };
                        self.port()?
                            .send(&answer)
                            .await
                            .map_err(AgentError::fatal)?;
                    }
                    (_, Some(rid), _) => {
                        let a = json!({"jsonrpc": "2.0", "id": rid, "error":
                            {"code": -32601, "message": format!("no method {method:?} now")}});
                        self.port()?.send(&a).await.map_err(AgentError::fatal)?;
                    }
                    (_, None, _) => {} // a notification: nothing to answer
                }
                continue;
            }
            if msg.get("id").and_then(Value::as_u64) == Some(id) {
                return Ok(Some(msg));
            }
            tracing::debug!(agent = %self.agent, "port answered an old request: {msg}");
        }
    }

    /// Applies a `deliver` response to the context.
    async fn apply(&self, msg: Value, ctx: &mut Context) -> Result<(), AgentError> {
        if let Some(err) = msg.get("error") {
            let message = err["message"].as_str().unwrap_or("error").to_string();
            let data = &err["data"];
            let retry_after = data["retry_after_ms"].as_u64().map(Duration::from_millis);
            let kind = match data["kind"].as_str() {
                Some("non_retryable") => ErrorKind::NonRetryable,
                Some("fatal") => ErrorKind::Fatal,
                Some("rate_limited") => ErrorKind::RateLimited,
                _ => ErrorKind::Retryable,
            };
            let message = if kind == ErrorKind::Retryable {
                message
            } else {
                // what the port wrote to stderr just before answering is drained
                // by another task: let it catch up (this is the dead-letter path)
                tokio::time::sleep(Duration::from_millis(25)).await;
                self.with_tail(message)
            };
            return Err(AgentError {
                kind,
                message,
                retry_after,
            });
        }
        match msg.get("result") {
            Some(Value::Object(r)) => super::effects::apply(r, ctx),
            Some(Value::Null) | None => Ok(()),
            Some(other) => Err(AgentError::fatal(format!(
                "the port's result is not an object: {other}"
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Agent for Exec {
    async fn on_start(&mut self, host: HostHandle) -> Result<(), String> {
        let mut env = self.opts.env.clone();
        for name in &self.opts.env_pass {
            if let Some(v) = std::env::var_os(name) {
                env.push((name.clone(), v.to_string_lossy().into_owned()));
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            env.push(("PATH".into(), path.to_string_lossy().into_owned()));
        }
        env.push(("WARDEN_AGENT".into(), self.agent.clone()));
        env.push(("WARDEN_REPLICA".into(), host.replica().to_string()));
        let launch = Launch {
            agent: self.agent.clone(),
            replica: host.replica(),
            command: self.opts.command.clone(),
            cwd: self.opts.cwd.clone(),
            env,
        };
        let h = host.clone();
        let port = Port::spawn(&launch, move |code, what| {
            h.exit(if code == Some(0) {
                crate::actors::exit::EXIT_NORMAL
            } else {
                &what
            });
        })?;
        self.port = Some(port);
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params":
            {"protocol": PROTOCOL, "agent": self.agent, "replica": host.replica()}});
        let until = crate::clock::after(self.opts.start_timeout);
        let answer = async {
            self.port()?.send(&init).await.map_err(AgentError::fatal)?;
            self.await_response(0, until, None).await
        }
        .await;
        match answer {
            Ok(Some(m)) if m["result"]["protocol"] == PROTOCOL => Ok(()),
            Ok(Some(m)) => Err(self.with_tail(format!(
                "the port answered initialize with {m}; it must answer {{\"protocol\":\"{PROTOCOL}\"}}"
            ))),
            Ok(None) => {
                if let Some(p) = &self.port {
                    p.kill();
                }
                Err(self.with_tail(format!(
                    "the port did not answer initialize within start_timeout ({:?})",
                    self.opts.start_timeout
                )))
            }
            Err(e) => Err(format!("the port failed to start: {}", e.message)),
        }
    }

    async fn handle(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        let id = self.next_id;
        self.next_id += 1;
        let params = super::effects::deliver_params(ctx, self.opts.max_attempts);
        let deliver = json!({"jsonrpc": "2.0", "id": id, "method": "deliver", "params": params});
        let port = self.port()?;
        let m = ctx.message();
        port.delivering((
            m.id.to_string(),
            m.correlation.to_string(),
            crate::telemetry::trace::trace_id(m.trace.as_deref()).to_string(),
        ));
        port.busy.store(true, Ordering::Release);
        let sent = port.send(&deliver).await;
        let outcome = match sent {
            Err(e) => Err(self.crash(format!("cannot deliver: {e}")).await),
            Ok(()) => {
                let until = crate::clock::after(self.opts.timeout);
                match self.await_response(id, until, Some(ctx)).await {
                    Ok(Some(msg)) => self.apply(msg, ctx).await,
                    Ok(None) => {
                        let cancel = json!({"jsonrpc": "2.0", "method": "cancel",
                            "params": {"delivery": id, "reason": "timeout"}});
                        let _ = self.port()?.send(&cancel).await;
                        let grace = crate::clock::after(CANCEL_GRACE);
                        match self.await_response(id, grace, None).await {
                            // answered within the grace: that answer stands
                            Ok(Some(msg)) => self.apply(msg, ctx).await,
                            Ok(None) => Err(self
                                .crash(format!(
                                    "timeout: no result within {:?}, nor within {CANCEL_GRACE:?} of cancel",
                                    self.opts.timeout
                                ))
                                .await),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Some(p) = &self.port {
            if outcome
                .as_ref()
                .err()
                .is_none_or(|e| e.kind != ErrorKind::Fatal)
            {
                p.busy.store(false, Ordering::Release);
            }
        }
        outcome
    }

    async fn on_stop(&mut self) {
        if let Some(p) = self.port.as_mut() {
            p.stop(Duration::from_secs(2)).await;
        }
    }

    fn timeout_grace(&self) -> Duration {
        CANCEL_GRACE + Duration::from_millis(500)
    }
}
