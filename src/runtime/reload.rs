//! Reloading the declared tree and the limiters while the runtime runs, like
//! supervisord's `update`: the plan ([`crate::supervision::diff`]) is checked
//! whole before anything changes, then applied in three phases:
//!
//! 1. Removals and the first half of moves, in reverse declared order, each at its
//!    supervisor. A removal is refused if the child (or any agent under it) holds
//!    messages waiting, in flight or dead-lettered; that is checked for every
//!    removal before the first one, and again, atomically with the refusal of new
//!    sends, as each is applied (a message that arrives in between stops the
//!    reload there, reporting what was removed).
//! 2. Limiters: new ones added, changed quotas applied in place (their sharers are
//!    not restarted), unchanged ones keep their quota state, missing ones removed.
//! 3. Every supervisor of the new tree, top down, takes its new spec
//!    (`Reconcile`): changed policies in place, changed behaviours restarted,
//!    new children (and moved ones) started at their declared place.
//!
//! Untouched children are not stopped or restarted and their messages are neither
//! lost nor repeated. Reloads are serialized.

use std::collections::{BTreeMap, HashSet};

use ractor::ActorRef;
use serde::Serialize;

use super::Runtime;
use crate::clock::Instant;
use crate::policies::limits::LimitChanges;
use crate::policies::rate_limit::LimitSpec;
use crate::supervision::diff::{self, Step, TreePlan};
use crate::supervision::supervisor::{Removal, SupMsg};
use crate::supervision::{ChildKind, ControlError, SupervisorSpec};

/// What a reload changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReloadPlan {
    /// The tree's steps, in the order they are applied.
    #[serde(flatten)]
    pub tree: TreePlan,
    /// The limiters.
    pub limits: LimitChanges,
}

impl ReloadPlan {
    /// True when the reload changes nothing.
    pub fn is_empty(&self) -> bool {
        self.tree.steps.is_empty() && self.limits.is_empty()
    }
}

/// What an applied reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The plan it applied.
    #[serde(flatten)]
    pub plan: ReloadPlan,
    /// Children that failed to start with their new spec: (name, reason). Added
    /// ones are left out of the tree; restarted ones are left `failed` (start them
    /// with `ctl start` once the cause is fixed).
    pub failed: Vec<(String, String)>,
    /// How long planning and applying took, ms.
    pub took_ms: f64,
}

/// Why a reload did not happen, or stopped.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// Nothing was changed: the reason.
    #[error("{0}")]
    Refused(String),
    /// A removal was refused while the reload was applied: it stopped there.
    #[error("the reload stopped at removing '{name}': {reason}; already removed: [{}]; nothing else was changed, and the running tree is now the old config without those", removed.join(", "))]
    Stopped {
        /// The child whose removal failed.
        name: String,
        /// Why.
        reason: String,
        /// What had been removed (or moved away) before.
        removed: Vec<String>,
    },
}

impl Runtime {
    /// The plan that turns the running declared tree and limiters into `tree` and
    /// `limits`, checked against the running tree; nothing is changed.
    pub async fn plan_reload(
        &self,
        tree: &SupervisorSpec,
        limits: &BTreeMap<String, LimitSpec>,
    ) -> Result<ReloadPlan, ReloadError> {
        let current = self.declared.lock().await;
        self.check_plan(&current, tree, limits)
    }

    fn check_plan(
        &self,
        current: &SupervisorSpec,
        tree: &SupervisorSpec,
        limits: &BTreeMap<String, LimitSpec>,
    ) -> Result<ReloadPlan, ReloadError> {
        if tree.name != current.name {
            return Err(ReloadError::Refused(format!(
                "the root supervisor is '{}' and cannot be renamed to '{}' while the daemon runs",
                current.name, tree.name
            )));
        }
        tree.validate()
            .map_err(|e| ReloadError::Refused(e.to_string()))?;
        let plan = diff::plan(current, tree).map_err(ReloadError::Refused)?;
        let leaving: HashSet<&str> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Remove { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        for step in &plan.steps {
            match step {
                Step::Remove { name, .. } => {
                    let (live, dead) = self.backlog_under(name);
                    if live + dead > 0 {
                        return Err(ReloadError::Refused(format!(
                            "'{name}' is no longer in the config, but it (or an agent under it) still has {live} message(s) waiting or in flight and {dead} dead letter(s); a reload never drops messages: let it drain, replay or purge its dead letters (warden ctl dlq purge AGENT --all), then reload again; or keep it in the config"
                        )));
                    }
                }
                Step::Move { name, to, .. } if self.tree.supervisor(to).is_none() => {
                    return Err(ReloadError::Refused(format!(
                        "'{name}' moves into '{to}', which this reload adds; add '{to}' in one reload and move '{name}' in the next"
                    )));
                }
                Step::Add { name, .. } => {
                    let added = find_child(tree, name)
                        .map(subtree_names)
                        .unwrap_or_default();
                    if let Some(taken) = added
                        .iter()
                        .find(|n| self.tree.node(n).is_some() && !leaving.contains(n.as_str()))
                    {
                        return Err(ReloadError::Refused(match self.tree.parent_of(taken) {
                            Some(p) => format!("'{taken}' is added by the config, but the running tree has a child by that name under '{p}' (made at run time, or moved): delete it first (warden ctl delete {taken}), or pick another name"),
                            None => format!("'{taken}' is added by the config, but the running tree has that name already"),
                        }));
                    }
                }
                _ => {}
            }
        }
        for (name, _) in limits.iter() {
            crate::supervision::check_name(name)
                .map_err(|e| ReloadError::Refused(e.to_string()))?;
        }
        Ok(ReloadPlan {
            limits: self.tree.limits.plan(limits),
            tree: plan,
        })
    }

    /// What agent or subtree `name` holds: (waiting and in flight, dead letters).
    fn backlog_under(&self, name: &str) -> (usize, usize) {
        self.tree
            .agents_under(name)
            .iter()
            .fold((0, 0), |(l, d), a| {
                let (live, dead) = a.backlog();
                (l + live, d + dead)
            })
    }

    /// Plans (as [`Runtime::plan_reload`]) and applies the plan; see the module
    /// docs for the order and the guarantees.
    pub async fn reload(
        &self,
        tree: SupervisorSpec,
        limits: &BTreeMap<String, LimitSpec>,
    ) -> Result<ReloadReport, ReloadError> {
        let started = Instant::now();
        let mut current = self.declared.lock().await;
        let plan = self.check_plan(&current, &tree, limits)?;
        // 1. removals and moves away, in reverse declared order
        let mut removed: Vec<String> = Vec::new();
        for step in &plan.tree.steps {
            let (name, sup, mode) = match step {
                Step::Remove {
                    name, supervisor, ..
                } => (name, supervisor, Removal::Declared),
                Step::Move { name, from, .. } => (name, from, Removal::Detach),
                _ => continue,
            };
            let r = match self.tree.supervisor(sup).map(ActorRef::<SupMsg>::from) {
                Some(s) => {
                    let n = name.clone();
                    ractor::call!(s, |reply| SupMsg::Delete(n, mode, reply))
                        .map_err(|_| ControlError::Unavailable(sup.clone()))
                        .and_then(|r| r)
                }
                None => Err(ControlError::Unavailable(sup.clone())),
            };
            if let Err(e) = r {
                for r in &removed {
                    strip(&mut current, r);
                }
                return Err(ReloadError::Stopped {
                    name: name.clone(),
                    reason: e.to_string(),
                    removed,
                });
            }
            removed.push(name.clone());
        }
        // 2. limiters
        self.tree.limits.apply(limits);
        // 3. nodes for what is added and moved, then every supervisor top down
        let mut failed = Vec::new();
        let mut added = HashSet::new();
        for step in &plan.tree.steps {
            match step {
                Step::Add {
                    name, supervisor, ..
                } => {
                    let Some(child) = find_child(&tree, name) else {
                        continue;
                    };
                    added.extend(subtree_names(child));
                    if let Err(e) = self.tree.add_child_nodes(&child.kind, supervisor) {
                        failed.push((name.clone(), e.to_string()));
                    }
                }
                Step::Move { name, to, .. } => {
                    // stopped by phase 1: its agents take their new specs now
                    if let Some(child) = find_child(&tree, name) {
                        for a in agents_in(child) {
                            if let Err(e) = self.tree.rebuild_agent(a.clone()) {
                                failed.push((a.name.clone(), e.to_string()));
                            }
                        }
                    }
                    self.tree.adopt(to, name);
                }
                _ => {}
            }
        }
        let mut tree = tree;
        for (name, _) in &failed {
            strip(&mut tree, name);
        }
        let restarts: HashSet<&str> = plan.tree.restarts().into_iter().collect();
        let mut queue = vec![&tree];
        while let Some(s) = queue.pop() {
            for c in s.children.iter().rev() {
                if let ChildKind::Supervisor(sub) = &c.kind {
                    if !added.contains(&sub.name) {
                        queue.push(sub);
                    }
                }
            }
            let mut own = s.clone();
            for c in &mut own.children {
                c.dynamic = false;
            }
            let restart: Vec<String> = s
                .children
                .iter()
                .map(|c| c.name())
                .filter(|n| restarts.contains(n))
                .map(str::to_string)
                .collect();
            let sent = match self.tree.supervisor(&s.name).map(ActorRef::<SupMsg>::from) {
                Some(sup) => ractor::call!(sup, |reply| SupMsg::Reconcile(
                    Box::new(own),
                    restart.clone(),
                    reply
                ))
                .ok(),
                None => None,
            };
            match sent {
                Some(f) => failed.extend(f),
                None => self.reconcile_stopped(s, &restarts, &mut failed),
            }
        }
        for (name, _) in &failed {
            if added.contains(name) {
                strip(&mut tree, name);
            }
        }
        *current = tree;
        Ok(ReloadReport {
            plan,
            failed,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// The reload of a supervisor that is not running: its agents take their new
    /// specs now, and it starts its new children when it starts.
    fn reconcile_stopped(
        &self,
        s: &SupervisorSpec,
        restarts: &HashSet<&str>,
        failed: &mut Vec<(String, String)>,
    ) {
        for c in &s.children {
            if let ChildKind::Agent(a) = &c.kind {
                if restarts.contains(a.name.as_str()) {
                    if let Err(e) = self.tree.rebuild_agent(a.clone()) {
                        failed.push((a.name.clone(), e.to_string()));
                    }
                } else {
                    self.tree.update_agent(a.clone());
                }
            }
        }
        let mut order: Vec<String> = s.children.iter().map(|c| c.name().to_string()).collect();
        order.extend(
            self.tree
                .dynamic_children(&s.name)
                .iter()
                .map(|c| c.name().to_string()),
        );
        self.tree.set_children(&s.name, order);
        self.tree.set_strategy(&s.name, s.strategy.as_str());
    }
}

/// The declared child `name` anywhere in `s`.
fn find_child<'a>(s: &'a SupervisorSpec, name: &str) -> Option<&'a crate::supervision::ChildSpec> {
    s.children.iter().find_map(|c| {
        if c.name() == name {
            return Some(c);
        }
        match &c.kind {
            ChildKind::Supervisor(sub) => find_child(sub, name),
            ChildKind::Agent(_) => None,
        }
    })
}

fn subtree_names(c: &crate::supervision::ChildSpec) -> Vec<String> {
    match &c.kind {
        ChildKind::Agent(a) => vec![a.name.clone()],
        ChildKind::Supervisor(s) => s.names(),
    }
}

/// The agents declared in `c` (itself, or every agent under it).
fn agents_in(c: &crate::supervision::ChildSpec) -> Vec<&crate::actors::AgentSpec> {
    match &c.kind {
        ChildKind::Agent(a) => vec![a],
        ChildKind::Supervisor(s) => s.children.iter().flat_map(agents_in).collect(),
    }
}

/// Removes child `name` (and its subtree) from the declared tree `s`.
fn strip(s: &mut SupervisorSpec, name: &str) {
    s.children.retain(|c| c.name() != name);
    for c in &mut s.children {
        if let ChildKind::Supervisor(sub) = &mut c.kind {
            strip(sub, name);
        }
    }
}
