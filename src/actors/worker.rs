//! What a supervisor needs to run an agent, and nothing more: start a replica's
//! host linked to the supervisor, report a replica's exit to the agent's slot, and
//! count a restart. Like OTP starting a child from its start function, the
//! supervisor calls these without knowing of slots, hosts, behaviours or limiters.
//!
//! Guarantee: a worker is built once per agent, when the agent joins the tree, so
//! every incarnation of every replica shares the one slot (mailbox, state,
//! counters) and the same limiters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorId};

use super::host::{AgentHost, HostArgs};
use super::kinds::{BuildFn, Kinds};
use super::{AgentSlot, Registry};
use crate::policies::limits::Limits;
use crate::policies::rate_limit::Limiter;
use crate::spec_error::SpecError;

/// Starts and tracks the hosts of one agent.
pub(crate) struct AgentWorker {
    slot: Arc<AgentSlot>,
    registry: Arc<Registry>,
    build: Arc<BuildFn>,
    limiters: Vec<Arc<Limiter>>,
}

impl AgentWorker {
    /// The worker of `slot`'s agent: its kind's builder and its limiters.
    pub(crate) fn new(
        slot: Arc<AgentSlot>,
        registry: Arc<Registry>,
        kinds: &Kinds,
        limits: &Limits,
    ) -> Result<AgentWorker, SpecError> {
        let spec = slot.spec();
        let build = kinds
            .get(&spec.kind)
            .ok_or_else(|| SpecError::UnknownKind {
                agent: spec.name.clone(),
                kind: spec.kind.clone(),
                known: kinds.names().join(", "),
            })?
            .build
            .clone();
        let limiters = spec
            .limits
            .iter()
            .map(|l| {
                limits.get(l).ok_or_else(|| SpecError::UnknownLimiter {
                    agent: spec.name.clone(),
                    limiter: l.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AgentWorker {
            slot,
            registry,
            build,
            limiters,
        })
    }

    /// How many replicas the agent runs.
    pub(crate) fn replicas(&self) -> usize {
        self.slot.spec().replicas as usize
    }

    /// Starts host `replica`, linked to `supervisor`; returns once it runs.
    pub(crate) async fn start(
        &self,
        replica: usize,
        supervisor: ActorCell,
    ) -> Result<ActorCell, String> {
        let args = HostArgs {
            slot: self.slot.clone(),
            replica,
            registry: self.registry.clone(),
            build: self.build.clone(),
            limiters: self.limiters.clone(),
        };
        match AgentHost::spawn_linked(None, AgentHost, args, supervisor).await {
            Ok((host, _)) => Ok(host.get_cell()),
            Err(ractor::SpawnErr::StartupFailed(inner)) => Err(inner.to_string()),
            Err(other) => Err(other.to_string()),
        }
    }

    /// Host `id` of `replica` ended with `reason`; `own_failure` when its own code
    /// failed (a panic or fatal error). Returns whether a message was in flight,
    /// which the slot then retries or charges (see [`AgentSlot::replica_exited`]).
    pub(crate) fn exited(
        &self,
        replica: usize,
        id: ActorId,
        reason: &str,
        own_failure: bool,
    ) -> bool {
        self.slot.replica_exited(replica, id, reason, own_failure)
    }

    /// The message in flight when the agent last crashed, if trace export is on
    /// (see [`AgentSlot::take_crash_cause`]).
    pub(crate) fn take_crash_cause(&self) -> Option<Arc<crate::envelope::Envelope>> {
        self.slot.take_crash_cause()
    }

    /// Counts a restart of the agent (its `restarts` counter).
    pub(crate) fn restarted(&self) {
        self.slot.stats.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// What the agent still holds: (messages waiting or in flight, dead letters).
    pub(crate) fn backlog(&self) -> (usize, usize) {
        (
            self.slot.pending() + self.slot.in_flight(),
            self.slot.dead_count(),
        )
    }

    /// Refuses every later send if the agent holds nothing (one step); otherwise
    /// returns its backlog. See [`AgentWorker::reopen`].
    pub(crate) fn close_if_empty(&self) -> Result<(), (usize, usize)> {
        self.slot.close_if_empty()
    }

    /// Takes sends again after [`AgentWorker::close_if_empty`].
    pub(crate) fn reopen(&self) {
        self.slot.reopen();
    }
}
