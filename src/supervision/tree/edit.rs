//! The changes a config reload makes to the tree's context: an agent's new spec
//! (in place, or with a new worker), a supervisor's children and strategy in
//! the tree view, and a child moving between supervisors.

use std::sync::Arc;

use super::{NodeKind, TreeContext};
use crate::actors::{AgentSpec, AgentWorker};
use crate::spec_error::SpecError;

impl TreeContext {
    /// Gives agent `spec.name` a new spec whose behaviour changed (kind, options,
    /// replicas, limits): its slot takes the spec and a new worker runs it from now
    /// on. Only while none of its replicas runs.
    pub(crate) fn rebuild_agent(&self, spec: AgentSpec) -> Result<Arc<AgentWorker>, SpecError> {
        let name = spec.name.clone();
        let slot = self.registry.get(&name).ok_or_else(|| SpecError::Agent {
            agent: name.clone(),
            reason: "not in the tree".into(),
        })?;
        let replicas = spec.replicas;
        slot.set_spec(spec);
        let worker = Arc::new(AgentWorker::new(
            slot,
            self.registry.clone(),
            &self.kinds,
            &self.limits,
        )?);
        self.workers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), worker.clone());
        if let Some(node) = self.node(&name) {
            *node.kind.write().unwrap_or_else(|p| p.into_inner()) = NodeKind::Agent { replicas };
        }
        Ok(worker)
    }

    /// Applies agent `spec.name`'s changed policies in place (its behaviour is
    /// unchanged): no replica stops.
    pub(crate) fn update_agent(&self, spec: AgentSpec) {
        if let Some(slot) = self.registry.get(&spec.name) {
            if *slot.spec() != spec {
                slot.set_spec(spec);
                slot.trim_to_cap();
            }
        }
    }

    /// Sets `supervisor`'s children in the tree view, in start order.
    pub(crate) fn set_children(&self, supervisor: &str, order: Vec<String>) {
        if let Some(node) = self.node(supervisor) {
            if let NodeKind::Supervisor { children, .. } =
                &mut *node.kind.write().unwrap_or_else(|p| p.into_inner())
            {
                *children = order;
            }
        }
    }

    /// Sets `supervisor`'s strategy in the tree view.
    pub(crate) fn set_strategy(&self, supervisor: &str, s: &'static str) {
        if let Some(node) = self.node(supervisor) {
            if let NodeKind::Supervisor { strategy, .. } =
                &mut *node.kind.write().unwrap_or_else(|p| p.into_inner())
            {
                *strategy = s;
            }
        }
    }

    /// Takes child `name` out of `supervisor`'s children in the tree view, keeping
    /// its nodes, slots and workers (it is moving to another supervisor).
    pub(crate) fn unlink_child(&self, supervisor: &str, name: &str) {
        if let Some(node) = self.node(supervisor) {
            if let NodeKind::Supervisor { children, .. } =
                &mut *node.kind.write().unwrap_or_else(|p| p.into_inner())
            {
                children.retain(|c| c != name);
            }
        }
        self.parents
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Makes existing node `name` a child of `supervisor` (the end of a move).
    pub(crate) fn adopt(&self, supervisor: &str, name: &str) {
        self.parents
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), supervisor.to_string());
        self.push_child(supervisor, name);
    }

    /// The dynamic children at or under `name`: (supervisor, child).
    pub(crate) fn dynamic_under(&self, name: &str) -> Vec<(String, String)> {
        let mut sups = Vec::new();
        self.supervisors_under(name, &mut sups);
        let dynamic = self.dynamic.lock().unwrap_or_else(|p| p.into_inner());
        sups.iter()
            .flat_map(|s| {
                dynamic
                    .get(s)
                    .into_iter()
                    .flat_map(move |m| m.keys().map(move |c| (s.clone(), c.clone())))
            })
            .collect()
    }

    fn supervisors_under(&self, name: &str, out: &mut Vec<String>) {
        let Some(node) = self.node(name) else { return };
        let kind = node.kind.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let NodeKind::Supervisor { children, .. } = kind {
            out.push(name.to_string());
            for c in children {
                self.supervisors_under(&c, out);
            }
        }
    }
}
