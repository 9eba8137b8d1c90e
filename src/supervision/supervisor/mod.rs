//! The supervisor actor: starts children in order, restarts them by strategy, gives
//! up past its restart intensity, and stops children in reverse order.
//!
//! Guarantees:
//! - Children start in declared order; a child that fails to start stops the ones
//!   already started (reverse order) and fails the supervisor's own start.
//! - On a child's exit (`exit.rs`), [`should_restart`](super::restart::should_restart) decides; the strategy picks the affected
//!   siblings, which are stopped in reverse order (each with its `shutdown`) and then
//!   started again in declared order.
//! - Restarts are counted in an [`IntensityWindow`], except crashes that the agent
//!   slot attributes to the message in flight: those are bounded by that message's
//!   `max_attempts` instead (poison containment, G4). Past the intensity, the
//!   supervisor stops every child in reverse order and fails; its parent then applies
//!   its own strategy (escalation).
//! - A failed restart, or one delayed by restart backoff, is retried by a message to
//!   self, never in a loop, so the supervisor stays responsive meanwhile.
//! - A pool (`replicas > 1`) under `one_for_one` restarts only the replica that
//!   failed; under other strategies the failed child is restarted whole.
//!
//! Files: this one starts and stops children; `exit.rs` decides on a child's exit;
//! `control.rs` serves operator requests (stop, start, restart, kill, add, which).

use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::Instrument;

use super::intensity::IntensityWindow;
use super::restart::{Exit, EXIT_SHUTDOWN};
use super::spec::{ChildKind, ChildSpec, Shutdown, Strategy, SupervisorSpec};
use super::tree::{Node, Status, TreeContext};
use crate::actors::host::{AgentHost, HostArgs};
use crate::actors::AgentSlot;

mod control;
mod exit;

pub use control::{ChildInfo, ControlError, ControlOp};

/// Messages to a supervisor.
pub enum SupMsg {
    /// Operator control of one child.
    Control(ControlOp, String, RpcReplyPort<Result<(), ControlError>>),
    /// Add and start a child (OTP `start_child`).
    AddChild(Box<ChildSpec>, RpcReplyPort<Result<(), ControlError>>),
    /// List the children.
    Which(RpcReplyPort<Vec<ChildInfo>>),
    /// Start these children (index, generation) now, in order: a delayed or retried restart.
    Retry(Vec<(usize, u64)>),
}

/// The supervisor actor type.
pub struct Supervisor;

/// What a supervisor is started with.
pub struct SupervisorArgs {
    /// Its spec.
    pub spec: SupervisorSpec,
    /// The tree it belongs to.
    pub tree: Arc<TreeContext>,
}

struct Child {
    spec: ChildSpec,
    name: String,
    node: Arc<Node>,
    slot: Option<Arc<AgentSlot>>,
    cells: Vec<Option<ActorCell>>,
    /// Bumped whenever the child is started or stopped, so stale retries do nothing.
    generation: u64,
    backoff_step: u32,
    started_at: Instant,
}

impl Child {
    fn running(&self) -> bool {
        self.cells.iter().any(Option::is_some)
    }
}

/// A running supervisor.
pub struct SupState {
    name: String,
    strategy: Strategy,
    window: IntensityWindow,
    children: Vec<Child>,
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
        tree.set_supervisor(&spec.name, myself.clone());
        let mut children = Vec::with_capacity(spec.children.len());
        for c in spec.children {
            children.push(new_child(&tree, c)?);
        }
        let mut st = SupState {
            name: spec.name,
            strategy: spec.strategy,
            window: IntensityWindow::new(spec.intensity),
            children,
            tree,
        };
        for i in 0..st.children.len() {
            if let Err(e) = st.start_child(i, &myself).await {
                let why = format!("child '{}' failed to start: {e}", st.children[i].name);
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
            SupMsg::AddChild(spec, reply) => {
                let r = st.add_child(*spec, &myself).await;
                let _ = reply.send(r);
            }
            SupMsg::Which(reply) => {
                let _ = reply.send(st.which());
            }
            SupMsg::Retry(items) => {
                let due: Vec<usize> = items
                    .into_iter()
                    .filter(|&(i, g)| {
                        st.children.get(i).is_some_and(|c| {
                            c.generation == g && c.node.status() == Status::Restarting
                        })
                    })
                    .map(|(i, _)| i)
                    .collect();
                st.start_in_order(due, &myself).await?;
            }
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
    let (slot, replicas) = match &spec.kind {
        ChildKind::Agent(a) => (tree.registry.get(&name), a.replicas as usize),
        ChildKind::Supervisor(_) => (None, 1),
    };
    Ok(Child {
        spec,
        name,
        node,
        slot,
        cells: vec![None; replicas],
        generation: 0,
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
    fn index_of(&self, name: &str) -> Option<usize> {
        self.children.iter().position(|c| c.name == name)
    }

    fn find_cell(&self, id: ractor::ActorId) -> Option<(usize, usize)> {
        self.children.iter().enumerate().find_map(|(i, c)| {
            c.cells
                .iter()
                .position(|cell| cell.as_ref().is_some_and(|cell| cell.get_id() == id))
                .map(|r| (i, r))
        })
    }

    /// Starts every missing replica of child `i`.
    async fn start_child(&mut self, i: usize, myself: &ActorRef<SupMsg>) -> Result<(), String> {
        let tree = self.tree.clone();
        let child = &mut self.children[i];
        child.generation += 1;
        for r in 0..child.cells.len() {
            if child.cells[r].is_some() {
                continue;
            }
            let cell = match &child.spec.kind {
                ChildKind::Agent(a) => {
                    let kind = tree
                        .kinds
                        .get(&a.kind)
                        .ok_or_else(|| format!("unknown kind '{}'", a.kind))?;
                    let args = HostArgs {
                        slot: child.slot.clone().ok_or("agent has no slot")?,
                        replica: r,
                        registry: tree.registry.clone(),
                        build: kind.build.clone(),
                        limiters: a
                            .limits
                            .iter()
                            .map(|l| {
                                tree.limits
                                    .get(l)
                                    .ok_or_else(|| format!("no limiter '{l}'"))
                            })
                            .collect::<Result<_, _>>()?,
                    };
                    AgentHost::spawn_linked(None, AgentHost, args, myself.get_cell())
                        .await
                        .map_err(|e| spawn_reason(&e))?
                        .0
                        .get_cell()
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
            child.cells[r] = Some(cell);
        }
        child.started_at = Instant::now();
        child
            .node
            .set_actor_ids(child.cells.iter().flatten().map(|c| c.get_id()).collect());
        child.node.set_status(Status::Running);
        tree.event("started", &child.name, None);
        Ok(())
    }

    /// Stops child `i` (all replicas, reverse order) by its shutdown; it stays stopped.
    async fn stop_child(&mut self, i: usize, status: Status) {
        let child = &mut self.children[i];
        child.generation += 1;
        let was_running = child.running();
        for r in (0..child.cells.len()).rev() {
            if let Some(cell) = child.cells[r].take() {
                shutdown_cell(&cell, child.spec.shutdown).await;
                if let Some(slot) = &child.slot {
                    slot.replica_exited(r, cell.get_id(), EXIT_SHUTDOWN, false);
                }
            }
        }
        child.node.set_actor_ids(Vec::new());
        child.node.set_status(status);
        if was_running {
            self.tree.event("stopped", &child.name, None);
        }
    }

    /// Stops every child in reverse start order.
    async fn stop_all(&mut self) {
        for i in (0..self.children.len()).rev() {
            let status = match self.children[i].node.status() {
                Status::Failed => Status::Failed,
                _ => Status::Stopped,
            };
            self.stop_child(i, status).await;
        }
    }

    /// Starts children in order; a failure counts against intensity and the rest are
    /// retried by a message to self. `Err` means the supervisor gives up.
    async fn start_in_order(
        &mut self,
        order: Vec<usize>,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        for (k, &i) in order.iter().enumerate() {
            let span = tracing::info_span!("warden.restart", supervisor = %self.name,
                child = %self.children[i].name);
            if let Err(e) = self.start_child(i, myself).instrument(span).await {
                let name = self.children[i].name.clone();
                tracing::warn!(supervisor = %self.name, child = %name, error = %e, "restart failed");
                self.tree.event("failed", &name, Some(e.clone()));
                if !self.window.add_restart(Instant::now()) {
                    return self
                        .give_up(format!("child '{name}' failed to restart: {e}"))
                        .await;
                }
                let rest: Vec<(usize, u64)> = order[k..]
                    .iter()
                    .map(|&j| {
                        let c = &mut self.children[j];
                        c.node.set_status(Status::Restarting);
                        (j, c.generation)
                    })
                    .collect();
                let delay = self.children[i].next_backoff();
                match delay {
                    Some(d) => {
                        myself.send_after(d, move || SupMsg::Retry(rest));
                    }
                    None => myself.cast(SupMsg::Retry(rest))?,
                }
                return Ok(());
            }
            let c = &self.children[i];
            c.node.count_restart();
            if let Some(slot) = &c.slot {
                slot.stats
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.tree.event("restarted", &c.name, None);
        }
        Ok(())
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
