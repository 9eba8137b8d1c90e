//! The supervisor actor: starts children in order, restarts them by strategy, gives
//! up past its restart intensity, and stops children in reverse order.
//!
//! Guarantees:
//! - Children start in declared order (dynamic children after the declared ones,
//!   in the order they were made); a child that fails to start stops the ones
//!   already started (reverse order) and fails the supervisor's own start.
//! - On a child's exit (`exit.rs`), [`should_restart`](super::restart::should_restart)
//!   decides; the strategy picks the affected siblings, which are stopped in reverse
//!   order (each with its `shutdown`) and then started again in declared order: a
//!   restart *sweep* (`sweep.rs`). A sweep whose start fails is redone whole, as
//!   OTP's `try_again`: its members still running are stopped again first.
//! - Restarts are counted in an [`IntensityWindow`], except crashes that the agent
//!   slot attributes to the message in flight: those are bounded by that message's
//!   `max_attempts` instead (poison containment, G4). Past the intensity, the
//!   supervisor stops every child in reverse order and ends with reason
//!   `gave up: ...`; its parent then applies its own strategy (escalation).
//! - A failed restart, or one delayed by restart backoff, is retried by a message to
//!   self, never in a loop, so the supervisor stays responsive meanwhile; stopping a
//!   child cancels every pending retry of it and of the children after it.
//! - A pool (`replicas > 1`) under `one_for_one` restarts only the replica that
//!   failed; under other strategies the failed child is restarted whole. A pool's
//!   replicas are stopped together, each within the child's shutdown.
//! - With `auto_shutdown`, the supervisor stops itself (reason `shutdown`) when its
//!   significant children end on their own.
//!
//! Files: this one starts and stops children; `exit.rs` decides on a child's exit;
//! `sweep.rs` runs restarts; `control.rs` serves operator requests; `dynamic.rs`
//! adds, spawns and deletes children at run time.

use crate::clock::Instant;
use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde_json::Value;

use super::intensity::IntensityWindow;
use super::restart::{Exit, EXIT_SHUTDOWN};
use super::spec::{AutoShutdown, ChildKind, ChildSpec, Shutdown, Strategy, SupervisorSpec};
use super::tree::{Node, Status, TreeContext};
use crate::actors::AgentWorker;

mod control;
mod dynamic;
mod exit;
mod reconcile;
mod sweep;

pub use control::{ChildInfo, ControlError, ControlOp};
pub(crate) use dynamic::Removal;

/// Messages to a supervisor.
pub(crate) enum SupMsg {
    /// Operator control of one child.
    Control(ControlOp, String, RpcReplyPort<Result<(), ControlError>>),
    /// Add and start a child (OTP `start_child`); with a record, it is dynamic and
    /// kept in the store (the record is the agent keys it was added with).
    AddChild(
        Box<ChildSpec>,
        Option<Value>,
        RpcReplyPort<Result<(), ControlError>>,
    ),
    /// Make a child from the template (`simple_one_for_one`): name, initial state.
    Spawn(
        String,
        Option<Value>,
        RpcReplyPort<Result<(), ControlError>>,
    ),
    /// Stop and remove a child (OTP `terminate_child` + `delete_child`).
    Delete(String, Removal, RpcReplyPort<Result<(), ControlError>>),
    /// A reload: take this spec (own keys and declared children, in order),
    /// restarting the named agents with their new specs; answers the children that
    /// failed to start.
    Reconcile(
        Box<SupervisorSpec>,
        Vec<String>,
        RpcReplyPort<Vec<(String, String)>>,
    ),
    /// List the children.
    Which(RpcReplyPort<Vec<ChildInfo>>),
    /// Run (again) the restart sweep with this id: a delayed or retried restart.
    Retry(u64),
}

/// The supervisor actor type.
pub(crate) struct Supervisor;

/// What a supervisor is started with.
pub(crate) struct SupervisorArgs {
    /// Its spec.
    pub spec: SupervisorSpec,
    /// The tree it belongs to.
    pub tree: Arc<TreeContext>,
}

struct Child {
    spec: ChildSpec,
    node: Arc<Node>,
    /// Agents: how to run it.
    agent: Option<Arc<AgentWorker>>,
    cells: Vec<Option<ActorCell>>,
    backoff_step: u32,
    started_at: Instant,
}

impl Child {
    fn running(&self) -> bool {
        self.cells.iter().any(Option::is_some)
    }

    fn is_supervisor(&self) -> bool {
        matches!(self.spec.kind, ChildKind::Supervisor(_))
    }
}

/// A running supervisor.
pub(crate) struct SupState {
    name: String,
    strategy: Strategy,
    auto_shutdown: AutoShutdown,
    template: Option<Box<ChildSpec>>,
    window: IntensityWindow,
    /// Children by name, in start order.
    children: IndexMap<String, Child>,
    /// Which child (and replica) each running actor is.
    by_cell: HashMap<ActorId, (String, usize)>,
    sweeps: sweep::Sweeps,
    tree: Arc<TreeContext>,
}

impl Actor for Supervisor {
    type Msg = SupMsg;
    type State = SupState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupMsg>,
        args: SupervisorArgs,
    ) -> Result<SupState, ActorProcessingErr> {
        let SupervisorArgs { spec, tree } = args;
        tree.set_supervisor(&spec.name, myself.get_cell());
        let mut children = IndexMap::with_capacity(spec.children.len());
        let dynamic = tree.dynamic_children(&spec.name);
        for c in spec.children.into_iter().chain(dynamic) {
            let child = new_child(&tree, c)?;
            children.insert(child.spec.name().to_string(), child);
        }
        let mut st = SupState {
            name: spec.name,
            strategy: spec.strategy,
            auto_shutdown: spec.auto_shutdown,
            template: spec.template,
            window: IntensityWindow::new(spec.intensity),
            children,
            by_cell: HashMap::new(),
            sweeps: sweep::Sweeps::default(),
            tree,
        };
        for i in 0..st.children.len() {
            if let Err(e) = st.start_child(i, &myself).await {
                let why = format!("child '{}' failed to start: {e}", st.child(i).0);
                st.children[i].node.set_status(Status::Failed);
                st.stop_all().await;
                return Err(why.into());
            }
        }
        Ok(st)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupMsg>,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        st.stop_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupMsg>,
        msg: SupMsg,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupMsg::Control(op, name, reply) => {
                let r = st.control(op, &name, &myself).await;
                let _ = reply.send(r);
            }
            SupMsg::AddChild(spec, record, reply) => {
                st.add_child(*spec, record, reply, &myself).await
            }
            SupMsg::Spawn(name, state, reply) => st.spawn(name, state, reply, &myself).await,
            SupMsg::Delete(name, mode, reply) => st.delete(&name, mode, reply, &myself).await,
            SupMsg::Reconcile(spec, restart, reply) => {
                let failed = st.reconcile(*spec, &restart, &myself).await;
                let _ = reply.send(failed);
            }
            SupMsg::Which(reply) => {
                let _ = reply.send(st.which());
            }
            SupMsg::Retry(id) => st.run_sweep(id, &myself).await?,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupMsg>,
        evt: SupervisionEvent,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        let (Some(cell), Some(exit)) = (evt.actor_cell(), Exit::of(&evt)) else {
            return Ok(());
        };
        st.on_exit(cell.get_id(), exit, &myself).await
    }
}

fn new_child(tree: &TreeContext, spec: ChildSpec) -> Result<Child, ActorProcessingErr> {
    let name = spec.name().to_string();
    let node = tree
        .node(&name)
        .ok_or_else(|| format!("no node for child '{name}'"))?;
    let (agent, replicas) = match &spec.kind {
        ChildKind::Agent(_) => {
            let w = tree
                .worker(&name)
                .ok_or_else(|| format!("no agent '{name}' in the tree"))?;
            let n = w.replicas();
            (Some(w), n)
        }
        ChildKind::Supervisor(_) => (None, 1),
    };
    Ok(Child {
        spec,
        node,
        agent,
        cells: vec![None; replicas],
        backoff_step: 0,
        started_at: Instant::now(),
    })
}

/// Stops one actor by a child's shutdown: ask, wait, then kill.
async fn shutdown_cell(cell: &ActorCell, shutdown: Shutdown) {
    let reason = Some(EXIT_SHUTDOWN.to_string());
    match shutdown {
        Shutdown::BrutalKill => {
            let _ = cell.kill_and_wait(None).await;
        }
        Shutdown::Timeout(d) => {
            match cell.stop_and_wait(reason, Some(d)).await {
                Ok(()) => {}
                Err(ractor::RactorErr::Timeout) => {
                    tracing::warn!(actor = %cell.get_id(), timeout = ?d, "did not stop within its shutdown timeout; killed");
                    let _ = cell.kill_and_wait(None).await;
                }
                // The stop request could not be delivered: the actor is already
                // exiting (killed, or failed). Nothing timed out; wait for it to be gone.
                Err(_) => {
                    if cell.wait(Some(d)).await.is_err() {
                        tracing::warn!(actor = %cell.get_id(), timeout = ?d, "did not exit within its shutdown timeout; killed");
                        let _ = cell.kill_and_wait(None).await;
                    }
                }
            }
        }
        Shutdown::Infinity => {
            let _ = cell.stop_and_wait(reason, None).await;
        }
    }
}

impl SupState {
    /// Name and child at position `i`.
    fn child(&self, i: usize) -> (&String, &Child) {
        self.children.get_index(i).expect("child index in range")
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.children.get_index_of(name)
    }

    /// The position of child `name`, or `NotFound`.
    fn find(&self, name: &str) -> Result<usize, ControlError> {
        self.index_of(name)
            .ok_or_else(|| ControlError::NotFound(format!("no child '{name}' in '{}'", self.name)))
    }

    /// Starts every missing replica of child `i`.
    async fn start_child(&mut self, i: usize, myself: &ActorRef<SupMsg>) -> Result<(), String> {
        let tree = self.tree.clone();
        let (name, child) = self.children.get_index_mut(i).expect("child index");
        for r in 0..child.cells.len() {
            if child.cells[r].is_some() {
                continue;
            }
            let cell = match &child.spec.kind {
                ChildKind::Agent(_) => {
                    let agent = child.agent.as_ref().ok_or("agent has no worker")?;
                    agent.start(r, myself.get_cell()).await?
                }
                ChildKind::Supervisor(s) => {
                    let args = SupervisorArgs {
                        spec: s.clone(),
                        tree: tree.clone(),
                    };
                    Supervisor::spawn_linked(None, Supervisor, args, myself.get_cell())
                        .await
                        .map_err(|e| spawn_reason(&e))?
                        .0
                        .get_cell()
                }
            };
            self.by_cell.insert(cell.get_id(), (name.clone(), r));
            child.cells[r] = Some(cell);
        }
        child.started_at = Instant::now();
        child
            .node
            .set_actor_ids(child.cells.iter().flatten().map(|c| c.get_id()).collect());
        child.node.set_status(Status::Running);
        tree.event("started", name, None);
        Ok(())
    }

    /// Stops child `i` (all replicas, reverse order) by its shutdown and leaves it
    /// with `status`; a restart of it waits for its sweep.
    async fn stop_child(&mut self, i: usize, status: Status) {
        let (name, child) = self.children.get_index_mut(i).expect("child index");
        let was_running = child.running();
        // a pool's replicas have no order among them: they stop together, each
        // within the child's shutdown
        let mut stops = Vec::new();
        for r in (0..child.cells.len()).rev() {
            if let Some(cell) = child.cells[r].take() {
                self.by_cell.remove(&cell.get_id());
                let (shutdown, agent) = (child.spec.shutdown, child.agent.clone());
                stops.push(async move {
                    shutdown_cell(&cell, shutdown).await;
                    if let Some(agent) = agent {
                        agent.exited(r, cell.get_id(), EXIT_SHUTDOWN, false);
                    }
                });
            }
        }
        futures::future::join_all(stops).await;
        child.node.set_actor_ids(Vec::new());
        child.node.set_status(status);
        if was_running {
            self.tree.event("stopped", name, None);
        }
    }

    /// Stops every child: in reverse start order, or all at once under
    /// `simple_one_for_one` (as OTP does: its children have no order).
    async fn stop_all(&mut self) {
        self.sweeps.clear();
        if self.strategy == Strategy::SimpleOneForOne {
            let mut stops = Vec::new();
            for child in self.children.values_mut() {
                for (r, cell) in child.cells.iter_mut().enumerate() {
                    if let Some(cell) = cell.take() {
                        let (shutdown, agent) = (child.spec.shutdown, child.agent.clone());
                        stops.push(async move {
                            shutdown_cell(&cell, shutdown).await;
                            if let Some(agent) = agent {
                                agent.exited(r, cell.get_id(), EXIT_SHUTDOWN, false);
                            }
                        });
                    }
                }
            }
            futures::future::join_all(stops).await;
            self.by_cell.clear();
        }
        for i in (0..self.children.len()).rev() {
            let status = match self.children[i].node.status() {
                Status::Failed => Status::Failed,
                _ => Status::Stopped,
            };
            self.stop_child(i, status).await;
        }
    }
}

impl Child {
    /// The restart delay by this child's restart backoff, if it has one.
    fn next_backoff(&mut self) -> Option<std::time::Duration> {
        let rb = self.spec.restart_backoff.as_ref()?;
        if self.started_at.elapsed() >= rb.reset_after {
            self.backoff_step = 0;
        }
        self.backoff_step += 1;
        Some(rb.backoff.delay(self.backoff_step))
    }
}

fn spawn_reason(e: &ractor::SpawnErr) -> String {
    match e {
        ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
        other => other.to_string(),
    }
}
