//! The admin ops: each file parses nothing (the protocol did), applies the request
//! to the runtime, and encodes the result object; [`apply`] dispatches on [`Op`].

mod children;
mod info;
mod lifecycle;
mod mailbox;
mod send;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use super::protocol::{AdminError, Op};
use crate::actors::SendError;
use crate::supervision::ControlError;
use crate::Runtime;

/// What every op can reach.
pub struct AdminCtx {
    /// The running tree.
    pub runtime: Arc<Runtime>,
    /// Set to true to make the daemon shut down gracefully.
    pub shutdown: watch::Sender<bool>,
    /// The config's limiters, by name (`add_child` checks an agent's `limits`).
    pub limits: std::collections::BTreeMap<String, crate::config::LimitSpec>,
}

/// How a request is answered.
pub enum Outcome {
    /// One reply.
    Reply(Result<Value, AdminError>),
    /// A stream of events until the client closes (the server runs it).
    Watch,
}

/// Applies one op.
pub async fn apply(op: Op, ctx: &AdminCtx) -> Outcome {
    let r = match op {
        Op::Hello(h) => info::hello(h),
        Op::Ping => info::ping(),
        Op::Tree => info::tree(ctx),
        Op::Stats => info::stats(ctx),
        Op::Send(s) => send::send(s, ctx).await,
        Op::Call(c) => send::call(c, ctx).await,
        Op::Kill(a) => lifecycle::kill(a, ctx).await,
        Op::Resume(a) => lifecycle::resume(a, ctx),
        Op::Restart(a) => lifecycle::restart(a, ctx).await,
        Op::Stop(a) => lifecycle::stop(a, ctx).await,
        Op::Start(a) => lifecycle::start(a, ctx).await,
        Op::Spawn(r) => children::spawn(r, ctx).await,
        Op::AddChild(r) => children::add_child(r, ctx).await,
        Op::Delete(a) => children::delete(a, ctx).await,
        Op::WhichChildren(r) => children::which(r, ctx).await,
        Op::Mailbox(m) => mailbox::peek(m, ctx),
        Op::DlqList(l) => mailbox::dlq_list(l, ctx),
        Op::DlqReplay(p) => mailbox::dlq_replay(p, ctx),
        Op::DlqPurge(p) => mailbox::dlq_purge(p, ctx),
        Op::Watch => return Outcome::Watch,
        Op::Shutdown => {
            let _ = ctx.shutdown.send(true);
            Ok(serde_json::json!({"shutting_down": true}))
        }
    };
    Outcome::Reply(r)
}

impl From<SendError> for AdminError {
    fn from(e: SendError) -> Self {
        let code = match &e {
            SendError::UnknownAgent(_) => "unknown_agent",
            SendError::MailboxFull { .. } => "mailbox_full",
            SendError::Store(_) => "store_error",
        };
        AdminError::new(code, e.to_string())
    }
}

impl From<ControlError> for AdminError {
    fn from(e: ControlError) -> Self {
        let code = match &e {
            ControlError::NotFound(_) => "not_found",
            ControlError::Running(_) => "running",
            ControlError::Restarting(_) => "restarting",
            ControlError::NotRunning(_) => "not_running",
            ControlError::StartFailed { .. } => "start_failed",
            ControlError::Invalid(_) => "bad_request",
            ControlError::Unavailable(_) => "unavailable",
            ControlError::Exists(_) => "already_exists",
            ControlError::NotEmpty { .. } => "not_empty",
        };
        AdminError::new(code, e.to_string())
    }
}

/// Parses a duration field, naming it in the error.
fn duration(field: &str, s: &str) -> Result<std::time::Duration, AdminError> {
    crate::config::parse_duration(s).map_err(|e| AdminError::bad_request(format!("{field}: {e}")))
}

/// The slot of `agent`, or `unknown_agent` with a suggestion.
fn slot(ctx: &AdminCtx, agent: &str) -> Result<Arc<crate::actors::AgentSlot>, AdminError> {
    ctx.runtime.agent(agent).ok_or_else(|| {
        AdminError::new(
            "unknown_agent",
            ctx.runtime.tree_context().registry.unknown_agent(agent),
        )
    })
}
