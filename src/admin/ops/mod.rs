//! The admin ops, one file each: its fields (`Req`, parsed with unknown fields
//! refused), `apply` (the request against the runtime, giving the result object)
//! and `render` (how `warden ctl` shows that result to a person). [`Op`], the op
//! list [`OPS`], parsing, dispatch and rendering are all derived from the one table
//! in the `ops!` invocation below, so adding an op is adding a file and a line.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{AdminError, ErrorCode};
use crate::actors::SendError;
use crate::admin::render::{s, short, table};
use crate::supervision::ControlError;
use crate::Runtime;

/// What every op can reach.
pub struct AdminCtx {
    /// The running tree.
    pub runtime: Arc<Runtime>,
    /// Set to true to make the daemon shut down gracefully.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The config file the daemon runs and what it held at start or last reload
    /// (`reload` reads the file again); `None` for a tree not started from a file.
    pub config: Option<ConfigSource>,
    /// The live log filter (`None` when the process did not install it).
    pub log: Option<Arc<crate::telemetry::LogFilter>>,
}

/// The daemon's config file and its contents as last applied.
pub struct ConfigSource {
    /// The file.
    pub path: std::path::PathBuf,
    /// What it held when last (re)loaded.
    pub current: std::sync::Mutex<crate::config::Config>,
}

/// How a request is answered.
pub enum Outcome {
    /// One reply.
    Reply(Result<Value, AdminError>),
    /// A stream of events until the client closes (the server runs it).
    Watch,
}

impl From<Result<Value, AdminError>> for Outcome {
    fn from(r: Result<Value, AdminError>) -> Self {
        Outcome::Reply(r)
    }
}

macro_rules! ops {
    ($( $variant:ident = $module:ident : $name:literal $(| $alias:literal)* ),* $(,)?) => {
        $( mod $module; )*

        /// A parsed request: one variant per op, holding that op's fields.
        #[derive(Debug)]
        pub(crate) enum Op {
            $( $variant($module::Req), )*
        }

        /// Every op name (aliases included), in table order.
        pub const OPS: &[&str] = &[$( $name, $( $alias, )* )*];

        impl Op {
            /// Parses the fields of op `name`; `None` when there is no such op.
            pub(crate) fn parse(
                name: &str,
                fields: Map<String, Value>,
            ) -> Option<Result<Op, AdminError>> {
                Some(match name {
                    $( $name $(| $alias)* => fields_of::<$module::Req>($name, fields).map(Op::$variant), )*
                    _ => return None,
                })
            }
        }

        /// Applies one op.
        pub(crate) async fn apply(op: Op, ctx: &AdminCtx) -> Outcome {
            match op {
                $( Op::$variant(r) => $module::apply(r, ctx).await.into(), )*
            }
        }

        /// How `warden ctl` shows the result of op `name` to a person.
        pub(crate) fn render(name: &str, result: &Value) -> String {
            match name {
                $( $name $(| $alias)* => $module::render(result), )*
                _ => result.to_string(),
            }
        }
    };
}

ops! {
    Hello = hello: "hello",
    Ping = ping: "ping",
    Tree = tree: "tree",
    Stats = stats: "stats",
    Send = send: "send",
    Call = call: "call",
    Kill = kill: "kill",
    Restart = restart: "restart",
    Stop = stop: "stop",
    Start = start: "start",
    Resume = resume: "resume",
    Spawn = spawn: "spawn",
    AddChild = add_child: "add_child",
    Delete = delete: "delete" | "delete_child",
    WhichChildren = which_children: "which_children",
    Mailbox = mailbox: "mailbox",
    DlqList = dlq_list: "dlq_list",
    DlqReplay = dlq_replay: "dlq_replay",
    DlqPurge = dlq_purge: "dlq_purge",
    Log = log: "log",
    Reload = reload: "reload",
    Approvals = approvals: "approvals",
    Approve = approve: "approve",
    Reject = reject: "reject",
    Backup = backup: "backup",
    Spend = spend: "spend",
    Budget = budget: "budget",
    Watch = watch: "watch",
    Shutdown = shutdown: "shutdown",
}

mod dlq;

/// Reloads the daemon's config file (the `reload` op; SIGHUP).
pub(crate) async fn reload(ctx: &AdminCtx, dry_run: bool) -> Result<Value, AdminError> {
    reload::run(ctx, dry_run).await
}

fn fields_of<T: serde::de::DeserializeOwned>(
    op: &str,
    rest: Map<String, Value>,
) -> Result<T, AdminError> {
    serde_json::from_value(Value::Object(rest))
        .map_err(|e| AdminError::bad_request(format!("{op}: {e}")))
}

/// The fields of an op that takes none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoFields {}

/// Fields of ops that name one child.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentReq {
    /// The agent (or supervisor, for lifecycle ops).
    agent: String,
}

/// The result of a lifecycle op on one child.
fn done(op: &str, agent: &str) -> Value {
    json!({"op": op, "agent": agent, "done": true})
}

impl From<SendError> for AdminError {
    fn from(e: SendError) -> Self {
        let code = match &e {
            SendError::UnknownAgent(_) => ErrorCode::UnknownAgent,
            SendError::MailboxFull { .. } => ErrorCode::MailboxFull,
            SendError::Store(_) => ErrorCode::StoreError,
            SendError::KeyTooLong { .. } => ErrorCode::BadRequest,
            SendError::KeysFull { .. } => ErrorCode::MailboxFull,
        };
        AdminError::new(code, e.to_string())
    }
}

impl From<crate::actors::Undelivered> for AdminError {
    fn from(u: crate::actors::Undelivered) -> Self {
        u.error.into()
    }
}

impl From<ControlError> for AdminError {
    fn from(e: ControlError) -> Self {
        let code = match &e {
            ControlError::NotFound(_) => ErrorCode::NotFound,
            ControlError::Running(_) => ErrorCode::Running,
            ControlError::Restarting(_) => ErrorCode::Restarting,
            ControlError::NotRunning(_) => ErrorCode::NotRunning,
            ControlError::StartFailed { .. } => ErrorCode::StartFailed,
            ControlError::Invalid(_) => ErrorCode::BadRequest,
            ControlError::Unavailable(_) => ErrorCode::Unavailable,
            ControlError::Exists(_) => ErrorCode::AlreadyExists,
            ControlError::NotEmpty { .. } => ErrorCode::NotEmpty,
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
            ErrorCode::UnknownAgent,
            ctx.runtime.tree_context().registry.unknown_agent(agent),
        )
    })
}
