//! A config reload at one supervisor: take the new spec of its own keys and of
//! its declared children, in order (see [`crate::supervision::diff`] for the plan).
//!
//! Guarantees:
//! - A child whose spec is unchanged is not touched; an agent whose policies
//!   changed takes them in place (its slot's spec), without stopping.
//! - An agent named in `restart` is stopped by its shutdown, given its new spec and
//!   worker, and started again; its mailbox, state and counters stay (the slot is
//!   the same), and the message it had in flight goes back to the head of its
//!   queue, its attempt not charged.
//! - A declared child that is not running yet is attached and started at its
//!   declared place (its nodes were made before the reload reached here); one
//!   that fails to start is taken out again and reported.
//! - The stored spec of every child is the new one, so a later restart of a
//!   nested supervisor starts its new children.
//! - Dynamic children stay after the declared ones, in their order.

use std::collections::HashSet;

use ractor::ActorRef;

use super::{new_child, SupMsg, SupState};
use crate::supervision::intensity::IntensityWindow;
use crate::supervision::spec::{ChildKind, SupervisorSpec};
use crate::supervision::tree::Status;

impl SupState {
    /// Applies `spec`; returns the children that failed to start (name, reason).
    pub(super) async fn reconcile(
        &mut self,
        spec: SupervisorSpec,
        restart: &[String],
        myself: &ActorRef<SupMsg>,
    ) -> Vec<(String, String)> {
        let restart: HashSet<&str> = restart.iter().map(String::as_str).collect();
        if self.strategy != spec.strategy {
            self.strategy = spec.strategy;
            self.tree.set_strategy(&self.name, spec.strategy.as_str());
        }
        if self.window.limit() != spec.intensity {
            self.window = IntensityWindow::new(spec.intensity);
        }
        self.auto_shutdown = spec.auto_shutdown;
        self.template = spec.template;
        let mut failed = Vec::new();
        let mut declared = Vec::with_capacity(spec.children.len());
        for c in spec.children {
            let name = c.name().to_string();
            declared.push(name.clone());
            let Some(i) = self.index_of(&name) else {
                if let Err(e) = self.attach(c, myself).await {
                    declared.pop();
                    failed.push((name, e));
                }
                continue;
            };
            if restart.contains(name.as_str()) {
                if let Err(e) = self.restart_with(i, c, myself).await {
                    failed.push((name, e));
                }
                continue;
            }
            if let ChildKind::Agent(a) = &c.kind {
                self.tree.update_agent(a.clone());
            }
            let dynamic = self.children[i].spec.dynamic;
            self.children[i].spec = c;
            self.children[i].spec.dynamic = dynamic;
        }
        // declared children in their new order, then the dynamic ones
        for (pos, name) in declared.iter().enumerate() {
            if let Some(i) = self.index_of(name) {
                self.children.move_index(i, pos);
            }
        }
        self.tree
            .set_children(&self.name, self.children.keys().cloned().collect());
        failed
    }

    /// Adds and starts a declared child whose nodes exist.
    async fn attach(
        &mut self,
        spec: crate::supervision::spec::ChildSpec,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), String> {
        let name = spec.name().to_string();
        let child = new_child(&self.tree, spec).map_err(|e| e.to_string())?;
        self.children.insert(name.clone(), child);
        let i = self.children.len() - 1;
        if let Err(reason) = self.start_child(i, myself).await {
            self.stop_child(i, Status::Stopped).await;
            self.children.shift_remove(&name);
            self.tree.remove_child(&self.name, &name);
            return Err(reason);
        }
        self.tree.event("added", &name, None);
        Ok(())
    }

    /// Stops agent child `i`, gives it `spec` and a new worker, starts it again.
    async fn restart_with(
        &mut self,
        i: usize,
        spec: crate::supervision::spec::ChildSpec,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), String> {
        let ChildKind::Agent(a) = &spec.kind else {
            return Err("only agents are restarted with a new spec".into());
        };
        let operator_stopped =
            !self.children[i].running() && self.children[i].node.status() == Status::Stopped;
        self.stop_child(i, Status::Stopped).await;
        let worker = self
            .tree
            .rebuild_agent(a.clone())
            .map_err(|e| e.to_string())?;
        let child = &mut self.children[i];
        child.cells = vec![None; worker.replicas()];
        child.agent = Some(worker);
        let dynamic = child.spec.dynamic;
        child.spec = spec;
        child.spec.dynamic = dynamic;
        child.backoff_step = 0;
        if operator_stopped {
            // stopped by the operator: it stays stopped, with its new spec
            return Ok(());
        }
        self.tree.event("reloaded", self.child(i).0, None);
        self.start_child(i, myself).await.inspect_err(|_| {
            self.children[i].node.set_status(Status::Failed);
        })
    }
}
