//! The runtime: a supervision tree of agents, started, operated and stopped through
//! one handle. This is the library's front door; the daemon and `warden bench` use
//! nothing else.
//!
//! A guardian actor (outside the tree) starts `root` linked to itself and reports
//! how root ended: shut down on request, or gave up past its restart intensity.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use serde_json::Value;
use tokio::sync::watch;

use crate::actors::slot::Sent;
use crate::actors::{AgentSlot, CallError, Kinds, SendOptions, Undelivered};
use crate::envelope::MessageId;
use crate::policies::limits::Limits;
use crate::spec_error::SpecError;
use crate::store::Store;
use crate::supervision::supervisor::{Removal, SupMsg};
use crate::supervision::tree::Durable;
use crate::supervision::{
    ChildInfo, ChildSpec, ControlError, ControlOp, SupervisorSpec, TreeContext, TreeEvent,
    TreeSnapshot,
};
use crate::util::{did_you_mean, Quote};

/// What a runtime is started with besides its tree and kinds.
#[derive(Default)]
pub struct Options {
    /// The store for durable mailboxes (`None`: every mailbox in memory).
    pub durable: Option<Durable>,
    /// Named rate limiters.
    pub limits: Limits,
    /// Dynamic children made by an earlier run (supervisor, child), restored after
    /// their supervisors' declared children; see [`crate::store::children`].
    pub dynamic: Vec<(String, ChildSpec)>,
    /// The price table (`[prices]`), for the cost of reported usage.
    pub prices: crate::spend::Prices,
}

/// How the tree ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootExit {
    /// Stopped on request (shutdown).
    Shutdown,
    /// Root gave up: the reason.
    GaveUp(String),
}

/// Why the runtime did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The tree spec is invalid.
    #[error("invalid tree: {0}")]
    Invalid(#[from] SpecError),
    /// A child failed to start.
    #[error("the tree failed to start: {0}")]
    Failed(String),
}

/// Counts of one supervisor's children (OTP `count_children`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChildCount {
    /// All children.
    pub specs: usize,
    /// Children running now.
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are agents.
    pub workers: usize,
}

mod delayed;
mod guardian;
mod reload;

pub use reload::{ReloadError, ReloadPlan, ReloadReport};

use guardian::{Guardian, GuardianArgs};

/// A running tree.
pub struct Runtime {
    tree: Arc<TreeContext>,
    /// The declared tree as the config last gave it (reloads diff against it, and
    /// hold the lock while they run).
    declared: tokio::sync::Mutex<SupervisorSpec>,
    /// Delayed sends (with a store).
    delayer: Option<delayed::Delayer>,
    root_name: String,
    guardian: ActorRef<()>,
    root: ActorRef<SupMsg>,
    exit: watch::Receiver<Option<RootExit>>,
}

impl Runtime {
    /// Validates `spec`, starts the tree (children in declared order) and returns once
    /// every child has started.
    /// Every mailbox lives in memory (`mailbox = "durable"` included), no limiters.
    pub async fn start(spec: SupervisorSpec, kinds: Kinds) -> Result<Runtime, StartError> {
        Self::start_with(spec, kinds, Options::default()).await
    }

    /// Like [`Runtime::start`], with durable mailboxes kept in the options' store
    /// (resumed from what it recovered) and the options' named limiters.
    pub async fn start_with(
        spec: SupervisorSpec,
        kinds: Kinds,
        options: Options,
    ) -> Result<Runtime, StartError> {
        let tree = TreeContext::new(
            &spec,
            kinds,
            options.durable,
            options.limits,
            options.dynamic,
        )?;
        tree.registry.ledger.set_prices(options.prices);
        if let Some(d) = &tree.durable {
            let mut left = d.recovered.lock().unwrap_or_else(|p| p.into_inner());
            // spend and budgets first: no message is handled before they are known
            let spend = std::mem::take(&mut left.spend);
            for r in &spend {
                if let crate::store::spend::SpendRecord::Limiter(name, day) = r {
                    if let Some(l) = tree.limits.get(name) {
                        l.restore_day(*day);
                    }
                }
            }
            tree.registry.ledger.load(spend);
            for (agent, r) in &left.agents {
                // no host will run these: they must not hold the suspect gate shut
                d.store.gate.forget_agent(agent);
                if !r.queue.is_empty() || !r.dead.is_empty() {
                    tracing::warn!(%agent, pending = r.queue.len(), dead_letters = r.dead.len(),
                        "the store holds messages for an agent the config no longer has (or no longer keeps durable); they are kept on disk");
                }
            }
        }
        let root_name = spec.name.clone();
        let declared = tokio::sync::Mutex::new(spec.clone());
        let (tx, rx) = watch::channel(None);
        let args = GuardianArgs {
            spec,
            tree: tree.clone(),
            exit: tx,
        };
        let (guardian, _) = Actor::spawn(None, Guardian, args).await.map_err(|e| {
            StartError::Failed(match e {
                ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
                other => other.to_string(),
            })
        })?;
        let root = tree
            .supervisor(&root_name)
            .ok_or_else(|| StartError::Failed("root did not register".into()))?;
        // dead letters whose on_dead_letter notice a crash kept from going
        for name in tree.registry.names() {
            if let Some(slot) = tree.registry.get(&name) {
                slot.resend_dead_notices();
            }
        }
        let delayer = tree.durable.as_ref().map(|d| {
            let left = std::mem::take(
                &mut d
                    .recovered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .delayed,
            );
            delayed::Delayer::start(tree.registry.clone(), d.store.clone(), left)
        });
        Ok(Runtime {
            tree,
            declared,
            delayer,
            root_name,
            guardian,
            root: root.into(),
            exit: rx,
        })
    }

    /// The shared tree context (registry, nodes, events).
    pub fn tree_context(&self) -> &Arc<TreeContext> {
        &self.tree
    }

    /// Accepts a message for agent `to`; returns once it is accepted (durable
    /// mailboxes: flushed to the store). A refusal hands the payload back.
    pub async fn send(&self, to: &str, payload: Value) -> Result<MessageId, Undelivered> {
        Ok(self
            .tree
            .registry
            .send(to, payload, SendOptions::default())
            .await?
            .message_id)
    }

    /// Accepts a message with options (correlation, key, deadline, reply-to).
    pub async fn send_with(
        &self,
        to: &str,
        payload: Value,
        opts: SendOptions,
    ) -> Result<Sent, Undelivered> {
        self.tree.registry.send(to, payload, opts).await
    }

    /// The store, when the tree has durable mailboxes.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.tree.durable.as_ref().map(|d| &d.store)
    }

    /// Forgets expired idempotency keys of every agent; returns how many. (And,
    /// at most hourly, spend past its retention: see [`crate::spend`].)
    pub fn expire_keys(&self) -> usize {
        let now = crate::envelope::now_ms();
        self.prune_spend(now);
        self.tree
            .registry
            .names()
            .iter()
            .filter_map(|n| self.tree.registry.get(n))
            .map(|s| s.expire_keys(now))
            .sum()
    }

    /// Forgets spend past its retention (at most hourly), in memory and in the
    /// store.
    fn prune_spend(&self, now: u64) {
        let mut batch = crate::store::Batch::default();
        let n = self.tree.registry.ledger.prune_if_due(now, &mut batch);
        if n > 0 {
            tracing::info!(records = n, "spend past its retention forgotten");
            if let Some(store) = self.store() {
                store.submit(batch, |r| {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "cannot remove old spend records; they go at the next start");
                    }
                });
            }
        }
    }

    /// Sends and waits for the agent's reply.
    pub async fn call(
        &self,
        to: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        self.call_with(to, payload, timeout, SendOptions::default())
            .await
    }

    /// Like [`Runtime::call`], with a correlation, a budget, ...
    pub async fn call_with(
        &self,
        to: &str,
        payload: Value,
        timeout: Duration,
        opts: SendOptions,
    ) -> Result<Value, CallError> {
        self.tree.registry.call(to, payload, timeout, opts).await
    }

    /// The agent slot named `name` (state, counters, dead letters).
    pub fn agent(&self, name: &str) -> Option<Arc<AgentSlot>> {
        self.tree.registry.get(name)
    }

    async fn control(&self, op: ControlOp, name: &str) -> Result<(), ControlError> {
        let parent = self.parent(name)?;
        let sup = self.supervisor_ref(&parent)?;
        ractor::call!(sup, |reply| SupMsg::Control(op, name.to_string(), reply))
            .map_err(|_| ControlError::Unavailable(parent))?
    }

    fn parent(&self, name: &str) -> Result<String, ControlError> {
        if name == self.root_name {
            return Err(ControlError::Invalid(format!(
                "'{name}' is the root supervisor; use shutdown to stop the tree"
            )));
        }
        self.tree.parent_of(name).ok_or_else(|| {
            let near = did_you_mean(
                name,
                self.tree.names().iter().map(String::as_str),
                Quote::Name,
            )
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
            ControlError::NotFound(format!("no child '{name}' in the tree{near}"))
        })
    }

    fn supervisor_ref(&self, name: &str) -> Result<ActorRef<SupMsg>, ControlError> {
        self.tree
            .supervisor(name)
            .map(ActorRef::from)
            .ok_or_else(|| ControlError::NotFound(format!("no supervisor '{name}'")))
    }

    /// Stops a child gracefully; it stays stopped until [`Runtime::start_child`].
    pub async fn stop_child(&self, name: &str) -> Result<(), ControlError> {
        self.control(ControlOp::Stop, name).await
    }

    /// Starts a stopped child.
    pub async fn start_child(&self, name: &str) -> Result<(), ControlError> {
        self.control(ControlOp::Start, name).await
    }

    /// Stops and starts a child.
    pub async fn restart_child(&self, name: &str) -> Result<(), ControlError> {
        self.control(ControlOp::Restart, name).await
    }

    /// Kills a child abruptly; its supervisor handles it as a crash.
    pub async fn kill(&self, name: &str) -> Result<(), ControlError> {
        self.control(ControlOp::Kill, name).await
    }

    /// Adds a child to `supervisor` and starts it (OTP `start_child`). It lasts
    /// until deleted, across restarts of its supervisor, for this run of the tree;
    /// [`Runtime::add_child_kept`] also keeps it across daemon restarts.
    pub async fn add_child(&self, supervisor: &str, spec: ChildSpec) -> Result<(), ControlError> {
        self.add_child_kept(supervisor, spec, None).await
    }

    /// [`Runtime::add_child`], and with a store, writes `record` (the agent keys the
    /// child was made from, as the config would list them) so the child exists again
    /// after the daemon restarts; answers once the record is durable.
    pub async fn add_child_kept(
        &self,
        supervisor: &str,
        spec: ChildSpec,
        record: Option<Value>,
    ) -> Result<(), ControlError> {
        let sup = self.supervisor_ref(supervisor)?;
        ractor::call!(sup, |reply| SupMsg::AddChild(Box::new(spec), record, reply))
            .map_err(|_| ControlError::Unavailable(supervisor.to_string()))?
    }

    /// Makes child `name` of a `simple_one_for_one` supervisor from its template,
    /// starting from `state`, and starts it. With a store it is answered once the
    /// child is durable: it exists again after any restart until deleted.
    pub async fn spawn(
        &self,
        supervisor: &str,
        name: &str,
        state: Option<Value>,
    ) -> Result<(), ControlError> {
        let sup = self.supervisor_ref(supervisor)?;
        let name = name.to_string();
        ractor::call!(sup, |reply| SupMsg::Spawn(name, state, reply))
            .map_err(|_| ControlError::Unavailable(supervisor.to_string()))?
    }

    /// Stops and removes a child made at run time; refused while it has messages
    /// waiting, in flight or dead-lettered.
    pub async fn delete_child(&self, name: &str) -> Result<(), ControlError> {
        let parent = self.parent(name)?;
        let sup = self.supervisor_ref(&parent)?;
        let name = name.to_string();
        ractor::call!(sup, |reply| SupMsg::Delete(name, Removal::Dynamic, reply))
            .map_err(|_| ControlError::Unavailable(parent))?
    }

    /// The children of `supervisor`, in start order.
    pub async fn which_children(&self, supervisor: &str) -> Result<Vec<ChildInfo>, ControlError> {
        let sup = self.supervisor_ref(supervisor)?;
        ractor::call!(sup, SupMsg::Which)
            .map_err(|_| ControlError::Unavailable(supervisor.to_string()))
    }

    /// Counts of `supervisor`'s children.
    pub async fn count_children(&self, supervisor: &str) -> Result<ChildCount, ControlError> {
        let kids = self.which_children(supervisor).await?;
        let supervisors = kids.iter().filter(|c| c.kind == "supervisor").count();
        Ok(ChildCount {
            specs: kids.len(),
            active: kids.iter().filter(|c| !c.actor_ids.is_empty()).count(),
            supervisors,
            workers: kids.len() - supervisors,
        })
    }

    /// A snapshot of the whole tree.
    pub fn tree(&self) -> TreeSnapshot {
        self.tree
            .snapshot(&self.root_name)
            .expect("root node exists for the runtime's life")
    }

    /// Lifecycle events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TreeEvent> {
        self.tree.subscribe()
    }

    /// Stops the tree: children in reverse start order, each within its `shutdown`,
    /// then kill. Waits at most `timeout` for the whole tree.
    pub async fn shutdown(&self, timeout: Duration) -> RootExit {
        let cell = self.root.get_cell();
        if cell
            .stop_and_wait(
                Some(crate::supervision::EXIT_SHUTDOWN.into()),
                Some(timeout),
            )
            .await
            .is_err()
        {
            tracing::warn!(
                ?timeout,
                "tree did not stop within the shutdown timeout; killing it"
            );
            let _ = cell.kill_and_wait(None).await;
        }
        self.exited().await
    }

    /// Resolves when the tree has ended, with how it ended.
    pub async fn exited(&self) -> RootExit {
        let mut rx = self.exit.clone();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return RootExit::Shutdown;
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.guardian.get_cell().kill();
    }
}
