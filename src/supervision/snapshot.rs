//! Snapshots of the tree (the `tree` op's shape), taken from the nodes and the
//! agents' slots without talking to any actor, so inspecting the tree never waits
//! on a busy supervisor.

use serde::Serialize;

use super::node::{NodeKind, Status};
use super::tree::TreeContext;
use crate::policies::breaker::BreakerState;
use crate::policies::systemic::PauseSnapshot;

/// A snapshot of one node and its subtree (the `tree` op's shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeSnapshot {
    /// Node name.
    pub name: String,
    /// `agent` or `supervisor`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Supervisors: their strategy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<&'static str>,
    /// Lifecycle status.
    pub status: Status,
    /// Restarts since the daemon started.
    pub restarts: u64,
    /// Agents: messages waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<usize>,
    /// Agents: messages being handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    /// Agents: dead letters kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<usize>,
    /// Agents: replica count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Agents with a circuit breaker: its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerState>,
    /// Agents paused after a systemic failure: why, and when the next trial runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<PauseSnapshot>,
    /// Supervisors: children in start order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<TreeSnapshot>>,
}

impl TreeContext {
    /// A snapshot of the subtree at `name`.
    pub fn snapshot(&self, name: &str) -> Option<TreeSnapshot> {
        let node = self.node(name)?;
        let kind = node.kind.read().unwrap_or_else(|p| p.into_inner()).clone();
        Some(match kind {
            NodeKind::Agent { replicas } => {
                let slot = self.registry.get(name);
                let paused = slot
                    .as_ref()
                    .and_then(|s| s.systemic.snapshot(crate::clock::now()));
                let status = match node.status() {
                    Status::Running if paused.is_some() => Status::Paused,
                    s => s,
                };
                TreeSnapshot {
                    name: name.to_string(),
                    kind: "agent",
                    strategy: None,
                    status,
                    paused,
                    restarts: node.restarts(),
                    pending: slot.as_ref().map(|s| s.pending()),
                    in_flight: slot.as_ref().map(|s| s.in_flight()),
                    dead_letters: slot.as_ref().map(|s| s.dead_count()),
                    replicas: Some(replicas),
                    breaker: slot
                        .as_ref()
                        .and_then(|s| s.breaker.snapshot())
                        .map(|b| b.state),
                    children: None,
                }
            }
            NodeKind::Supervisor { strategy, children } => TreeSnapshot {
                name: name.to_string(),
                kind: "supervisor",
                strategy: Some(strategy),
                status: node.status(),
                restarts: node.restarts(),
                pending: None,
                in_flight: None,
                dead_letters: None,
                replicas: None,
                breaker: None,
                paused: None,
                children: Some(children.iter().filter_map(|c| self.snapshot(c)).collect()),
            },
        })
    }
}
