//! Fault directives: payloads that make a handler fail on purpose, honoured only by
//! agents with `accept_faults = true` (chaos tests and demos).
//!
//! `{"fault":"panic"}` panics the handler; `{"fault":"error"}` returns a retryable
//! error; `{"fault":"exit"}` returns a fatal error (the agent exits abnormally);
//! `{"fault":"stop"}` stops the agent normally after the message, and
//! `{"fault":"stop","reason":R}` ends it with exit reason R after the message
//! (`normal`, `shutdown`, `shutdown: ...`, or any other text for an abnormal exit);
//! `{"fault":"abort"}` aborts the whole daemon process (after `"ms": N` of work,
//! if given);
//! `{"fault":"sleep","ms":N}` sleeps N ms before the normal handler runs.
//! Adding `"times": K` applies the fault only while `attempt <= K`, so a message can
//! fail a few times and then succeed.

use std::time::Duration;

use serde_json::Value;

use crate::actors::agent::{AgentError, Context};

/// What the directive asks of this delivery.
pub(crate) enum Fault {
    /// Panic now.
    Panic,
    /// Return this error instead of handling.
    Fail(AgentError),
    /// Handle, then exit with this reason.
    Stop(String),
    /// Sleep, then handle.
    Sleep(Duration),
    /// Abort the process, after this long.
    Abort(Duration),
}

/// Reads the directive of `payload` for attempt `attempt`, if any.
pub(crate) fn directive(payload: &Value, attempt: u32) -> Option<Fault> {
    let obj = payload.as_object()?;
    let fault = obj.get("fault")?.as_str()?;
    if let Some(times) = obj.get("times").and_then(Value::as_u64) {
        if u64::from(attempt) > times {
            return None;
        }
    }
    Some(match fault {
        "panic" => Fault::Panic,
        "error" => Fault::Fail(AgentError::retryable("fault directive: error")),
        "exit" => Fault::Fail(AgentError::fatal("fault directive: exit")),
        "stop" => Fault::Stop(
            obj.get("reason")
                .and_then(Value::as_str)
                .unwrap_or(crate::actors::exit::EXIT_NORMAL)
                .to_string(),
        ),
        "abort" => Fault::Abort(Duration::from_millis(
            obj.get("ms").and_then(Value::as_u64).unwrap_or(0),
        )),
        "sleep" => Fault::Sleep(Duration::from_millis(
            obj.get("ms").and_then(Value::as_u64).unwrap_or(0),
        )),
        _ => return None,
    })
}

/// Applies a directive before the handler runs; `Err` replaces the handler's outcome.
pub(crate) async fn apply(fault: Fault, ctx: &mut Context) -> Result<(), AgentError> {
    match fault {
        Fault::Panic => panic!("fault directive: panic (message {})", ctx.message().id),
        Fault::Fail(e) => Err(e),
        Fault::Stop(reason) => {
            ctx.exit(reason);
            Ok(())
        }
        Fault::Sleep(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Fault::Abort(after) => {
            tokio::time::sleep(after).await;
            tracing::error!(message_id = %ctx.message().id, "fault directive: abort");
            std::process::abort()
        }
    }
}
