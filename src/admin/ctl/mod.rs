//! `warden ctl`: each admin op as a subcommand. Human-readable output by default,
//! the `result` object with `--json`. Exit codes: 0 done, 1 refused by the daemon,
//! 2 usage error, 3 no daemon at the socket.

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::{Client, ClientError};
use super::ops::render;

mod args;

pub use args::CtlArgs;
use args::{CtlCommand, DlqCommand};

/// Runs a ctl command; returns the exit code.
pub fn run(args: CtlArgs) -> i32 {
    match execute(&args) {
        Ok(()) => 0,
        Err(Failure::Usage(m)) => {
            eprintln!("warden ctl: {m}");
            2
        }
        Err(Failure::Client(e @ ClientError::NoDaemon { .. })) => {
            eprintln!("warden ctl: {e}");
            3
        }
        Err(Failure::Client(e @ ClientError::Refused(_))) => {
            eprintln!("warden ctl: refused: {e}");
            1
        }
        Err(Failure::Client(e)) => {
            eprintln!("warden ctl: {e}");
            3
        }
    }
}

enum Failure {
    Usage(String),
    Client(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

/// A JSON argument: inline, `-` for stdin, or `@FILE`. Payloads given inline are
/// visible to every user in `/proc/PID/cmdline`; stdin and files are not.
fn payload(arg: &str) -> Result<Value, Failure> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::Usage(format!("cannot read the payload from stdin: {e}")))?;
        s
    } else if let Some(file) = arg.strip_prefix('@') {
        std::fs::read_to_string(file)
            .map_err(|e| Failure::Usage(format!("cannot read the payload from {file}: {e}")))?
    } else {
        arg.to_string()
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::Usage(format!(
            "the payload is not JSON ({e}); quote it, such as '{{\"task\":\"x\"}}', or pass - to read stdin"
        ))
    })
}

fn duration_arg(name: &str, s: &str) -> Result<Duration, Failure> {
    crate::config::parse_duration(s).map_err(|e| Failure::Usage(format!("--{name}: {e}")))
}

fn execute(args: &CtlArgs) -> Result<(), Failure> {
    use CtlCommand::*;
    let (op, fields, timeout) = match &args.command {
        Ping => ("ping", json!({}), None),
        Tree => ("tree", json!({}), None),
        Stats => ("stats", json!({}), None),
        Send {
            agent,
            payload: p,
            key,
            correlation,
            deadline,
            delay,
            traceparent,
            budget_tokens,
            budget_cost,
        } => {
            if let Some(d) = deadline {
                duration_arg("deadline", d)?;
            }
            if let Some(d) = delay {
                duration_arg("delay", d)?;
            }
            let f = json!({"to": agent, "payload": payload(p)?, "key": key, "correlation": correlation, "deadline": deadline, "delay": delay, "traceparent": traceparent,
                "budget_tokens": budget_tokens, "budget_cost": budget_cost});
            ("send", strip_nulls(f), None)
        }
        Budget {
            correlation,
            tokens,
            cost,
        } => (
            "budget",
            strip_nulls(
                json!({"correlation": correlation, "budget_tokens": tokens, "budget_cost": cost}),
            ),
            None,
        ),
        Spend { by, since } => {
            if let Some(d) = since {
                duration_arg("since", d)?;
            }
            (
                "spend",
                strip_nulls(json!({"by": by, "since": since})),
                None,
            )
        }
        Call {
            agent,
            payload: p,
            timeout,
        } => {
            let t = duration_arg("timeout", timeout)?;
            (
                "call",
                json!({"to": agent, "payload": payload(p)?, "timeout": timeout}),
                Some(t + Duration::from_secs(5)),
            )
        }
        Kill { agent } => ("kill", json!({"agent": agent}), None),
        Resume { agent } => ("resume", json!({"agent": agent}), None),
        Restart { agent } => ("restart", json!({"agent": agent}), None),
        Stop { agent } => ("stop", json!({"agent": agent}), None),
        Start { agent } => ("start", json!({"agent": agent}), None),
        Spawn {
            supervisor,
            name,
            state,
        } => {
            let state = match state {
                Some(s) => Some(payload(s).map_err(|_| {
                    Failure::Usage("--state is not JSON; quote it, such as '{\"count\":0}'".into())
                })?),
                None => None,
            };
            let f = json!({"supervisor": supervisor, "name": name, "state": state});
            ("spawn", strip_nulls(f), None)
        }
        AddChild {
            supervisor,
            name,
            spec,
        } => (
            "add_child",
            json!({"supervisor": supervisor, "name": name, "spec": payload(spec)?}),
            None,
        ),
        Delete { agent } => ("delete", json!({"agent": agent}), None),
        Children { supervisor } => ("which_children", json!({"supervisor": supervisor}), None),
        Mailbox { agent, limit } => ("mailbox", json!({"agent": agent, "limit": limit}), None),
        Dlq { command } => match command {
            DlqCommand::List { agent } => ("dlq_list", strip_nulls(json!({"agent": agent})), None),
            DlqCommand::Replay {
                agent,
                id,
                all,
                deadline,
            } => {
                let mut f = pick(agent, id, *all)?;
                if let Some(d) = deadline {
                    if d != "none" {
                        duration_arg("deadline", d)?;
                    }
                    f["deadline"] = json!(d);
                }
                ("dlq_replay", f, None)
            }
            DlqCommand::Purge { agent, id, all } => ("dlq_purge", pick(agent, id, *all)?, None),
        },
        Log { filter, for_ } => {
            if let Some(d) = for_ {
                duration_arg("for", d)?;
            }
            (
                "log",
                strip_nulls(json!({"filter": filter, "for": for_})),
                None,
            )
        }
        Approvals { agent } => ("approvals", strip_nulls(json!({"agent": agent})), None),
        Approve {
            agent,
            id,
            payload: p,
        } => {
            let p = match p {
                Some(p) => Some(payload(p).map_err(|_| {
                    Failure::Usage(
                        "--payload is not JSON; quote it, such as '{\"text\":\"fixed\"}'".into(),
                    )
                })?),
                None => None,
            };
            (
                "approve",
                strip_nulls(json!({"agent": agent, "item": id, "payload": p})),
                None,
            )
        }
        Reject { agent, id, reason } => (
            "reject",
            json!({"agent": agent, "item": id, "reason": reason}),
            None,
        ),
        Reload { dry_run } => (
            "reload",
            json!({"dry_run": dry_run}),
            // restarts wait for shutdowns: give it the time a tree stop may take
            Some(Duration::from_secs(600)),
        ),
        Backup { path } => {
            let path = std::path::absolute(path)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            (
                "backup",
                json!({"path": path}),
                Some(Duration::from_secs(3600)),
            )
        }
        Watch => return watch(args),
        Shutdown => ("shutdown", json!({}), None),
    };
    let mut client = Client::connect(&args.socket)?;
    client.set_timeout(Some(timeout.unwrap_or(Duration::from_secs(120))));
    let result = client.request(op, fields)?;
    if args.json {
        println!("{result}");
    } else {
        println!("{}", render(op, &result));
    }
    Ok(())
}

fn pick(agent: &str, id: &Option<String>, all: bool) -> Result<Value, Failure> {
    match (id, all) {
        (Some(_), true) => Err(Failure::Usage(
            "give a message id or --all, not both".into(),
        )),
        (None, false) => Err(Failure::Usage(
            "give a message id (such as planner:42) or --all".into(),
        )),
        _ => Ok(strip_nulls(
            json!({"agent": agent, "message_id": id, "all": all}),
        )),
    }
}

fn strip_nulls(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    v
}

fn watch(args: &CtlArgs) -> Result<(), Failure> {
    let mut client = Client::connect(&args.socket)?;
    client.set_timeout(None);
    client.request("watch", json!({}))?;
    loop {
        let line = client.read()?;
        let e = &line["event"];
        if args.json {
            println!("{e}");
        } else {
            let reason = e["reason"]
                .as_str()
                .map(|r| format!("  {r}"))
                .unwrap_or_default();
            println!(
                "{:<14} {:<20}{reason}",
                e["event"].as_str().unwrap_or("?"),
                e["name"].as_str().unwrap_or("")
            );
        }
    }
}
