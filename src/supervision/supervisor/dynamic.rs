//! Children made and removed at run time: `add_child` (OTP `start_child` with a
//! spec), `spawn` (a `simple_one_for_one` child from the template) and `delete`
//! (OTP `terminate_child` then `delete_child`).
//!
//! Guarantees:
//! - A name is checked like a config name and must be free in the whole tree.
//! - A child that fails to start is not added: no node, no slot, no record.
//! - With a store, a spawned or added child is answered only once its record is
//!   durable, so it exists again after any crash of the daemon; a supervisor that
//!   restarts starts its dynamic children again after its declared ones.
//! - Delete never loses a message: it is refused while the agent (or any agent
//!   under a deleted supervisor) has messages waiting, in flight or dead-lettered.
//!   The check and the refusal of further sends are one step, after the child has
//!   stopped; if messages arrived meanwhile, the child is started again.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};
use serde_json::Value;

use super::{new_child, ControlError, SupMsg, SupState};
use crate::actors::AgentWorker;
use crate::spec_error::SpecError;
use crate::store::children::{self, ChildRecord};
use crate::store::Batch;
use crate::supervision::spec::{AutoShutdown, ChildKind, ChildSpec, Strategy};
use crate::supervision::tree::Status;
use crate::supervision::validate::{check_name, depth, MAX_DEPTH};

type Reply = RpcReplyPort<Result<(), ControlError>>;

/// How a child is taken out of its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// `delete`: only a dynamic child; refused while it holds messages.
    Dynamic,
    /// A reload removes a declared child; refused while it holds messages.
    Declared,
    /// A reload moves the child elsewhere: it is stopped and unlinked, its nodes
    /// and mailbox kept.
    Detach,
}

impl SupState {
    pub(super) async fn add_child(
        &mut self,
        spec: ChildSpec,
        record: Option<Value>,
        reply: Reply,
        myself: &ActorRef<SupMsg>,
    ) {
        if self.strategy == Strategy::SimpleOneForOne {
            let _ = reply.send(Err(ControlError::Invalid(format!(
                "'{}' is simple_one_for_one: its children are made from its template with spawn",
                self.name
            ))));
            return;
        }
        let record = record.map(|keys| ChildRecord {
            supervisor: self.name.clone(),
            name: spec.name().to_string(),
            order: 0,
            spec: Some(keys),
            state: None,
        });
        self.insert(spec, record, reply, myself).await;
    }

    pub(super) async fn spawn(
        &mut self,
        name: String,
        state: Option<Value>,
        reply: Reply,
        myself: &ActorRef<SupMsg>,
    ) {
        let Some(template) = self.template.as_deref() else {
            let _ = reply.send(Err(ControlError::Invalid(format!(
                "'{}' is {}, not simple_one_for_one; spawn makes children from a template, use add_child to add a child with its own spec",
                self.name,
                self.strategy.as_str()
            ))));
            return;
        };
        let spec = template.from_template(&name, state.clone());
        let record = ChildRecord {
            supervisor: self.name.clone(),
            name,
            order: 0,
            spec: None,
            state,
        };
        self.insert(spec, Some(record), reply, myself).await;
    }

    /// Adds, starts and (with a store and a record) persists a dynamic child.
    async fn insert(
        &mut self,
        mut spec: ChildSpec,
        record: Option<ChildRecord>,
        reply: Reply,
        myself: &ActorRef<SupMsg>,
    ) {
        spec.dynamic = true;
        let name = spec.name().to_string();
        if let Err(e) = self.admit(&spec) {
            let _ = reply.send(Err(e));
            return;
        }
        let child = match new_child(&self.tree, spec.clone()) {
            Ok(c) => c,
            Err(e) => {
                self.tree.remove_child(&self.name, &name);
                let _ = reply.send(Err(ControlError::Invalid(e.to_string())));
                return;
            }
        };
        self.children.insert(name.clone(), child);
        self.tree.push_child(&self.name, &name);
        let i = self.children.len() - 1;
        if let Err(reason) = self.start_child(i, myself).await {
            self.stop_child(i, Status::Stopped).await;
            self.children.shift_remove(&name);
            self.tree.remove_child(&self.name, &name);
            let _ = reply.send(Err(ControlError::StartFailed { name, reason }));
            return;
        }
        self.tree.add_dynamic(&self.name, spec);
        self.tree.event("added", &name, None);
        let store = self.tree.durable.as_ref().map(|d| d.store.clone());
        match (store, record) {
            (Some(store), Some(mut rec)) => {
                rec.order = self.tree.next_order();
                let mut batch = Batch::default();
                children::put(&mut batch, &rec);
                store.submit(batch, move |r| {
                    let _ = reply.send(r.map_err(|e| ControlError::Invalid(format!(
                        "'{}' started, but its record could not be written ({e}); it will not exist after a restart",
                        rec.name
                    ))));
                });
            }
            _ => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// The checks before a child joins: name, uniqueness, significance, nodes.
    fn admit(&self, spec: &ChildSpec) -> Result<(), ControlError> {
        let name = spec.name();
        check_name(name)?;
        if self.tree.node(name).is_some() {
            return Err(ControlError::Exists(name.to_string()));
        }
        if spec.significant && self.auto_shutdown == AutoShutdown::Never {
            return Err(ControlError::Invalid(format!(
                "'{name}' is significant but '{}' has auto_shutdown = \"never\"",
                self.name
            )));
        }
        if spec.significant && spec.restart == crate::supervision::Restart::Permanent {
            return Err(ControlError::Invalid(format!(
                "'{name}' is significant and permanent; a significant child must be transient or temporary"
            )));
        }
        if let ChildKind::Supervisor(s) = &spec.kind {
            s.validate()?;
            // its depth where it joins, not only its own
            let total = self.tree.depth_of(&self.name) + depth(s);
            if total > MAX_DEPTH {
                return Err(ControlError::Invalid(format!(
                    "'{name}' would nest supervisors {total} levels deep; the limit is {MAX_DEPTH}"
                )));
            }
        }
        self.tree
            .add_child_nodes(&spec.kind, &self.name)
            .map_err(|e| match e {
                SpecError::Duplicate(n) => ControlError::Exists(n),
                other => other.into(),
            })
    }

    pub(super) async fn delete(
        &mut self,
        name: &str,
        mode: Removal,
        reply: Reply,
        myself: &ActorRef<SupMsg>,
    ) {
        let r = match mode {
            Removal::Detach => self.detach(name).await,
            _ => self.try_delete(name, mode, myself).await,
        };
        let _ = reply.send(r);
    }

    /// Stops child `name` and takes it out of this supervisor, keeping its nodes,
    /// slots and workers: a reload moves it under another supervisor.
    async fn detach(&mut self, name: &str) -> Result<(), ControlError> {
        let i = self.find(name)?;
        self.stop_child(i, Status::Stopped).await;
        self.cancel_from(i);
        self.children.shift_remove(name);
        self.tree.unlink_child(&self.name, name);
        Ok(())
    }

    async fn try_delete(
        &mut self,
        name: &str,
        mode: Removal,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ControlError> {
        let i = self.find(name)?;
        if mode == Removal::Dynamic && !self.children[i].spec.dynamic {
            return Err(ControlError::Invalid(format!(
                "'{name}' is declared in the config; only children made at run time (spawn, add_child) can be deleted: stop it, or remove it from the config"
            )));
        }
        let agents = self.tree.agents_under(name);
        let left = |agents: &[Arc<AgentWorker>]| {
            agents.iter().fold((0, 0), |(l, d), a| {
                let (live, dead) = a.backlog();
                (l + live, d + dead)
            })
        };
        let (live, dead) = left(&agents);
        if live + dead > 0 {
            return Err(ControlError::NotEmpty {
                name: name.to_string(),
                live,
                dead,
            });
        }
        let was_running = self.children[i].running();
        self.stop_child(i, Status::Stopped).await;
        self.cancel_from(i);
        let mut closed: Vec<&Arc<AgentWorker>> = Vec::new();
        for a in &agents {
            if a.close_if_empty().is_err() {
                let (live, dead) = left(&agents);
                for c in &closed {
                    c.reopen();
                }
                if was_running {
                    let _ = self.start_child(i, myself).await;
                }
                return Err(ControlError::NotEmpty {
                    name: name.to_string(),
                    live,
                    dead,
                });
            }
            closed.push(a);
        }
        self.children.shift_remove(name);
        let records = self.tree.dynamic_under(name);
        let removed = self.tree.remove_child(&self.name, name);
        self.tree.event("deleted", name, None);
        if let Some(d) = &self.tree.durable {
            let mut batch = Batch::default();
            children::remove(&mut batch, &self.name, name);
            for (sup, child) in &records {
                children::remove(&mut batch, sup, child);
            }
            for agent in &removed {
                d.store.forget_agent(agent, &mut batch);
            }
            d.store
                .commit(batch)
                .await
                .map_err(|e| ControlError::Invalid(format!("'{name}' was deleted, but its records could not be removed ({e}); it may come back after a restart")))?;
        }
        Ok(())
    }
}
