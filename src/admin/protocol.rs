//! The admin protocol: newline-delimited JSON, one request per line, one reply per
//! request (a `watch` also streams events). Documented in docs/admin-protocol.md.
//!
//! A request is `{"id":<any JSON>,"op":"<name>", ...fields}`; the reply echoes the
//! id: `{"id":..,"ok":true,"result":..}` or
//! `{"id":..,"ok":false,"error":{"code":..,"message":..}}`. Parsing is two steps:
//! the envelope (object, id, op), then the op's own fields, refusing unknown ones,
//! so every refusal names the field at fault.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Protocol version, returned by `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line accepted, in bytes.
pub const MAX_LINE: usize = 1 << 20;

/// Every op name, for did-you-mean.
pub const OPS: &[&str] = &[
    "hello",
    "ping",
    "tree",
    "stats",
    "send",
    "call",
    "kill",
    "restart",
    "stop",
    "start",
    "resume",
    "spawn",
    "add_child",
    "delete",
    "which_children",
    "mailbox",
    "dlq_list",
    "dlq_replay",
    "dlq_purge",
    "watch",
    "shutdown",
];

/// A refused request: a stable code and a message naming what is wrong and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    /// Stable, machine-readable: `bad_request`, `unknown_op`, `unknown_agent`, ...
    pub code: String,
    /// For people.
    pub message: String,
}

impl AdminError {
    /// An error with `code`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        AdminError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("bad_request", message)
    }
}

/// `send`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendReq {
    /// Recipient.
    pub to: String,
    /// Payload (any JSON).
    pub payload: Value,
    /// Idempotency key.
    pub key: Option<String>,
    /// Correlation id.
    pub correlation: Option<String>,
    /// Deadline of the correlation, a duration such as `"30s"`.
    pub deadline: Option<String>,
}

/// `call`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallReq {
    /// Recipient.
    pub to: String,
    /// Payload.
    pub payload: Value,
    /// How long to wait for the reply (default `"30s"`).
    pub timeout: Option<String>,
}

/// Fields of ops that name one agent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReq {
    /// The agent (or supervisor, for lifecycle ops).
    pub agent: String,
}

/// `spawn`'s fields: a child of a `simple_one_for_one` supervisor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnReq {
    /// The supervisor.
    pub supervisor: String,
    /// The new agent's name (letters, digits, `_`, `-`, `.`; free in the tree).
    pub name: String,
    /// Its state until it commits one.
    pub state: Option<Value>,
}

/// `add_child`'s fields: an agent with its own keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddChildReq {
    /// The supervisor.
    pub supervisor: String,
    /// The new agent's name.
    pub name: String,
    /// Its keys, as an `[agent.NAME]` section would list them (`{"kind":"echo"}`).
    pub spec: Value,
}

/// `which_children`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorReq {
    /// The supervisor.
    pub supervisor: String,
}

/// `mailbox`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxReq {
    /// The agent.
    pub agent: String,
    /// Most envelopes returned (default 20).
    pub limit: Option<usize>,
}

/// `dlq_list`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqListReq {
    /// Only this agent's dead letters.
    pub agent: Option<String>,
}

/// `dlq_replay` and `dlq_purge` fields: one message by id, or all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqPickReq {
    /// The agent.
    pub agent: String,
    /// One message id (`planner:42`).
    pub message_id: Option<String>,
    /// Every dead letter of the agent.
    #[serde(default)]
    pub all: bool,
}

/// `hello`'s fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloReq {
    /// The client's protocol version.
    pub version: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// A parsed request.
#[derive(Debug)]
pub enum Op {
    /// Protocol version handshake.
    Hello(HelloReq),
    /// Liveness.
    Ping,
    /// The tree.
    Tree,
    /// Counters.
    Stats,
    /// Accept a message.
    Send(SendReq),
    /// Send and wait for the reply.
    Call(CallReq),
    /// Kill a child (a crash).
    Kill(AgentReq),
    /// Stop and start a child.
    Restart(AgentReq),
    /// Stop a child; it stays stopped.
    Stop(AgentReq),
    /// Start a stopped child.
    Start(AgentReq),
    /// End an agent's systemic-failure pause.
    Resume(AgentReq),
    /// Make a child from a template.
    Spawn(SpawnReq),
    /// Add an agent child with its own keys.
    AddChild(AddChildReq),
    /// Stop and remove a child made at run time.
    Delete(AgentReq),
    /// One supervisor's children.
    WhichChildren(SupervisorReq),
    /// Peek at pending messages.
    Mailbox(MailboxReq),
    /// List dead letters.
    DlqList(DlqListReq),
    /// Re-enqueue dead letters.
    DlqReplay(DlqPickReq),
    /// Delete dead letters.
    DlqPurge(DlqPickReq),
    /// Stream lifecycle events.
    Watch,
    /// Stop the daemon gracefully.
    Shutdown,
}

/// A request: its id (echoed) and op.
#[derive(Debug)]
pub struct Request {
    /// Echoed in the reply.
    pub id: Value,
    /// What to do.
    pub op: Op,
}

fn fields<T: DeserializeOwned>(op: &str, rest: Map<String, Value>) -> Result<T, AdminError> {
    serde_json::from_value(Value::Object(rest))
        .map_err(|e| AdminError::bad_request(format!("{op}: {e}")))
}

/// Parses one line; on failure returns the id (if it could be read) and the error.
pub fn parse(line: &[u8]) -> Result<Request, (Value, AdminError)> {
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            AdminError::bad_request(format!(
                "not JSON ({e}); send one JSON object per line, such as {{\"id\":1,\"op\":\"ping\"}}"
            )),
        )
    })?;
    let Value::Object(mut obj) = v else {
        return Err((
            Value::Null,
            AdminError::bad_request(
                "a request is a JSON object, such as {\"id\":1,\"op\":\"ping\"}",
            ),
        ));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    let op = match obj.remove("op") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err((
                id,
                AdminError::bad_request(format!("\"op\" must be a string, got {other}")),
            ))
        }
        None => {
            return Err((
                id,
                AdminError::bad_request("missing \"op\"; for example {\"id\":1,\"op\":\"ping\"}"),
            ))
        }
    };
    let parsed = match op.as_str() {
        "hello" => fields(&op, obj).map(Op::Hello),
        "ping" => fields::<NoFields>(&op, obj).map(|_| Op::Ping),
        "tree" => fields::<NoFields>(&op, obj).map(|_| Op::Tree),
        "stats" => fields::<NoFields>(&op, obj).map(|_| Op::Stats),
        "send" => fields(&op, obj).map(Op::Send),
        "call" => fields(&op, obj).map(Op::Call),
        "kill" => fields(&op, obj).map(Op::Kill),
        "resume" => fields(&op, obj).map(Op::Resume),
        "restart" => fields(&op, obj).map(Op::Restart),
        "stop" => fields(&op, obj).map(Op::Stop),
        "start" => fields(&op, obj).map(Op::Start),
        "spawn" => fields(&op, obj).map(Op::Spawn),
        "add_child" => fields(&op, obj).map(Op::AddChild),
        "delete" | "delete_child" => fields(&op, obj).map(Op::Delete),
        "which_children" => fields(&op, obj).map(Op::WhichChildren),
        "mailbox" => fields(&op, obj).map(Op::Mailbox),
        "dlq_list" => fields(&op, obj).map(Op::DlqList),
        "dlq_replay" => fields(&op, obj).map(Op::DlqReplay),
        "dlq_purge" => fields(&op, obj).map(Op::DlqPurge),
        "watch" => fields::<NoFields>(&op, obj).map(|_| Op::Watch),
        "shutdown" => fields::<NoFields>(&op, obj).map(|_| Op::Shutdown),
        other => {
            let hint = crate::util::nearest(other, OPS.iter().copied())
                .map(|n| format!("did you mean '{n}'? "))
                .unwrap_or_default();
            Err(AdminError::new(
                "unknown_op",
                format!("no op '{other}'; {hint}ops: {}", OPS.join(", ")),
            ))
        }
    };
    match parsed {
        Ok(op) => Ok(Request { id, op }),
        Err(e) => Err((id, e)),
    }
}

/// A success reply line (no trailing newline).
pub fn ok_line(id: &Value, result: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "ok": true, "result": result})).expect("JSON encodes")
}

/// An error reply line (no trailing newline).
pub fn err_line(id: &Value, e: &AdminError) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "ok": false, "error": e})).expect("JSON encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops_and_refuses_bad_input() {
        let r =
            parse(br#"{"id":7,"op":"send","to":"planner","payload":{"x":1},"key":"k"}"#).unwrap();
        assert_eq!(r.id, json!(7));
        assert!(matches!(r.op, Op::Send(SendReq { ref to, .. }) if to == "planner"));
        let e = |line: &[u8]| parse(line).unwrap_err().1;
        assert_eq!(e(b"nope").code, "bad_request");
        assert_eq!(e(b"[1,2]").code, "bad_request");
        assert!(e(br#"{"id":1,"op":"sned"}"#)
            .message
            .contains("did you mean 'send'"));
        assert!(e(br#"{"id":1,"op":"send","payload":1}"#)
            .message
            .contains("missing field `to`"));
        assert!(e(br#"{"id":1,"op":"send","to":5,"payload":1}"#)
            .message
            .contains("invalid type"));
        assert!(e(br#"{"id":1,"op":"ping","extra":1}"#)
            .message
            .contains("unknown field `extra`"));
        assert_eq!(parse(br#"{"id":"a","op":7}"#).unwrap_err().0, json!("a"));
    }
}
