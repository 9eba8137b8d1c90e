//! The command line of `warden ctl`: one subcommand per admin op.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::DEFAULT_SOCKET;

/// `warden ctl` arguments.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The daemon's admin socket.
    #[arg(long, env = "WARDEN_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    pub(super) socket: PathBuf,
    /// Print the result object as JSON.
    #[arg(long, global = true)]
    pub(super) json: bool,
    #[command(subcommand)]
    pub(super) command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub(super) enum CtlCommand {
    /// Is the daemon there?
    Ping,
    /// The supervision tree with status, restarts, pending and dead letters.
    Tree,
    /// Counters per agent, and of the store.
    Stats,
    /// Send a message (JSON payload, or - for stdin); prints its id once accepted.
    Send {
        /// Recipient.
        agent: String,
        /// JSON payload; or - to read it from stdin, or @FILE to read it from a file
        /// (inline payloads are visible to other users in the process list).
        payload: String,
        /// Idempotency key.
        #[arg(long)]
        key: Option<String>,
        /// Correlation id.
        #[arg(long)]
        correlation: Option<String>,
        /// Deadline of the correlation (e.g. 30s).
        #[arg(long)]
        deadline: Option<String>,
        /// Into the mailbox only after this long (e.g. 10m), kept in the store
        /// until then.
        #[arg(long)]
        delay: Option<String>,
        /// Join the caller's trace: a W3C traceparent (00-TRACE-PARENT-FLAGS).
        #[arg(long)]
        traceparent: Option<String>,
        /// The task's (correlation's) token budget: messages of it are not
        /// handled once it has spent this many tokens.
        #[arg(long)]
        budget_tokens: Option<u64>,
        /// The task's cost budget, in the [prices] currency (e.g. 0.50).
        #[arg(long)]
        budget_cost: Option<f64>,
    },
    /// A task's budget and spend; with --tokens or --cost, set or raise its
    /// budget (then `dlq replay` its budget_exhausted dead letters).
    Budget {
        /// The task (its correlation).
        correlation: String,
        /// The token budget.
        #[arg(long)]
        tokens: Option<u64>,
        /// The cost budget, in the [prices] currency.
        #[arg(long)]
        cost: Option<f64>,
    },
    /// What agents spent: tokens and cost, by agent, model or correlation.
    Spend {
        /// Group by: agent, model or correlation.
        #[arg(long, default_value = "agent", value_parser = ["agent", "model", "correlation"])]
        by: String,
        /// Only spend within this long (e.g. 1h; by hour for agents and models).
        #[arg(long)]
        since: Option<String>,
    },
    /// Send and wait for the reply.
    Call {
        /// Recipient.
        agent: String,
        /// JSON payload; or - to read it from stdin, or @FILE to read it from a file
        /// (inline payloads are visible to other users in the process list).
        payload: String,
        /// How long to wait (e.g. 30s).
        #[arg(long, default_value = "30s")]
        timeout: String,
    },
    /// Resume an agent paused after a systemic failure (its trial need not wait).
    Resume {
        /// The agent.
        agent: String,
    },
    /// Kill a child abruptly (handled as a crash).
    Kill {
        /// Agent or supervisor.
        agent: String,
    },
    /// Stop and start a child.
    Restart {
        /// Agent or supervisor.
        agent: String,
    },
    /// Stop a child; it stays stopped.
    Stop {
        /// Agent or supervisor.
        agent: String,
    },
    /// Start a stopped child.
    Start {
        /// Agent or supervisor.
        agent: String,
    },
    /// Make an agent from the template of a simple_one_for_one supervisor; it
    /// exists until deleted, across daemon restarts.
    Spawn {
        /// The simple_one_for_one supervisor.
        supervisor: String,
        /// The new agent's name.
        name: String,
        /// Its state until it commits one (JSON).
        #[arg(long)]
        state: Option<String>,
    },
    /// Add an agent with its own keys (JSON, as an [agent.NAME] section lists them).
    AddChild {
        /// The supervisor.
        supervisor: String,
        /// The new agent's name.
        name: String,
        /// Its keys, such as '{"kind":"echo","restart":"transient"}', or - for stdin.
        spec: String,
    },
    /// Stop and remove an agent made with spawn or add-child (refused while it
    /// has messages waiting, in flight or dead-lettered).
    Delete {
        /// The agent.
        agent: String,
    },
    /// One supervisor's children, with status and counts.
    Children {
        /// The supervisor.
        supervisor: String,
    },
    /// Peek at an agent's pending messages.
    Mailbox {
        /// The agent.
        agent: String,
        /// Most messages shown.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Dead letters.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Change the log filter while the daemon runs (a level such as debug, or
    /// directives such as warden=debug,info).
    Log {
        /// The filter.
        filter: String,
        /// For how long (such as 5m); until the next change if absent.
        #[arg(long = "for")]
        for_: Option<String>,
    },
    /// List the items waiting for a person at approve agents.
    Approvals {
        /// Only this agent's.
        agent: Option<String>,
    },
    /// Approve a waiting item: it goes on to the agent's `to`.
    Approve {
        /// The approve agent.
        agent: String,
        /// The item's id (from `approvals`).
        id: String,
        /// Hand on this payload instead (a fixed one), as JSON.
        #[arg(long)]
        payload: Option<String>,
    },
    /// Reject a waiting item: it goes to `on_reject`, or to the dead letters.
    Reject {
        /// The approve agent.
        agent: String,
        /// The item's id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Read the config file again and apply it without a restart (as SIGHUP does):
    /// new children started, removed ones stopped, changed ones updated or
    /// restarted, the rest untouched.
    Reload {
        /// Only print what the reload would do.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the store, consistent as of one moment, into a new directory (usable
    /// as a data_dir to restore it), while the daemon runs.
    Backup {
        /// A directory that does not exist yet.
        path: PathBuf,
    },
    /// Stream lifecycle events until interrupted.
    Watch,
    /// Stop the daemon gracefully.
    Shutdown,
}

#[derive(Subcommand, Debug)]
pub(super) enum DlqCommand {
    /// List dead letters (of one agent, or all).
    List {
        /// Only this agent's.
        agent: Option<String>,
    },
    /// Re-enqueue a dead letter (or --all) with attempts reset.
    Replay {
        /// The agent.
        agent: String,
        /// The message id (agent:seq).
        id: Option<String>,
        /// Every dead letter of the agent.
        #[arg(long)]
        all: bool,
        /// A new deadline from now (such as 30s), or "none" to clear it; without
        /// it the old deadline is kept.
        #[arg(long)]
        deadline: Option<String>,
    },
    /// Delete a dead letter (or --all).
    Purge {
        /// The agent.
        agent: String,
        /// The message id (agent:seq).
        id: Option<String>,
        /// Every dead letter of the agent.
        #[arg(long)]
        all: bool,
    },
}
