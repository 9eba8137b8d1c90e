//! The tree's shared context (`edit.rs`: the changes a reload makes to it): its nodes (`node.rs`), agents and their workers,
//! dynamic children, supervisors' actors, and lifecycle events; `snapshot.rs`
//! draws it for `tree`.
//!
//! Supervisors write their children's nodes as they start, stop and restart them;
//! readers take snapshots without talking to any actor, so inspecting the tree never
//! waits on a busy supervisor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ractor::ActorCell;
use tokio::sync::broadcast;

use indexmap::IndexMap;

pub use super::node::{Node, NodeKind, Status};
use super::spec::{ChildKind, ChildSpec, SupervisorSpec};
pub use crate::actors::event::TreeEvent;
use crate::actors::{AgentSlot, AgentWorker, Kinds, MailboxKind, Registry};
use crate::envelope::now_ms;
use crate::policies::limits::Limits;
use crate::spec_error::SpecError;
use crate::store::{Recovered, Store};
use std::time::Duration;

mod edit;

/// The store behind durable mailboxes, and what it held at open.
pub struct Durable {
    /// The open store.
    pub store: Arc<Store>,
    /// Recovered records, taken agent by agent as slots are created.
    pub recovered: Mutex<Recovered>,
    /// How long idempotency keys are remembered.
    pub retention: Duration,
}

/// Everything the supervisors of one tree share.
pub struct TreeContext {
    /// Agent slots and pending calls.
    pub(crate) registry: Arc<Registry>,
    /// Behaviours.
    pub(crate) kinds: Kinds,
    /// The store, when the tree has durable mailboxes.
    pub(crate) durable: Option<Durable>,
    /// Named rate limiters, shared by the agents that list them; they outlive
    /// every incarnation, so a restart does not reset a quota.
    pub(crate) limits: Limits,
    nodes: RwLock<HashMap<String, Arc<Node>>>,
    parents: RwLock<HashMap<String, String>>,
    supervisors: RwLock<HashMap<String, ActorCell>>,
    /// How supervisors run each agent (made with its slot).
    workers: RwLock<HashMap<String, Arc<AgentWorker>>>,
    /// Children added at run time, by supervisor, in start order: a supervisor
    /// that restarts starts them again after its declared children.
    dynamic: Mutex<HashMap<String, IndexMap<String, ChildSpec>>>,
    /// Start order of the next dynamic child (kept in its store record).
    next_order: AtomicU64,
    events: broadcast::Sender<TreeEvent>,
}

impl TreeContext {
    /// A context for `root`: a node for every name, a slot for every agent, and the
    /// dynamic children made by earlier runs (`dynamic`: supervisor, child), which
    /// join their supervisors after the declared children. A dynamic child whose
    /// supervisor is gone, or whose name is taken, is left out with an error logged
    /// (its records stay on disk).
    pub fn new(
        root: &SupervisorSpec,
        kinds: Kinds,
        durable: Option<Durable>,
        limits: Limits,
        dynamic: Vec<(String, ChildSpec)>,
    ) -> Result<Arc<Self>, SpecError> {
        root.validate()?;
        let next_order = durable.as_ref().map_or(1, |d| {
            let r = d.recovered.lock().unwrap_or_else(|p| p.into_inner());
            r.children.iter().map(|c| c.order).max().unwrap_or(0) + 1
        });
        let ctx = TreeContext {
            registry: Arc::new(Registry::default()),
            kinds,
            durable,
            limits,
            nodes: RwLock::new(HashMap::new()),
            parents: RwLock::new(HashMap::new()),
            supervisors: RwLock::new(HashMap::new()),
            workers: RwLock::new(HashMap::new()),
            dynamic: Mutex::new(HashMap::new()),
            next_order: AtomicU64::new(next_order),
            events: broadcast::channel(1024).0,
        };
        ctx.add_supervisor_nodes(root, None)?;
        for (sup, mut child) in dynamic {
            let is_supervisor = matches!(
                ctx.node(&sup)
                    .map(|n| n.kind.read().unwrap_or_else(|p| p.into_inner()).clone()),
                Some(NodeKind::Supervisor { .. })
            );
            let name = child.name().to_string();
            if !is_supervisor {
                tracing::error!(supervisor = %sup, child = %name,
                    "a dynamic child's supervisor is not in the tree any more; the child is not started and its records stay on disk");
                continue;
            }
            if let Err(e) = ctx.add_child_nodes(&child.kind, &sup) {
                tracing::error!(supervisor = %sup, child = %name, error = %e,
                    "a dynamic child cannot be restored; it is not started and its records stay on disk");
                continue;
            }
            ctx.push_child(&sup, &name);
            child.dynamic = true;
            ctx.add_dynamic(&sup, child);
        }
        Ok(Arc::new(ctx))
    }

    /// The dynamic children of `supervisor`, in start order.
    pub(crate) fn dynamic_children(&self, supervisor: &str) -> Vec<ChildSpec> {
        self.dynamic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(supervisor)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn add_dynamic(&self, supervisor: &str, child: ChildSpec) {
        self.dynamic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(supervisor.to_string())
            .or_default()
            .insert(child.name().to_string(), child);
    }

    /// The start order for the next dynamic child.
    pub(crate) fn next_order(&self) -> u64 {
        self.next_order.fetch_add(1, Ordering::Relaxed)
    }

    /// How supervisors run agent `name`.
    pub(crate) fn worker(&self, name: &str) -> Option<Arc<AgentWorker>> {
        self.workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Removes a dynamic child of `supervisor` and its subtree: nodes, slots, the
    /// tree view's entry. Returns the names of the agents removed.
    pub(crate) fn remove_child(&self, supervisor: &str, name: &str) -> Vec<String> {
        if let Some(m) = self
            .dynamic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(supervisor)
        {
            m.shift_remove(name);
        }
        if let Some(node) = self.node(supervisor) {
            if let NodeKind::Supervisor { children, .. } =
                &mut *node.kind.write().unwrap_or_else(|p| p.into_inner())
            {
                children.retain(|c| c != name);
            }
        }
        let mut removed = Vec::new();
        self.remove_nodes(name, &mut removed);
        removed
    }

    fn remove_nodes(&self, name: &str, removed: &mut Vec<String>) {
        let node = self
            .nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.parents
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let Some(node) = node else { return };
        let kind = node.kind.read().unwrap_or_else(|p| p.into_inner()).clone();
        match kind {
            NodeKind::Agent { .. } => {
                self.registry.remove(name);
                self.workers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
                removed.push(name.to_string());
            }
            NodeKind::Supervisor { children, .. } => {
                self.supervisors
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
                self.dynamic
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
                for c in children {
                    self.remove_nodes(&c, removed);
                }
            }
        }
    }

    /// The agents in the subtree at `name` (itself, if an agent).
    pub(crate) fn agents_under(&self, name: &str) -> Vec<Arc<AgentWorker>> {
        let Some(node) = self.node(name) else {
            return Vec::new();
        };
        let kind = node.kind.read().unwrap_or_else(|p| p.into_inner()).clone();
        match kind {
            NodeKind::Agent { .. } => self.worker(name).into_iter().collect(),
            NodeKind::Supervisor { children, .. } => {
                children.iter().flat_map(|c| self.agents_under(c)).collect()
            }
        }
    }

    fn add_supervisor_nodes(
        &self,
        s: &SupervisorSpec,
        parent: Option<&str>,
    ) -> Result<(), SpecError> {
        self.add_node(
            &s.name,
            NodeKind::Supervisor {
                strategy: s.strategy.as_str(),
                children: s.children.iter().map(|c| c.name().to_string()).collect(),
            },
            parent,
        )?;
        for c in &s.children {
            self.add_child_nodes(&c.kind, &s.name)?;
        }
        Ok(())
    }

    /// Adds nodes (and slots) for a child and its subtree under `parent`.
    pub(crate) fn add_child_nodes(&self, kind: &ChildKind, parent: &str) -> Result<(), SpecError> {
        match kind {
            ChildKind::Agent(a) => {
                if self.kinds.get(&a.kind).is_none() {
                    return Err(SpecError::UnknownKind {
                        agent: a.name.clone(),
                        kind: a.kind.clone(),
                        known: self.kinds.names().join(", "),
                    });
                }
                a.validate()?;
                if let Some(l) = a.limits.iter().find(|l| self.limits.get(l).is_none()) {
                    return Err(SpecError::UnknownLimiter {
                        agent: a.name.clone(),
                        limiter: l.clone(),
                    });
                }
                self.add_node(
                    &a.name,
                    NodeKind::Agent {
                        replicas: a.replicas,
                    },
                    Some(parent),
                )?;
                let slot = match &self.durable {
                    Some(d) if a.mailbox == MailboxKind::Durable => {
                        let rec = d
                            .recovered
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .take(&a.name);
                        AgentSlot::durable(a.clone(), d.store.clone(), rec, d.retention)
                    }
                    _ => AgentSlot::new(a.clone()),
                };
                slot.set_events(self.events.clone());
                let registry = Arc::downgrade(&self.registry);
                slot.set_resolver(Arc::new(move |name: &str| registry.upgrade()?.get(name)));
                let slot = Arc::new(slot);
                let worker = AgentWorker::new(
                    slot.clone(),
                    self.registry.clone(),
                    &self.kinds,
                    &self.limits,
                )?;
                self.registry.insert(slot)?;
                self.workers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(a.name.clone(), Arc::new(worker));
                Ok(())
            }
            ChildKind::Supervisor(s) => self.add_supervisor_nodes(s, Some(parent)),
        }
    }

    fn add_node(&self, name: &str, kind: NodeKind, parent: Option<&str>) -> Result<(), SpecError> {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        if nodes.contains_key(name) {
            return Err(SpecError::Duplicate(name.to_string()));
        }
        nodes.insert(name.to_string(), Arc::new(Node::new(kind)));
        if let Some(p) = parent {
            self.parents
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), p.to_string());
        }
        Ok(())
    }

    /// The named rate limiters.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The agents' slots and pending calls.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every node name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// How many supervisors are above `name` and including it, if it is one (root
    /// is at depth 1).
    pub(crate) fn depth_of(&self, name: &str) -> usize {
        let parents = self.parents.read().unwrap_or_else(|p| p.into_inner());
        let (mut depth, mut at) = (1, name.to_string());
        while let Some(p) = parents.get(&at) {
            depth += 1;
            at = p.clone();
        }
        depth
    }

    /// The supervisor that owns `name`.
    pub fn parent_of(&self, name: &str) -> Option<String> {
        self.parents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The running incarnation of supervisor `name` (its actor; the supervisor
    /// module types it).
    pub(crate) fn supervisor(&self, name: &str) -> Option<ActorCell> {
        self.supervisors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn set_supervisor(&self, name: &str, r: ActorCell) {
        self.supervisors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), r);
    }

    /// Appends `child` to `supervisor`'s children in the tree view.
    pub(crate) fn push_child(&self, supervisor: &str, child: &str) {
        if let Some(node) = self.node(supervisor) {
            if let NodeKind::Supervisor { children, .. } =
                &mut *node.kind.write().unwrap_or_else(|p| p.into_inner())
            {
                children.push(child.to_string());
            }
        }
    }

    /// Publishes a lifecycle event (dropped when nobody listens).
    pub fn event(&self, event: &'static str, name: &str, reason: Option<String>) {
        let _ = self.events.send(TreeEvent {
            event,
            name: name.to_string(),
            reason,
            at_ms: now_ms(),
        });
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<TreeEvent> {
        self.events.subscribe()
    }
}
