//! What changes between two declared trees: the plan of a config reload, as
//! supervisord's `update` computes it, in the order it is applied.
//!
//! Rules (the contract of `warden ctl reload`, docs/operations.md):
//! - A name in the old tree only is *removed* (with its subtree), in reverse
//!   declared order; a name in the new tree only is *added* (with its subtree), in
//!   declared order. A name that turns from agent to supervisor (or back) is both.
//! - A name under another supervisor than before is *moved*: stopped where it was,
//!   started where it is now, with the new spec; its mailbox, state and counters
//!   stay (they belong to the name).
//! - An agent whose behaviour changes (`kind`, its options, `replicas`, `limits`)
//!   is *restarted* with the new spec; any other change (timeouts, attempts,
//!   backoff, hops, deadline, capacity, breaker, systemic pause, dead-letter cap,
//!   faults, restart type, shutdown, restart backoff, significance) is an *update*
//!   applied in place, without a restart. So is any change to a supervisor itself
//!   (strategy, intensity, auto shutdown, template) and a new order of its
//!   children (*reorder*).
//! - Refused, with the reason: a mailbox changing between durable and memory, a
//!   supervisor changing to or from `simple_one_for_one`.
//! - Everything else is untouched: not stopped, not restarted.

use std::collections::HashMap;

use serde::Serialize;

use super::spec::{ChildKind, ChildSpec, Strategy, SupervisorSpec};
use crate::actors::AgentSpec;

/// One step of a reload plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    /// Stop `name` and its subtree and forget them.
    Remove {
        /// The child.
        name: String,
        /// Its supervisor.
        supervisor: String,
        /// `agent` or `supervisor`.
        kind: &'static str,
    },
    /// Stop `name` under `from`, start it under `to` with its new spec.
    Move {
        /// The child.
        name: String,
        /// Its old supervisor.
        from: String,
        /// Its new supervisor.
        to: String,
    },
    /// Start `name` (and its subtree) under `supervisor` at `position`.
    Add {
        /// The child.
        name: String,
        /// Its supervisor.
        supervisor: String,
        /// `agent` or `supervisor`.
        kind: &'static str,
        /// Its index among the supervisor's declared children.
        position: usize,
    },
    /// Stop agent `name` and start it with its new spec.
    Restart {
        /// The agent.
        name: String,
        /// The keys that changed.
        changed: Vec<String>,
    },
    /// Apply a changed spec to `name` in place, without stopping it.
    Update {
        /// The agent or supervisor.
        name: String,
        /// The keys that changed.
        changed: Vec<String>,
    },
    /// Supervisor `name`'s children are declared in a new order.
    Reorder {
        /// The supervisor.
        name: String,
    },
}

/// A reload plan for the tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TreePlan {
    /// In the order they are applied.
    pub steps: Vec<Step>,
    /// Children with no step.
    pub unchanged: usize,
}

impl TreePlan {
    /// Names of the agents to restart with a new spec.
    pub fn restarts(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Restart { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Where a child is declared.
struct Place<'a> {
    parent: &'a str,
    spec: &'a ChildSpec,
}

fn places<'a>(s: &'a SupervisorSpec, out: &mut Vec<(&'a str, Place<'a>)>) {
    for c in &s.children {
        out.push((
            c.name(),
            Place {
                parent: &s.name,
                spec: c,
            },
        ));
        if let ChildKind::Supervisor(sub) = &c.kind {
            places(sub, out);
        }
    }
}

fn kind_of(c: &ChildSpec) -> &'static str {
    match c.kind {
        ChildKind::Agent(_) => "agent",
        ChildKind::Supervisor(_) => "supervisor",
    }
}

/// The plan that turns the declared tree `old` into `new`; `Err` names why it
/// cannot be applied without a daemon restart.
pub fn plan(old: &SupervisorSpec, new: &SupervisorSpec) -> Result<TreePlan, String> {
    let (mut o, mut n) = (Vec::new(), Vec::new());
    places(old, &mut o);
    places(new, &mut n);
    let om: HashMap<&str, &Place> = o.iter().map(|(k, p)| (*k, p)).collect();
    let nm: HashMap<&str, &Place> = n.iter().map(|(k, p)| (*k, p)).collect();
    // a name kept with the same type (agent or supervisor)
    let kept = |name: &str| match (om.get(name), nm.get(name)) {
        (Some(a), Some(b)) => kind_of(a.spec) == kind_of(b.spec),
        _ => false,
    };
    let mut plan = TreePlan::default();
    // removals, innermost last declared first; only the top of a removed subtree
    for (name, p) in o.iter().rev() {
        if kept(name) {
            if nm[name].parent != p.parent {
                plan.steps.push(Step::Move {
                    name: name.to_string(),
                    from: p.parent.to_string(),
                    to: nm[name].parent.to_string(),
                });
            }
            continue;
        }
        if p.parent == old.name || kept(p.parent) {
            plan.steps.push(Step::Remove {
                name: name.to_string(),
                supervisor: p.parent.to_string(),
                kind: kind_of(p.spec),
            });
        }
    }
    // supervisors first (their own keys), then their children in declared order
    let root_changes = supervisor_changes(old, new)?;
    if !root_changes.is_empty() {
        plan.steps.push(Step::Update {
            name: new.name.clone(),
            changed: root_changes,
        });
    }
    reorder(old, new, &mut plan);
    for (name, p) in &n {
        if !kept(name) {
            if p.parent == new.name || kept(p.parent) {
                let position = sibling_index(new, p.parent, name);
                plan.steps.push(Step::Add {
                    name: name.to_string(),
                    supervisor: p.parent.to_string(),
                    kind: kind_of(p.spec),
                    position,
                });
            }
            continue;
        }
        let before = om[name];
        let moved = before.parent != p.parent;
        let mut changed = child_changes(before.spec, p.spec);
        match (&before.spec.kind, &p.spec.kind) {
            (ChildKind::Agent(a), ChildKind::Agent(b)) => {
                let (restart, update) = agent_changes(a, b)?;
                if moved {
                    continue; // the move starts it with the new spec
                }
                if !restart.is_empty() {
                    changed.extend(restart);
                    plan.steps.push(Step::Restart {
                        name: name.to_string(),
                        changed,
                    });
                    continue;
                }
                changed.extend(update);
            }
            (ChildKind::Supervisor(a), ChildKind::Supervisor(b)) => {
                changed.extend(supervisor_changes(a, b)?);
                reorder(a, b, &mut plan);
                if moved {
                    continue;
                }
            }
            _ => unreachable!("kept names keep their type"),
        }
        if changed.is_empty() {
            plan.unchanged += 1;
        } else {
            plan.steps.push(Step::Update {
                name: name.to_string(),
                changed,
            });
        }
    }
    Ok(plan)
}

/// The index of `name` among the declared children of supervisor `parent` in `root`.
fn sibling_index(root: &SupervisorSpec, parent: &str, name: &str) -> usize {
    fn find<'a>(s: &'a SupervisorSpec, name: &str) -> Option<&'a SupervisorSpec> {
        if s.name == name {
            return Some(s);
        }
        s.children.iter().find_map(|c| match &c.kind {
            ChildKind::Supervisor(sub) => find(sub, name),
            ChildKind::Agent(_) => None,
        })
    }
    find(root, parent)
        .and_then(|s| s.children.iter().position(|c| c.name() == name))
        .unwrap_or(0)
}

/// A `Reorder` when the children kept under the same supervisor are declared in
/// another order.
fn reorder(old: &SupervisorSpec, new: &SupervisorSpec, plan: &mut TreePlan) {
    let both = |s: &SupervisorSpec, other: &SupervisorSpec| -> Vec<String> {
        s.children
            .iter()
            .map(|c| c.name().to_string())
            .filter(|c| other.children.iter().any(|o| o.name() == c))
            .collect()
    };
    if both(old, new) != both(new, old) {
        plan.steps.push(Step::Reorder {
            name: new.name.clone(),
        });
    }
}

/// The child keys (common to agents and supervisors) that differ.
fn child_changes(a: &ChildSpec, b: &ChildSpec) -> Vec<String> {
    let mut out = Vec::new();
    if a.restart != b.restart {
        out.push("restart".into());
    }
    if a.shutdown != b.shutdown {
        out.push("shutdown".into());
    }
    if a.restart_backoff != b.restart_backoff {
        out.push("restart_backoff".into());
    }
    if a.significant != b.significant {
        out.push("significant".into());
    }
    out
}

/// A supervisor's own keys that differ (not its children).
fn supervisor_changes(a: &SupervisorSpec, b: &SupervisorSpec) -> Result<Vec<String>, String> {
    let sofo = |s: &SupervisorSpec| s.strategy == Strategy::SimpleOneForOne;
    if sofo(a) != sofo(b) {
        return Err(format!(
            "supervisor '{}' changes from {} to {}; a supervisor cannot turn into or out of simple_one_for_one while it runs: give the new one another name, or restart the daemon",
            a.name,
            a.strategy.as_str(),
            b.strategy.as_str()
        ));
    }
    let mut out = Vec::new();
    if a.strategy != b.strategy {
        out.push("strategy".into());
    }
    if a.intensity.max_restarts != b.intensity.max_restarts {
        out.push("max_restarts".into());
    }
    if a.intensity.within != b.intensity.within {
        out.push("within".into());
    }
    if a.auto_shutdown != b.auto_shutdown {
        out.push("auto_shutdown".into());
    }
    if a.template != b.template {
        out.push("template".into());
    }
    Ok(out)
}

/// An agent's changed keys: (those that need a restart, those applied in place).
fn agent_changes(a: &AgentSpec, b: &AgentSpec) -> Result<(Vec<String>, Vec<String>), String> {
    if a.mailbox != b.mailbox {
        return Err(format!(
            "agent '{}' changes its mailbox from {} to {}; a mailbox cannot change kind while the daemon runs: restart the daemon (a durable mailbox's messages stay on disk)",
            a.name,
            a.mailbox.as_str(),
            b.mailbox.as_str()
        ));
    }
    let (mut restart, mut update) = (Vec::new(), Vec::new());
    macro_rules! cmp {
        ($list:ident: $($field:ident),*) => {
            $( if a.$field != b.$field { $list.push(stringify!($field).to_string()); } )*
        };
    }
    cmp!(restart: kind, replicas, limits);
    let mut keys: Vec<&String> = a.options.keys().chain(b.options.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if a.options.get(k) != b.options.get(k) {
            restart.push(k.clone());
        }
    }
    cmp!(update: mailbox_capacity, timeout, max_attempts, backoff, hop_budget, accept_faults,
        deadline, breaker, systemic, dlq_max);
    Ok((restart, update))
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
