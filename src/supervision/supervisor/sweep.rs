//! Restart sweeps: the set of children one exit restarts, started in order, and
//! redone whole when a start fails (OTP's `try_again`).
//!
//! A sweep is the strategy's answer to one exit: `[failed]` under `one_for_one`,
//! every child under `one_for_all`, the failed one and those after it under
//! `rest_for_one`. It runs at once, or after the failed child's restart backoff.
//! When a member fails to start, the failure counts against intensity and the whole
//! sweep runs again later: under `one_for_all` and `rest_for_one` its members that
//! did start are stopped again first, so the set always starts together, in order.
//!
//! Stopping a child takes it, and every member declared after it, out of every
//! pending sweep: a retry never starts a child the operator stopped, nor one that
//! depends on it. A child belongs to at most one sweep; a newer sweep takes its
//! members over.

use crate::clock::Instant;
use std::collections::HashMap;

use ractor::{ActorProcessingErr, ActorRef};
use tracing::Instrument;

use super::{SupMsg, SupState};
use crate::supervision::spec::Strategy;
use crate::supervision::tree::Status;

/// One pending restart.
struct Sweep {
    /// Children to start, in start order.
    members: Vec<String>,
    /// Stop members still running before starting them (a redo under
    /// `one_for_all` or `rest_for_one`).
    redo: bool,
}

/// The pending sweeps of one supervisor.
#[derive(Default)]
pub(super) struct Sweeps {
    pending: HashMap<u64, Sweep>,
    next: u64,
}

impl Sweeps {
    pub(super) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Registers a sweep, taking its members out of older ones.
    fn add(&mut self, members: Vec<String>) -> u64 {
        for s in self.pending.values_mut() {
            s.members.retain(|m| !members.contains(m));
        }
        self.pending.retain(|_, s| !s.members.is_empty());
        self.next += 1;
        self.pending.insert(
            self.next,
            Sweep {
                members,
                redo: false,
            },
        );
        self.next
    }

    /// Whether `name` waits in a sweep.
    pub(super) fn holds(&self, name: &str) -> bool {
        self.pending
            .values()
            .any(|s| s.members.iter().any(|m| m == name))
    }
}

impl SupState {
    /// Restarts `members` (already stopped, status `restarting`) as one sweep, now
    /// or after the restart backoff of child `failed`.
    pub(super) async fn restart(
        &mut self,
        failed: usize,
        members: Vec<String>,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let id = self.sweeps.add(members);
        match self.children[failed].next_backoff() {
            Some(d) => {
                myself.send_after(d, move || SupMsg::Retry(id));
                Ok(())
            }
            None => self.run_sweep(id, myself).await,
        }
    }

    /// Runs sweep `id` (if still pending). `Err` means the supervisor gives up.
    pub(super) async fn run_sweep(
        &mut self,
        id: u64,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(sweep) = self.sweeps.pending.get(&id) else {
            return Ok(()); // cancelled, done, or taken over by a newer sweep
        };
        let members: Vec<usize> = sweep
            .members
            .iter()
            .filter_map(|m| self.index_of(m))
            .collect();
        if sweep.redo {
            for &i in members.iter().rev() {
                if self.children[i].running() {
                    self.stop_child(i, Status::Restarting).await;
                }
            }
        }
        for (k, &i) in members.iter().enumerate() {
            if self.children[i].running() {
                continue; // a pool replica sweep: the other replicas run on
            }
            let name = self.child(i).0.clone();
            let span = tracing::info_span!("warden.restart", supervisor = %self.name, child = %name,
                agent = tracing::field::Empty, message_id = tracing::field::Empty,
                correlation = tracing::field::Empty);
            // a restart caused by a message in flight is part of its trace
            if let Some(env) = self.children[i]
                .agent
                .as_ref()
                .and_then(|a| a.take_crash_cause())
            {
                span.record("agent", &*env.id.agent);
                span.record("message_id", tracing::field::display(&env.id));
                span.record("correlation", &*env.correlation);
                crate::telemetry::trace::join(&span, env.trace.as_deref());
            }
            if let Err(e) = self.start_child(i, myself).instrument(span).await {
                tracing::warn!(supervisor = %self.name, child = %name, error = %e, "restart failed");
                self.tree.event("failed", &name, Some(e.clone()));
                if !self.window.add_restart(Instant::now()) {
                    return self
                        .give_up(format!("child '{name}' failed to restart: {e}"), myself)
                        .await;
                }
                for &j in &members[k..] {
                    self.children[j].node.set_status(Status::Restarting);
                }
                let redo = matches!(self.strategy, Strategy::OneForAll | Strategy::RestForOne);
                if let Some(s) = self.sweeps.pending.get_mut(&id) {
                    s.redo = redo;
                }
                match self.children[i].next_backoff() {
                    Some(d) => {
                        myself.send_after(d, move || SupMsg::Retry(id));
                    }
                    None => myself.cast(SupMsg::Retry(id))?,
                }
                return Ok(());
            }
            let c = &self.children[i];
            c.node.count_restart();
            if let Some(agent) = &c.agent {
                agent.restarted();
            }
            self.tree.event("restarted", &name, None);
        }
        self.sweeps.pending.remove(&id);
        Ok(())
    }

    /// Child `i` was stopped by the operator: no pending sweep may start it, nor
    /// (under `one_for_all` and `rest_for_one`) a member declared after it; those
    /// that are not running are left `stopped`.
    pub(super) fn cancel_from(&mut self, i: usize) {
        if self.sweeps.pending.is_empty() {
            return;
        }
        let mut dropped: Vec<String> = Vec::new();
        let positions: HashMap<String, usize> = self
            .children
            .keys()
            .enumerate()
            .map(|(k, n)| (n.clone(), k))
            .filter(|(_, k)| *k >= i)
            .collect();
        let whole = matches!(self.strategy, Strategy::OneForAll | Strategy::RestForOne);
        let name = self.child(i).0.clone();
        for s in self.sweeps.pending.values_mut() {
            if !s.members.contains(&name) {
                continue;
            }
            s.members.retain(|m| {
                let cut = if whole {
                    positions.contains_key(m)
                } else {
                    *m == name
                };
                if cut {
                    dropped.push(m.clone());
                }
                !cut
            });
        }
        self.sweeps.pending.retain(|_, s| !s.members.is_empty());
        for m in dropped {
            if let Some(c) = self.children.get(&m) {
                if !c.running() && c.node.status() == Status::Restarting {
                    c.node.set_status(Status::Stopped);
                }
            }
        }
    }
}
