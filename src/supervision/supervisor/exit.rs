//! What a supervisor does when a child exits: the restart decision (restart type
//! against exit reason), restart intensity, the strategy's restart set, auto
//! shutdown after significant children end, and giving up (escalation) past the
//! intensity.

use crate::clock::Instant;

use ractor::{ActorId, ActorProcessingErr, ActorRef};

use super::{SupMsg, SupState};
use crate::supervision::restart::{should_restart, Exit, EXIT_GAVE_UP, EXIT_SHUTDOWN};
use crate::supervision::spec::{AutoShutdown, Restart, Strategy};
use crate::supervision::tree::Status;

impl SupState {
    /// Stops every child and ends this supervisor with reason `gave up: ...`:
    /// escalation to the parent.
    pub(super) async fn give_up(
        &mut self,
        why: String,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        tracing::error!(supervisor = %self.name, reason = %why, "restart intensity exceeded; giving up");
        self.tree.event("escalated", &self.name, Some(why.clone()));
        self.stop_all().await;
        myself.stop(Some(format!(
            "{EXIT_GAVE_UP}supervisor '{}' gave up: {why}",
            self.name
        )));
        Ok(())
    }

    pub(super) async fn on_exit(
        &mut self,
        id: ActorId,
        exit: Exit,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let Some((name, r)) = self.by_cell.remove(&id) else {
            return Ok(()); // an incarnation this supervisor already stopped or replaced
        };
        let Some(i) = self.index_of(&name) else {
            return Ok(());
        };
        let reason = exit.reason();
        let child = &mut self.children[i];
        child.cells[r] = None;
        let own_failure = matches!(exit, Exit::Crash { failed: true, .. });
        let had_message = child
            .agent
            .as_ref()
            .is_some_and(|a| a.exited(r, id, &reason, own_failure));
        let attributed = had_message && own_failure;
        if exit.is_abnormal() {
            tracing::warn!(supervisor = %self.name, child = %name, reason = %reason, "child failed");
            self.tree.event("failed", &name, Some(reason));
        } else {
            self.tree.event("stopped", &name, Some(reason));
        }
        if !should_restart(child.spec.restart, &exit) {
            if !child.running() {
                child.node.set_actor_ids(Vec::new());
                child.node.set_status(if exit.is_abnormal() {
                    Status::Failed
                } else {
                    Status::Stopped
                });
                if child.spec.significant && self.significant_ended() {
                    return self.auto_shut_down(&name, myself).await;
                }
            }
            return Ok(());
        }
        if !attributed && !self.window.add_restart(Instant::now()) {
            return self
                .give_up(format!("child '{name}' exited ({})", exit.reason()), myself)
                .await;
        }
        let simple = matches!(
            self.strategy,
            Strategy::OneForOne | Strategy::SimpleOneForOne
        );
        let members = if simple {
            self.restart_one(i)
        } else {
            self.restart_group(i).await
        };
        for m in &members {
            if let Some(c) = self.children.get(m) {
                c.node.set_status(Status::Restarting);
            }
        }
        self.restart(i, members, myself).await
    }

    /// `one_for_one`, `simple_one_for_one` (and a pool replica): only child `i`
    /// restarts; its siblings keep their incarnations.
    fn restart_one(&self, i: usize) -> Vec<String> {
        vec![self.child(i).0.clone()]
    }

    /// `one_for_all` and `rest_for_one`: stops the strategy's affected siblings of
    /// child `i` in reverse start order and returns the ones to start again, in
    /// order. Temporary siblings, and children stopped by the operator (or ended
    /// and not restarted), stay stopped, as in OTP.
    async fn restart_group(&mut self, i: usize) -> Vec<String> {
        let range = self.strategy.affected(i, self.children.len());
        for j in range.clone().rev() {
            if j == i {
                self.stop_child(j, Status::Restarting).await;
            } else if self.children[j].running() {
                let temporary = self.children[j].spec.restart == Restart::Temporary;
                let status = if temporary {
                    Status::Stopped
                } else {
                    Status::Restarting
                };
                self.stop_child(j, status).await;
            }
        }
        range
            .filter(|&j| self.children[j].node.status() == Status::Restarting)
            .map(|j| self.child(j).0.clone())
            .collect()
    }

    /// Whether auto shutdown is due now that a significant child ended on its own.
    fn significant_ended(&self) -> bool {
        match self.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self
                .children
                .iter()
                .any(|(n, c)| c.spec.significant && (c.running() || self.sweeps.holds(n))),
        }
    }

    /// Stops every child and ends this supervisor with reason `shutdown`.
    async fn auto_shut_down(
        &mut self,
        after: &str,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        tracing::info!(supervisor = %self.name, child = %after, policy = self.auto_shutdown.as_str(),
            "significant children ended; shutting down");
        self.stop_all().await;
        myself.stop(Some(EXIT_SHUTDOWN.to_string()));
        Ok(())
    }
}
